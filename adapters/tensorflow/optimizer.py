"""``AdamW``: a Keras 3 optimizer (TensorFlow backend) whose update is the spec.

It is a drop-in for ``keras.optimizers.AdamW(learning_rate, weight_decay,
beta_1, beta_2, epsilon, amsgrad)`` (the optspec plugin contract): it takes
schedules, honours ``exclude_from_weight_decay``, and keeps its state in
optimizer variables, so it saves and restores with the model.  Under
``model.compile(jit_compile=True)`` the spec is compiled by XLA with the train step.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import tensorflow as tf

from optspec import spec
from optspec.adapters.namespaces import namespace
from optspec.adapters.spec_backed import checked_hyperparameters
from optspec.spec.adam import AdamState


class AdamW(keras.optimizers.Optimizer):
    r"""AdamW (``rule="adamw"``) or Adam with an L2 penalty (``rule="adam"``), computed by the spec.

    Each variable is stepped by :func:`spec.adam.adamw_step` (or
    ``adam_step``) in ``convention`` on the TensorFlow namespace, with the
    step count and hyperparameters in the variable's dtype (as Keras computes
    them).  With ``convention="paper"`` the decay is :math:`\eta_t\lambda`,
    :math:`\eta_t = \mathrm{lr}_t/\mathrm{lr}_0`, with :math:`\mathrm{lr}_0` the
    schedule at step 0 (or the learning rate given).  Keras' own decay
    (``Optimizer._apply_weight_decay``) is off: the spec applies it.
    """

    def __init__(self, learning_rate: Any = 1e-3, weight_decay: float = 1e-2, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-8, amsgrad: bool = False, maximize: bool = False,
                 *, convention: Any = "keras", rule: str = "adamw", name: str = "spec_adamw", **kwargs: Any) -> None:
        numeric_lr = learning_rate if isinstance(learning_rate, (int, float)) else None
        checked_hyperparameters(rule, convention, numeric_lr, betas=(beta_1, beta_2), eps=epsilon,
                                weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.weight_decay = weight_decay
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.amsgrad, self.maximize = amsgrad, maximize
        self.convention, self.rule = convention, rule
        self._spec_rule = spec.get_rule(rule)
        self._initial_learning_rate = numeric_lr

    def build(self, var_list: list[Any]) -> None:
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(var_list, ["momentum", "velocity"])
        if self.amsgrad:
            self._velocity_hats = self.add_optimizer_variables(var_list, "velocity_hat")

    def _apply_weight_decay(self, variables: list[Any]) -> None:
        """Off: the spec applies the decay, in the convention's way."""

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        dtype = variable.dtype
        index = self._get_variable_index(variable)

        def cast(value: Any) -> Any:
            return tf.cast(value, dtype)

        hyper = {"betas": (cast(self.beta_1), cast(self.beta_2)), "eps": cast(self.epsilon),
                 "weight_decay": cast(self.weight_decay) if self._use_weight_decay(variable) else 0.0,
                 "amsgrad": self.amsgrad, "maximize": self.maximize, "convention": self.convention}
        if self._spec_rule.takes_initial_lr:
            hyper["initial_lr"] = cast(self._initial_lr())
        v_max = self._velocity_hats[index] if self.amsgrad else None
        state = AdamState(cast(self.iterations), tf.convert_to_tensor(self._momentums[index]),
                          tf.convert_to_tensor(self._velocities[index]),
                          tf.convert_to_tensor(v_max) if v_max is not None else tf.zeros((), dtype))
        new_param, new_state = self._spec_rule.step(namespace("tensorflow"), tf.convert_to_tensor(variable),
                                                    cast(gradient), state, lr=cast(learning_rate), **hyper)
        self.assign(variable, new_param)
        self.assign(self._momentums[index], new_state.exp_avg)
        self.assign(self._velocities[index], new_state.exp_avg_sq)
        if v_max is not None:
            self.assign(v_max, new_state.max_exp_avg_sq)

    def _initial_lr(self) -> Any:
        if isinstance(self._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            return self._learning_rate(0)
        return self._initial_learning_rate if self._initial_learning_rate is not None else self.learning_rate

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"weight_decay": self.weight_decay, "beta_1": self.beta_1, "beta_2": self.beta_2,
                       "epsilon": self.epsilon, "amsgrad": self.amsgrad, "maximize": self.maximize,
                       "convention": self.convention, "rule": self.rule})
        return config
