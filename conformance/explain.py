"""Diagnosing a failure: the change to the expected behaviour that explains it (a knob, a pair of knobs, another
rule), if one does, and how much of it a change that does not explain it all explains."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from optspec import adapters, spec
from optspec.adapters.driver import SubjectInfo
from optspec.adapters.namespaces import quantized
from optspec.conformance import tolerance
from optspec.conformance.cases import Case
from optspec.conformance.hidden import behaves_as, plausible_values
from optspec.conformance.reference import reference

#: A change is a candidate if the reference with it leaves at most this fraction of the error (it is then
#: named only where the case is within the bounds with it).
HINT_THRESHOLD = 0.1

#: Dtypes a subject may store its optimizer state in, tried as explanations where it holds them.
STATE_DTYPES = ("float32", "bfloat16", "float16")

#: The coarser dtypes whose tolerance model is tried when no single change explains a failure, where the
#: subject holds its parameters or state in one of them.
COARSER_ARITHMETIC = {"float64": ("float32",), "float32": ("bfloat16", "float16")}

#: The fewest steps the changes are scored over: a failure at step t is scored over the case's first
#: max(2t, this) steps (a golden scenario runs 10 000), and a change is named only where the whole case is
#: within the bounds with it.
SCORED_STEPS = 100


@dataclasses.dataclass(frozen=True)
class FailurePoint:
    """Where a check failed, as its failure line prints it.

    Attributes:
      check: ``one_step`` (against the reference re-synced on the subject's
        previous parameters) or ``trajectory`` (against the free-running one).
      at: the index into the tensor's trajectory, ``(step - 1, *element)``.
      error: the error printed there.
      ratio: that error over its bound.
    """

    check: str
    at: tuple[int, ...]
    error: float
    ratio: float | None = None


@dataclasses.dataclass(frozen=True)
class Change:
    """A change to the expected behaviour: the reference of ``rule`` in ``convention``, with ``override``
    (hyperparameters, or a defect model of :func:`~optspec.conformance.reference.reference`).

    ``knobs`` are the convention knobs it sets (so that two changes combine, :func:`combined`), and
    ``of`` the single changes it is made of (itself for a single one); ``whole_rule``, that it is another
    rule of the spec as it stands (its name then says no more than the rule); ``hidden``, the values it
    gives hyperparameters the subject's constructor does not take (:mod:`optspec.conformance.hidden`).
    """

    name: str
    rule: str
    convention: spec.Knobs | None
    override: Mapping[str, Any]
    knobs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    of: tuple[str, ...] = ()
    whole_rule: bool = False
    hidden: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def applied_to(self, case: Case) -> Case:
        """``case`` with only the hyperparameters :attr:`rule` takes (those of another rule dropped)."""
        accepted = spec.get_rule(self.rule).defaults
        if all(name in accepted for name in case.hyper):
            return case
        return dataclasses.replace(case, hyper={k: v for k, v in case.hyper.items() if k in accepted})

    @property
    def parts(self) -> tuple[str, ...]:
        """The names of the single changes it is made of."""
        return self.of or (self.name,)


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """What :func:`explain` says (``text``) and the change it names, if it names one."""

    text: str
    change: Change | None = None


def explain(subject: SubjectInfo, convention: spec.Knobs | None, case: Case, theta0: np.ndarray,
            grads: np.ndarray, traj: np.ndarray, dtype: str, *, ratio_with: Callable[[Change], float],
            failed: FailurePoint | None = None, storage_dtypes: frozenset[str] = frozenset(),
            worst_ratio_in: Callable[[str], float] | None = None, tie_bounds: np.ndarray | None = None) -> Diagnosis:
    """The change to the expected behaviour that explains ``traj``, if one does, and no more than it shows.

    The changes tried, in this order:

    1. each single change (:func:`_candidates`): every other value of every
       convention knob, a bias correction one step late or one step early, a
       decoupled decay that reads the previous step's learning rate, L2 in
       place of decoupled decay, no weight decay at all, an averaging rate
       swapped (1−ρ for ρ, β1 for β2: :func:`_averaging_rates_swapped`), an
       ignored
       ``amsgrad`` or ``maximize``, a hyperparameter the constructor hides at
       a plausible or a fitted value (:mod:`optspec.conformance.hidden`),
       the state stored in a coarser dtype the subject holds (judged by the
       bounds alone, which it widens; named as a ``--state-dtype`` to
       declare, never taken), and (in float64) hyperparameters rounded to
       float32, all or one;
    2. each pair of the single changes (two knobs, a knob and a defect model,
       a knob and a hidden value: :func:`combined`);
    3. every other rule of the spec, in each of its presets (:func:`_other_rules`).

    A change is a candidate when the reference with it leaves at most
    :data:`HINT_THRESHOLD` of the case's largest error on this tensor; it is
    *named*, "most likely", only when the whole case, every tensor and check,
    is within the tolerance model's bounds with it (``ratio_with(change)``, the
    case's worst error/bound under that change, is at most 1).  A candidate
    that is not within the bounds is said to explain the error in part, with
    the error it leaves against the bound, and names no knob with
    confidence.  Given ``failed``, the hint also quotes the error the failure
    line printed and what the change leaves of it at the same step and element.

    When none explains it, arithmetic in a coarser dtype is offered as the
    explanation only where the subject holds its parameters or state in it
    (``storage_dtypes``, read from the subject by the driver): then
    ``worst_ratio_in(d)`` (the case's worst error/bound with the tolerance
    model of dtype ``d``) is asked for that dtype, and if its bounds hold
    every step, the advice is to certify in it; where it holds state in 8
    bits (quantized), none is offered, and that is said.  A subject that holds its
    parameters and state in the dtype under test is never told to re-run in
    a coarser one: that would weaken the check it failed.  Failing that, a
    float64 trajectory whose every value is a float32 value is named as
    computed in float32 (what the subject returned shows it; no model of its
    float32 arithmetic is assumed).

    The changes are scored (their error, to pick the candidates) over the
    case's first steps up to twice the failing step's, at least
    :data:`SCORED_STEPS` (:func:`scored_span`); a candidate is still named
    only by its ratio over the whole case.  ``tie_bounds``, for a rule whose
    step takes a sign (:mod:`optspec.conformance.branches`), let each change's
    reference of that rule take the subject's branch where it is tied.
    """
    case, grads, traj, scope = scored_span(case, grads, traj, failed)
    if tie_bounds is not None:
        tie_bounds = tie_bounds[:case.steps]
    base_free, _ = reference(subject.rule, convention, case, theta0, grads, traj if tie_bounds is not None else None,
                             storage=subject.state_storage, tie_bounds=tie_bounds)
    base = float(np.nanmax(np.abs(traj - base_free)))

    def scored(changes: list[Change]) -> list[tuple[float, float | None, Change]]:
        """Each change that the reference can run, with its largest error and its error at the failure."""
        out = []
        for change in changes:
            override = dict(change.override)
            storage = {**subject.state_storage, **override.pop("storage", {})}
            try:
                free, resync = reference(change.rule, change.convention, change.applied_to(case), theta0, grads,
                                         traj if failed or tie_bounds is not None else None, storage=storage,
                                         tie_bounds=tie_bounds, **override)
            except ValueError:
                continue
            at_failure = None
            if failed is not None:
                expected = resync if failed.check == "one_step" else free
                at_failure = float(np.abs(traj[failed.at] - expected[failed.at]))
            out.append((float(np.nanmax(np.abs(traj - free))), at_failure, change))
        return sorted(out, key=lambda item: item[0])

    fitted = [_hidden_change(name, value, subject.rule, convention) for name in plausible_values(subject)
              if (value := _fitted_hidden(subject, convention, case, theta0, grads, traj, name)) is not None]
    singles = scored([*_candidates(subject, convention, case, dtype, storage_dtypes).values(), *fitted])
    # a change may move the reference further off alone and be half of a pair that explains it all (a hidden
    # weight decay of 0 beside a knob), so the pairs are of the singles nearest the subject, whatever their error
    nearest = [change for _, _, change in singles][:PAIRED]
    pairs = scored([both for i, a in enumerate(nearest) for b in nearest[i + 1:]
                    if (both := combined(a, b, subject.rule, convention)) is not None])
    rules = scored(_other_rules(subject))
    # A change leaving more than the threshold of an error many times the bound cannot bring it within it;
    # where the failure is near the bound, every change that reduces the error is checked.
    near = failed is not None and failed.ratio is not None and failed.ratio * HINT_THRESHOLD < 1
    partial = None
    for tried in (singles, pairs, rules):
        # another rule is a claim about the whole optimizer: it must explain most of the error, near the bound too
        close = [item for item in tried if base > 0 and (item[0] <= HINT_THRESHOLD * base
                                                         or (near and tried is not rules and item[0] < base)
                                                         or _widens_bounds(item[2]))]
        # the subject's own rule first, a value or a knob before a state stored in fewer bits (which widens the
        # bounds, and so could accept what a knob explains)
        for score, at_failure, change in sorted(close, key=lambda item: (item[2].rule != subject.rule,
                                                                         _widens_bounds(item[2]), item[0])):
            ratio = ratio_with(change)
            if ratio <= 1:
                return Diagnosis(_named(subject, change, base, score, failed, at_failure, ratio, scope), change)
            if partial is None and tried is not rules and not _widens_bounds(change):
                partial = (score, change, ratio)
    at_failing_step = f"; the failing step's error is {failed.error:.3g}" if failed else ""
    verdict = (f"no single knob explains it, nor a pair: none of {len(singles)} single changes or {len(pairs)} "
               f"pairs of them brings the case within the bounds, and no other rule of the spec fits its steps "
               f"({len(rules)} rules and presets tried){at_failing_step}")
    if partial is not None:
        score, change, ratio = partial
        verdict += (f"; {' and '.join(change.parts)} partly explains it: with it, the case's largest error{scope} "
                    f"falls from {base:.3g} to {score:.3g}, still {ratio:.3g} times the bound")
    if eight_bit := sorted(d for d in storage_dtypes if quantized(d)):
        # its floating state beside them (float16 scales of 8-bit moments) is not what it computes in
        if (fitted := _state_format(subject, convention, ratio_with)) is not None:
            return fitted
        return Diagnosis(f"{verdict}; the subject holds state in 8 bits ({', '.join(eight_bit)}): quantized, "
                         "which no dtype's tolerance model describes, so a run in another dtype would not certify it; "
                         "where it keeps blockwise codes in a format of the spec, declare it (--state-dtype "
                         f"{' or '.join(spec.quantized.PRESETS)}, or FIELD=FORMAT with FORMAT one of "
                         f"{', '.join(spec.quantized.FORMATS)}) and each step is checked from the state it holds")
    for arithmetic in COARSER_ARITHMETIC.get(dtype, ()) if worst_ratio_in is not None else ():
        if arithmetic not in storage_dtypes:
            continue
        ratio = worst_ratio_in(arithmetic)
        if ratio <= 1:
            return Diagnosis(f"{verdict}; the subject holds its parameters or state in {arithmetic}, and every "
                             f"step is within {arithmetic}'s bounds (worst {ratio:.2g} of the bound): certify it "
                             f"with --dtype {arithmetic}")
    if dtype == "float64" and _float32_values(traj) and not _float32_values(base_free):
        return Diagnosis("computed in float32: every value the subject returned is exactly a float32 value, where "
                         "the float64 reference's are not (as MindSpore's AdamWeightDecay, which casts float64 "
                         f"parameters to float32 for its kernel); the case's largest error is {base:.3g}"
                         f"{at_failing_step}")
    return Diagnosis(verdict)


def scored_span(case: Case, grads: np.ndarray, traj: np.ndarray, failed: FailurePoint | None
                ) -> tuple[Case, np.ndarray, np.ndarray, str]:
    r"""``case``, this tensor's ``grads`` and ``traj`` cut to the steps the changes are scored over: the first
    :math:`\max(2t, S)` of a failure at step :math:`t` (:data:`SCORED_STEPS` is :math:`S`), all of them where
    that is the whole case or nothing failed; and the words that say over which steps (none for all of them)."""
    steps = case.steps if failed is None else max(2 * (failed.at[0] + 1), SCORED_STEPS)
    if steps >= case.steps:
        return case, grads, traj, ""
    return (dataclasses.replace(case, lrs=case.lrs[:steps], grads=[g[:steps] for g in case.grads]), grads[:steps],
            traj[:steps], f" over its first {steps} steps")


def _state_format(subject: SubjectInfo, convention: spec.Knobs | None,
                  ratio_with: Callable[[Change], float]) -> Diagnosis | None:
    """The state formats of :data:`spec.quantized.PRESETS` under which the whole case is within the bounds,
    checked from the codes the subject holds (:mod:`optspec.conformance.quantized_state`), named; None where
    none is, or the driver reads no codes from the subject."""
    fields = spec.get_rule(subject.rule).state_fields
    fitting: list[tuple[str, Change, float]] = []
    for preset, formats in spec.quantized.PRESETS.items():
        change = Change(f"state stored in the format {preset}", subject.rule, convention,
                        {"storage": {f: name for f, name in formats.items() if f in fields}})
        try:
            ratio = ratio_with(change)
        except adapters.SetupError:  # the subject holds no codes where this format would: it does not fit
            continue
        if ratio <= 1:
            fitting.append((preset, change, ratio))
    if not fitting:
        return None
    (preset, change, ratio), names = fitting[0], [name for name, *_ in fitting]
    described = "; ".join(spec.quantized.FORMATS[name].describe()
                          for name in dict.fromkeys(spec.quantized.PRESETS[preset].values()))
    which = f"the format {preset} ({described})" if len(names) == 1 else (
        f"one of the formats {', '.join(names)}, which this case cannot tell apart ({preset}: {described})")
    return Diagnosis(f"most likely: the subject stores its state in {which}: checked step by step from the "
                     f"codes it holds, every step is within the bounds (worst {ratio:.2g} of the bound); if that "
                     f"is its design, certify it in that set-up: --state-dtype {preset}", change)


#: At most this many single changes, those whose reference is nearest the subject's, are tried two at a time.
PAIRED = 24


def _widens_bounds(change: Change) -> bool:
    """Whether ``change`` stores state in fewer bits, which the tolerance model's bounds then allow for."""
    return "storage" in change.override


