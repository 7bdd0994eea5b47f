"""TensorFlow: Keras 3 optimizers on the TensorFlow backend, and plugins.

The session is Keras' own (:mod:`optspec.adapters.keras.subjects`); here
its arrays are TensorFlow's and its certificate says tensorflow.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from optspec.adapters.driver import SubjectInfo
from optspec.adapters.keras.subjects import (
    TRANSLATIONS,
    construct,
    keras_builder,
    keras_plugin,
    keras_subjects,
)
from optspec.adapters.plugins import Capabilities
from optspec.adapters.translation import Translation

__all__ = ["SUBJECTS", "TRANSLATIONS", "builder", "construct", "plugin"]

SUBJECTS = keras_subjects("tensorflow")


def builder(factory: Any, translation: Translation):
    return keras_builder("tensorflow", factory, translation)


def plugin(name: str, factory: Any, rule: str, caps: Capabilities) -> SubjectInfo:
    """A plugin: ``factory(learning_rate=..., **knobs)`` returns a ``keras.optimizers.Optimizer``."""
    return keras_plugin("tensorflow", name, factory, rule, caps)
