"""``identify``: which convention a black-box subject follows, knob by knob, for any rule with conventions.

The subject runs once on each discriminating named case of its rule, in
float32 unless told otherwise; every combination of the rule's knobs
(:meth:`spec.Rule.knob_values`) is then scored against those
trajectories with the certifier's own checks (the largest error/bound of the
one-step and trajectory checks).  A convention *fits* when its score is at
most 1 and ``certify``, with its default cases, accepts the subject against
it: identify never claims a convention that certify would reject.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from optspec import adapters, spec
from optspec.adapters.driver import SubjectInfo
from optspec.adapters.frameworks import describe
from optspec.conformance import hidden, rounding
from optspec.conformance.cases import BIAS_CASES, NAMED_CASES, SENSITIVE_CASES, Case, restricted
from optspec.conformance.check import check_trajectory, refused_edge
from optspec.conformance.reference import prepared, reference
from optspec.conformance.state_storage import stored
from optspec.conformance.verdict import Certificate
from optspec.spec.storage import PARAMS

#: identify's dtype unless told otherwise: the conventions differ by far more than its rounding.
DEFAULT_DTYPE = "float32"
#: Knobs that only a flag reaches (knob -> the flag): scored on that flag's own case, after the rest.
FLAG_KNOBS = {"amsgrad": "amsgrad"}
#: What identify reports for a knob that the subject's cases cannot reach.
UNREACHED = "untested"
#: Beyond this error/bound, the nearest candidate is too far off for its knob values to mean anything.
NAMEABLE_MISFIT = 10.0


@dataclasses.dataclass
class Identification:
    """The best-fitting convention.

    Attributes:
      knobs: knob -> value of the best convention (``amsgrad`` may be
        ``unsupported`` or ``ignored``; a knob that no case of the subject
        reaches, because it cannot express the hyperparameter that shows it,
        is ``untested``).
      preset: the preset with exactly these knobs, if it fits.
      error_over_bound: the best convention's score on identify's cases (<= 1 fits).
      dtype: the dtype the subject ran in.
      certified: what ``certify`` said of the subject against the best
        convention: None where it was not asked (nothing fit), else the
        certificate's headline, and ``rejection`` the failure if it rejected.
      certificate: that certification's :class:`~optspec.conformance.verdict.Certificate`, or None.
      raised: where the subject raised (or hung) on one of identify's cases, that case, the step and the
        error, and nothing was scored: it fits nothing, as ``certify`` rejects it.
      held: the values of hyperparameters the constructor hides that the
        subject behaves as (:mod:`optspec.conformance.hidden`), where they
        are not the spec's defaults.
      state_format: the whole-state format of :data:`spec.quantized.PRESETS` the subject stores its state in,
        found from the codes it holds, where it declared none.
      param_rounding: where the subject keeps its low-precision parameters otherwise than rounded to nearest
        and declared nothing, the storage it was found and certified under (:func:`_param_rounding`:
        ``params=kahan``, or ``params=stochastic`` with its state's dtype where it holds the state in its
        parameters'); else empty.
      other_rule: where nothing of the rule the subject was first resolved under fits and another rule's
        convention does (:func:`identify_rule`), that rule, and the rule it was first held to; else None.
    """

    knobs: dict[str, Any]
    preset: str | None
    error_over_bound: float
    dtype: str = DEFAULT_DTYPE
    certified: str | None = None
    rejection: str | None = None
    certificate: Certificate | None = dataclasses.field(default=None, repr=False)
    held: dict[str, Any] = dataclasses.field(default_factory=dict)
    raised: str | None = None
    state_format: str | None = None
    param_rounding: dict[str, str] = dataclasses.field(default_factory=dict)
    other_rule: tuple[str, str] | None = None

    @property
    def fits(self) -> bool:
        return self.error_over_bound <= 1.0 and self.rejection is None and self.raised is None

    def lines(self) -> list[str]:
        """What the CLI prints: labelled lines, then one word: the preset, ``none`` (the knobs fit, no
        preset has them) or ``unfit`` (nothing fits)."""
        def show(value: Any) -> str:
            return "on" if value is True else "off" if value is False else str(value)

        knobs = ", ".join(f"{k}={show(v)}" for k, v in self.knobs.items())
        if self.raised is not None:
            return [f"no convention fits: {self.raised}", "unfit"]
        if self.rejection is not None:
            return [f"no convention fits: the best fit on identify's cases ({knobs}, error/bound "
                    f"{self.error_over_bound:.3g}) is rejected by certify: {self.rejection}", "unfit"]
        if self.error_over_bound > NAMEABLE_MISFIT:
            return [f"no convention fits: the nearest is off by {self.error_over_bound:.3g} times the bound, "
                    f"more than {NAMEABLE_MISFIT:g}x: too far for its knob values to say anything", "unfit"]
        if not self.fits:
            return [f"no convention fits: the nearest ({knobs}) is off by {self.error_over_bound:.3g} "
                    "times the bound", "unfit"]
        found_rule = ([f"rule: {self.other_rule[0]} (nothing of rule {self.other_rule[1]} fits its steps; "
                       f"--rule {self.other_rule[0]})"] if self.other_rule else [])
        return (found_rule + [f"fit: error/bound {self.error_over_bound:.3g} in {self.dtype} (1 or less fits)",
                              f"certified: {self.certified}"]
                + [f"held: {k}={v!r} (the constructor takes no {k}; the subject behaves as this value)"
                   for k, v in self.held.items()]
                + ([f"state: {self.state_format} (the format it stores its state in, checked from the codes it "
                    f"holds: --state-dtype {self.state_format})"] if self.state_format else [])
                + ([self._rounding_line()] if self.param_rounding else [])
                + [f"knob: {k}={show(v)}" for k, v in self.knobs.items()]
                + [self.preset or "none"])

    def _rounding_line(self) -> str:
        declared = " ".join(f"--state-dtype {k}={v}" for k, v in self.param_rounding.items())
        if self.param_rounding[PARAMS] == "kahan":
            return (f"rounding: kahan (its {self.dtype} parameters are kept with a Kahan compensation, whose sum "
                    f"with them follows the spec to u^2, as checked on identify's cases: {declared})")
        state = f", its state declared stored in {self.dtype}" if len(self.param_rounding) > 1 else ""
        return (f"rounding: stochastic (its {self.dtype} parameters are rounded up or down at random, without "
                f"bias, as checked on identify's cases{state}: {declared})")


class _Raised(Exception):
    """The subject raised (or hung) on one of identify's cases: the case, the step and the error, in words."""


def _trajectories(subject: SubjectInfo, cases: list[Case], dtype: str) -> list[tuple[Case, list, list, Any]]:
    """The subject's run of each case (a case whose edge values its constructor refuses is left out); raises
    :class:`_Raised` where it raises or hangs, naming the case and the step, as ``certify`` does."""
    runs = []
    for case in cases:
        case, params0, grads = prepared(subject, case, dtype)
        if refused_edge(subject, case, dtype=dtype, time_limit_s=60.0):
            continue  # its knobs are then reached by no case, and reported untested
        try:
            got = adapters.drive(subject, params0, grads, case.lrs, case.hyper, dtype=dtype,
                                 restore_at=case.restore_at, time_limit_s=60.0, label=case.short())
        except adapters.SubjectError as exc:
            raise _Raised(f"{exc} (step {exc.step} of case {case.short()})") from None
        runs.append((case, params0, grads, got))
    return runs


def _score(subject: SubjectInfo, convention: spec.Knobs, runs: list[tuple[Case, list, list, Any]],
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


def _state_failure(subject: SubjectInfo, convention: spec.Knobs, runs: list[tuple[Case, list, list, Any]],
                   dtype: str) -> str | None:
    """The first failure of the check of a quantized state (:mod:`optspec.conformance.quantized_state`) in
    ``runs``, which every convention of the rule shares; None where there is none."""
    for case, params0, grads, got in runs:
        result = check_trajectory(subject, case, params0, grads, got, convention=convention, dtype=dtype,
                                  explain_failure=False)
        if not result.passed and result.check == "state":
            return result.failure
    return None


def identify(subject: SubjectInfo, *, dtype: str = DEFAULT_DTYPE, examples: int = 100,
             golden_dir: str | None = None) -> Identification:
    """Scores every combination of the rule's knobs (a flag's knob after the rest), then certifies.

    Runs in ``dtype`` on the discriminating named cases of the subject's rule
    (not the :data:`~optspec.conformance.cases.SENSITIVE_CASES`, which measure
    hyperparameters, not conventions), whose conventions differ by far more
    than float32 rounding.  A knob that none of those cases reaches for this
    subject (every value gives the same float64 reference) is reported as
    ``untested`` and matches any preset; an AMSGrad knob the subject cannot
    express is ``unsupported``, and an ``amsgrad=True`` that the subject
    accepts and ignores is ``ignored``.  A fit is then certified
    (:func:`~optspec.conformance.certify.certify`, ``examples`` drawn cases
    and golden replay from ``golden_dir``) against the knobs found: where
    certify rejects the subject, nothing is claimed.
    """
    from optspec.conformance.certify import certify

    rule = spec.get_rule(subject.rule)
    if not rule.takes_convention:
        raise adapters.SetupError(f"identify names conventions, and {subject.name}'s rule, {subject.rule}, has none")
    knob_values = rule.knob_values()
    core = [k for k in knob_values if k not in FLAG_KNOBS]
    base = rule.presets[rule.default_preset]
    try:
        runs = _trajectories(subject, _discriminating(subject), dtype)
    except _Raised as exc:
        return Identification({}, None, math.inf, dtype, raised=str(exc))
    candidates = _conventions(rule)
    if state_format := _state_format(subject, candidates, runs, dtype):
        subject = stored(subject, dict(spec.quantized.PRESETS[state_format]))
    if found_held := _hidden_values(subject, candidates, runs, dtype):
        subject = hidden.held(subject, found_held, "the constructor takes none; identify found the subject behaves "
                              "as it")
        runs = [(dataclasses.replace(case, hyper={**case.hyper, **found_held}), *rest) for case, *rest in runs]
    # Among the fits, the one whose reference judges the most elements: where a knob's reference is NaN
    # (Adagrad's 0/0 without a zero guard) the checks judge nothing, so it would fit any subject there.
    scored = sorted(((_score(subject, conv, runs, dtype), index, conv) for index, conv in enumerate(candidates)),
                    key=lambda item: (item[0] > 1.0, -_judged(rule, item[2], runs) if item[0] <= 1.0 else 0,
                                      item[0], item[1]))
    best_error = scored[0][0]
    if math.isinf(best_error) and (stored_wrong := _state_failure(subject, scored[0][2], runs, dtype)):
        return Identification({}, None, math.inf, dtype, raised=f"its state is not held in its declared format: "
                                                                  f"{stored_wrong}")
    fitting = [conv for error, _, conv in scored if error <= 1.0]
    in_preset = [c for c in fitting if rule.matching_presets(_knobs(c, core))]
    best = (in_preset or fitting or [scored[0][2]])[0]
    if fitting:
        best_error = max(e for e, _, c in scored if c == best)
    reached = _reached_knobs(rule, best, core, runs)
    knobs = {k: (v if k in reached else UNREACHED) for k, v in _knobs(best, core).items()}
    for knob, flag in FLAG_KNOBS.items():
        if knob not in knob_values:
            continue
        if flag in subject.supports and flag not in subject.fixed:
            (flag_case,) = [restricted(c, subject) for c in NAMED_CASES if c.label == flag]
            try:
                flag_runs = _trajectories(subject, [flag_case], dtype)
            except _Raised as exc:
                return Identification(knobs, None, math.inf, dtype, raised=str(exc))
            variants = {v: _score(subject, best.replace(**{knob: v}), flag_runs, dtype)
                        for v in knob_values[knob] if v != base.WILDCARDS.get(knob)}
            variants["ignored"] = _score(subject, best, flag_runs, dtype, **{flag: False})
            knobs[knob] = min(variants, key=lambda v: variants[v])
            best_error = max(best_error, variants[knobs[knob]])
        else:
            knobs[knob] = "unsupported"
    comparable = {k: v for k, v in knobs.items() if v not in ("unsupported", "ignored", UNREACHED)}
    matching = rule.matching_presets(comparable)
    preset = None
    if best_error <= 1.0 and matching and "ignored" not in knobs.values():
        preferred = [name for name in (subject.convention, describe(subject.framework).native_convention)
                     if name in matching]
        preset = (preferred or matching)[0]
    found = Identification(knobs, preset, float(best_error), dtype, held=found_held, state_format=state_format)
    if best_error > 1.0:
        return found
    held = best.replace(**{k: v for k, v in knobs.items() if k in FLAG_KNOBS and v in knob_values[k]})
    found.param_rounding = _param_rounding(subject, held, runs, dtype)
    if found.param_rounding:  # certified as declared: its rounding is checked there too
        subject = stored(subject, found.param_rounding)
    for knob, flag in FLAG_KNOBS.items():
        if knobs.get(knob) == "ignored":  # certify the rest: the ignored flag is already reported
            subject = dataclasses.replace(subject, supports=subject.supports - {flag})
    cert = certify(subject, convention=preset or held, dtype=dtype,
                   examples=examples, golden_dir=golden_dir)
    found.certificate = cert
    found.certified = (f"conforms in {cert.cases_run} cases" + (f" and {sum(g.applicable for g in cert.golden)} "
                       "golden scenarios" if cert.golden else "") + f" ({dtype})")
    if not cert.conforms:
        found.rejection = (f"failed {cert.failure.check} at step {cert.failure.step} of case "
                           f"{cert.failure.case.split(':')[0]}: {cert.failure.detail}")
    return found


def _discriminating(subject: SubjectInfo) -> list[Case]:
    """The named cases that tell the conventions of the subject's rule apart, as the subject can run them (not
    the :data:`~optspec.conformance.cases.SENSITIVE_CASES` and
    :data:`~optspec.conformance.cases.BIAS_CASES`, which measure hyperparameters)."""
    measuring = {c.label for c in (*SENSITIVE_CASES, *BIAS_CASES)}
    return [restricted(c, subject) for c in NAMED_CASES
            if c.label not in ("amsgrad", "maximize", *measuring)
            and (c.rules is None or subject.rule in c.rules)]


def _conventions(rule: spec.Rule) -> list[spec.Knobs]:
    """Every combination of the rule's knobs but the flags' (:data:`FLAG_KNOBS`)."""
    knob_values = rule.knob_values()
    core = [k for k in knob_values if k not in FLAG_KNOBS]
    return [rule.presets[rule.default_preset].replace(**dict(zip(core, values)))
            for values in itertools.product(*(knob_values[k] for k in core))]


def _could_fit(subject: SubjectInfo, dtype: str) -> bool:
    """Whether some convention of the subject's rule, a hyperparameter its constructor hides at each of its
    plausible values included, fits the subject's run of the rule's first discriminating case.  A subject that
    fits the rule fits every case of it, so a rule it misses there is one identify need not run in full."""
    try:
        runs = _trajectories(subject, _discriminating(subject)[:1], dtype)
    except _Raised:
        return False
    overrides = [{}, *({name: value} for name, values in hidden.plausible_values(subject).items()
                       for value in values[1:])]
    return any(_score(subject, conv, runs, dtype, **override) <= 1.0
               for override in overrides for conv in _conventions(spec.get_rule(subject.rule)))


def identify_rule(first: SubjectInfo, resolve: Callable[[str], SubjectInfo], **options: Any) -> Identification:
    """Which rule, and which of its conventions, a subject follows: ``identify`` of ``first`` (the subject
    resolved under the rule it was given, or the default), and where nothing of that rule fits, of the subject
    resolved by ``resolve(rule)`` under each other rule with conventions, in the spec's order, until one fits.

    A rule whose hyperparameters the subject's constructor cannot take (``resolve`` raises
    :class:`adapters.SetupError`), or that no convention of it fits on its first discriminating case
    (:func:`_could_fit`), is passed over.  Where no rule fits, ``first``'s identification is returned.
    """
    found = identify(first, **options)
    if found.fits or found.raised is not None:
        return found
    for name, rule in spec.RULES.items():
        if name == first.rule or not rule.presets:
            continue
        try:
            subject = resolve(name)
        except adapters.SetupError:
            continue
        if not _could_fit(subject, options.get("dtype", DEFAULT_DTYPE)):
            continue
        other = identify(subject, **options)
        if other.fits:
            return dataclasses.replace(other, other_rule=(name, first.rule))
    return found


def _state_format(subject: SubjectInfo, candidates: list[spec.Knobs], runs: list[tuple[Case, list, list, Any]],
                  dtype: str) -> str | None:
    """The whole-state format (:data:`spec.quantized.PRESETS`) under which some convention fits the runs,
    checked from the codes the subject holds, where it declares none, holds codes, and nothing fits without
    one; None otherwise."""
    if spec.StateStorage(subject.state_storage).quantized() or not any(got.quantized for *_, got in runs):
        return None
    if min(_score(subject, conv, runs, dtype) for conv in candidates) <= 1.0:
        return None
    fields = spec.get_rule(subject.rule).state_fields
    for preset, formats in spec.quantized.PRESETS.items():
        declared = stored(subject, {f: name for f, name in formats.items() if f in fields})
        try:
            # the stored codes are judged alike under every convention: a format they break is passed over
            if _state_failure(declared, candidates[0], runs, dtype) is None and any(
                    _score(declared, conv, runs, dtype) <= 1.0 for conv in candidates):
                return preset
        except adapters.SetupError:  # it holds no codes where this format would: it does not fit
            continue
    return None


def _param_rounding(subject: SubjectInfo, convention: spec.Knobs, runs: list[tuple[Case, list, list, Any]],
                    dtype: str) -> dict[str, str]:
    """The storage under which the subject keeps its low-precision parameters otherwise than rounded to
    nearest, where it declares none and ``dtype`` is one they are rounded into
    (:func:`~optspec.conformance.rounding.applies_to`); empty otherwise.

    A subject that keeps a Kahan compensation the driver reads is tried as ``params=kahan``; any other as
    ``params=stochastic``, else with every state field stored in ``dtype`` too (torchao's ``_AdamW`` keeps
    its state in its parameters' dtype; a kernel whose state is float32 fits the first, the stricter).  A
    declaration is found where, so declared, the subject passes every check of ``runs`` (for stochastic
    rounding, with the bias of both halves of the interval tested: a kernel that rounds to nearest or
    truncates fails either)."""
    if not rounding.applies_to(dtype) or spec.StateStorage(subject.state_storage).param_rounding() != "nearest":
        return {}
    if any(got.compensation for *_, got in runs):
        candidates: tuple[dict[str, str], ...] = ({PARAMS: "kahan"},)
    else:
        candidates = ({PARAMS: "stochastic"},
                      {PARAMS: "stochastic", **dict.fromkeys(spec.get_rule(subject.rule).state_fields, dtype)})
    for declaration in candidates:
        declared = stored(subject, declaration)
        tested: set[str] = set()
        for case, params0, grads, got in runs:
            result = check_trajectory(declared, case, params0, grads, got, convention=convention, dtype=dtype,
                                      explain_failure=False)
            if not result.passed:
                break
            tested |= result.rounding_tested
        else:
            if declaration[PARAMS] == "kahan" or len(tested) == 2:
                return declaration
    return {}


def _hidden_values(subject: SubjectInfo, candidates: list[spec.Knobs], runs: list[tuple[Case, list, list, Any]],
                   dtype: str) -> dict[str, Any]:
    """The plausible value (:func:`~optspec.conformance.hidden.plausible_values`) of a hyperparameter the
    constructor hides under which some convention fits the runs, where none fits at the spec's default; empty
    otherwise, as certify holds a subject there only where its first failing case conforms with it."""
    def best(**override: Any) -> float:
        return min(_score(subject, conv, runs, dtype, **override) for conv in candidates)

    plausible = hidden.plausible_values(subject)
    if not any(len(values) > 1 for values in plausible.values()) or best() <= 1.0:
        return {}
    for name, values in plausible.items():
        for value in values[1:]:
            if best(**{name: value}) <= 1.0:
                return {name: value}
    return {}


def _knobs(conv: spec.Knobs, names: list[str]) -> dict[str, Any]:
    return {k: getattr(conv, k) for k in names}


def _judged(rule: spec.Rule, conv: spec.Knobs, runs: list[tuple[Case, list, list, Any]]) -> int:
    """How many elements of the recorded cases ``conv``'s float64 reference holds finite (the checks judge)."""
    return sum(int(np.isfinite(reference(rule.name, conv, case, np.asarray(p0, np.float64),
                                         np.asarray(g, np.float64))[0]).sum())
               for case, params0, grads, _ in runs for p0, g in zip(params0, grads))


def _reached_knobs(rule: spec.Rule, conv: spec.Knobs, knobs: list[str],
                   runs: list[tuple[Case, list, list, Any]]) -> set[str]:
    """The knobs some other value of which changes the float64 reference of some recorded case."""
    reached: set[str] = set()
    for case, params0, grads, _ in runs:
        for p0, g in zip(params0, grads):
            if reached.issuperset(knobs):
                return reached
            theta0, stream = np.asarray(p0, np.float64), np.asarray(g, np.float64)
            expected, _ = reference(rule.name, conv, case, theta0, stream)
            for knob in knobs:
                if knob not in reached and any(
                        not np.array_equal(expected, reference(rule.name, conv.replace(**{knob: value}), case, theta0,
                                                               stream)[0], equal_nan=True)
                        for value in rule.knob_values()[knob] if value != getattr(conv, knob)):
                    reached.add(knob)
    return reached
