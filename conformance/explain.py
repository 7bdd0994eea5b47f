"""Diagnosing a failure: the single change to the expected behaviour that explains it, if one does."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from optspec import spec
from optspec.adapters.driver import SubjectInfo
from optspec.adapters.namespaces import quantized
from optspec.conformance import tolerance
from optspec.conformance.cases import Case
from optspec.conformance.reference import reference

#: A knob is named only if the reference with it leaves at most this fraction of the error.
HINT_THRESHOLD = 0.1

#: Dtypes a subject may keep its optimizer state in, tried as explanations.
STATE_DTYPES = ("bfloat16", "float16")

#: The coarser dtypes whose tolerance model is tried when no single change explains a failure, where the
#: subject holds its parameters or state in one of them.
COARSER_ARITHMETIC = {"float64": ("float32",), "float32": ("bfloat16", "float16")}


@dataclasses.dataclass(frozen=True)
class FailurePoint:
    """Where a check failed, as its failure line prints it.

    Attributes:
      check: ``one_step`` (against the reference re-synced on the subject's
        previous parameters) or ``trajectory`` (against the free-running one).
      at: the index into the tensor's trajectory, ``(step - 1, *element)``.
      error: the error printed there.
    """

    check: str
    at: tuple[int, ...]
    error: float


@dataclasses.dataclass(frozen=True)
class Change:
    """One single change to the expected behaviour: the reference of ``rule`` in ``convention``, with
    ``override`` (hyperparameters, or a defect model of :func:`~optspec.conformance.reference.reference`)."""

    name: str
    rule: str
    convention: spec.Knobs | None
    override: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """What :func:`explain` says (``text``) and the change it names, if it names one."""

    text: str
    change: Change | None = None


def explain(subject: SubjectInfo, convention: spec.Knobs | None, case: Case, theta0: np.ndarray,
            grads: np.ndarray, traj: np.ndarray, dtype: str, *, failed: FailurePoint | None = None,
            storage_dtypes: frozenset[str] = frozenset(),
            worst_ratio_in: Callable[[str], float] | None = None) -> Diagnosis:
    """The single change to the expected behaviour that explains ``traj``, if one does.

    Tries every other value of every convention knob, a bias correction one
    step late or one step early, a decoupled decay that reads the previous
    step's learning rate, L2 in place of decoupled decay, no weight decay at
    all, an ignored ``amsgrad`` or ``maximize``, the state kept in a reduced
    dtype, and (in float64) hyperparameters rounded to float32, all or one.  A change is
    named only when the reference with it leaves at most
    :data:`HINT_THRESHOLD` of the largest error over the case; given
    ``failed``, the hint also quotes the error the failure line printed and
    what the change leaves of it at the same step and element.

    When none does, reduced precision is offered as the explanation only
    where the subject holds its parameters or state in a coarser dtype
    (``storage_dtypes``, read from the subject by the driver): then
    ``worst_ratio_in(d)`` (the case's worst error/bound with the tolerance
    model of dtype ``d``) is asked for that dtype, and if its bounds hold
    every step, the advice is to certify in it; where it holds state in 8
    bits (quantized), none is offered, and that is said.  A subject that holds its
    parameters and state in the dtype under test is never told to re-run in
    a coarser one: that would weaken the check it failed.  Failing that, a
    float64 trajectory whose every value is a float32 value is named as
    computed in float32 (what the subject returned shows it; no model of its
    float32 arithmetic is assumed).
    """
    base_free, _ = reference(subject.rule, convention, case, theta0, grads)
    base = float(np.nanmax(np.abs(traj - base_free)))
    scores: dict[str, tuple[float, float | None]] = {}
    candidates = _candidates(subject, convention, case, dtype)
    for name, change in candidates.items():
        try:
            free, resync = reference(change.rule, change.convention, case, theta0, grads, traj if failed else None,
                                     **change.override)
        except ValueError:
            continue
        at_failure = None
        if failed is not None:
            expected = resync if failed.check == "one_step" else free
            at_failure = float(np.abs(traj[failed.at] - expected[failed.at]))
        scores[name] = (float(np.nanmax(np.abs(traj - free))), at_failure)
    explained = {name: score for name, (score, _) in scores.items() if base > 0 and score <= HINT_THRESHOLD * base}
    at_failing_step = f"; the failing step's error is {failed.error:.3g}" if failed else ""
    if explained:
        best = min(explained, key=explained.get)
        score, at_failure = scores[best]
        if failed is not None:
            at_failing_step = f", and the failing step's error falls from {failed.error:.3g} to {at_failure:.3g}"
        return Diagnosis(f"most likely knob: {best} (with it, the case's largest error falls from {base:.3g} to "
                         f"{score:.3g}{at_failing_step})", candidates[best])
    verdict = (f"no single knob explains it: none of {len(scores)} single changes leaves {HINT_THRESHOLD:g} of "
               f"the case's largest error, {base:.3g}, or less{at_failing_step}")
    if eight_bit := sorted(d for d in storage_dtypes if quantized(d)):
        # its floating state beside them (float16 scales of 8-bit moments) is not what it computes in
        return Diagnosis(f"{verdict}; the subject holds state in 8 bits ({', '.join(eight_bit)}): quantized, "
                         "which no dtype's tolerance model describes, so a run in another dtype would not certify it")
    for arithmetic in COARSER_ARITHMETIC.get(dtype, ()) if worst_ratio_in is not None else ():
        if arithmetic not in storage_dtypes:
            continue
        ratio = worst_ratio_in(arithmetic)
        if ratio <= 1:
            return Diagnosis(f"{verdict}; the subject holds its parameters or state in {arithmetic}, and every "
                             f"step is within {arithmetic}'s bounds (worst {ratio:.2g} of the bound): certify it "
                             f"with --dtype {arithmetic}")
    if dtype == "float64" and _float32_values(traj) and not _float32_values(base_free):
        return Diagnosis("computed in float32: every value the subject returned is exactly a float32 value, where "
                         "the float64 reference's are not (as MindSpore's AdamWeightDecay, which casts float64 "
                         f"parameters to float32 for its kernel); the case's largest error is {base:.3g}"
                         f"{at_failing_step}")
    return Diagnosis(verdict)


def explain_non_finite(subject: SubjectInfo, convention: spec.Knobs | None, case: Case, dtype: str,
                       conforms_with: Callable[[Change], bool]) -> Diagnosis | None:
    """The single change under which a subject's non-finite values are expected, if one is.

    The subject is NaN or infinite where ``convention``'s reference is finite
    (Adagrad's 0/0 where the expected convention guards it, for example).  A
    change of :func:`explain`'s candidates explains it when the whole case
    conforms with it (``conforms_with(change)``, the full checks; the
    certifier does not judge an element whose reference is non-finite too).
    """
    for change in _candidates(subject, convention, case, dtype).values():
        if conforms_with(change):
            return Diagnosis(f"most likely knob: {change.name} (with it, the reference is non-finite where the "
                             "subject is, and the case conforms)", change)
    return None


def _float32_values(values: np.ndarray) -> bool:
    """Whether every finite value is exactly a float32 value (and not all are 0, ±1 or integers, which are)."""
    finite = values[np.isfinite(values)]
    return bool(finite.size) and bool(np.all(finite.astype(np.float32).astype(np.float64) == finite)) and not bool(
        np.all(finite == np.round(finite)))


def _candidates(subject: SubjectInfo, convention: spec.Knobs | None, case: Case,
                dtype: str) -> dict[str, Change]:
    """Each single change :func:`explain` tries, by name."""
    rule = spec.get_rule(subject.rule)
    found: list[Change] = []

    def candidate(name: str, override: Mapping[str, Any], *, conv: Any = convention, rule_name: str = rule.name
                  ) -> None:
        found.append(Change(name, rule_name, conv, override))

    if rule.corrected_moments is not None:
        candidate("bias_correction one step late (the step count lags by one)", {"step_lag": True})
        candidate("bias_correction one step early (the step count runs one ahead)", {"step_lead": True})
    if rule.takes_convention:
        resolved = rule.resolve(convention)
        for knob, values in rule.knob_values().items():
            for value in values:
                if value != getattr(resolved, knob) and value != resolved.WILDCARDS.get(knob):
                    candidate(f"{knob}={value}", {}, conv=resolved.replace(**{knob: value}))
    if (coupled := rule.l2_counterpart) is not None:
        candidate(f"weight decay applied as an L2 term in the gradient (rule {coupled})", {}, conv=convention,
                  rule_name=coupled)
    if case.hyper.get("weight_decay"):
        candidate("weight decay not applied (as with weight_decay=0)", {"weight_decay": 0.0})
        if rule.weight_decay == "decoupled" and len(set(case.lrs)) > 1:
            candidate("weight decay scaled by the previous step's lr (the decay lags the schedule)",
                      {"previous_lr_decay": True})
    for flag in ("amsgrad", "maximize"):
        if case.hyper.get(flag) and flag not in subject.fixed:
            candidate(f"{flag} ignored (the subject accepts {flag}=True and runs without it)", {flag: False})
    for state_dtype in STATE_DTYPES:
        if tolerance.unit_roundoff(state_dtype) > tolerance.unit_roundoff(dtype):
            candidate(f"optimizer state kept in {state_dtype} (reduced precision)", {"state_dtype": state_dtype})
            if rule.second_moment:
                candidate(f"second moment kept in {state_dtype} (reduced precision)",
                          {"state_dtype": state_dtype,
                           "state_fields": frozenset({rule.second_moment, "max_exp_avg_sq"})})
    if dtype == "float64":
        candidate("hyperparameters rounded to float32 on the way in (as tensorflow#35938)",
                  _through_float32(case.hyper))
        for name, value in case.hyper.items():
            if (rounded := _through_float32({name: value})) != {name: value}:
                candidate(f"{name} alone rounded to float32 on the way in (a float32 kernel attribute, as "
                          "Paddle's AdamW coeff)", rounded)
    return {change.name: change for change in found}


def _through_float32(hyper: dict[str, Any]) -> dict[str, Any]:
    def rounded_value(value: Any) -> Any:
        if isinstance(value, tuple):
            return tuple(rounded_value(v) for v in value)
        if isinstance(value, float):
            return float(np.float32(value))
        return value

    return {k: rounded_value(v) for k, v in hyper.items()}


