"""optax subjects of the tests: a drop-in for adamw, built from optax's own transforms in the torch order of
operations; optax's rprop given a schedule."""

from __future__ import annotations

import optax


def adamw_torch_order(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4):
    return optax.chain(
        optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_learning_rate(learning_rate),
    )


def not_a_transformation(learning_rate, **kwargs):
    return 42


def rprop_first_lr(learning_rate, **kwargs):
    """optax 0.2.8's ``rprop``, whose ``learning_rate`` is a number, the initial step size
    (``optax/_src/transform.py:917-920``): given a schedule, its value at count 0."""
    return optax.rprop(learning_rate(0) if callable(learning_rate) else learning_rate, **kwargs)
