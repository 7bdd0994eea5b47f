"""The state a torch optimizer holds as blockwise codes, read as :class:`~optspec.adapters.driver.QuantizedState`.

Two layouts are read, each state in the order the optimizer's state holds it:

- bitsandbytes' (``bitsandbytes/optim/optimizer.py``, ``Optimizer2State.init_state``,
  0.50.2 lines 492-530): the n-th state of a parameter is ``state{n}``
  (``torch.uint8`` codes, the parameter's shape), ``qmap{n}`` (the codebook)
  and ``absmax{n}`` (one float32 scale per block).  Its block is 256 elements
  on every backend (``backends/cpu/ops.py``, ``_optimizer_update_8bit_blockwise_cpu``:
  ``blocksize = 256``); an optimizer of this layout that says otherwise keeps
  ``blocksize`` in its state, and one that does not is read with the smallest
  power of two that gives as many blocks as it holds scales.
- torchao's tensor subclasses (``torchao/optim/subclass_8bit.py``,
  ``subclass_4bit.py``, ``subclass_fp8.py``, 0.18.0), whose ``.dtype`` reads
  as the parameter's: ``codes`` (uint8 indices, two 4-bit ones per byte high
  nibble first, or ``float8_e4m3fn`` values), ``scale`` per block, ``qmap``
  (none for FP8: the codebook is every finite E4M3FN value), ``block_size``;
- pytorch-optimizer's ``FlashAdamW`` (``pytorch_optimizer/optimizer/flash_adamw.py``,
  4.1.0): ``{name}::quantized`` codes and ``{name}::scales`` (float16, one a
  group of ``GROUP_SIZE`` = 32), with no codebook held: an ``int8`` code
  :math:`c` holds :math:`y/(2-|y|)`, :math:`y = c/127`, of its scale (the
  first moment's softsign), a ``uint8`` one :math:`(c/255)^2` of its squared
  scale (the second moment, stored as its square root), as its
  ``dequantize_state`` computes them (lines 70-95).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from optspec.adapters.driver import QuantizedState
from optspec.adapters.namespaces import to_numpy

#: FlashAdamW's group (``GROUP_SIZE``, ``flash_adamw.py``): it holds no block size.
FLASH_ADAMW_GROUP = 32


def read(state: Mapping[str, Any]) -> list[QuantizedState]:
    """The quantized states of one parameter's ``state``, in order; ``[]`` where it holds none."""
    return (_bitsandbytes(state) or _flash_adamw(state)
            or [q for value in state.values() if (q := _torchao(value)) is not None])


def _flash_adamw(state: Mapping[str, Any]) -> list[QuantizedState]:
    held = []
    for key, codes in state.items():
        name, _, kind = str(key).partition("::")
        scales = state.get(f"{name}::scales")
        if kind != "quantized" or not (torch.is_tensor(codes) and torch.is_tensor(scales)):
            continue
        scale = scales.float()
        if codes.dtype == torch.int8:
            y = torch.arange(-127, 128, dtype=torch.float32) / 127.0
            codebook, index = y / (2.0 - y.abs()), codes.to(torch.int64) + 127
        else:
            codebook, index, scale = (torch.arange(256, dtype=torch.float32) / 255.0) ** 2, codes.to(torch.int64), scale**2
        held.append(QuantizedState(to_numpy(index), to_numpy(scale), to_numpy(codebook), FLASH_ADAMW_GROUP))
    return held


def _bitsandbytes(state: Mapping[str, Any]) -> list[QuantizedState]:
    held = []
    for position in range(1, 9):
        codes, scales, codebook = (state.get(f"{name}{position}") for name in ("state", "absmax", "qmap"))
        if not (torch.is_tensor(codes) and codes.dtype == torch.uint8 and torch.is_tensor(scales)
                and torch.is_tensor(codebook)):
            break
        block = int(state["blocksize"]) if "blocksize" in state else _block_size(codes.numel(), scales.numel())
        held.append(_indexed(to_numpy(codes), to_numpy(scales.float()), to_numpy(codebook.float()), block))
    return held


def _torchao(value: Any) -> QuantizedState | None:
    codes, scales = getattr(value, "codes", None), getattr(value, "scale", None)
    if not (torch.is_tensor(codes) and torch.is_tensor(scales) and hasattr(value, "block_size")):
        return None
    shape, block = tuple(value.shape), int(value.block_size)
    if codes.dtype == torch.float8_e4m3fn:
        patterns = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float().numpy()
        codebook = np.unique(patterns[np.isfinite(patterns)])
        indices = np.searchsorted(codebook, to_numpy(codes.float()).reshape(shape))
        return QuantizedState(indices, to_numpy(scales.float()), codebook, block)
    codes = codes.reshape(-1)
    if codes.numel() * 2 == value.numel():  # 4-bit: two codes a byte, the high nibble first
        codes = torch.stack([codes >> 4, codes & 0b1111], dim=-1)
    return _indexed(to_numpy(codes).reshape(shape), to_numpy(scales.float()), to_numpy(value.qmap.float()), block)


def _indexed(codes: np.ndarray, scales: np.ndarray, codebook: np.ndarray, block: int) -> QuantizedState:
    """The state with its codebook sorted and each value once, its codes indices into that; codes beyond the
    codebook are kept as they are, for the check to name (:func:`optspec.conformance.quantized_state.malformed`)."""
    codes = codes.astype(np.int64)
    if codes.size and codes.max() >= codebook.size:
        return QuantizedState(codes, scales, codebook, block)
    values, index = np.unique(codebook, return_inverse=True)
    return QuantizedState(index.reshape(-1)[codes], scales, values, block)


def _block_size(size: int, blocks: int) -> int:
    block = 1
    while -(-size // block) > blocks:
        block *= 2
    return block
