"""The smaller things a vendor meets in the first hour: the reproduce line, the plugin's flag names,
checks that did not run, a crash's headline, --out after a usage error, --help, progress, warnings."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

from optspec import adapters
from optspec.conformance import progress
from optspec.conformance.certify import certify
from optspec.conformance.cli import main, parser
from optspec.conformance.isolation import warning_notes
from optspec.conformance.pytest_plugin import in_plugin_terms
from tests.conftest import needs

PLUGIN = "tests.plugins.torch_subjects"


@needs("torch")
def test_the_reproduce_line_keeps_a_time_limit_other_than_the_default(capsys):
    argv = ["certify", "--framework", "torch", "--impl", f"{PLUGIN}:AdamW_epsilon_hat", "--examples", "2",
            "--time-limit", "120"]
    assert main(argv) == 1
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("reproduce:")]
    assert line.rstrip().endswith("--time-limit 120"), line


def test_inside_pytest_messages_name_the_plugins_flags():
    assert in_plugin_terms("certify it with --dtype bfloat16; --time-limit sets it") == (
        "certify it with --optspec-dtype bfloat16; --optspec-time-limit sets it")
    assert in_plugin_terms("--out DIR and x--dtype stay") == "--out DIR and x--dtype stay"


def test_a_bad_plugin_option_is_a_usage_error_naming_the_plugins_flag(tmp_path):
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(tmp_path),
                           "--optspec-framework", "numpy", "--optspec-examples", "-1"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "--optspec-examples must be 0 or more (got -1)" in done.stderr, done.stderr


@needs("torch")
def test_checks_that_did_not_run_are_not_reported_as_passed():
    (subject,) = adapters.resolve_subject("torch", f"{PLUGIN}:AdamW_mutate_grad")
    cert = certify(subject, examples=0)
    assert cert.failure.check == "gradient-mutation"
    assert cert.checks["trajectory"].worst_error_over_bound is None, cert.checks
    assert cert.checks["one_step"].worst_error_over_bound is None, cert.checks


def test_a_crash_headline_counts_no_cases_and_no_ulps():
    from optspec.conformance.verdict import Certificate, CheckOutcome, Failure

    failure = Failure(check="crash", step=3, detail="crashed with SIGSEGV at step 3", case="x",
                      reproduce_cli="optspec certify ...")
    cert = Certificate(subject="s", framework="torch", framework_version="2", device="cpu", dtype="float32",
                       spec_version="1", rule="adamw", convention="torch", knobs=None, seed=0, cases_run=0,
                       checks={"crash": CheckOutcome(False, None)}, golden=[], verdict="does not conform",
                       failure=failure)
    headline = cert.headline("0 cases")
    assert headline == "DOES NOT CONFORM: s vs torch (float32: crash before any case finished)"
    assert "ulp" not in headline


def test_a_usage_error_leaves_no_out_directory(tmp_path, capsys):
    out = tmp_path / "cert"
    assert main(["certify", "--framework", "numpy", "--examples", "-1", "--out", str(out)]) == 2
    assert not out.exists()


def test_a_deleted_working_directory_is_a_usage_error(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    script = ("import os, sys; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
              "sys.argv[1:] = ['certify', '--framework', 'numpy']; from optspec.__main__ import run; sys.exit(run())")
    ran = subprocess.run([sys.executable, "-c", script, str(gone)], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 2, ran.stderr
    assert ran.stderr.strip() == ("error: the current directory no longer exists: cd to one that does and run it "
                                  "again"), ran.stderr


def test_golden_verify_of_a_missing_directory_is_a_usage_error(tmp_path, capsys):
    assert main(["golden", "verify", "--golden-dir", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_help_has_no_restructuredtext():
    assert "``" not in parser().format_help()
    for name in ("certify", "matrix", "identify", "golden"):
        assert "``" not in parser()._subparsers._group_actions[0].choices[name].format_help()


def test_progress_prints_the_stage_at_least_every_interval(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    ticker = progress.Progress(interval_s=0.2)
    with ticker.running():
        ticker.stage("importing a framework")
        time.sleep(0.75)
    lines = err.getvalue().splitlines()
    assert len(lines) >= 2 and all(re.fullmatch(r"\.\.\. importing a framework \(\d+ s\)", x) for x in lines), lines


def test_warnings_become_notes_once_each():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            warnings.warn("lr is\ndeprecated", FutureWarning, stacklevel=1)
        warnings.warn("once", UserWarning, stacklevel=1)
    assert warning_notes(caught) == ["warned during certification (3 times): FutureWarning: lr is deprecated",
                                     "warned during certification: UserWarning: once"]


@needs("torch")
def test_the_subjects_warnings_go_to_the_certificate_not_the_terminal(tmp_path, capfd):
    argv = ["certify", "--framework", "torch", "--impl", f"{PLUGIN}:Warns", "--examples", "2",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    captured = capfd.readouterr()
    assert "this optimizer is deprecated" not in captured.out + captured.err
    (cert,) = json.loads((tmp_path / "certificate.json").read_text())["certificates"]
    assert any("FutureWarning: this optimizer is deprecated" in note for note in cert["notes"]), cert["notes"]


@needs("tensorflow")
def test_keras_on_another_backend_is_refused_not_relabelled(tmp_path):
    """KERAS_BACKEND=jax would run Keras on JAX under a certificate that says tensorflow."""
    import os

    env = {**os.environ, "KERAS_BACKEND": "jax"}
    for argv in (["certify", "--framework", "tensorflow", "--impl", "keras.optimizers.AdamW", "--examples", "0"],
                 ["list"]):
        done = subprocess.run([sys.executable, "-m", "optspec", *argv], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=300)
        err = done.stderr.strip().splitlines()
        assert done.returncode == 2 and "tensorflow: not installed" not in done.stdout, (argv, done)
        assert err[-1] == ("error: --framework tensorflow certifies Keras on the TensorFlow backend, but Keras runs "
                           "on jax here (KERAS_BACKEND='jax'): unset KERAS_BACKEND or set it to tensorflow"), err


@needs("torch")
def test_the_optspec_command_imports_a_vendor_module_from_the_folder_it_runs_in(tmp_path):
    (tmp_path / "my_optim.py").write_text("from torch.optim import AdamW\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [str(Path(sys.executable).with_name("optspec")), "certify", "--framework",
               "torch", "--impl", "my_optim:AdamW", "--examples", "0"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0 and done.stdout.startswith("CONFORMS: my_optim:AdamW"), done.stdout + done.stderr