def _named(subject: SubjectInfo, change: Change, base: float, score: float, failed: FailurePoint | None,
           at_failure: float | None, ratio: float, scope: str) -> str:
    """The hint that names ``change``: the knob or knobs, or the rule and preset the subject's steps follow;
    ``scope`` says over which steps ``base`` and ``score`` are the largest errors (:func:`scored_span`)."""
    falls = f"the case's largest error{scope} falls from {base:.3g} to {score:.3g}"
    if failed is not None:
        falls += f", and the failing step's error falls from {failed.error:.3g} to {at_failure:.3g}"
    within = f"{falls}, within the bounds (worst {ratio:.2g} of the bound)"
    if storage := change.override.get("storage"):
        (stored_in,) = set(storage.values())
        others = [part for part in change.parts if part != f"state stored in {stored_in}"]
        also = f", with {' and '.join(others)}," if others else ""
        return (f"most likely: the subject stores state in {stored_in}{also} (it holds {stored_in} state, and with "
                f"its state stored so every step is within the bounds, worst {ratio:.2g} of the bound; which fields, "
                f"these bounds cannot tell); if that is its design, declare each field it stores so, and it is "
                f"certified in that set-up: --state-dtype FIELD={stored_in}, FIELD one of {', '.join(storage)}")
    if change.hidden:
        values = ", ".join(f"{name}={value!r}" for name, value in change.hidden.items())
        said = f"the constructor takes no {' or '.join(change.hidden)}, and the subject behaves as {values} (with it, {within})"
        if behaves_as(subject, change.hidden):
            return f"most likely: {said}"
        holds = " ".join(f"--hold {name}={value!r}" for name, value in change.hidden.items())
        return f"most likely: {said}; if that is its design, declare it: {holds}"
    if change.rule == subject.rule:
        label = "most likely knob" if len(change.parts) == 1 else "most likely knobs"
        return f"{label}: {' and '.join(change.parts)} (with it, {within})"
    rule = spec.get_rule(change.rule)
    preset = next((name for name, value in rule.presets.items() if not rule.differences(value, change.convention)),
                  None) if change.convention is not None else None
    if change.convention is not None and preset is None:
        knobs = ", ".join(f"{knob}={getattr(change.convention, knob)}" for knob in rule.knob_values())
        follows, command = f"rule {change.rule} with the knobs {knobs}", f"--rule {change.rule}"
    else:
        follows = f"rule {change.rule}" + (f" with preset {preset}" if preset else "")
        command = f"--rule {change.rule}" + (f" --convention {preset}" if preset else "")
    how = "" if change.whole_rule else f"{' and '.join(change.parts)}; "
    return (f"another rule: its steps follow the spec's {follows}, not {subject.rule} ({how}with it, {within}): "
            f"certify it with {command}")


