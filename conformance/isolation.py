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
Workers are forked from a fork server (:func:`start_workers`), started as
early as possible and once per process, that has imported the certifier and
the framework when its import is fork-safe (:attr:`Framework.fork_safe`):
a worker then starts without importing them again, and the server's imports
overlap the caller's own.  A fork of the caller itself could deadlock (it may
already run torch, jax or TensorFlow threads); where there is no fork server,
workers are spawned.  A worker takes the caller's environment as it is when
the worker starts, not the server's.
"""

from __future__ import annotations

import collections
import dataclasses
import multiprocessing
import os
import warnings
from collections.abc import Iterator
from typing import Any

from optspec import adapters
from optspec.adapters.driver import SubjectInfo
from optspec.adapters.errors import exit_name
from optspec.conformance.certify import reproduce_command
from optspec.conformance.expectation import Expectation
from optspec.conformance.verdict import Certificate, CheckOutcome, Failure, certificate

#: Seconds a worker may take to import the frameworks and build the subject before its first step.
STARTUP_S = 180.0


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


def start_workers(framework: str | None) -> multiprocessing.context.BaseContext:
    """The context workers start from: a fork server, started now if it is not running, or ``spawn``.

    The first call in a process starts the server with ``framework``
    preloaded (if fork-safe); it imports in the background while the caller
    goes on.
    """
    from multiprocessing import forkserver

    from optspec.conformance.preload import PRELOAD_VARIABLE

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    if not _SERVER_STARTED:
        safe = framework is not None and adapters.frameworks.describe(framework).fork_safe
        os.environ[PRELOAD_VARIABLE] = framework if safe else ""
        context.set_forkserver_preload(["optspec.conformance.preload"])
        forkserver.ensure_running()
        _SERVER_STARTED.append(framework)
    return context


#: Not empty once this process started its fork server.
_SERVER_STARTED: list[str | None] = []


def _worker(connection: Any, requests: list[Request], environment: dict[str, str]) -> None:
    from optspec.adapters.driver import set_heartbeat
    from optspec.conformance.certify import certify

    os.environ.clear()
    os.environ.update(environment)

    set_heartbeat(lambda label, step: connection.send(("beat", label, step)))
    resolved: dict[tuple[str, str | None, str | None], list[SubjectInfo]] = {}
    for request in requests:
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
    # A daemonic process may not start processes: a sharded subject's worker starts its ranks.
    worker = context.Process(target=_worker, args=(sender, [r for _, r in pending], dict(os.environ)),
                             daemon=all(request.sharding is None for _, request in pending))
    worker.start()
    sender.close()
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
            else:  # "raised", "hang" (the worker's own time limit, where Python got control back) or "crash" (a rank)
                yield _broken(subject, request, kind, message[2] or step, label, message[1])
            label, step, started = "the next subject's start", 0, False
    finally:
        if worker.is_alive():
            worker.kill()
        worker.join()
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
