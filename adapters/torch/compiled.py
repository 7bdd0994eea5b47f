"""The spec's step under ``torch.compile``, writing the parameter and state back in place."""

from __future__ import annotations

import functools
import itertools
import types
from typing import Any

import torch

from optspec.adapters.compiled import (
    CompiledStep,
    adam_rule,
    spec_call,
    static_hyper,
    with_state_arrays,
)
from optspec.adapters.namespaces import namespace
from optspec.adapters.torch.scalar_hoisting import inductor_with_hoisting

_INSTANCES = itertools.count()


@functools.cache
def torch_inplace_step(rule: str, convention: Any, amsgrad: bool, maximize: bool, dynamic: bool | None,
                       compile: bool = True, cache_key: Any = None) -> Any:
    """``f(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, scalars)``, compiled, updating its arguments in place.

    ``scalars`` is a float64 tensor of :data:`optspec.adapters.compiled.SCALARS`.  Each combination of
    the static arguments has its own code object, so its own dynamo cache
    (dynamo caches by code object, up to a small limit, and then silently
    runs eagerly, or fails under ``fullgraph``); a distinct ``cache_key`` gives
    another.  ``compile=False`` returns the same function uncompiled.
    """
    spec_rule, xp = adam_rule(rule), namespace("torch")
    static = static_hyper(convention, amsgrad, maximize)

    def step(param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any, max_exp_avg_sq: Any, scalars: Any) -> None:
        new_param, new_state = spec_call(spec_rule, xp, param, grad, (exp_avg, exp_avg_sq, max_exp_avg_sq),
                                          scalars.unbind(0), static)
        param.copy_(new_param)
        exp_avg.copy_(new_state.exp_avg)
        exp_avg_sq.copy_(new_state.exp_avg_sq)
        max_exp_avg_sq.copy_(new_state.max_exp_avg_sq)

    code = step.__code__.replace(co_name=f"optspec_step_{next(_INSTANCES)}")
    own = types.FunctionType(code, step.__globals__, code.co_name, step.__defaults__, step.__closure__)
    if not compile:
        return own
    return torch.compile(own, fullgraph=True, dynamic=dynamic, backend=inductor_with_hoisting("scalars"))



class TorchBackend:
    @staticmethod
    def compile(compiled: CompiledStep) -> Any:
        # The state tensors are written in place, so they must be distinct buffers.
        compiled.state = with_state_arrays(compiled.state, lambda v: v.clone())
        return torch_inplace_step(*compiled.static(), dynamic=False)

    @staticmethod
    def run(compiled: CompiledStep, grad: Any, lr: float) -> None:
        scalars = torch.tensor(compiled.scalars(lr), dtype=torch.float64, device=compiled.param.device)
        compiled._compiled(compiled.param, grad, *compiled.state[1:], scalars)

    @staticmethod
    def compilations(compiled: CompiledStep) -> int:
        return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


BACKEND = TorchBackend()
