"""Running many hypothesis cases through one subject at once, and checking each on its own.

The rules are elementwise, so cases that agree on their flags (amsgrad,
maximize, ...) and on the step after which the state is restored can share
one subject (:func:`adapters.drive_batch`).  Shorter cases are padded with
zero gradients; their extra steps are dropped before checking.  Each case is
then checked exactly as :func:`conformance.check.run_case` checks it.

A batch is a fast screen, not the verdict: when any case fails, or the
subject cannot be batched (it raises, mutates its input, or couples
elements), :func:`run_batched` returns None, and the caller runs the cases
one by one, where hypothesis shrinks the failure to a minimal case.  A
subject with no batched driver is screened one case at a time
(:func:`run_each`): the drawn cases are then generated once per machine
(:mod:`~optspec.conformance.drawn_cache`), not by hypothesis at each run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from optspec import adapters, spec
from optspec.adapters.batching import Member, batch_key
from optspec.adapters.driver import SubjectInfo, Trajectory
from optspec.conformance.cases import Case
from optspec.conformance.check import CheckResult, check_trajectory, prepared, run_case

#: Members per subject: enough to amortise a framework's per-call overhead.
MAX_MEMBERS = 256


def run_batched(subject: SubjectInfo, cases: Sequence[Case], *, convention: spec.Knobs | None, dtype: str,
                device: str | None, time_limit_s: float | None) -> list[CheckResult] | None:
    """Every case's :class:`CheckResult` in order, or None if any case fails or batching fails."""
    if subject.build_batch is None or not spec.get_rule(subject.rule).elementwise:
        return None
    ready = [prepared(subject, case, dtype) for case in cases]
    groups: dict[tuple, list[int]] = defaultdict(list)
    for index, (case, _, _) in enumerate(ready):
        groups[(case.restore_at, batch_key(case.hyper))].append(index)
    results: list[CheckResult | None] = [None] * len(cases)
    for (restore_at, _), indices in groups.items():
        for start in range(0, len(indices), MAX_MEMBERS):
            chunk = indices[start:start + MAX_MEMBERS]
            trajectories = _drive(subject, [ready[i] for i in chunk], restore_at, dtype, device, time_limit_s)
            if trajectories is None:
                return None
            for i, got in zip(chunk, trajectories):
                case, params0, grads = ready[i]
                result = check_trajectory(subject, case, params0, grads, got, convention=convention, dtype=dtype)
                if not result.passed:
                    return None
                results[i] = result
    return results


def run_each(subject: SubjectInfo, cases: Sequence[Case], *, convention: spec.Knobs | None, dtype: str,
             device: str | None, time_limit_s: float | None) -> list[CheckResult] | None:
    """Every case's :class:`CheckResult` in order, each case run on its own, or None as soon as one fails or
    the subject raises (hypothesis then runs them again, and shrinks the failure or sets a refused value
    aside)."""
    results = []
    for case in cases:
        try:
            result = run_case(subject, case, convention=convention, dtype=dtype, device=device,
                              time_limit_s=time_limit_s)
        except adapters.SubjectError:
            return None
        if not result.passed:
            return None
        results.append(result)
    return results


def _drive(subject: SubjectInfo, chunk: Sequence[tuple[Case, list[np.ndarray], list[np.ndarray]]],
           restore_at: int | None, dtype: str, device: str | None,
           time_limit_s: float | None) -> list[Trajectory] | None:
    steps = max(case.steps for case, _, _ in chunk)
    members, streams = [], []
    for case, params0, grads in chunk:
        pad = steps - case.steps
        members.append(Member(params0, case.hyper, list(case.lrs) + [case.lrs[-1]] * pad))
        streams.append([np.concatenate([g, np.zeros((pad, *g.shape[1:]))]) for g in grads])
    try:
        whole = adapters.drive_batch(subject, members, streams, dtype=dtype, device=device,
                                     restore_at=restore_at, time_limit_s=time_limit_s,
                                     label=f"a batch of {len(chunk)} drawn cases")
    except adapters.SubjectError:
        return None
    if any(t.mutated_at is not None for t in whole):
        return None
    return [Trajectory(params=[p[:case.steps] for p in t.params], storage_dtypes=t.storage_dtypes,
                       quantized=t.quantized[:case.steps], compensation=t.compensation[:case.steps])
            for t, (case, _, _) in zip(whole, chunk)]
