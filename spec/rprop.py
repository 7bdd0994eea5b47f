r"""Rprop (resilient backpropagation), in each framework's convention.

Riedmiller and Braun, "A direct adaptive method for faster backpropagation
learning: the RPROP algorithm", ICNN 1993, in the form torch and optax
ship: without weight backtracking, and with the gradient kept as 0 after a
sign change (Igel and Hüsken's iRprop⁻).  Each element keeps its own step size,
grown by :math:`\eta_+` while the gradient keeps its sign and shrunk by
:math:`\eta_-` where it flips; the step is the step size times the gradient's
sign.  The learning rate is the initial step size only: a schedule does not
reach the step.  The step is discontinuous where :math:`g_t g_{t-1}` is 0,
which a kernel's product may reach by underflow (:func:`sign_argument`,
:mod:`optspec.conformance.branches`).  Models ``torch/optim/rprop.py``
(``_single_tensor_rprop``) by default and optax's through
:class:`RpropConvention`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from optspec.spec import _validate
from optspec.spec._knobs import Knobs, resolve_in

Array = Any


class RpropState(NamedTuple):
    """Step count, the previous gradient as the step kept it (0 after a sign change), and the step sizes."""

    step: int
    prev: Array
    step_size: Array


#: The values of :attr:`RpropConvention.clamp`.
CLAMPS = ("always", "on_change")


@dataclasses.dataclass(frozen=True)
class RpropConvention(Knobs):
    r"""How an Rprop step is computed, beyond its hyperparameters.

    Attributes:
      clamp: where the step size is clipped to ``step_sizes``:
        ``"always"``, at every step, the first included (torch: a step
        size that starts outside the bounds is brought inside at once);
        ``"on_change"``, only where it is multiplied by :math:`\eta_\pm`
        (optax: a step where :math:`g_t g_{t-1} = 0` keeps it as it is).

    Every framework read zeroes the gradient it keeps after a sign change
    (so the next step neither grows nor shrinks that step size) and steps by
    0 there; they differ in where the step size is clipped.
    """

    KNOB_VALUES: ClassVar[Mapping[str, tuple]] = MappingProxyType({
        "clamp": CLAMPS,
    })

    clamp: str = "always"


PRESETS: Mapping[str, RpropConvention] = MappingProxyType({
    #: ``torch/optim/rprop.py`` ``_single_tensor_rprop``: ``:265-267`` ``sign = grad.mul(prev).sign()``;
    #: ``:274-276`` η₊, η₋ and 1 by sign; ``:279`` ``step_size.mul_(sign).clamp_(step_size_min, step_size_max)``;
    #: ``:283-287`` the gradient zeroed where the sign flipped; ``:290-291`` ``param.addcmul_(grad.sign(),
    #: step_size, value=-1)``, ``prev.copy_(grad)``.  The step sizes start at the lr of the first step (``:143``).
    "torch": RpropConvention("always"),
    #: ``optax/_src/transform.py:923-955`` ``scale_by_rprop``: ``jnp.where(s == 0, step_size, jnp.clip(step_size *
    #: where(s > 0, eta_plus, eta_minus), min, max))``; the kept update is ``step_size * sign(g)``, 0 where the sign
    #: flipped, as the step is; ``alias.py:2527-2536`` scales it by -1.  The step sizes start at ``learning_rate``
    #: (``transform.py:917-920``).
    "optax": RpropConvention("on_change"),
})


def resolve(convention: str | RpropConvention | None) -> RpropConvention:
    """The :class:`RpropConvention` a preset name names (``torch`` for None), or ``convention`` itself."""
    return resolve_in("rprop", PRESETS, convention)


DEFAULTS = {
    "lr": 1e-2,
    "etas": (0.5, 1.2),
    "step_sizes": (1e-6, 50.0),
    "maximize": False,
}


def validate(*, lr, etas, step_sizes, maximize, convention=None) -> None:
    resolve(convention)
    _validate.nonnegative("lr", lr)
    if not (isinstance(etas, (tuple, list)) and len(etas) == 2 and 0 < etas[0] < 1 < etas[1]):
        raise ValueError(f"etas={etas!r} is invalid: it must be a pair (eta_minus, eta_plus) with "
                         "0 < eta_minus < 1 < eta_plus")
    if not (isinstance(step_sizes, (tuple, list)) and len(step_sizes) == 2 and 0 <= step_sizes[0] <= step_sizes[1]):
        raise ValueError(f"step_sizes={step_sizes!r} is invalid: it must be a pair (min, max) with 0 <= min <= max")


def init(xp: Any, param: Array, initial_lr: float) -> RpropState:
    """Zeros for the kept gradient; every step size at :math:`\\mathrm{lr}_1`, the first step's learning rate."""
    zeros = xp.zeros_like(param)
    return RpropState(step=0, prev=zeros, step_size=zeros + initial_lr)


