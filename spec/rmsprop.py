r"""RMSprop, plain or centered, with momentum and weight decay, in each framework's convention.

Models ``torch/optim/rmsprop.py`` (``_single_tensor_rmsprop``) by default and
the other frameworks through :class:`RMSpropConvention`; Hinton, Coursera
lecture 6e; Graves, arXiv 1308.0850 for the centered form.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from optspec.spec import _validate
from optspec.spec._knobs import Knobs, resolve_in, weight_decayed

Array = Any


class RMSpropState(NamedTuple):
    """Step count, mean square :math:`v`, mean gradient :math:`\\bar g`, momentum buffer :math:`b`."""

    step: int
    square_avg: Array
    grad_avg: Array
    momentum_buffer: Array


@dataclasses.dataclass(frozen=True)
class RMSpropConvention(Knobs):
    r"""How an RMSprop step is computed, beyond its hyperparameters.

    Attributes:
      epsilon: ``"outside"`` the root, :math:`\sqrt{\tilde v_t}+\epsilon`,
        or ``"inside"`` it, :math:`\sqrt{\tilde v_t+\epsilon}` (centered or not).
      lr_placement: where :math:`\mathrm{lr}_t` multiplies when there is
        momentum: ``"outside"`` the trace, :math:`b_t = \mu b_{t-1} + g_t/D_t`,
        :math:`\theta_t = \theta_{t-1} - \mathrm{lr}_t b_t`; ``"inside"`` it,
        :math:`b_t = \mu b_{t-1} + \mathrm{lr}_t g_t/D_t`,
        :math:`\theta_t = \theta_{t-1} - b_t`.  They agree while the learning
        rate is constant.
      initial_square_avg: :math:`v_0`, the same for every element (0.0, or
        1.0 as TF1 starts it).
      weight_decay: ``"l2"`` adds :math:`\lambda\theta_{t-1}` to the
        gradient (it enters both averages); ``"decoupled"`` first shrinks
        :math:`\theta_{t-1}` by :math:`\mathrm{lr}_t\lambda\theta_{t-1}`.
    """

    KNOB_VALUES: ClassVar[Mapping[str, tuple]] = MappingProxyType({
        "epsilon": ("outside", "inside"),
        "lr_placement": ("outside", "inside"),
        "initial_square_avg": (0.0, 1.0),
        "weight_decay": ("l2", "decoupled"),
    })

    epsilon: str = "outside"
    lr_placement: str = "outside"
    initial_square_avg: float = 0.0
    weight_decay: str = "l2"


#: Each framework's RMSprop, read from its source (torch 2.13, optax 0.2.8, Keras 3.15, TensorFlow 2.21).
PRESETS: Mapping[str, RMSpropConvention] = MappingProxyType({
    #: ``torch/optim/rmsprop.py`` ``_single_tensor_rmsprop``: ``grad.add(param, alpha=wd)``;
    #: ``avg = square_avg.sqrt().add_(eps)`` (centered: ``addcmul(grad_avg, grad_avg, value=-1).sqrt_()``,
    #: then ``add_(eps)``); ``buf.mul_(momentum).addcdiv_(grad, avg)``; ``param.add_(buf, alpha=-lr)``.
    "torch": RMSpropConvention("outside", "outside", 0.0, "l2"),
    #: ``optax/_src/alias.py`` ``rmsprop`` (``eps_in_sqrt=True``, ``initial_scale=0.0`` by default):
    #: ``chain(scale_by_rms or scale_by_stddev, scale_by_learning_rate, trace(momentum))``, so the trace
    #: holds ``-lr * g * rsqrt(nu + eps)``.  No weight decay of its own.
    "optax": RMSpropConvention("inside", "inside", 0.0, "l2"),
    #: ``keras/src/optimizers/rmsprop.py`` ``update_step``: ``increment = lr * g / sqrt(velocity + epsilon)``
    #: (centered: ``velocity - average_grad**2 + epsilon``); ``momentum = momentum * m + increment``;
    #: ``var -= momentum``; ``weight_decay`` is ``base_optimizer.py`` ``_apply_weight_decay``.
    "keras": RMSpropConvention("inside", "inside", 0.0, "decoupled"),
    #: ``tensorflow/python/training/rmsprop.py`` ``RMSPropOptimizer._create_slots``: the ``rms`` slot starts
    #: at ones; ``ApplyRMSProp``: ``mom = momentum * mom + lr * g / sqrt(ms + epsilon)``; ``var -= mom``.
    "tf1": RMSpropConvention("inside", "inside", 1.0, "l2"),
})


def resolve(convention: str | RMSpropConvention | None) -> RMSpropConvention:
    """The :class:`RMSpropConvention` a preset name names (``torch`` for None), or ``convention`` itself."""
    return resolve_in("rmsprop", PRESETS, convention)


DEFAULTS = {
    "lr": 1e-2,
    "alpha": 0.99,
    "eps": 1e-8,
    "weight_decay": 0.0,
    "momentum": 0.0,
    "centered": False,
    "maximize": False,
}


def validate(*, lr, alpha, eps, weight_decay, momentum, centered, maximize, convention=None) -> None:
    resolve(convention)
    _validate.nonnegative("lr", lr)
    _validate.unit_interval("alpha", alpha)
    _validate.nonnegative("eps", eps)
    _validate.nonnegative("weight_decay", weight_decay)
    _validate.nonnegative("momentum", momentum)


def init(xp: Any, param: Array, *, convention: str | RMSpropConvention | None = None) -> RMSpropState:
    zeros = xp.zeros_like(param)
    initial = resolve(convention).initial_square_avg
    square_avg = zeros if initial == 0 else zeros + initial
    return RMSpropState(step=0, square_avg=square_avg, grad_avg=zeros, momentum_buffer=zeros)


def step(
    xp: Any,
    param: Array,
    grad: Array,
    state: RMSpropState,
    *,
    lr: float,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    maximize: bool = False,
    convention: str | RMSpropConvention | None = None,
) -> tuple[Array, RMSpropState]:
    r"""One RMSprop step, in the given convention (torch's by default).

    .. math::

        g_t &= \pm\nabla f(\theta_{t-1}) \;[+\,\lambda\theta_{t-1}]_{\text{l2}},
          \qquad \theta'_{t-1} = \theta_{t-1} \;[-\,\mathrm{lr}_t\lambda\theta_{t-1}]_{\text{decoupled}} \\
        v_t &= \alpha v_{t-1} + (1-\alpha) g_t^2, \qquad v_0 = \text{initial\_square\_avg} \\
        \bar g_t &= \alpha \bar g_{t-1} + (1-\alpha) g_t \quad\text{(centered only)} \\
        \tilde v_t &= v_t - \bar g_t^2 \text{ if centered else } v_t \\
        D_t &= \sqrt{\tilde v_t} + \epsilon \text{ (outside) or } \sqrt{\tilde v_t + \epsilon} \text{ (inside)} \\
        b_t &= \mu b_{t-1} + g_t / D_t, \qquad \theta_t = \theta'_{t-1} - \mathrm{lr}_t\, b_t
          \quad\text{(lr outside)} \\
        b_t &= \mu b_{t-1} + \mathrm{lr}_t g_t / D_t, \qquad \theta_t = \theta'_{t-1} - b_t
          \quad\text{(lr inside)}

    Without momentum (:math:`\mu = 0`) the buffer is skipped and
    :math:`\theta_t = \theta'_{t-1} - \mathrm{lr}_t\, g_t / D_t`.  Sources: :data:`PRESETS`.
    """
    conv = resolve(convention)
    g = -grad if maximize else grad
    param, g = weight_decayed(param, g, lr=lr, weight_decay=weight_decay, mode=conv.weight_decay)
    square_avg = alpha * state.square_avg + (1 - alpha) * (g * g)
    grad_avg = state.grad_avg
    if centered:
        grad_avg = alpha * grad_avg + (1 - alpha) * g
        variance = square_avg - grad_avg * grad_avg
    else:
        variance = square_avg
    denom = xp.sqrt(variance + eps) if conv.epsilon == "inside" else xp.sqrt(variance) + eps
    buffer = state.momentum_buffer
    if momentum > 0:
        if conv.lr_placement == "inside":
            buffer = momentum * buffer + lr * g / denom
            param = param - buffer
        else:
            buffer = momentum * buffer + g / denom
            param = param - lr * buffer
    else:
        param = param - lr * (g / denom)
    return param, RMSpropState(state.step + 1, square_avg, grad_avg, buffer)