def combined(a: Change, b: Change, rule: str, convention: spec.Knobs | None) -> Change | None:
    """Both changes at once, or None where they cannot combine: they set the same knob or hyperparameter,
    model the same defect two ways, change the rule two ways, or set a knob (or model a decoupled decay's
    defect) that the changed rule does not have."""
    rules = {a.rule, b.rule} - {rule}
    if len(rules) > 1 or set(a.knobs) & set(b.knobs) or set(a.override) & set(b.override):
        return None
    if len({"step_lag", "step_lead", "second_moment_lag"} & {*a.override, *b.override}) > 1:
        return None
    into = rules.pop() if rules else rule
    if "previous_lr_decay" in {*a.override, *b.override} and spec.get_rule(into).weight_decay != "decoupled":
        return None
    knobs = {**a.knobs, **b.knobs}
    if knobs and (convention is None or set(knobs) & spec.get_rule(into).inert_knobs):
        return None
    merged = convention.replace(**knobs) if knobs else (a.convention if a.rule == into else b.convention)
    if convention is not None:  # knobs in the order the convention lists them, then the other changes
        order = list(type(convention).KNOB_VALUES)
        a, b = sorted((a, b), key=lambda change: min((order.index(k) for k in change.knobs), default=len(order)))
    return Change(f"{a.name} and {b.name}", into, merged, {**a.override, **b.override}, knobs, (*a.parts, *b.parts),
                  hidden={**a.hidden, **b.hidden})


