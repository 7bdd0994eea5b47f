r"""RAdam, Adam with its adaptive step rectified, with weight decay, in each framework's convention.

Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond",
arXiv 1908.03265, Algorithm 2: while the length :math:`\rho_t` of the
approximated simple moving average is at most a threshold, the step is
momentum SGD; beyond it, Adam's adaptive step scaled by the rectification
:math:`r_t`.  Models ``torch/optim/radam.py`` (``_single_tensor_radam``) by
default and the other frameworks through :class:`RAdamConvention`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from optspec.spec import _validate
from optspec.spec._knobs import Knobs, resolve_in, weight_decayed

Array = Any


class RAdamState(NamedTuple):
    """Step count, first moment :math:`m`, second moment :math:`v`."""

    step: int
    exp_avg: Array
    exp_avg_sq: Array


@dataclasses.dataclass(frozen=True)
class RAdamConvention(Knobs):
    r"""How a RAdam step is computed, beyond its hyperparameters.

    Attributes:
      epsilon: where ε sits in the adaptive step's denominator:
        ``"raw"``, :math:`\sqrt{1-\beta_2^t}/(\sqrt{v_t}+\epsilon)`, that is
        :math:`\sqrt{\hat v_t} + \epsilon/\sqrt{1-\beta_2^t}`; or
        ``"corrected"``, :math:`\sqrt{\hat v_t} + \epsilon`.
      weight_decay: ``"l2"`` adds :math:`\lambda\theta_{t-1}` to the gradient
        (it enters both moments); ``"decoupled"`` first shrinks
        :math:`\theta_{t-1}` by :math:`\mathrm{lr}_t\lambda\theta_{t-1}`.
    """

    KNOB_VALUES: ClassVar[Mapping[str, tuple]] = MappingProxyType({
        "epsilon": ("raw", "corrected"),
        "weight_decay": ("l2", "decoupled"),
    })

    epsilon: str = "raw"
    weight_decay: str = "l2"


#: Each framework's RAdam, read from its source (torch 2.13, optax 0.2.8).
PRESETS: Mapping[str, RAdamConvention] = MappingProxyType({
    #: ``torch/optim/radam.py`` ``_single_tensor_radam``: ``:304-308`` ``param.mul_(1 - lr * weight_decay)`` with
    #: ``decoupled_weight_decay=True``, else ``grad.add(param, alpha=weight_decay)``; ``:321-331`` ``rho_inf``,
    #: ``rho_t`` and ``rect``; ``:334-340`` ``(bias_correction2 ** 0.5) / exp_avg_sq.sqrt().add_(eps)``;
    #: ``:349-358`` ``if rho_t > 5.0`` the rectified step, else ``bias_corrected_exp_avg * lr``.
    "torch": RAdamConvention("raw", "l2"),
    #: ``optax/_src/transform.py:813-884`` ``scale_by_radam``: ``:842-849``
    #: ``r * m / (jnp.sqrt(v + eps_root) + eps)`` with ``v = bias_correction(nu, b2, count)``; ``:877-880``
    #: ``jnp.where(ro >= threshold, rectified, mu_hat)``.  No weight decay of its own (``alias.py:1922-1931``).
    "optax": RAdamConvention("corrected", "l2"),
})


def resolve(convention: str | RAdamConvention | None) -> RAdamConvention:
    """The :class:`RAdamConvention` a preset name names (``torch`` for None), or ``convention`` itself."""
    return resolve_in("radam", PRESETS, convention)


DEFAULTS = {
    "lr": 1e-3,
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "weight_decay": 0.0,
    "threshold": 5.0,
    "maximize": False,
}


def validate(*, lr, betas, eps, weight_decay, threshold, maximize, convention=None) -> None:
    resolve(convention)
    _validate.nonnegative("lr", lr)
    _validate.betas(betas)
    _validate.nonnegative("eps", eps)
    _validate.nonnegative("weight_decay", weight_decay)
    if not threshold >= 4:
        raise ValueError(f"threshold={threshold!r}: the rectification needs rho_t > 4, so the threshold must be "
                         f"at least 4 (optax's and torch's is 5)")


def init(xp: Any, param: Array) -> RAdamState:
    zeros = xp.zeros_like(param)
    return RAdamState(step=0, exp_avg=zeros, exp_avg_sq=zeros)


def rectification(t: int, beta2: float, threshold: float) -> float | None:
    r""":math:`r_t` of step :math:`t` (1-based), or None where :math:`\rho_t` is at most ``threshold`` (no
    adaptive step).

    .. math::

        \rho_\infty = \frac{2}{1-\beta_2} - 1, \qquad
        \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t}, \qquad
        r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}
    """
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
    if not rho_t > threshold:
        return None
    return math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))


def step(
    xp: Any,
    param: Array,
    grad: Array,
    state: RAdamState,
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    threshold: float = 5.0,
    maximize: bool = False,
    convention: str | RAdamConvention | None = None,
) -> tuple[Array, RAdamState]:
    r"""One RAdam step, in the given convention (torch's by default).

    .. math::

        g_t &= \pm\nabla f(\theta_{t-1}) \;[+\,\lambda\theta_{t-1}]_{\text{l2}},
          \qquad \theta'_{t-1} = \theta_{t-1} \;[-\,\mathrm{lr}_t\lambda\theta_{t-1}]_{\text{decoupled}} \\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \qquad
          \hat m_t = m_t/(1-\beta_1^t) \\
        \theta_t &= \theta'_{t-1} - \mathrm{lr}_t\, r_t\, \hat m_t / D_t \quad\text{where } \rho_t > \tau,
          \qquad \theta_t = \theta'_{t-1} - \mathrm{lr}_t\, \hat m_t \quad\text{otherwise} \\
        D_t &= \bigl(\sqrt{v_t} + \epsilon\bigr)/\sqrt{1-\beta_2^t} \text{ (raw) or }
          \sqrt{v_t/(1-\beta_2^t)} + \epsilon \text{ (corrected)}

    with :math:`\rho_t, r_t` as :func:`rectification` gives them, :math:`\tau`
    the ``threshold``, :math:`m_0 = v_0 = 0` and :math:`t` 1-based.  optax's
    test is :math:`\rho_t \ge \tau`; the two differ only where :math:`\rho_t`
    equals the threshold exactly.  Sources: :data:`PRESETS`.
    """
    conv = resolve(convention)
    beta1, beta2 = betas
    g = -grad if maximize else grad
    param, g = weight_decayed(param, g, lr=lr, weight_decay=weight_decay, mode=conv.weight_decay)
    t = state.step + 1
    exp_avg = beta1 * state.exp_avg + (1 - beta1) * g
    exp_avg_sq = beta2 * state.exp_avg_sq + (1 - beta2) * (g * g)
    m_hat = exp_avg / (1 - beta1**t)
    rect = rectification(t, beta2, threshold)
    if rect is None:
        param = param - lr * m_hat
    else:
        bias_correction2 = 1 - beta2**t
        if conv.epsilon == "raw":
            denominator = (xp.sqrt(exp_avg_sq) + eps) / bias_correction2**0.5
        else:
            denominator = xp.sqrt(exp_avg_sq / bias_correction2) + eps
        param = param - (lr * rect) * (m_hat / denominator)
    return param, RAdamState(t, exp_avg, exp_avg_sq)
