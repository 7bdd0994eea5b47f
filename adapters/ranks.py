"""A subject run by a framework's own distributed engine in processes of their own, as a subject like any other.

:func:`sharded` starts the processes a :class:`~optspec.adapters.driver.Sharding`
needs (the framework's ``sharding`` module says how many, and what each sets
before its imports: torch one per rank, JAX one that holds every device of a
mesh), which join the framework's group and wait for cases.  The sharded
subject's :attr:`~optspec.adapters.driver.SubjectInfo.drive_elsewhere` sends
each case, naming its subject, to every process; each re-creates the subject
(once) from its ``--impl`` text, drives the case with the ordinary driver
inside the framework's placement (the parameters placed as the strategy
places them, the same global gradient fed everywhere) and sends back what
each rank or device held at every step.  The trajectory that comes back has
one :class:`~optspec.adapters.driver.View` per rank (or device) and tensor,
which the checks compare with the spec one by one, so that a failure names
the rank and the shard.

A framework's ``sharding`` module gives: ``processes(sharding)``,
``environment(sharding)`` (variables set in each process before its imports),
``join(process, sharding, device, store)`` (called first in each; ``store``
says where its group may rendezvous: ``file://PATH`` or
``tcp://HOST:PORT/PREFIX``, a key prefix in the store there), ``placed(sharding, load_from)`` (a
:func:`placing` context, in which sessions place their parameters, and load
the state from the distributed checkpoint in ``load_from`` if given),
``checkpoint(placement, directory)`` (the live session's state saved there
with that checkpoint), ``resume_world_size(sharding)`` (the world size the
resharded-resume case resumes on, or the reason it has none), optionally
``one_dtype(sharding)`` (why the strategy takes parameters of one dtype only,
or None),
``held(placement, got)`` (what this process's ranks held of each tensor:
``(tensor, rank, rows, name, trajectory)``) and ``launched(sharding)``: None,
or, where the framework's own launcher started this process as a rank of a
run across machines (``torchrun``), the processes that launcher started, to
use instead of spawning them (:class:`Spawned` says what that object does).

Supervision is :mod:`optspec.conformance.isolation`'s, one level down: every
process beats at every step, and this process holds each to the time limit
while it beats to its own supervisor (which still ends it, should it hang
itself).  A process that dies is a crash naming its rank; one silent for the
time limit is a hang naming it; either way every process is killed (each
dies with its parent, too) and the next case starts afresh.  The processes
outlive one subject, to serve the next one of the same sharding.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import dataclasses
import functools
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from optspec.adapters.driver import Dtypes, Sharding, SubjectInfo, Trajectory, View, heartbeat
from optspec.adapters.errors import SubjectError, exit_name, one_line

#: Seconds the processes may take to import the framework and the subject and join the group.
STARTUP_S = 180.0
#: Seconds between the heartbeats this process sends while it waits for the ranks.
KEEPALIVE_S = 0.5


@dataclasses.dataclass(frozen=True)
class Origin:
    """How a rank re-creates the subject: what ``--framework``, ``--impl`` and ``--rule`` said, and its name."""

    framework: str
    impl: str | None
    rule: str | None
    name: str


#: The processes of each (framework, sharding) this process has run, kept for the next subject.
_RANKS: dict[tuple[str, Sharding], Ranks] = {}


@contextlib.contextmanager
def sharded(subject: SubjectInfo, origin: Origin, sharding: Sharding) -> Iterator[SubjectInfo]:
    """``subject`` run by its framework across ``sharding.world_size`` ranks with ``sharding.strategy``.

    The processes outlive the block, to serve the next subject of the same
    sharding; they end with this process (or :func:`stop_ranks`).
    """
    ranks = _ranks(subject.framework, sharding)
    resume = ranks.hooks.resume_world_size(sharding)
    one_dtype = getattr(ranks.hooks, "one_dtype", lambda sharding: None)(sharding)
    sharding = dataclasses.replace(sharding, resume_world_size=resume if isinstance(resume, int) else None,
                                   not_resharded=resume if isinstance(resume, str) else None, one_dtype=one_dtype)
    yield dataclasses.replace(subject, sharding=sharding, drive_elsewhere=functools.partial(ranks.drive, origin),
                              build_batch=None)


def _ranks(framework: str, sharding: Sharding) -> Ranks:
    return _RANKS.setdefault((framework, sharding), Ranks(framework, sharding))


_PLACEMENT: contextvars.ContextVar[tuple[Callable[[], Any], list[Any]] | None] = contextvars.ContextVar(
    "placement", default=None)


@contextlib.contextmanager
def placing(make: Callable[[], Any]) -> Iterator[list[Any]]:
    """Sessions built inside place their parameters with a fresh ``make()`` each (this process is a rank of a
    sharded run); yields the list of the placements they made, the last one the live session's."""
    built: list[Any] = []
    token = _PLACEMENT.set((make, built))
    try:
        yield built
    finally:
        _PLACEMENT.reset(token)


