"""PaddlePaddle: ``paddle.optimizer`` and plugins (Paddle 3.3, dygraph).

An optimizer takes its parameters at construction (``parameters=[...]``).
Each step's gradient is set on ``param.grad`` (which replaces it) and the
learning rate through ``set_lr``, which Paddle keeps in a tensor of the
first parameter's dtype (``optimizer.py`` ``_create_global_learning_rate``),
as its kernels read it.  The state is ``state_dict()``, keyed
``<parameter name>_<slot>``; a fresh optimizer takes it through
``set_state_dict`` before its first step and holds it until its
accumulators are created.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import paddle

from optspec import spec
from optspec.adapters.driver import Session, SubjectInfo
from optspec.adapters.namespaces import asarray, dtype_name, to_numpy
from optspec.adapters.plugins import Capabilities
from optspec.adapters.translation import Translation

LR = "learning_rate"

#: Paddle's names (``paddle/optimizer/*.py``).  A float ``weight_decay`` is an L2 term added to the gradient
#: (``L2Decay``, ``optimizer.py`` ``_create_regularization_of_grad``) everywhere but AdamW, where it is the
#: decoupled coefficient.  SGD has no momentum (Momentum has, without dampening); Adagrad and RMSProp no
#: ``lr_decay`` and no initial mean square; nothing has ``maximize``.  RAdam has no ``threshold`` (5, fixed in its
#: kernel); Rprop calls ``step_sizes`` ``learning_rate_range`` and has no weight decay.  Rprop is translated for
#: plugins (``--impl paddle.optimizer:Rprop``) but is not a built-in: its constructor refuses an lr outside
#: ``learning_rate_range`` (``rprop.py:130-138``), which the certifier's cases need, and its step a 0-d parameter
#: (``rprop.py:217`` indexes ``param[0]``).
TRANSLATIONS: Mapping[str, Translation] = MappingProxyType(
    {
        "sgd": Translation({"weight_decay": "weight_decay"}, lr=LR),
        "adagrad": Translation({"eps": "epsilon", "initial_accumulator_value": "initial_accumulator_value",
                                "weight_decay": "weight_decay"}, lr=LR),
        "rmsprop": Translation({"alpha": "rho", "eps": "epsilon", "momentum": "momentum", "centered": "centered",
                                "weight_decay": "weight_decay"}, lr=LR),
        "adam": Translation({"betas": ("beta1", "beta2"), "eps": "epsilon", "weight_decay": "weight_decay",
                             "amsgrad": "amsgrad"}, lr=LR),
        "adamw": Translation({"betas": ("beta1", "beta2"), "eps": "epsilon", "weight_decay": "weight_decay",
                              "amsgrad": "amsgrad"}, lr=LR),
        "adamax": Translation({"betas": ("beta1", "beta2"), "eps": "epsilon", "weight_decay": "weight_decay"}, lr=LR),
        "nadam": Translation({"betas": ("beta1", "beta2"), "eps": "epsilon", "weight_decay": "weight_decay",
                              "momentum_decay": "momentum_decay"}, lr=LR),
        "radam": Translation({"betas": ("beta1", "beta2"), "eps": "epsilon", "weight_decay": "weight_decay"}, lr=LR),
        "adadelta": Translation({"rho": "rho", "eps": "epsilon", "weight_decay": "weight_decay"}, lr=LR),
        "rprop": Translation({"etas": "etas", "step_sizes": "learning_rate_range"}, lr=LR),
    }
)

#: ``paddle.optimizer.Momentum``: SGD with momentum (no dampening) and Nesterov.
MOMENTUM = Translation({"momentum": "momentum", "nesterov": "use_nesterov", "weight_decay": "weight_decay"}, lr=LR)


class PaddleSession(Session):
    """A ``paddle.optimizer.Optimizer`` over parameters created from NumPy arrays."""

    def __init__(self, factory: Callable[..., Any], kwargs: Mapping[str, Any], params0: Sequence[np.ndarray],
                 lr0: float, dtype: str, device: str | None) -> None:
        self.dtype, self.device = dtype, device
        self.parameters = []
        for p in params0:
            parameter = paddle.create_parameter(list(p.shape), dtype=dtype,
                                                default_initializer=paddle.nn.initializer.Constant(0.0))
            parameter.set_value(asarray("paddle", p, dtype, device))
            self.parameters.append(parameter)
        self.optimizer = factory(**{LR: lr0}, parameters=self.parameters, **kwargs)

    def feed(self, grads: Sequence[np.ndarray]) -> list[Any]:
        return [asarray("paddle", g, self.dtype, self.device) for g in grads]

    def step(self, grads: list[Any], lr: float, index: int) -> None:
        self.optimizer.set_lr(lr)
        for parameter, grad in zip(self.parameters, grads):
            parameter.grad = grad
        self.optimizer.step()

    def params(self) -> list[np.ndarray]:
        return [to_numpy(p) for p in self.parameters]

    def _slots(self) -> dict[tuple[int, str], Any]:
        """``(tensor index, slot)`` -> the live state tensor: ``state_dict()`` keys are ``<name>_<slot>``."""
        found = {}
        for key, value in self.optimizer.state_dict().items():
            for i, parameter in enumerate(self.parameters):
                if isinstance(value, paddle.Tensor) and key.startswith(f"{parameter.name}_"):
                    found[i, key[len(parameter.name) + 1:]] = value
        return found

    def state(self) -> dict[str, np.ndarray]:
        return {f"{i}.{slot}": to_numpy(value) for (i, slot), value in self._slots().items()}

    def storage(self) -> list[Any]:
        return [*self.parameters, *self._slots().values()]

    def save(self) -> Any:
        return {key: (dtype_name(value), to_numpy(value)) for key, value in self._slots().items()}

    def restore(self, saved: Any) -> None:
        self.optimizer.set_state_dict({
            f"{self.parameters[i].name}_{slot}": paddle.to_tensor(value).astype(dtype)
            for (i, slot), (dtype, value) in saved.items()})


def builder(factory: Callable[..., Any], translation: Translation, extra: Mapping[str, Any] | None = None):
    """A ``SubjectInfo.build`` for ``factory``, with ``extra`` constructor arguments."""

    def build(params0, hyper, lrs, dtype, device) -> PaddleSession:
        kwargs = {**translation.kwargs(hyper), **(extra or {})}
        return PaddleSession(factory, kwargs, params0, lrs[0] if lrs else 0.0, dtype, device)

    return build


#: The built-ins: (rule, class, its translation, the preset its source follows).  Every kernel is read from
#: ``paddle/phi/kernels/`` and checked against NumPy models of it bit for bit (``docs/DEVIATIONS.md``).
BUILTINS: tuple[tuple[str, Any, Translation, str], ...] = (
    # sgd.py: p - lr*g; a float weight_decay is L2 in the gradient.
    ("sgd", paddle.optimizer.SGD, TRANSLATIONS["sgd"], "torch"),
    # momentum.py, impl/momentum_kernel_impl.h: v = mu*v + g (so v_1 = g), p -= lr*v; nesterov p -= (g + mu*v)*lr.
    ("sgd", paddle.optimizer.Momentum, MOMENTUM, "torch"),
    # adagrad.py, cpu/adagrad_kernel.cc: m += g*g; p -= lr*g/(sqrt(m) + eps): eps outside the root.
    ("adagrad", paddle.optimizer.Adagrad, TRANSLATIONS["adagrad"], "torch"),
    # rmsprop.py, impl/rmsprop_kernel_impl.h: mom = mu*mom + lr*g/sqrt(ms + eps); p -= mom: eps inside the
    # root, lr inside the momentum trace, ms from 0, L2 decay: optax's knobs.
    ("rmsprop", paddle.optimizer.RMSProp, TRANSLATIONS["rmsprop"], "optax"),
    # adam.py, funcs/jit/refer/refer.h Adam: lr*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v) + eps*sqrt(1-b2^t)), which
    # is torch's eps placement; L2 decay; amsgrad the max of the raw v.
    ("adam", paddle.optimizer.Adam, TRANSLATIONS["adam"], "torch"),
    # adamw.py, refer.h AdamW: p - lr*coeff*p first, then Adam's step: torch's AdamW.
    ("adamw", paddle.optimizer.AdamW, TRANSLATIONS["adamw"], "torch"),
    # nadam.py:299, impl/nadam_kernel_impl.h:77-109: mu_t = b1*(1 - 0.5*(0.96^t)^psi) from a 0.96^t accumulator,
    # mu_product *= mu_t, m_hat = mu_{t+1}*m/(1 - P_t*mu_{t+1}) + (1 - mu_t)*g/(1 - P_t), p -= lr*m_hat/(sqrt(v/(1 -
    # b2^t)) + eps): Dozat's schedule with momentum_decay as psi; a float weight_decay is L2 in the gradient.
    ("nadam", paddle.optimizer.NAdam, TRANSLATIONS["nadam"], "torch"),
    # radam.py:295, impl/radam_kernel_impl.h:74-108: rho_t from an accumulator of t*b2^t/(1 - b2^t); where rho_t > 5,
    # p -= lr*m_hat*r_t*sqrt(1 - b2^t)/(sqrt(v) + eps) (eps raw), else p -= lr*m_hat; the threshold 5 is fixed; L2.
    ("radam", paddle.optimizer.RAdam, TRANSLATIONS["radam"], "torch"),
    # adadelta.py:218, impl/adadelta_kernel_impl.h:60-82: v = rho*v + (1 - rho)*g^2, d = -sqrt(u + eps)/sqrt(v + eps)*g,
    # p += lr*d, u = rho*u + (1 - rho)*d^2 from the previous u: torch's step; L2 decay.
    ("adadelta", paddle.optimizer.Adadelta, TRANSLATIONS["adadelta"], "torch"),
    # adamax.py:270, impl/adamax_kernel_impl.h:61-69: u = max(|g|, b2*u + eps), p -= lr/(1 - b1^t) * m/u: ε added
    # to the decayed norm, the spec's own preset for it (spec/adamax.py); L2 decay.
    ("adamax", paddle.optimizer.Adamax, TRANSLATIONS["adamax"], "paddle"),
)


SUBJECTS: tuple[SubjectInfo, ...] = tuple(
    SubjectInfo(name=f"paddle.optimizer.{cls.__name__}", framework="paddle", rule=rule,
                convention=convention if spec.get_rule(rule).takes_convention else None,
                supports=translation.supports, build=builder(cls, translation), holds_hyperparameters_in_dtype=True)
    for rule, cls, translation, convention in BUILTINS
)


def construct(factory: Any, kwargs: Mapping[str, Any]) -> Any:
    """``factory`` called as the certifier calls it, on a one-element parameter, with ``kwargs``."""
    parameter = paddle.create_parameter([1], dtype="float32")
    return factory(**{LR: 1e-3}, parameters=[parameter], **kwargs)


def plugin(name: str, factory: Any, rule: str, caps: Capabilities) -> SubjectInfo:
    """A plugin: ``factory(learning_rate=..., parameters=[...], **knobs)`` returns a ``paddle.optimizer.Optimizer``."""
    probe = construct(factory, {})
    if not isinstance(probe, paddle.optimizer.Optimizer):
        raise TypeError(f"it returned a {type(probe).__name__}, not a paddle.optimizer.Optimizer")
    return SubjectInfo(name=name, framework="paddle", rule=rule,
                       convention=spec.get_rule(rule).preset_or_default("torch"),
                       supports=caps.supports, fixed=caps.fixed, not_tested=caps.not_tested,
                       build=builder(factory, TRANSLATIONS[rule]), holds_hyperparameters_in_dtype=True)
