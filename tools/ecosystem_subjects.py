"""Optimizers of the scoreboard that a user writes rather than imports: optax transformations composed by hand.

Each is a factory ``f(learning_rate, b1, b2, eps, weight_decay) -> optax.GradientTransformation``, the shape
``optax.adamw`` has, so that ``--impl tools.ecosystem_subjects:NAME`` drives it like ``optax.adamw``.
"""

from __future__ import annotations

import optax


def injected_adamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4):
    """``optax.inject_hyperparams(optax.adamw)``: the hyperparameters live in the state, as a user who
    changes them during training writes (optax/_src/schedule.py ``inject_hyperparams``)."""
    return optax.inject_hyperparams(optax.adamw)(learning_rate=learning_rate, b1=b1, b2=b2, eps=eps,
                                                 weight_decay=weight_decay)


def chained_adamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4):
    """AdamW built from its parts, as ``optax.adamw`` documents itself:
    ``chain(scale_by_adam, add_decayed_weights, scale_by_learning_rate)``."""
    return optax.chain(optax.scale_by_adam(b1=b1, b2=b2, eps=eps), optax.add_decayed_weights(weight_decay),
                       optax.scale_by_learning_rate(learning_rate))


def decay_after_scaling_adamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4):
    """A chain a user gets wrong in one line: the decay added after ``scale_by_learning_rate``, so that
    it is not multiplied by the learning rate (λθ rather than lr·λθ)."""
    return optax.chain(optax.scale_by_adam(b1=b1, b2=b2, eps=eps), optax.scale_by_learning_rate(learning_rate),
                       optax.add_decayed_weights(-weight_decay))