def new_placement() -> Any | None:
    """A fresh placement for a session being built inside :func:`placing`, or None outside it."""
    found = _PLACEMENT.get()
    if found is None:
        return None
    make, built = found
    built.append(make())
    return built[-1]


def stop_ranks() -> None:
    """Ends the processes of every sharding."""
    for ranks in _RANKS.values():
        ranks.stop()


class Spawned:
    """The processes of a sharding, spawned on this machine and spoken to through pipes.

    Each process's messages come back through :meth:`receive` as they are
    sent; its death as ``("exited", exit code)``.  Under the framework's own
    launcher (``torchrun``) its ``sharding`` module's ``launched`` gives an
    object with the same methods instead, whose processes live where the
    launcher started them.
    """

    def __init__(self, framework: str, sharding: Sharding, count: int) -> None:
        self.framework, self.sharding, self.count = framework, sharding, count
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self.connections: list[Connection] = []
        self.store: str | None = None

    def start(self, device: str | None, environment: dict[str, str]) -> None:
        self.store = tempfile.mkdtemp(prefix="optspec-ranks-")
        for index in range(self.count):
            process, connection = spawn_rank(index, self.framework, self.sharding, device, environment,
                                             f"file://{os.path.join(self.store, 'group')}")
            self.processes.append(process)
            self.connections.append(connection)

    def send(self, message: tuple) -> None:
        for connection in self.connections:
            connection.send(message)

    def receive(self, timeout: float) -> list[tuple[int, tuple]]:
        """The messages that arrive within ``timeout`` seconds, each with its process's index."""
        received = []
        for connection in wait(self.connections, timeout=timeout):
            index = self.connections.index(connection)
            try:
                received.append((index, connection.recv()))
            except EOFError:
                self.processes[index].join(timeout=5)
                received.append((index, ("exited", self.processes[index].exitcode)))
        return received

    def stop(self) -> None:
        """Ends every process (killed: one may be stuck in a collective) and removes the group's store."""
        for process in self.processes:
            if process.is_alive():
                process.kill()
        for process in self.processes:
            process.join()
        for connection in self.connections:
            connection.close()
        self.processes, self.connections = [], []
        if self.store is not None:
            shutil.rmtree(self.store, ignore_errors=True)
            self.store = None


