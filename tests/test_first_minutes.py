"""What a newcomer meets in the first minutes: the pytest plugin's counts, the help's defaults and choices,
the paths printed, the files written for a conforming run, the package's description."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from optspec import adapters
from optspec.conformance import run
from optspec.conformance.cli import main, parser
from tests.conftest import needs
from tests.test_report import certificate

ROOT = Path(__file__).resolve().parent.parent


def test_the_plugin_counts_its_items_as_collected_and_names_each_with_a_path(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    done = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path), "-p", "no:cacheprovider", "-rA",
                           "--optspec-framework", "numpy", "--optspec-impl", "spec.sgdw", "--optspec-examples", "2"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "collected 2 items" in done.stdout and "2 passed" in done.stdout, done.stdout[-3000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("PASSED") and "spec.sgdw" in line]
    assert line.endswith("/optspec/numpy::optspec[spec.sgdw]") or line == "PASSED optspec/numpy::optspec[spec.sgdw]", line


def _help(command: str, option: str) -> str:
    """The help of ``optspec COMMAND``'s ``option``, on one line."""
    (action,) = [a for a in parser()._subparsers._group_actions[0].choices[command]._actions
                 if option in a.option_strings]
    return " ".join(f"{action.metavar or ''} {action.help}".split())


def test_the_help_says_why_certify_and_identify_default_to_different_dtypes():
    certify, identify = _help("certify", "--dtype"), _help("identify", "--dtype")
    float32 = [f for f in adapters.FRAMEWORKS if adapters.describe(f).default_dtype == "float32"]
    assert "default: float64" in certify and all(f in certify for f in float32), certify
    assert "smallest defect" in certify and "identify defaults to float32" in certify, certify
    assert "default float32" in identify and "certify defaults to float64" in identify, identify


@pytest.mark.parametrize("command", ["certify", "matrix"])
def test_the_help_lists_the_choices_of_sharding(command):
    shown = _help(command, "--sharding")
    usage = parser()._subparsers._group_actions[0].choices[command].format_usage()
    for framework in adapters.FRAMEWORKS:
        strategies = adapters.describe(framework).shardings
        assert all(s in shown for s in strategies) and all(s in usage for s in strategies), (shown, usage)
    assert re.search(r"--sharding \{\w+(,\w+)+\}", usage), usage


@pytest.mark.parametrize(("conforms", "plots"), [(True, []), (False, ["errors-0.png"])])
def test_out_with_a_trailing_slash_prints_each_path_once_and_a_conforming_run_draws_no_plot(
        tmp_path, monkeypatch, capsys, conforms, plots):
    monkeypatch.setattr(run, "certify_all", lambda options, **kwargs: iter([certificate(0, failing=not conforms)]))
    out = tmp_path / "cert"
    assert main(["certify", "--framework", "numpy", "--impl", "spec.adamw", "--out", f"{out}/"]) == (not conforms)
    (wrote,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("wrote ")]
    assert wrote.startswith(f"wrote {out}/certificate.json, junit.xml, report.md, report.html"), wrote
    assert "//" not in wrote and sorted(p.name for p in out.glob("*.png")) == plots


def test_the_description_names_every_framework():
    with open(ROOT / "pyproject.toml", "rb") as handle:
        description = tomllib.load(handle)["project"]["description"].lower()
    assert all(framework.replace("_", "-") in description for framework in adapters.FRAMEWORKS), description


@needs("torch")
@pytest.mark.parametrize("command", ["certify", "identify"])
def test_a_subject_that_raises_at_a_step_exits_1_in_certify_and_identify_naming_the_case_and_step(capsys, command):
    code = main([command, "--framework", "torch", "--impl", "tests.plugins.torch_subjects:AdamW_raises",
                 "--examples", "1"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "raised at step 2: RuntimeError: kernel launch failed" in out and "epsilon-placement" in out, out
    if command == "identify":
        assert out.splitlines()[-1] == "unfit" and "(step 2 of case epsilon-placement" in out, out


#: Each optional dependency, a command that needs it, and what its one-line error names.
NEEDED = [
    pytest.param("orbax", ["certify", "--framework", "jax", "--impl", "optax.adamw", "--world-size", "4"],
                 "needs orbax.checkpoint", marks=needs("jax"), id="orbax-checkpoint"),
    pytest.param("matplotlib", ["certify", "--framework", "numpy", "--impl", "spec.adamw", "--out", "{out}"],
                 "matplotlib, which is not installed", id="matplotlib"),
    pytest.param("jax", ["certify", "--framework", "jax", "--impl", "optax.adamw"],
                 "framework 'jax' is not installed", marks=needs("jax"), id="framework"),
    pytest.param("jax", ["identify", "--framework", "jax", "--impl", "optax.adamw"],
                 "framework 'jax' is not installed", marks=needs("jax"), id="framework-identify"),
]


@pytest.mark.parametrize(("hidden", "argv", "names"), NEEDED)
def test_a_missing_dependency_is_a_setup_error_before_any_case_with_the_install_command(tmp_path, hidden, argv,
                                                                                       names):
    environment = {**os.environ, "OPTSPEC_TEST_HIDDEN": hidden,
                   "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "hidden_modules"),
                                                  os.environ.get("PYTHONPATH", "")])}
    argv = [a.format(out=tmp_path / "out") for a in argv]
    done = subprocess.run([sys.executable, "-m", "optspec", *argv], capture_output=True, text=True, cwd=ROOT,
                          env=environment, timeout=600, check=False)
    assert done.returncode == 2 and done.stdout == "", (done.stdout, done.stderr)
    (error,) = done.stderr.strip().splitlines()
    assert error.startswith("error: ") and names in error and "pip install" in error, error
    assert not (tmp_path / "out").exists()


@needs("tensorflow")
def test_a_keras_optimizer_that_multiplies_by_the_learning_rate_without_a_cast_steps(capsys):
    """Keras 3's Muon takes the schedule's rate as it comes: the driver gives it in the parameters' dtype."""
    code = main(["certify", "--framework", "tensorflow", "--impl", "keras.optimizers:Muon", "--examples", "1"])
    out = capsys.readouterr().out
    assert "raised" not in out and "cannot compute" not in out, out
    # its verdict is a matter of its rule (Newton-Schulz steps, not AdamW's): a failure with numbers
    assert code == 1 and re.search(r"failed (one_step|trajectory) at step \d+ \(", out), out
