"""Keras 3: ``keras.optimizers`` and plugins, on whichever backend Keras runs.

Keras evaluates a schedule at ``iterations``, the 0-based count, so the
per-step learning rates are a table indexed by it.  The session is written
in ``keras.ops`` and ``keras.Variable`` alone, so the same code drives Keras
on tensorflow, jax and torch; the ``tensorflow`` framework drives its Keras
subjects through it too (:func:`keras_subjects`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from optspec import spec
from optspec.adapters.batching import Member, Packing, elementwise_hyper, lr_table
from optspec.adapters.driver import Session, SubjectInfo
from optspec.adapters.keras.translations import FIXED, TRANSLATIONS
from optspec.adapters.namespaces import asarray, to_numpy
from optspec.adapters.plugins import Capabilities
from optspec.adapters.translation import Translation

#: The built-in optimizers, by the rule each implements.
OPTIMIZERS: tuple[tuple[str, type], ...] = (
    ("sgd", keras.optimizers.SGD),
    ("adagrad", keras.optimizers.Adagrad),
    ("rmsprop", keras.optimizers.RMSprop),
    ("adam", keras.optimizers.Adam),
    ("adamw", keras.optimizers.AdamW),
    ("adamax", keras.optimizers.Adamax),
    ("nadam", keras.optimizers.Nadam),
    ("adadelta", keras.optimizers.Adadelta),
    ("lion", keras.optimizers.Lion),
)


class TableSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate of step ``iterations + 1``, looked up in a table (rows: one per step) of ``dtype``.

    ``dtype`` is the parameters' dtype, which the optimizer computes in: a
    built-in casts the rate to it (``ops.cast(learning_rate,
    variable.dtype)``), to the same value, but one that multiplies by the rate
    without a cast (Keras 3's Muon) fails on a rate of another dtype in
    TensorFlow ("cannot compute Mul ... double ... float").
    """

    def __init__(self, rates: Any, dtype: str = "float64") -> None:
        self.rates, self.dtype = np.asarray(rates, dtype=np.float64), dtype
        self.table = keras.ops.convert_to_tensor(self.rates, dtype=dtype)

    def __call__(self, step: Any) -> Any:
        index = keras.ops.minimum(keras.ops.cast(step, "int32"), len(self.rates) - 1)
        return keras.ops.take(self.table, index, axis=0)

    def get_config(self) -> dict[str, Any]:
        return {"rates": self.rates.tolist(), "dtype": self.dtype}


class KerasSession(Session):
    """A Keras optimizer over ``keras.Variable`` parameters, arrays of ``framework`` (keras or tensorflow).

    ``vectors`` (a batch) replaces hyperparameter attributes by per-element
    tensors before the optimizer is built, so one Keras update serves every
    member (:mod:`optspec.adapters.batching`).
    """

    def __init__(self, framework: str, cls: type, kwargs: Mapping[str, Any], lr_name: str,
                 params0: Sequence[np.ndarray], lrs: Any, dtype: str,
                 device: str | None, vectors: Mapping[str, np.ndarray] | None = None) -> None:
        self.framework, self.dtype, self.device = framework, dtype, device
        self.variables = [
            keras.Variable(asarray(framework, p, dtype, device), dtype=dtype, name=f"p{i}")
            for i, p in enumerate(params0)
        ]
        first = {name: float(v[0]) for name, v in (vectors or {}).items()}
        self.optimizer = cls(**{lr_name: TableSchedule(lrs if len(lrs) else [0.0], dtype)}, **kwargs, **first)
        for name, values in (vectors or {}).items():
            setattr(self.optimizer, name, asarray(framework, values, dtype, device))
        self.optimizer.build(self.variables)

    def feed(self, grads: Sequence[np.ndarray]) -> list[Any]:
        return [asarray(self.framework, g, self.dtype, self.device) for g in grads]

    def step(self, grads: list[Any], lr: float, index: int) -> None:
        self.optimizer.apply_gradients(zip(grads, self.variables))

    def params(self) -> list[np.ndarray]:
        return [to_numpy(v.value) for v in self.variables]

    def state(self) -> dict[str, np.ndarray]:
        return {v.path: to_numpy(v.value) for v in self.optimizer.variables}

    def storage(self) -> list[Any]:
        return [v.value for v in (*self.variables, *self.optimizer.variables)]

    def save(self) -> Any:
        return [to_numpy(v.value) for v in self.optimizer.variables]

    def restore(self, saved: Any) -> None:
        for variable, value in zip(self.optimizer.variables, saved):
            variable.assign(value)


