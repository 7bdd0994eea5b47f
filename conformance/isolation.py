"""Certifying in a supervised worker process, so that a subject that crashes or hangs ends its case, not the run.

The worker re-creates the subject from its ``--impl`` text, certifies it, and
sends the :class:`~optspec.conformance.verdict.Certificate` back.  While it runs, the
driver sends a heartbeat at every step (the case and the step,
:func:`adapters.driver.set_heartbeat`).  The supervisor waits at most
``time_limit_s`` for each heartbeat: a step that takes longer, whatever the
subject holds (the GIL in C code, a lock), is a hang, and the worker is
killed.  A worker that dies (any signal) has crashed.  Either way the verdict
is "does not conform", with the case and step as evidence.

One worker serves every case of a subject, so the batched speed is kept.
Beside it, a second worker replays the golden scenarios of the same subjects
(:func:`_replayer`), which a certification in one process replays after the
cases: the worker takes that replay from it where its inputs are the ones
its own certification reaches (:class:`_Aside`), and replays them itself
otherwise, or where the second worker raised, crashed or hung, so that the
verdict, its evidence and its notes are the ones of a replay in the worker.
Workers are forked from a fork server (:func:`~optspec.conformance.workers.start_workers`),
started as early as possible and once per process, that has imported the certifier and
the framework when its import is fork-safe (:attr:`Framework.fork_safe`):
a worker then starts without importing them again, and the server's imports
overlap the caller's own.  A fork of the caller itself could deadlock (it may
already run torch, jax or TensorFlow threads); where there is no fork server,
workers are spawned.  A worker takes the caller's environment as it is when
the worker starts, not the server's.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import importlib
import os
import signal
import time
import warnings
from collections.abc import Iterator
from typing import Any

from optspec import adapters
from optspec.adapters.driver import SubjectInfo
from optspec.adapters.errors import exit_name
from optspec.conformance.certify import reproduce_command
from optspec.conformance.expectation import Expectation
from optspec.conformance.verdict import Certificate, CheckOutcome, Failure, certificate
from optspec.conformance.workers import start_workers

#: Seconds a worker may take to import the frameworks and build the subject before its first step.
STARTUP_S = 180.0
#: Seconds between two heartbeats of the golden replay's worker, and of a worker that waits for it: they
#: show that it is alive (the evidence of a failure comes from the worker's own replay, never from these).
ASIDE_BEAT_S = 0.25
#: The golden steps a subject replays from which the replay runs in a second worker (torch's preset: 10 430).
ASIDE_MIN_STEPS = 1000


@dataclasses.dataclass(frozen=True)
class Request:
    """What the worker needs to re-create the subject and certify it."""

    framework: str
    impl: str | None
    rule: str | None
    subject: str
    size: int | None
    options: dict[str, Any]
    sharding: adapters.Sharding | None = None


def replayed_aside(subject: SubjectInfo, request: Request) -> bool:
    """Whether ``request``'s golden replay runs in the second worker: a certification of cases in one process
    whose scenarios take at least :data:`ASIDE_MIN_STEPS` steps (a shorter replay costs less than a second
    worker's construction and compilation of the subject: Keras' and optax's presets replay 50 to 110)."""
    if request.size is not None or request.sharding is not None or request.options.get("golden_dir") is None:
        return False
    from optspec import spec
    from optspec.conformance.golden import scenarios

    try:
        convention = Expectation.of(subject, request.options.get("convention")).convention
    except Exception:  # the worker refuses it, in one line
        return False
    rule = spec.get_rule(subject.rule)
    return sum(scenario["steps"] for scenario in scenarios() if scenario["rule"] == subject.rule and (
        not rule.takes_convention or rule.resolve(scenario.get("convention")) == convention)) >= ASIDE_MIN_STEPS


def _replay_key(subject: SubjectInfo, convention: Any, dtype: str, device: str | None, golden_dir: Any) -> str:
    """What a golden replay reads of its arguments, as text: two replays with one key run the same steps."""
    return repr((subject.name, subject.framework, subject.rule, subject.convention, sorted(subject.supports),
                 sorted(subject.fixed.items()), subject.devices, sorted(subject.not_tested.items()),
                 subject.holds_hyperparameters_in_dtype, subject.sharding, sorted(subject.own_defaults.items()),
                 sorted(subject.state_storage.items()),
                 subject.build_batch is None, subject.drive_elsewhere is None, convention, dtype, device,
                 str(golden_dir)))


def _replay_inputs(subject: SubjectInfo, options: dict[str, Any]) -> tuple[SubjectInfo, Any, str | None]:
    """The subject, convention and device that :func:`~optspec.conformance.certify.certify` replays the golden
    scenarios with (a mismatch costs only speed: :class:`_Aside` compares their :func:`_replay_key`)."""
    from optspec.conformance.hidden import held
    from optspec.conformance.state_storage import stored

    if options.get("hold"):
        subject = held(subject, options["hold"], "declared with --hold")
    if options.get("state_dtypes"):
        subject = stored(subject, options["state_dtypes"])
    convention = Expectation.of(subject, options.get("convention")).convention
    if getattr(convention, "amsgrad", None) == "off" and not subject.fixed.get("amsgrad"):
        subject = dataclasses.replace(subject, supports=subject.supports - {"amsgrad"})
    return subject, convention, adapters.namespaces.check_device(subject.framework, options.get("device"))


def _replayer(connection: Any, requests: list[tuple[int, Request]], environment: dict[str, str]) -> None:
    """The second worker: replays the golden scenarios of each request in turn, and sends each replay, with its
    key and the warnings raised during it, to the worker of the cases (:class:`_Aside`); ("error", index) where
    it could not."""
    from optspec.adapters.driver import set_heartbeat
    from optspec.conformance import golden

    os.environ.clear()
    os.environ.update(environment)
    last = [0.0]

    def beat(label: str, step: int) -> None:
        if (now := time.monotonic()) - last[0] >= ASIDE_BEAT_S:
            last[0] = now
            connection.send(("beat", label, step))

    set_heartbeat(beat)
    resolved: dict[tuple[str, str | None, str | None], list[SubjectInfo]] = {}
    for index, request in requests:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the worker of the cases records those of the resolution
                key = (request.framework, request.impl, request.rule)
                if key not in resolved:
                    resolved[key] = adapters.resolve_subject(*key)
                (subject,) = [s for s in resolved[key] if s.name == request.subject]
                subject, convention, device = _replay_inputs(subject, request.options)
            dtype, golden_dir = request.options.get("dtype", "float64"), request.options["golden_dir"]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                replays = golden.replay(subject, convention, dtype=dtype, device=device, golden_dir=golden_dir)
            raised = [(w.category.__module__, w.category.__qualname__, str(w.message), w.filename, w.lineno)
                      for w in caught]
            connection.send(("replays", index, _replay_key(subject, convention, dtype, device, golden_dir),
                             replays, raised))
        except KeyboardInterrupt:
            return
        except Exception:  # the worker of the cases replays it itself, and meets the error there
            with contextlib.suppress(Exception):
                connection.send(("error", index))


class _Aside:
    """The golden replays of the second worker, as :data:`optspec.conformance.golden.replayed_aside` for the
    worker of the cases: the replay of request ``index`` where its key is the one asked for, else None.

    While it waits, it beats to the supervisor; a second worker silent for the time limit is killed, and
    every replay after that runs in this worker.
    """

    def __init__(self, connection: Any, indices: set[int], pid: int, supervisor: Any, time_limit_s: float):
        self.connection, self.indices, self.pid, self.supervisor = connection, indices, pid, supervisor
        self.time_limit_s = time_limit_s
        self.index = -1
        self.asked: set[int] = set()
        self.broken = False
        self.started = False
        self.where: tuple[str, int] = ("the golden replay (in a second worker)", 0)

    def __call__(self, subject: SubjectInfo, convention: Any, dtype: str, device: str | None,
                 golden_dir: Any) -> list | None:
        if self.broken or self.index not in self.indices or self.index in self.asked:
            return None  # a replay of another subject (the same one held at a hidden value) runs here
        self.asked.add(self.index)
        key = _replay_key(subject, convention, dtype, device, golden_dir)
        heard = time.monotonic()
        while True:
            limit = self.time_limit_s if self.started else max(self.time_limit_s, STARTUP_S)
            if time.monotonic() - heard > limit:
                return self._give_up()
            self.supervisor.send(("beat", *self.where))
            if not self.connection.poll(ASIDE_BEAT_S * 4):
                continue
            try:
                message = self.connection.recv()
            except (EOFError, OSError):
                return self._give_up()
            heard = time.monotonic()
            if message[0] == "beat":
                self.started, self.where = True, (message[1], message[2])
                continue
            if message[1] < self.index:  # the replay of a subject whose cases failed: not needed
                continue
            if message[0] != "replays" or message[2] != key:
                return None
            for module, name, text, filename, lineno in message[4]:
                warnings.warn_explicit(text, _warning_category(module, name), filename, lineno)
            return message[3]

    def _give_up(self) -> None:
        self.broken = True
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        return None


def _warning_category(module: str, name: str) -> type[Warning]:
    """The warning class ``module.name``, or one of that name where it cannot be imported here."""
    with contextlib.suppress(Exception):
        found: Any = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
        if isinstance(found, type) and issubclass(found, Warning):
            return found
    return type(name.rpartition(".")[2], (Warning,), {})


def _worker(connection: Any, requests: list[Request], environment: dict[str, str],
            aside: tuple[Any, set[int], int, float] | None = None) -> None:
    from optspec.adapters.driver import set_heartbeat
    from optspec.conformance import golden
    from optspec.conformance.certify import certify

    os.environ.clear()
    os.environ.update(environment)

    set_heartbeat(lambda label, step: connection.send(("beat", label, step)))
    replays = _Aside(aside[0], aside[1], aside[2], connection, aside[3]) if aside is not None else None
    golden.replayed_aside = replays
    resolved: dict[tuple[str, str | None, str | None], list[SubjectInfo]] = {}
    for index, request in enumerate(requests):
        if replays is not None:
            replays.index = index
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                key = (request.framework, request.impl, request.rule)
                if key not in resolved:  # a matrix asks for each subject once per preset
                    resolved[key] = adapters.resolve_subject(*key)
                (subject,) = [s for s in resolved[key] if s.name == request.subject]
                if request.size is not None:
                    from optspec.conformance.scale import certify_at_scale

                    cert = certify_at_scale(subject, size=request.size, **request.options)
                elif request.sharding is not None:
                    with adapters.sharded(subject, *key, request.sharding) as on_ranks:
                        cert = certify(on_ranks, **request.options)
                else:
                    cert = certify(subject, **request.options)
            cert = dataclasses.replace(cert, notes=[*cert.notes, *warning_notes(caught)])
            connection.send(("done", cert))
        except adapters.SetupError as exc:
            connection.send(("setup-error", str(exc), 0))
            return
        except adapters.SubjectError as exc:
            connection.send(("hang" if exc.hung else "crash" if exc.crashed else "raised", str(exc), exc.step))
        except KeyboardInterrupt:
            return
        except Exception as exc:
            if adapters.raised_by_optspec(exc):
                connection.send(("internal", f"{adapters.one_line(exc)} (at {adapters.where_raised(exc)})", 0))
                return
            connection.send(("raised", adapters.one_line(exc), 0))


def warning_notes(caught: list[warnings.WarningMessage]) -> list[str]:
    """The warnings raised while a subject was certified (its own, its framework's), once each, for the
    certificate's notes: they belong in the report, not on the terminal."""
    counts = collections.Counter(f"{w.category.__name__}: {' '.join(str(w.message).split())}" for w in caught)
    return [f"warned during certification{f' ({n} times)' if n > 1 else ''}: {text}"
            for text, n in counts.items()]


def certify_isolated(subjects: list[SubjectInfo], requests: list[Request], *, time_limit_s: float
                     ) -> Iterator[Certificate]:
    """Certifies each subject in a worker process, yielding its certificate as soon as it is known.

    One worker serves the subjects in turn; after a crash or a hang, a fresh
    one takes the subjects that are left.
    """
    pending = list(zip(subjects, requests))
    while pending:
        yield from _run_worker(pending, time_limit_s)


def _run_worker(pending: list[tuple[SubjectInfo, Request]], time_limit_s: float) -> Iterator[Certificate]:
    """Runs a worker over ``pending``, removing each subject from it once its certificate is yielded."""
    context = start_workers(pending[0][1].framework)
    receiver, sender = context.Pipe(duplex=False)
    aside = [(index, request) for index, (subject, request) in enumerate(pending) if replayed_aside(subject, request)]
    replayer, aside_args = None, None
    if aside:
        replays, replayed = context.Pipe(duplex=False)
        replayer = context.Process(target=_replayer, args=(replayed, aside, dict(os.environ)), daemon=True)
        replayer.start()
        replayed.close()
        aside_args = (replays, {index for index, _ in aside}, replayer.pid, time_limit_s)
    # A daemonic process may not start processes: a sharded subject's worker starts its ranks.
    worker = context.Process(target=_worker, args=(sender, [r for _, r in pending], dict(os.environ), aside_args),
                             daemon=all(request.sharding is None for _, request in pending))
    worker.start()
    sender.close()
    if aside_args is not None:
        aside_args[0].close()
    label, step, started = "the worker's start (imports)", 0, False
    try:
        while pending:
            subject, request = pending[0]
            limit = time_limit_s if started else max(time_limit_s, STARTUP_S)
            if not receiver.poll(limit):
                pending.pop(0)
                yield _broken(subject, request, "hang", step, label,
                              f"no result within {limit:g} s at step {step} of case {label} "
                              "(the worker was killed; --time-limit sets the limit)")
                return
            try:
                message = receiver.recv()
            except EOFError:
                worker.join()
                pending.pop(0)
                yield _broken(subject, request, "crash", step, label,
                              f"crashed with {exit_name(worker.exitcode)} at step {step} of case {label}")
                return
            kind = message[0]
            if kind == "beat":
                label, step, started = message[1], message[2], True
                continue
            pending.pop(0)
            if kind == "done":
                yield message[1]
            elif kind == "setup-error":
                pending.clear()
                raise adapters.SetupError(message[1])
            elif kind == "internal":
                pending.clear()
                raise adapters.InternalError(
                    f"optspec itself failed while certifying {subject.name}, at step {step} of case {label}: "
                    f"{message[1]}; this is a bug in optspec, not a verdict on the subject: please report it "
                    "with the command that gave it")
            else:  # "raised", "hang" (the worker's own time limit, where Python got control back) or "crash" (a rank)
                yield _broken(subject, request, kind, message[2] or step, label, message[1])
            label, step, started = "the next subject's start", 0, False
    finally:
        for process in (worker, replayer):
            if process is not None and process.is_alive():
                process.kill()
        for process in (worker, replayer):
            if process is not None:
                process.join()
        receiver.close()


def _broken(subject: SubjectInfo, request: Request, check: str, step: int, label: str, detail: str) -> Certificate:
    """The certificate of a worker that crashed, hung or raised: no case finished, the failure names the step."""
    options = request.options
    expectation = Expectation.of(subject, options.get("convention"))
    dtype = options.get("dtype", "float64")
    seed = options.get("seed_value", 0)
    failure = Failure(check=check, step=step, detail=detail, case=label,
                      reproduce_cli=reproduce_command(dataclasses.replace(subject, sharding=request.sharding),
                                                      expectation, dtype=dtype, seed=seed,
                                                      examples=options.get("examples"), size=request.size,
                                                      steps=options.get("steps"),
                                                      time_limit_s=options.get("time_limit_s")))
    return certificate(dataclasses.replace(subject, sharding=request.sharding), expectation, dtype=dtype,
                       device=options.get("device") or "cpu", seed=seed,
                       cases_run=0, failure=failure,
                       checks={check: CheckOutcome(passed=False, worst_error_over_bound=None),
                               "trajectory": CheckOutcome(passed=False, worst_error_over_bound=None)})