def sign_argument(xp: Any, grad: Array, state: RpropState, *, maximize: bool = False, **_: Any) -> Array:
    r""":math:`g_t\,g_{t-1}`, the product whose sign decides the step size, from ``state`` (the kept
    :math:`g_{t-1}`, 0 after a sign change)."""
    g = -grad if maximize else grad
    return g * state.prev


def step(
    xp: Any,
    param: Array,
    grad: Array,
    state: RpropState,
    *,
    lr: float,
    etas: tuple[float, float] = (0.5, 1.2),
    step_sizes: tuple[float, float] = (1e-6, 50.0),
    maximize: bool = False,
    convention: str | RpropConvention | None = None,
    initial_lr: float | None = None,
    signs: Array | None = None,
) -> tuple[Array, RpropState]:
    r"""One Rprop step, in the given convention (torch's by default).

    .. math::

        s_t &= \mathrm{sign}(g_t\,g_{t-1}), \qquad
        \Delta_t = \begin{cases}
            \mathrm{clip}(\eta_+\Delta_{t-1}) & s_t > 0 \\
            \mathrm{clip}(\eta_-\Delta_{t-1}) & s_t < 0 \\
            \Delta_{t-1} \;[\mathrm{clip}(\Delta_{t-1})]_{\texttt{always}} & s_t = 0
        \end{cases} \\
        g'_t &= \begin{cases} 0 & s_t < 0 \\ g_t & \text{else} \end{cases}, \qquad
        \theta_t = \theta_{t-1} - \mathrm{sign}(g'_t)\,\Delta_t, \qquad g_{t-1} \leftarrow g'_t

    with :math:`\Delta_0 = \mathrm{lr}_1` (``lr`` of later steps is not read),
    :math:`g_0 = 0`, ``clip`` to ``step_sizes`` and :math:`g_t = \pm\nabla f(\theta_{t-1})`.
    ``signs``, where not NaN, takes the place of :math:`s_t`: the branch a
    kernel took where its product underflowed.  ``lr`` and ``initial_lr``
    are taken and not read: :func:`init` reads the first.  Sources: :data:`PRESETS`.
    """
    conv = resolve(convention)
    eta_minus, eta_plus = etas
    low, high = step_sizes
    g = -grad if maximize else grad
    s = xp.sign(sign_argument(xp, grad, state, maximize=maximize))
    if signs is not None:
        s = xp.where(xp.isnan(signs), s, signs)
    factor = xp.where(s > 0, xp.full_like(s, eta_plus), xp.where(s < 0, xp.full_like(s, eta_minus), xp.full_like(s, 1.0)))
    scaled = xp.minimum(xp.maximum(state.step_size * factor, xp.full_like(s, low)), xp.full_like(s, high))
    step_size = scaled if conv.clamp == "always" else xp.where(s == 0, state.step_size, scaled)
    kept = xp.where(s < 0, xp.zeros_like(g), g)
    return param - xp.sign(kept) * step_size, RpropState(state.step + 1, kept, step_size)
