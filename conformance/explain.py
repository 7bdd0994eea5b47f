"""Diagnosing a failure: the single change to the expected behaviour that explains it, if one does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from optspec import spec
from optspec.adapters.driver import SubjectInfo
from optspec.conformance import tolerance
from optspec.conformance.cases import Case
from optspec.conformance.reference import reference
from optspec.spec.conventions import KNOB_VALUES

#: A knob is named only if the reference with it leaves at most this fraction of the error.
HINT_THRESHOLD = 0.1

#: Dtypes a subject may keep its optimizer state in, tried as explanations.
STATE_DTYPES = ("bfloat16", "float16")

#: The next coarser dtypes whose tolerance model is tried when no single change explains a failure.
COARSER_ARITHMETIC = {"float64": ("float32",), "float32": ("bfloat16", "float16")}


def explain(subject: SubjectInfo, convention: spec.Convention | None, case: Case, theta0: np.ndarray,
            grads: np.ndarray, traj: np.ndarray, dtype: str,
            worst_ratio_in: Callable[[str], float] | None = None) -> str:
    """The single change to the expected behaviour that explains ``traj``, if one does.

    Tries every other value of every convention knob, L2 in place of
    decoupled decay, no weight decay at all, an ignored ``amsgrad`` or ``maximize``, the state kept
    in a reduced dtype, and (in float64) hyperparameters rounded to float32.
    A change is named only when the reference with it leaves at most
    :data:`HINT_THRESHOLD` of the error; otherwise nothing is named.

    When none does, ``worst_ratio_in(d)`` (the case's worst error/bound with
    the tolerance model of dtype ``d``) is asked for the next coarser dtypes
    (:data:`COARSER_ARITHMETIC`); the first whose bounds hold every step is
    reported with the measured ratio, and the advice to certify in it if the
    subject computes in it.  A defect that small cannot be told apart from
    that dtype's arithmetic, so it is not called one.
    """
    base_free, _ = reference(subject.rule, convention, case, theta0, grads)
    base = float(np.nanmax(np.abs(traj - base_free)))
    candidates: dict[str, tuple[str, Any, dict]] = {}
    if spec.get_rule(subject.rule).takes_convention:
        candidates["bias_correction one step late (the step count lags by one)"] = (
            subject.rule, convention, {"step_lag": True})
        conv = spec.resolve(convention)
        for knob, values in KNOB_VALUES.items():
            for value in values:
                if value != getattr(conv, knob) and not (knob == "amsgrad" and value == "off"):
                    candidates[f"{knob}={value}"] = (subject.rule, conv.replace(**{knob: value}), {})
        if (coupled := spec.get_rule(subject.rule).l2_counterpart) is not None:
            candidates[f"weight decay applied as an L2 term in the gradient (rule {coupled})"] = (coupled, conv, {})
    if case.hyper.get("weight_decay"):
        candidates["weight decay not applied (as with weight_decay=0)"] = (
            subject.rule, convention, {"weight_decay": 0.0})
    for flag in ("amsgrad", "maximize"):
        if case.hyper.get(flag) and flag not in subject.fixed:
            candidates[f"{flag} ignored (the subject accepts {flag}=True and runs without it)"] = (
                subject.rule, convention, {flag: False})
    second = spec.get_rule(subject.rule).second_moment
    for state_dtype in STATE_DTYPES:
        if tolerance.unit_roundoff(state_dtype) > tolerance.unit_roundoff(dtype):
            candidates[f"optimizer state kept in {state_dtype} (reduced precision)"] = (
                subject.rule, convention, {"state_dtype": state_dtype})
            if second:
                candidates[f"second moment kept in {state_dtype} (reduced precision)"] = (
                    subject.rule, convention,
                    {"state_dtype": state_dtype, "state_fields": frozenset({second, "max_exp_avg_sq"})})
    if dtype == "float64":
        candidates["hyperparameters rounded to float32 on the way in (as tensorflow#35938)"] = (
            subject.rule, convention, _through_float32(case.hyper))
    scores = {}
    for name, (rule, conv, override) in candidates.items():
        try:
            free, _ = reference(rule, conv, case, theta0, grads, **override)
        except ValueError:
            continue
        scores[name] = float(np.nanmax(np.abs(traj - free)))
    if scores and base > 0:
        best = min(scores, key=scores.get)
        if scores[best] <= HINT_THRESHOLD * base:
            return f"most likely knob: {best} (it leaves {scores[best]:.3g} of the {base:.3g} error)"
    verdict = (f"no single knob explains it: none of {len(scores)} single changes leaves "
               f"{HINT_THRESHOLD:g} of the {base:.3g} error or less")
    for arithmetic in COARSER_ARITHMETIC.get(dtype, ()) if worst_ratio_in is not None else ():
        ratio = worst_ratio_in(arithmetic)
        if ratio <= 1:
            return (f"{verdict}; every step is within {arithmetic}'s bounds (worst {ratio:.2g} of the bound), "
                    f"so reduced precision would explain it: if the subject computes or keeps its state in "
                    f"{arithmetic}, certify it with --dtype {arithmetic}")
    return verdict


def _through_float32(hyper: dict[str, Any]) -> dict[str, Any]:
    def rounded_value(value: Any) -> Any:
        if isinstance(value, tuple):
            return tuple(rounded_value(v) for v in value)
        if isinstance(value, float):
            return float(np.float32(value))
        return value

    return {k: rounded_value(v) for k, v in hyper.items()}


