"""Keras optimizers for the tests, written in ``keras.ops`` so they run on every backend: a drop-in for AdamW
that changes nothing, and one with a hidden defect."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras


class PlainAdamW(keras.optimizers.AdamW):
    pass


class AdamWDecayAfter(keras.optimizers.AdamW):
    """Keras' AdamW, but the decay multiplies the parameter the Adam step already moved (``decay_point=after``)."""

    def _apply_weight_decay(self, variables):
        return None

    def update_step(self, gradient, variable, learning_rate):
        super().update_step(gradient, variable, learning_rate)
        lr = keras.ops.cast(learning_rate, variable.dtype)
        variable.assign(variable * (1 - lr * self.weight_decay))
