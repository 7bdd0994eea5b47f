"""The checks of one case: one-step and trajectory, against bounds from the tolerance model, with evidence.

The reference run is :mod:`optspec.conformance.reference`, what the bounds
read along it is :mod:`optspec.conformance.tolerance_inputs`, and the
diagnosis of a failure is :mod:`optspec.conformance.explain`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from optspec import adapters, spec
from optspec.adapters.driver import Dtypes, SubjectInfo, tensor_dtypes
from optspec.conformance import (
    bias,
    branches,
    free_run,
    kahan,
    quantized_state,
    rounding,
    tolerance,
)
from optspec.conformance.cases import Case
from optspec.conformance.explain import Change, FailurePoint, explain, explain_non_finite
from optspec.conformance.reference import initial_state, prepared, reference, resynced
from optspec.conformance.tolerance_inputs import l2_feedback, update_magnitude


@dataclasses.dataclass
class CheckResult:
    """The outcome of one case.

    ``worst`` is the largest error/bound ratio of each check (<= 1 passes);
    ``per_step`` holds, for the worst tensor of the failing check, the error
    and bound at each step; ``hint`` is the diagnosis, and ``change`` the
    single change it names, if any.  ``run`` keeps the subject's inputs and
    trajectory (``run_case(keep_run=True)``), so that a later diagnosis can be
    checked against this case.  ``rounding_tested`` names the halves of the
    interval whose bias the check of stochastic rounding tested
    (:func:`optspec.conformance.rounding.check_stochastic`'s ``tested``), where it ran.
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
    change: Change | None = None
    run: tuple[list[np.ndarray], list[np.ndarray], adapters.Trajectory] | None = None
    rounding_tested: set[str] = dataclasses.field(default_factory=set)


def _ratio(error: np.ndarray, bound: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(error == 0, 0.0, error / bound)
    return np.nan_to_num(ratio, nan=np.inf, posinf=np.inf)


def refused_edge(subject: SubjectInfo, case: Case, *, dtype: str, device: str | None = None,
                 time_limit_s: float | None = 30.0) -> str | None:
    """Why ``case`` does not apply to ``subject``: its constructor refuses the case's edge values, or None.

    The subject is built, without a step, with the case's hyperparameters and
    then without those of :attr:`Case.refusable` (their defaults).  Only a
    construction that fails with the edge values and succeeds without them
    is a refusal (MLX's Adagrad raises on ε = 0); any other failure is left
    to the case, where it fails.
    """
    edge = frozenset(k for k in case.hyper if k in case.refusable)
    if not edge:
        return None
    return _refusal(subject, case, [edge], dtype=dtype, device=device, time_limit_s=time_limit_s)


def refused_value(subject: SubjectInfo, case: Case, *, dtype: str, device: str | None = None,
                  time_limit_s: float | None = 30.0) -> str | None:
    """Why a drawn ``case`` does not apply to ``subject``: its constructor refuses one of its values, or None.

    As :func:`refused_edge`, for each hyperparameter in turn: the first whose
    default, in place of the drawn value, lets the constructor that refused
    the case accept it (MindSpore's Adam takes β1 in the open interval (0, 1)
    only, where the spec's domain includes 0).
    """
    return _refusal(subject, case, [frozenset({k}) for k in sorted(case.hyper)], dtype=dtype, device=device,
                    time_limit_s=time_limit_s)


def _refusal(subject: SubjectInfo, case: Case, suspects: list[frozenset[str]], *, dtype: str,
             device: str | None, time_limit_s: float | None) -> str | None:
    def construct(hyper: dict[str, Any]) -> None:
        adapters.drive(subject, [np.array([0.5])], [np.zeros((0, 1))], [], hyper, dtype=dtype, device=device,
                       time_limit_s=time_limit_s, label=f"construction for case {case.label}")

    try:
        construct(case.hyper)
        return None
    except adapters.SubjectError as exc:
        refusal = str(exc)
    for keys in suspects:
        try:
            construct({k: v for k, v in case.hyper.items() if k not in keys})
        except adapters.SubjectError:
            continue
        values = ", ".join(f"{k}={case.hyper[k]!r}" for k in sorted(keys))
        return f"{case.label}: the constructor refuses {values} ({refusal.partition(': ')[2] or refusal})"
    return None


def run_case(subject: SubjectInfo, case: Case, *, convention: spec.Knobs | None, dtype: str = "float64",
             device: str | None = None, time_limit_s: float | None = 30.0,
             stored: tuple[np.ndarray, list[np.ndarray]] | None = None, keep_run: bool = False) -> CheckResult:
    """Drives ``subject`` on ``case`` and checks it against the spec in ``convention``.

    With ``stored = (steps, trajectories)`` (a golden file), the trajectory
    check compares against the stored values at those 1-based steps instead of
    the spec's run.  Raises :class:`adapters.SubjectError` if the subject
    raises or hangs.
    """
    dtype = case.dtypes(dtype)
    case, params0, grads = prepared(subject, case, dtype)
    got = adapters.drive(subject, params0, grads, case.lrs, case.hyper, dtype=dtype, device=device,
                         restore_at=case.restore_at, time_limit_s=time_limit_s, label=case.short(),
                         resume_world_size=case.resume_world_size)
    result = check_run(subject, case, params0, grads, got, convention=convention, dtype=dtype, stored=stored)
    if keep_run:
        result.run = (params0, grads, got)
    return result


def check_trajectory(subject: SubjectInfo, case: Case, params0: list[np.ndarray], grads: list[np.ndarray],
                     got: adapters.Trajectory, *, convention: spec.Knobs | None, dtype: Dtypes,
                     stored: tuple[np.ndarray, list[np.ndarray]] | None = None,
                     explain_failure: bool = True, stop_at_failure: bool = True,
                     change: Change | None = None, of_several_dtypes: bool = False) -> CheckResult:
    """The one-step and trajectory checks of what ``subject`` produced on the :func:`prepared` case.

    With ``stop_at_failure=False`` every tensor and check is scored (``worst``
    is then the largest error/bound of all) and the first failure is kept;
    ``explain_failure=False`` leaves out the hint, which re-runs the reference
    once per candidate knob.  With ``change``, the expected behaviour is that
    single change's (:class:`~optspec.conformance.explain.Change`), with the
    same bounds.  Each tensor is held to its own dtype's bounds (``dtype``
    may name one per tensor); in a model of several dtypes
    (``of_several_dtypes``, or ``dtype`` naming more than one), a failure
    names the tensor's.
    """
    result = CheckResult(case=case, passed=True, worst={"one_step": 0.0, "trajectory": 0.0})
    # what the subject is held to: with a change, that change's rule and convention, bounds included
    rule, expected_convention, expected_case = subject.rule, convention, case
    override = dict(change.override) if change is not None else {}
    storage = {**subject.state_storage, **override.pop("storage", {})}
    if change is not None:
        rule, expected_convention, expected_case = change.rule, change.convention, change.applied_to(case)
    each_dtype = tensor_dtypes(dtype, len(params0))
    mixed = of_several_dtypes or len(set(each_dtype)) > 1
    if got.mutated_at is not None:
        return _fail(result, "gradient-mutation", got.mutated_at,
                     f"the subject changed the gradient it was given at step {got.mutated_at}"
                     + _scratch(params0, got, each_dtype,
                                case.lrs[got.mutated_at - 1] * float(case.hyper.get("weight_decay") or 0.0)))
    for index, (theta0, g, traj, tensor_dtype) in enumerate(zip(params0, grads, got.params, each_dtype)):
        traj = traj.astype(np.float64)
        states: list[Any] = []
        resync_states: list[Any] = []
        formats = quantized_state.formats_for(storage, rule, theta0.size)
        if (why := quantized_state.unread(got, index, formats)) is not None:
            raise adapters.SetupError(f"{subject.name}: {why}")
        formats = quantized_state.present(got, index, formats)
        if formats and (undecodable := quantized_state.malformed(got, index, theta0.shape, formats)):
            return _fail(result, "state", *undecodable)
        held = quantized_state.held_states(got, index, formats) if formats else None
        float_storage = quantized_state.float_storage(storage, theta0.size)
        state_dtype = coarsest_storage(float_storage, tensor_dtype)
        ties = branches.tie_bounds(rule, expected_convention, expected_case, g, tensor_dtype, state_dtype,
                                   subject.holds_hyperparameters_in_dtype)
        # a golden replay's free run is kept on disk: only the re-synced steps read the subject (where a tie
        # makes the run follow the subject's branch, it reads the subject too)
        kept_as = (free_run.key(rule, expected_convention, expected_case, theta0, g, float_storage)
                   if stored is not None and change is None and held is None and ties is None else None)
        kept = kept_as and free_run.load(kept_as, initial_state(rule, expected_convention, expected_case, theta0))
        if kept:
            free, states, parts = kept.free, kept.states, kept.magnitude
            resync = resynced(rule, expected_convention, expected_case, theta0, g, traj, states)
        else:
            free, resync = reference(rule, expected_convention, expected_case, theta0, g, traj, states=states,
                                     storage=float_storage, held_states=held, resync_states=resync_states,
                                     tie_bounds=ties, **override)
            parts = update_magnitude(rule, expected_convention, expected_case, g,
                                     np.concatenate([theta0[None], free[:-1]]))
            if kept_as:
                free_run.save(kept_as, free_run.FreeRun(free, states, parts))
        for field, (position, fmt) in formats.items():
            initial = getattr(initial_state(rule, expected_convention, expected_case, theta0), field)
            previous = [initial, *(h[field] for h in held[:-1])]
            stored_wrong = quantized_state.check_stored(got.quantized, index, field, position, fmt, previous,
                                                        [getattr(r, field) for r in resync_states])
            if stored_wrong is not None:
                _fail(result, "state", *stored_wrong)
                if stop_at_failure:
                    return result
        finite = np.isfinite(free)
        bad = finite & ~np.isfinite(traj)
        if bad.any():
            step = int(np.argwhere(bad)[0][0]) + 1
            _fail(result, "non-finite", step,
                  f"{_tensor_name(got, index, tensor_dtype if mixed else None)} is {float(traj[bad][0])} at step {step} where the reference is "
                  "finite")
            if explain_failure and change is None:
                diagnosis = explain_non_finite(subject, convention, case, tensor_dtype, functools.partial(
                    _conforms_with, subject, case, params0, grads, got, convention, stored, dtype),
                    got.storage_dtypes)
                if diagnosis is not None:
                    result.hint, result.change = diagnosis.text, diagnosis.change
            return result
        previous = np.concatenate([theta0[None], traj[:-1]])
        steps = np.arange(1, case.steps + 1).reshape((-1,) + (1,) * theta0.ndim)
        betas = _betas(rule, expected_case.hyper)
        free_previous = np.concatenate([theta0[None], free[:-1]])
        feedback = l2_feedback(rule, expected_convention, expected_case, states)
        one_step = tolerance.one_step_bound(previous, np.maximum(np.abs(resync - previous), parts),
                                            steps, tensor_dtype, betas, state_dtype)
        if feedback is not None:
            # The subject's state was built from its own earlier parameters.
            inherited = np.maximum.accumulate(np.abs(traj - free), axis=0)[:-2]
            one_step[2:] += feedback[2:] * inherited
        # Each check is (expected, compared, bound): the numbers a failure prints are the ones compared.
        expected_trajectory, compared = free, np.ones(free.shape, bool)
        if stored is not None:  # a golden file: the stored values, at the steps it keeps
            expected_trajectory, compared = free.copy(), np.zeros(free.shape, bool)
            expected_trajectory[stored[0] - 1] = stored[1][index]
            compared[stored[0] - 1] = True
        checks = {
            "one_step": (resync, np.ones(free.shape, bool), one_step),
            "trajectory": (expected_trajectory, compared,
                           tolerance.trajectory_bounds(theta0, free, tensor_dtype, betas, update=parts,
                                                       feedback=feedback, state_dtype=state_dtype)),
        }
        if spec.StateStorage(storage).param_rounding() == "stochastic" and rounding.applies_to(tensor_dtype):
            magnitude = np.maximum(np.abs(resync - previous), parts)
            # the kernel steps in float32: a state stored in its parameters' dtype is coarser than that
            slack = rounding.slack(previous, magnitude, steps, coarsest_storage(float_storage, "float32"))
            if (biased := rounding.check_stochastic(resync, traj, slack, tensor_dtype, _tensor_name(got, index),
                                                    result.rounding_tested)) is not None:
                _fail(result, "rounding", *biased)
                if stop_at_failure:
                    return result
        if spec.StateStorage(storage).param_rounding() == "kahan" and kahan.applies_to(tensor_dtype):
            lost = _kahan_violation(subject, rule, expected_convention, expected_case, theta0, g, got, index, traj,
                                    free, parts, feedback, tensor_dtype, state_dtype, float_storage, held, override)
            if lost is not None:
                _fail(result, "rounding", *lost)
                if stop_at_failure:
                    return result
        error = np.abs(traj - free)
        if error.size:
            scale = np.maximum.accumulate(np.maximum.reduce([np.abs(free), np.abs(free_previous), parts]), axis=0)
            in_ulps = np.where(finite, tolerance.ulps(error, scale, tensor_dtype), 0.0)
            result.worst_ulps = max(result.worst_ulps, float(in_ulps.max()))
        for name, (expected, compared, bound) in checks.items():
            error = np.where(compared, np.abs(traj - expected), 0.0)
            ratio = np.where(finite, _ratio(error, bound), 0.0)
            result.worst[name] = max(result.worst[name], float(ratio.max(initial=0.0)))
            if (ratio > 1).any():
                flat = ratio.reshape(case.steps, -1)
                step = int(np.argwhere(flat > 1)[0][0]) + 1
                element = tuple(int(i) for i in np.unravel_index(int(np.argmax(flat[step - 1])), theta0.shape))
                worst_at = (step - 1, *element)
                detail = (f"{_tensor_name(got, index, tensor_dtype if mixed else None)} element {element} at step {step}: "
                          f"got {float(traj[worst_at])!r}, "
                          f"expected {float(expected[worst_at])!r}, "
                          f"|error| {error[worst_at]:.3g} > bound {bound[worst_at]:.3g}")
                per_step = [(float(e.max()), float(b.reshape(-1)[int(np.argmax(e.reshape(-1)))]))
                            for e, b in zip(error.reshape(case.steps, -1), bound.reshape(case.steps, -1))]
                if result.passed:
                    _fail(result, name, step, detail, per_step)
                    if explain_failure:
                        diagnosis = explain(subject, convention, case, theta0, g, traj, tensor_dtype,
                                            ratio_with=functools.partial(
                                                _worst_ratio_with, subject, case, params0, grads, got, convention,
                                                dtype),
                                            failed=FailurePoint(name, worst_at, float(error[worst_at]),
                                                                float(ratio[worst_at])),
                                            storage_dtypes=got.storage_dtypes, tie_bounds=ties,
                                            worst_ratio_in=functools.partial(
                                                _worst_ratio_in, subject, case, params0, grads, got,
                                                convention, stored))
                        result.hint, result.change = diagnosis.text, diagnosis.change
                if stop_at_failure:
                    return result
        if (result.passed and change is None and stored is None
                and spec.get_rule(rule).rounded_parts == 1
                and bias.applies_to(tensor_dtype, theta0.size, spec.StateStorage(storage).param_rounding())):
            state_roundoff = 0.0 if held is not None and set(formats) >= set(spec.get_rule(rule).state_fields) else (
                _state_roundoff(got, float_storage, tensor_dtype))
            biased = _bias_violation(subject, rule, expected_convention, expected_case, theta0, g, traj, resync,
                                     previous, steps, tensor_dtype, float_storage, held, ties, state_roundoff,
                                     _tensor_name(got, index))
            if biased is not None:
                _fail(result, "bias", *biased)
                if stop_at_failure:
                    return result
    return result


def _kahan_violation(subject: SubjectInfo, rule: str, convention: spec.Knobs | None, case: Case,
                     theta0: np.ndarray, g: np.ndarray, got: adapters.Trajectory, index: int, traj: np.ndarray,
                     free: np.ndarray, parts: np.ndarray, feedback: np.ndarray | None, dtype: str,
                     state_dtype: str | None, storage: Mapping[str, str], held: Any, override: Mapping[str, Any]
                     ) -> tuple[int, str] | None:
    """Where tensor ``index``'s Kahan-compensated sum leaves its bounds (:mod:`optspec.conformance.kahan`):
    one step from the subject's own compensated sum, and the free run; None where it stays within them."""
    total = kahan.compensated(got, index, traj, subject.name)
    _, total_resync = reference(rule, convention, case, theta0, g, total, storage=storage, held_states=held,
                                **override)
    previous = np.concatenate([theta0[None], total[:-1]])
    steps = np.arange(1, case.steps + 1).reshape((-1,) + (1,) * theta0.ndim)
    betas, roundoff = _betas(rule, case.hyper), kahan.param_roundoff(dtype)
    one_step = tolerance.one_step_bound(previous, np.maximum(np.abs(total_resync - previous), parts), steps, dtype,
                                        betas, state_dtype, roundoff)
    if feedback is not None:  # as the parameters' own one-step bound: the state was built from the subject's
        one_step[2:] += feedback[2:] * np.maximum.accumulate(np.abs(total - free), axis=0)[:-2]
    trajectory = tolerance.trajectory_bounds(theta0, free, dtype, betas, update=parts, feedback=feedback,
                                             state_dtype=state_dtype, param_roundoff=roundoff)
    lrs = np.asarray(case.lrs, np.float64).reshape(steps.shape)
    decay = lrs * float(case.hyper.get("weight_decay") or 0.0) * np.abs(previous)
    return kahan.first_violation([("one step", total, total_resync, one_step), ("trajectory", total, free, trajectory)],
                                 decay, _tensor_name(got, index))


def _bias_violation(subject: SubjectInfo, rule: str, convention: spec.Knobs | None, case: Case,
                    theta0: np.ndarray, g: np.ndarray, traj: np.ndarray, resync: np.ndarray, previous: np.ndarray,
                    steps: np.ndarray, dtype: str, storage: Mapping[str, str], held: Any, ties: Any,
                    state_roundoff: float, name: str) -> tuple[int, str] | None:
    """Where tensor ``theta0``'s steps are biased beyond the rounding a correct kernel may do
    (:mod:`optspec.conformance.bias`), from its own parameters before each step; None where they are not."""
    spec_rule = spec.get_rule(rule)

    def run(hyper: Mapping[str, Any], lr_scale: float) -> np.ndarray:
        moved = dataclasses.replace(case, hyper=dict(hyper), lrs=[lr * lr_scale for lr in case.lrs])
        return reference(rule, convention, moved, theta0, g, traj, storage=storage, held_states=held,
                         tie_bounds=ties)[1]

    found = bias.directions(run, case.hyper, resync, dtype,
                            bias.scalar_roundoff(case.hyper, case.lrs, dtype, spec_rule.bias_corrected))
    decay = None
    if spec_rule.decay_mode(convention) == "decoupled":
        off = {k: v for k, v in spec_rule.off_values.items() if case.hyper.get(k, v) != v}
        decay = resync - run({**case.hyper, **off}, 1.0) if off else None
    exact = bias.ExactStep(previous, resync, decay,
                           bias.allowance(previous, resync, decay, found, steps, state_roundoff))
    return bias.first_bias(exact, traj, found, dtype, name)


def _state_roundoff(got: adapters.Trajectory, storage: Mapping[str, str], dtype: str) -> float:
    """The unit roundoff of the coarsest float dtype a subject may hold its state in: of those it was seen
    holding and those declared, or its parameters' where it does not say."""
    seen = {d for d in got.storage_dtypes if d in tolerance.UNIT_ROUNDOFF} or {dtype}
    return max(tolerance.unit_roundoff(d) for d in seen | {d for d in storage.values() if d in tolerance.UNIT_ROUNDOFF})


def check_run(subject: SubjectInfo, case: Case, params0: list[np.ndarray], grads: list[np.ndarray],
              got: adapters.Trajectory, **options: Any) -> CheckResult:
    """:func:`check_trajectory`, or :func:`check_views` for a sharded run (``options`` are theirs)."""
    return (check_views if got.views else check_trajectory)(subject, case, params0, grads, got, **options)


def check_views(subject: SubjectInfo, case: Case, params0: list[np.ndarray], grads: list[np.ndarray],
                got: adapters.Trajectory, *, convention: spec.Knobs | None, dtype: Dtypes,
                stored: tuple[np.ndarray, list[np.ndarray]] | None = None, explain_failure: bool = True,
                **options: Any) -> CheckResult:
    """:func:`check_trajectory` of each :class:`~optspec.adapters.driver.View` of a sharded run: what one
    rank held of one tensor, against the spec's run of that part (the rules are elementwise), with the same
    tolerance model.  The failure is the view that failed at the earliest step, diagnosed and named;
    ``options`` go to :func:`check_trajectory`."""
    checked = []
    each_dtype = tensor_dtypes(dtype, len(params0))
    options["of_several_dtypes"] = len(set(each_dtype)) > 1
    for k, view in enumerate(got.views):
        rows = (slice(*view.rows),) if view.rows is not None and params0[view.tensor].ndim else ()
        every = (slice(None), *rows)  # every step
        part = dataclasses.replace(case, params0=[case.params0[view.tensor][rows]],
                                   grads=[case.grads[view.tensor][every]], companion_tensors=frozenset())
        part_stored = None if stored is None else (stored[0], [stored[1][view.tensor][every]])
        held = dataclasses.replace(got, params=[got.params[k]], views=[view],
                                   compensation=[step[k:k + 1] for step in got.compensation])
        inputs = (subject, part, [params0[view.tensor][rows]], [grads[view.tensor][every]], held)
        checked.append((inputs, part_stored, each_dtype[view.tensor],
                        check_trajectory(*inputs, convention=convention, dtype=each_dtype[view.tensor],
                                         stored=part_stored, explain_failure=False, **options)))
    result = CheckResult(case=case, passed=True,
                         worst={name: max((r.worst[name] for *_, r in checked), default=0.0)
                                for name in ("one_step", "trajectory")},
                         worst_ulps=max((r.worst_ulps for *_, r in checked), default=0.0),
                         rounding_tested=set().union(*(r.rounding_tested for *_, r in checked)))
    failed = [item for item in checked if not item[-1].passed]
    if not failed:
        return result
    inputs, part_stored, view_dtype, first = min(failed, key=lambda item: item[-1].step or 0)
    if explain_failure:
        first = check_trajectory(*inputs, convention=convention, dtype=view_dtype, stored=part_stored, **options)
    return dataclasses.replace(first, case=case, worst=result.worst, worst_ulps=result.worst_ulps,
                               rounding_tested=result.rounding_tested)


def coarsest_storage(storage: Mapping[str, str], dtype: str) -> str | None:
    """The dtype of ``storage`` (state field -> dtype) with the largest unit roundoff, where coarser than ``dtype``."""
    coarser = [d for d in storage.values() if tolerance.unit_roundoff(d) > tolerance.unit_roundoff(dtype)]
    return max(coarser, key=tolerance.unit_roundoff, default=None)


def _conforms_with(subject: SubjectInfo, case: Case, params0: list[np.ndarray], grads: list[np.ndarray],
                   got: adapters.Trajectory, convention: spec.Knobs | None,
                   stored: tuple[np.ndarray, list[np.ndarray]] | None, dtype: Dtypes, change: Change) -> bool:
    """Whether the case passes every check against the reference with ``change``."""
    return check_trajectory(subject, case, params0, grads, got, convention=convention, dtype=dtype, stored=stored,
                            explain_failure=False, change=change).passed


def _worst_ratio_in(subject: SubjectInfo, case: Case, params0: list[np.ndarray], grads: list[np.ndarray],
                    got: adapters.Trajectory, convention: spec.Knobs | None,
                    stored: tuple[np.ndarray, list[np.ndarray]] | None, dtype: Dtypes) -> float:
    """The case's worst error/bound over every tensor and check with ``dtype``'s tolerance model (inf for NaN)."""
    return _worst(check_trajectory(subject, case, params0, grads, got, convention=convention, dtype=dtype,
                                   stored=stored, explain_failure=False, stop_at_failure=False))


def _scratch(params0: list[np.ndarray], got: adapters.Trajectory, each_dtype: list[str], decay: float) -> str:
    r"""What a gradient the subject changed holds, where it is the parameters' change at that step
    (:math:`\theta_{t-1} - \theta_t`, to its dtype's rounding, give or take the decay's part
    ``decay`` :math:`\cdot|\theta_{t-1}|`, which a kernel may apply first): the scratch space of Kahan
    summation."""
    step = got.mutated_at
    if not got.mutated_to or got.views or len(got.mutated_to) != len(params0):
        return ""
    for theta0, traj, held, dtype in zip(params0, got.params, got.mutated_to, each_dtype):
        before = theta0 if step == 1 else traj[step - 2]
        change = np.asarray(before, np.float64) - traj[step - 1].astype(np.float64)
        allowed = tolerance.unit_roundoff(dtype) * np.abs(change) + 2 * decay * np.abs(before)
        if held.shape != change.shape or not np.any(change) or (
                np.abs(held.astype(np.float64) - change) > allowed).any():
            return ""
    return (": each gradient holds the parameters' change at that step, theta_(t-1) - theta_t (give or take the "
            "weight decay's part), as Kahan "
            "summation's scratch space does (optimi's kahan_sum: grad.copy_(param), then grad.sub_(param)); a "
            "kernel may not write into the gradient it is given (gradient accumulation, another optimizer or a "
            "clipping hook reads it): keep the scratch in a buffer of its own")


def _worst_ratio_with(subject: SubjectInfo, case: Case, params0: list[np.ndarray], grads: list[np.ndarray],
                      got: adapters.Trajectory, convention: spec.Knobs | None, dtype: Dtypes, change: Change
                      ) -> float:
    """The case's worst error/bound over every tensor and check against the spec's run with ``change`` (inf for
    NaN or a non-finite value where that run is finite); a golden file's stored values are the unchanged
    spec's, so the change is held to its own run at every step."""
    return _worst(check_trajectory(subject, case, params0, grads, got, convention=convention, dtype=dtype,
                                   explain_failure=False, stop_at_failure=False, change=change))


def _worst(result: CheckResult) -> float:
    return max(result.worst.values()) if result.passed or result.check in result.worst else float("inf")


def _tensor_name(got: adapters.Trajectory, index: int, dtype: str | None = None) -> str:
    """Tensor ``index`` of the case in a failure's words, or what one rank held of it (a sharded run); with
    ``dtype``, in a model of several dtypes, its own."""
    name = got.views[index].name if got.views else f"tensor {index}"
    return name if dtype is None else f"{name}, in {dtype},"


def _betas(rule: str, hyper: dict[str, Any]) -> tuple[float, float] | None:
    """The β whose bias corrections the tolerance model conditions on: None for a rule without them."""
    spec_rule = spec.get_rule(rule)
    if "betas" not in spec_rule.defaults or not spec_rule.bias_corrected:
        return None
    return tuple(hyper.get("betas", spec_rule.defaults["betas"]))


def _fail(result: CheckResult, check: str, step: int, detail: str,
          per_step: list[tuple[float, float]] | None = None) -> CheckResult:
    result.passed = False
    result.check, result.step, result.failure = check, step, detail
    result.per_step = per_step or []
    return result


