"""Where a rank's parameters live under each sharding strategy, and what that rank holds of them.

A :class:`~optspec.adapters.torch.subjects.TorchSession` built inside
:func:`optspec.adapters.ranks.placing` hands its parameters to the placement before it constructs
the optimizer, feeds each gradient through it and reads back only what this
rank holds.  The placement is the one users write:

- ``fsdp2``: the tensors become the parameters of one module, sharded by
  ``torch.distributed.fsdp.fully_shard`` (DTensors, ``Shard(0)``: rank ``r``
  holds rows :func:`shard_rows` of the first dimension, possibly none); a
  gradient is the rank's shard of the global one, as FSDP's reduce-scatter
  leaves it.  ``fully_shard`` refuses 0-d parameters, so a 0-d tensor is
  placed as one of shape ``(1,)`` (the rules are elementwise); it holds one
  dtype per group, so a model of several dtypes is sharded a module per dtype.
- ``zero1``: ``torch.distributed.optim.ZeroRedundancyOptimizer`` wraps the
  subject: each rank steps the parameters it owns and broadcasts them.
- ``ddp``: the tensors are the parameters of a module wrapped in
  ``DistributedDataParallel``; every rank steps all of them.

The gradient fed is the same global one on every rank (what an all-reduce or
reduce-scatter of equal per-rank gradients gives), so the expected
trajectory is the spec's on the whole tensor.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist


def shard_rows(length: int, world_size: int, rank: int) -> tuple[int, int]:
    """The rows ``[start, stop)`` of a first dimension of ``length`` that ``Shard(0)`` gives ``rank``:
    ``torch.chunk``'s split, chunks of ``ceil(length / world_size)``, the last ones short or empty."""
    chunk = -(-length // world_size)
    start = min(rank * chunk, length)
    return start, min(start + chunk, length)


class Placement:
    """Replicated tensors, each rank stepping all of them (the base of the others).

    ``load_from``: a directory of ``torch.distributed.checkpoint`` whose
    optimizer state the optimizer loads once constructed (a resume on
    another world size).
    """

    #: Whether ``torch.distributed.checkpoint`` saves its state to be loaded on another world size.
    reshardable = True

    def __init__(self, load_from: str | None = None) -> None:
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.load_from = load_from
        self.shapes: list[torch.Size] = []
        self.module: torch.nn.Module | None = None
        self.constructed: Any = None

    def place(self, tensors: list[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
        """The parameters the optimizer is given, made from this rank's copies of the global ``tensors``."""
        self.shapes = [t.shape for t in tensors]
        self.module = _module(tensors)
        return tensors

    def optimizer(self, factory: Callable[..., Any]) -> Callable[..., Any]:
        """The constructor to call in place of the subject's ``factory(params, lr=..., **kwargs)``."""

        def construct(params, lr, **kwargs):
            self.constructed = self.wrap(factory)(params, lr=lr, **kwargs)
            if self.load_from is not None:
                self.load(self.load_from)
            return self.constructed

        return construct

    def wrap(self, factory: Callable[..., Any]) -> Callable[..., Any]:
        return factory

    def checkpoint(self, directory: str) -> None:
        """Saves the optimizer's state with ``torch.distributed.checkpoint``, as a training job does."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        with _checkpoint_errors("save"):
            dcp.save(get_optimizer_state_dict(self.module, self.constructed), checkpoint_id=directory)

    def load(self, directory: str) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (
            get_optimizer_state_dict,
            set_optimizer_state_dict,
        )

        with _checkpoint_errors("load"):
            state = get_optimizer_state_dict(self.module, self.constructed)
            dcp.load(state, checkpoint_id=directory)
            set_optimizer_state_dict(self.module, self.constructed, optim_state_dict=state)

    def gradient(self, param: torch.nn.Parameter, full: torch.Tensor) -> torch.Tensor:
        """The gradient this rank's ``param`` receives when the global gradient is ``full``."""
        return full

    def whole(self, param: torch.Tensor) -> torch.Tensor:
        """All of ``param`` on every rank (a collective where it is sharded)."""
        return param

    def rows(self, index: int) -> tuple[int, int] | None:
        """The rows of tensor ``index`` this rank holds (None: all of it)."""
        return None

    def describe(self, index: int) -> str:
        """What this rank holds of tensor ``index``, in words for a failure."""
        return f"rank {self.rank}'s copy of tensor {index}"

    def save(self, optimizer: Any) -> Any:
        """The optimizer state as a user checkpoints it under this strategy."""
        return copy.deepcopy(optimizer.state_dict())


class DDP(Placement):
    """``ddp``: the parameters of a ``DistributedDataParallel`` module, every rank stepping all of them."""

    def place(self, tensors):
        from torch.nn.parallel import DistributedDataParallel

        super().place(tensors)
        self.module = DistributedDataParallel(self.module)
        return list(self.module.parameters())


class ZeRO1(Placement):
    """``zero1``: ``ZeroRedundancyOptimizer`` over the subject; each rank steps the tensors it owns."""

    reshardable = False

    def wrap(self, factory):
        from torch.distributed.optim import ZeroRedundancyOptimizer

        def construct(params, lr, **kwargs):
            self.params = list(params)
            return ZeroRedundancyOptimizer(self.params, optimizer_class=factory, lr=lr, **kwargs)

        return construct

    def owner(self, index):
        return self.constructed._param_to_rank[self.params[index]]

    def describe(self, index):
        return f"{super().describe(index)} (stepped by rank {self.owner(index)})"

    def save(self, optimizer):
        # as ZeroRedundancyOptimizer's docs ask: consolidated on one rank, saved there, loaded by every rank
        # (broadcast_object_list pickles: the state is this run's own, between its own ranks)
        optimizer.consolidate_state_dict(to=0)
        saved = [copy.deepcopy(optimizer.state_dict()) if self.rank == 0 else None]
        dist.broadcast_object_list(saved, src=0)
        return saved[0]


class FSDP2(Placement):
    """``fsdp2``: DTensor shards of ``fully_shard``, rows :func:`shard_rows` on each rank."""

    def place(self, tensors):
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        super().place(tensors)
        shardable = [t if t.ndim else torch.nn.Parameter(t.detach().reshape(1)) for t in tensors]
        mesh = init_device_mesh("cuda" if tensors and tensors[0].is_cuda else "cpu", (self.world_size,))
        by_dtype: dict[torch.dtype, list[int]] = {}
        for index, tensor in enumerate(shardable):
            by_dtype.setdefault(tensor.dtype, []).append(index)
        if len(by_dtype) <= 1:
            self.module = _module(shardable)
            fully_shard(self.module, mesh=mesh)
            return list(self.module.parameters())
        # fully_shard keeps one dtype per group of parameters: a model of several dtypes shards each
        # dtype's parameters as a module of its own, then the root, as a user shards layer by layer.
        self.module = torch.nn.Module()
        self.module.groups = torch.nn.ModuleList([_module([shardable[i] for i in indices])
                                                  for indices in by_dtype.values()])
        for group in self.module.groups:
            fully_shard(group, mesh=mesh)
        fully_shard(self.module, mesh=mesh)
        placed: list[torch.nn.Parameter] = list(shardable)
        for indices, group in zip(by_dtype.values(), self.module.groups):
            for index, param in zip(indices, group.params):
                placed[index] = param
        return placed

    def gradient(self, param, full):
        from torch.distributed.tensor import distribute_tensor

        full = full.reshape(param.shape)
        return distribute_tensor(full, param.device_mesh, param.placements, src_data_rank=None)

    def whole(self, param):
        return param.full_tensor()

    def rows(self, index):
        shape = self.shapes[index]
        return shard_rows(shape[0] if shape else 1, self.world_size, self.rank)

    def describe(self, index):
        shape = self.shapes[index]
        if not shape:
            return f"rank {self.rank}'s shard of tensor {index} (all of its one element)"
        start, stop = self.rows(index)
        return f"rank {self.rank}'s shard of tensor {index} (rows {start}:{stop} of {shape[0]})"


PLACEMENTS: dict[str, type[Placement]] = {"fsdp2": FSDP2, "zero1": ZeRO1, "ddp": DDP}


@contextlib.contextmanager
def _checkpoint_errors(action: str) -> Iterator[None]:
    """``torch.distributed.checkpoint``'s failure as an ordinary exception with its first cause: it raises a
    ``CheckpointException``, a ``BaseException`` that carries every rank's traceback."""
    from torch.distributed.checkpoint.api import CheckpointException

    try:
        yield
    except CheckpointException as exc:
        causes = [failure for failure in exc.failures.values()]
        cause = str(causes[0]).strip().splitlines()[-1] if causes else str(exc).splitlines()[0]
        raise RuntimeError(f"torch.distributed.checkpoint could not {action} the optimizer's state: {cause}") from None


def _module(tensors: Sequence[torch.nn.Parameter]) -> torch.nn.Module:
    module = torch.nn.Module()
    module.params = torch.nn.ParameterList(tensors)
    return module
