"""Many independent cases in one subject: the rules are elementwise, so elements can carry cases.

A *member* is one case: its parameter tensors, its hyperparameters and its
learning rates.  Two layouts put members side by side:

- **groups** (torch): each member is a param group with its own
  hyperparameters, which is torch's own API for exactly this;
- **elementwise** (optax, Keras): slot ``k`` is one flat tensor holding every
  member's ``k``-th tensor, and each hyperparameter becomes a vector with one
  value per element.  :class:`Packing` maps between members and slots.

Padding elements (parameter 0, gradient 0) keep every member's segment the
same width in each slot; every rule maps them to 0 and they are never read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Member:
    """One case inside a batch; ``hyper`` uses spec names, ``lrs`` has one rate per step."""

    params0: list[np.ndarray]
    hyper: Mapping[str, Any]
    lrs: Sequence[float]


def flag_names(hyper: Mapping[str, Any]) -> tuple[str, ...]:
    """The hyperparameters that select code paths (booleans): a batch must agree on them."""
    return tuple(sorted(k for k, v in hyper.items() if isinstance(v, bool)))


def batch_key(hyper: Mapping[str, Any]) -> tuple:
    """Members with equal keys can share one elementwise subject."""
    return (*((k, hyper[k]) for k in flag_names(hyper)), tuple(sorted(hyper)))


class Packing:
    """Members' tensors (member-major, flat list) <-> ``slots`` flat slot arrays of equal length."""

    def __init__(self, shapes: Sequence[Sequence[tuple[int, ...]]], align: int = 1) -> None:
        self.shapes = [list(s) for s in shapes]
        self.slots = max(len(s) for s in self.shapes)
        self.widths = [max(int(np.prod(t)) for t in s) for s in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(self.widths)]).astype(int)
        used = int(self.offsets[-1])
        self.length = max(align, -(-used // align) * align)

    def pack(self, tensors: Sequence[np.ndarray], dtype: Any = np.float64) -> list[np.ndarray]:
        """The member-major list of tensors as ``slots`` flat arrays (padding is 0)."""
        out = [np.zeros(self.length, dtype) for _ in range(self.slots)]
        it = iter(tensors)
        for member, shapes in enumerate(self.shapes):
            start = self.offsets[member]
            for k in range(len(shapes)):
                flat = np.asarray(next(it), dtype).reshape(-1)
                out[k][start:start + flat.size] = flat
        return out

    def unpack(self, slots: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The inverse of :meth:`pack`, without the padding."""
        out = []
        for member, shapes in enumerate(self.shapes):
            start = self.offsets[member]
            for k, shape in enumerate(shapes):
                out.append(np.asarray(slots[k][start:start + int(np.prod(shape))]).reshape(shape))
        return out

    def per_element(self, values: Sequence[float]) -> np.ndarray:
        """One value per member, spread over that member's elements (padding takes the last)."""
        out = np.repeat(np.asarray(values, np.float64), self.widths)
        return np.concatenate([out, np.full(self.length - out.size, out[-1] if out.size else 0.0)])


def elementwise_hyper(members: Sequence[Member], packing: Packing,
                      kwargs_of: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The framework's constructor arguments for a batch: flags as they are, numbers as vectors.

    ``kwargs_of(hyper)`` translates one member's spec hyperparameters to the
    framework's names (a :class:`~adapters.translation.Translation`'s ``kwargs``).
    Returns ``(constant arguments, per-element arguments)``.
    """
    translated = [kwargs_of(m.hyper) for m in members]
    constants, vectors = {}, {}
    for name, first in translated[0].items():
        if isinstance(first, bool) or first is None or not isinstance(first, (int, float)):
            constants[name] = first
        else:
            vectors[name] = packing.per_element([float(t[name]) for t in translated])
    return constants, vectors


def lr_table(members: Sequence[Member], packing: Packing, steps: int) -> np.ndarray:
    """``(steps, length)``: each element's learning rate at each step (0-based rows)."""
    rows = [packing.per_element([m.lrs[min(t, len(m.lrs) - 1)] for m in members]) for t in range(steps)]
    return np.stack(rows)
