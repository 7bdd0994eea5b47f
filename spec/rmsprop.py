r"""RMSprop, plain or centered, with momentum and an L2 penalty.

Models ``torch/optim/rmsprop.py`` (``_single_tensor_rmsprop``); Hinton,
Coursera lecture 6e; Graves, arXiv 1308.0850 for the centered form.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from optspec.spec import _validate

Array = Any


class RMSpropState(NamedTuple):
    """Step count, mean square :math:`v`, mean gradient :math:`\\bar g`, momentum buffer :math:`b`."""

    step: int
    square_avg: Array
    grad_avg: Array
    momentum_buffer: Array


DEFAULTS = {
    "lr": 1e-2,
    "alpha": 0.99,
    "eps": 1e-8,
    "weight_decay": 0.0,
    "momentum": 0.0,
    "centered": False,
    "maximize": False,
}


def validate(*, lr, alpha, eps, weight_decay, momentum, centered, maximize) -> None:
    _validate.nonnegative("lr", lr)
    _validate.unit_interval("alpha", alpha)
    _validate.nonnegative("eps", eps)
    _validate.nonnegative("weight_decay", weight_decay)
    _validate.nonnegative("momentum", momentum)


def init(xp: Any, param: Array) -> RMSpropState:
    zeros = xp.zeros_like(param)
    return RMSpropState(step=0, square_avg=zeros, grad_avg=zeros, momentum_buffer=zeros)


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
) -> tuple[Array, RMSpropState]:
    r"""One RMSprop step (torch convention).

    .. math::

        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1} \\
        v_t &= \alpha v_{t-1} + (1-\alpha) g_t^2 \\
        \bar g_t &= \alpha \bar g_{t-1} + (1-\alpha) g_t \quad\text{(centered only)} \\
        \tilde v_t &= v_t - \bar g_t^2 \text{ if centered else } v_t \\
        b_t &= \mu b_{t-1} + g_t / (\sqrt{\tilde v_t} + \epsilon) \\
        \theta_t &= \theta_{t-1} - \mathrm{lr}_t\, b_t

    Without momentum (:math:`\mu = 0`) the buffer is skipped and
    :math:`\theta_t = \theta_{t-1} - \mathrm{lr}_t\, g_t / (\sqrt{\tilde v_t}+\epsilon)`.
    Note that :math:`\epsilon` is added outside the root, unlike Keras and optax.
    Source: ``torch/optim/rmsprop.py`` ``_single_tensor_rmsprop``.
    """
    g = -grad if maximize else grad
    if not _validate.known_zero(weight_decay):
        g = g + weight_decay * param
    square_avg = alpha * state.square_avg + (1 - alpha) * (g * g)
    grad_avg = state.grad_avg
    if centered:
        grad_avg = alpha * grad_avg + (1 - alpha) * g
        denom = xp.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        denom = xp.sqrt(square_avg) + eps
    buffer = state.momentum_buffer
    if momentum > 0:
        buffer = momentum * buffer + g / denom
        param = param - lr * buffer
    else:
        param = param - lr * (g / denom)
    return param, RMSpropState(state.step + 1, square_avg, grad_avg, buffer)
