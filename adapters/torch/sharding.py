"""torch: a subject run across ranks by ``torch.distributed`` itself (the hooks :mod:`optspec.adapters.ranks` calls).

One process per rank joins one process group (gloo on CPU, NCCL where the
device is CUDA): through a file store when optspec spawns the ranks on this
machine, through ``torchrun``'s own TCP store when ``torchrun`` started
optspec once per rank, on one machine or several
(:mod:`optspec.adapters.torch.torchrun`).  The placement of each strategy is
:mod:`optspec.adapters.torch.placement`'s.
"""

from __future__ import annotations

import datetime
import os

import numpy as np
import torch
import torch.distributed as dist

from optspec.adapters import ranks
from optspec.adapters.driver import Sharding, Trajectory
from optspec.adapters.torch import torchrun
from optspec.adapters.torch.placement import PLACEMENTS, Placement


def processes(sharding: Sharding) -> int:
    return sharding.world_size


def environment(sharding: Sharding) -> dict[str, str]:
    return {}


def join(process: int, sharding: Sharding, device: str | None, store: str) -> None:
    backend = "nccl" if (device or "").startswith("cuda") else "gloo"
    timeout = datetime.timedelta(seconds=ranks.STARTUP_S)
    if backend == "nccl" and "LOCAL_RANK" in os.environ:  # torchrun's: one device per rank of a machine
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    if store.startswith("file://"):
        dist.init_process_group(backend, init_method=store, rank=process, world_size=sharding.world_size,
                                timeout=timeout)
        return
    address, _, prefix = store.removeprefix("tcp://").partition("/")
    host, _, port = address.rpartition(":")
    client = dist.TCPStore(host, int(port), is_master=False, timeout=timeout)
    dist.init_process_group(backend, store=dist.PrefixStore(prefix, client), rank=process,
                            world_size=sharding.world_size, timeout=timeout)


def placed(sharding: Sharding, load_from: str | None = None):
    return ranks.placing(lambda: PLACEMENTS[sharding.strategy](load_from))


def checkpoint(placement: Placement, directory: str) -> None:
    placement.checkpoint(directory)


def resume_world_size(sharding: Sharding) -> int | str:
    """4 ranks resume what 2 saved, 2 what any larger number saved; else why there is no resharded resume."""
    if not PLACEMENTS[sharding.strategy].reshardable:
        return ("torch.distributed.checkpoint does not read ZeroRedundancyOptimizer's state, so ZeRO-1 "
                "resumes only on the world size that saved it")
    if sharding.world_size == 1:
        return "the run on one rank is the unsharded baseline"
    if sharding.launcher is not None:
        return f"the world is the {sharding.world_size} ranks {sharding.launcher} started, which cannot change mid-run"
    return 4 if sharding.world_size == 2 else 2


def one_dtype(sharding: Sharding) -> str | None:
    """Why ``sharding``'s strategy takes parameters of one dtype only, or None."""
    if sharding.strategy == "zero1":
        # torch 2.13, torch/distributed/optim/zero_redundancy_optimizer.py:1481, _verify_same_dense_param_type
        return "ZeroRedundancyOptimizer refuses parameters of several dtypes (\"only supports using the same dense type for all parameters\")"
    return None


def held(placement: Placement, got: Trajectory) -> list[tuple[int, int, tuple[int, int] | None, str, np.ndarray]]:
    return [(index, placement.rank, placement.rows(index), placement.describe(index), trajectory)
            for index, trajectory in enumerate(got.params)]


def launched(sharding: Sharding) -> torchrun.Agents | None:
    """The ranks ``torchrun`` started, where it started this process (rank 0, which certifies)."""
    return torchrun.Agents(sharding) if sharding.launcher == "torchrun" else None
