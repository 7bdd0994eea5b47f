"""The vendor flow end to end, as a vendor runs it in its own CI.

The wheel is built from the tracked files and installed outside the checkout
(``tests.test_wheel.installed``). A vendor package written from scratch (the
templates under ``tests/vendor/``) lives in a temporary directory, on
``PYTHONPATH`` only, with its own ``tests/`` and no ``conftest.py`` or
``pytest.ini``: the plugin is found through the installed wheel's ``pytest11``
entry point. ``GoodAdamW`` is a correct torch-convention AdamW whose
constructor has no ``amsgrad`` and no ``maximize``; ``LaggingAdamW`` has its
bias correction one step late (t = 1, 1, 2, 3, ...).

Every command (certify and identify through the installed CLI, the vendor's
pytest run through the installed python) is started at once, under umask
022, once per test run whichever xdist worker comes first, and each test
reads its result.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import built_once, needs
from tests.test_wheel import installed  # noqa: F401  (the module-scoped fixture: the wheel in a venv)

pytestmark = needs("torch")

TEMPLATES = Path(__file__).resolve().parent / "vendor"
GOOD, LAGGING = "vendoropt:GoodAdamW", "vendoropt:LaggingAdamW"
ARTEFACTS = ("certificate.json", "junit.xml", "report.md", "report.html")
HINT = "bias_correction one step late"
EXAMPLES = "10"


@dataclasses.dataclass(frozen=True)
class Ran:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"$ {' '.join(self.argv)}\nexit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"

    @property
    def last_line(self) -> str:
        lines = self.stdout.strip().splitlines()
        return lines[-1].strip() if lines else ""


def _vendor_checkout(root: Path) -> Path:
    """The vendor's checkout: ``vendoropt/`` and ``tests/`` from the templates, outside this checkout."""
    for template in TEMPLATES.rglob("*.txt"):
        target = root / template.relative_to(TEMPLATES).with_suffix("")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, target)
    assert (root / "vendoropt" / "__init__.py").is_file() and (root / "tests" / "test_optimizer.py").is_file()
    return root


def _run_the_flow(venv: Path, work: Path) -> None:
    """Every command of the flow, started at once (each spawns a worker that imports torch), into ``runs.json``.

    Each certify writes its files to ``certificates/<class name>``.
    """
    vendor, out = _vendor_checkout(work / "vendor"), work / "certificates"
    bin_ = venv / "bin"
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "HYPOTHESIS_PROFILE"}}
    env["PYTHONPATH"] = str(vendor)  # the vendor package is not installed
    commands = {
        f"certify {impl}": [str(bin_ / "optspec"), "certify", "--framework", "torch", "--impl", impl,
                            "--examples", EXAMPLES, "--out", str(out / impl.partition(":")[2])]
        for impl in (GOOD, LAGGING)
    } | {
        f"identify {impl}": [str(bin_ / "optspec"), "identify", "--framework", "torch", "--impl", impl]
        for impl in (GOOD, LAGGING)
    } | {
        f"pytest {impl}": [str(bin_ / "python"), "-m", "pytest", str(vendor / "tests"), "-v", "-p", "no:cacheprovider",
                           "--optspec-framework", "torch", "--optspec-impl", impl, "--optspec-examples", EXAMPLES]
        for impl in (GOOD, LAGGING)
    }
    started = {name: subprocess.Popen(argv, cwd=vendor, env=env, text=True, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, preexec_fn=lambda: os.umask(0o022))
               for name, argv in commands.items()}
    done = {}
    try:
        for name, process in started.items():
            stdout, stderr = process.communicate(timeout=600)
            done[name] = dataclasses.asdict(Ran(commands[name], process.returncode, stdout, stderr))
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    (work / "runs.json").write_text(json.dumps(done))


@pytest.fixture(scope="session")
def flow(installed, tmp_path_factory) -> Path:  # noqa: F811  (installed is the imported fixture)
    """The flow's folder, run once per test run (:func:`tests.conftest.built_once`)."""
    return built_once(tmp_path_factory, "vendor-flow", lambda work: _run_the_flow(installed, work))


@pytest.fixture
def runs(flow) -> dict[str, Ran]:
    """Each command's result, by name."""
    return {name: Ran(**ran) for name, ran in json.loads((flow / "runs.json").read_text()).items()}


@pytest.fixture
def out(flow) -> Path:
    """Where each certify wrote its files: one folder per optimizer, named after its class."""
    return flow / "certificates"


def certificate(directory: Path) -> dict:
    (cert,) = json.loads((directory / "certificate.json").read_text())["certificates"]
    return cert


