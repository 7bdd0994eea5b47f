"""tf-keras (Keras 2): ``tf_keras.optimizers``, ``tf_keras.optimizers.legacy`` and plugins.

A session holds ``tf.Variable`` parameters and calls ``apply_gradients``
inside a ``tf.function``, as ``Model.fit``'s train step does (eagerly each
step takes about 4 ms; traced, under 1 ms).  The learning rate is a
schedule over a float64 table indexed by ``iterations``, the 0-based count,
which both optimizer generations evaluate before they step
(``optimizer.py`` ``_compute_current_learning_rate``, ``legacy/optimizer_v2.py``
``_decayed_lr``).

The conventions, read from tf-keras 2.21's source:

- ``optimizers.AdamW``, ``Adam``, ``SGD``, ``Adagrad``, ``RMSprop``,
  ``Adamax``, ``Adadelta``: Keras 3's (``keras`` presets; Keras 3 was
  written from them): ε-hat in Adam (``adam.py`` ``update_step``), ε inside
  the root in Adagrad and RMSprop, ε outside the maximum in Adamax,
  ``weight_decay`` decoupled as ``var -= var * wd * lr`` before the step
  (``optimizer.py`` ``_apply_weight_decay``).
- ``optimizers.Nadam`` is not a built-in: its ``u_product`` (``nadam.py``
  ``update_step``) is cached by a Python counter that a ``tf.function``
  reads once, when traced, so with more than one variable the product is
  multiplied by μₜ more than once in a step (from step 2 with two
  variables, from step 1 with three); eager, or with one variable, it is
  Keras 3's.
- ``optimizers.legacy.Adam``: ``ResourceApplyAdam`` with
  ``lr_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`` (``legacy/adam.py``
  ``_prepare_local``): ε-hat, the ``keras`` preset of Adam; AMSGrad
  (``ResourceApplyAdamWithAmsgrad``) takes the max of the raw v.
- ``optimizers.legacy.SGD``: ``ResourceApplyKerasMomentum``, Keras' SGD.
- ``optimizers.legacy.Adagrad``: ``ResourceApplyAdagradV2``,
  ``var -= lr * g / (sqrt(accum) + epsilon)``: ε outside the root, torch's.
- ``optimizers.legacy.RMSprop`` is not a built-in: with momentum it puts ε
  inside the root (``ResourceApplyRMSProp``), without momentum outside it
  (``legacy/rmsprop.py`` ``_resource_apply_dense``), so no one convention
  holds for both (``docs/DEVIATIONS.md``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from optspec import spec
from optspec.adapters.driver import Session, SubjectInfo
from optspec.adapters.keras.translations import TRANSLATIONS
from optspec.adapters.namespaces import asarray, to_numpy
from optspec.adapters.plugins import Capabilities
from optspec.adapters.translation import Translation

#: The legacy optimizers take no ``weight_decay``.
LEGACY_TRANSLATIONS: Mapping[str, Translation] = {
    rule: translation.without("weight_decay") for rule, translation in TRANSLATIONS.items()}


class _WithoutRetracingNotice(logging.Filter):
    """Drops TensorFlow's notice that a ``tf.function`` traced again: each session traces its own step once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


tf.get_logger().addFilter(_WithoutRetracingNotice())


