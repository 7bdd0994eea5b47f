"""The spec's step recorded once and replayed into preallocated buffers (:mod:`optspec.adapters.numpy.plan`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from optspec.adapters.compiled import (
    SCALARS,
    CompiledStep,
    spec_call,
    static_hyper,
    with_state_arrays,
)


class NumPyBackend:
    ARRAYS = ("param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    @staticmethod
    def compile(compiled: CompiledStep) -> Any:
        compiled.param = np.array(compiled.param, copy=True)
        compiled.state = with_state_arrays(compiled.state, lambda v: np.array(v, copy=True))
        rule, static = compiled.rule, static_hyper(*compiled.static()[1:])

        def step(xp: Any, param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any, max_exp_avg_sq: Any,
                 **scalars: Any) -> dict[str, Any]:
            new_param, new_state = spec_call(rule, xp, param, grad, (exp_avg, exp_avg_sq, max_exp_avg_sq),
                                              [scalars[name] for name in SCALARS], static)
            return {"param": new_param, "exp_avg": new_state.exp_avg, "exp_avg_sq": new_state.exp_avg_sq,
                    "max_exp_avg_sq": new_state.max_exp_avg_sq}

        return {"step": step, "plans": {}}

    @staticmethod
    def run(compiled: CompiledStep, grad: Any, lr: float) -> None:
        from optspec.adapters.numpy import plan as numpy_plan

        arrays = dict(zip(NumPyBackend.ARRAYS, (compiled.param, np.asarray(grad), *compiled.state[1:])))
        count, *rest = compiled.scalars(lr)
        scalars = dict(zip(SCALARS, [int(count), *map(float, rest)]))  # Python scalars: NumPy's weak promotion
        key = tuple((a.dtype, a.shape) for a in arrays.values())
        plans = compiled._compiled["plans"]
        if key not in plans:
            plans[key] = numpy_plan.record(compiled._compiled["step"], arrays, scalars)
        plans[key].run(arrays, scalars)

    @staticmethod
    def compilations(compiled: CompiledStep) -> int:
        return len(compiled._compiled["plans"])


BACKEND = NumPyBackend()
