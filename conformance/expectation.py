"""What a subject is held to: its rule and, for a rule with conventions, one resolved convention.

A convention arrives as a preset name, a value of the rule's convention type
(:class:`spec.Convention`, :class:`spec.SGDConvention`, ...) or nothing (the
subject's own).  :meth:`Expectation.of` resolves it once, at the
boundary (``certify``, ``certify --size``, the supervisor of a worker);
everything below takes the typed record.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from optspec import adapters, spec
from optspec.adapters.driver import SubjectInfo

#: What a rule without conventions accepts as ``--convention``, as if none were given.
FALLBACK_PRESET = "torch"


@dataclasses.dataclass(frozen=True)
class Expectation:
    """The spec behaviour a subject is certified against.

    Attributes:
      rule: the spec rule (``adamw``, ``sgd``, ...).
      convention: the resolved convention (a :class:`spec.Rule`'s preset or a
        value of its convention type); None for a rule with one behaviour.
      name: the preset's name, ``custom`` for a convention given by its knobs,
        None for rules without conventions.
    """

    rule: str
    convention: spec.Knobs | None
    name: str | None

    @classmethod
    def of(cls, subject: SubjectInfo, convention: str | spec.Knobs | None = None) -> Expectation:
        """Resolves ``convention`` (default: the subject's own preset) for ``subject``'s rule.

        Raises a one-line :class:`adapters.SetupError` for an unknown preset,
        or for a convention given to a rule that has none.
        """
        rule = spec.get_rule(subject.rule)
        if not rule.takes_convention:
            if convention not in (None, FALLBACK_PRESET):
                raise adapters.SetupError(f"--convention does not apply to {subject.name}: its rule, "
                                          f"{subject.rule}, has no conventions")
            return cls(subject.rule, None, None)
        chosen = convention or subject.convention or rule.default_preset
        try:
            resolved = rule.resolve(chosen)
        except ValueError as exc:
            raise adapters.SetupError(str(exc)) from None
        return cls(subject.rule, resolved, chosen if isinstance(chosen, str) else "custom")

    @property
    def knobs(self) -> dict[str, Any] | None:
        """The convention's knob values, as the certificate records them."""
        return None if self.convention is None else dataclasses.asdict(self.convention)

    @property
    def preset(self) -> str | None:
        """The preset's name when it is one (a command line can name it), else None."""
        return self.name if self.name in spec.get_rule(self.rule).presets else None

    def describe(self) -> str:
        """The convention's name, or the rule's for rules without conventions."""
        return self.name or self.rule
