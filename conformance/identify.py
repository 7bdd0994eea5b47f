"""``identify``: which convention a black-box subject follows, knob by knob."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import adapters
import spec
from adapters.driver import SubjectInfo
from adapters.translation import NATIVE_CONVENTION
from conformance.cases import NAMED_CASES, restricted
from conformance.check import run_case
from spec.conventions import KNOB_VALUES

DTYPE = "float32"


@dataclasses.dataclass
class Identification:
    knobs: dict[str, Any]
    preset: str | None
    error_over_bound: float

    def lines(self) -> list[str]:
        def show(value: Any) -> str:
            return {True: "on", False: "off"}.get(value, str(value))

        return [f"{k}={show(v)}" for k, v in self.knobs.items()] + [self.preset or "none"]


def _score(subject: SubjectInfo, convention: spec.Convention, cases: list) -> float:
    """The worst error/bound over ``cases``; inf when the subject fails outright (NaN, mutation)."""
    worst = 0.0
    for case in cases:
        result = run_case(subject, case, convention=convention, dtype=DTYPE)
        if not result.passed and result.check not in ("one_step", "trajectory"):
            return float("inf")
        worst = max(worst, *result.worst.values())
    return worst


def identify(subject: SubjectInfo) -> Identification:
    """Fits every combination of the decay, bias and ε knobs, then the AMSGrad variant.

    Runs in float32 on the discriminating named cases, whose conventions differ
    by far more than float32 rounding.  A knob the subject cannot express is
    reported as ``unsupported`` and matches any preset.
    """
    if subject.rule != "adamw":
        raise adapters.SetupError(f"identify needs an AdamW subject; {subject.name} implements {subject.rule}")
    cases = [restricted(c, subject) for c in NAMED_CASES if c.label not in ("amsgrad", "maximize")]
    native = NATIVE_CONVENTION[subject.framework]
    scored = []
    for values in itertools.product(*(KNOB_VALUES[k] for k in ("decay_scale", "decay_point", "bias_correction", "epsilon"))):
        conv = spec.Convention(*values, amsgrad="raw")
        scored.append((_score(subject, conv, cases), conv))
    best_error = min(e for e, _ in scored)
    fitting = [c for e, c in scored if e <= max(1.0, best_error)]
    in_preset = [c for c in fitting if spec.conventions.matching_presets(_core(c))]
    best = (in_preset or fitting)[0]
    knobs = _core(best)
    if "amsgrad" in subject.supports:
        (ams_case,) = [restricted(c, subject) for c in NAMED_CASES if c.label == "amsgrad"]
        variants = {v: _score(subject, best.replace(amsgrad=v), [ams_case]) for v in ("raw", "corrected")}
        knobs["amsgrad"] = min(variants, key=variants.get)
        best_error = max(best_error, variants[knobs["amsgrad"]])
    else:
        knobs["amsgrad"] = "unsupported"
    matching = spec.conventions.matching_presets({k: v for k, v in knobs.items() if v != "unsupported"})
    preset = None
    if best_error <= 1.0 and matching:
        preset = native if native in matching else matching[0]
    return Identification(knobs, preset, best_error)


def _core(conv: spec.Convention) -> dict[str, Any]:
    return {k: getattr(conv, k) for k in ("decay_scale", "decay_point", "bias_correction", "epsilon")}
