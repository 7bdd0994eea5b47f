"""``identify``: which convention a black-box subject follows, knob by knob.

The subject runs once on each discriminating named case, in float32; every
candidate convention is then scored against those trajectories with the
certifier's own checks (the largest error/bound of the one-step and
trajectory checks).  A convention *fits* when its score is at most 1.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from optspec import adapters, spec
from optspec.adapters.driver import SubjectInfo
from optspec.adapters.frameworks import describe
from optspec.conformance.cases import NAMED_CASES, SENSITIVE_CASES, Case, restricted
from optspec.conformance.check import check_trajectory
from optspec.conformance.reference import prepared
from optspec.spec.conventions import KNOB_VALUES

DTYPE = "float32"
CORE_KNOBS = ("decay_scale", "decay_point", "bias_correction", "epsilon")


@dataclasses.dataclass
class Identification:
    """The best-fitting convention.

    Attributes:
      knobs: knob -> value of the best convention (``amsgrad`` may be
        ``unsupported`` or ``ignored``).
      preset: the preset with exactly these knobs, if it fits.
      error_over_bound: the best convention's score (<= 1 fits).
    """

    knobs: dict[str, Any]
    preset: str | None
    error_over_bound: float

    @property
    def fits(self) -> bool:
        return self.error_over_bound <= 1.0

    def lines(self) -> list[str]:
        """What the CLI prints: the fit, then the knob values and the preset, or why nothing fits."""
        def show(value: Any) -> str:
            return {True: "on", False: "off"}.get(value, str(value))

        knobs = ", ".join(f"{k}={show(v)}" for k, v in self.knobs.items())
        if not self.fits:
            return [f"no convention fits: the nearest ({knobs}) is off by {self.error_over_bound:.3g} "
                    "times the bound", "none"]
        return ([f"fit: error/bound {self.error_over_bound:.3g} (1 or less fits)"]
                + [f"{k}={show(v)}" for k, v in self.knobs.items()] + [self.preset or "none"])


def _trajectories(subject: SubjectInfo, cases: list[Case]) -> list[tuple[Case, list, list, Any]]:
    runs = []
    for case in cases:
        case, params0, grads = prepared(subject, case, DTYPE)
        got = adapters.drive(subject, params0, grads, case.lrs, case.hyper, dtype=DTYPE,
                             restore_at=case.restore_at, time_limit_s=60.0)
        runs.append((case, params0, grads, got))
    return runs


def _score(subject: SubjectInfo, convention: spec.Convention, runs: list[tuple[Case, list, list, Any]],
           **override: Any) -> float:
    """The worst error/bound of ``convention`` over the recorded runs; inf on NaN or a mutated gradient."""
    worst = 0.0
    for case, params0, grads, got in runs:
        if override:
            case = dataclasses.replace(case, hyper={**case.hyper, **override})
        result = check_trajectory(subject, case, params0, grads, got, convention=convention, dtype=DTYPE,
                                  explain_failure=False, stop_at_failure=False)
        if not result.passed and result.check not in ("one_step", "trajectory"):
            return float("inf")
        worst = max(worst, *result.worst.values())
    return worst


def identify(subject: SubjectInfo) -> Identification:
    """Scores every combination of the decay, bias and ε knobs, then the AMSGrad variant.

    Runs in float32 on the discriminating named cases (not the
    :data:`~optspec.conformance.cases.SENSITIVE_CASES`, which measure
    hyperparameters, not conventions), whose conventions differ
    by far more than float32 rounding.  A knob the subject cannot express is
    reported as ``unsupported`` and matches any preset; an ``amsgrad=True``
    that the subject accepts and ignores is reported as ``ignored``.
    """
    if subject.rule != "adamw":
        raise adapters.SetupError(f"identify needs an AdamW subject; {subject.name} implements {subject.rule}")
    cases = [restricted(c, subject) for c in NAMED_CASES
             if c.label not in ("amsgrad", "maximize", *(s.label for s in SENSITIVE_CASES))]
    runs = _trajectories(subject, cases)
    scored = sorted(
        ((_score(subject, spec.Convention(*values, amsgrad="raw"), runs), index, spec.Convention(*values, amsgrad="raw"))
         for index, values in enumerate(itertools.product(*(KNOB_VALUES[k] for k in CORE_KNOBS)))),
        key=lambda item: (item[0], item[1]),
    )
    best_error = scored[0][0]
    fitting = [conv for error, _, conv in scored if error <= 1.0]
    in_preset = [c for c in fitting if spec.conventions.matching_presets(_core(c))]
    best = (in_preset or fitting or [scored[0][2]])[0]
    if fitting:
        best_error = max(e for e, _, c in scored if c == best)
    knobs = _core(best)
    if "amsgrad" in subject.supports and "amsgrad" not in subject.fixed:
        (ams_case,) = [restricted(c, subject) for c in NAMED_CASES if c.label == "amsgrad"]
        ams_runs = _trajectories(subject, [ams_case])
        variants = {v: _score(subject, best.replace(amsgrad=v), ams_runs) for v in ("raw", "corrected")}
        variants["ignored"] = _score(subject, best.replace(amsgrad="raw"), ams_runs, amsgrad=False)
        knobs["amsgrad"] = min(variants, key=lambda v: variants[v])
        best_error = max(best_error, variants[knobs["amsgrad"]])
    else:
        knobs["amsgrad"] = "unsupported"
    comparable = {k: v for k, v in knobs.items() if v not in ("unsupported", "ignored")}
    matching = spec.conventions.matching_presets(comparable)
    preset = None
    if best_error <= 1.0 and matching and knobs["amsgrad"] != "ignored":
        native = describe(subject.framework).native_convention
        preset = native if native in matching else matching[0]
    return Identification(knobs, preset, float(best_error))


def _core(conv: spec.Convention) -> dict[str, Any]:
    return {k: getattr(conv, k) for k in CORE_KNOBS}
