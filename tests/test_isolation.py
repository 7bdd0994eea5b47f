"""A subject that crashes, hangs or raises ends in bounded time with a verdict of 1 and every artefact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optspec.conformance.cli import main
from tests.conftest import needs

PLUGIN = "tests.plugins.torch_subjects"
ROOT = Path(__file__).resolve().parent.parent


def _certify(tmp_path: Path, deviation: str, *extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "optspec", "certify", "--framework", "torch",
            "--impl", f"{PLUGIN}:AdamW_{deviation}", "--examples", "5", "--time-limit", "10",
            "--out", str(tmp_path), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(argv, capture_output=True, text=True, timeout=400, cwd=ROOT, env=env, check=False)


@needs("torch")
@pytest.mark.parametrize(("deviation", "extra", "expected"), [
    ("segfaults", (), "crashed with SIGSEGV at step 3 of case epsilon-placement"),
    ("hangs_in_c", (), "no result within 10 s at step 3 of case epsilon-placement"),
    ("raises", (), "raised at step 2: RuntimeError: kernel launch failed"),
    # the compiled reference of --size compiles at its first step: a longer limit
    ("hangs_in_c", ("--size", "1000", "--steps", "5", "--time-limit", "60"),
     "no result within 60 s at step 3 of case scale"),
])
def test_a_broken_subject_ends_with_exit_1_and_every_artefact_naming_the_step(tmp_path, deviation, extra,
                                                                               expected):
    started = time.monotonic()
    done = _certify(tmp_path, deviation, *extra)
    assert done.returncode == 1, done.stdout + done.stderr
    assert time.monotonic() - started < 300
    assert expected in done.stdout
    (cert,) = json.loads((tmp_path / "certificate.json").read_text())["certificates"]
    assert cert["verdict"] == "does not conform" and expected in cert["failure"]["detail"]
    assert expected in (tmp_path / "junit.xml").read_text()
    assert expected in (tmp_path / "report.md").read_text()
    assert not list(tmp_path.glob("*.png")), "a crash, hang or raise has no error/bound to plot"


@pytest.mark.parametrize(("argv", "message"), [
    (["--examples", "-5"], "--examples must be 0 or more"),
    (["--steps", "5"], "--steps applies only with --size"),
    (["--size", "0"], "--size must be 1 or more"),
    (["--time-limit", "0"], "--time-limit must be positive"),
])
def test_bad_options_are_refused_before_any_case(argv, message, capsys):
    assert main(["certify", "--framework", "numpy", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_an_out_that_is_a_file_is_refused_before_any_case(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    started = time.monotonic()
    assert main(["certify", "--framework", "numpy", "--out", str(taken)]) == 2
    assert time.monotonic() - started < 5
    assert "is a file" in capsys.readouterr().err
    assert taken.read_text() == "keep me"


@needs("torch")
def test_ctrl_c_stops_with_one_line_and_writes_nothing(tmp_path):
    argv = [sys.executable, "-m", "optspec", "certify", "--framework", "torch",
            "--impl", f"{PLUGIN}:AdamW_hangs_in_c", "--examples", "5", "--out", str(tmp_path / "out")]
    marker = tmp_path / "in-the-hang"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPTSPEC_TEST_HANG_MARKER": str(marker)}
    with subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        deadline = time.monotonic() + 300
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), "the worker never reached its hanging step"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert err.strip().splitlines()[-1].startswith("interrupted: no verdict")
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists(), list((tmp_path / "out").iterdir())
