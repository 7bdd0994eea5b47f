"""The registry of update rules: name -> (init, step, defaults, validate)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal

from optspec.spec import _validate, adagrad, adam, rmsprop, sgd


@dataclasses.dataclass(frozen=True)
class Rule:
    """One update rule of the spec.

    Attributes:
      name: the rule's name, as :func:`spec.run` takes it.
      init: ``init(xp, param, **init_hyper) -> State``.
      step: ``step(xp, param, grad, state, *, lr, **hyper) -> (param, State)``.
      defaults: every hyperparameter the rule takes, with its default (torch's).
      check: raises ``ValueError`` for an invalid set of hyperparameters.
      takes_convention: whether ``convention`` is a hyperparameter (Adam family).
      takes_initial_lr: whether the step needs :math:`\\mathrm{lr}_0` for
        schedule-scaled decay.
      init_hyper: the hyperparameters that :attr:`init` needs.
      weight_decay: how ``weight_decay`` acts: ``"l2"`` adds :math:`\\lambda\theta`
        to the gradient (so it passes through the moments and any adaptive
        denominator); ``"decoupled"`` shrinks :math:`\theta` directly, and
        its step also takes ``decay_lr``, the learning rate the decay reads in
        place of :math:`\\mathrm{lr}_t`.
      second_moment: the state field holding the running second moment that
        the step divides by (an adaptive denominator), or None.
      corrected_moments: for a rule whose step is :math:`\\mathrm{lr}_t\\hat m_t/D_t`,
        ``f(xp, state, betas=, eps=, amsgrad=, convention=) -> (m_hat, D)``
        of the state after step :math:`t` (:func:`optspec.spec.adam.corrected_moments`).
      l2_counterpart: for a decoupled rule, the rule that applies the same
        ``weight_decay`` as an L2 term instead.
      presets: for a rule other than the Adam family's, its conventions by
        name (``torch`` the default), values of the convention type its step
        and init take as ``convention`` (:class:`spec.sgd.SGDConvention`, ...).
    """

    name: str
    init: Callable[..., Any]
    step: Callable[..., Any]
    defaults: Mapping[str, Any]
    check: Callable[..., None]
    takes_convention: bool = False
    takes_initial_lr: bool = False
    init_hyper: tuple[str, ...] = ()
    weight_decay: Literal["l2", "decoupled"] = "l2"
    second_moment: str | None = None
    corrected_moments: Callable[..., tuple[Any, Any]] | None = None
    l2_counterpart: str | None = None
    presets: Mapping[str, Any] = dataclasses.field(default_factory=lambda: MappingProxyType({}))

    def hyperparameters(self, convention: Any = None, **given: Any) -> dict[str, Any]:
        """Validates ``given`` and returns the full set, defaults filled in.

        ``lr`` and ``initial_lr`` are the caller's business and are not included.
        """
        accepted = [k for k in self.defaults if k != "lr"]
        _validate.known_names(self.name, list(given), accepted)
        if convention is not None and not self.takes_convention and not self.presets:
            if convention != "torch":
                raise ValueError(
                    f"convention={convention!r} is not a hyperparameter of rule "
                    f"{self.name!r}: it has no conventions"
                )
        hyper = {k: v for k, v in self.defaults.items() if k != "lr"}
        hyper.update(given)
        if self.takes_convention:
            hyper["convention"] = "torch" if convention is None else convention
        elif self.presets and convention is not None:
            hyper["convention"] = convention
        self.check(lr=0.0, **hyper)
        return hyper

    def init_state(self, xp: Any, param: Any, hyper: Mapping[str, Any]) -> Any:
        return self.init(xp, param, **{k: hyper[k] for k in self.init_hyper if k in hyper})


RULES: Mapping[str, Rule] = MappingProxyType(
    {
        "sgd": Rule("sgd", sgd.init, sgd.sgd_step, sgd.SGD_DEFAULTS, sgd.validate_sgd, presets=sgd.PRESETS),
        "sgdw": Rule(
            "sgdw", sgd.init, sgd.sgdw_step, sgd.SGDW_DEFAULTS, sgd.validate_sgdw,
            takes_initial_lr=True, weight_decay="decoupled",
        ),
        "adagrad": Rule(
            "adagrad", adagrad.init, adagrad.step, adagrad.DEFAULTS, adagrad.validate,
            init_hyper=("initial_accumulator_value",), second_moment="sum", presets=adagrad.PRESETS,
        ),
        "rmsprop": Rule("rmsprop", rmsprop.init, rmsprop.step, rmsprop.DEFAULTS, rmsprop.validate,
                        init_hyper=("convention",), second_moment="square_avg", presets=rmsprop.PRESETS),
        "adam": Rule(
            "adam", adam.init, adam.adam_step, adam.ADAM_DEFAULTS, adam.validate,
            takes_convention=True, second_moment="exp_avg_sq", corrected_moments=adam.corrected_moments,
        ),
        "adamw": Rule(
            "adamw", adam.init, adam.adamw_step, adam.ADAMW_DEFAULTS, adam.validate,
            takes_convention=True, takes_initial_lr=True, weight_decay="decoupled",
            second_moment="exp_avg_sq", corrected_moments=adam.corrected_moments, l2_counterpart="adam",
        ),
    }
)


def get_rule(name: str) -> Rule:
    try:
        return RULES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown rule {name!r}: use one of {', '.join(RULES)}") from None
