"""Running one case against the reference: the one-step and trajectory checks, with evidence."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from optspec import adapters, spec
from optspec.adapters.driver import SubjectInfo
from optspec.conformance import tolerance
from optspec.conformance.cases import Case
from optspec.conformance.reference import prepared, reference
from optspec.spec.conventions import KNOB_VALUES


@dataclasses.dataclass
class CheckResult:
    """The outcome of one case.

    ``worst`` is the largest error/bound ratio of each check (<= 1 passes);
    ``per_step`` holds, for the worst tensor of the failing check, the error
    and bound at each step.
    """

    case: Case
    passed: bool
    worst: dict[str, float]
    worst_ulps: float = 0.0
    failure: str | None = None
    check: str | None = None
    step: int | None = None
    per_step: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    hint: str | None = None


def _ratio(error: np.ndarray, bound: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(error == 0, 0.0, error / bound)
    return np.nan_to_num(ratio, nan=np.inf, posinf=np.inf)


def run_case(subject: SubjectInfo, case: Case, *, convention: Any, dtype: str = "float64",
             device: str | None = None, time_limit_s: float | None = 30.0,
             stored: tuple[np.ndarray, list[np.ndarray]] | None = None) -> CheckResult:
    """Drives ``subject`` on ``case`` and checks it against the spec in ``convention``.

    With ``stored = (steps, trajectories)`` (a golden file), the trajectory
    check compares against the stored values at those 1-based steps instead of
    the spec's run.  Raises :class:`adapters.SubjectError` if the subject
    raises or hangs.
    """
    case, params0, grads = prepared(subject, case, dtype)
    got = adapters.drive(subject, params0, grads, case.lrs, case.hyper, dtype=dtype, device=device,
                         restore_at=case.restore_at, time_limit_s=time_limit_s, label=case.short())
    return check_trajectory(subject, case, params0, grads, got, convention=convention, dtype=dtype,
                            stored=stored)


def check_trajectory(subject: SubjectInfo, case: Case, params0: list[np.ndarray], grads: list[np.ndarray],
                     got: adapters.Trajectory, *, convention: Any, dtype: str,
                     stored: tuple[np.ndarray, list[np.ndarray]] | None = None,
                     explain_failure: bool = True, stop_at_failure: bool = True) -> CheckResult:
    """The one-step and trajectory checks of what ``subject`` produced on the :func:`prepared` case.

    With ``stop_at_failure=False`` every tensor and check is scored (``worst``
    is then the largest error/bound of all) and the first failure is kept;
    ``explain_failure=False`` leaves out the hint, which re-runs the reference
    once per candidate knob.
    """
    result = CheckResult(case=case, passed=True, worst={"one_step": 0.0, "trajectory": 0.0})
    if got.mutated_at is not None:
        return _fail(result, "gradient-mutation", got.mutated_at,
                     f"the subject changed the gradient it was given at step {got.mutated_at}")
    for index, (theta0, g, traj) in enumerate(zip(params0, grads, got.params)):
        traj = traj.astype(np.float64)
        states: list[Any] = []
        free, resync = reference(subject.rule, convention, case, theta0, g, traj, states=states)
        finite = np.isfinite(free)
        bad = finite & ~np.isfinite(traj)
        if bad.any():
            step = int(np.argwhere(bad)[0][0]) + 1
            return _fail(result, "non-finite", step,
                         f"tensor {index} is {float(traj[bad][0])} at step {step} where the reference is finite")
        previous = np.concatenate([theta0[None], traj[:-1]])
        steps = np.arange(1, case.steps + 1).reshape((-1,) + (1,) * theta0.ndim)
        betas = _betas(subject.rule, case.hyper)
        free_previous = np.concatenate([theta0[None], free[:-1]])
        parts = update_magnitude(subject.rule, convention, case, g, free_previous)
        feedback = l2_feedback(subject.rule, convention, case, states)
        one_step = tolerance.one_step_bound(previous, np.maximum(np.abs(resync - previous), parts),
                                            steps, dtype, betas)
        if feedback is not None:
            # The subject's state was built from its own earlier parameters.
            inherited = np.maximum.accumulate(np.abs(traj - free), axis=0)[:-2]
            one_step[2:] += feedback[2:] * inherited
        checks = {
            "one_step": (np.abs(traj - resync), one_step),
            "trajectory": (np.abs(traj - free),
                           tolerance.trajectory_bounds(theta0, free, dtype, betas, update=parts,
                                                       feedback=feedback)),
        }
        if stored is not None:
            kept = stored[0] - 1
            error, bound = checks["trajectory"]
            checks["trajectory"] = (np.zeros_like(error), bound)
            checks["trajectory"][0][kept] = np.abs(traj[kept] - stored[1][index])
        error = np.abs(traj - free)
        if error.size:
            scale = np.maximum.accumulate(np.maximum.reduce([np.abs(free), np.abs(free_previous), parts]), axis=0)
            in_ulps = np.where(finite, tolerance.ulps(error, scale, dtype), 0.0)
            result.worst_ulps = max(result.worst_ulps, float(in_ulps.max()))
        for name, (error, bound) in checks.items():
            ratio = np.where(finite, _ratio(error, bound), 0.0)
            result.worst[name] = max(result.worst[name], float(ratio.max(initial=0.0)))
            if (ratio > 1).any():
                flat = ratio.reshape(case.steps, -1)
                step = int(np.argwhere(flat > 1)[0][0]) + 1
                element = tuple(int(i) for i in np.unravel_index(int(np.argmax(flat[step - 1])), theta0.shape))
                worst_at = (step - 1, *element)
                detail = (f"tensor {index} element {element} at step {step}: got {float(traj[worst_at])!r}, "
                          f"expected {float((resync if name == 'one_step' else free)[worst_at])!r}, "
                          f"|error| {error[worst_at]:.3g} > bound {bound[worst_at]:.3g}")
                per_step = [(float(e.max()), float(b.reshape(-1)[int(np.argmax(e.reshape(-1)))]))
                            for e, b in zip(error.reshape(case.steps, -1), bound.reshape(case.steps, -1))]
                if result.passed:
                    _fail(result, name, step, detail, per_step)
                    if explain_failure:
                        result.hint = explain(subject, convention, case, theta0, g, traj, dtype)
                if stop_at_failure:
                    return result
    return result


def update_magnitude(rule: str, convention: Any, case: Case, grads: np.ndarray,
                     theta_path: np.ndarray | None = None) -> np.ndarray:
    r""":math:`M_t`: the rule's update on :math:`|g|` from zero without weight decay.

    It sums magnitudes where the real update may cancel (see :mod:`optspec.conformance.tolerance`).
    A moment kept as ``m + (1-β)(g - m)`` (torch's ``lerp``, Keras) rounds at
    the scale of the previous moment, so the previous step's update, scaled
    by the change of lr and by 2 for the change of the bias corrections and
    of :math:`\sqrt{\hat v}`, is a floor.
    """
    spec_rule = spec.get_rule(rule)
    l2_in_gradient = spec_rule.weight_decay == "l2"
    theta0 = np.zeros(grads.shape[1:])
    hyper = {**case.hyper, "maximize": False} if "maximize" in case.hyper else case.hyper
    magnitudes = np.abs(grads)
    if "weight_decay" in hyper:
        if l2_in_gradient and theta_path is not None:
            # An L2 term enters the gradient: g + λθ may cancel, so count |g| + λ|θ|.
            magnitudes = magnitudes + hyper["weight_decay"] * np.abs(theta_path)
        hyper = {**hyper, "weight_decay": 0.0}
    free, _ = reference(rule, convention, dataclasses.replace(case, hyper=hyper), theta0, magnitudes)
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


def l2_feedback(rule: str, convention: Any, case: Case, states: list[Any]) -> np.ndarray | None:
    r""":math:`\lambda A_t` per step along the reference, for an adaptive rule with an L2 term; None otherwise.

    :math:`A_t` is :func:`conformance.tolerance.adam_gradient_sensitivity` of the
    rule's own :math:`(\hat m_t, D_t)` (:attr:`spec.Rule.corrected_moments`).
    """
    spec_rule = spec.get_rule(rule)
    weight_decay = float(case.hyper.get("weight_decay", 0.0))
    moments = spec_rule.corrected_moments
    if spec_rule.weight_decay != "l2" or moments is None or weight_decay == 0 or not states:
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


def _through_float32(hyper: dict[str, Any]) -> dict[str, Any]:
    def rounded_value(value: Any) -> Any:
        if isinstance(value, tuple):
            return tuple(rounded_value(v) for v in value)
        if isinstance(value, float):
            return float(np.float32(value))
        return value

    return {k: rounded_value(v) for k, v in hyper.items()}


def _betas(rule: str, hyper: dict[str, Any]) -> tuple[float, float] | None:
    defaults = spec.get_rule(rule).defaults
    if "betas" not in defaults:
        return None
    return tuple(hyper.get("betas", defaults["betas"]))


def _fail(result: CheckResult, check: str, step: int, detail: str,
          per_step: list[tuple[float, float]] | None = None) -> CheckResult:
    result.passed = False
    result.check, result.step, result.failure = check, step, detail
    result.per_step = per_step or []
    return result


#: A knob is named only if the reference with it leaves at most this fraction of the error.
HINT_THRESHOLD = 0.1

#: Dtypes a subject may keep its optimizer state in, tried as explanations.
STATE_DTYPES = ("bfloat16", "float16")


def explain(subject: SubjectInfo, convention: Any, case: Case, theta0: np.ndarray, grads: np.ndarray,
            traj: np.ndarray, dtype: str) -> str:
    """The single change to the expected behaviour that explains ``traj``, if one does.

    Tries every other value of every convention knob, L2 in place of
    decoupled decay, an ignored ``amsgrad`` or ``maximize``, the state kept
    in a reduced dtype, and (in float64) hyperparameters rounded to float32.
    A change is named only when the reference with it leaves at most
    :data:`HINT_THRESHOLD` of the error; otherwise nothing is named.
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
    scale = float(np.nanmax(np.abs(np.diff(np.concatenate([theta0[None], base_free]), axis=0)))) or 1.0
    relative = base / scale
    if dtype in ("float32", "float64") and 2.0**-14 < relative < 2.0**-4:
        verdict += (f"; the error is {relative:.2g} of the largest step, the size of bfloat16/float16 roundoff, "
                    "so arithmetic in reduced precision is possible (not reproduced by any change tried)")
    return verdict
