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

The resharded-resume case saves the optimizer's state with Orbax
(``orbax.checkpoint.StandardCheckpointer``), as a JAX training job does, and
restores it onto a mesh of another size, each array with the sharding a
fresh state has there.
"""

from __future__ import annotations

import importlib.util
import json
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

    def __init__(self, sharding: Sharding, load_from: str | None = None, device: str | None = None) -> None:
        self.world_size, self.load_from = sharding.world_size, load_from
        self.mesh = Mesh(np.array(_devices(device)[:self.world_size]), (_AXIS,))
        self.shapes: list[tuple[int, ...]] = []
        self.session: Any = None

    def split(self, shape: tuple[int, ...]) -> bool:
        """Whether a tensor of ``shape`` is split over the mesh (else replicated)."""
        return bool(shape) and shape[0] % self.world_size == 0

    def place(self, arrays: list[Any]) -> list[Any]:
        self.shapes = [tuple(a.shape) for a in arrays]
        return [jax.device_put(a, NamedSharding(self.mesh, PartitionSpec(_AXIS) if self.split(a.shape)
                                                 else PartitionSpec())) for a in arrays]

    def gradient(self, param: Any, full: Any) -> Any:
        return jax.device_put(full, param.sharding)

    def resumed_after(self) -> int:
        """How many steps the state of the checkpoint in ``load_from`` has taken (0 without one): the
        learning-rate schedule, a function of optax's step count, goes on from there."""
        if self.load_from is None:
            return 0
        with open(_steps_path(self.load_from)) as handle:
            return int(json.load(handle))

    def initial_state(self, session: Any, fresh: Any) -> Any:
        """The optimizer state ``session`` starts from: ``fresh`` (its ``init`` on the placed parameters), or
        the state of the Orbax checkpoint in ``load_from`` restored with ``fresh``'s shapes and shardings."""
        self.session = session
        if self.load_from is None:
            return fresh
        import orbax.checkpoint as ocp

        with ocp.StandardCheckpointer() as checkpointer:
            return checkpointer.restore(_state_path(self.load_from), jax.tree.map(self._target, fresh))

    def _target(self, fresh: Any) -> jax.ShapeDtypeStruct:
        """What a leaf of the fresh state is restored as: its shape, dtype and sharding, replicated over the
        mesh where ``init`` left it on one device (a step count), as a training job restores it."""
        sharding = fresh.sharding if isinstance(fresh.sharding, NamedSharding) else NamedSharding(
            self.mesh, PartitionSpec())
        return jax.ShapeDtypeStruct(fresh.shape, fresh.dtype, sharding=sharding)


def placed(sharding: Sharding, load_from: str | None = None):
    return ranks.placing(lambda: MeshPlacement(sharding, load_from))


def checkpoint(placement: MeshPlacement, directory: str) -> None:
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(_state_path(directory), placement.session.opt_state)
    with open(_steps_path(directory), "w") as handle:
        json.dump(placement.session.steps_taken, handle)


def _state_path(directory: str) -> str:
    return os.path.join(os.path.abspath(directory), "optimizer_state")


def _steps_path(directory: str) -> str:
    return os.path.join(directory, "steps_taken.json")


def resume_world_size(sharding: Sharding) -> int | str:
    """4 devices resume what 2 saved, 2 what any larger mesh saved (as torch's strategies do)."""
    if sharding.world_size == 1:
        return "the run on one device is the unsharded baseline"
    if importlib.util.find_spec("orbax.checkpoint") is None:
        return "orbax-checkpoint, which saves and restores a mesh's state, is not installed"
    return 4 if sharding.world_size == 2 else 2


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


def launched(sharding: Sharding) -> None:
    """JAX's mesh is this machine's devices, in one process that optspec starts."""
    return None
