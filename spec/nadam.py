r"""NAdam, Adam with Nesterov momentum, with weight decay, in each framework's convention.

Dozat, "Incorporating Nesterov Momentum into Adam" (ICLR 2016 workshop):
the step reads the first moment one step ahead, weighted by a momentum
schedule :math:`\mu_t`.  Models ``torch/optim/nadam.py``
(``_single_tensor_nadam``) by default and the other frameworks through
:class:`NAdamConvention`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from optspec.spec import _validate
from optspec.spec._knobs import Knobs, resolve_in, weight_decayed

Array = Any


class NAdamState(NamedTuple):
    """Step count, first moment :math:`m`, second moment :math:`v`, and the product :math:`P_t = \\prod_{i\\le t}\\mu_i`."""

    step: int
    exp_avg: Array
    exp_avg_sq: Array
    mu_product: Array


@dataclasses.dataclass(frozen=True)
class NAdamConvention(Knobs):
    r"""How a NAdam step is computed, beyond its hyperparameters.

    Attributes:
      momentum_schedule: ``"dozat"``, :math:`\mu_t = \beta_1(1 - \tfrac12\,0.96^{t\psi})`
        with :math:`\psi` the hyperparameter ``momentum_decay``; or
        ``"constant"``, :math:`\mu_t = \beta_1` (``momentum_decay`` unread).
      weight_decay: ``"l2"`` adds :math:`\lambda\theta_{t-1}` to the gradient
        (it enters both moments); ``"decoupled"`` first shrinks
        :math:`\theta_{t-1}` by :math:`\mathrm{lr}_t\lambda\theta_{t-1}`.
    """

    KNOB_VALUES: ClassVar[Mapping[str, tuple]] = MappingProxyType({
        "momentum_schedule": ("dozat", "constant"),
        "weight_decay": ("l2", "decoupled"),
    })

    momentum_schedule: str = "dozat"
    weight_decay: str = "l2"


#: Each framework's NAdam, read from its source (torch 2.13, optax 0.2.8, Keras 3.15).
PRESETS: Mapping[str, NAdamConvention] = MappingProxyType({
    #: ``torch/optim/nadam.py`` ``_single_tensor_nadam``: ``:339-344`` ``grad.add(param, alpha=weight_decay)``
    #: (``param.mul_(1 - lr * weight_decay)`` with ``decoupled_weight_decay=True``); ``:347-348``
    #: ``mu = beta1 * (1. - 0.5 * (0.96 ** (step * momentum_decay)))`` and ``mu_next`` at ``step + 1``;
    #: ``:351`` ``mu_product *= mu``; ``:356, 370`` ``denom = exp_avg_sq.div(bias_correction2).sqrt() + eps``;
    #: ``:371-378`` two ``addcdiv_``, ``-lr * (1 - mu) / (1 - mu_product)`` on the gradient and
    #: ``-lr * mu_next / (1 - mu_product * mu_next)`` on ``exp_avg``.
    "torch": NAdamConvention("dozat", "l2"),
    #: ``optax/_src/alias.py:532`` ``nadam = partial(adam, nesterov=True)``; ``optax/_src/transform.py:286-292``
    #: ``scale_by_adam``: ``b1 * bias_correction(mu, b1, count + 1) + (1 - b1) * bias_correction(g, b1, count)``,
    #: so :math:`\mu_t = \beta_1`; ``:300`` ``m / (sqrt(nu_hat + eps_root) + eps)``.  ``alias.py:730``
    #: ``nadamw = partial(adamw, nesterov=True)``: ``add_decayed_weights`` before ``scale_by_learning_rate``.
    "optax": NAdamConvention("constant", "decoupled"),
    #: ``keras/src/optimizers/nadam.py``: ``:97-105`` ``u_product *= beta_1 * (1 - 0.5 * 0.96 ** (iterations + 1))``;
    #: ``:116-120`` ``u_t``, ``u_t_1`` at ``iterations + 1`` and ``+ 2``: Dozat's schedule with
    #: :math:`\psi = 1`, which it does not expose (its subjects fix ``momentum_decay=1``); ``:135-146``
    #: ``m_hat = u_t_1 * m / (1 - u_product * u_t_1) + (1 - u_t) * g / (1 - u_product)``,
    #: ``variable -= lr * m_hat / (sqrt(v / (1 - beta_2 ** t)) + epsilon)``; ``weight_decay`` is
    #: ``base_optimizer.py:952-959`` ``_apply_weight_decay``, before the step.
    "keras": NAdamConvention("dozat", "decoupled"),
})


def resolve(convention: str | NAdamConvention | None) -> NAdamConvention:
    """The :class:`NAdamConvention` a preset name names (``torch`` for None), or ``convention`` itself."""
    return resolve_in("nadam", PRESETS, convention)


DEFAULTS = {
    "lr": 2e-3,
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "weight_decay": 0.0,
    "momentum_decay": 4e-3,
    "maximize": False,
}


def validate(*, lr, betas, eps, weight_decay, momentum_decay, maximize, convention=None) -> None:
    resolve(convention)
    _validate.nonnegative("lr", lr)
    _validate.betas(betas)
    _validate.nonnegative("eps", eps)
    _validate.nonnegative("weight_decay", weight_decay)
    _validate.nonnegative("momentum_decay", momentum_decay)


def init(xp: Any, param: Array) -> NAdamState:
    zeros = xp.zeros_like(param)
    return NAdamState(step=0, exp_avg=zeros, exp_avg_sq=zeros, mu_product=1.0)


def momentum(t: int, beta1: float, momentum_decay: float, schedule: str) -> float:
    r""":math:`\mu_t` of step :math:`t` (1-based) under ``schedule`` (:class:`NAdamConvention`)."""
    if schedule == "constant":
        return beta1
    return beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))


def step(
    xp: Any,
    param: Array,
    grad: Array,
    state: NAdamState,
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum_decay: float = 4e-3,
    maximize: bool = False,
    convention: str | NAdamConvention | None = None,
) -> tuple[Array, NAdamState]:
    r"""One NAdam step, in the given convention (torch's by default).

    .. math::

        g_t &= \pm\nabla f(\theta_{t-1}) \;[+\,\lambda\theta_{t-1}]_{\text{l2}},
          \qquad \theta'_{t-1} = \theta_{t-1} \;[-\,\mathrm{lr}_t\lambda\theta_{t-1}]_{\text{decoupled}} \\
        \mu_t &= \beta_1\bigl(1 - \tfrac12\,0.96^{t\psi}\bigr) \text{ (dozat) or } \beta_1 \text{ (constant)},
          \qquad P_t = P_{t-1}\,\mu_t,\ P_0 = 1 \\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
        D_t &= \sqrt{v_t/(1-\beta_2^t)} + \epsilon \\
        \theta_t &= \theta'_{t-1} - \mathrm{lr}_t\Bigl(\frac{1-\mu_t}{1-P_t}\,g_t
          + \frac{\mu_{t+1}}{1-P_t\,\mu_{t+1}}\,m_t\Bigr)\Big/D_t

    with :math:`m_0 = v_0 = 0`, :math:`t` 1-based and :math:`\psi` =
    ``momentum_decay``.  With the constant schedule :math:`P_t = \beta_1^t`, and
    the step is optax's Nesterov Adam.  Sources: :data:`PRESETS`.
    """
    conv = resolve(convention)
    beta1, beta2 = betas
    g = -grad if maximize else grad
    param, g = weight_decayed(param, g, lr=lr, weight_decay=weight_decay, mode=conv.weight_decay)
    t = state.step + 1
    mu = momentum(t, beta1, momentum_decay, conv.momentum_schedule)
    mu_next = momentum(t + 1, beta1, momentum_decay, conv.momentum_schedule)
    mu_product = state.mu_product * mu
    exp_avg = beta1 * state.exp_avg + (1 - beta1) * g
    exp_avg_sq = beta2 * state.exp_avg_sq + (1 - beta2) * (g * g)
    denominator = xp.sqrt(exp_avg_sq / (1 - beta2**t)) + eps
    numerator = ((1 - mu) / (1 - mu_product)) * g + (mu_next / (1 - mu_product * mu_next)) * exp_avg
    param = param - lr * (numerator / denominator)
    return param, NAdamState(t, exp_avg, exp_avg_sq, mu_product)
