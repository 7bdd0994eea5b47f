"""The spec's pure ``step``, compiled for a framework, without changing the spec.

- torch: ``torch.compile`` of the step with the new parameter and state
  written back in place (``copy_``), so that inductor emits one fused loop
  and no full-size outputs survive the call;
- jax: ``jax.jit`` with the parameter and state buffers donated.

The per-step scalars (the learning rate and the step count, from which the
spec derives the bias corrections) enter as runtime values: 0-d float64
tensors for torch, Python scalars (weakly typed) for jax.  A changing
learning rate therefore never recompiles; :func:`compilations` counts.

Only Adam-family rules (``adam``, ``adamw``) are compiled here.  TensorFlow
(``tf.function(jit_compile=True)``) and NumPy with preallocated buffers are
not built yet.
"""

from __future__ import annotations

import functools
import itertools
import types
from collections.abc import Mapping
from typing import Any

import numpy as np

from adapters.frameworks import import_framework
from adapters.namespaces import namespace

COMPILED_FRAMEWORKS = ("torch", "jax")
_INSTANCES = itertools.count()


class CompiledStep:
    """One parameter tensor and its state, stepped in place by the compiled spec.

    ``step(grad, lr)`` advances the parameter; ``param`` and ``state`` are the
    framework's arrays.  Hyperparameters are fixed at construction (a change
    of them is a new compilation); ``lr`` may change every step.
    """

    def __init__(self, framework: str, rule: str, param: Any, *, device: str | None = None,
                 **hyper: Any) -> None:
        import spec

        if framework not in COMPILED_FRAMEWORKS:
            raise ValueError(f"no compiled spec for {framework!r}: use one of {', '.join(COMPILED_FRAMEWORKS)}")
        self.framework = framework
        self.rule = spec.get_rule(rule)
        if not self.rule.takes_convention:
            raise ValueError(f"only adam and adamw are compiled; {rule!r} is not")
        self.xp = namespace(framework, device)
        self.hyper = self.rule.hyperparameters(hyper.pop("convention", "torch"), **hyper)
        self.initial_lr: float | None = None
        self.count = 0
        self.param = param
        self.state = self.rule.init_state(self.xp, param, self.hyper)
        self._step = _TORCH if framework == "torch" else _JAX
        self._graphs_before = _torch_graphs() if framework == "torch" else 0
        self._compiled = self._step.compile(self)

    def step(self, grad: Any, lr: float) -> None:
        if self.initial_lr is None:
            self.initial_lr = lr
        self.count += 1
        self._step.run(self, grad, lr)


def _spec_kwargs(compiled: CompiledStep) -> dict[str, Any]:
    """The spec step's keyword arguments besides ``lr``; ``initial_lr`` is fixed after step 1."""
    kwargs = dict(compiled.hyper)
    if compiled.rule.takes_initial_lr:
        kwargs["initial_lr"] = float(compiled.initial_lr)
    return kwargs


def _spec_step(compiled: CompiledStep) -> Any:
    """``step(param, grad, m, v, v_max, count, lr, kwargs) -> (param, state)``: the spec, for a compiler."""
    rule, xp, state_type = compiled.rule, compiled.xp, type(compiled.state)

    def step(param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any, max_exp_avg_sq: Any, count: Any, lr: Any,
             kwargs: Mapping[str, Any]) -> Any:
        state = state_type(count, exp_avg, exp_avg_sq, max_exp_avg_sq)
        return rule.step(xp, param, grad, state, lr=lr, **kwargs)

    return step


class _Torch:
    @staticmethod
    def compile(compiled: CompiledStep) -> Any:
        torch = import_framework("torch")
        spec_step = _spec_step(compiled)
        compiled.scalars = torch.zeros(2, dtype=torch.float64, device=compiled.param.device)  # (count, lr)

        def step(param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any, max_exp_avg_sq: Any, scalars: Any,
                 kwargs: Mapping[str, Any]) -> None:
            new_param, new_state = spec_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq,
                                             scalars[0], scalars[1], kwargs)
            param.copy_(new_param)
            exp_avg.copy_(new_state.exp_avg)
            exp_avg_sq.copy_(new_state.exp_avg_sq)
            max_exp_avg_sq.copy_(new_state.max_exp_avg_sq)

        # The state tensors are written in place, so they must be distinct buffers.
        compiled.state = compiled.state._replace(**{k: v.clone() for k, v in compiled.state._asdict().items()
                                                    if k != "step"})
        # dynamo caches by code object, up to a small limit, then silently runs
        # eagerly; a code object of its own gives each instance its own cache.
        code = step.__code__.replace(co_name=f"optspec_step_{next(_INSTANCES)}")
        own = types.FunctionType(code, step.__globals__, code.co_name, step.__defaults__, step.__closure__)
        return torch.compile(own, fullgraph=True, dynamic=False)

    @staticmethod
    def run(compiled: CompiledStep, grad: Any, lr: float) -> None:
        compiled.scalars[0] = compiled.count - 1
        compiled.scalars[1] = lr
        compiled._compiled(compiled.param, grad, *compiled.state[1:], compiled.scalars, _spec_kwargs(compiled))
        compiled.state = compiled.state._replace(step=compiled.count)


class _Jax:
    @staticmethod
    def compile(compiled: CompiledStep) -> Any:
        jax = import_framework("jax")
        spec_step = _spec_step(compiled)

        @functools.partial(jax.jit, donate_argnums=(0, 2, 3, 4), static_argnames=("kwargs",))
        def step(param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any, max_exp_avg_sq: Any, count: Any,
                 lr: Any, kwargs: tuple) -> Any:
            return spec_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, count, lr, dict(kwargs))

        xp = compiled.xp
        compiled.state = compiled.state._replace(**{k: xp.asarray(v, copy=True)
                                                    for k, v in compiled.state._asdict().items() if k != "step"})
        return step

    @staticmethod
    def run(compiled: CompiledStep, grad: Any, lr: float) -> None:
        kwargs = tuple(sorted(_spec_kwargs(compiled).items()))  # static: hashed, so it never changes after step 1
        param, state = compiled._compiled(compiled.param, grad, *compiled.state[1:], compiled.count - 1,
                                          float(lr), kwargs=kwargs)
        compiled.param = param
        compiled.state = state._replace(step=compiled.count)


_TORCH, _JAX = _Torch(), _Jax()


def compilations(compiled: CompiledStep) -> int:
    """How many times the step has been compiled so far."""
    if compiled.framework == "jax":
        return int(compiled._compiled._cache_size())
    return _torch_graphs() - compiled._graphs_before


def _torch_graphs() -> int:
    torch = import_framework("torch")
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def as_numpy(compiled: CompiledStep) -> np.ndarray:
    from adapters.namespaces import to_numpy

    return to_numpy(compiled.param)
