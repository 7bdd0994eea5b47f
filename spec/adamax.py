r"""Adamax, Adam under the infinity norm, with weight decay, in each framework's convention.

Kingma & Ba, arXiv 1412.6980, Algorithm 2: the second moment is replaced by
an exponentially weighted infinity norm :math:`u_t = \max(\beta_2 u_{t-1}, |g_t|)`,
which needs no bias correction.  Models ``torch/optim/adamax.py``
(``_single_tensor_adamax``) by default and the other frameworks through
:class:`AdamaxConvention`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from optspec.spec import _validate
from optspec.spec._knobs import Knobs, resolve_in, weight_decayed

Array = Any


class AdamaxState(NamedTuple):
    """Step count, first moment :math:`m`, and the infinity norm :math:`u`."""

    step: int
    exp_avg: Array
    exp_inf: Array


@dataclasses.dataclass(frozen=True)
class AdamaxConvention(Knobs):
    r"""How an Adamax step is computed, beyond its hyperparameters.

    Attributes:
      epsilon: ``"inside"`` the maximum, :math:`u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon)`,
        divided by as it is; ``"outside"`` it, :math:`u_t = \max(\beta_2 u_{t-1}, |g_t|)`,
        divided by as :math:`u_t + \epsilon`; or ``"decayed"``, added to the decayed norm,
        :math:`u_t = \max(\beta_2 u_{t-1} + \epsilon, |g_t|)`, divided by as it is.
      bias_correction: whether the step divides by :math:`1-\beta_1^t` (the
        infinity norm needs none, and no framework corrects it).
      weight_decay: ``"l2"`` adds :math:`\lambda\theta_{t-1}` to the gradient
        (it enters both moments); ``"decoupled"`` first shrinks
        :math:`\theta_{t-1}` by :math:`\mathrm{lr}_t\lambda\theta_{t-1}`.
    """

    KNOB_VALUES: ClassVar[Mapping[str, tuple]] = MappingProxyType({
        "epsilon": ("inside", "outside", "decayed"),
        "bias_correction": (True, False),
        "weight_decay": ("l2", "decoupled"),
    })

    epsilon: str = "inside"
    bias_correction: bool = True
    weight_decay: str = "l2"


#: Each framework's Adamax, read from its source (torch 2.13, optax 0.2.8, Keras 3.15, MLX 0.32, Paddle 3.3.1).
PRESETS: Mapping[str, AdamaxConvention] = MappingProxyType({
    #: ``torch/optim/adamax.py`` ``_single_tensor_adamax``: ``:268`` ``grad = grad.add(param,
    #: alpha=weight_decay)``; ``:277`` ``exp_avg.lerp_(grad, 1 - beta1)``; ``:280-284``
    #: ``torch.maximum(exp_inf.mul_(beta2), grad.abs().add_(eps), out=exp_inf)``; ``:300-303``
    #: ``clr = lr / (1 - beta1 ** step)``, ``param.addcdiv_(exp_avg, exp_inf, value=-clr)``.  The foreach form
    #: (``:390-420``) is the same.
    "torch": AdamaxConvention("inside", True, "l2"),
    #: ``optax/_src/transform.py:420`` ``scale_by_adamax``: ``nu = optax.tree.update_infinity_moment(updates,
    #: state.nu, b2, eps)``, which is ``jnp.maximum(jnp.abs(g) + eps, decay * t)``
    #: (``optax/tree_utils/_tree_math.py:410``); ``:422-423`` ``mu_hat / nu``.  ``optax/_src/alias.py:2461-2465``
    #: ``adamaxw``: ``add_decayed_weights(weight_decay, mask)`` before ``scale_by_learning_rate``, so the decay is
    #: :math:`\mathrm{lr}_t\lambda\theta_{t-1}` (``adamax`` has none).
    "optax": AdamaxConvention("inside", True, "decoupled"),
    #: ``keras/src/optimizers/adamax.py`` ``update_step``: ``:121`` ``ops.maximum(ops.multiply(self.beta_2, u),
    #: ops.abs(gradient))``; ``:123-128`` ``lr * m / ((1 - beta_1_power) * (u + epsilon))``; ``weight_decay``
    #: is ``base_optimizer.py:952-959`` ``_apply_weight_decay``, ``variable - variable * wd * lr``, before the
    #: step (``:588-594``).
    "keras": AdamaxConvention("outside", True, "decoupled"),
    #: ``mlx/optimizers/optimizers.py`` ``Adamax.apply_single``: ``v = mx.maximum(b2 * v, mx.abs(gradient))``;
    #: ``parameter - lr * m / (v + eps)``: no bias correction (nor weight decay).
    "mlx": AdamaxConvention("outside", False, "l2"),
    #: ``paddle/optimizer/adamax.py:61`` (its docstring) and ``paddle/phi/kernels/impl/adamax_kernel_impl.h:63-64``
    #: ``eigen_grad.abs().cwiseMax((beta2_ * eigen_inf_norm) + epsilon_)``; ``:65`` ``lr / (1 - beta1_pow)``;
    #: a float ``weight_decay`` is ``L2Decay`` (``optimizer.py:269-270``), added to the gradient by
    #: ``_create_regularization_of_grad`` (``optimizer.py:1743``).
    "paddle": AdamaxConvention("decayed", True, "l2"),
})


def resolve(convention: str | AdamaxConvention | None) -> AdamaxConvention:
    """The :class:`AdamaxConvention` a preset name names (``torch`` for None), or ``convention`` itself."""
    return resolve_in("adamax", PRESETS, convention)


DEFAULTS = {
    "lr": 2e-3,
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "weight_decay": 0.0,
    "maximize": False,
}


def validate(*, lr, betas, eps, weight_decay, maximize, convention=None) -> None:
    resolve(convention)
    _validate.nonnegative("lr", lr)
    _validate.betas(betas)
    _validate.nonnegative("eps", eps)
    _validate.nonnegative("weight_decay", weight_decay)


def init(xp: Any, param: Array) -> AdamaxState:
    zeros = xp.zeros_like(param)
    return AdamaxState(step=0, exp_avg=zeros, exp_inf=zeros)


def step(
    xp: Any,
    param: Array,
    grad: Array,
    state: AdamaxState,
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    maximize: bool = False,
    convention: str | AdamaxConvention | None = None,
) -> tuple[Array, AdamaxState]:
    r"""One Adamax step, in the given convention (torch's by default).

    .. math::

        g_t &= \pm\nabla f(\theta_{t-1}) \;[+\,\lambda\theta_{t-1}]_{\text{l2}},
          \qquad \theta'_{t-1} = \theta_{t-1} \;[-\,\mathrm{lr}_t\lambda\theta_{t-1}]_{\text{decoupled}} \\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t \\
        u_t &= \max(\beta_2 u_{t-1},\ |g_t| + \epsilon), \qquad
          \theta_t = \theta'_{t-1} - \frac{\mathrm{lr}_t}{1-\beta_1^t}\,\frac{m_t}{u_t}
          \quad\text{(ε inside)} \\
        u_t &= \max(\beta_2 u_{t-1},\ |g_t|), \qquad
          \theta_t = \theta'_{t-1} - \frac{\mathrm{lr}_t}{1-\beta_1^t}\,\frac{m_t}{u_t + \epsilon}
          \quad\text{(ε outside)} \\
        u_t &= \max(\beta_2 u_{t-1} + \epsilon,\ |g_t|), \qquad
          \theta_t = \theta'_{t-1} - \frac{\mathrm{lr}_t}{1-\beta_1^t}\,\frac{m_t}{u_t}
          \quad\text{(ε decayed)}

    with :math:`m_0 = u_0 = 0` and :math:`t` 1-based; without bias correction
    the factor :math:`1/(1-\beta_1^t)` is 1.  Sources: :data:`PRESETS`.
    """
    conv = resolve(convention)
    beta1, beta2 = betas
    g = -grad if maximize else grad
    param, g = weight_decayed(param, g, lr=lr, weight_decay=weight_decay, mode=conv.weight_decay)
    t = state.step + 1
    exp_avg = beta1 * state.exp_avg + (1 - beta1) * g
    if conv.epsilon == "inside":
        exp_inf = xp.maximum(beta2 * state.exp_inf, xp.abs(g) + eps)
        denominator = exp_inf
    elif conv.epsilon == "decayed":
        exp_inf = xp.maximum(beta2 * state.exp_inf + eps, xp.abs(g))
        denominator = exp_inf
    else:
        exp_inf = xp.maximum(beta2 * state.exp_inf, xp.abs(g))
        denominator = exp_inf + eps
    step_size = lr / (1 - beta1**t) if conv.bias_correction else lr
    param = param - step_size * (exp_avg / denominator)
    return param, AdamaxState(t, exp_avg, exp_inf)
