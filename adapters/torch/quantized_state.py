"""The state a torch optimizer holds as blockwise 8-bit codes, read as :class:`~optspec.adapters.driver.QuantizedState`.

The layout read is bitsandbytes' (``bitsandbytes/optim/optimizer.py``,
``Optimizer2State.init_state``, 0.50.2 lines 492-530): the n-th state of a
parameter is ``state{n}`` (``torch.uint8`` codes, the parameter's shape),
``qmap{n}`` (the 256-value codebook) and ``absmax{n}`` (one float32 scale per
block).  Its block is 256 elements on every backend
(``_optimizer_update_8bit_blockwise_cpu``: ``blocksize = 256``); an optimizer
of this layout that says otherwise keeps ``blocksize`` in its state, and one
that does not is read with the smallest power of two that gives as many
blocks as it holds scales.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from optspec.adapters.driver import QuantizedState
from optspec.adapters.namespaces import to_numpy


def read(state: Mapping[str, Any]) -> list[QuantizedState]:
    """The quantized states of one parameter's ``state``, in order (``state1``, ``state2``, ...); ``[]``
    where it holds none."""
    held = []
    for position in range(1, 9):
        codes, absmax, codebook = (state.get(f"{name}{position}") for name in ("state", "absmax", "qmap"))
        if not (torch.is_tensor(codes) and codes.dtype == torch.uint8 and torch.is_tensor(absmax)
                and torch.is_tensor(codebook)):
            break
        size, blocks = codes.numel(), absmax.numel()
        block = int(state["blocksize"]) if "blocksize" in state else _block_size(size, blocks)
        held.append(QuantizedState(codes=to_numpy(codes), absmax=to_numpy(absmax.float()),
                                   codebook=to_numpy(codebook.float()), block_size=block))
    return held


def _block_size(size: int, blocks: int) -> int:
    block = 1
    while -(-size // block) > blocks:
        block *= 2
    return block