def _other_rules(subject: SubjectInfo) -> list[Change]:
    """The spec's every other rule, in each of its presets (or its one behaviour), as changes."""
    return [Change(f"rule {name}" + (f" with preset {preset}" if preset else ""), name, value, {}, whole_rule=True)
            for name, rule in spec.RULES.items() if name != subject.rule
            for preset, value in (rule.presets.items() or [(None, None)])]


def explain_non_finite(subject: SubjectInfo, convention: spec.Knobs | None, case: Case, dtype: str,
                       conforms_with: Callable[[Change], bool],
                       storage_dtypes: frozenset[str] = frozenset()) -> Diagnosis | None:
    """The single change under which a subject's non-finite values are expected, if one is.

    The subject is NaN or infinite where ``convention``'s reference is finite
    (Adagrad's 0/0 where the expected convention guards it, for example).  A
    change of :func:`explain`'s candidates explains it when the whole case
    conforms with it (``conforms_with(change)``, the full checks; the
    certifier does not judge an element whose reference is non-finite too).
    """
    for change in _candidates(subject, convention, case, dtype, storage_dtypes).values():
        if conforms_with(change):
            return Diagnosis(f"most likely knob: {change.name} (with it, the reference is non-finite where the "
                             "subject is, and the case conforms)", change)
    return None


