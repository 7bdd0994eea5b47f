"""The spec's ``step`` for NumPy, recorded once and replayed into preallocated buffers.

NumPy has no compiler, and each array operation of the eager spec allocates
a fresh full-size result.  :func:`record` calls the spec's pure ``step`` once
on :class:`Recorded` stand-ins and keeps the operations it performs, in
order, as a :class:`Plan`.  :meth:`Plan.run` replays them:

- an operation whose operands are all runtime scalars (the step count, the
  learning rate, the hyperparameters) is evaluated on Python numbers, by the
  same Python operator or namespace function the eager spec calls;
- an elementwise operation runs as its ufunc with ``out=``, into a buffer
  allocated once and handed to the next value as soon as its own value is
  dead; a final value is computed straight into the parameter or state array
  it replaces, once nothing reads that array's old value any more.

The ufuncs, their order and their dtypes are the eager spec's (Python scalars
stay Python scalars, so NumPy's weak scalar promotion is unchanged), so the
result equals the eager spec bit for bit.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Python operators on stand-ins, and the ufunc each is on arrays.
_OPERATORS: dict[str, tuple[Callable[..., Any], np.ufunc]] = {
    "add": (operator.add, np.add),
    "sub": (operator.sub, np.subtract),
    "mul": (operator.mul, np.multiply),
    "truediv": (operator.truediv, np.true_divide),
    "pow": (operator.pow, np.power),
}
#: Namespace functions the recorded rules call, all of them ufuncs.
_NAMESPACE_UFUNCS = {"sqrt": np.sqrt, "maximum": np.maximum}


@dataclass(frozen=True)
class _Op:
    call: Callable[..., Any]  # what the eager spec calls, applied to Python scalars
    ufunc: np.ufunc
    operands: tuple[Any, ...]  # a value index (int wrapped in _Ref) or a constant
    out: int
    is_array: bool


@dataclass(frozen=True)
class _Ref:
    index: int


@dataclass
class _Tape:
    ops: list[_Op] = field(default_factory=list)
    examples: list[Any] = field(default_factory=list)  # per value: a 1-element array or a Python scalar
    shapes: list[tuple[int, ...] | None] = field(default_factory=list)  # per value: None for scalars

    def value(self, example: Any, shape: tuple[int, ...] | None) -> Recorded:
        self.examples.append(example)
        self.shapes.append(shape)
        return Recorded(self, len(self.examples) - 1)

    def apply(self, call: Callable[..., Any], ufunc: np.ufunc, operands: Sequence[Any]) -> Recorded:
        refs = tuple(_Ref(o.index) if isinstance(o, Recorded) else o for o in operands)
        shapes = [self.shapes[r.index] for r in refs if isinstance(r, _Ref)]
        examples = [self.examples[r.index] if isinstance(r, _Ref) else r for r in refs]
        is_array = any(s is not None for s in shapes)
        try:
            with np.errstate(all="ignore"):
                example = ufunc(*examples) if is_array else call(*examples)
        except ArithmeticError:  # a scalar example out of range: only its Python type matters here
            example = math.nan
        shape = np.broadcast_shapes(*[s for s in shapes if s is not None]) if is_array else None
        result = self.value(example, shape)
        self.ops.append(_Op(call, ufunc, refs, result.index, is_array))
        return result


def _binary(name: str) -> tuple[Callable[..., Recorded], Callable[..., Recorded]]:
    """The operator :data:`_OPERATORS` ``[name]`` on a :class:`Recorded` and its reflected form."""

    def forward(self: Recorded, other: Any) -> Recorded:
        return self._apply(name, self, other)

    def reflected(self: Recorded, other: Any) -> Recorded:
        return self._apply(name, other, self)

    return forward, reflected


class Recorded:
    """A value of the step being recorded: an array or a runtime scalar."""

    __array_ufunc__ = None  # NumPy defers to the reflected operators below

    def __init__(self, tape: _Tape, index: int) -> None:
        self.tape, self.index = tape, index

    def _apply(self, name: str, *operands: Any) -> Recorded:
        call, ufunc = _OPERATORS[name]
        return self.tape.apply(call, ufunc, operands)

    __add__, __radd__ = _binary("add")
    __sub__, __rsub__ = _binary("sub")
    __mul__, __rmul__ = _binary("mul")
    __truediv__, __rtruediv__ = _binary("truediv")
    __pow__, __rpow__ = _binary("pow")

    def __neg__(self) -> Recorded:
        return self.tape.apply(operator.neg, np.negative, (self,))

    def __bool__(self) -> bool:
        raise TypeError("the spec branched on a runtime value; a recorded step cannot replay that branch")


class _RecordingNamespace:
    """The namespace functions of :data:`_NAMESPACE_UFUNCS`, recorded; anything else is refused."""

    def __init__(self, tape: _Tape) -> None:
        self._tape = tape

    def __getattr__(self, name: str) -> Callable[..., Recorded]:
        if name not in _NAMESPACE_UFUNCS:
            raise AttributeError(f"the NumPy plan does not record xp.{name}; add it to _NAMESPACE_UFUNCS")
        ufunc = _NAMESPACE_UFUNCS[name]
        return lambda *operands: self._tape.apply(ufunc, ufunc, operands)


#: Elements per block of a blocked replay: its few buffers stay in cache (measured best of 2**12..2**18 at 1e7 float32).
BLOCK = 65536


class Plan:
    """A recorded step: ``run(arrays, scalars)`` overwrites ``arrays`` with the step's outputs.

    When every array the elementwise operations touch has one shape, they
    run block by block over :data:`BLOCK` elements of the flattened arrays,
    so the intermediates stay in cache and only the inputs and outputs cross
    memory.  Each element's arithmetic is unchanged.
    """

    def __init__(self, tape: _Tape, inputs: Mapping[str, int], outputs: Mapping[str, int]) -> None:
        self._inputs = dict(inputs)
        self._scalar_ops = [op for op in tape.ops if not op.is_array]
        array_ops = [op for op in tape.ops if op.is_array]
        self._array_ops, self._copies, buffer_kinds = _assign_storage(tape, array_ops, inputs, outputs)
        touched = {index for op in array_ops for index in (op.out, *(o.index for o in op.operands
                                                                     if isinstance(o, _Ref)))}
        shapes = {tape.shapes[index] for index in touched} - {None}
        self.blocked = len(shapes) == 1
        self._shape = next(iter(shapes)) if self.blocked else None
        size = math.prod(self._shape) if self.blocked else 0
        self._block = max(1, min(BLOCK, size))  # as of recording: the buffers have this length
        self.buffers = [np.empty(self._block, dtype) if self.blocked else np.empty(shape, dtype)
                        for dtype, shape in buffer_kinds]

    def run(self, arrays: Mapping[str, np.ndarray], scalars: Mapping[str, Any]) -> None:
        env: dict[int, Any] = {index: scalars[name] for name, index in self._inputs.items() if name in scalars}
        for op in self._scalar_ops:
            env[op.out] = op.call(*(env[o.index] if isinstance(o, _Ref) else o for o in op.operands))
        # Arrays no elementwise operation reads or writes (say, an unused state) are passed whole.
        blocked = {name: a for name, a in arrays.items() if a.shape == self._shape}
        if self.blocked and all(a.flags.c_contiguous for a in blocked.values()):
            flat = {name: a.reshape(-1) for name, a in blocked.items()}
            size = math.prod(self._shape)
            for start in range(0, size, self._block):
                stop = min(start + self._block, size)
                self._run_arrays(env, {**arrays, **{name: a[start:stop] for name, a in flat.items()}},
                                 [b[:stop - start] for b in self.buffers])
        else:
            buffers = [np.empty(self._shape, b.dtype) for b in self.buffers] if self.blocked else self.buffers
            self._run_arrays(env, arrays, buffers)

    def _run_arrays(self, env: dict[int, Any], arrays: Mapping[str, np.ndarray], buffers: list[np.ndarray]
                    ) -> None:
        env.update({index: arrays[name] for name, index in self._inputs.items() if name in arrays})
        for op, target in self._array_ops:
            out = arrays[target] if isinstance(target, str) else buffers[target]
            op.ufunc(*(env[o.index] if isinstance(o, _Ref) else o for o in op.operands), out=out)
            env[op.out] = out
        for name, index in self._copies:
            np.copyto(arrays[name], env[index])


def record(step: Callable[..., Mapping[str, Any]], arrays: Mapping[str, np.ndarray],
           scalars: Mapping[str, Any]) -> Plan:
    """The :class:`Plan` of ``step(xp, **stand_ins)``, which returns ``{array name: new value}``.

    ``arrays`` and ``scalars`` are example inputs: their dtypes, shapes and
    Python types are those every replay must have.
    """
    tape = _Tape()
    stand_ins = {name: tape.value(np.asarray(a).reshape(-1)[:1].copy(), np.shape(a)) for name, a in arrays.items()}
    stand_ins |= {name: tape.value(value, None) for name, value in scalars.items()}
    results = step(_RecordingNamespace(tape), **stand_ins)
    outputs = {}
    for name, value in results.items():
        if not isinstance(value, Recorded) or tape.shapes[value.index] != np.shape(arrays[name]):
            raise TypeError(f"the recorded step's new {name} is not an array of the shape of {name}")
        dtype = np.asarray(tape.examples[value.index]).dtype
        if dtype != arrays[name].dtype:
            raise TypeError(f"the step makes {name} {dtype}, but it is {arrays[name].dtype} and is overwritten "
                            f"in place: pass every array in {arrays[name].dtype}")
        outputs[name] = value.index
    return Plan(tape, {name: v.index for name, v in stand_ins.items()}, outputs)


def _assign_storage(tape: _Tape, ops: list[_Op], inputs: Mapping[str, int], outputs: Mapping[str, int]
                    ) -> tuple[list[tuple[_Op, str | int]], list[tuple[str, int]], list[tuple[Any, Any]]]:
    """Where each elementwise result is written: an input array it replaces (by name) or a buffer (by index).

    A result goes straight into the array it replaces once that array's old
    value is read by no later operation (an elementwise ufunc may read and
    write the same element); otherwise into a buffer, reused once its value
    is dead, and it is copied into place at the end.
    """
    end = len(ops)
    last_use: dict[int, int] = {}
    for position, op in enumerate(ops):
        for operand in op.operands:
            if isinstance(operand, _Ref):
                last_use[operand.index] = position
    for index in outputs.values():
        last_use[index] = end
    input_names = {index: name for name, index in inputs.items()}
    destination = {index: name for name, index in outputs.items() if index not in input_names}
    storage: dict[int, str | int] = {}  # value -> input name or buffer index
    buffers: list[tuple[Any, tuple[int, ...]]] = []  # (dtype, shape) of each
    free: dict[tuple[Any, tuple[int, ...]], list[int]] = {}
    placed: list[tuple[_Op, str | int]] = []
    for position, op in enumerate(ops):
        for operand in {o.index for o in op.operands if isinstance(o, _Ref)}:
            held = storage.get(operand)
            if isinstance(held, int) and last_use[operand] == position:
                free.setdefault(_kind(tape, operand), []).append(held)
        name = destination.get(op.out)
        if name is not None and last_use.get(inputs[name], -1) <= position and name not in storage.values():
            target: str | int = name
        elif free.get(_kind(tape, op.out)):
            target = free[_kind(tape, op.out)].pop()
        else:
            buffers.append(_kind(tape, op.out))
            target = len(buffers) - 1
        storage[op.out] = target
        placed.append((op, target))
        if op.out not in last_use and isinstance(target, int):  # computed but never read
            free.setdefault(_kind(tape, op.out), []).append(target)
    copies = [(name, index) for name, index in outputs.items()
              if index not in input_names and storage[index] != name]
    if any(index in input_names and input_names[index] != name for name, index in outputs.items()):
        raise NotImplementedError("a recorded step that returns one input array as another is not supported")
    return placed, copies, buffers


def _kind(tape: _Tape, index: int) -> tuple[Any, tuple[int, ...]]:
    return np.asarray(tape.examples[index]).dtype, tape.shapes[index]