def assert_artefacts(directory: Path, ran: Ran) -> None:
    """The three files are there, each ``0o644`` as any new file under umask 022, and no temporary is left."""
    names = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    missing = [a for a in ARTEFACTS if a not in names]
    assert not missing, f"{missing} not written in {directory} (it holds {names})\n{ran}"
    modes = {name: oct(stat.S_IMODE((directory / name).stat().st_mode)) for name in names}
    assert all(mode == oct(0o644) for mode in modes.values()), \
        f"files written under umask 022 should be 0o644 as any new file, got {modes}"
    assert not [n for n in names if n.startswith(".")], f"temporary files left behind in {directory}: {names}"


def test_certify_passes_a_correct_adamw_and_notes_the_knobs_its_constructor_lacks(runs, out):
    ran = runs[f"certify {GOOD}"]
    assert ran.returncode == 0, f"a correct torch AdamW should conform (exit 0)\n{ran}"
    assert f"CONFORMS: {GOOD} vs torch" in ran.stdout, ran
    written = out / "GoodAdamW"
    assert_artefacts(written, ran)
    cert = certificate(written)
    assert cert["subject"] == GOOD and cert["verdict"] == "conforms", cert
    assert cert["convention"] == "torch", f"a torch plugin is held to the torch preset by default: {cert}"
    for knob in ("amsgrad", "maximize"):
        assert f"{knob}: not tested: the constructor has no {knob!r} parameter" in cert["notes"], \
            f"the notes should say {knob} was not tested and why: {cert['notes']}"
    replayed = [g for g in cert["golden"] if g["applicable"]]
    assert replayed and all(g["passed"] for g in replayed), f"golden replay of the installed files: {cert['golden']}"


def test_certify_rejects_a_one_step_lag_in_the_bias_correction_and_names_it(runs, out):
    ran = runs[f"certify {LAGGING}"]
    assert ran.returncode == 1, f"a lagging bias correction should not conform (exit 1)\n{ran}"
    assert f"DOES NOT CONFORM: {LAGGING} vs torch" in ran.stdout, ran
    assert HINT in ran.stdout, f"the printed evidence should name the defect\n{ran}"
    written = out / "LaggingAdamW"
    assert_artefacts(written, ran)
    cert = certificate(written)
    assert cert["verdict"] == "does not conform", cert
    assert HINT in (cert["failure"] or {}).get("hint", ""), f"the certificate's hint: {cert['failure']}"
    assert "does not conform" in (written / "report.md").read_text().lower(), "report.md should carry the verdict"
    assert "<failure" in (written / "junit.xml").read_text(), "junit.xml should hold a failing test case"


def test_identify_names_the_torch_preset_of_a_correct_adamw(runs):
    ran = runs[f"identify {GOOD}"]
    assert ran.returncode == 0, f"identify should find the torch preset (exit 0)\n{ran}"
    assert ran.last_line == "torch", f"the last line should be the preset, one word\n{ran}"


def test_identify_finds_no_convention_for_a_lagging_bias_correction(runs):
    ran = runs[f"identify {LAGGING}"]
    assert ran.returncode == 1, f"no convention fits a lagging bias correction: exit 1\n{ran}"
    assert ran.last_line in ("unfit", "none"), f"the last line should say nothing fits\n{ran}"


def test_the_plugin_certifies_a_correct_adamw_in_the_vendors_own_pytest_run(runs):
    ran = runs[f"pytest {GOOD}"]
    assert ran.returncode == 0, f"the vendor's suite with a conforming optimizer should pass\n{ran}"
    assert f"optspec[{GOOD}] PASSED" in ran.stdout, f"the plugin's item should run and pass\n{ran}"
    assert "test_optimizer.py::test_the_optimizers_construct_and_step PASSED" in ran.stdout, \
        f"the vendor's own test should run beside it\n{ran}"
    assert "2 passed" in ran.stdout, ran


def test_the_plugin_fails_a_lagging_adamw_with_the_evidence(runs):
    ran = runs[f"pytest {LAGGING}"]
    assert ran.returncode == 1, f"the vendor's suite with a defective optimizer should fail (exit 1)\n{ran}"
    assert f"optspec[{LAGGING}] FAILED" in ran.stdout, ran
    assert "1 failed, 1 passed" in ran.stdout, f"the vendor's own test still passes\n{ran}"
    assert f"DOES NOT CONFORM: {LAGGING} vs torch" in ran.stdout and HINT in ran.stdout, \
        f"the failure should read as the CLI's, with the hint\n{ran}"
