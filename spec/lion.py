r"""Lion (EvoLved Sign Momentum), with decoupled weight decay, in each convention that ships.

Chen et al., "Symbolic Discovery of Optimization Algorithms", arXiv 2302.06675,
Algorithm 2.  The step takes the sign of an interpolation of the momentum and
the gradient, so it is discontinuous where that interpolation is 0: the value
inside the sign is :func:`sign_argument`, which the certifier reads to accept
either branch where a correct kernel's rounding may cross 0
(:mod:`optspec.conformance.branches`).  Models the paper by default; the
decay's scale varies between libraries (:class:`LionConvention`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from optspec.spec import _validate
from optspec.spec._knobs import Knobs, resolve_in
from optspec.spec.adam import _decay_factor

Array = Any


class LionState(NamedTuple):
    """Step count and the momentum :math:`m`, an average of the gradients with :math:`\\beta_2`."""

    step: int
    exp_avg: Array


#: The values of :attr:`LionConvention.decay_scale`.
DECAY_SCALES = ("lr", "schedule", "none")


@dataclasses.dataclass(frozen=True)
class LionConvention(Knobs):
    r"""How a Lion step is computed, beyond its hyperparameters.

    Attributes:
      decay_scale: what multiplies :math:`\lambda\theta_{t-1}` in the decay:
        ``"lr"``, :math:`\mathrm{lr}_t` (the paper's :math:`\eta_t`);
        ``"schedule"``, :math:`\mathrm{lr}_t/\mathrm{lr}_0` (lion-pytorch's
        ``decoupled_weight_decay=True``, which divides λ by the initial lr);
        ``"none"``, 1 (pytorch-optimizer's ``fixed_decay=True``).

    The sign of 0 is 0 in every library read (``torch.sign``, ``jnp.sign``,
    ``keras.ops.sign``, ``mx.sign``), and every library decays
    :math:`\theta_{t-1}` (before the signed step, or beside it in optax's sum).
    """

    KNOB_VALUES: ClassVar[Mapping[str, tuple]] = MappingProxyType({
        "decay_scale": DECAY_SCALES,
    })

    decay_scale: str = "lr"


#: Lion's conventions.  The paper's is every framework's (optax 0.2.8, Keras 3.15, MLX 0.32) and
#: lion-pytorch's by default:
#:
#: - optax: ``optax/_src/alias.py:1016-1020`` chains ``scale_by_lion``, ``add_decayed_weights`` and
#:   ``scale_by_learning_rate``, so the update is :math:`-\mathrm{lr}(\mathrm{sign}(c) + \lambda\theta)`;
#:   ``transform.py:471-489``: ``sign((1 - b1) * g + b1 * m)``, then ``update_moment(g, m, b2, 1)``.
#: - Keras: ``keras/src/optimizers/lion.py:96-121``: ``variable -= lr * sign(m * beta_1 + g * (1 - beta_1))``,
#:   ``m = m * beta_2 + g * (1 - beta_2)``, with β held in the variable's dtype; the decay is
#:   ``base_optimizer.py`` ``_apply_weight_decay``, ``variable - variable * wd * lr`` before the step.
#: - MLX: ``mlx/optimizers/optimizers.py:712-724`` ``Lion.apply_single``: ``c = b1 * m + (1 - b1) * g``,
#:   ``m = b2 * m + (1 - b2) * g``, ``parameter = (1 - lr * wd) * parameter``, ``parameter - lr * sign(c)``.
#: - lion-pytorch 0.2.5: ``lion_pytorch/lion_pytorch.py:14-26`` ``update_fn``: ``p *= 1 - lr * wd``, then
#:   ``sgn(beta1 * m + (1 - beta1) * g)``; ``:78-79`` divides ``wd`` by the initial lr where
#:   ``decoupled_weight_decay=True`` (``decay_scale="schedule"``).
PRESETS: Mapping[str, LionConvention] = MappingProxyType({
    "paper": LionConvention("lr"),
})


def resolve(convention: str | LionConvention | None) -> LionConvention:
    """The :class:`LionConvention` a preset name names (``paper`` for None), or ``convention`` itself."""
    return resolve_in("lion", PRESETS, convention)


DEFAULTS = {
    "lr": 1e-4,
    "betas": (0.9, 0.99),
    "weight_decay": 0.0,
    "maximize": False,
}


def validate(*, lr, betas, weight_decay, maximize, convention=None) -> None:
    resolve(convention)
    _validate.nonnegative("lr", lr)
    _validate.betas(betas)
    _validate.nonnegative("weight_decay", weight_decay)


def init(xp: Any, param: Array) -> LionState:
    return LionState(step=0, exp_avg=xp.zeros_like(param))


def sign_argument(xp: Any, grad: Array, state: LionState, *, betas: tuple[float, float], maximize: bool = False,
                  **_: Any) -> Array:
    r""":math:`c_t = \beta_1 m_{t-1} + (1-\beta_1) g_t`, the value whose sign the step from ``state`` takes."""
    beta1, _ = betas
    g = -grad if maximize else grad
    return beta1 * state.exp_avg + (1 - beta1) * g


def sign_argument_magnitude(xp: Any, grad: Array, state: LionState, *, betas: tuple[float, float],
                            **_: Any) -> Array:
    r""":math:`|m_{t-1}| + (1-\beta_1)|g_t|`: the scale of a kernel's rounding error in :math:`c_t`, in either form.

    :math:`\beta_1 m + (1-\beta_1) g` rounds on the scale of its terms; the interpolation
    :math:`m + (1-\beta_1)(g - m)` (``torch.lerp``, as pytorch-optimizer 4.1.0 computes it,
    ``pytorch_optimizer/optimizer/lion.py:117``) rounds on the scale of :math:`|m|`, and where
    :math:`1-\beta_1` rounds to 1 (:math:`\beta_1` below the unit roundoff) it returns :math:`g`,
    off by :math:`\beta_1|g - m|`.  Both are within a few unit roundoffs of this sum, which is at most
    :math:`1/\beta_1` times the first form's (1.11 at :math:`\beta_1` = 0.9).
    """
    beta1, _ = betas
    return xp.abs(state.exp_avg) + (1 - beta1) * xp.abs(grad)


def step(
    xp: Any,
    param: Array,
    grad: Array,
    state: LionState,
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.99),
    weight_decay: float = 0.0,
    maximize: bool = False,
    convention: str | LionConvention | None = None,
    initial_lr: float | None = None,
    decay_lr: float | None = None,
    signs: Array | None = None,
) -> tuple[Array, LionState]:
    r"""One Lion step, in the given convention (the paper's by default).

    .. math::

        c_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t \\
        \theta_t &= \theta_{t-1} - \mathrm{lr}_t\,\mathrm{sign}(c_t) - d_t\,\theta_{t-1},
        \qquad d_t = \begin{cases}
            \mathrm{lr}_t\lambda & \texttt{lr} \\
            (\mathrm{lr}_t/\mathrm{lr}_0)\lambda & \texttt{schedule} \\
            \lambda & \texttt{none}
        \end{cases}

    with :math:`m_0 = 0`, :math:`g_t = \pm\nabla f(\theta_{t-1})` and
    :math:`\mathrm{sign}(0) = 0`.  ``signs``, where not NaN, takes the place
    of :math:`\mathrm{sign}(c_t)`: the branch a kernel took where its
    rounding of :math:`c_t` may cross 0.  ``decay_lr`` is the learning rate
    :math:`d_t` reads in place of :math:`\mathrm{lr}_t` (the diagnosis's model of
    a decay that lags the schedule).  Sources: :data:`PRESETS`.
    """
    conv = resolve(convention)
    _, beta2 = betas
    g = -grad if maximize else grad
    direction = xp.sign(sign_argument(xp, grad, state, betas=betas, maximize=maximize))
    if signs is not None:
        direction = xp.where(xp.isnan(signs), direction, signs)
    if not _validate.known_zero(weight_decay):
        decay = _decay_factor(conv.decay_scale, lr if decay_lr is None else decay_lr, initial_lr, weight_decay)
        param = param - decay * param
    exp_avg = beta2 * state.exp_avg + (1 - beta2) * g
    return param - lr * direction, LionState(state.step + 1, exp_avg)
