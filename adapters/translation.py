"""Spec hyperparameters in each framework's own names, as data.

The spec uses torch's names and defaults.  Each built-in subject and each
plugin contract has a :class:`Translation`; the deviations behind each entry
are documented, with their upstream issues, in ``docs/DEVIATIONS.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any


@dataclasses.dataclass(frozen=True)
class Translation:
    """How spec hyperparameters become a framework's constructor arguments.

    Attributes:
      names: spec name -> framework name; ``betas`` maps to a pair of names.
      constants: arguments always passed, to select the spec's behaviour.
      lr: the framework's name for the learning rate (a schedule is passed there).
    """

    names: Mapping[str, Any]
    constants: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    lr: str = "lr"

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


def _identity(*names: str) -> Translation:
    return Translation(names={n: n for n in names})


TORCH: Mapping[str, Translation] = MappingProxyType(
    {
        "sgd": _identity("momentum", "dampening", "weight_decay", "nesterov", "maximize"),
        "adagrad": _identity("lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize"),
        "rmsprop": _identity("alpha", "eps", "weight_decay", "momentum", "centered", "maximize"),
        "adam": _identity("betas", "eps", "weight_decay", "amsgrad", "maximize"),
        "adamw": _identity("betas", "eps", "weight_decay", "amsgrad", "maximize"),
    }
)

#: optax names; every factory takes ``learning_rate`` (a schedule of the 0-based count).
OPTAX: Mapping[str, Translation] = MappingProxyType(
    {
        "sgd": Translation({"momentum": "momentum", "nesterov": "nesterov"}, lr="learning_rate"),
        "adagrad": Translation(
            {"eps": "eps", "initial_accumulator_value": "initial_accumulator_value"},
            lr="learning_rate",
        ),
        # eps_in_sqrt=False puts eps outside the root, as torch does.
        "rmsprop": Translation(
            {"alpha": "decay", "eps": "eps", "centered": "centered", "momentum": "momentum"},
            constants={"eps_in_sqrt": False},
            lr="learning_rate",
        ),
        "adam": Translation({"betas": ("b1", "b2"), "eps": "eps"}, lr="learning_rate"),
        "adamw": Translation(
            {"betas": ("b1", "b2"), "eps": "eps", "weight_decay": "weight_decay"},
            lr="learning_rate",
        ),
    }
)

#: Keras 3 names.  Keras' ``weight_decay`` is decoupled on every optimizer, so
#: it maps only for AdamW.
KERAS: Mapping[str, Translation] = MappingProxyType(
    {
        "sgd": Translation({"momentum": "momentum", "nesterov": "nesterov"}, lr="learning_rate"),
        "adagrad": Translation(
            {"eps": "epsilon", "initial_accumulator_value": "initial_accumulator_value"},
            lr="learning_rate",
        ),
        "rmsprop": Translation(
            {"alpha": "rho", "eps": "epsilon", "momentum": "momentum", "centered": "centered"},
            lr="learning_rate",
        ),
        "adam": Translation(
            {"betas": ("beta_1", "beta_2"), "eps": "epsilon", "amsgrad": "amsgrad"},
            lr="learning_rate",
        ),
        "adamw": Translation(
            {
                "betas": ("beta_1", "beta_2"),
                "eps": "epsilon",
                "weight_decay": "weight_decay",
                "amsgrad": "amsgrad",
            },
            lr="learning_rate",
        ),
    }
)

#: Each framework's AdamW defaults, which differ; the spec's are torch's.
ADAMW_DEFAULTS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "torch": {"lr": 1e-3, "eps": 1e-8, "weight_decay": 1e-2},
        "optax": {"eps": 1e-8, "weight_decay": 1e-4},
        "keras": {"lr": 1e-3, "eps": 1e-7, "weight_decay": 4e-3},
        "bert": {"eps": 1e-6, "weight_decay": 0.0},
        "hf_legacy": {"lr": 1e-3, "eps": 1e-6, "weight_decay": 0.0},
    }
)

#: The preset that each framework's own AdamW follows.
NATIVE_CONVENTION: Mapping[str, str] = MappingProxyType(
    {"numpy": "torch", "torch": "torch", "jax": "optax", "tensorflow": "keras"}
)