class BatchedKerasSession(KerasSession):
    """Members packed elementwise into slot variables (:class:`adapters.batching.Packing`)."""

    def __init__(self, framework: str, cls: type, translation: Translation, members: Sequence[Member], steps: int,
                 dtype: str, device: str | None) -> None:
        self.packing = Packing([[p.shape for p in m.params0] for m in members])
        constants, vectors = elementwise_hyper(members, self.packing, translation.kwargs)
        super().__init__(framework, cls, constants, translation.lr,
                         self.packing.pack([p for m in members for p in m.params0]),
                         lr_table(members, self.packing, steps), dtype, device, vectors)

    def feed(self, grads: Sequence[np.ndarray]) -> list[Any]:
        return super().feed(self.packing.pack(grads))

    def params(self) -> list[np.ndarray]:
        return self.packing.unpack(super().params())


def _batches() -> bool:
    """Whether hyperparameters may be per-element tensors: Keras' torch kernels pass them to ``torch._foreach_*``
    as scalars (``keras/src/backend/torch/optimizers/torch_adam.py``), so on torch each member runs alone."""
    return keras.backend.backend() != "torch"


def keras_builder(framework: str, factory: Any, translation: Translation):
    """A ``SubjectInfo.build`` for the Keras optimizer ``factory`` under ``framework`` (keras, or tensorflow)."""

    def build(params0, hyper, lrs, dtype, device) -> KerasSession:
        return KerasSession(framework, factory, translation.kwargs(hyper), translation.lr, params0, lrs, dtype, device)

    return build


def keras_subject(framework: str, name: str, factory: Any, rule: str, *, supports: frozenset[str],
                  fixed: Mapping[str, Any] | None = None, not_tested: Mapping[str, str] | None = None) -> SubjectInfo:
    """The :class:`SubjectInfo` of a Keras optimizer ``factory`` under ``framework`` (keras, or tensorflow)."""
    translation = TRANSLATIONS[rule]

    def build_batch(members, steps, dtype, device) -> BatchedKerasSession:
        return BatchedKerasSession(framework, factory, translation, members, steps, dtype, device)

    return SubjectInfo(name=name, framework=framework, rule=rule,
                       convention=spec.get_rule(rule).preset_or_default("keras"),
                       supports=supports, fixed=dict(fixed or {}), not_tested=dict(not_tested or {}),
                       build=keras_builder(framework, factory, translation),
                       build_batch=build_batch if _batches() else None, holds_hyperparameters_in_dtype=True)


def keras_subjects(framework: str) -> tuple[SubjectInfo, ...]:
    """Keras' built-in optimizers as subjects of ``framework``."""
    return tuple(keras_subject(framework, f"keras.optimizers.{cls.__name__}", cls, rule,
                               supports=TRANSLATIONS[rule].supports, fixed=FIXED.get(rule))
                 for rule, cls in OPTIMIZERS)


def construct(factory: Any, kwargs: Mapping[str, Any]) -> Any:
    """``factory`` called as the certifier calls it, with ``kwargs``."""
    return factory(learning_rate=1e-3, **kwargs)


def keras_plugin(framework: str, name: str, factory: Any, rule: str, caps: Capabilities) -> SubjectInfo:
    """A plugin: ``factory(learning_rate=..., **knobs)`` returns a ``keras.optimizers.Optimizer``."""
    probe = construct(factory, {})
    if not isinstance(probe, keras.optimizers.Optimizer):
        raise TypeError(f"it returned a {type(probe).__name__}, not a keras.optimizers.Optimizer")
    return keras_subject(framework, name, factory, rule, supports=caps.supports, fixed=caps.fixed,
                         not_tested=caps.not_tested)


SUBJECTS = keras_subjects("keras")


def builder(factory: Any, translation: Translation):
    return keras_builder("keras", factory, translation)


def plugin(name: str, factory: Any, rule: str, caps: Capabilities) -> SubjectInfo:
    return keras_plugin("keras", name, factory, rule, caps)
