"""``adamw``: an optax ``GradientTransformation`` whose update is the spec, compiled by ``jax.jit``.

It is a drop-in for ``optax.adamw(learning_rate, b1, b2, eps, weight_decay,
mask=...)`` (the optspec plugin contract): ``learning_rate`` is a number or a
schedule of the 0-based count, ``mask`` selects the leaves that are decayed,
and the state is a pytree that checkpoints like optax's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optspec import spec
from optspec.adapters.spec_backed import checked_hyperparameters
from optspec.spec.adam import AdamState


class SpecAdamState(NamedTuple):
    """The 0-based step count, and the spec's moments per leaf."""

    count: Any
    mu: Any
    nu: Any
    nu_max: Any


def adamw(learning_rate: float | Callable[[Any], Any] = 1e-3, b1: float = 0.9, b2: float = 0.999,
          eps: float = 1e-8, weight_decay: float = 1e-2, *, amsgrad: bool = False, maximize: bool = False,
          mask: Any = None, convention: Any = "optax", rule: str = "adamw") -> optax.GradientTransformation:
    r"""AdamW (``rule="adamw"``) or Adam with an L2 penalty (``rule="adam"``), computed by the spec.

    Each leaf is stepped by :func:`spec.adam.adamw_step` (or ``adam_step``)
    in ``convention``, with the step count and hyperparameters in the leaf's
    dtype (as optax computes them); the update returned is
    :math:`\theta_t - \theta_{t-1}`.  With ``convention="paper"`` the decay is
    :math:`\eta_t\lambda`, :math:`\eta_t = \mathrm{lr}_t/\mathrm{lr}_0`, with
    :math:`\mathrm{lr}_0` the schedule at count 0.  ``mask`` (a pytree of
    bools like the params, or a function of the params returning one) marks
    the leaves that weight decay applies to, as in ``optax.adamw``.
    """
    hyper = checked_hyperparameters(rule, convention, learning_rate if not callable(learning_rate) else None,
                                    betas=(b1, b2), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                    maximize=maximize)
    spec_rule = spec.get_rule(rule)
    schedule = learning_rate if callable(learning_rate) else (lambda count: learning_rate)

    def init(params: Any) -> SpecAdamState:
        zeros = jax.tree.map(jnp.zeros_like, params)
        nu_max = zeros if amsgrad else jax.tree.map(lambda p: jnp.zeros((), p.dtype), params)
        return SpecAdamState(jnp.zeros((), jnp.int32), zeros, zeros, nu_max)

    def update(grads: Any, state: SpecAdamState, params: Any = None) -> tuple[Any, SpecAdamState]:
        if params is None:
            raise ValueError("adamw needs the params: call update(grads, state, params)")
        decayed = mask(params) if callable(mask) else mask
        if decayed is None:
            decayed = jax.tree.map(lambda _: True, params)
        lr, initial_lr = schedule(state.count), schedule(0)

        def leaf(grad: Any, param: Any, mu: Any, nu: Any, nu_max: Any, decay: bool) -> tuple[Any, AdamState]:
            # 16-bit leaves are computed in float32 and stored back in their dtype.
            compute = jnp.promote_types(param.dtype, jnp.float32)

            def cast(value: Any) -> Any:
                return jnp.asarray(value, dtype=compute)

            leaf_hyper = {**hyper, "betas": (cast(b1), cast(b2)), "eps": cast(eps),
                          "weight_decay": cast(weight_decay) if decay else 0.0}
            if spec_rule.takes_initial_lr:
                leaf_hyper["initial_lr"] = cast(initial_lr)
            moments = AdamState(cast(state.count), cast(mu), cast(nu), cast(nu_max))
            new_param, new_state = spec_rule.step(jnp, cast(param), cast(grad), moments, lr=cast(lr), **leaf_hyper)
            stored = new_state._replace(**{k: v.astype(param.dtype) for k, v in new_state._asdict().items()
                                           if k != "step"})
            return (new_param - param).astype(param.dtype), stored

        def is_leaf_state(x: Any) -> bool:
            return isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], AdamState)

        stepped = jax.tree.map(leaf, grads, params, state.mu, state.nu, state.nu_max, decayed)
        updates = jax.tree.map(lambda s: s[0], stepped, is_leaf=is_leaf_state)
        new = {name: jax.tree.map(lambda s, n=name: getattr(s[1], n), stepped, is_leaf=is_leaf_state)
               for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")}
        return updates, SpecAdamState(optax.safe_increment(state.count), new["exp_avg"], new["exp_avg_sq"],
                                      new["max_exp_avg_sq"])

    return optax.GradientTransformation(init, update)
