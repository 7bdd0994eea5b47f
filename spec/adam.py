r"""Adam with an L2 penalty, AdamW with decoupled weight decay, and AMSGrad.

Both rules share one moment update; they differ only in where
``weight_decay`` enters.  ``adam`` adds :math:`\lambda\theta` to the gradient
(L2), so the penalty is divided by :math:`\sqrt{\hat v}` like the gradient is;
``adamw`` decays the parameter directly (Loshchilov & Hutter, arXiv
1711.05101, Algorithm 2).  How each framework computes the step is a
:class:`spec.conventions.Convention`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from optspec.spec import _validate
from optspec.spec.conventions import Convention, resolve
from optspec.spec.sgd import _schedule_multiplier

Array = Any


class AdamState(NamedTuple):
    """Step count, first moment :math:`m`, second moment :math:`v`, and the AMSGrad maximum."""

    step: int
    exp_avg: Array
    exp_avg_sq: Array
    max_exp_avg_sq: Array


ADAM_DEFAULTS = {
    "lr": 1e-3,
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "weight_decay": 0.0,
    "amsgrad": False,
    "maximize": False,
}
ADAMW_DEFAULTS = {**ADAM_DEFAULTS, "weight_decay": 1e-2}


def validate(*, lr, betas, eps, weight_decay, amsgrad, maximize, convention) -> None:
    _validate.nonnegative("lr", lr)
    _validate.betas(betas)
    _validate.nonnegative("eps", eps)
    _validate.nonnegative("weight_decay", weight_decay)
    conv = resolve(convention)
    if amsgrad and conv.amsgrad == "off":
        raise ValueError(
            f"amsgrad=True is not defined for convention {convention!r}: it has "
            "no AMSGrad variant (set amsgrad='raw' or 'corrected' on the Convention)"
        )


def init(xp: Any, param: Array) -> AdamState:
    zeros = xp.zeros_like(param)
    return AdamState(step=0, exp_avg=zeros, exp_avg_sq=zeros, max_exp_avg_sq=zeros)


def adam_step(
    xp: Any,
    param: Array,
    grad: Array,
    state: AdamState,
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    maximize: bool = False,
    convention: str | Convention = "torch",
    second_moment_step: int | None = None,
) -> tuple[Array, AdamState]:
    r"""One Adam step with an L2 penalty (Kingma & Ba, arXiv 1412.6980, Algorithm 1).

    .. math::

        g_t = \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1}

    then the moment update and parameter step of :func:`adamw_step` with no
    decoupled decay.  The convention's ``epsilon``, ``bias_correction`` and
    ``amsgrad`` knobs apply; its decay knobs do not.  Source:
    ``torch/optim/adam.py`` ``_single_tensor_adam`` with
    ``decoupled_weight_decay=False``; optax ``chain(add_decayed_weights(wd),
    adam(lr))`` is the same.  ``second_moment_step`` is as :func:`adamw_step`'s.
    """
    g = -grad if maximize else grad
    if not _validate.known_zero(weight_decay):
        g = g + weight_decay * param
    return _adam_update(xp, param, g, state, lr, betas, eps, amsgrad, resolve(convention), second_moment_step)


def adamw_step(
    xp: Any,
    param: Array,
    grad: Array,
    state: AdamState,
    *,
    lr: float,
    initial_lr: float | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    maximize: bool = False,
    convention: str | Convention = "torch",
    decay_lr: float | None = None,
    second_moment_step: int | None = None,
) -> tuple[Array, AdamState]:
    r"""One AdamW step, in the given convention.

    With :math:`bc_1 = 1-\beta_1^t`, :math:`bc_2 = 1-\beta_2^t` (both 1 when
    ``bias_correction`` is off) and :math:`g_t = \pm\nabla f(\theta_{t-1})`:

    .. math::

        d_t &= \begin{cases}\mathrm{lr}_t\lambda & \texttt{decay\_scale=lr}\\
               (\mathrm{lr}_t/\mathrm{lr}_0)\lambda & \texttt{schedule}\\
               \lambda & \texttt{none}\end{cases} \\
        \theta' &= (1 - d_t)\,\theta_{t-1} \quad\text{if } \texttt{decay\_point=before}
                   \text{ else } \theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
        u_t &= \begin{cases}
            \frac{\mathrm{lr}_t}{bc_1}\, m_t / (\sqrt{v_t}/\sqrt{bc_2} + \epsilon) & \texttt{epsilon=corrected} \\
            \frac{\mathrm{lr}_t\sqrt{bc_2}}{bc_1}\, m_t / (\sqrt{v_t} + \epsilon) & \texttt{hat} \\
            \frac{\mathrm{lr}_t}{bc_1}\, m_t / \sqrt{v_t/bc_2 + \epsilon} & \texttt{inside}
        \end{cases} \\
        \theta_t &= \theta' - u_t, \quad\text{then } \theta_t \leftarrow (1-d_t)\,\theta_t
                    \text{ if } \texttt{decay\_point=after}

    With ``amsgrad``, :math:`v_t` in :math:`u_t` is replaced by
    :math:`\tilde v_t = \max(\tilde v_{t-1}, v_t)` (``raw``), or
    :math:`v_t/bc_2` by :math:`\max(\tilde v_{t-1}, v_t/bc_2)` (``corrected``).
    :math:`\mathrm{lr}_0` is ``initial_lr`` (:func:`spec.run` passes the first
    step's lr).  ``decay_lr`` is the learning rate :math:`d_t` reads in place
    of :math:`\mathrm{lr}_t` (default: :math:`\mathrm{lr}_t`); the certifier's
    diagnosis passes the previous step's to model a decay that lags the schedule;
    ``second_moment_step`` is the :math:`t` of :math:`bc_2` alone (default:
    the step's own), which it passes to model a second moment's correction
    that lags.
    The ``torch`` convention is ``torch/optim/adam.py``
    ``_single_tensor_adam``; the others are listed in :mod:`optspec.spec.conventions`.
    """
    conv = resolve(convention)
    g = -grad if maximize else grad
    decay = _decay_factor(conv.decay_scale, lr if decay_lr is None else decay_lr, initial_lr, weight_decay)
    if not _validate.known_zero(weight_decay) and conv.decay_point == "before":
        param = (1 - decay) * param
    param, state = _adam_update(xp, param, g, state, lr, betas, eps, amsgrad, conv, second_moment_step)
    if not _validate.known_zero(weight_decay) and conv.decay_point == "after":
        param = (1 - decay) * param
    return param, state


def _decay_factor(scale: str, lr: float, initial_lr: float | None, weight_decay: float) -> float:
    if scale == "lr":
        return lr * weight_decay
    if scale == "schedule":
        return _schedule_multiplier(lr, initial_lr) * weight_decay
    return weight_decay


def corrected_moments(xp: Any, state: AdamState, *, betas: tuple[float, float], eps: float, amsgrad: bool,
                      convention: str | Convention) -> tuple[Array, Array]:
    r""":math:`(\hat m_t, D_t)` of the state after step :math:`t`, whose update was :math:`\mathrm{lr}_t\hat m_t/D_t`.

    In corrected units, whatever the convention: :math:`\hat m_t = m_t/bc_1` and

    .. math::

        D_t = \begin{cases}
            \sqrt{s_t} + \epsilon & \texttt{epsilon=corrected} \\
            \sqrt{s_t} + \epsilon/\sqrt{bc_2} & \texttt{hat} \\
            \sqrt{s_t + \epsilon} & \texttt{inside}
        \end{cases}

    with :math:`s_t` the corrected second moment the step divided by
    (:math:`v_t/bc_2`, or AMSGrad's maximum).  The tolerance model reads it
    (an L2 term's rounding error is amplified by :math:`\hat m/D`).
    """
    conv = resolve(convention)
    beta1, beta2 = betas
    t = state.step
    bc1 = 1 - beta1**t if conv.bias_correction else 1.0
    bc2 = 1 - beta2**t if conv.bias_correction else 1.0
    second = state.max_exp_avg_sq if amsgrad else state.exp_avg_sq
    second_hat = second if amsgrad and conv.amsgrad == "corrected" else second / bc2
    if conv.epsilon == "inside":
        denominator = xp.sqrt(second_hat + eps)
    else:
        denominator = xp.sqrt(second_hat) + (eps / bc2**0.5 if conv.epsilon == "hat" else eps)
    return state.exp_avg / bc1, denominator


def _adam_update(
    xp: Any,
    param: Array,
    g: Array,
    state: AdamState,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    amsgrad: bool,
    conv: Convention,
    second_moment_step: int | None = None,
) -> tuple[Array, AdamState]:
    beta1, beta2 = betas
    t = state.step + 1
    bc1 = 1 - beta1**t if conv.bias_correction else 1.0
    bc2 = 1 - beta2 ** (t if second_moment_step is None else second_moment_step) if conv.bias_correction else 1.0
    m = beta1 * state.exp_avg + (1 - beta1) * g
    v = beta2 * state.exp_avg_sq + (1 - beta2) * (g * g)
    v_max = state.max_exp_avg_sq
    # ``second`` is the second moment the step divides by, in raw units
    # (``second_is_corrected`` False) or already divided by bc2.
    second, second_is_corrected = v, False
    if amsgrad and conv.amsgrad == "corrected":
        v_max = xp.maximum(v_max, v / bc2)
        second, second_is_corrected = v_max, True
    elif amsgrad:
        v_max = xp.maximum(v_max, v)
        second = v_max
    # ``** 0.5`` rather than math.sqrt: under a compiler the step count may be a 0-d array.
    sqrt_bc2 = bc2**0.5
    if conv.epsilon == "corrected":
        step_size = lr / bc1
        root = xp.sqrt(second) if second_is_corrected else xp.sqrt(second) / sqrt_bc2
        denom = root + eps
    elif conv.epsilon == "hat":
        step_size = lr * sqrt_bc2 / bc1
        root = xp.sqrt(second) * sqrt_bc2 if second_is_corrected else xp.sqrt(second)
        denom = root + eps
    else:
        step_size = lr / bc1
        denom = xp.sqrt((second if second_is_corrected else second / bc2) + eps)
    return param - step_size * (m / denom), AdamState(t, m, v, v_max)
