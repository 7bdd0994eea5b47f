"""A torch subject run across ranks by ``torch.distributed`` itself, as a subject like any other.

:func:`sharded` starts ``world_size`` rank processes (spawned, gloo on CPU,
NCCL where the device is CUDA) that join one process group, re-create the
subject from its ``--impl`` text and wait for cases.  The sharded subject's
:attr:`~optspec.adapters.driver.SubjectInfo.drive_elsewhere` sends each case
to every rank; each rank drives it with the ordinary driver inside
:func:`~optspec.adapters.torch.placement.placed` (its parameters placed as
the strategy places them, the same global gradient fed to each) and sends
back what it held at every step.  The trajectory that comes back has one
:class:`~optspec.adapters.driver.View` per rank and tensor it held, which
the checks compare with the spec one by one, so that a failure names the
rank and the shard.

Supervision is :mod:`optspec.conformance.isolation`'s, one level down: every
rank beats at every step, and this process holds each rank to the time limit
while it beats to its own supervisor (which still ends it, should it hang
itself).  A rank that dies is a crash naming it; one silent for the time
limit is a hang naming it; either way every rank is killed (a rank dies with
its parent, too) and the next case starts a fresh group.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from optspec.adapters.driver import Sharding, SubjectInfo, Trajectory, View, heartbeat
from optspec.adapters.errors import SubjectError

#: Seconds the ranks may take to import torch and the subject and join the group.
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


@contextlib.contextmanager
def sharded(subject: SubjectInfo, origin: Origin, sharding: Sharding) -> Iterator[SubjectInfo]:
    """``subject`` run by ``sharding.world_size`` ranks with ``sharding.strategy``; the ranks stop on exit."""
    ranks = Ranks(origin, sharding)
    try:
        yield dataclasses.replace(subject, sharding=sharding, drive_elsewhere=ranks.drive, build_batch=None)
    finally:
        ranks.stop()


class Ranks:
    """The rank processes of one sharded subject, started on the first case."""

    def __init__(self, origin: Origin, sharding: Sharding) -> None:
        self.origin, self.sharding = origin, sharding
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self.connections: list[Connection] = []
        self.store: str | None = None

    def start(self, device: str | None) -> None:
        context = multiprocessing.get_context("spawn")
        self.store = tempfile.mkdtemp(prefix="optspec-ranks-")
        for rank in range(self.sharding.world_size):
            mine, theirs = context.Pipe()
            process = context.Process(target=_rank_main, daemon=True, name=f"optspec rank {rank}",
                                      args=(theirs, rank, self.sharding, self.origin, device,
                                            os.path.join(self.store, "group")))
            process.start()
            theirs.close()
            self.processes.append(process)
            self.connections.append(mine)
        self._collect("the ranks' start (imports, joining the group)", STARTUP_S, {"ready"})

    def stop(self) -> None:
        """Ends every rank (killed: one may be stuck in a collective) and removes the group's store."""
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

    def drive(self, params0: Sequence[np.ndarray], grads: Sequence[np.ndarray], lrs: list[Any],
              hyper: dict[str, Any], *, dtype: str, device: str | None, restore_at: int | None,
              time_limit_s: float | None, label: str) -> Trajectory:
        """Runs one case on every rank; the views of what each held, or :class:`SubjectError` naming the rank."""
        if not self.processes:
            self.start(device)
        case = ("case", [np.asarray(p) for p in params0], [np.asarray(g) for g in grads], lrs, hyper, dtype,
                device, restore_at, time_limit_s, label)
        for connection in self.connections:
            connection.send(case)
        done = self._collect(label, time_limit_s, {"done"})
        views: list[View] = []
        params: list[np.ndarray] = []
        for rank in range(self.sharding.world_size):
            for index, rows, name, held in done[rank][1]:
                if rows is not None and rows[0] == rows[1]:
                    continue  # this rank's shard of the tensor is empty
                held = held.reshape((len(lrs), *params0[index].shape)) if params0[index].ndim == 0 else held
                views.append(View(tensor=index, rank=rank, rows=rows, name=name))
                params.append(held)
        mutated = [m for _, _, m, _ in done.values() if m is not None]
        return Trajectory(params=params, views=views, mutated_at=min(mutated, default=None),
                          storage_dtypes=frozenset().union(*(d for _, _, _, d in done.values())))

    def _collect(self, label: str, limit_s: float | None, kinds: set[str]) -> dict[int, tuple]:
        """Waits until every rank has sent one message of ``kinds``, forwarding their beats; on a rank that
        raised, crashed or went silent for ``limit_s``, stops every rank and raises :class:`SubjectError`."""
        waiting = dict(enumerate(self.connections))
        steps = dict.fromkeys(waiting, 0)
        heard = dict.fromkeys(waiting, time.monotonic())
        received: dict[int, tuple] = {}
        limit = limit_s if limit_s is not None else STARTUP_S
        while waiting:
            silent = min(waiting, key=lambda r: (heard[r], steps[r]))  # the rank heard from longest ago
            remaining = heard[silent] + limit - time.monotonic()
            if remaining <= 0:
                self._fail(f"rank {silent} hung: no result within {limit:g} s at step {steps[silent]} of case "
                           f"{label} (--time-limit sets the limit)", steps[silent], hung=True)
            ready = wait(list(waiting.values()), timeout=min(remaining, KEEPALIVE_S))
            # This process supervises the ranks; the supervisor above it hears that it is alive.
            heartbeat(label, min(steps[r] for r in waiting))
            for connection in ready:
                rank = self.connections.index(connection)
                try:
                    message = connection.recv()
                except EOFError:
                    self.processes[rank].join(timeout=5)
                    self._fail(f"rank {rank} crashed with {_exit_name(self.processes[rank].exitcode)} at step "
                               f"{steps[rank]} of case {label}", steps[rank], crashed=True)
                heard[rank] = time.monotonic()
                if message[0] == "beat":
                    steps[rank] = message[1]
                elif message[0] == "raised":
                    _, text, step, hung = message
                    self._fail(f"rank {rank}: {text}", step, hung=hung)
                elif message[0] in kinds:
                    received[rank] = message
                    del waiting[rank]
        return received

    def _fail(self, text: str, step: int, *, hung: bool = False, crashed: bool = False) -> None:
        self.stop()
        raise SubjectError(text, step=step, hung=hung, crashed=crashed)


