r"""Blockwise quantized state formats: a state field stored as 8- or 4-bit codes with one scale per block.

A kernel such as bitsandbytes' ``AdamW8bit`` keeps :math:`m` and :math:`v` as
8-bit codes.  The flattened tensor is cut into blocks of :math:`B` elements
(the last one may be shorter); each block :math:`k` stores its scale, the
absolute maximum :math:`a_k = \max_{i \in k} |x_i|` in float32, and each
element the index :math:`c_i` of the code :math:`q_c` of a sorted codebook
:math:`q_0 < \dots < q_{255}` nearest to its scaled value,

.. math::

    c_i = \arg\min_c \left|\frac{x_i}{a_k} - q_c\right|, \qquad
    \mathrm{fl}_Q(x)_i = q_{c_i}\, a_k .

Each step dequantizes the stored state, updates it in float32 and quantizes
the result again (bitsandbytes ``backends/cpu/ops.py``,
``_optimizer_update_8bit_blockwise_cpu``: "Dequantize states", the update,
"Re-quantize states").  A tensor of fewer than ``min_size`` elements keeps its
state in float32.

A :class:`BlockwiseFormat` is that storage; :data:`FORMATS` names the real
ones and :data:`PRESETS` the formats of a whole state, by the name
``--state-dtype`` takes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np


def _linspace_float32(start: float, end: float, steps: int) -> np.ndarray:
    """An even grid of ``steps`` points of ``[start, end]`` in float32: within one float32 ulp of
    ``torch.linspace(start, end, steps)``, which bitsandbytes' map is built with (the codebook a kernel
    holds is read from it, :mod:`optspec.conformance.quantized_state`)."""
    return np.linspace(start, end, steps).astype(np.float32)


def dynamic_map(signed: bool, max_exponent_bits: int = 7, total_bits: int = 8) -> tuple[float, ...]:
    r"""bitsandbytes' dynamic quantization map, sorted (``bitsandbytes/functional.py``,
    ``create_dynamic_map``, 0.50.2 lines 296-348).

    For each exponent :math:`i < 7`, the midpoints of an even grid of
    :math:`[0.1, 1]` scaled by :math:`10^{i-6}` (and negated where
    ``signed``), then :math:`0` and :math:`1`; the unsigned map, with one
    fraction bit more per exponent, is padded with zeros to 256 codes.
    """
    data: list[float] = []
    non_sign_bits = total_bits - 1
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    for i in range(max_exponent_bits):
        items = 2 ** (i + non_sign_bits - max_exponent_bits) + 1 if signed else \
            2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1
        boundaries = _linspace_float32(0.1, 1.0, items)
        means = (boundaries[:-1] + boundaries[1:]) / np.float32(2.0)
        scaled = (np.float32(10.0 ** (-(max_exponent_bits - 1) + i)) * means).astype(np.float32)
        data += scaled.tolist() + ((-scaled).tolist() if signed else [])
    if additional_items > 0:
        boundaries = _linspace_float32(0.1, 1.0, additional_items + 1)
        means = (boundaries[:-1] + boundaries[1:]) / np.float32(2.0)
        scaled = (np.float32(10.0 ** (-(max_exponent_bits - 1) + max_exponent_bits - 1)) * means)
        data += scaled.tolist() + ((-scaled).tolist() if signed else [])
    data += [0.0, 1.0]
    data += [0.0] * (2**total_bits - len(data))
    return tuple(sorted(data))


def e4m3fn_values() -> tuple[float, ...]:
    """Every finite value of float8 E4M3FN (``torch.float8_e4m3fn``: 4 exponent bits of bias 7, 3 mantissa
    bits, no infinities, largest 448), sorted, zero once."""
    values = {0.0}
    for exponent in range(16):
        for mantissa in range(8):
            if exponent == 15 and mantissa == 7:  # the NaN pattern
                continue
            value = (mantissa / 8) * 2.0**-6 if exponent == 0 else (1 + mantissa / 8) * 2.0 ** (exponent - 7)
            values |= {value, -value}
    return tuple(sorted(values))


@dataclasses.dataclass(frozen=True)
class BlockwiseFormat:
    r"""A state field stored as codes of ``codebook`` with a float32 scale per block.

    Each block's scale is :math:`s_k = \max(\max_{i \in k}|x_i|,\ \mathrm{floor}) / \max_c |q_c|`, each
    element's code the one nearest :math:`x_i / s_k`, and the value held :math:`q_{c_i} s_k`.

    Attributes:
      name: what ``--state-dtype FIELD=NAME`` calls it.
      codebook: the code values, sorted ascending, each once.
      bits: bits per code.
      block_size: elements per block, the last block of a tensor possibly shorter.
      min_size: a tensor of fewer elements keeps this state in float32.
      whole_blocks: whether a tensor whose size is not a multiple of the block keeps it in float32.
      scale_floor: the smallest absolute maximum a scale is taken from (0: none).
      source: where the format is defined (file and lines).
      boundaries: where the code chosen changes from each code to the next, where not the midpoints of the
        codebook (a kernel that rounds in a companded space, as FlashAdamW's).
      scale_dtype: the dtype the scale is held in beside the codes; the codes are computed with the float32
        scale before it is rounded to it (FlashAdamW's float16 scales).
      scale_root: the scale is held as its ``scale_root``-th root (FlashAdamW keeps its second moment's as
        the largest square root, 2); 1 for the scale itself.
    """

    name: str
    codebook: tuple[float, ...] = dataclasses.field(repr=False)
    bits: int
    block_size: int
    min_size: int
    whole_blocks: bool
    scale_floor: float
    source: str = dataclasses.field(repr=False)
    boundaries: tuple[float, ...] | None = dataclasses.field(default=None, repr=False)
    scale_dtype: str = "float32"
    scale_root: int = 1

    def describe(self) -> str:
        """``bitsandbytes-dynamic-signed: 8-bit codes, blocks of 256, float32 below 4096 elements``."""
        whole = f" or not a multiple of {self.block_size}" if self.whole_blocks else ""
        kept = f"float32 below {self.min_size} elements{whole}" if self.min_size > 1 else "every tensor quantized"
        scales = "" if self.scale_dtype == "float32" else f", scales in {self.scale_dtype}"
        return f"{self.name}: {self.bits}-bit codes, blocks of {self.block_size}{scales}, {kept}"

    def applies_to(self, size: int) -> bool:
        """Whether a tensor of ``size`` elements keeps this state quantized (else in float32)."""
        return size >= self.min_size and not (self.whole_blocks and size % self.block_size)

    def codes(self) -> np.ndarray:
        """The codebook as a float64 array."""
        return np.asarray(self.codebook, np.float64)

    def block_max(self, x: np.ndarray) -> np.ndarray:
        """Each block's largest element of ``x`` (non-negative, flattened; a last, partial block padded with 0),
        in float64."""
        flat = np.asarray(x, np.float64).reshape(-1)
        padded = np.zeros(-(-flat.size // self.block_size) * self.block_size)
        padded[:flat.size] = flat
        return padded.reshape(-1, self.block_size).max(axis=1, initial=0.0)

    def scales(self, x: np.ndarray) -> np.ndarray:
        """Each block's scale for ``x`` (flattened), in float32, as float64."""
        absmax = self.block_max(np.abs(np.asarray(x, np.float64)))
        largest = np.float32(np.abs(self.codes()).max())
        return (np.maximum(absmax, self.scale_floor).astype(np.float32) / largest).astype(np.float64)

    def quantize(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(codes, scales)``: each element's index of the code nearest ``x / scale`` of its block, and the
        blocks' scales (an all-zero block without a floor has scale 0 and the code nearest 0)."""
        flat = np.asarray(x, np.float64).reshape(-1)
        scales = self.scales(flat)
        scale = np.repeat(scales, self.block_size)[:flat.size]
        scaled = np.divide(flat, scale, out=np.zeros_like(flat), where=scale > 0)
        return self.nearest(scaled).reshape(np.shape(x)), scales

    def decision_boundaries(self) -> np.ndarray:
        """Where the code chosen changes from each code to the next: :attr:`boundaries`, or the midpoints."""
        if self.boundaries is not None:
            return np.asarray(self.boundaries, np.float64)
        codes = self.codes()
        return (codes[:-1] + codes[1:]) / 2

    def nearest(self, scaled: np.ndarray) -> np.ndarray:
        """The index of the code each of ``scaled`` rounds to (the lower one on a tie)."""
        return np.searchsorted(self.decision_boundaries(), scaled, side="left").astype(np.int64)

    def dequantize(self, codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """``codebook[codes] * scale`` of each element's block, rounded to float32 as the kernel's product is,
        in float64."""
        flat = np.asarray(codes).reshape(-1)
        scale = np.repeat(np.asarray(scales, np.float64), self.block_size)[:flat.size]
        value = (self.codes()[flat].astype(np.float32) * scale.astype(np.float32)).astype(np.float64)
        return value.reshape(np.shape(codes))

    def stored(self, x: np.ndarray) -> np.ndarray:
        """``x`` as the state holds it between steps: quantized and dequantized, or rounded to float32 in a
        tensor the format leaves in float32."""
        x = np.asarray(x, np.float64)
        if not self.applies_to(x.size):
            return x.astype(np.float32).astype(np.float64)
        return self.dequantize(*self.quantize(x))


_BNB = ("bitsandbytes 0.50.2: optim/optimizer.py Optimizer2State.init_state (lines 492-530: min_8bit_size=4096, "
        "blocksize 256, qmap1 'dynamic', qmap2 'udynamic'); functional.py create_dynamic_map (lines 296-348); "
        "backends/cpu/ops.py _optimizer_update_8bit_blockwise_cpu (lines 469-577: dequantize, update, re-quantize)")
_TORCHAO = ("torchao 0.18.0: optim/adam.py _AdamBase._new_buffer (lines 74-76: at least 4096 elements and a "
            "multiple of the block), single_param_adam (lines 180-205: the float32 update, then copy_ into the "
            "state); optim/quant_utils.py scale_tensor (absmax clipped at 1e-12) and quantize_*_with_qmap "
            "(the nearest code, a tie up)")


def _signed4() -> tuple[float, ...]:
    """torchao's 4-bit signed map: bitsandbytes' dynamic map with 3 exponent bits of 4, without padding
    (``optim/subclass_4bit.py`` ``get_qmap_signed``; ``quant_utils.py`` ``create_dynamic_map``)."""
    return tuple(sorted(set(dynamic_map(signed=True, max_exponent_bits=3, total_bits=4))))


def _softsign_codes() -> tuple[tuple[float, ...], tuple[float, ...]]:
    r"""FlashAdamW's first-moment codes and boundaries: int8 codes :math:`c` of :math:`y = 2x/(1+|x|)`
    rounded to :math:`c/127`, so that code :math:`c` holds :math:`x = y/(2-|y|)` and the boundary to the next
    lies at :math:`y = (c + 1/2)/127` (``quantize_state``/``dequantize_state`` with ``softsign``)."""
    def value(y: np.ndarray) -> np.ndarray:
        return y / (2 - np.abs(y))
    codes = np.arange(-127, 128) / 127
    return tuple(value(codes).tolist()), tuple(value((np.arange(-127, 127) + 0.5) / 127).tolist())


def _sqrt_codes() -> tuple[tuple[float, ...], tuple[float, ...]]:
    r"""FlashAdamW's second-moment codes and boundaries: uint8 codes :math:`c` of :math:`\sqrt{v}` over its
    group's largest, rounded to :math:`c/255`, so that code :math:`c` holds :math:`(c/255)^2` of the squared
    scale (``sqrt=True``)."""
    return (tuple(((np.arange(256) / 255) ** 2).tolist()), tuple((((np.arange(255) + 0.5) / 255) ** 2).tolist()))


_FLASH = ("pytorch-optimizer 4.1.0: pytorch_optimizer/optimizer/flash_adamw.py quantize_state and dequantize_state "
          "(lines 33-95: groups of GROUP_SIZE=32 zero-padded, scale absmax clamped at 1e-12 and stored in float16, "
          "codes rounded to nearest), _state_spec (lines 98-101: exp_avg signed with softsign, exp_avg_sq unsigned "
          "of its square root), step (lines 397-419: the float32 update, then store_state)")


#: The quantized formats by name.
FORMATS: Mapping[str, BlockwiseFormat] = MappingProxyType({fmt.name: fmt for fmt in (
    BlockwiseFormat("bitsandbytes-dynamic-signed", dynamic_map(signed=True), 8, 256, 4096, False, 0.0, _BNB),
    BlockwiseFormat("bitsandbytes-dynamic-unsigned", dynamic_map(signed=False), 8, 256, 4096, False, 0.0, _BNB),
    BlockwiseFormat("torchao-8bit-signed", dynamic_map(signed=True), 8, 256, 4096, True, 1e-12,
                    _TORCHAO + "; optim/subclass_8bit.py (create_dynamic_map(signed=True), block 256)"),
    BlockwiseFormat("torchao-8bit-unsigned", dynamic_map(signed=False), 8, 256, 4096, True, 1e-12,
                    _TORCHAO + "; optim/subclass_8bit.py (create_dynamic_map(signed=False), block 256)"),
    BlockwiseFormat("torchao-4bit-signed", _signed4(), 4, 128, 4096, True, 1e-12,
                    _TORCHAO + "; optim/subclass_4bit.py (create_dynamic_map(True, 3, 4), block 128)"),
    BlockwiseFormat("torchao-4bit-unsigned", tuple(np.linspace(0, 1, 17, dtype=np.float32)[1:].tolist()), 4, 128,
                    4096, True, 1e-12, _TORCHAO + "; optim/subclass_4bit.py (linspace(0, 1, 17)[1:]: linear, "
                    "no zero, block 128)"),
    BlockwiseFormat("torchao-fp8", e4m3fn_values(), 8, 256, 4096, True, 1e-12,
                    _TORCHAO + "; optim/subclass_fp8.py quantize_fp8 (scale = absmax / 448, codes cast to "
                    "float8_e4m3fn, block 256)"),
    BlockwiseFormat("flash-adamw-softsign", _softsign_codes()[0], 8, 32, 1, False, 1e-12, _FLASH,
                    boundaries=_softsign_codes()[1], scale_dtype="float16"),
    BlockwiseFormat("flash-adamw-sqrt", _sqrt_codes()[0], 8, 32, 1, False, 1e-24, _FLASH,
                    boundaries=_sqrt_codes()[1], scale_dtype="float16", scale_root=2),
)})

#: Whole state formats: each names the format of every field it quantizes.
PRESETS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "bitsandbytes-8bit": MappingProxyType({"exp_avg": "bitsandbytes-dynamic-signed",
                                           "exp_avg_sq": "bitsandbytes-dynamic-unsigned"}),
    "torchao-8bit": MappingProxyType({"exp_avg": "torchao-8bit-signed", "exp_avg_sq": "torchao-8bit-unsigned",
                                      "max_exp_avg_sq": "torchao-8bit-unsigned"}),
    "torchao-4bit": MappingProxyType({"exp_avg": "torchao-4bit-signed", "exp_avg_sq": "torchao-4bit-unsigned",
                                      "max_exp_avg_sq": "torchao-4bit-unsigned"}),
    "torchao-fp8": MappingProxyType({"exp_avg": "torchao-fp8", "exp_avg_sq": "torchao-fp8",
                                     "max_exp_avg_sq": "torchao-fp8"}),
    "flash-adamw": MappingProxyType({"exp_avg": "flash-adamw-softsign", "exp_avg_sq": "flash-adamw-sqrt"}),
})