class Ranks:
    """The processes of one sharding, started on the first case, and again after a failure."""

    def __init__(self, framework: str, sharding: Sharding) -> None:
        from optspec.adapters.frameworks import part

        self.framework, self.sharding = framework, sharding
        self.hooks = part(framework, "sharding")
        self.processes = (self.hooks.launched(sharding)
                          or Spawned(framework, sharding, self.hooks.processes(sharding)))
        self.started = False
        #: The processes that took a step: until then, each may take STARTUP_S between beats (its first
        #: subject's import and construction, the framework's first distributed operations).
        self.warm: set[int] = set()

    def start(self, device: str | None) -> None:
        self.processes.start(device, self.hooks.environment(self.sharding))
        self.started = True
        self._collect("the ranks' start (imports, joining the group)", STARTUP_S, {"ready"})

    def stop(self) -> None:
        """Ends every process; the next case starts them afresh."""
        self.processes.stop()
        self.started, self.warm = False, set()

    def drive(self, origin: Origin, params0: Sequence[np.ndarray], grads: Sequence[np.ndarray], lrs: list[Any],
              hyper: dict[str, Any], *, dtype: Dtypes, device: str | None, restore_at: int | None,
              time_limit_s: float | None, label: str, resume_world_size: int | None = None,
              save_to: str | None = None, load_from: str | None = None) -> Trajectory:
        """Runs one case on every rank; the views of what each held, or :class:`SubjectError` naming the rank.

        With ``resume_world_size``, the ranks run the steps up to ``restore_at``
        and save the state with the strategy's distributed checkpoint; that
        many ranks load it and run the rest (:meth:`_resharded`).
        ``save_to`` and ``load_from`` are that checkpoint's directory.
        """
        if resume_world_size is not None:
            return self._resharded(origin, params0, grads, lrs, hyper, dtype=dtype, device=device,
                                   restore_at=restore_at, time_limit_s=time_limit_s, label=label,
                                   resume_world_size=resume_world_size)
        if not self.started:
            self.start(device)
        self.processes.send(("case", origin, [np.asarray(p) for p in params0], [np.asarray(g) for g in grads],
                             lrs, hyper, dtype, device, restore_at, time_limit_s, label, save_to, load_from))
        done = self._collect(label, time_limit_s, {"done"})
        views: list[View] = []
        params: list[np.ndarray] = []
        for index in range(self.processes.count):
            for tensor, rank, rows, name, held in done[index][1]:
                if rows is not None and rows[0] == rows[1]:
                    continue  # this rank's shard of the tensor is empty
                if params0[tensor].ndim == 0:
                    held = held.reshape((len(lrs),))
                views.append(View(tensor=tensor, rank=rank, rows=rows, name=name))
                params.append(held)
        mutated = [m for _, _, m, _ in done.values() if m is not None]
        return Trajectory(params=params, views=views, mutated_at=min(mutated, default=None),
                          storage_dtypes=frozenset().union(*(d for _, _, _, d in done.values())))

    def _resharded(self, origin: Origin, params0: Sequence[np.ndarray], grads: Sequence[np.ndarray],
                   lrs: list[Any], hyper: dict[str, Any], *, dtype: Dtypes, device: str | None, restore_at: int,
                   time_limit_s: float | None, label: str, resume_world_size: int) -> Trajectory:
        """Steps ``1..restore_at`` here, saved; the rest on ``resume_world_size`` ranks that loaded it.

        Each part's tensors are put together from what the ranks held (a
        shard's rows, or rank 0's copy), and the trajectory is one view per
        tensor, named by the two world sizes: the checks then see the run
        continue, or not, across the resume.
        """
        other = _ranks(self.framework, dataclasses.replace(self.sharding, world_size=resume_world_size))
        with tempfile.TemporaryDirectory(prefix="optspec-checkpoint-") as checkpoint:
            options = {"hyper": hyper, "dtype": dtype, "device": device, "restore_at": None,
                       "time_limit_s": time_limit_s, "label": label}
            first = self.drive(origin, params0, [g[:restore_at] for g in grads], lrs[:restore_at],
                               save_to=checkpoint, **options)
            before = _whole(first, params0, restore_at)
            second = other.drive(origin, [p[-1] for p in before], [g[restore_at:] for g in grads],
                                 lrs[restore_at:], load_from=checkpoint, **options)
        after = _whole(second, params0, len(lrs) - restore_at)
        mutated = [m for m in (first.mutated_at, None if second.mutated_at is None
                               else second.mutated_at + restore_at) if m is not None]
        return Trajectory(
            params=[np.concatenate([b, a]) for b, a in zip(before, after)],
            views=[View(tensor=i, rank=0, rows=None,
                        name=f"tensor {i} (saved by {self.sharding.world_size} ranks after step {restore_at}, "
                             f"resumed by {resume_world_size})") for i in range(len(params0))],
            mutated_at=min(mutated, default=None), storage_dtypes=first.storage_dtypes | second.storage_dtypes)

    def _collect(self, label: str, limit_s: float | None, kinds: set[str]) -> dict[int, tuple]:
        """Waits until every process has sent one message of ``kinds``, hearing their beats; on one that
        raised, crashed or went silent for ``limit_s``, stops every process and raises :class:`SubjectError`."""
        waiting = set(range(self.processes.count))
        steps = dict.fromkeys(waiting, 0)
        heard = dict.fromkeys(waiting, time.monotonic())
        received: dict[int, tuple] = {}
        def limit(index: int) -> float:
            if limit_s is None or index not in self.warm:
                return max(limit_s or 0.0, STARTUP_S)
            return limit_s

        while waiting:
            silent = min(waiting, key=lambda r: heard[r] + limit(r))  # the first whose time runs out
            remaining = heard[silent] + limit(silent) - time.monotonic()
            if remaining <= 0:
                self._fail(f"rank {silent} hung: no result within {limit(silent):g} s at step {steps[silent]} of "
                           f"case {label} (--time-limit sets the limit)", steps[silent], hung=True)
            arrived = self.processes.receive(min(remaining, KEEPALIVE_S))
            # This process supervises the ranks; the supervisor above it hears that it is alive.
            heartbeat(label, min((steps[r] for r in waiting), default=0))
            for index, message in arrived:
                heard[index] = time.monotonic()
                if message[0] == "exited":
                    self._fail(f"rank {index} crashed with {exit_name(message[1])} at step {steps[index]} of "
                               f"case {label}", steps[index], crashed=True)
                elif message[0] == "beat":
                    steps[index] = message[1]
                    if message[1] > 0:
                        self.warm.add(index)
                elif message[0] == "raised":
                    _, text, step, hung = message
                    self._fail(f"rank {index}: {text}", step, hung=hung)
                elif message[0] in kinds:
                    received[index] = message
                    waiting.discard(index)
        return received

    def _fail(self, text: str, step: int, *, hung: bool = False, crashed: bool = False) -> None:
        self.stop()
        raise SubjectError(text, step=step, hung=hung, crashed=crashed)