def _exit_name(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def _die_with_parent() -> None:
    """Linux: this process is killed when the one that started it dies, however it dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl
            os._exit(1)


def _rank_main(connection: Connection, rank: int, sharding: Sharding, origin: Origin, device: str | None,
               store: str) -> None:
    """One rank: joins the group, re-creates the subject, then drives each case it is sent."""
    _die_with_parent()
    import datetime
    import warnings

    import torch.distributed as dist

    from optspec import adapters
    from optspec.adapters.driver import set_heartbeat
    from optspec.adapters.torch.placement import placed

    warnings.simplefilter("ignore")  # the subject's warnings are reported once, by the process that certifies
    backend = "nccl" if (device or "").startswith("cuda") else "gloo"
    dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=sharding.world_size,
                            timeout=datetime.timedelta(seconds=STARTUP_S))
    subject = next(s for s in adapters.resolve_subject(origin.framework, origin.impl, origin.rule)
                   if s.name == origin.name)
    set_heartbeat(lambda label, step: connection.send(("beat", step)))
    connection.send(("ready",))
    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        _, params0, grads, lrs, hyper, dtype, case_device, restore_at, time_limit_s, label = message
        try:
            with placed(sharding.strategy) as built:
                got = adapters.drive(subject, params0, grads, lrs, hyper, dtype=dtype, device=case_device,
                                     restore_at=restore_at, time_limit_s=time_limit_s, label=label)
        except SubjectError as exc:
            connection.send(("raised", str(exc), exc.step, exc.hung))
            continue
        placement = built[-1]
        held = [(index, placement.rows(index), placement.describe(index), got.params[index])
                for index in range(len(params0))]
        connection.send(("done", held, got.mutated_at, got.storage_dtypes))