def _float32_values(values: np.ndarray) -> bool:
    """Whether every finite value is exactly a float32 value (and not all are 0, ±1 or integers, which are)."""
    finite = values[np.isfinite(values)]
    return bool(finite.size) and bool(np.all(finite.astype(np.float32).astype(np.float64) == finite)) and not bool(
        np.all(finite == np.round(finite)))


def _candidates(subject: SubjectInfo, convention: spec.Knobs | None, case: Case,
                dtype: str, storage_dtypes: frozenset[str] = frozenset()) -> dict[str, Change]:
    """Each single change :func:`explain` tries, by name; a state stored in a coarser dtype only where the
    subject holds that dtype (``storage_dtypes``, read from it by the driver)."""
    rule = spec.get_rule(subject.rule)
    found: list[Change] = []

    def candidate(name: str, override: Mapping[str, Any], *, conv: Any = convention, rule_name: str = rule.name,
                  knobs: Mapping[str, Any] | None = None) -> None:
        found.append(Change(name, rule_name, conv, override, knobs or {}))

    if rule.corrected_moments is not None:
        candidate("bias_correction one step late (the step count lags by one)", {"step_lag": True})
        candidate("bias_correction one step early (the step count runs one ahead)", {"step_lead": True})
        candidate("the second moment's bias correction one step late (the first moment's on time)",
                  {"second_moment_lag": True})
    if rule.takes_convention:
        resolved = rule.resolve(convention)
        for knob, values in rule.knob_values().items():
            for value in values:
                if value != getattr(resolved, knob) and value != resolved.WILDCARDS.get(knob):
                    candidate(f"{knob}={value}", {}, conv=resolved.replace(**{knob: value}), knobs={knob: value})
    if (coupled := rule.l2_counterpart) is not None:
        candidate(f"weight decay applied as an L2 term in the gradient (rule {coupled})", {}, conv=convention,
                  rule_name=coupled)
    for name, swapped, what in _averaging_rates_swapped(rule, case.hyper):
        candidate(what, {name: swapped})
    if case.hyper.get("weight_decay"):
        candidate("weight decay not applied (as with weight_decay=0)", {"weight_decay": 0.0})
        if rule.weight_decay == "decoupled" and len(set(case.lrs)) > 1:
            candidate("weight decay scaled by the previous step's lr (the decay lags the schedule)",
                      {"previous_lr_decay": True})
    for name, values in plausible_values(subject).items():
        for value in values[1:]:  # the first, the spec's default, is what the subject is held to now
            found.append(_hidden_change(name, value, rule.name, convention))
    for flag in ("amsgrad", "maximize"):
        if case.hyper.get(flag) and flag not in subject.fixed:
            candidate(f"{flag} ignored (the subject accepts {flag}=True and runs without it)", {flag: False})
    for state_dtype in sorted(storage_dtypes & set(STATE_DTYPES), key=tolerance.unit_roundoff):
        if tolerance.unit_roundoff(state_dtype) <= tolerance.unit_roundoff(dtype):
            continue
        # the bounds a stored state widens are the same whichever field it is, so one change says it for all
        stored = {field: state_dtype for field in rule.state_fields if subject.state_storage.get(field) != state_dtype}
        if stored:
            candidate(f"state stored in {state_dtype}", {"storage": stored})
    if dtype == "float64":
        candidate("hyperparameters rounded to float32 on the way in (as tensorflow#35938)",
                  _through_float32(case.hyper))
        for name, value in case.hyper.items():
            if (rounded := _through_float32({name: value})) != {name: value}:
                candidate(f"{name} alone rounded to float32 on the way in (a float32 kernel attribute, as "
                          "Paddle's AdamW coeff)", rounded)
    return {change.name: change for change in found}


