"""A Keras drop-in for AdamW: a subclass that changes nothing."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras


class PlainAdamW(keras.optimizers.AdamW):
    pass
