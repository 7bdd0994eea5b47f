"""Keras' hyperparameter names, the same in Keras 3 and in Keras 2 (tf-keras): a module of its own, so that
the ``tf_keras`` adapter shares them without importing Keras 3."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from optspec.adapters.translation import Translation

#: Keras 3 names.  Keras' ``weight_decay`` is decoupled on every optimizer
#: (``base_optimizer.py`` ``_apply_weight_decay``): the keras presets of SGD,
#: Adagrad and RMSprop say so, and AdamW's is its rule; Adam's L2 rule has no
#: counterpart, so it is not mapped there.
TRANSLATIONS: Mapping[str, Translation] = MappingProxyType(
    {
        "sgd": Translation({"momentum": "momentum", "nesterov": "nesterov", "weight_decay": "weight_decay"},
                           lr="learning_rate"),
        "adagrad": Translation(
            {"eps": "epsilon", "initial_accumulator_value": "initial_accumulator_value",
             "weight_decay": "weight_decay"},
            lr="learning_rate",
        ),
        "rmsprop": Translation(
            {"alpha": "rho", "eps": "epsilon", "momentum": "momentum", "centered": "centered",
             "weight_decay": "weight_decay"},
            lr="learning_rate",
        ),
        "adam": Translation(
            {"betas": ("beta_1", "beta_2"), "eps": "epsilon", "amsgrad": "amsgrad"},
            lr="learning_rate",
            defaults={"eps": 1e-7},  # Keras 3.15, keras/src/optimizers/adam.py:48
        ),
        "adamw": Translation(
            {
                "betas": ("beta_1", "beta_2"),
                "eps": "epsilon",
                "weight_decay": "weight_decay",
                "amsgrad": "amsgrad",
            },
            lr="learning_rate",
            defaults={"weight_decay": 0.004, "eps": 1e-7},  # Keras 3.15, keras/src/optimizers/adamw.py:56, 59
        ),
        "adamax": Translation(
            {"betas": ("beta_1", "beta_2"), "eps": "epsilon", "weight_decay": "weight_decay"},
            lr="learning_rate",
            defaults={"eps": 1e-7},  # Keras 3.15, keras/src/optimizers/adamax.py:58
        ),
        "nadam": Translation(
            {"betas": ("beta_1", "beta_2"), "eps": "epsilon", "weight_decay": "weight_decay"},
            lr="learning_rate",
            # Keras 3.15, keras/src/optimizers/nadam.py:44 and :116-120 (0.96 ** t: Dozat's schedule at psi = 1)
            defaults={"eps": 1e-7, "momentum_decay": 1.0},
        ),
        "adadelta": Translation(
            {"rho": "rho", "eps": "epsilon", "weight_decay": "weight_decay"},
            lr="learning_rate",
            defaults={"rho": 0.95, "eps": 1e-7},  # Keras 3.15, keras/src/optimizers/adadelta.py:42-45
        ),
        "lion": Translation({"betas": ("beta_1", "beta_2"), "weight_decay": "weight_decay"}, lr="learning_rate"),
    }
)

#: The hyperparameters a Keras built-in fixes at a value the spec's rule takes as a hyperparameter: Nadam's
#: momentum schedule is Dozat's at :math:`\psi = 1` (``keras/src/optimizers/nadam.py:116-120``).
FIXED: Mapping[str, Mapping[str, float]] = MappingProxyType({"nadam": MappingProxyType({"momentum_decay": 1.0})})