def _averaging_rates_swapped(rule: spec.Rule, hyper: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    """The swaps a kernel may make of its averaging rates, those hyperparameters whose spec default lies in
    [0.5, 1) (β, ρ, RMSprop's α): each rate taken as its complement (1−ρ for ρ), and a
    pair of rates taken in the other order (β2 for β1 and β1 for β2), as (name, swapped value, the change in
    words)."""
    def is_rate(default: Any) -> bool:
        return isinstance(default, float) and 0.5 <= default < 1

    def shown(value: Any) -> str:
        return f"({', '.join(f'{v:g}' for v in value)})" if isinstance(value, tuple) else f"{value:g}"

    found = []
    for name, value in hyper.items():
        default = rule.defaults.get(name)
        if isinstance(value, tuple) and isinstance(default, tuple) and all(map(is_rate, default)):
            if len(value) == 2 and value[0] != value[1]:
                found.append((name, value[::-1], f"{name} in the other order ({shown(value[::-1])} where "
                                                 f"{shown(value)} is given)"))
            for k, component in enumerate(value):
                if 0 < component < 1 and component != 0.5:
                    swapped = (*value[:k], 1 - component, *value[k + 1:])
                    found.append((name, swapped, f"{name}[{k}] taken as 1 - {name}[{k}] ({shown(swapped)} where "
                                                 f"{shown(value)} is given)"))
        elif is_rate(default) and isinstance(value, float) and 0 < value < 1 and value != 0.5:
            found.append((name, 1 - value, f"{name} taken as 1 - {name} ({shown(1 - value)} where "
                                           f"{shown(value)} is given)"))
    return found


def _hidden_change(name: str, value: Any, rule: str, convention: spec.Knobs | None) -> Change:
    return Change(f"{name}={value!r} inside", rule, convention, {name: value}, hidden={name: value})


#: The values a hidden hyperparameter is first scored at: 0 and 1e-8 to 1, four a decade.
FIT_GRID = (0.0, *np.logspace(-8, 0, 33))


def _fitted_hidden(subject: SubjectInfo, convention: spec.Knobs | None, case: Case, theta0: np.ndarray,
                   grads: np.ndarray, traj: np.ndarray, name: str) -> float | None:
    """The value, to 3 significant digits, of the real hyperparameter ``name`` (hidden by the constructor) whose
    reference is nearest ``traj``: the best of :data:`FIT_GRID`, refined by golden-section search between
    its neighbours.  None for a hyperparameter that is not a real number."""
    if not isinstance(spec.get_rule(subject.rule).defaults[name], float):
        return None

    def error(value: float) -> float:
        try:
            free, _ = reference(subject.rule, convention, case, theta0, grads, storage=subject.state_storage,
                                **{name: value})
        except ValueError:
            return float("inf")
        return float(np.nanmax(np.abs(traj - free)))

    errors = [error(value) for value in FIT_GRID]
    best = int(np.argmin(errors))
    low, high = FIT_GRID[max(best - 1, 0)], FIT_GRID[min(best + 1, len(FIT_GRID) - 1)]
    ratio = (np.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    error_a, error_b = error(a), error(b)
    for _ in range(25):  # each step keeps one of the two points, so one new reference run a step
        if error_a <= error_b:
            high, b, error_b = b, a, error_a
            a = high - ratio * (high - low)
            error_a = error(a)
        else:
            low, a, error_a = a, b, error_b
            b = low + ratio * (high - low)
            error_b = error(b)
    return float(f"{(low + high) / 2:.3g}")


def _through_float32(hyper: dict[str, Any]) -> dict[str, Any]:
    def rounded_value(value: Any) -> Any:
        if isinstance(value, tuple):
            return tuple(rounded_value(v) for v in value)
        if isinstance(value, float):
            return float(np.float32(value))
        return value

    return {k: rounded_value(v) for k, v in hyper.items()}


