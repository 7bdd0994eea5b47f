"""JAX: optax optimizers and plugins, with the step jitted (x64 enabled).

optax evaluates a schedule at the 0-based count (``count = t - 1``), so the
per-step learning rates are handed over as a table indexed by the count.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optspec import spec
from optspec.adapters import ranks
from optspec.adapters.batching import Member, Packing, elementwise_hyper, lr_table
from optspec.adapters.driver import Dtypes, Session, SubjectInfo, tensor_dtypes, widest_dtype
from optspec.adapters.namespaces import asarray, framework_dtype, to_numpy
from optspec.adapters.plugins import Capabilities
from optspec.adapters.translation import Translation

#: optax names; every factory takes ``learning_rate`` (a schedule of the 0-based count).
TRANSLATIONS: Mapping[str, Translation] = MappingProxyType(
    {
        "sgd": Translation({"momentum": "momentum", "nesterov": "nesterov"}, lr="learning_rate"),
        "adagrad": Translation(
            {"eps": "eps", "initial_accumulator_value": "initial_accumulator_value"},
            lr="learning_rate",
        ),
        "rmsprop": Translation(
            {"alpha": "decay", "eps": "eps", "centered": "centered", "momentum": "momentum"},
            lr="learning_rate",
        ),
        "adam": Translation({"betas": ("b1", "b2"), "eps": "eps"}, lr="learning_rate"),
        "adamw": Translation(
            {"betas": ("b1", "b2"), "eps": "eps", "weight_decay": "weight_decay"},
            lr="learning_rate",
            defaults={"weight_decay": 1e-4},  # optax 0.2, optax/_src/alias.py: adamw(..., weight_decay=1e-4)
        ),
        "adamax": Translation(
            {"betas": ("b1", "b2"), "eps": "eps", "weight_decay": "weight_decay"},
            lr="learning_rate",
            defaults={"weight_decay": 1e-4},  # optax 0.2.8, optax/_src/alias.py:2393-2398: adamaxw(..., 1e-4)
        ),
        "nadam": Translation(
            {"betas": ("b1", "b2"), "eps": "eps", "weight_decay": "weight_decay"},
            lr="learning_rate",
            defaults={"weight_decay": 1e-4},  # optax 0.2.8, optax/_src/alias.py:598-608, 730: nadamw is adamw's
        ),
        "radam": Translation({"betas": ("b1", "b2"), "eps": "eps", "threshold": "threshold"}, lr="learning_rate"),
        "adadelta": Translation({"rho": "rho", "eps": "eps", "weight_decay": "weight_decay"}, lr="learning_rate"),
        "lion": Translation(
            {"betas": ("b1", "b2"), "weight_decay": "weight_decay"},
            lr="learning_rate",
            defaults={"weight_decay": 1e-3},  # optax 0.2.8, optax/_src/alias.py:932: lion(..., weight_decay=1e-3)
        ),
        "rprop": Translation({"etas": ("eta_minus", "eta_plus"), "step_sizes": ("min_step_size", "max_step_size")},
                             lr="learning_rate"),
    }
)


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


@functools.lru_cache(maxsize=64)
def _compiled_batch(factory: Callable[..., Any], lr_name: str, constants: tuple,
                    vector_names: tuple[str, ...]) -> tuple[Any, Any]:
    """Like :func:`_compiled`, with per-element hyperparameter vectors as arguments."""

    def make(table: Any, vectors: Any) -> Any:
        return factory(**{lr_name: lambda count: table[count]}, **dict(constants),
                       **dict(zip(vector_names, vectors)))

    def init(params: Any, table: Any, vectors: Any) -> Any:
        return make(table, vectors).init(params)

    def update(params: Any, state: Any, grads: Any, table: Any, vectors: Any) -> Any:
        updates, state = make(table, vectors).update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return jax.jit(init), jax.jit(update)


def _padded_rows(rows: np.ndarray) -> np.ndarray:
    """``rows`` padded with its last row to a power of two, so that lengths share a compilation."""
    size = 1 << max(len(rows) - 1, 0).bit_length()
    return np.concatenate([rows, np.repeat(rows[-1:], size - len(rows), axis=0)])


class OptaxSession(Session):
    #: Steps the optimizer has taken, counting those of the Orbax checkpoint it resumed (a resharded resume).
    steps_taken: int = 0

    def __init__(self, factory: Callable[..., Any], translation: Translation,
                 hyper: Mapping[str, Any], params0: Sequence[np.ndarray], lrs: Sequence[float],
                 dtype: Dtypes, device: str | None) -> None:
        self.dtypes, self.device = tensor_dtypes(dtype, len(params0)), device
        self.placement = ranks.new_placement()
        self.steps_taken = self.placement.resumed_after() if self.placement is not None else 0
        kwargs = tuple(sorted(translation.kwargs(hyper).items()))
        init_fn, update_fn = _compiled(factory, translation.lr, kwargs)
        schedule = [*[lrs[0] if lrs else 0.0] * self.steps_taken, *(lrs or [0.0])]  # indexed by optax's count
        table = jnp.asarray(_padded_rows(np.asarray(schedule, np.float64)),
                            dtype=framework_dtype("jax", widest_dtype(dtype)))
        self.tensors = [asarray("jax", p, d, self.device) for p, d in zip(params0, self.dtypes)]
        if self.placement is not None:  # on a mesh (adapters/jax/sharding.py)
            self.tensors = self.placement.place(self.tensors)
        self.opt_state = init_fn(self.tensors, table)
        if self.placement is not None:
            self.opt_state = self.placement.initial_state(self, self.opt_state)
        self.update_fn = functools.partial(update_fn, table=table)

    def feed(self, grads: Sequence[np.ndarray]) -> list[Any]:
        fed = [asarray("jax", g, d, self.device) for g, d in zip(grads, self.dtypes)]
        if self.placement is not None:
            fed = [self.placement.gradient(p, g) for p, g in zip(self.tensors, fed)]
        return fed

    def step(self, grads: list[Any], lr: float, index: int) -> None:
        self.tensors, self.opt_state = self.update_fn(self.tensors, self.opt_state, grads)
        self.steps_taken += 1

    def params(self) -> list[np.ndarray]:
        return [to_numpy(p) for p in self.tensors]

    def state(self) -> dict[str, np.ndarray]:
        leaves = jax.tree_util.tree_flatten_with_path(self.opt_state)[0]
        return {jax.tree_util.keystr(path): to_numpy(leaf) for path, leaf in leaves}

    def storage(self) -> list[Any]:
        return [*self.tensors, *jax.tree_util.tree_leaves(self.opt_state)]

    def save(self) -> Any:
        return jax.tree.map(np.array, self.opt_state)

    def restore(self, saved: Any) -> None:
        self.opt_state = jax.tree.map(jnp.asarray, saved)


class BatchedOptaxSession(OptaxSession):
    """Members packed elementwise into slots (:class:`adapters.batching.Packing`)."""

    def __init__(self, factory: Callable[..., Any], translation: Translation,
                 members: Sequence[Member], steps: int, dtype: str, device: str | None) -> None:
        self.dtype, self.device = dtype, device
        self.packing = Packing([[p.shape for p in m.params0] for m in members], align=256)
        constants, vectors = elementwise_hyper(members, self.packing, translation.kwargs)
        names = tuple(sorted(vectors))
        init_fn, update_fn = _compiled_batch(factory, translation.lr, tuple(sorted(constants.items())), names)
        as_jax = functools.partial(jnp.asarray, dtype=framework_dtype("jax", dtype))
        table = as_jax(_padded_rows(lr_table(members, self.packing, steps)))
        vector_args = tuple(as_jax(vectors[n]) for n in names)
        self.tensors = self.feed([p for m in members for p in m.params0])
        self.opt_state = init_fn(self.tensors, table, vector_args)
        self.update_fn = functools.partial(update_fn, table=table, vectors=vector_args)

    def feed(self, grads: Sequence[np.ndarray]) -> list[Any]:
        return [asarray("jax", s, self.dtype, self.device) for s in self.packing.pack(grads)]

    def params(self) -> list[np.ndarray]:
        return self.packing.unpack([to_numpy(p) for p in self.tensors])


def builder(factory: Callable[..., Any], translation: Translation):
    def build(params0, hyper, lrs, dtype, device) -> OptaxSession:
        return OptaxSession(factory, translation, hyper, params0, lrs, dtype, device)

    return build


def batch_builder(factory: Callable[..., Any], translation: Translation):
    def build_batch(members, steps, dtype, device) -> BatchedOptaxSession:
        return BatchedOptaxSession(factory, translation, members, steps, dtype, device)

    return build_batch


def _subject(name: str, rule: str, convention: str | None, factory: Callable[..., Any],
             translation: Translation, **extra: Any) -> SubjectInfo:
    extra.setdefault("supports", translation.supports)
    return SubjectInfo(name=name, framework="jax", rule=rule, convention=convention,
                       build=builder(factory, translation), build_batch=batch_builder(factory, translation),
                       **extra)


def _l2_adam(learning_rate: Any, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
             weight_decay: float = 0.0) -> optax.GradientTransformation:
    """optax's Adam with an L2 penalty: ``chain(add_decayed_weights(wd), adam(lr))``."""
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.adam(learning_rate, b1=b1, b2=b2, eps=eps))


