"""A defective optax AdamW that only a mesh of several devices shows.

Its update runs in ``jax.shard_map`` over a mesh of every device of the
process (as a hand-written sharded kernel would), one shard of each tensor
per device; every device after the first bias-corrects with the step count
one behind, as a per-device step counter that lags would.  On one device it
is optax's AdamW (decay ``lr * weight_decay * theta``, ``eps`` outside the
square root, both moments bias-corrected).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

_AXIS = "devices"


def lagging_device_adamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4):
    mesh = Mesh(np.array(jax.devices()), (_AXIS,))

    def init(params):
        return {"count": jnp.zeros([], jnp.int32), "mu": jax.tree.map(jnp.zeros_like, params),
                "nu": jax.tree.map(jnp.zeros_like, params)}

    def step(m, v, p, count, lr, lag):
        t = jnp.maximum(count - lag, 1).astype(m.dtype)
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        return -lr * (m_hat / (jnp.sqrt(v_hat) + eps) + weight_decay * p)

    def on_devices(m, v, p, count, lr):
        def shard(m, v, p, count, lr):
            return step(m, v, p, count, lr, (jax.lax.axis_index(_AXIS) > 0).astype(count.dtype))

        if p.ndim == 0 or p.shape[0] % mesh.size:
            return step(m, v, p, count, lr, jnp.zeros_like(count))
        split = P(_AXIS)
        return jax.shard_map(shard, mesh=mesh, in_specs=(split, split, split, P(), P()), out_specs=split)(
            m, v, p, count, lr)

    def update(grads, state, params):
        count = state["count"] + 1
        lr = jnp.asarray(learning_rate(state["count"]) if callable(learning_rate) else learning_rate)
        mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state["mu"], grads)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state["nu"], grads)
        updates = jax.tree.map(lambda m, v, p: on_devices(m, v, p, count, lr.astype(p.dtype)), mu, nu, params)
        return updates, {"count": count, "mu": mu, "nu": nu}

    return optax.GradientTransformation(init, update)
