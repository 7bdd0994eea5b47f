"""JAX: optax optimizers and plugins, with the step jitted (x64 enabled).

optax evaluates a schedule at the 0-based count (``count = t - 1``), so the
per-step learning rates are handed over as a table indexed by the count.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adapters.driver import Session, SubjectInfo
from adapters.namespaces import asarray, framework_dtype, to_numpy
from adapters.translation import OPTAX, Translation


@functools.lru_cache(maxsize=512)
def _compiled(factory: Callable[..., Any], lr_name: str, kwargs: tuple) -> tuple[Any, Any]:
    """jitted ``init`` and ``update`` for one factory and set of arguments.

    The learning-rate table is an argument, so a new schedule of the same
    length does not recompile.
    """

    def make(table: Any) -> Any:
        return factory(**{lr_name: lambda count: table[count]}, **dict(kwargs))

    def init(params: Any, table: Any) -> Any:
        return make(table).init(params)

    def update(params: Any, state: Any, grads: Any, table: Any) -> Any:
        updates, state = make(table).update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return jax.jit(init), jax.jit(update)


class OptaxSession(Session):
    def __init__(self, factory: Callable[..., Any], translation: Translation,
                 hyper: Mapping[str, Any], params0: Sequence[np.ndarray], lrs: Sequence[float],
                 dtype: str, device: str | None) -> None:
        self.dtype, self.device = dtype, device
        kwargs = tuple(sorted(translation.kwargs(hyper).items()))
        self.init_fn, self.update_fn = _compiled(factory, translation.lr, kwargs)
        size = 1 << max(len(lrs) - 1, 0).bit_length()
        padded = np.full(size, lrs[-1] if lrs else 0.0)
        padded[: len(lrs)] = lrs
        self.table = jnp.asarray(padded, dtype=framework_dtype("jax", dtype))
        self.tensors = [asarray("jax", p, dtype, device) for p in params0]
        self.opt_state = self.init_fn(self.tensors, self.table)

    def feed(self, grads: Sequence[np.ndarray]) -> list[Any]:
        return [asarray("jax", g, self.dtype, self.device) for g in grads]

    def step(self, grads: list[Any], lr: float, index: int) -> None:
        self.tensors, self.opt_state = self.update_fn(self.tensors, self.opt_state, grads, self.table)

    def params(self) -> list[np.ndarray]:
        return [to_numpy(p) for p in self.tensors]

    def state(self) -> dict[str, np.ndarray]:
        leaves = jax.tree_util.tree_flatten_with_path(self.opt_state)[0]
        return {jax.tree_util.keystr(path): to_numpy(leaf) for path, leaf in leaves}

    def save(self) -> Any:
        return jax.tree.map(np.array, self.opt_state)

    def restore(self, saved: Any) -> None:
        self.opt_state = jax.tree.map(jnp.asarray, saved)


def builder(factory: Callable[..., Any], translation: Translation):
    def build(params0, hyper, lrs, dtype, device) -> OptaxSession:
        return OptaxSession(factory, translation, hyper, params0, lrs, dtype, device)

    return build


def _l2_adam(learning_rate: Any, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
             weight_decay: float = 0.0) -> optax.GradientTransformation:
    """optax's Adam with an L2 penalty: ``chain(add_decayed_weights(wd), adam(lr))``."""
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.adam(learning_rate, b1=b1, b2=b2, eps=eps))


_L2_ADAM = Translation({**OPTAX["adam"].names, "weight_decay": "weight_decay"}, lr="learning_rate")

SUBJECTS: tuple[SubjectInfo, ...] = (
    SubjectInfo("optax.sgd", "jax", "sgd", None, OPTAX["sgd"].supports,
                builder(optax.sgd, OPTAX["sgd"])),
    SubjectInfo("optax.adagrad", "jax", "adagrad", None, OPTAX["adagrad"].supports,
                builder(optax.adagrad, OPTAX["adagrad"])),
    SubjectInfo("optax.rmsprop", "jax", "rmsprop", None, OPTAX["rmsprop"].supports,
                builder(optax.rmsprop, OPTAX["rmsprop"])),
    SubjectInfo("optax.adam", "jax", "adam", "optax", OPTAX["adam"].supports,
                builder(optax.adam, OPTAX["adam"])),
    SubjectInfo("optax.chain(add_decayed_weights, adam)", "jax", "adam", "optax",
                _L2_ADAM.supports, builder(_l2_adam, _L2_ADAM)),
    SubjectInfo("optax.adamw", "jax", "adamw", "optax", OPTAX["adamw"].supports,
                builder(optax.adamw, OPTAX["adamw"])),
    SubjectInfo("optax.amsgrad", "jax", "adam", "optax", OPTAX["adam"].supports,
                builder(optax.amsgrad, OPTAX["adam"]), fixed={"amsgrad": True}),
)


def plugin(name: str, obj: Any) -> SubjectInfo:
    """A drop-in for ``optax.adamw(learning_rate, b1, b2, eps, weight_decay)``."""
    if not callable(obj):
        raise TypeError("it must be a factory like optax.adamw that returns a GradientTransformation")
    probe = obj(learning_rate=1e-3)
    if not (hasattr(probe, "init") and hasattr(probe, "update")):
        raise TypeError(f"calling it returned {type(probe).__name__}, not an optax.GradientTransformation")
    return SubjectInfo(name=name, framework="jax", rule="adamw", convention="optax",
                       supports=OPTAX["adamw"].supports, build=builder(obj, OPTAX["adamw"]))
