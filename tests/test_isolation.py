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


def _spec_adamw(framework: str = "numpy", impl: str = "spec.adamw"):
    from optspec import adapters

    (subject,) = adapters.resolve_subject(framework, impl)
    return subject


@pytest.mark.parametrize(("framework", "impl", "convention"), [
    ("numpy", "spec.adamw", None),
    # the paper's preset has no AMSGrad: certify drops the variant from what the subject supports
    pytest.param("torch", "optspec.adapters.torch.optimizer:AdamW[convention='paper']", "paper",
                 marks=needs("torch")),
])
def test_the_golden_replay_beside_the_cases_has_the_inputs_certify_replays(monkeypatch, framework, impl,
                                                                           convention):
    from optspec.conformance import golden, isolation
    from optspec.conformance.certify import certify

    subject = _spec_adamw(framework, impl)
    asked = []
    monkeypatch.setattr(golden, "replayed_aside", lambda *args: asked.append(isolation._replay_key(*args)))
    assert certify(subject, convention=convention, examples=0, golden_dir=str(golden.DEFAULT_DIR)).passes
    replayed, knobs, device = isolation._replay_inputs(subject, {"convention": convention, "dtype": "float64",
                                                                 "device": None, "hold": {}})
    assert asked == [isolation._replay_key(replayed, knobs, "float64", device, golden.DEFAULT_DIR)]
    assert convention != "paper" or "amsgrad" not in replayed.supports


def test_the_worker_takes_a_replay_of_its_own_inputs_only_and_replays_itself_when_the_second_worker_is_gone():
    import multiprocessing
    import warnings

    from optspec.conformance import isolation

    subject = _spec_adamw()
    key = isolation._replay_key(subject, None, "float64", "cpu", "golden")
    receive, send = multiprocessing.Pipe(duplex=False)
    beats, supervisor = multiprocessing.Pipe(duplex=False)
    second = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    aside = isolation._Aside(receive, {0, 1, 2}, second.pid, supervisor, time_limit_s=30)
    send.send(("beat", "golden:long (10000 steps)", 7))
    send.send(("replays", 0, key, ["the replay"], [("builtins", "UserWarning", "from the second worker", "x.py", 3)]))
    send.send(("replays", 1, "another subject's key", ["not this one"], []))
    aside.index = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert aside(subject, None, "float64", "cpu", "golden") == ["the replay"]
    assert [(w.category, str(w.message)) for w in caught] == [(UserWarning, "from the second worker")]
    assert aside(subject, None, "float64", "cpu", "golden") is None, "a second replay of one request runs here"
    seen = []
    while beats.poll(0):
        seen.append(beats.recv())
    assert ("beat", "golden:long (10000 steps)", 7) in seen, "while it waits, it beats to the supervisor"
    aside.index = 1
    assert aside(subject, None, "float64", "cpu", "golden") is None, "another key: replayed here"
    send.close()
    aside.index = 2
    assert aside(subject, None, "float64", "cpu", "golden") is None and aside.broken
    assert second.wait(timeout=30) == -signal.SIGKILL, "a second worker that is gone or silent is killed"


@pytest.mark.parametrize(("argv", "started"), [
    (["certify", "--framework", "torch", "--impl", "x"], ["torch"]),
    (["certify", "--impl", "x", "--framework=jax"], ["jax"]),
    (["certify", "--framework", "torch", "--help"], []),
    (["identify", "--framework", "torch"], []),
    (["certify", "--impl", "x"], []),
])
def test_the_fork_server_starts_before_the_cli_imports_for_a_certify_of_a_framework(monkeypatch, argv, started):
    from optspec.conformance import workers

    calls = []
    monkeypatch.setattr(workers, "start_workers", calls.append)
    workers.start_early(argv)
    assert calls == started


def test_the_fork_server_started_for_a_command_is_killed_as_it_ends():
    script = ("import os, signal\nfrom multiprocessing import forkserver\nfrom optspec.conformance import workers\n"
              "workers.start_workers('numpy')\npid = forkserver._forkserver._forkserver_pid\nworkers.stop_server()\n"
              "status = os.waitpid(pid, 0)[1]\nprint(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          check=False)
    assert done.stdout.strip() == "True", done.stdout + done.stderr


def test_only_a_long_golden_replay_runs_in_a_second_worker():
    from optspec.conformance import golden, isolation

    subject = _spec_adamw()

    def request(convention, size=None):
        return isolation.Request("numpy", "spec.adamw", None, subject.name, size,
                                 {"golden_dir": str(golden.DEFAULT_DIR), "convention": convention})

    assert isolation.replayed_aside(subject, request(None)), "torch's preset replays the 10 000 steps of long"
    assert not isolation.replayed_aside(subject, request("optax")), "optax's replays 50 steps"
    assert not isolation.replayed_aside(subject, request(None, size=1000)), "--size replays nothing"


def test_an_exception_of_optspecs_own_is_told_from_the_subjects():
    """Where the innermost of optspec's frames is in its checks or spec, optspec failed; where it is in the adapters
    that drive the subject (which wrap what the subject raises), or there is none, the subject did."""
    import numpy as np

    from optspec import adapters
    from optspec.conformance import bias

    step = bias.ExactStep(np.zeros((1, 40)), np.zeros((1, 40)), None, np.zeros((1, 40)))
    with pytest.raises(ValueError) as ours:  # NumPy raises, called from optspec's own check
        bias.first_bias(step, np.zeros((1, 41)), [bias.Direction("lr", np.ones((1, 40)), 0.0)], "bfloat16", "t")
    assert adapters.raised_by_optspec(ours.value)
    assert adapters.where_raised(ours.value).startswith("optspec.conformance.bias:")

    def framework_code():
        raise RuntimeError("kernel launch failed")

    with pytest.raises(RuntimeError) as theirs:
        framework_code()
    assert not adapters.raised_by_optspec(theirs.value)


@needs("torch")
def test_an_exception_of_optspecs_own_in_the_worker_is_no_verdict_on_the_subject():
    """A bug in optspec, here a certify option it does not take, must not read as the subject raising (exit 1): it
    is an :class:`~optspec.adapters.InternalError`, which the CLI prints in one line with exit code 3."""
    from optspec import adapters
    from optspec.conformance.isolation import Request, certify_isolated

    (subject,) = [s for s in adapters.subjects("torch") if s.name == "torch.optim.AdamW[fused]"]
    request = Request("torch", None, None, subject.name, None, {"not_an_option": 1})
    with pytest.raises(adapters.InternalError, match=r"optspec itself failed while certifying torch.optim.AdamW"
                       r"\[fused\].*TypeError.*not_an_option.*a bug in optspec, not a verdict on the subject"):
        list(certify_isolated([subject], [request], time_limit_s=60))
