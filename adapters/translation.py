"""Spec hyperparameters in a framework's own names, as data.

The spec uses torch's names and defaults.  Each framework's ``subjects``
module holds a table of :class:`Translation`, one per rule
(``TRANSLATIONS``), that its built-in subjects and plugins use; the
deviations behind each entry are documented, with their upstream issues, in
``docs/DEVIATIONS.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Translation:
    """How spec hyperparameters become a framework's constructor arguments.

    Attributes:
      names: spec name -> framework name; ``betas`` maps to a pair of names.
      constants: arguments always passed, to select the spec's behaviour.
      lr: the framework's name for the learning rate (a schedule is passed there).
      defaults: the framework's own defaults, in spec names, where they differ from the spec's (torch's):
        a value a plugin whose constructor hides the hyperparameter may behave as.
    """

    names: Mapping[str, Any]
    constants: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    lr: str = "lr"
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def kwargs(self, hyper: Mapping[str, Any]) -> dict[str, Any]:
        """The framework's keyword arguments for the spec hyperparameters ``hyper``.

        Raises ``ValueError`` for a hyperparameter that the subject cannot express.
        """
        out = dict(self.constants)
        for name, value in hyper.items():
            if name == "convention":
                continue
            if name not in self.names:
                raise ValueError(f"hyperparameter {name!r} has no equivalent in this subject")
            target = self.names[name]
            if isinstance(target, tuple):
                out.update(zip(target, value))
            else:
                out[target] = value
        return out

    @property
    def supports(self) -> frozenset[str]:
        return frozenset(self.names)

    @classmethod
    def same_names(cls, *names: str, lr: str = "lr") -> Translation:
        """The translation of a framework that uses the spec's own names (the learning rate's may differ)."""
        return cls(names={n: n for n in names}, lr=lr)

    def without(self, *knobs: str) -> Translation:
        """This translation less ``knobs``: for a sibling that lacks them (tf-keras' legacy optimizers have no
        ``weight_decay``), or a subject that cannot be tested on them."""
        return dataclasses.replace(self, names={k: v for k, v in self.names.items() if k not in knobs})