class TableSchedule(tf_keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate of step ``iterations + 1``, looked up in a float64 table (one row per step)."""

    def __init__(self, rates: Any) -> None:
        self.rates = np.asarray(rates, dtype=np.float64)
        self.table = tf.constant(self.rates, dtype=tf.float64)

    def __call__(self, step: Any) -> Any:
        return tf.gather(self.table, tf.minimum(tf.cast(step, tf.int64), len(self.rates) - 1))

    def get_config(self) -> dict[str, Any]:
        return {"rates": self.rates.tolist()}


def is_legacy(optimizer: Any) -> bool:
    """Whether ``optimizer`` is of the legacy generation (``OptimizerV2``, slots created at its first step)."""
    return isinstance(optimizer, tf_keras.optimizers.legacy.Optimizer)


class TfKerasSession(Session):
    """A tf-keras optimizer over ``tf.Variable`` parameters, stepped in a ``tf.function``."""

    def __init__(self, factory: Any, kwargs: Mapping[str, Any], lr_name: str, params0: Sequence[np.ndarray],
                 lrs: Any, dtype: str, device: str | None) -> None:
        self.dtype, self.device = dtype, device
        self.variables = [tf.Variable(asarray("tf_keras", p, dtype, device), name=f"p{i}")
                          for i, p in enumerate(params0)]
        self.optimizer = factory(**{lr_name: TableSchedule(lrs if len(lrs) else [0.0])}, **kwargs)
        if is_legacy(self.optimizer):
            self.optimizer._create_all_weights(self.variables)  # its slots, before a restore assigns them
        else:
            self.optimizer.build(self.variables)

        @tf.autograph.experimental.do_not_convert
        def apply(grads: list[Any]) -> None:
            self.optimizer.apply_gradients(zip(grads, self.variables))

        self._apply = tf.function(apply)

    def feed(self, grads: Sequence[np.ndarray]) -> list[Any]:
        return [asarray("tf_keras", g, self.dtype, self.device) for g in grads]

    def step(self, grads: list[Any], lr: float, index: int) -> None:
        self._apply(grads)

    def params(self) -> list[np.ndarray]:
        return [to_numpy(v) for v in self.variables]

    def _optimizer_variables(self) -> list[Any]:
        found = self.optimizer.variables
        return list(found() if callable(found) else found)  # a method in the legacy generation

    def state(self) -> dict[str, np.ndarray]:
        return {v.name: to_numpy(v) for v in self._optimizer_variables()}

    def storage(self) -> list[Any]:
        return [*self.variables, *self._optimizer_variables()]

    def save(self) -> Any:
        return [to_numpy(v) for v in self._optimizer_variables()]

    def restore(self, saved: Any) -> None:
        for variable, value in zip(self._optimizer_variables(), saved, strict=True):
            variable.assign(value)


def builder(factory: Any, translation: Translation):
    """A ``SubjectInfo.build`` for the tf-keras optimizer ``factory``."""

    def build(params0, hyper, lrs, dtype, device) -> TfKerasSession:
        return TfKerasSession(factory, translation.kwargs(hyper), translation.lr, params0, lrs, dtype, device)

    return build


#: The built-in optimizers: (rule, class, the preset it follows).
OPTIMIZERS: tuple[tuple[str, type, str | None], ...] = (
    ("sgd", tf_keras.optimizers.SGD, "keras"),
    ("adagrad", tf_keras.optimizers.Adagrad, "keras"),
    ("rmsprop", tf_keras.optimizers.RMSprop, "keras"),
    ("adam", tf_keras.optimizers.Adam, "keras"),
    ("adamw", tf_keras.optimizers.AdamW, "keras"),
    # tf_keras 2.21, tf_keras/src/optimizers/lion.py:143-148: the dense step is Keras 3's (spec/lion.py)
    ("lion", tf_keras.optimizers.Lion, "paper"),
    # tf_keras 2.21, tf_keras/src/optimizers/adamax.py:164-168: u = max(beta_2*u, |g|),
    # var -= lr*m / ((1 - beta_1**t) * (u + epsilon)): ε outside the max, bias-corrected; the decay is
    # optimizer.py:1311-1322 _apply_weight_decay, var -= var*wd*lr, before the step (:729-730): Keras 3's
    ("adamax", tf_keras.optimizers.Adamax, "keras"),
    # tf_keras 2.21, tf_keras/src/optimizers/adadelta.py:124-152: delta = sqrt(accumulated_delta_var + eps) * g /
    # sqrt(accumulated_grad + eps) from the new gradient average and the previous step average, var += lr*(-delta);
    # the decay as Adamax's: Keras 3's.  Nadam is not among them: in a tf.function with more than one variable its
    # u_product is multiplied more than once in a step (nadam.py:137-150 caches it by a Python counter, read when
    # traced), so its steps leave Dozat's schedule.
    ("adadelta", tf_keras.optimizers.Adadelta, "keras"),
    ("sgd", tf_keras.optimizers.legacy.SGD, "keras"),
    ("adagrad", tf_keras.optimizers.legacy.Adagrad, "torch"),
    ("adam", tf_keras.optimizers.legacy.Adam, "keras"),
)


def _subject(name: str, factory: Any, rule: str, convention: str | None, translation: Translation, *,
             supports: frozenset[str], fixed: Mapping[str, Any] | None = None,
             not_tested: Mapping[str, str] | None = None) -> SubjectInfo:
    return SubjectInfo(name=name, framework="tf_keras", rule=rule,
                       convention=convention if spec.get_rule(rule).takes_convention else None,
                       supports=supports, fixed=dict(fixed or {}), not_tested=dict(not_tested or {}),
                       build=builder(factory, translation), holds_hyperparameters_in_dtype=True)


def _builtin(rule: str, cls: type, preset: str) -> SubjectInfo:
    legacy = issubclass(cls, tf_keras.optimizers.legacy.Optimizer)
    translation = (LEGACY_TRANSLATIONS if legacy else TRANSLATIONS)[rule]
    return _subject(f"tf_keras.optimizers{'.legacy' if legacy else ''}.{cls.__name__}", cls, rule, preset,
                    translation, supports=translation.supports)


SUBJECTS = tuple(_builtin(rule, cls, preset) for rule, cls, preset in OPTIMIZERS)


def construct(factory: Any, kwargs: Mapping[str, Any]) -> Any:
    """``factory`` called as the certifier calls it, with ``kwargs``."""
    return factory(learning_rate=1e-3, **kwargs)


def translations(factory: Any) -> Mapping[str, Translation]:
    """The names ``factory`` takes: Keras' (:data:`TRANSLATIONS`), with ``weight_decay_rate`` for the weight
    decay where its signature has that and no ``weight_decay`` (transformers' TF ``AdamWeightDecay``)."""
    try:
        names = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return TRANSLATIONS
    if "weight_decay" in names or "weight_decay_rate" not in names:
        return TRANSLATIONS
    return {rule: Translation({k: ("weight_decay_rate" if k == "weight_decay" else v)
                               for k, v in translation.names.items()}, lr=translation.lr)
            for rule, translation in TRANSLATIONS.items()}


def plugin(name: str, factory: Any, rule: str, caps: Capabilities) -> SubjectInfo:
    """A plugin: ``factory(learning_rate=..., **knobs)`` returns a tf-keras optimizer, of either generation."""
    probe = construct(factory, {})
    if not isinstance(probe, (tf_keras.optimizers.Optimizer, tf_keras.optimizers.legacy.Optimizer)):
        raise TypeError(f"it returned a {type(probe).__name__}, not a tf_keras.optimizers.Optimizer")
    return _subject(name, factory, rule, "keras", translations(factory)[rule], supports=caps.supports,
                    fixed=caps.fixed, not_tested=caps.not_tested)
