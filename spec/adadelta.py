r"""Adadelta, with weight decay, in each framework's convention.

Zeiler, "ADADELTA: An Adaptive Learning Rate Method", arXiv 1212.5701,
Algorithm 1, with a learning rate on the step as torch, optax, Keras and MLX
all have.  Models ``torch/optim/adadelta.py`` (``_single_tensor_adadelta``) by
default and the other frameworks through :class:`AdadeltaConvention`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from optspec.spec import _validate
from optspec.spec._knobs import Knobs, resolve_in, weight_decayed

Array = Any


class AdadeltaState(NamedTuple):
    """Step count, mean square of the gradients :math:`v`, and of the steps :math:`u`."""

    step: int
    square_avg: Array
    acc_delta: Array


@dataclasses.dataclass(frozen=True)
class AdadeltaConvention(Knobs):
    r"""How an Adadelta step is computed, beyond its hyperparameters.

    Attributes:
      weight_decay: ``"l2"`` adds :math:`\lambda\theta_{t-1}` to the gradient
        (it enters both averages); ``"decoupled"`` first shrinks
        :math:`\theta_{t-1}` by :math:`\mathrm{lr}_t\lambda\theta_{t-1}`.

    Where ε sits (inside both roots) and what :math:`u` accumulates (the step
    before the learning rate scales it) are the same in every framework read.
    """

    KNOB_VALUES: ClassVar[Mapping[str, tuple]] = MappingProxyType({
        "weight_decay": ("l2", "decoupled"),
    })

    weight_decay: str = "l2"


#: Each framework's Adadelta, read from its source (torch 2.13, optax 0.2.8, Keras 3.15, MLX 0.32).  optax's and
#: MLX's follow ``torch``: optax's ``add_decayed_weights`` comes before ``scale_by_adadelta``
#: (``optax/_src/alias.py:217-221``), so its decay is L2, and ``transform.py:597-607`` computes the step from
#: the new :math:`v` and the previous :math:`u` as torch does; MLX's ``AdaDelta.apply_single``
#: (``mlx/optimizers/optimizers.py:465-472``) is the same step, without weight decay.
PRESETS: Mapping[str, AdadeltaConvention] = MappingProxyType({
    #: ``torch/optim/adadelta.py`` ``_single_tensor_adadelta``: ``:285`` ``grad.add(param, alpha=weight_decay)``;
    #: ``:292-298`` ``square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)``,
    #: ``delta = acc_delta.add(eps).sqrt_().div_(square_avg.add(eps).sqrt_()).mul_(grad)``,
    #: ``acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)``; ``:302`` ``param.add_(delta, alpha=-lr)``.
    "torch": AdadeltaConvention("l2"),
    #: ``keras/src/optimizers/adadelta.py:98-119``: the same step; ``weight_decay`` is ``base_optimizer.py:952-959``
    #: ``_apply_weight_decay``, ``variable - variable * wd * lr`` before the step (``:588-592``).
    "keras": AdadeltaConvention("decoupled"),
})


def resolve(convention: str | AdadeltaConvention | None) -> AdadeltaConvention:
    """The :class:`AdadeltaConvention` a preset name names (``torch`` for None), or ``convention`` itself."""
    return resolve_in("adadelta", PRESETS, convention)


DEFAULTS = {
    "lr": 1.0,
    "rho": 0.9,
    "eps": 1e-6,
    "weight_decay": 0.0,
    "maximize": False,
}


def validate(*, lr, rho, eps, weight_decay, maximize, convention=None) -> None:
    resolve(convention)
    _validate.nonnegative("lr", lr)
    _validate.unit_interval("rho", rho)
    _validate.nonnegative("eps", eps)
    _validate.nonnegative("weight_decay", weight_decay)


def init(xp: Any, param: Array) -> AdadeltaState:
    zeros = xp.zeros_like(param)
    return AdadeltaState(step=0, square_avg=zeros, acc_delta=zeros)


def step(
    xp: Any,
    param: Array,
    grad: Array,
    state: AdadeltaState,
    *,
    lr: float,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    maximize: bool = False,
    convention: str | AdadeltaConvention | None = None,
) -> tuple[Array, AdadeltaState]:
    r"""One Adadelta step, in the given convention (torch's by default).

    .. math::

        g_t &= \pm\nabla f(\theta_{t-1}) \;[+\,\lambda\theta_{t-1}]_{\text{l2}},
          \qquad \theta'_{t-1} = \theta_{t-1} \;[-\,\mathrm{lr}_t\lambda\theta_{t-1}]_{\text{decoupled}} \\
        v_t &= \rho v_{t-1} + (1-\rho) g_t^2, \qquad
          \delta_t = \frac{\sqrt{u_{t-1}+\epsilon}}{\sqrt{v_t+\epsilon}}\, g_t, \qquad
          u_t = \rho u_{t-1} + (1-\rho)\delta_t^2 \\
        \theta_t &= \theta'_{t-1} - \mathrm{lr}_t\,\delta_t

    with :math:`v_0 = u_0 = 0`.  Sources: :data:`PRESETS`.
    """
    conv = resolve(convention)
    g = -grad if maximize else grad
    param, g = weight_decayed(param, g, lr=lr, weight_decay=weight_decay, mode=conv.weight_decay)
    square_avg = rho * state.square_avg + (1 - rho) * (g * g)
    delta = xp.sqrt(state.acc_delta + eps) / xp.sqrt(square_avg + eps) * g
    acc_delta = rho * state.acc_delta + (1 - rho) * (delta * delta)
    return param - lr * delta, AdadeltaState(state.step + 1, square_avg, acc_delta)
