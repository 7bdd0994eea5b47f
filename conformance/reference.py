"""The float64 reference a subject is compared with, and a case's inputs as the subject receives them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from optspec import adapters, spec
from optspec.adapters.driver import Dtypes, SubjectInfo, tensor_dtypes
from optspec.conformance import branches

if hasattr(np, "__array_api_version__"):
    # NumPy 2 implements the array API standard itself; array-api-compat's
    # wrapper of it costs every worker 0.1 s of imports (numpy.testing, f2py).
    xp: Any = np
else:  # pragma: no cover  (NumPy 1, as beside MindSpore)
    import array_api_compat.numpy as xp

if TYPE_CHECKING:
    from optspec.conformance.cases import Case


def rounded(framework: str, x: np.ndarray, dtype: str) -> np.ndarray:
    """``x`` rounded to ``dtype`` exactly as the subject receives it, back in float64."""
    if dtype == "float64":
        return np.asarray(x, np.float64)
    if dtype == "bfloat16" or framework != "numpy":
        fw = framework if framework != "numpy" else "torch"
        return adapters.to_numpy(adapters.asarray(fw, x, dtype)).astype(np.float64)
    return np.asarray(x).astype(dtype).astype(np.float64)


def round_to_dtype(x: Any, dtype: str) -> np.ndarray:
    """``x`` rounded to nearest-even in ``dtype`` (float16, bfloat16, float32 or float64), back in float64."""
    x = np.asarray(x, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # beyond the dtype's range is inf, as in the subject
        narrow = x.astype("float32" if dtype == "bfloat16" else dtype)
    if dtype != "bfloat16":
        return narrow.astype(np.float64)
    bits = narrow.view(np.uint32).astype(np.uint64)
    kept = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return kept.astype(np.uint32).view(np.float32).astype(np.float64)


def stored_as(x: np.ndarray, storage: str) -> np.ndarray:
    """``x`` as a state field stored in ``storage`` holds it: rounded to that float dtype, or quantized and
    dequantized in that format of :data:`spec.quantized.FORMATS`."""
    if storage in spec.quantized.FORMATS:
        return spec.quantized.FORMATS[storage].stored(x)
    return round_to_dtype(x, storage)


def reference(rule: str, convention: spec.Knobs | None, case: Case, theta0: np.ndarray, grads: np.ndarray,
              subject_traj: np.ndarray | None = None, *, step_lag: bool = False, step_lead: bool = False,
              second_moment_lag: bool = False, previous_lr_decay: bool = False,
              storage: Mapping[str, str] | None = None, states: list[Any] | None = None,
              held_states: Sequence[Mapping[str, np.ndarray]] | None = None,
              resync_states: list[Any] | None = None, tie_bounds: np.ndarray | None = None,
              **override: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The float64 reference trajectory and, given the subject's, the re-synced one-step references.

    For :func:`optspec.conformance.explain.explain`, single defects can be
    modelled: ``step_lag``, a step counter that lags by one after the first
    step (t = 1, 1, 2, 3, ...); ``step_lead``, one that runs a step early
    (t = 2, 3, 4, ...); ``second_moment_lag``, a second moment's bias
    correction alone that lags by one after the first step (the first
    moment's is on time); ``previous_lr_decay``, a decoupled decay that reads the
    previous step's learning rate (the first step's own at step 1).
    ``storage`` (state field -> dtype, :class:`spec.StateStorage`'s) stores
    those fields of the state rounded to nearest-even in their dtype after
    every step; the certifier passes the subject's, and the diagnosis tries
    others.  ``states``, if given, receives the reference's state after each
    step.  ``held_states[t]`` (state field -> array), if given, replaces
    those fields after step ``t + 1``: the state a subject held there, read
    from it, which both runs step on from (a quantized state is so checked
    one step at a time, :mod:`optspec.conformance.quantized_state`);
    ``resync_states``, if given, receives the state of each re-synced step.
    ``tie_bounds`` (:func:`optspec.conformance.branches.tie_bounds`), given
    the subject's trajectory, for a rule whose step takes a sign: where the
    sign's argument is within them of 0, both runs take the branch the
    subject took (:mod:`optspec.conformance.branches`).
    """
    spec_rule = spec.get_rule(rule)
    hyper = case_hyperparameters(spec_rule, convention, case, **override)
    with np.errstate(all="ignore"):  # a non-finite reference is the checks' business, not a warning's
        return _run(spec_rule, hyper, case.lrs, theta0, grads, subject_traj, step_lag=step_lag,
                    step_lead=step_lead, second_moment_lag=second_moment_lag, previous_lr_decay=previous_lr_decay,
                    storage=storage or {}, states=states, held_states=held_states, resync_states=resync_states,
                    tie_bounds=tie_bounds if spec_rule.sign_argument is not None else None)


def case_hyperparameters(spec_rule: spec.Rule, convention: spec.Knobs | None, case: Case,
                         **override: Any) -> dict[str, Any]:
    """Every hyperparameter of ``spec_rule`` for ``case`` (``override`` over its own), with ``initial_lr``, the
    first step's lr, for a rule that reads it."""
    hyper = spec_rule.hyperparameters(convention, **{**case.hyper, **override})
    if spec_rule.takes_initial_lr:
        hyper["initial_lr"] = case.lrs[0] if case.lrs else 0.0
    return hyper


def initial_state(rule: str, convention: spec.Knobs | None, case: Case, theta0: np.ndarray) -> Any:
    """The state the spec's run of ``case`` starts ``theta0``'s tensor from."""
    spec_rule = spec.get_rule(rule)
    return spec_rule.init_state(xp, theta0, case_hyperparameters(spec_rule, convention, case))


