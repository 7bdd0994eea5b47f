"""``identify``: which convention a black-box subject follows, knob by knob.

The subject runs once on each discriminating named case, in float32 unless
told otherwise; every candidate convention is then scored against those
trajectories with the certifier's own checks (the largest error/bound of the
one-step and trajectory checks).  A convention *fits* when its score is at
most 1 and ``certify``, with its default cases, accepts the subject against
it: identify never claims a convention that certify would reject.
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

#: identify's dtype unless told otherwise: the conventions differ by far more than its rounding.
DEFAULT_DTYPE = "float32"
CORE_KNOBS = ("decay_scale", "decay_point", "bias_correction", "epsilon")
#: Beyond this error/bound, the nearest candidate is too far off for its knob values to mean anything.
NAMEABLE_MISFIT = 10.0


@dataclasses.dataclass
class Identification:
    """The best-fitting convention.

    Attributes:
      knobs: knob -> value of the best convention (``amsgrad`` may be
        ``unsupported`` or ``ignored``).
      preset: the preset with exactly these knobs, if it fits.
      error_over_bound: the best convention's score on identify's cases (<= 1 fits).
      dtype: the dtype the subject ran in.
      certified: what ``certify`` said of the subject against the best
        convention: None where it was not asked (nothing fit), else the
        certificate's headline, and ``rejection`` the failure if it rejected.
    """

    knobs: dict[str, Any]
    preset: str | None
    error_over_bound: float
    dtype: str = DEFAULT_DTYPE
    certified: str | None = None
    rejection: str | None = None

    @property
    def fits(self) -> bool:
        return self.error_over_bound <= 1.0 and self.rejection is None

    def lines(self) -> list[str]:
        """What the CLI prints: labelled lines, then one word: the preset, ``none`` (the knobs fit, no
        preset has them) or ``unfit`` (nothing fits)."""
        def show(value: Any) -> str:
            return {True: "on", False: "off"}.get(value, str(value))

        knobs = ", ".join(f"{k}={show(v)}" for k, v in self.knobs.items())
        if self.rejection is not None:
            return [f"no convention fits: the best fit on identify's cases ({knobs}, error/bound "
                    f"{self.error_over_bound:.3g}) is rejected by certify: {self.rejection}", "unfit"]
        if self.error_over_bound > NAMEABLE_MISFIT:
            return [f"no convention fits: the nearest is off by {self.error_over_bound:.3g} times the bound, "
                    f"more than {NAMEABLE_MISFIT:g}x: too far for its knob values to say anything", "unfit"]
        if not self.fits:
            return [f"no convention fits: the nearest ({knobs}) is off by {self.error_over_bound:.3g} "
                    "times the bound", "unfit"]
        return ([f"fit: error/bound {self.error_over_bound:.3g} in {self.dtype} (1 or less fits)",
                 f"certified: {self.certified}"]
                + [f"knob: {k}={show(v)}" for k, v in self.knobs.items()]
                + [self.preset or "none"])


def _trajectories(subject: SubjectInfo, cases: list[Case], dtype: str) -> list[tuple[Case, list, list, Any]]:
    runs = []
    for case in cases:
        case, params0, grads = prepared(subject, case, dtype)
        got = adapters.drive(subject, params0, grads, case.lrs, case.hyper, dtype=dtype,
                             restore_at=case.restore_at, time_limit_s=60.0)
        runs.append((case, params0, grads, got))
    return runs


def _score(subject: SubjectInfo, convention: spec.Convention, runs: list[tuple[Case, list, list, Any]],
           dtype: str, **override: Any) -> float:
    """The worst error/bound of ``convention`` over the recorded runs; inf on NaN or a mutated gradient."""
    worst = 0.0
    for case, params0, grads, got in runs:
        if override:
            case = dataclasses.replace(case, hyper={**case.hyper, **override})
        result = check_trajectory(subject, case, params0, grads, got, convention=convention, dtype=dtype,
                                  explain_failure=False, stop_at_failure=False)
        if not result.passed and result.check not in ("one_step", "trajectory"):
            return float("inf")
        worst = max(worst, *result.worst.values())
    return worst


def identify(subject: SubjectInfo, *, dtype: str = DEFAULT_DTYPE, examples: int = 100,
             golden_dir: str | None = None) -> Identification:
    """Scores every combination of the decay, bias and ε knobs, then the AMSGrad variant, then certifies.

    Runs in ``dtype`` on the discriminating named cases (not the
    :data:`~optspec.conformance.cases.SENSITIVE_CASES`, which measure
    hyperparameters, not conventions), whose conventions differ by far more
    than float32 rounding.  A knob the subject cannot express is reported as
    ``unsupported`` and matches any preset; an ``amsgrad=True`` that the
    subject accepts and ignores is reported as ``ignored``.  A fit is then
    certified (:func:`~optspec.conformance.certify.certify`, ``examples``
    drawn cases and golden replay from ``golden_dir``) against the knobs
    found: where certify rejects the subject, nothing is claimed.
    """
    from optspec.conformance.certify import certify

    if subject.rule != "adamw":
        raise adapters.SetupError(f"identify needs an AdamW subject; {subject.name} implements {subject.rule}")
    cases = [restricted(c, subject) for c in NAMED_CASES
             if c.label not in ("amsgrad", "maximize", *(s.label for s in SENSITIVE_CASES))]
    runs = _trajectories(subject, cases, dtype)
    scored = sorted(
        ((_score(subject, spec.Convention(*values, amsgrad="raw"), runs, dtype), index,
          spec.Convention(*values, amsgrad="raw"))
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
        ams_runs = _trajectories(subject, [ams_case], dtype)
        variants = {v: _score(subject, best.replace(amsgrad=v), ams_runs, dtype) for v in ("raw", "corrected")}
        variants["ignored"] = _score(subject, best.replace(amsgrad="raw"), ams_runs, dtype, amsgrad=False)
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
    found = Identification(knobs, preset, float(best_error), dtype)
    if best_error > 1.0:
        return found
    held = best.replace(amsgrad=knobs["amsgrad"] if knobs["amsgrad"] in ("raw", "corrected") else "raw")
    if knobs["amsgrad"] == "ignored":  # certify the rest: the ignored flag is already reported
        subject = dataclasses.replace(subject, supports=subject.supports - {"amsgrad"})
    cert = certify(subject, convention=preset or held, dtype=dtype,
                   examples=examples, golden_dir=golden_dir)
    found.certified = (f"conforms in {cert.cases_run} cases" + (f" and {sum(g.applicable for g in cert.golden)} "
                       "golden scenarios" if cert.golden else "") + f" ({dtype})")
    if not cert.conforms:
        found.rejection = (f"failed {cert.failure.check} at step {cert.failure.step} of case "
                           f"{cert.failure.case.split(':')[0]}: {cert.failure.detail}")
    return found


def _core(conv: spec.Convention) -> dict[str, Any]:
    return {k: getattr(conv, k) for k in CORE_KNOBS}
