"""optspec started once per rank by ``torchrun``, on one machine or across several.

On each machine the user runs the same command under ``torchrun``::

    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
        -m optspec certify --impl mypkg.optim:AdamW --sharding fsdp2

Every process ``torchrun`` starts is the *agent* of its rank (:func:`serve`):
when the coordinator asks, it spawns the rank's process (the one
:func:`optspec.adapters.ranks.process_main` runs, exactly as on one machine),
relays its messages, reports its death, and kills it when asked.  Rank 0's
process also runs the command itself, with :class:`Agents` as its ranks,
and its own agent in a thread: it certifies, prints the verdict, writes the
certificate, and its exit code is the verdict.  The others exit with the
same code when it ends.

Agents and coordinator speak through ``torchrun``'s own TCP store
(``MASTER_ADDR:MASTER_PORT``), in :mod:`optspec.adapters.wire`'s JSON, never
pickle.  The keys, all under ``optspec/``:

- ``to/{rank}/{n}``: the n-th command to that rank's agent: ``("start",
  generation, sharding, device, environment)``, a case, ``("stop",)`` or
  ``("end", exit code)``;
- ``from/{generation}/{rank}/{n}``: the n-th message of that rank's process
  in that start;
- ``group/{generation}/``: where that start's processes form their group,
  so that ranks started afresh after a failure meet only each other.

This module imports torch only when it is used: ``optspec`` asks
:func:`launched_world_size` before it imports any framework.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
from collections.abc import Callable
from typing import Any

#: Set by ``torchrun`` (and torch's elastic agent) in every process it starts.
_RUN_ID = "TORCHELASTIC_RUN_ID"
#: Seconds between a rank's heartbeats relayed to the coordinator (the others are dropped: one a step
#: would cost a store write a step).
BEAT_EVERY_S = 0.2
#: Seconds an agent waits for the next command before it asks the store again.
POLL_S = 0.01


def launched_world_size() -> int | None:
    """``torchrun``'s world size where it started this process, else None."""
    if _RUN_ID not in os.environ:
        return None
    return int(os.environ["WORLD_SIZE"])


def run(main: Callable[[], int]) -> int:
    """This process's part of a run that ``torchrun`` launched: rank 0 runs ``main`` (the command) with its
    own agent beside it; every other rank serves as an agent.  Every rank exits with ``main``'s exit code,
    the verdict: ``torchrun`` on a machine whose ranks all succeeded would otherwise wait for the others at
    its exit barrier, for five minutes, where rank 0 failed."""
    rank = int(os.environ["RANK"])
    if rank != 0:
        return serve(rank)
    # torch.distributed and the modules the agent uses, imported here before its thread starts: a module that two
    # threads import at once may reach one of them half-initialised (seen: "'torch._C' is not a package").
    from optspec.adapters import ranks, wire  # noqa: F401

    store = _store()
    agent = threading.Thread(target=serve, args=(0,), name="optspec agent of rank 0", daemon=True)
    agent.start()
    code = 1
    try:
        code = main()
        return code
    finally:
        for other in range(launched_world_size() or 1):
            _put(store, f"optspec/to/{other}", ("end", code))
        agent.join(timeout=30)


class Agents:
    """The coordinator's side: the ranks that ``torchrun`` started, with the methods of
    :class:`optspec.adapters.ranks.Spawned`."""

    def __init__(self, sharding: Any) -> None:
        self.sharding, self.count = sharding, launched_world_size() or 1
        self.store = _store()
        self.generation: int | None = None
        self.next: dict[int, int] = {}

    def start(self, device: str | None, environment: dict[str, str]) -> None:
        self.generation = self.store.add("optspec/generation", 1)
        self.next = dict.fromkeys(range(self.count), 1)
        self.send(("start", self.generation, self.sharding, device, environment))

    def send(self, message: tuple) -> None:
        for rank in range(self.count):
            _put(self.store, f"optspec/to/{rank}", message)

    def receive(self, timeout: float) -> list[tuple[int, tuple]]:
        from optspec.adapters import wire

        deadline = time.monotonic() + timeout
        while True:
            received = []
            for rank in range(self.count):
                while self.store.check([key := f"optspec/from/{self.generation}/{rank}/{self.next[rank]}"]):
                    received.append((rank, wire.decode(self.store.get(key))))
                    self.store.delete_key(key)
                    self.next[rank] += 1
            if received or time.monotonic() >= deadline:
                return received
            time.sleep(POLL_S)

    def stop(self) -> None:
        if self.generation is not None:
            self.send(("stop",))
            self.generation = None


def serve(rank: int) -> int:
    """The agent of ``rank``: runs the commands sent to it until ``("end", exit code)``, and returns that
    code."""
    from optspec.adapters import wire

    store = _store()
    process: _RankProcess | None = None
    count = 0
    while True:
        count += 1
        key = f"optspec/to/{rank}/{count}"
        while not store.check([key]):
            time.sleep(POLL_S)
        message = wire.decode(store.get(key))
        store.delete_key(key)
        if message[0] in ("start", "stop", "end") and process is not None:
            process.kill()
            process = None
        if message[0] == "start":
            _, generation, sharding, device, environment = message
            process = _RankProcess(rank, generation, sharding, device, environment)
        elif message[0] == "end":
            return message[1]
        elif message[0] == "case" and process is not None:
            process.connection.send(message)


class _RankProcess:
    """One rank's process, spawned by its agent, whose messages a thread relays to the coordinator."""

    def __init__(self, rank: int, generation: int, sharding: Any, device: str | None,
                 environment: dict[str, str]) -> None:
        from optspec.adapters.ranks import spawn_rank

        self.store = _store()  # the relay's own client: the agent reads its commands through another
        self.queue, self.killed = f"optspec/from/{generation}/{rank}", False
        address = f"tcp://{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}/optspec/group/{generation}/"
        self.process, self.connection = spawn_rank(rank, "torch", sharding, device, environment, address)
        self.relay = threading.Thread(target=self._relay, name=f"optspec relay of rank {rank}", daemon=True)
        self.relay.start()

    def _relay(self) -> None:
        """Sends on each message, but beats at most every :data:`BEAT_EVERY_S`: the latest one, before
        anything else is sent and whenever the process is silent that long, so that no step is lost."""
        beat: tuple | None = None
        while True:
            try:
                message = self.connection.recv() if self.connection.poll(BEAT_EVERY_S) else None
            except (EOFError, OSError):
                message = ("exited",)
            if message is not None and message[0] == "beat":
                beat = message
                continue
            if beat is not None:
                _put(self.store, self.queue, beat)
                beat = None
            if message is None:
                continue
            if message[0] == "exited":
                self.process.join(timeout=5)
                if not self.killed:
                    _put(self.store, self.queue, ("exited", self.process.exitcode))
                return
            _put(self.store, self.queue, message)

    def kill(self) -> None:
        self.killed = True
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.relay.join(timeout=5)
        self.connection.close()


def _store() -> Any:
    """A client of ``torchrun``'s TCP store."""
    import torch.distributed as dist

    return dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                         timeout=datetime.timedelta(seconds=300))


def _put(store: Any, queue: str, message: tuple) -> None:
    """Appends ``message`` to ``queue``: its n-th key, ``queue/count`` counting them."""
    from optspec.adapters import wire

    store.set(f"{queue}/{store.add(f'{queue}/count', 1)}", wire.encode(message))
