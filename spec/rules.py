"""The registry of update rules: name -> (init, step, defaults, validate)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal

from optspec.spec import (
    _validate,
    adadelta,
    adagrad,
    adam,
    adamax,
    conventions,
    lion,
    nadam,
    radam,
    rmsprop,
    rprop,
    sgd,
)
from optspec.spec._knobs import Knobs, resolve_in


@dataclasses.dataclass(frozen=True)
class SignArgument:
    """The value whose sign a discontinuous step takes, and what its rounding depends on.

    Attributes:
      value: ``f(xp, grad, state, **hyper) -> array`` from the state before the step (Lion's
        :math:`\\beta_1 m + (1-\\beta_1) g`, Rprop's :math:`g_t g_{t-1}`).
      operations: the rounded operations that compute it from the state and the gradient.
      reads_moments: whether the state it reads accumulates rounding from step to step (a moment), so
        that its error grows with the step count; Rprop's kept gradient is a copy.
      magnitude: ``f(xp, grad, state, **hyper) -> array`` on :math:`|g|` and the state's magnitudes: the
        scale of a kernel's rounding error in the value, where a correct kernel may compute it in a form
        whose terms are larger than ``value``'s own (Lion's :math:`m + (1-\\beta_1)(g - m)`); None: ``value``
        on those magnitudes, the sum of its terms.
    """

    value: Callable[..., Any]
    operations: int
    reads_moments: bool
    magnitude: Callable[..., Any] | None = None


@dataclasses.dataclass(frozen=True)
class Rule:
    """One update rule of the spec.

    Attributes:
      name: the rule's name, as :func:`spec.run` takes it.
      init: ``init(xp, param, **init_hyper) -> State``.
      step: ``step(xp, param, grad, state, *, lr, **hyper) -> (param, State)``.
      defaults: every hyperparameter the rule takes, with its default (torch's).
      check: raises ``ValueError`` for an invalid set of hyperparameters.
      takes_initial_lr: whether the step needs :math:`\\mathrm{lr}_0` for
        schedule-scaled decay.
      init_hyper: the hyperparameters that :attr:`init` needs.
      weight_decay: how ``weight_decay`` acts where the convention has no
        ``weight_decay`` knob of its own (:meth:`decay_mode`): ``"l2"`` adds :math:`\\lambda\\theta`
        to the gradient (so it passes through the moments and any adaptive
        denominator); ``"decoupled"`` shrinks :math:`\\theta` directly, and
        its step also takes ``decay_lr``, the learning rate the decay reads in
        place of :math:`\\mathrm{lr}_t`.
      second_moment: the state field holding the running second moment that
        the step divides by (an adaptive denominator), or None.
      corrected_moments: for a rule whose step is :math:`\\mathrm{lr}_t\\hat m_t/D_t`,
        ``f(xp, state, betas=, eps=, amsgrad=, convention=) -> (m_hat, D)``
        of the state after step :math:`t` (:func:`optspec.spec.adam.corrected_moments`).
      l2_counterpart: for a decoupled rule, the rule that applies the same
        ``weight_decay`` as an L2 term instead.
      presets: the rule's conventions by name (the first, ``torch`` where torch has the rule, the
        default: :attr:`default_preset`), values
        of the convention type its step (and init) take as ``convention``
        (:class:`spec.Convention` for the Adam family,
        :class:`spec.SGDConvention`, ...); empty for a rule with one behaviour.
      inert_knobs: the knobs of its convention type that its step never reads
        (Adam's L2 decay has neither a scale nor a point to choose).
      compiles: whether the spec's compiled step implements the rule
        (``adapters/compiled.py``: ``--size``, the spec as a framework's
        optimizer).
      off_values: the value of each hyperparameter that switches its effect
        off (weight decay's 0): the certifier tries it as the value a
        constructor that hides the hyperparameter behaves as.
      state_type: the ``NamedTuple`` of its state (a ``step`` count and arrays).
      elementwise: whether each element's step reads that element alone (of
        the parameter, the gradient and each state array) and the step's
        scalars: the step then broadcasts, so that parameters stacked on a
        leading axis over one state step as each would alone, bit for bit
        (the certifier's reference steps the free-running and the re-synced
        parameters so, and its drawn cases share one subject).  A rule that
        reads a whole tensor (a norm, a factored moment) is not.
      bias_corrected: whether its step divides by :math:`1-\\beta^t` for its
        ``betas`` (the tolerance model's condition-number term,
        :func:`optspec.conformance.tolerance.bias_condition`); Lion's reads
        β only in its moments.
      sign_argument: for a step discontinuous where a value crosses 0 (it takes
        that value's sign), that value (:class:`SignArgument`); its step then
        takes ``signs``, an array that
        where not NaN replaces that sign (the branch a kernel took).  The
        certifier accepts either branch where a correct kernel's rounding of
        the value may cross 0 (:mod:`optspec.conformance.branches`).
      rounded_parts: how many parts of its update a correct kernel may add to
        the parameters one at a time, each rounded to their dtype (torch's
        NAdam: the gradient's and the momentum's, in two ``addcdiv_``,
        ``torch/optim/nadam.py`` L371-378).  The bias test
        (:mod:`optspec.conformance.bias`) models one, with a decoupled decay
        before or after it, and does not test a rule with more.
    """

    name: str
    init: Callable[..., Any]
    step: Callable[..., Any]
    defaults: Mapping[str, Any]
    check: Callable[..., None]
    takes_initial_lr: bool = False
    init_hyper: tuple[str, ...] = ()
    weight_decay: Literal["l2", "decoupled"] = "l2"
    second_moment: str | None = None
    corrected_moments: Callable[..., tuple[Any, Any]] | None = None
    l2_counterpart: str | None = None
    presets: Mapping[str, Knobs] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    inert_knobs: frozenset[str] = frozenset()
    compiles: bool = False
    off_values: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: MappingProxyType({"weight_decay": 0.0}))
    state_type: type | None = None
    elementwise: bool = False
    bias_corrected: bool = True
    sign_argument: SignArgument | None = None
    rounded_parts: int = 1

    @property
    def default_preset(self) -> str | None:
        """The preset a convention left unsaid resolves to (the first); None for a rule without any."""
        return next(iter(self.presets), None)

    def preset_or_default(self, name: str) -> str | None:
        """``name`` where it is one of its presets (a framework's own), else :attr:`default_preset`."""
        return name if name in self.presets else self.default_preset

    @property
    def state_fields(self) -> tuple[str, ...]:
        """The arrays of its state (:mod:`optspec.spec.storage` names them), without the step count."""
        return tuple(field for field in getattr(self.state_type, "_fields", ()) if field != "step")

    @property
    def takes_convention(self) -> bool:
        """Whether ``convention`` is a hyperparameter: the rule has presets."""
        return bool(self.presets)

    def resolve(self, convention: str | Knobs | None) -> Knobs | None:
        """The convention a preset name (``torch`` for None) or a value names; None for a rule without any.

        Raises ``ValueError`` naming the rule's presets for an unknown name or a
        value of another rule's convention type.
        """
        if not self.presets:
            if convention not in (None, "torch"):
                raise ValueError(f"convention={convention!r} is not a hyperparameter of rule {self.name!r}: "
                                 f"it has no conventions")
            return None
        return resolve_in(self.name, self.presets, convention)

    def knob_values(self) -> Mapping[str, tuple]:
        """Each knob its step reads, with the values it may take (empty for a rule without conventions)."""
        if not self.presets:
            return MappingProxyType({})
        every = next(iter(self.presets.values())).KNOB_VALUES
        return MappingProxyType({k: v for k, v in every.items() if k not in self.inert_knobs})

    def differences(self, convention: Knobs, other: Knobs) -> dict[str, tuple[Any, Any]]:
        """The knobs its step reads on which two of its conventions disagree: knob -> (value, other's)."""
        return {k: v for k, v in convention.differences(other).items() if k not in self.inert_knobs}

    def matching_presets(self, knobs: Mapping[str, Any]) -> list[str]:
        """Names of its presets that agree (:meth:`Knobs.agrees`) with every knob given in ``knobs``.

        Knobs left out of ``knobs`` (a subject cannot express them) match any value.
        """
        return [name for name, preset in self.presets.items() if all(preset.agrees(k, v) for k, v in knobs.items())]

    def decay_mode(self, convention: Knobs | None) -> Literal["l2", "decoupled"]:
        """How ``weight_decay`` acts in ``convention``: its ``weight_decay`` knob where it has one."""
        return getattr(convention, "weight_decay", None) or self.weight_decay

    def hyperparameters(self, convention: Any = None, **given: Any) -> dict[str, Any]:
        """Validates ``given`` and returns the full set, defaults filled in.

        ``lr`` and ``initial_lr`` are the caller's business and are not included.
        """
        accepted = [k for k in self.defaults if k != "lr"]
        _validate.known_names(self.name, list(given), accepted)
        if not self.takes_convention:
            self.resolve(convention)
        hyper = {k: v for k, v in self.defaults.items() if k != "lr"}
        hyper.update(given)
        if self.takes_convention:
            hyper["convention"] = self.default_preset if convention is None else convention
        self.check(lr=0.0, **hyper)
        return hyper

    def init_state(self, xp: Any, param: Any, hyper: Mapping[str, Any]) -> Any:
        return self.init(xp, param, **{k: hyper[k] for k in self.init_hyper if k in hyper})


RULES: Mapping[str, Rule] = MappingProxyType(
    {
        "sgd": Rule("sgd", sgd.init, sgd.sgd_step, sgd.SGD_DEFAULTS, sgd.validate_sgd, presets=sgd.PRESETS,
                    state_type=sgd.SGDState, elementwise=True),
        "sgdw": Rule(
            "sgdw", sgd.init, sgd.sgdw_step, sgd.SGDW_DEFAULTS, sgd.validate_sgdw,
            takes_initial_lr=True, weight_decay="decoupled", state_type=sgd.SGDState, elementwise=True,
        ),
        "adagrad": Rule(
            "adagrad", adagrad.init, adagrad.step, adagrad.DEFAULTS, adagrad.validate,
            init_hyper=("initial_accumulator_value",), second_moment="sum", presets=adagrad.PRESETS,
            state_type=adagrad.AdagradState, elementwise=True,
        ),
        "rmsprop": Rule("rmsprop", rmsprop.init, rmsprop.step, rmsprop.DEFAULTS, rmsprop.validate,
                        init_hyper=("convention",), second_moment="square_avg", presets=rmsprop.PRESETS,
                        state_type=rmsprop.RMSpropState, elementwise=True),
        "adam": Rule(
            "adam", adam.init, adam.adam_step, adam.ADAM_DEFAULTS, adam.validate,
            second_moment="exp_avg_sq", corrected_moments=adam.corrected_moments, presets=conventions.PRESETS,
            inert_knobs=frozenset({"decay_scale", "decay_point"}), compiles=True, state_type=adam.AdamState, elementwise=True,
        ),
        "adamw": Rule(
            "adamw", adam.init, adam.adamw_step, adam.ADAMW_DEFAULTS, adam.validate,
            takes_initial_lr=True, weight_decay="decoupled", second_moment="exp_avg_sq",
            corrected_moments=adam.corrected_moments, l2_counterpart="adam", presets=conventions.PRESETS,
            compiles=True, state_type=adam.AdamState, elementwise=True,
        ),
        "adamax": Rule("adamax", adamax.init, adamax.step, adamax.DEFAULTS, adamax.validate, presets=adamax.PRESETS,
                       state_type=adamax.AdamaxState, elementwise=True),
        "nadam": Rule("nadam", nadam.init, nadam.step, nadam.DEFAULTS, nadam.validate, second_moment="exp_avg_sq",
                      presets=nadam.PRESETS, state_type=nadam.NAdamState, elementwise=True, rounded_parts=2),
        "radam": Rule("radam", radam.init, radam.step, radam.DEFAULTS, radam.validate, second_moment="exp_avg_sq",
                      presets=radam.PRESETS, state_type=radam.RAdamState, elementwise=True),
        "adadelta": Rule("adadelta", adadelta.init, adadelta.step, adadelta.DEFAULTS, adadelta.validate,
                         second_moment="square_avg", presets=adadelta.PRESETS, state_type=adadelta.AdadeltaState,
                         elementwise=True),
        "lion": Rule("lion", lion.init, lion.step, lion.DEFAULTS, lion.validate, takes_initial_lr=True,
                     weight_decay="decoupled", presets=lion.PRESETS, state_type=lion.LionState, elementwise=True,
                     bias_corrected=False,
                     sign_argument=SignArgument(lion.sign_argument, 4, True, lion.sign_argument_magnitude)),
        "rprop": Rule("rprop", rprop.init, rprop.step, rprop.DEFAULTS, rprop.validate, takes_initial_lr=True,
                      init_hyper=("initial_lr",), presets=rprop.PRESETS, state_type=rprop.RpropState,
                      elementwise=True, off_values=MappingProxyType({}),
                      sign_argument=SignArgument(rprop.sign_argument, 1, False)),
    }
)


def get_rule(name: str) -> Rule:
    try:
        return RULES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown rule {name!r}: use one of {', '.join(RULES)}") from None


def preset_names() -> tuple[str, ...]:
    """Every preset name of any rule, in the order the rules list them (``torch`` first)."""
    return tuple(dict.fromkeys(name for rule in RULES.values() for name in rule.presets))
