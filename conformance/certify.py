"""``certify``: named cases, hypothesis cases (shrunk on failure) and golden replay, into a Certificate."""

from __future__ import annotations

import dataclasses
import functools
import shlex
import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from optspec import adapters, spec
from optspec.adapters.driver import SubjectInfo
from optspec.conformance import bias, drawn_cache
from optspec.conformance.batched import run_batched, run_each
from optspec.conformance.cases import COMPANION_DTYPES, Case, named_cases_for
from optspec.conformance.check import (
    CheckResult,
    check_run,
    refused_edge,
    refused_value,
    run_case,
)
from optspec.conformance.expectation import Expectation
from optspec.conformance.hidden import behaves_as, held
from optspec.conformance.reference import explicit_hyperparameters
from optspec.conformance.representable import fit_to_dtype, held_hyperparameters, unrepresentable
from optspec.conformance.seeded import seed_only_draws
from optspec.conformance.state_storage import stored
from optspec.conformance.verdict import (
    Certificate,
    CheckOutcome,
    Failure,
    GoldenOutcome,
    certificate,
)

#: Seconds a subject may take for one step (or its construction) before it is killed.
DEFAULT_TIME_LIMIT_S = 300.0


class _CaseFailed(Exception):
    pass


def certify(subject: SubjectInfo, *, convention: str | spec.Knobs | None = None, dtype: str = "float64",
            device: str | None = None, examples: int = 100, seed_value: int = 0,
            time_limit_s: float = DEFAULT_TIME_LIMIT_S, golden_dir: str | None = None,
            progress: Callable[[str], None] | None = None, hold: Mapping[str, Any] | None = None,
            state_dtypes: Mapping[str, str] | None = None) -> Certificate:
    """Certifies ``subject`` against the spec in ``convention`` (its own preset by default).

    ``hold`` declares the values of hyperparameters the subject's constructor
    does not take (``--hold``, :func:`~optspec.conformance.hidden.held`).
    Where the constructor hides one and the first failing case conforms with
    it at a value it plausibly has (:func:`~optspec.conformance.hidden.plausible_values`:
    0 for λ, its framework's default), the subject is certified afresh held
    there, and its notes say so.  ``state_dtypes`` declares the dtypes it
    stores state fields in (``--state-dtype``,
    :mod:`optspec.conformance.state_storage`).
    """
    rerun = functools.partial(certify, convention=convention, dtype=dtype, device=device, examples=examples,
                              seed_value=seed_value, time_limit_s=time_limit_s, golden_dir=golden_dir,
                              progress=progress, state_dtypes=state_dtypes)
    declared = dict(hold or {})
    if declared:
        subject = held(subject, declared, "declared with --hold")
    if state_dtypes:
        subject = stored(subject, dict(state_dtypes))
    expectation = Expectation.of(subject, convention)
    convention = expectation.convention
    amsgrad_note = []
    if getattr(convention, "amsgrad", None) == "off" and not subject.fixed.get("amsgrad"):
        # The convention has no AMSGrad, so amsgrad=True cases have no expected trajectory.
        if "amsgrad" in subject.supports:
            amsgrad_note = [f"amsgrad: not tested: the {expectation.describe()} convention has no AMSGrad variant"]
        subject = dataclasses.replace(subject, supports=subject.supports - {"amsgrad"})
    device = adapters.namespaces.check_device(subject.framework, device)
    if (no_kernel := unshardable(subject) or missing_kernel(subject, dtype, device, time_limit_s)) is not None:
        return certificate(subject, expectation, dtype=dtype, device=device, seed=seed_value, cases_run=0,
                           checks={}, failure=None, not_applicable=no_kernel)
    results: list[CheckResult] = []

    def record(result: CheckResult) -> None:
        results.append(result)
        if progress and len(results) % max(1, examples // 10) == 0:
            progress(f"{subject.name}: {len(results)} cases")

    failure: CheckResult | None = None
    notes: list[str] = [f"{knob}: not tested: {why}" for knob, why in sorted(subject.not_tested.items())]
    notes += amsgrad_note
    if subject.state_storage:
        notes.append(f"state stored as declared: {spec.StateStorage(subject.state_storage).describe()}")
    if dtype in bias.TESTED_DTYPES and (parts := spec.get_rule(subject.rule).rounded_parts) > 1:
        notes.append(f"bias test: not run: a {subject.rule} kernel may round the parameters between the {parts} "
                     "parts of its update (docs/DEVIATIONS.md)")
    if subject.sharding is not None and subject.sharding.not_resharded:
        notes.append(f"resharded resume: not tested: {subject.sharding.not_resharded}")
    if subject.sharding is not None and subject.sharding.one_dtype:
        notes.append(f"parameters of several dtypes: not tested: {subject.sharding.one_dtype}")
    notes += [f"{note}: the spec keeps it as given" for note in held_hyperparameters(
        explicit_hyperparameters(subject, {}), dtype)]
    for case in named_cases_for(subject, dtype):
        try:
            case, note = fit_to_dtype(subject.rule, convention, dataclasses.replace(
                case, hyper=explicit_hyperparameters(subject, case.hyper)), dtype,
                holds_betas=subject.holds_hyperparameters_in_dtype)
        except ValueError as exc:
            notes.append(f"named case not applicable: {exc}")
            continue
        if note:
            notes.append(f"named case {case.label}: {note}")
        if case.companion_tensors and (why := _no_companion(subject, convention, case, dtype, device,
                                                              time_limit_s)):
            notes.append(f"named case not applicable: {case.label}: {why}")
            continue
        if (refusal := refused_edge(subject, case, dtype=dtype, device=device, time_limit_s=time_limit_s)):
            notes.append(f"named case not applicable: {refusal}")
            continue
        result = run_case(subject, case, convention=convention, dtype=dtype, device=device,
                          time_limit_s=time_limit_s, keep_run=True)
        record(result)
        if not result.passed:
            failure = result
            break
    screened: list[CheckResult] | None = None
    if failure is None and examples > 0:
        cases = drawn_cases(subject, dtype, examples, seed_value)
        cases, skipped = representable_cases(subject, convention, cases, dtype)
        if skipped:
            notes.append(f"{len(skipped)} of {len(skipped) + len(cases)} drawn cases were not run: they leave "
                         f"{dtype}'s range (first: {skipped[0]})")
        screen = run_batched if subject.build_batch is not None else run_each
        screened = screen(subject, cases, convention=convention, dtype=dtype, device=device,
                          time_limit_s=time_limit_s)
        for result in screened or []:
            record(result)
    if failure is None and examples > 0 and screened is None:
        # hypothesis is imported where it runs (a certification whose screen passes never needs it)
        from hypothesis import HealthCheck, Phase, assume, given, reject, seed, settings

        from optspec.conformance.strategies import random_cases

        shrunk: list[CheckResult] = []
        refused: set[str] = set()  # the drawn values a constructor refuses, whose cases are not run

        @settings(max_examples=examples, database=None, deadline=None, print_blob=False, derandomize=False,
                  phases=(Phase.generate, Phase.shrink), suppress_health_check=list(HealthCheck))
        @seed(seed_value)
        @given(case=random_cases(frozenset(subject.supports), dtype))
        def prop(case: Case) -> None:
            explicit = dataclasses.replace(case, hyper=explicit_hyperparameters(subject, case.hyper))
            # as in the screen: a case outside the dtype's range measures the dtype, not the rule
            assume(unrepresentable(subject.rule, convention, explicit, dtype,
                                   holds_betas=subject.holds_hyperparameters_in_dtype) is None)
            try:
                result = run_case(subject, case, convention=convention, dtype=dtype, device=device,
                                  time_limit_s=time_limit_s)
            except adapters.SubjectError:
                refusal = refused_value(subject, explicit, dtype=dtype, device=device, time_limit_s=time_limit_s)
                if refusal is None:
                    raise
                refused.add(refusal.partition(": ")[2])
                reject()
            if not result.passed:
                shrunk.append(result)
                raise _CaseFailed(result.failure)
            record(result)

        try:
            with seed_only_draws():
                prop()
        except _CaseFailed:
            failure = shrunk[-1]
            record(failure)
        notes.extend(f"drawn cases not run: {refusal}" for refusal in sorted(refused))
    golden: list[GoldenOutcome] = []
    if failure is None and golden_dir is not None:
        from optspec.conformance.golden import replay

        replays = replay(subject, convention, dtype=dtype, device=device, golden_dir=golden_dir)
        golden = [outcome for outcome, _ in replays]
        failing = [result for outcome, result in replays if outcome.passed is False]
        if failing:
            failure = failing[0]
    if failure is not None and failure.change is not None and behaves_as(subject, failure.change.hidden):
        found = ", ".join(f"{name}={value!r}" for name, value in failure.change.hidden.items())
        why = (f"the constructor takes no {' or '.join(failure.change.hidden)}; on case {failure.case.label} the "
               f"subject behaves as {found}")
        return rerun(held(subject, failure.change.hidden, why), hold=declared)
    if failure is not None and failure.change is not None:
        failure.hint = _tested_against_named_cases(subject, failure, results, convention, dtype)
    for result in results:
        result.run = None
    return certificate(
        subject, expectation, dtype=dtype, device=device, seed=seed_value, cases_run=len(results),
        checks=check_outcomes(results, failure),
        failure=None if failure is None else evidence(subject, failure, expectation, dtype, seed_value, examples,
                                                      time_limit_s, declared, state_dtypes),
        golden=golden, per_case_worst=[max(r.worst.values()) for r in results], notes=notes,
    )


def _tested_against_named_cases(subject: SubjectInfo, failure: CheckResult, results: list[CheckResult],
                                convention: spec.Knobs | None, dtype: str) -> str:
    """The failure's hint, unless the change it names is ruled out by a named case the subject passed.

    A drawn case can make two behaviours coincide (a constant inside the
    root looks like ε inside it when ε is about that constant).  The named
    cases discriminate: where the subject passed one and the named change,
    held to the same bounds, fails it, the change is not the cause.
    """
    change = failure.change
    for result in results:
        if result is failure or not result.passed or result.run is None:
            continue
        params0, grads, got = result.run
        with_change = check_run(subject, result.case, params0, grads, got, convention=convention,
                                dtype=dtype, explain_failure=False, stop_at_failure=False, change=change)
        if not with_change.passed:
            return (f"no single knob explains it: on the failing case the subject behaves as with {change.name}, "
                    f"but that change fails named case {result.case.label} (error/bound "
                    f"{max(with_change.worst.values()):.3g}), which the subject passes")
    return failure.hint


def unshardable(subject: SubjectInfo) -> str | None:
    """``under STRATEGY: why``, where ``subject`` runs across ranks with a strategy its framework cannot run it
    with (:attr:`~optspec.adapters.driver.SubjectInfo.not_shardable`), or None."""
    if subject.sharding is None or subject.sharding.strategy not in subject.not_shardable:
        return None
    return f"under {subject.sharding.strategy}: {subject.not_shardable[subject.sharding.strategy]}"


def _no_companion(subject: SubjectInfo, convention: spec.Knobs | None, case: Case, dtype: str,
                  device: str | None, time_limit_s: float) -> str | None:
    """Why a case of several dtypes cannot run for ``subject`` certified in ``dtype``, or None: its
    companion dtype has no kernel, or the case leaves that dtype's range."""
    companion = COMPANION_DTYPES[dtype]
    if (missing := missing_kernel(subject, companion, device, time_limit_s)) is not None:
        return missing
    return unrepresentable(subject.rule, convention, case, companion,
                           holds_betas=subject.holds_hyperparameters_in_dtype)


def missing_kernel(subject: SubjectInfo, dtype: str, device: str | None, time_limit_s: float) -> str | None:
    """``in DTYPE: why``, where ``subject`` cannot run in ``dtype`` at all, or None.

    One step on one element at the spec's defaults: a subject that raises in
    ``dtype`` and steps in float32 or float64 has no kernel for ``dtype`` (not
    a defect of its rule).  One that raises in every dtype, hangs or crashes
    is left to the cases, where it fails.
    """
    probe = ([np.array([0.5])], [np.full((1, 1), 0.1)], [1e-3], explicit_hyperparameters(subject, {}))
    try:
        adapters.drive(subject, *probe, dtype=dtype, device=device, time_limit_s=time_limit_s,
                       label=f"a one-step probe in {dtype}")
        return None
    except adapters.SubjectError as exc:
        if exc.hung or exc.crashed:  # not a refusal of the dtype: the cases will meet it
            return None
        refused = str(exc)
    for other in ("float32", "float64"):
        if other == dtype:
            continue
        try:
            adapters.drive(subject, *probe, dtype=other, device=device, time_limit_s=time_limit_s,
                           label=f"a one-step probe in {other}")
        except adapters.SubjectError:
            continue
        return f"in {dtype}: the subject has no {dtype} kernel: it steps in {other}, but in {dtype} {refused}"
    return None


def check_outcomes(results: list[CheckResult], failure: CheckResult | None) -> dict[str, CheckOutcome]:
    """The one-step and trajectory checks over ``results`` (and the failing check, if it is another).

    A case that stopped at a check measured that one and the checks before
    it (a one-step failure, not the trajectory; a mutated gradient or a
    non-finite value, neither); where no case measured a check, its worst is
    None: it did not run, and is not reported as passed with 0.
    """
    order = ("one_step", "trajectory")
    measured = {name: [r for r in results if r.passed or r.check in order[order.index(name):]] for name in order}
    checks = {
        name: CheckOutcome(passed=not (failure and failure.check == name),
                           worst_error_over_bound=max((r.worst[name] for r in measured[name]), default=None),
                           worst_ulps=max((r.worst_ulps for r in measured[name]), default=None)
                           if name == "trajectory" else None)
        for name in order
    }
    if failure and failure.check not in checks:
        checks[failure.check] = CheckOutcome(passed=False, worst_error_over_bound=None)
    return checks


def representable_cases(subject: SubjectInfo, convention: spec.Knobs | None, cases: list[Case],
                        dtype: str) -> tuple[list[Case], list[str]]:
    """The cases whose values stay inside ``dtype``'s range, and the reason for each one left out."""
    kept, skipped = [], []
    for case in cases:
        explicit = dataclasses.replace(case, hyper=explicit_hyperparameters(subject, case.hyper))
        reason = unrepresentable(subject.rule, convention, explicit, dtype,
                                 holds_betas=subject.holds_hyperparameters_in_dtype)
        if reason is None:
            kept.append(case)
        else:
            skipped.append(reason)
    return kept, skipped


def drawn_cases(subject: SubjectInfo, dtype: str, examples: int, seed_value: int) -> list[Case]:
    """The cases hypothesis draws for ``subject`` with this seed, in order, generated but not run.

    They depend only on what the subject supports, the dtype, the count and the
    seed (and hypothesis' version), not on the modules the process has loaded
    (:mod:`~optspec.conformance.seeded`).  Subjects with the same
    hyperparameters (every torch AdamW form, say) share one draw.
    """
    return list(_drawn(frozenset(subject.supports), dtype, examples, seed_value))


@functools.lru_cache(maxsize=16)
def _drawn(supports: frozenset[str], dtype: str, examples: int, seed_value: int) -> tuple[Case, ...]:
    name = drawn_cache.key(supports, dtype, examples, seed_value)
    if (kept := drawn_cache.load(name)) is not None:
        return kept
    from hypothesis import HealthCheck, Phase, given, seed, settings

    from optspec.conformance.strategies import random_cases

    cases: list[Case] = []

    @settings(max_examples=examples, database=None, deadline=None, print_blob=False, derandomize=False,
              phases=(Phase.generate,), suppress_health_check=list(HealthCheck))
    @seed(seed_value)
    @given(case=random_cases(supports, dtype))
    def collect(case: Case) -> None:
        cases.append(case)

    with seed_only_draws():
        collect()
    drawn_cache.save(name, cases)
    return tuple(cases)


#: A failing case with more elements than this gets no Python reproduction (it would be megabytes).
MAX_PRINTED_ELEMENTS = 1000


def evidence(subject: SubjectInfo, failure: CheckResult, expectation: Expectation, dtype: str,
             seed_value: int, examples: int, time_limit_s: float | None = None,
             hold: Mapping[str, Any] | None = None, state_dtypes: Mapping[str, str] | None = None) -> Failure:
    """What a failing case needs to be understood and reproduced."""
    case = failure.case
    return Failure(
        check=failure.check, step=failure.step, detail=failure.failure, case=case.describe(),
        reproduce_cli=reproduce_command(subject, expectation, dtype=dtype, seed=seed_value, examples=examples,
                                        time_limit_s=time_limit_s, hold=hold, state_dtypes=state_dtypes),
        hint=failure.hint, hyperparameters=case.hyper, learning_rates=case.lrs, restore_at=case.restore_at,
        ulps=failure.worst_ulps, error_and_bound_per_step=failure.per_step,
        reproduce_spec=reproduce_spec(subject.rule, expectation, case)
        if sum(p.size for p in case.params0) <= MAX_PRINTED_ELEMENTS else None,
    )


def reproduce_spec(rule: str, expectation: Expectation, case: Case) -> str:
    """Python that prints the spec's trajectory of ``case``, tensor by tensor."""
    if expectation.convention is None:
        conv = ""
    elif expectation.preset is not None:
        conv = f", convention={expectation.preset!r}"
    else:
        conv = f", convention=spec.{expectation.convention!r}"
    arrays = "\n".join(
        f"theta{i} = np.array({p.tolist()!r})\ngrads{i} = np.array({g.tolist()!r})"
        for i, (p, g) in enumerate(zip(case.params0, case.grads))
    )
    runs = "\n".join(
        f"print(spec.run({rule!r}, theta{i}, grads{i}, lr={case.lrs!r}{conv}, **{case.hyper!r}))"
        for i in range(len(case.params0))
    )
    return f"import numpy as np\nfrom optspec import spec\n{arrays}\n{runs}"


def reproduce_command(subject: SubjectInfo, expectation: Expectation, *, dtype: str, seed: int,
                      examples: int | None = None, size: int | None = None, steps: int | None = None,
                      time_limit_s: float | None = None, hold: Mapping[str, Any] | None = None,
                      state_dtypes: Mapping[str, str] | None = None) -> str:
    """The ``certify`` command line that gives the same verdict: every option that affects it (a time
    limit other than the default, and what ``--hold`` and ``--state-dtype`` declare, too)."""

    words = ["optspec", "certify", "--framework", subject.framework, "--impl", subject.name]
    if ":" in subject.name.partition("[")[0]:
        words += ["--rule", subject.rule]
    if expectation.preset is not None:
        words += ["--convention", expectation.preset]
    words += ["--dtype", dtype, "--seed", str(seed)]
    if size is not None:
        words += ["--size", str(size), "--steps", str(steps)]
    else:
        words += ["--examples", str(examples)]
    if time_limit_s is not None and time_limit_s != DEFAULT_TIME_LIMIT_S:
        words += ["--time-limit", f"{time_limit_s:g}"]
    if subject.sharding is not None:
        words += ["--sharding", subject.sharding.strategy, "--world-size", str(subject.sharding.world_size)]
    for name, value in (hold or {}).items():
        words += ["--hold", f"{name}={value!r}"]
    for field, stored_in in (state_dtypes or {}).items():
        words += ["--state-dtype", f"{field}={stored_in}"]
    return shlex.join(words)


def stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
