"""torch: a subject run across ranks by ``torch.distributed`` itself (the hooks :mod:`optspec.adapters.ranks` calls).

One process per rank joins one process group (gloo on CPU, NCCL where the
device is CUDA) through a file store; the placement of each strategy is
:mod:`optspec.adapters.torch.placement`'s.
"""

from __future__ import annotations

import datetime

import numpy as np
import torch.distributed as dist

from optspec.adapters import ranks
from optspec.adapters.driver import Sharding, Trajectory
from optspec.adapters.torch.placement import PLACEMENTS, Placement


def processes(sharding: Sharding) -> int:
    return sharding.world_size


def environment(sharding: Sharding) -> dict[str, str]:
    return {}


def join(process: int, sharding: Sharding, device: str | None, store: str) -> None:
    backend = "nccl" if (device or "").startswith("cuda") else "gloo"
    dist.init_process_group(backend, init_method=f"file://{store}", rank=process, world_size=sharding.world_size,
                            timeout=datetime.timedelta(seconds=ranks.STARTUP_S))


def placed(sharding: Sharding, load_from: str | None = None):
    return ranks.placing(lambda: PLACEMENTS[sharding.strategy](load_from))


def checkpoint(placement: Placement, directory: str) -> None:
    placement.checkpoint(directory)


def resume_world_size(sharding: Sharding) -> int | None:
    """4 ranks resume what 2 saved, 2 what any larger number saved; one rank is the unsharded baseline,
    resumed on one rank only; ZeRO-1 has no resharding checkpoint (``torch.distributed.checkpoint`` does not
    read ``ZeroRedundancyOptimizer``'s state)."""
    if not PLACEMENTS[sharding.strategy].reshardable or sharding.world_size == 1:
        return None
    return 4 if sharding.world_size == 2 else 2


def held(placement: Placement, got: Trajectory) -> list[tuple[int, int, tuple[int, int] | None, str, np.ndarray]]:
    return [(index, placement.rank, placement.rows(index), placement.describe(index), trajectory)
            for index, trajectory in enumerate(got.params)]
