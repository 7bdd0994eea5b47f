"""What every rule's convention shares: knobs with a closed set of values, checked on construction.

A rule's convention is a frozen dataclass deriving from :class:`Knobs`, whose
fields are its knobs and whose ``KNOB_VALUES`` lists each knob's values; a
preset is a plain value of it (:class:`optspec.spec.Convention` for the Adam
family, and those of :mod:`optspec.spec.sgd`, :mod:`optspec.spec.adagrad`,
:mod:`optspec.spec.rmsprop`).  :func:`weight_decayed` is the ``weight_decay``
knob the last three share.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

K = TypeVar("K", bound="Knobs")


class Knobs:
    """Base of a rule's convention; ``KNOB_VALUES`` maps each field to the values it may take.

    ``WILDCARDS`` maps a knob to the value that means "the convention has no
    such variant" (AdamW's ``amsgrad="off"``): it agrees with every value.
    """

    KNOB_VALUES: ClassVar[Mapping[str, tuple]]
    WILDCARDS: ClassVar[Mapping[str, Any]] = {}

    def __post_init__(self) -> None:
        for knob, allowed in self.KNOB_VALUES.items():
            value = getattr(self, knob)
            if value not in allowed:
                raise ValueError(f"convention knob {knob}={value!r} is not one of {', '.join(map(repr, allowed))}")

    def replace(self: K, **knobs: Any) -> K:
        """A copy with some knobs changed."""
        return dataclasses.replace(self, **knobs)

    def canonical(self: K) -> K:
        """The same update rule, each choice named one way where two names compute the same maths."""
        return self

    def agrees(self, knob: str, value: Any) -> bool:
        """Whether this convention's ``knob`` is ``value``, or either is the knob's wildcard."""
        wildcard = self.WILDCARDS.get(knob, _NO_WILDCARD)
        return getattr(self, knob) in (value, wildcard) or value == wildcard

    def differences(self, other: Knobs) -> dict[str, tuple[Any, Any]]:
        """Each knob on which ``other`` (of the same type) disagrees: knob -> (this value, other's)."""
        return {knob: (getattr(self, knob), getattr(other, knob)) for knob in self.KNOB_VALUES
                if not self.agrees(knob, getattr(other, knob))}


_NO_WILDCARD = object()


def resolve_in(rule: str, presets: Mapping[str, K], convention: str | K | None) -> K:
    """The convention ``convention`` names among ``presets`` (the first, the rule's default, for None), or
    ``convention`` itself."""
    if convention is None:
        return next(iter(presets.values()))
    if isinstance(convention, str):
        try:
            return presets[convention]
        except KeyError:
            raise ValueError(f"unknown convention {convention!r} for rule {rule!r}: use one of "
                             f"{', '.join(presets)} or a value of its convention type") from None
    kind = type(next(iter(presets.values())))
    if not isinstance(convention, kind):
        raise ValueError(f"convention {convention!r} is not a {kind.__name__}, the convention type of rule {rule!r}")
    return convention


def weight_decayed(param: Any, grad: Any, *, lr: float, weight_decay: float, mode: str) -> tuple[Any, Any]:
    r"""``(param, grad)`` after weight decay as ``mode`` applies it, before the rest of the step.

    ``"l2"``: :math:`g + \lambda\theta_{t-1}` (the decay enters the moments);
    ``"decoupled"``: :math:`\theta_{t-1} - \mathrm{lr}_t\lambda\theta_{t-1}`
    (Keras' ``_apply_weight_decay``), the gradient as given.  A decay known
    to be zero changes neither.
    """
    from optspec.spec._validate import known_zero

    if known_zero(weight_decay):
        return param, grad
    if mode == "l2":
        return param, grad + weight_decay * param
    return param - (lr * weight_decay) * param, grad