def _whole(got: Trajectory, params0: Sequence[np.ndarray], steps: int) -> list[np.ndarray]:
    """Each tensor's trajectory put together from the views: the shards' rows in order, or the first copy."""
    out = []
    for index, theta0 in enumerate(params0):
        views = [(view, held) for view, held in zip(got.views, got.params) if view.tensor == index]
        whole = next((held for view, held in views if view.rows is None), None)
        if whole is None and theta0.ndim == 0:
            whole = views[0][1]
        elif whole is None:
            whole = np.concatenate([held for _, held in sorted(views, key=lambda vh: vh[0].rows)], axis=1)
        out.append(whole.reshape((steps, *theta0.shape)))
    return out


def _die_with_parent() -> None:
    """Linux: this process is killed when the one that started it dies, however it dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl
            os._exit(1)


def spawn_rank(index: int, framework: str, sharding: Sharding, device: str | None, environment: dict[str, str],
               store: str) -> tuple[multiprocessing.process.BaseProcess, Connection]:
    """Rank ``index``'s process (:func:`process_main`), spawned, and this end of the pipe to it."""
    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe()
    process = context.Process(target=process_main, daemon=True, name=f"optspec rank {index}",
                              args=(theirs, index, framework, sharding, device, environment, store))
    process.start()
    theirs.close()
    return process, mine


def process_main(connection: Connection, index: int, framework: str, sharding: Sharding, device: str | None,
                 environment: dict[str, str], store: str) -> None:
    """One process of a sharded run: joins the group, then drives each case it is sent."""
    _die_with_parent()
    os.environ.update(environment)  # before the framework's import
    import importlib
    import warnings

    from optspec import adapters
    from optspec.adapters.driver import set_heartbeat

    warnings.simplefilter("ignore")  # the subject's warnings are reported once, by the process that certifies
    hooks = adapters.part(framework, "sharding")
    try:
        for module in adapters.describe(framework).lazy_modules:  # torch._dynamo, which constructors import
            importlib.import_module(module)
        hooks.join(index, sharding, device, store)
    except Exception as exc:
        connection.send(("raised", f"could not join the group: {one_line(exc)}", 0, False))
        return
    subjects: dict[Origin, SubjectInfo] = {}
    set_heartbeat(lambda label, step: connection.send(("beat", step)))
    connection.send(("ready",))
    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        (_, origin, params0, grads, lrs, hyper, dtype, case_device, restore_at, time_limit_s, label, save_to,
         load_from) = message
        try:
            if origin not in subjects:
                subjects[origin] = next(s for s in adapters.resolve_subject(origin.framework, origin.impl, origin.rule)
                                        if s.name == origin.name)
            with hooks.placed(sharding, load_from) as built:
                got = adapters.drive(subjects[origin], params0, grads, lrs, hyper, dtype=dtype, device=case_device,
                                     restore_at=restore_at, time_limit_s=time_limit_s, label=label)
                if save_to is not None:
                    hooks.checkpoint(built[-1], save_to)
        except SubjectError as exc:
            connection.send(("raised", str(exc), exc.step, exc.hung))
            continue
        except Exception as exc:  # re-creating the subject, or its checkpoint
            connection.send(("raised", f"{origin.name}: {one_line(exc)}", 0, False))
            continue
        connection.send(("done", hooks.held(built[-1], got), got.mutated_at, got.storage_dtypes))