_L2_ADAM = Translation({**TRANSLATIONS["adam"].names, "weight_decay": "weight_decay"}, lr="learning_rate")

SUBJECTS: tuple[SubjectInfo, ...] = (
    _subject("optax.sgd", "sgd", "optax", optax.sgd, TRANSLATIONS["sgd"]),
    _subject("optax.adagrad", "adagrad", "optax", optax.adagrad, TRANSLATIONS["adagrad"]),
    _subject("optax.rmsprop", "rmsprop", "optax", optax.rmsprop, TRANSLATIONS["rmsprop"]),
    _subject("optax.adam", "adam", "optax", optax.adam, TRANSLATIONS["adam"]),
    _subject("optax.chain(add_decayed_weights, adam)", "adam", "optax", _l2_adam, _L2_ADAM),
    _subject("optax.adamw", "adamw", "optax", optax.adamw, TRANSLATIONS["adamw"]),
    _subject("optax.amsgrad", "adam", "optax", optax.amsgrad, TRANSLATIONS["adam"], fixed={"amsgrad": True}),
    _subject("optax.adamaxw", "adamax", "optax", optax.adamaxw, TRANSLATIONS["adamax"]),
    _subject("optax.adamax", "adamax", "optax", optax.adamax, TRANSLATIONS["adamax"].without("weight_decay")),
    _subject("optax.nadamw", "nadam", "optax", optax.nadamw, TRANSLATIONS["nadam"]),
    _subject("optax.nadam", "nadam", "optax", optax.nadam, TRANSLATIONS["nadam"].without("weight_decay")),
    _subject("optax.radam", "radam", "optax", optax.radam, TRANSLATIONS["radam"]),
    # L2: add_decayed_weights before scale_by_adadelta (optax/_src/alias.py:217-221), torch's preset
    _subject("optax.adadelta", "adadelta", "torch", optax.adadelta, TRANSLATIONS["adadelta"]),
    # b1 and b2 are Python floats, which multiply the moment in its own dtype (JAX's weak types):
    # optax/_src/transform.py:472 and 487, so β is held in the parameters' dtype
    _subject("optax.lion", "lion", "paper", optax.lion, TRANSLATIONS["lion"], holds_hyperparameters_in_dtype=True),
)




def construct(factory: Any, kwargs: Mapping[str, Any]) -> Any:
    """``factory`` called as the certifier calls it, with ``kwargs``."""
    return factory(learning_rate=1e-3, **kwargs)


def plugin(name: str, factory: Any, rule: str, caps: Capabilities) -> SubjectInfo:
    """A plugin: ``factory(learning_rate=..., **knobs)`` returns an optax ``GradientTransformation``."""
    probe = construct(factory, {})
    if not (hasattr(probe, "init") and hasattr(probe, "update")):
        raise TypeError(f"calling it returned {type(probe).__name__}, not an optax.GradientTransformation")
    convention = "optax" if spec.get_rule(rule).takes_convention else None
    return _subject(name, rule, convention, factory, TRANSLATIONS[rule], supports=caps.supports, fixed=caps.fixed,
                    not_tested=caps.not_tested)
