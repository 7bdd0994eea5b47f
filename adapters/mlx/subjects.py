"""MLX: ``mlx.optimizers`` and plugins.

An MLX optimizer is functional: ``apply_gradients(gradients, parameters)``
returns the new parameters, and its state is a tree of immutable arrays
(``optimizer.state``), with the step count and the learning rate in it.
The per-step learning rate is set through ``optimizer.learning_rate`` as a
float64 array: the setter would hold a Python float in float32, and the
rate is the certifier's input, not the kernel's arithmetic.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_map

from optspec import spec
from optspec.adapters.driver import Session, SubjectInfo
from optspec.adapters.namespaces import asarray, to_numpy
from optspec.adapters.plugins import Capabilities
from optspec.adapters.translation import Translation

LR = "learning_rate"

#: MLX's names (``mlx/optimizers/optimizers.py``).  Adam has no weight decay, RMSprop no momentum, no
#: ``centered`` and no weight decay, Adagrad no weight decay and no initial accumulator: those knobs are
#: not tested.  ``maximize`` and AMSGrad exist nowhere.
TRANSLATIONS: Mapping[str, Translation] = MappingProxyType(
    {
        "sgd": Translation.same_names("momentum", "dampening", "weight_decay", "nesterov", lr=LR),
        "adagrad": Translation.same_names("eps", lr=LR),
        "rmsprop": Translation.same_names("alpha", "eps", lr=LR),
        "adam": Translation.same_names("betas", "eps", lr=LR),
        "adamw": Translation.same_names("betas", "eps", "weight_decay", lr=LR),
        "adamax": Translation.same_names("betas", "eps", lr=LR),
        "adadelta": Translation.same_names("rho", "eps", lr=LR),
        "lion": Translation.same_names("betas", "weight_decay", lr=LR),
    }
)


class MlxSession(Session):
    """An ``mlx.optimizers.Optimizer`` over a dict of parameters ``{"p0": ..., "p1": ...}``."""

    def __init__(self, factory: Callable[..., Any], kwargs: Mapping[str, Any], params0: Sequence[np.ndarray],
                 lr0: float, dtype: str, device: str | None) -> None:
        self.dtype, self.device = dtype, device
        self.parameters = {f"p{i}": asarray("mlx", p, dtype, device) for i, p in enumerate(params0)}
        self.optimizer = factory(**{LR: lr0}, **kwargs)

    def feed(self, grads: Sequence[np.ndarray]) -> list[Any]:
        return [asarray("mlx", g, self.dtype, self.device) for g in grads]

    def step(self, grads: list[Any], lr: float, index: int) -> None:
        self.optimizer.learning_rate = mx.array(lr, dtype=mx.float64)
        gradients = {f"p{i}": g for i, g in enumerate(grads)}
        self.parameters = self.optimizer.apply_gradients(gradients, self.parameters)
        mx.eval(self.parameters, self.optimizer.state)

    def params(self) -> list[np.ndarray]:
        return [to_numpy(p) for p in self.parameters.values()]

    def _slots(self) -> dict[str, Any]:
        return {f"{key[1:]}.{name}": value for key, slots in self.optimizer.state.items() if key in self.parameters
                for name, value in slots.items() if isinstance(value, mx.array)}

    def state(self) -> dict[str, np.ndarray]:
        return {name: to_numpy(value) for name, value in self._slots().items()}

    def storage(self) -> list[Any]:
        return [*self.parameters.values(), *self._slots().values()]

    def save(self) -> Any:
        return tree_map(lambda leaf: leaf, self.optimizer.state)

    def restore(self, saved: Any) -> None:
        self.optimizer.state = tree_map(lambda leaf: leaf, saved)


def builder(factory: Callable[..., Any], translation: Translation, extra: Mapping[str, Any] | None = None):
    """A ``SubjectInfo.build`` for ``factory``, with ``extra`` constructor arguments."""

    def build(params0, hyper, lrs, dtype, device) -> MlxSession:
        kwargs = {**translation.kwargs(hyper), **(extra or {})}
        return MlxSession(factory, kwargs, params0, lrs[0] if lrs else 0.0, dtype, device)

    return build


def convention_of(factory: Callable[..., Any], rule: str) -> str | None:
    """The preset ``factory`` follows, from its signature: MLX's Adam and AdamW are BERT's rule unless
    ``bias_correction=True`` (``Adam.apply_single``); its SGD damps the first step and its Adamax corrects no
    bias (their ``mlx`` presets); the others follow their rule's default preset (torch's, the paper's Lion)."""
    if not spec.get_rule(rule).takes_convention:
        return None
    if rule in ("sgd", "adamax"):
        return "mlx"
    if rule not in ("adam", "adamw"):
        return spec.get_rule(rule).default_preset
    try:
        corrected = inspect.signature(factory).parameters["bias_correction"].default
    except (KeyError, TypeError, ValueError):
        return "torch"
    return "torch" if corrected is True else "bert"


def _subjects() -> tuple[SubjectInfo, ...]:
    found = []
    for rule, cls in (("sgd", optim.SGD), ("adagrad", optim.Adagrad), ("rmsprop", optim.RMSprop),
                      ("adam", optim.Adam), ("adamw", optim.AdamW), ("adamax", optim.Adamax),
                      ("adadelta", optim.AdaDelta), ("lion", optim.Lion)):
        variants: list[tuple[str, dict[str, Any]]] = [("", {})]
        if rule in ("adam", "adamw"):
            variants.append(("[bias_correction=True]", {"bias_correction": True}))
        for suffix, extra in variants:
            found.append(SubjectInfo(
                name=f"mlx.optimizers.{cls.__name__}{suffix}", framework="mlx", rule=rule,
                convention=convention_of(functools.partial(cls, **extra), rule),
                supports=TRANSLATIONS[rule].supports, build=builder(cls, TRANSLATIONS[rule], extra),
                holds_hyperparameters_in_dtype=True,
            ))
    return tuple(found)


SUBJECTS = _subjects()


def construct(factory: Any, kwargs: Mapping[str, Any]) -> Any:
    """``factory`` called as the certifier calls it, with ``kwargs``."""
    return factory(**{LR: 1e-3}, **kwargs)


def plugin(name: str, factory: Any, rule: str, caps: Capabilities) -> SubjectInfo:
    """A plugin: ``factory(learning_rate=..., **knobs)`` returns an ``mlx.optimizers.Optimizer``."""
    probe = construct(factory, {})
    if not isinstance(probe, optim.Optimizer):
        raise TypeError(f"it returned a {type(probe).__name__}, not an mlx.optimizers.Optimizer")
    return SubjectInfo(name=name, framework="mlx", rule=rule, convention=convention_of(factory, rule),
                       supports=caps.supports, fixed=caps.fixed, not_tested=caps.not_tested,
                       build=builder(factory, TRANSLATIONS[rule]), holds_hyperparameters_in_dtype=True)
