r"""Adagrad with learning-rate decay and an L2 penalty.

Models ``torch/optim/adagrad.py`` (``_single_tensor_adagrad``); Duchi et al.,
JMLR 2011.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from optspec.spec import _validate

Array = Any


class AdagradState(NamedTuple):
    """The step count and the running sum of squared gradients :math:`s`."""

    step: int
    sum: Array


DEFAULTS = {
    "lr": 1e-2,
    "lr_decay": 0.0,
    "weight_decay": 0.0,
    "initial_accumulator_value": 0.0,
    "eps": 1e-10,
    "maximize": False,
}


def validate(*, lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize) -> None:
    _validate.nonnegative("lr", lr)
    _validate.nonnegative("lr_decay", lr_decay)
    _validate.nonnegative("weight_decay", weight_decay)
    _validate.nonnegative("initial_accumulator_value", initial_accumulator_value)
    _validate.nonnegative("eps", eps)


def init(xp: Any, param: Array, *, initial_accumulator_value: float = 0.0) -> AdagradState:
    return AdagradState(step=0, sum=xp.zeros_like(param) + initial_accumulator_value)


def step(
    xp: Any,
    param: Array,
    grad: Array,
    state: AdagradState,
    *,
    lr: float,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    maximize: bool = False,
) -> tuple[Array, AdagradState]:
    r"""One Adagrad step (torch convention).

    .. math::

        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1} \\
        \tilde\gamma_t &= \mathrm{lr}_t / (1 + (t-1)\,\delta) \\
        s_t &= s_{t-1} + g_t^2, \qquad s_0 = \text{initial\_accumulator\_value} \\
        \theta_t &= \theta_{t-1} - \tilde\gamma_t\, g_t / (\sqrt{s_t} + \epsilon)

    with :math:`\delta` = ``lr_decay``. ``initial_accumulator_value`` is used by
    :func:`init`; it is accepted here so that one set of hyperparameters serves
    both. Source: ``torch/optim/adagrad.py`` ``_single_tensor_adagrad``.
    """
    t = state.step + 1
    g = -grad if maximize else grad
    if not _validate.known_zero(weight_decay):
        g = g + weight_decay * param
    clr = lr / (1 + (t - 1) * lr_decay)
    total = state.sum + g * g
    return param - clr * (g / (xp.sqrt(total) + eps)), AdagradState(t, total)
