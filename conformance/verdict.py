"""The typed records of a verdict: :class:`Certificate`, its :class:`Failure`, checks and golden replays.

Every certificate, whether from drawn cases, ``--size``, or a worker that
crashed or hung, is built by :func:`certificate`; the CLI, the report, JUnit
and the pytest plugin read these records and nothing else.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from optspec import adapters, spec
from optspec.adapters.driver import SubjectInfo
from optspec.conformance.expectation import Expectation

#: The verdict of a subject that cannot run in the dtype, or under the sharding, asked for (not a failure).
NOT_APPLICABLE = "not applicable"

#: Checks that are not numeric: no error and bound to plot.
NON_NUMERIC_CHECKS = ("crash", "hang", "raised", "non-finite", "gradient-mutation", "state", "rounding", "bias")


@dataclasses.dataclass(frozen=True)
class Failure:
    """The evidence of a verdict of "does not conform".

    Attributes:
      check: the check that failed (``one_step``, ``trajectory``, ``scale_step``,
        ``non-finite``, ``gradient-mutation``, ``state`` (a quantized state not stored in its format),
        ``rounding`` (parameters declared rounded stochastically that are not),
        ``bias`` (a systematic error across the elements of a step, below each element's bound),
        ``crash``, ``hang``, ``raised``).
      step: the 1-based step where it failed (0: before the first step).
      detail: what was seen, in one line.
      case: the failing case, as a description.
      reproduce_cli: the command line that gives the same verdict.
      hint: the single change to the expected behaviour that explains it, or why none does.
      hyperparameters, learning_rates, restore_at: the failing case's inputs.
      ulps: the worst trajectory error in ulps of the dtype, where measured.
      error_and_bound_per_step: the failing tensor's largest error and its bound at each step.
      reproduce_spec: Python that prints the spec's trajectory of the case (small cases only).
    """

    check: str
    step: int
    detail: str
    case: str
    reproduce_cli: str
    hint: str | None = None
    hyperparameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    learning_rates: list[float] = dataclasses.field(default_factory=list)
    restore_at: int | None = None
    ulps: float | None = None
    error_and_bound_per_step: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    reproduce_spec: str | None = None

    @property
    def numeric(self) -> bool:
        """Whether there is an error and a bound per step to show (not a crash, hang, NaN or mutation)."""
        return self.check not in NON_NUMERIC_CHECKS and bool(self.error_and_bound_per_step)

    def lines(self) -> list[str]:
        """The evidence as the CLI and the pytest plugin print it."""
        ulps = f" ({self.ulps:.3g} ulp)" if self.ulps else ""
        lines = [f"  failed {self.check} at step {self.step}{ulps}: {self.detail}"]
        if self.hint:
            lines.append(f"  {self.hint}")
        return [*lines, f"  case: {self.case}", f"  reproduce: {self.reproduce_cli}"]


@dataclasses.dataclass(frozen=True)
class CheckOutcome:
    """One check over every case: passed, and its worst error/bound (None where it did not run)."""

    passed: bool
    worst_error_over_bound: float | None
    worst_ulps: float | None = None


@dataclasses.dataclass(frozen=True)
class GoldenOutcome:
    """One golden scenario replayed: not applicable (with the reason), or passed or not."""

    scenario: str
    applicable: bool
    passed: bool | None
    worst_error_over_bound: float | None
    detail: str | None


@dataclasses.dataclass(frozen=True)
class Certificate:
    """One subject's verdict against one :class:`Expectation`, with the evidence of a failure."""

    subject: str
    framework: str
    framework_version: str
    device: str
    dtype: str
    spec_version: str
    rule: str
    convention: str | None
    knobs: dict[str, Any] | None
    seed: int
    cases_run: int
    checks: dict[str, CheckOutcome]
    golden: list[GoldenOutcome]
    verdict: str
    failure: Failure | None = None
    per_case_worst: list[float] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    sharding: str | None = None

    @property
    def conforms(self) -> bool:
        return self.verdict == "conforms"

    @property
    def applicable(self) -> bool:
        """False where the subject cannot run in the dtype, or under the sharding, at all (it has no kernel there)."""
        return self.verdict != NOT_APPLICABLE

    @property
    def why_not_applicable(self) -> str | None:
        """The note that says why the subject could not run (``not applicable in bfloat16: ...``), or None."""
        return None if self.applicable else next(n for n in self.notes if n.startswith(f"{NOT_APPLICABLE} "))

    @property
    def label(self) -> str:
        """The subject as certified: its name, and its sharding where it ran across ranks."""
        return subject_label(self.subject, self.sharding)

    @property
    def passes(self) -> bool:
        """What the exit code reads: conforms, or not applicable (not a failure)."""
        return self.conforms or not self.applicable

    @property
    def worst_ulps(self) -> float | None:
        """The worst trajectory error in ulps of the dtype over every case, or None where no case measured it
        (the only case run failed its one-step check)."""
        trajectory = self.checks.get("trajectory")
        return trajectory.worst_ulps if trajectory else None

    def headline(self, what: str) -> str:
        """``CONFORMS: subject vs convention (what, dtype, worst n ulp, k of m golden scenarios replayed)``.

        Where no case finished (a crash, a hang, a raise before the first
        result), it says so instead of counting cases and ulps it did not measure.
        """
        head = f"{self.verdict.upper()}: {self.label} vs {self.convention or self.rule}"
        if not self.applicable:
            return f"{head} ({self.why_not_applicable})"
        if self.cases_run == 0 and self.failure is not None and not self.failure.numeric:
            return f"{head} ({self.dtype}: {self.failure.check} before any case finished)"
        replayed = sum(g.applicable for g in self.golden)
        golden = f", {replayed} of {len(self.golden)} golden scenarios replayed" if self.golden else ""
        ulps = f", worst {self.worst_ulps:.3g} ulp" if self.worst_ulps is not None else ""
        return f"{head} ({what}, {self.dtype}{ulps}{golden})"


def certificate(subject: SubjectInfo, expectation: Expectation, *, dtype: str, device: str, seed: int,
                cases_run: int, checks: dict[str, CheckOutcome], failure: Failure | None,
                golden: list[GoldenOutcome] | None = None, per_case_worst: list[float] | None = None,
                notes: list[str] | None = None, not_applicable: str | None = None) -> Certificate:
    """The one constructor of a :class:`Certificate`: the verdict is "conforms" exactly when ``failure`` is
    None, unless ``not_applicable`` says where the subject cannot run at all, and why (``in bfloat16: ...``,
    ``under fsdp2: ...``)."""
    if not_applicable is not None:
        notes = [*(notes or []), f"{NOT_APPLICABLE} {not_applicable}"]
    verdict = NOT_APPLICABLE if not_applicable is not None else "conforms" if failure is None else "does not conform"
    return Certificate(
        subject=subject.name, framework=subject.framework,
        framework_version=adapters.frameworks.version(subject.framework), device=device, dtype=dtype,
        spec_version=spec.SPEC_VERSION, rule=subject.rule, convention=expectation.name, knobs=expectation.knobs,
        seed=seed, cases_run=cases_run, checks=checks, golden=list(golden or []),
        verdict=verdict, failure=failure,
        per_case_worst=list(per_case_worst or []), notes=list(notes or []),
        sharding=None if subject.sharding is None else subject.sharding.describe(),
    )


def subject_label(subject: str, sharding: str | None) -> str:
    """``subject``, followed by its sharding where it ran across ranks: ``torch.optim.AdamW[foreach] (fsdp2, world
    size 2)``."""
    return f"{subject} ({sharding})" if sharding else subject
