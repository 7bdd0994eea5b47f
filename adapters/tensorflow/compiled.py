"""The spec's step under ``tf.function(jit_compile=True)``, over the TF namespace, into ``tf.Variable`` s."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from optspec.adapters.compiled import (
    SCALARS,
    CompiledStep,
    adam_rule,
    spec_call,
    static_hyper,
    with_state_arrays,
)
from optspec.adapters.namespaces import namespace


def tensorflow_inplace_step(rule: str, convention: Any, amsgrad: bool, maximize: bool,
                            variables: tuple[Any, Any, Any, Any], count: Any, scalars: Any) -> Any:
    """``f(grad)`` under XLA, assigning the new parameter and state to ``variables`` and advancing ``count``.

    ``variables`` are the ``tf.Variable`` s of the parameter, ``exp_avg``,
    ``exp_avg_sq`` and ``max_exp_avg_sq``; ``count`` is an int64 variable of
    the steps taken; ``scalars`` a variable of the other :data:`optspec.adapters.compiled.SCALARS` in
    the parameter's dtype, in which Keras computes its scalars too.  All are
    captured by the compiled function rather than passed to it: each argument
    costs tens of microseconds per call, and building a scalar tensor each
    step costs 40-80 more.  The caller assigns ``scalars`` only when one of
    them changes, as Keras does with its learning-rate variable.
    """
    spec_rule, xp = adam_rule(rule), namespace("tensorflow")
    static = static_hyper(convention, amsgrad, maximize)
    param, exp_avg, exp_avg_sq, max_exp_avg_sq = variables

    @tf.function(jit_compile=True, reduce_retracing=True)
    def step(grad: Any) -> None:
        runtime = [tf.cast(count, param.dtype), *tf.unstack(tf.convert_to_tensor(scalars))]
        new_param, new_state = spec_call(spec_rule, xp, tf.convert_to_tensor(param), grad,
                                          tuple(tf.convert_to_tensor(v) for v in variables[1:]), runtime, static)
        param.assign(new_param)
        exp_avg.assign(new_state.exp_avg)
        exp_avg_sq.assign(new_state.exp_avg_sq)
        if amsgrad:  # otherwise unchanged; assigning it anyway costs a full read and write under XLA
            max_exp_avg_sq.assign(new_state.max_exp_avg_sq)
        count.assign_add(1)

    return step



class TensorFlowBackend:
    @staticmethod
    def compile(compiled: CompiledStep) -> Any:
        compiled.param = tf.Variable(compiled.param)
        compiled.state = with_state_arrays(compiled.state, tf.Variable)
        count = tf.Variable(0, dtype=tf.int64)
        scalars = tf.Variable(tf.zeros(len(SCALARS) - 1, compiled.param.dtype))
        step = tensorflow_inplace_step(*compiled.static(), (compiled.param, *compiled.state[1:]), count, scalars)
        return {"step": step, "scalars": scalars, "assigned": None}

    @staticmethod
    def run(compiled: CompiledStep, grad: Any, lr: float) -> None:
        runtime = compiled._compiled
        scalars = compiled.scalars(lr)[1:]
        if scalars != runtime["assigned"]:
            runtime["scalars"].assign(scalars)
            runtime["assigned"] = scalars
        runtime["step"](grad)

    @staticmethod
    def compilations(compiled: CompiledStep) -> int:
        return int(compiled._compiled["step"].experimental_get_tracing_count())


BACKEND = TensorFlowBackend()
