"""JAX: a subject stepped under ``jit`` on parameters sharded over a mesh of devices, in a process of its own.

The hooks :mod:`optspec.adapters.ranks` calls.  One process holds the whole
mesh: ``world_size`` host devices on CPU (``--xla_force_host_platform_device_count``,
set before JAX is imported there), or the first ``world_size`` accelerators.
The ``mesh`` strategy places each tensor as a user's partitioning rules
would: its first dimension split over the mesh's one axis (``P("devices")``)
where the world size divides it, and replicated (``P()``) where it does not,
as JAX cannot split it unevenly.  The optimizer's state follows the
parameters' sharding through ``jit``.  What each device holds of a split
tensor is a :class:`~optspec.adapters.driver.View` of its rows; a replicated
tensor is one view.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from optspec.adapters import ranks
from optspec.adapters.driver import Sharding, Trajectory

_AXIS = "devices"


def processes(sharding: Sharding) -> int:
    return 1


def environment(sharding: Sharding) -> dict[str, str]:
    flags = os.environ.get("XLA_FLAGS", "")
    return {"XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={sharding.world_size}".strip()}


def join(process: int, sharding: Sharding, device: str | None, store: str) -> None:
    found = _devices(device)
    if len(found) < sharding.world_size:
        raise RuntimeError(f"{len(found)} {device or 'default'} devices, fewer than the world size "
                           f"{sharding.world_size}")


def _devices(device: str | None) -> list[Any]:
    return jax.devices() if device in (None, "cpu") else [d for d in jax.devices() if d.platform == device]


class MeshPlacement:
    """Tensors on a one-axis mesh of ``world_size`` devices."""

    def __init__(self, sharding: Sharding, device: str | None = None) -> None:
        self.world_size = sharding.world_size
        self.mesh = Mesh(np.array(_devices(device)[:self.world_size]), (_AXIS,))
        self.shapes: list[tuple[int, ...]] = []

    def split(self, shape: tuple[int, ...]) -> bool:
        """Whether a tensor of ``shape`` is split over the mesh (else replicated)."""
        return bool(shape) and shape[0] % self.world_size == 0

    def place(self, arrays: list[Any]) -> list[Any]:
        self.shapes = [tuple(a.shape) for a in arrays]
        return [jax.device_put(a, NamedSharding(self.mesh, PartitionSpec(_AXIS) if self.split(a.shape)
                                                 else PartitionSpec())) for a in arrays]

    def gradient(self, param: Any, full: Any) -> Any:
        return jax.device_put(full, param.sharding)


def placed(sharding: Sharding, load_from: str | None = None):
    return ranks.placing(lambda: MeshPlacement(sharding))


def resume_world_size(sharding: Sharding) -> None:
    """None: resuming a mesh's state on another mesh (Orbax) is not built yet."""
    return None


def held(placement: MeshPlacement, got: Trajectory) -> list[tuple[int, int, tuple[int, int] | None, str, np.ndarray]]:
    out = []
    for index, (shape, trajectory) in enumerate(zip(placement.shapes, got.params)):
        if not placement.split(shape):
            out.append((index, 0, None, f"tensor {index} (replicated on every device: {placement.world_size} "
                                         f"does not divide its shape {shape})", trajectory))
            continue
        rows = shape[0] // placement.world_size
        for device in range(placement.world_size):
            start, stop = device * rows, (device + 1) * rows
            out.append((index, device, (start, stop),
                        f"device {device}'s shard of tensor {index} (rows {start}:{stop} of {shape[0]})",
                        trajectory[:, start:stop]))
    return out