def _run(spec_rule: spec.Rule, hyper: dict[str, Any], lrs: list[float], theta0: np.ndarray, grads: np.ndarray,
         subject_traj: np.ndarray | None, *, step_lag: bool, step_lead: bool, second_moment_lag: bool,
         previous_lr_decay: bool, storage: Mapping[str, str], states: list[Any] | None,
         held_states: Sequence[Mapping[str, np.ndarray]] | None, resync_states: list[Any] | None,
         tie_bounds: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    state = spec_rule.init_state(xp, theta0, hyper)
    if step_lead:
        state = state._replace(step=state.step + 1)
    theta = theta0
    free, resync = [], []
    for t, lr in enumerate(lrs):
        at_step = {**hyper, "decay_lr": lrs[max(t - 1, 0)]} if previous_lr_decay else hyper
        if second_moment_lag:
            at_step = {**at_step, "second_moment_step": max(int(state.step), 1)}
        if subject_traj is not None:
            previous = theta0 if t == 0 else subject_traj[t - 1]
            if tie_bounds is not None:
                tied = branches.tied(spec_rule, grads[t], state, tie_bounds[t], **at_step)
                if tied.any():
                    at_step = {**at_step, "signs": branches.branch_taken(spec_rule, previous, grads[t], state,
                                                                         subject_traj[t], tied, lr=lr, **at_step)}
            if spec_rule.elementwise:  # one step of both, stacked: the free run's and the re-synced one's
                both, both_state = spec_rule.step(xp, np.stack([theta, previous]), grads[t], state, lr=lr,
                                                  **at_step)
                (theta, resynced), (state, resynced_state) = both, _rows(both_state, theta0.ndim)
            else:
                resynced, resynced_state = spec_rule.step(xp, previous, grads[t], state, lr=lr, **at_step)
                theta, state = spec_rule.step(xp, theta, grads[t], state, lr=lr, **at_step)
            resync.append(resynced)
            if resync_states is not None:
                resync_states.append(resynced_state)
        else:
            theta, state = spec_rule.step(xp, theta, grads[t], state, lr=lr, **at_step)
        if step_lag and t == 0:
            state = state._replace(step=0)
        if storage:  # a field another rule's state does not have (the diagnosis runs other rules) is left out
            state = state._replace(**{field: stored_as(getattr(state, field), dtype)
                                      for field, dtype in storage.items() if field in state._fields})
        if held_states is not None and t < len(held_states):
            state = state._replace(**held_states[t])
        free.append(theta)
        if states is not None:
            states.append(state)
    return np.stack(free), (np.stack(resync) if subject_traj is not None else None)


def resynced(rule: str, convention: spec.Knobs | None, case: Case, theta0: np.ndarray, grads: np.ndarray,
             subject_traj: np.ndarray, states: Sequence[Any]) -> np.ndarray:
    """The re-synced one-step references of :func:`reference`, from the states of its free run (``states[t]``
    after step ``t + 1``, as its ``states`` receives them): step ``t`` from the subject's parameters before it
    and the free run's state.  Each is the step :func:`reference` takes (an elementwise rule's stacked step
    rounds each row as its own step does), so the two agree bit for bit."""
    spec_rule = spec.get_rule(rule)
    hyper = case_hyperparameters(spec_rule, convention, case)
    before = [spec_rule.init_state(xp, theta0, hyper), *states[:-1]]
    previous = [theta0, *subject_traj[:-1]]
    with np.errstate(all="ignore"):
        out = [spec_rule.step(xp, p, grads[t], state, lr=lr, **hyper)[0]
               for t, (p, state, lr) in enumerate(zip(previous, before, case.lrs))]
    return np.stack(out) if out else np.zeros((0, *theta0.shape))


def _rows(state: Any, ndim: int) -> tuple[Any, Any]:
    """The states of the two parameters an elementwise step took stacked: each array that the stacking
    reached (one more axis than a parameter) split in two, the others (a step count, a first moment that
    reads only gradients) shared."""
    first, second = {}, {}
    for field, value in zip(state._fields, state):
        if getattr(value, "ndim", 0) == ndim + 1:
            first[field], second[field] = value[0], value[1]
    return state._replace(**first), state._replace(**second)


def prepared(subject: SubjectInfo, case: Case, dtype: Dtypes) -> tuple[Case, list[np.ndarray], list[np.ndarray]]:
    """``case`` with explicit hyperparameters, and its inputs rounded as the subject receives them (each
    tensor in its own dtype where ``dtype`` names one per tensor)."""
    case = dataclasses.replace(case, hyper=explicit_hyperparameters(subject, case.hyper))
    each_dtype = tensor_dtypes(dtype, len(case.params0))
    params0 = [rounded(subject.framework, p, d) for p, d in zip(case.params0, each_dtype)]
    grads = [rounded(subject.framework, g, d) for g, d in zip(case.grads, each_dtype)]
    return case, params0, grads


def explicit_hyperparameters(subject: SubjectInfo, hyper: dict[str, Any]) -> dict[str, Any]:
    """``hyper`` with the spec's default for every other hyperparameter the subject can express.

    Frameworks' defaults differ from the spec's (torch's): RMSprop's decay is
    0.9 in optax and Keras against 0.99, Adagrad's ε is 1e-7 against 1e-10.
    Passing every value explicitly keeps a subject's own default from being
    mistaken for a deviation in its update rule.
    """
    defaults = spec.get_rule(subject.rule).defaults
    filled = {k: v for k, v in defaults.items() if k in subject.supports and k != "lr"}
    return {**filled, **hyper, **subject.fixed}
