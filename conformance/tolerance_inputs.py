r"""What the tolerance model reads along a case: the update magnitude :math:`M_t` and the L2 feedback :math:`\lambda A_t`.

Both come from the rule's declared properties (:class:`spec.Rule`:
``weight_decay``, ``second_moment``, ``corrected_moments``) and runs of the
reference, never from the rule's name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from optspec import spec
from optspec.conformance import tolerance
from optspec.conformance.cases import Case
from optspec.conformance.reference import reference


def magnitude_case(case: Case) -> Case:
    """``case`` as the rule is run on :math:`|g|` to sum magnitudes: without ``maximize`` and without weight
    decay (each where the case sets it)."""
    off = {name: value for name, value in (("maximize", False), ("weight_decay", 0.0)) if name in case.hyper}
    return dataclasses.replace(case, hyper={**case.hyper, **off}) if off else case


def update_magnitude(rule: str, convention: spec.Knobs | None, case: Case, grads: np.ndarray,
                     theta_path: np.ndarray | None = None) -> np.ndarray:
    r""":math:`M_t`: the rule's update on :math:`|g|` from zero without weight decay.

    It sums magnitudes where the real update may cancel (see :mod:`optspec.conformance.tolerance`).
    A moment kept as ``m + (1-β)(g - m)`` (torch's ``lerp``, Keras) rounds at
    the scale of the previous moment, so the previous step's update, scaled
    by the change of lr and by 2 for the change of the bias corrections and
    of :math:`\sqrt{\hat v}`, is a floor.
    """
    spec_rule = spec.get_rule(rule)
    l2_in_gradient = spec_rule.decay_mode(convention) == "l2"
    theta0 = np.zeros(grads.shape[1:])
    magnitudes = np.abs(grads)
    if "weight_decay" in case.hyper and l2_in_gradient and theta_path is not None:
        # An L2 term enters the gradient: g + λθ may cancel, so count |g| + λ|θ|.
        magnitudes = magnitudes + case.hyper["weight_decay"] * np.abs(theta_path)
    free, _ = reference(rule, convention, magnitude_case(case), theta0, magnitudes)
    update = np.abs(np.diff(np.concatenate([theta0[None], free]), axis=0))
    lrs = np.asarray(case.lrs, np.float64).reshape((-1,) + (1,) * theta0.ndim)
    with np.errstate(divide="ignore", invalid="ignore"):
        carried = np.nan_to_num(2 * lrs[1:] / lrs[:-1] * update[:-1], nan=0.0, posinf=0.0)
    update[1:] = np.maximum(update[1:], carried)
    eps = float(case.hyper.get("eps", 0.0))
    if l2_in_gradient and spec_rule.second_moment is not None and theta_path is not None and eps > 0:
        # A rounding error δg = u·λ|θ| of an L2 gradient that cancelled to ~0 is
        # divided by ~ε, not by the root of the (large) magnitude run.
        l2 = float(case.hyper.get("weight_decay", 0.0)) * np.abs(theta_path)
        update = np.maximum(update, lrs * l2 / eps)
    return update


def l2_feedback(rule: str, convention: spec.Knobs | None, case: Case, states: list[Any]) -> np.ndarray | None:
    r""":math:`\lambda A_t` per step along the reference, for an adaptive rule with an L2 term; None otherwise.

    :math:`A_t` is :func:`conformance.tolerance.adam_gradient_sensitivity` of the
    rule's own :math:`(\hat m_t, D_t)` (:attr:`spec.Rule.corrected_moments`).
    """
    spec_rule = spec.get_rule(rule)
    weight_decay = float(case.hyper.get("weight_decay", 0.0))
    moments = spec_rule.corrected_moments
    if spec_rule.decay_mode(convention) != "l2" or moments is None or weight_decay == 0 or not states:
        return None
    hyper = {**spec_rule.defaults, **case.hyper}
    sensitivity = []
    for state, lr in zip(states, case.lrs):
        first, denominator = moments(np, state, betas=tuple(hyper["betas"]), eps=float(hyper["eps"]),
                                     amsgrad=bool(case.hyper.get("amsgrad")), convention=convention)
        with np.errstate(divide="ignore", invalid="ignore"):
            a = tolerance.adam_gradient_sensitivity(lr, first, denominator)
        sensitivity.append(np.where(denominator > 0, a, 0.0))
    return weight_decay * np.stack(sensitivity)


