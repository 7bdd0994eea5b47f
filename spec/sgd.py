r"""SGD with weight decay, momentum, dampening and Nesterov, in each framework's convention; and SGDW.

``sgd`` models ``torch/optim/sgd.py`` (``_single_tensor_sgd``) by default and
the other frameworks through :class:`SGDConvention`; ``sgdw`` is Algorithm 1
of Loshchilov & Hutter, arXiv 1711.05101.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from optspec.spec import _validate
from optspec.spec._knobs import Knobs, resolve_in, weight_decayed

Array = Any


class SGDState(NamedTuple):
    """The step count and the momentum buffer :math:`b` (zeros before step 1)."""

    step: int
    momentum_buffer: Array


@dataclasses.dataclass(frozen=True)
class SGDConvention(Knobs):
    r"""How an SGD step is computed, beyond its hyperparameters.

    Attributes:
      lr_placement: where :math:`\mathrm{lr}_t` multiplies.  ``"outside"``
        the momentum trace, :math:`b_t = \mu b_{t-1} + (1-\tau) g_t`,
        :math:`\theta_t = \theta_{t-1} - \mathrm{lr}_t d_t`; ``"inside"``
        it, :math:`b_t = \mu b_{t-1} + (1-\tau)\mathrm{lr}_t g_t`,
        :math:`\theta_t = \theta_{t-1} - d_t`.  The two agree while the
        learning rate is constant; under a schedule ``"outside"`` rescales
        all past momentum by the current rate.
      weight_decay: ``"l2"`` adds :math:`\lambda\theta_{t-1}` to the
        gradient (it enters the trace); ``"decoupled"`` first shrinks
        :math:`\theta_{t-1}` by :math:`\mathrm{lr}_t\lambda\theta_{t-1}` and
        steps with the gradient as given.
      first_buffer: the momentum buffer after the first step.
        ``"gradient"``: :math:`b_1 = s_1`, the gradient undamped (torch
        clones it); ``"damped"``: :math:`b_0 = 0`, so
        :math:`b_1 = (1-\tau) s_1`.  The two agree without dampening.
    """

    KNOB_VALUES: ClassVar[Mapping[str, tuple]] = MappingProxyType({
        "lr_placement": ("outside", "inside"),
        "weight_decay": ("l2", "decoupled"),
        "first_buffer": ("gradient", "damped"),
    })

    lr_placement: str = "outside"
    weight_decay: str = "l2"
    first_buffer: str = "gradient"


#: Each framework's SGD, read from its source (torch 2.13, optax 0.2.8, Keras 3.15, MLX 0.32).
PRESETS: Mapping[str, SGDConvention] = MappingProxyType({
    #: ``torch/optim/sgd.py`` ``_single_tensor_sgd``: ``grad.add(param, alpha=wd)``;
    #: ``buf.mul_(momentum).add_(grad, alpha=1 - dampening)`` (``buf = clone(grad)`` at the first
    #: step); ``param.add_(grad, alpha=-lr)``.
    "torch": SGDConvention("outside", "l2"),
    #: ``optax/_src/alias.py`` ``sgd``: ``chain(trace(momentum, nesterov), scale_by_learning_rate)``;
    #: ``trace`` (``optax/transforms/_accumulation.py``) keeps ``g + momentum * m``.  No weight decay of
    #: its own: ``add_decayed_weights`` chained before it is an L2 term.
    "optax": SGDConvention("outside", "l2"),
    #: ``keras/src/optimizers/sgd.py`` ``update_step``: ``m = momentum * m - lr * g``; ``var += m``
    #: (nesterov: ``var += momentum * m - lr * g``); ``weight_decay`` is
    #: ``base_optimizer.py`` ``_apply_weight_decay``: ``var -= var * wd * lr`` before the step.
    "keras": SGDConvention("inside", "decoupled"),
    #: ``mlx/optimizers/optimizers.py`` ``SGD.apply_single``: ``gradient + weight_decay * parameter``;
    #: ``v = momentum * state["v"]`` (zeros at first), ``v += (1 - dampening) * gradient``;
    #: ``parameter - learning_rate * v``.  The first step's buffer is damped.
    "mlx": SGDConvention("outside", "l2", "damped"),
})


def resolve(convention: str | SGDConvention | None) -> SGDConvention:
    """The :class:`SGDConvention` a preset name names (``torch`` for None), or ``convention`` itself."""
    return resolve_in("sgd", PRESETS, convention)


SGD_DEFAULTS = {
    "lr": 1e-3,
    "momentum": 0.0,
    "dampening": 0.0,
    "weight_decay": 0.0,
    "nesterov": False,
    "maximize": False,
}
SGDW_DEFAULTS = {"lr": 1e-3, "momentum": 0.0, "weight_decay": 0.0, "maximize": False}


def validate_sgd(*, lr, momentum, dampening, weight_decay, nesterov, maximize, convention=None) -> None:
    resolve(convention)
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
    convention: str | SGDConvention | None = None,
) -> tuple[Array, SGDState]:
    r"""One SGD step, in the given convention (torch's by default).

    .. math::

        g_t &= \pm\nabla f(\theta_{t-1}) \;[+\,\lambda\theta_{t-1}]_{\text{l2}},
          \qquad \theta'_{t-1} = \theta_{t-1} \;[-\,\mathrm{lr}_t\lambda\theta_{t-1}]_{\text{decoupled}} \\
        s_t &= g_t \text{ (lr outside) or } \mathrm{lr}_t g_t \text{ (lr inside)} \\
        b_t &= \begin{cases} s_t & t = 1 \text{ (first buffer: gradient)} \\
               \mu b_{t-1} + (1-\tau) s_t & \text{otherwise, } b_0 = 0\end{cases} \\
        d_t &= \begin{cases} s_t + \mu b_t & \text{nesterov} \\ b_t & \text{otherwise}\end{cases} \\
        \theta_t &= \theta'_{t-1} - \mathrm{lr}_t\, d_t \text{ (lr outside) or } \theta'_{t-1} - d_t \text{ (inside)}

    with :math:`\mu` = ``momentum``, :math:`\tau` = ``dampening``,
    :math:`\lambda` = ``weight_decay``; the sign is minus when ``maximize``.
    Without momentum, :math:`d_t = s_t`.  The first step's buffer is
    :math:`s_1`, without the factor :math:`1-\tau`, where torch clones the
    gradient; MLX starts from zero and damps it.  Without dampening the two
    are the same.  Sources: :data:`PRESETS`.
    """
    conv = resolve(convention)
    g = -grad if maximize else grad
    param, g = weight_decayed(param, g, lr=lr, weight_decay=weight_decay, mode=conv.weight_decay)
    inside = conv.lr_placement == "inside"
    if inside:
        g = lr * g
    buffer = state.momentum_buffer
    if momentum != 0:
        cloned = state.step == 0 and conv.first_buffer == "gradient"
        buffer = g if cloned else momentum * buffer + (1 - dampening) * g
        g = g + momentum * buffer if nesterov else buffer
    return (param - g if inside else param - lr * g), SGDState(state.step + 1, buffer)


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
