"""The wheel, built from the tracked files and installed outside the checkout, works as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import built_once, needs

ROOT = Path(__file__).resolve().parent.parent
#: Top-level folders of the repository and where the wheel puts them.
INSTALLED_AS = {"spec": "optspec/spec", "adapters": "optspec/adapters", "conformance": "optspec/conformance",
                "golden": "optspec/golden", "optspec": "optspec"}


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, **kwargs)
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Path:
    """A virtual environment outside the checkout holding only the wheel; dependencies come from this one.

    Built once per test run (:func:`tests.conftest.built_once`): the vendor flow uses it too.
    """
    beside = Path(sys.executable).with_name("uv")  # the test extra installs it
    uv = str(beside) if beside.exists() else shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed (the test extra installs it): it builds and installs the wheel")
    return built_once(tmp_path_factory, "wheel", lambda work: _install_the_wheel(uv, work)) / "venv"


def _install_the_wheel(uv: str, work: Path) -> None:
    source = work / "source"
    tracked = _run(["git", "ls-files", "-z"], cwd=ROOT).stdout.split("\0")
    for name in filter(None, tracked):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    _run([uv, "build", "--wheel", "--out-dir", str(work / "dist"), str(source)], cwd=work)
    (wheel,) = (work / "dist").glob("optspec-*.whl")
    venv = work / "venv"
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=work)
    python = venv / "bin" / "python"
    _run([uv, "pip", "install", "--quiet", "--no-deps", "--python", str(python), str(wheel)], cwd=work)
    # the frameworks and hypothesis of this environment, without its editable optspec (a plain path
    # in a .pth file is not a site directory, so the editable finder's own .pth is not read)
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=work).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")


def test_the_wheel_carries_every_tracked_file_of_the_package(installed):
    (wheel,) = (installed.parent / "dist").glob("optspec-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = _run(["git", "ls-files"], cwd=ROOT).stdout.split()
    expected = {INSTALLED_AS[top] + "/" + rest for top, _, rest in (t.partition("/") for t in tracked)
                if top in INSTALLED_AS}
    assert expected - names == set(), f"tracked files missing from the wheel: {sorted(expected - names)}"
    assert not {n for n in names if n.split("/")[0] in {"spec", "adapters", "conformance", "tests"}}, \
        "the wheel installs a generic top-level name"


def test_the_installed_package_is_imported_from_outside_the_checkout(installed):
    done = _run([str(installed / "bin" / "python"), "-c", "import optspec.conformance; print(optspec.__file__)"],
                cwd=installed.parent)
    assert Path(done.stdout.strip()).is_relative_to(installed), done.stdout


def test_at_the_clones_root_python_m_optspec_runs_the_installed_package(installed):
    """The clone's own ``optspec/`` folder, first on ``sys.path`` there, yields to the installed package."""
    python = str(installed / "bin" / "python")
    done = _run([python, "-c", "import optspec, optspec.conformance.report as report; print(optspec.__file__); "
                               "print(report.__file__)"], cwd=ROOT)
    assert [Path(line).is_relative_to(installed) for line in done.stdout.split()] == [True, True], done.stdout
    done = _run([python, "-m", "optspec", "--help"], cwd=ROOT)
    assert "usage: optspec" in done.stdout


def test_the_installed_cli_verifies_the_golden_files(installed):
    done = _run([str(installed / "bin" / "optspec"), "golden", "verify"], cwd=installed.parent)
    assert f"every golden file in {installed}" in done.stdout, done.stdout


@needs("torch")
def test_the_installed_cli_certifies_torch_adamw_with_golden_replay(installed):
    out = installed.parent / "certificate"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = _run([str(installed / "bin" / "optspec"), "certify", "--framework", "torch",
                 "--impl", "torch.optim.AdamW", "--examples", "10", "--out", str(out)],
                cwd=installed.parent, env=env)
    assert "CONFORMS" in done.stdout
    certificates = json.loads((out / "certificate.json").read_text())["certificates"]
    assert [c["subject"] for c in certificates] == [
        "torch.optim.AdamW[for-loop]", "torch.optim.AdamW[foreach]", "torch.optim.AdamW[fused]"]
    for cert in certificates:
        assert cert["verdict"] == "conforms", cert
        assert cert["golden"] and all(g["passed"] for g in cert["golden"]), cert["golden"]
