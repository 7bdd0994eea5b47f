"""The spec's step under ``jax.jit``, the parameter and state buffers donated; XLA's memory accounting."""

from __future__ import annotations

import functools
from typing import Any

import jax

from optspec.adapters.compiled import CompiledStep, with_state_arrays


class JaxBackend:
    @staticmethod
    def compile(compiled: CompiledStep) -> Any:
        rule, xp, state_type = compiled.rule, compiled.xp, type(compiled.state)

        @functools.partial(jax.jit, donate_argnums=(0, 2, 3, 4), static_argnums=(7,))
        def step(param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any, max_exp_avg_sq: Any, count: Any,
                 lr: Any, kwargs: tuple) -> tuple[Any, ...]:
            state = state_type(count, exp_avg, exp_avg_sq, max_exp_avg_sq)
            new_param, new_state = rule.step(xp, param, grad, state, lr=lr, **dict(kwargs))
            return new_param, *new_state

        # Every array is committed to the parameter's device, as the step's outputs then are: jit's cache
        # key includes committedness, so an uncommitted start would compile twice.
        sharding = compiled.param.sharding
        compiled.param = jax.device_put(compiled.param, sharding)
        compiled.state = with_state_arrays(compiled.state,
                                            lambda v: jax.device_put(xp.asarray(v, copy=True), sharding))
        # Device scalars, weakly typed as the Python numbers they stand for: the count comes back from each
        # step and the lr is converted only when it changes (a Python scalar argument costs ~1.5 us per call).
        return {"step": step, "count": jax.device_put(xp.asarray(0), sharding), "lr": (None, None)}

    @staticmethod
    def run(compiled: CompiledStep, grad: Any, lr: float) -> None:
        runtime = compiled._compiled
        if compiled.count == 1:
            kwargs = dict(compiled.hyper)
            if compiled.rule.takes_initial_lr:
                kwargs["initial_lr"] = float(compiled.initial_lr)
            # static: hashed, so it never changes after step 1
            compiled.static_kwargs = tuple(sorted(kwargs.items()))
        if runtime["lr"][0] != lr:
            runtime["lr"] = (lr, compiled.xp.asarray(float(lr)))
        compiled.param, runtime["count"], *moments = runtime["step"](
            compiled.param, grad, *compiled.state[1:], runtime["count"], runtime["lr"][1], compiled.static_kwargs)
        compiled.state = type(compiled.state)(compiled.count, *moments)

    @staticmethod
    def compilations(compiled: CompiledStep) -> int:
        return int(compiled._compiled["step"]._cache_size())


BACKEND = JaxBackend()


def xla_step_bytes(executable: Any) -> int:
    """Peak bytes of one call of a compiled jax executable, by XLA's own accounting.

    Arguments plus outputs, less the outputs that reuse a donated argument's
    buffer, plus temporaries.
    """
    stats = executable.memory_analysis()
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes
               + stats.temp_size_in_bytes)


def jax_executable(compiled: CompiledStep, grad: Any, lr: float) -> Any:
    """The XLA executable a jax :class:`CompiledStep` runs for ``grad`` (after its first step)."""
    if compiled.framework != "jax" or compiled.count == 0:
        raise ValueError("jax_executable needs a jax CompiledStep that has taken a step")
    runtime = compiled._compiled
    return runtime["step"].lower(compiled.param, grad, *compiled.state[1:], runtime["count"], float(lr),
                                 compiled.static_kwargs).compile()


