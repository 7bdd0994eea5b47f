r"""SGD with L2 weight decay, momentum, dampening and Nesterov; and SGDW.

``sgd`` models ``torch/optim/sgd.py`` (``_single_tensor_sgd``); ``sgdw`` is
Algorithm 1 of Loshchilov & Hutter, arXiv 1711.05101.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from optspec.spec import _validate

Array = Any


class SGDState(NamedTuple):
    """The step count and the momentum buffer :math:`b` (zeros before step 1)."""

    step: int
    momentum_buffer: Array


SGD_DEFAULTS = {
    "lr": 1e-3,
    "momentum": 0.0,
    "dampening": 0.0,
    "weight_decay": 0.0,
    "nesterov": False,
    "maximize": False,
}
SGDW_DEFAULTS = {"lr": 1e-3, "momentum": 0.0, "weight_decay": 0.0, "maximize": False}


def validate_sgd(*, lr, momentum, dampening, weight_decay, nesterov, maximize) -> None:
    _validate.nonnegative("lr", lr)
    _validate.nonnegative("momentum", momentum)
    _validate.nonnegative("dampening", dampening)
    _validate.nonnegative("weight_decay", weight_decay)
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(
            f"nesterov=True needs momentum > 0 and dampening = 0 "
            f"(got momentum={momentum}, dampening={dampening})"
        )


def validate_sgdw(*, lr, momentum, weight_decay, maximize) -> None:
    _validate.nonnegative("lr", lr)
    _validate.nonnegative("momentum", momentum)
    _validate.nonnegative("weight_decay", weight_decay)


def init(xp: Any, param: Array) -> SGDState:
    return SGDState(step=0, momentum_buffer=xp.zeros_like(param))


def sgd_step(
    xp: Any,
    param: Array,
    grad: Array,
    state: SGDState,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
) -> tuple[Array, SGDState]:
    r"""One step of SGD with an L2 penalty (torch convention).

    .. math::

        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1} \\
        b_t &= \begin{cases} g_t & t = 1 \\ \mu b_{t-1} + (1-\tau) g_t & t > 1\end{cases} \\
        d_t &= \begin{cases} g_t + \mu b_t & \text{nesterov} \\ b_t & \text{otherwise}\end{cases} \\
        \theta_t &= \theta_{t-1} - \mathrm{lr}_t\, d_t

    with :math:`\mu` = ``momentum``, :math:`\tau` = ``dampening``, :math:`\lambda` =
    ``weight_decay``; the sign is minus when ``maximize``. Without momentum,
    :math:`d_t = g_t`. Source: ``torch/optim/sgd.py`` ``_single_tensor_sgd``.
    """
    g = -grad if maximize else grad
    if not _validate.known_zero(weight_decay):
        g = g + weight_decay * param
    buffer = state.momentum_buffer
    if momentum != 0:
        buffer = g if state.step == 0 else momentum * buffer + (1 - dampening) * g
        g = g + momentum * buffer if nesterov else buffer
    return param - lr * g, SGDState(state.step + 1, buffer)


def sgdw_step(
    xp: Any,
    param: Array,
    grad: Array,
    state: SGDState,
    *,
    lr: float,
    initial_lr: float | None = None,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    maximize: bool = False,
    decay_lr: float | None = None,
) -> tuple[Array, SGDState]:
    r"""One step of SGDW, Algorithm 1 of Loshchilov & Hutter (arXiv 1711.05101).

    .. math::

        m_t &= \beta_1 m_{t-1} + \eta_t \alpha\, g_t \\
        \theta_t &= \theta_{t-1} - m_t - \eta_t \lambda\, \theta_{t-1}

    with :math:`\eta_t\alpha = \mathrm{lr}_t`, :math:`\eta_t =
    \mathrm{lr}_t/\mathrm{lr}_0` (``initial_lr``, the first step's lr by
    default), :math:`\beta_1` = ``momentum``, :math:`\lambda` = ``weight_decay``.
    The decay is not multiplied by :math:`\alpha`.  ``decay_lr`` is the
    learning rate :math:`\eta_t` of the decay reads in place of
    :math:`\mathrm{lr}_t` (default: :math:`\mathrm{lr}_t`); the certifier's
    diagnosis passes the previous step's to model a decay that lags the schedule.
    """
    g = -grad if maximize else grad
    eta = _schedule_multiplier(lr if decay_lr is None else decay_lr, initial_lr)
    buffer = momentum * state.momentum_buffer + lr * g
    return param - buffer - (eta * weight_decay) * param, SGDState(state.step + 1, buffer)


def _schedule_multiplier(lr: float, initial_lr: float | None) -> float:
    """:math:`\\eta_t = \\mathrm{lr}_t / \\mathrm{lr}_0`, 1 when there is no schedule."""
    if initial_lr is None:
        return 1.0
    if isinstance(initial_lr, (int, float)) and initial_lr <= 0:
        raise ValueError(
            f"initial_lr={initial_lr!r} is invalid: the schedule multiplier "
            "lr_t/lr_0 needs lr_0 > 0"
        )
    return lr / initial_lr
