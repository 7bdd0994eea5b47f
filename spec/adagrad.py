r"""Adagrad with learning-rate decay and weight decay, in each framework's convention.

Models ``torch/optim/adagrad.py`` (``_single_tensor_adagrad``) by default and
the other frameworks through :class:`AdagradConvention`; Duchi et al., JMLR 2011.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from optspec.spec import _validate
from optspec.spec._knobs import Knobs, resolve_in, weight_decayed

Array = Any


class AdagradState(NamedTuple):
    """The step count and the running sum of squared gradients :math:`s`."""

    step: int
    sum: Array


@dataclasses.dataclass(frozen=True)
class AdagradConvention(Knobs):
    r"""How an Adagrad step is computed, beyond its hyperparameters.

    Attributes:
      epsilon: ``"outside"`` the root, :math:`g_t/(\sqrt{s_t}+\epsilon)`, or
        ``"inside"`` it, :math:`g_t/\sqrt{s_t+\epsilon}`.
      zero_guard: whether an element whose sum :math:`s_t` is 0 gets a zero
        update (instead of :math:`0/\epsilon`, or NaN where :math:`\epsilon = 0`).
      weight_decay: ``"l2"`` adds :math:`\lambda\theta_{t-1}` to the
        gradient (it enters the sum); ``"decoupled"`` first shrinks
        :math:`\theta_{t-1}` by :math:`\mathrm{lr}_t\lambda\theta_{t-1}`.

    The initial sum is the hyperparameter ``initial_accumulator_value``, whose
    default differs (torch 0, optax and Keras 0.1), not a knob.
    """

    KNOB_VALUES: ClassVar[Mapping[str, tuple]] = MappingProxyType({
        "epsilon": ("outside", "inside"),
        "zero_guard": (False, True),
        "weight_decay": ("l2", "decoupled"),
    })

    epsilon: str = "outside"
    zero_guard: bool = False
    weight_decay: str = "l2"


#: Each framework's Adagrad, read from its source (torch 2.13, optax 0.2.8, Keras 3.15).
PRESETS: Mapping[str, AdagradConvention] = MappingProxyType({
    #: ``torch/optim/adagrad.py`` ``_single_tensor_adagrad``: ``grad.add(param, alpha=wd)``;
    #: ``clr = lr / (1 + (step - 1) * lr_decay)``; ``std = state_sum.sqrt().add_(eps)``.
    "torch": AdagradConvention("outside", False, "l2"),
    #: ``optax/_src/transform.py`` ``scale_by_rss``: ``jnp.where(s > 0, jax.lax.rsqrt(s + eps), 0.0) * g``
    #: with the sum already holding ``g**2``; no weight decay of its own (``add_decayed_weights`` before it
    #: is an L2 term).
    "optax": AdagradConvention("inside", True, "l2"),
    #: ``keras/src/optimizers/adagrad.py`` ``update_step``: ``accumulator += g**2``;
    #: ``var -= lr * g / sqrt(accumulator + epsilon)``; ``weight_decay`` is ``base_optimizer.py``
    #: ``_apply_weight_decay``: ``var -= var * wd * lr`` before the step.
    "keras": AdagradConvention("inside", False, "decoupled"),
})


def resolve(convention: str | AdagradConvention | None) -> AdagradConvention:
    """The :class:`AdagradConvention` a preset name names (``torch`` for None), or ``convention`` itself."""
    return resolve_in("adagrad", PRESETS, convention)


DEFAULTS = {
    "lr": 1e-2,
    "lr_decay": 0.0,
    "weight_decay": 0.0,
    "initial_accumulator_value": 0.0,
    "eps": 1e-10,
    "maximize": False,
}


def validate(*, lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize, convention=None) -> None:
    resolve(convention)
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
    convention: str | AdagradConvention | None = None,
) -> tuple[Array, AdagradState]:
    r"""One Adagrad step, in the given convention (torch's by default).

    .. math::

        g_t &= \pm\nabla f(\theta_{t-1}) \;[+\,\lambda\theta_{t-1}]_{\text{l2}},
          \qquad \theta'_{t-1} = \theta_{t-1} \;[-\,\mathrm{lr}_t\lambda\theta_{t-1}]_{\text{decoupled}} \\
        \tilde\gamma_t &= \mathrm{lr}_t / (1 + (t-1)\,\delta) \\
        s_t &= s_{t-1} + g_t^2, \qquad s_0 = \text{initial\_accumulator\_value} \\
        \theta_t &= \theta'_{t-1} - \tilde\gamma_t\, g_t / (\sqrt{s_t} + \epsilon)
          \quad\text{or}\quad \theta'_{t-1} - \tilde\gamma_t\, g_t / \sqrt{s_t + \epsilon} \text{ (inside)}

    with :math:`\delta` = ``lr_decay``; with ``zero_guard`` an element whose
    :math:`s_t = 0` is not moved by the gradient term.  ``initial_accumulator_value``
    is used by :func:`init`; it is accepted here so that one set of
    hyperparameters serves both.  Sources: :data:`PRESETS`.
    """
    conv = resolve(convention)
    t = state.step + 1
    g = -grad if maximize else grad
    param, g = weight_decayed(param, g, lr=lr, weight_decay=weight_decay, mode=conv.weight_decay)
    clr = lr / (1 + (t - 1) * lr_decay)
    total = state.sum + g * g
    denom = xp.sqrt(total + eps) if conv.epsilon == "inside" else xp.sqrt(total) + eps
    update = g / denom
    if conv.zero_guard:
        update = xp.where(total > 0, update, xp.zeros_like(update))
    return param - clr * update, AdagradState(t, total)
