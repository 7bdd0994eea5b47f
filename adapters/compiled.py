"""The spec's pure ``step``, compiled for a framework, without changing the spec.

- torch: ``torch.compile`` of the step with the new parameter and state
  written back in place (``copy_``), so that inductor emits one fused loop
  and no full-size outputs survive the call (:func:`torch_inplace_step`);
- jax: ``jax.jit`` with the parameter and state buffers donated;
- tensorflow: ``tf.function(jit_compile=True)`` over the TF namespace, the
  new values assigned to ``tf.Variable`` s inside the compiled function;
- numpy: the step recorded once and replayed with ``out=`` into preallocated
  buffers (:mod:`optspec.adapters.numpy_plan`).

The per-step scalars (the step count, from which the spec derives the bias
corrections, and the learning rate) enter as runtime values: a float64
tensor for torch, weakly typed device scalars for jax (the count carried
from step to step), captured variables for tensorflow, Python scalars for
numpy.  For torch, tensorflow and numpy the hyperparameters are runtime
values too, so one compilation serves every param group.  A changing
learning rate therefore never recompiles; :func:`compilations` counts.

Only Adam-family rules (``adam``, ``adamw``) are compiled here.
"""

from __future__ import annotations

import functools
import itertools
import math
import types
from collections.abc import Mapping
from typing import Any

import numpy as np
from optspec.adapters.frameworks import import_framework
from optspec.adapters.namespaces import namespace
from optspec.adapters.scalar_hoisting import inductor_with_hoisting

COMPILED_FRAMEWORKS = ("torch", "jax", "tensorflow", "numpy")
#: The runtime scalars of a torch, tensorflow or numpy compiled step, in order.
SCALARS = ("count", "lr", "initial_lr", "beta1", "beta2", "eps", "weight_decay")
_INSTANCES = itertools.count()


def runtime_scalars(count: float, lr: float, initial_lr: float, betas: tuple[float, float], eps: float,
                    weight_decay: float) -> list[float]:
    """The values of :data:`SCALARS`, in that order."""
    return [count, lr, initial_lr, *betas, eps, weight_decay]


def _adam_rule(rule: str) -> Any:
    from optspec import spec
    found = spec.get_rule(rule)
    if not found.takes_convention:
        raise ValueError(f"only adam and adamw are compiled; {rule!r} is not")
    return found


def _static_hyper(convention: Any, amsgrad: bool, maximize: bool) -> dict[str, Any]:
    """The hyperparameters fixed at compilation (they choose code paths in the spec)."""
    return {"amsgrad": amsgrad, "maximize": maximize, "convention": convention}


def _with_state_arrays(state: Any, convert: Any) -> Any:
    """``state`` with ``convert`` applied to each of its arrays (every field but the step count)."""
    return state._replace(**{k: convert(v) for k, v in state._asdict().items() if k != "step"})


def _spec_call(rule: Any, xp: Any, param: Any, grad: Any, moments: tuple[Any, Any, Any], scalars: Any,
               static: Mapping[str, Any]) -> Any:
    """The spec step with every hyperparameter taken from the unpacked ``scalars`` (see :data:`SCALARS`)."""
    from optspec.spec.adam import AdamState

    count, lr, initial_lr, beta1, beta2, eps, weight_decay = scalars
    hyper = {"betas": (beta1, beta2), "eps": eps, "weight_decay": weight_decay, **static}
    if rule.takes_initial_lr:
        hyper["initial_lr"] = initial_lr
    return rule.step(xp, param, grad, AdamState(count, *moments), lr=lr, **hyper)


@functools.cache
def torch_inplace_step(rule: str, convention: Any, amsgrad: bool, maximize: bool, dynamic: bool | None,
                       compile: bool = True, cache_key: Any = None) -> Any:
    """``f(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, scalars)``, compiled, updating its arguments in place.

    ``scalars`` is a float64 tensor of :data:`SCALARS`.  Each combination of
    the static arguments has its own code object, so its own dynamo cache
    (dynamo caches by code object, up to a small limit, and then silently
    runs eagerly, or fails under ``fullgraph``); a distinct ``cache_key`` gives
    another.  ``compile=False`` returns the same function uncompiled.
    """
    torch = import_framework("torch")
    spec_rule, xp = _adam_rule(rule), namespace("torch")
    static = _static_hyper(convention, amsgrad, maximize)

    def step(param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any, max_exp_avg_sq: Any, scalars: Any) -> None:
        new_param, new_state = _spec_call(spec_rule, xp, param, grad, (exp_avg, exp_avg_sq, max_exp_avg_sq),
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


def tensorflow_inplace_step(rule: str, convention: Any, amsgrad: bool, maximize: bool,
                            variables: tuple[Any, Any, Any, Any], count: Any, scalars: Any) -> Any:
    """``f(grad)`` under XLA, assigning the new parameter and state to ``variables`` and advancing ``count``.

    ``variables`` are the ``tf.Variable`` s of the parameter, ``exp_avg``,
    ``exp_avg_sq`` and ``max_exp_avg_sq``; ``count`` is an int64 variable of
    the steps taken; ``scalars`` a variable of the other :data:`SCALARS` in
    the parameter's dtype, in which Keras computes its scalars too.  All are
    captured by the compiled function rather than passed to it: each argument
    costs tens of microseconds per call, and building a scalar tensor each
    step costs 40-80 more.  The caller assigns ``scalars`` only when one of
    them changes, as Keras does with its learning-rate variable.
    """
    tf = import_framework("tensorflow")
    spec_rule, xp = _adam_rule(rule), namespace("tensorflow")
    static = _static_hyper(convention, amsgrad, maximize)
    param, exp_avg, exp_avg_sq, max_exp_avg_sq = variables

    @tf.function(jit_compile=True, reduce_retracing=True)
    def step(grad: Any) -> None:
        runtime = [tf.cast(count, param.dtype), *tf.unstack(tf.convert_to_tensor(scalars))]
        new_param, new_state = _spec_call(spec_rule, xp, tf.convert_to_tensor(param), grad,
                                          tuple(tf.convert_to_tensor(v) for v in variables[1:]), runtime, static)
        param.assign(new_param)
        exp_avg.assign(new_state.exp_avg)
        exp_avg_sq.assign(new_state.exp_avg_sq)
        if amsgrad:  # otherwise unchanged; assigning it anyway costs a full read and write under XLA
            max_exp_avg_sq.assign(new_state.max_exp_avg_sq)
        count.assign_add(1)

    return step


class CompiledStep:
    """One parameter tensor and its state, stepped in place by the compiled spec.

    ``step(grad, lr)`` advances the parameter; ``param`` and ``state`` are the
    framework's arrays (``tf.Variable`` s for tensorflow).  Hyperparameters are
    fixed at construction; ``lr`` may change every step.
    """

    def __init__(self, framework: str, rule: str, param: Any, *, device: str | None = None,
                 **hyper: Any) -> None:
        if framework not in COMPILED_FRAMEWORKS:
            raise ValueError(f"no compiled spec for {framework!r}: use one of {', '.join(COMPILED_FRAMEWORKS)}")
        self.framework = framework
        self.rule = _adam_rule(rule)
        self.xp = namespace(framework, device)
        self.hyper = self.rule.hyperparameters(hyper.pop("convention", "torch"), **hyper)
        self.initial_lr: float | None = None
        self.count = 0
        self.static_kwargs: tuple = ()  # jax: the hyperparameters jit treats as static, set at step 1
        self.state = self.rule.init_state(self.xp, param, self.hyper)
        if not self.hyper["amsgrad"] and math.prod(param.shape) > 0:
            # The spec passes the AMSGrad maximum through untouched: a 0-d stand-in, not a full-size copy.
            stand_in = self.xp.zeros_like(param[(0,) * len(param.shape)])
            self.state = self.state._replace(max_exp_avg_sq=stand_in)
        self._backend = _BACKENDS[framework]
        self.param = param
        self._compiled = self._backend.compile(self)
        self._compilations_before = _shared_compilations(self)

    def step(self, grad: Any, lr: float) -> None:
        if self.initial_lr is None:
            self.initial_lr = lr
        self.count += 1
        self._backend.run(self, grad, lr)
        self.state = self.state._replace(step=self.count)

    def scalars(self, lr: float) -> list[float]:
        """This step's :data:`SCALARS`."""
        return runtime_scalars(self.count - 1, lr, self.initial_lr, self.hyper["betas"], self.hyper["eps"],
                               self.hyper["weight_decay"])

    def static(self) -> tuple[str, Any, bool, bool]:
        return (self.rule.name, self.hyper["convention"], bool(self.hyper["amsgrad"]), bool(self.hyper["maximize"]))


class _Torch:
    @staticmethod
    def compile(compiled: CompiledStep) -> Any:
        # The state tensors are written in place, so they must be distinct buffers.
        compiled.state = _with_state_arrays(compiled.state, lambda v: v.clone())
        return torch_inplace_step(*compiled.static(), dynamic=False)

    @staticmethod
    def run(compiled: CompiledStep, grad: Any, lr: float) -> None:
        torch = import_framework("torch")
        scalars = torch.tensor(compiled.scalars(lr), dtype=torch.float64, device=compiled.param.device)
        compiled._compiled(compiled.param, grad, *compiled.state[1:], scalars)


class _Jax:
    @staticmethod
    def compile(compiled: CompiledStep) -> Any:
        jax = import_framework("jax")
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
        compiled.state = _with_state_arrays(compiled.state,
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


class _TensorFlow:
    @staticmethod
    def compile(compiled: CompiledStep) -> Any:
        tf = import_framework("tensorflow")
        compiled.param = tf.Variable(compiled.param)
        compiled.state = _with_state_arrays(compiled.state, tf.Variable)
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


class _NumPy:
    ARRAYS = ("param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    @staticmethod
    def compile(compiled: CompiledStep) -> Any:
        compiled.param = np.array(compiled.param, copy=True)
        compiled.state = _with_state_arrays(compiled.state, lambda v: np.array(v, copy=True))
        rule, static = compiled.rule, _static_hyper(*compiled.static()[1:])

        def step(xp: Any, param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any, max_exp_avg_sq: Any,
                 **scalars: Any) -> dict[str, Any]:
            new_param, new_state = _spec_call(rule, xp, param, grad, (exp_avg, exp_avg_sq, max_exp_avg_sq),
                                              [scalars[name] for name in SCALARS], static)
            return {"param": new_param, "exp_avg": new_state.exp_avg, "exp_avg_sq": new_state.exp_avg_sq,
                    "max_exp_avg_sq": new_state.max_exp_avg_sq}

        return {"step": step, "plans": {}}

    @staticmethod
    def run(compiled: CompiledStep, grad: Any, lr: float) -> None:
        from optspec.adapters import numpy_plan

        arrays = dict(zip(_NumPy.ARRAYS, (compiled.param, np.asarray(grad), *compiled.state[1:])))
        count, *rest = compiled.scalars(lr)
        scalars = dict(zip(SCALARS, [int(count), *map(float, rest)]))  # Python scalars: NumPy's weak promotion
        key = tuple((a.dtype, a.shape) for a in arrays.values())
        plans = compiled._compiled["plans"]
        if key not in plans:
            plans[key] = numpy_plan.record(compiled._compiled["step"], arrays, scalars)
        plans[key].run(arrays, scalars)


_BACKENDS = {"torch": _Torch(), "jax": _Jax(), "tensorflow": _TensorFlow(), "numpy": _NumPy()}


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


def compilations(compiled: CompiledStep) -> int:
    """How many times the step has been compiled since ``compiled`` was made."""
    return _shared_compilations(compiled) - compiled._compilations_before


def _shared_compilations(compiled: CompiledStep) -> int:
    """Compilations so far of the function ``compiled`` runs, which other instances may share."""
    if compiled.framework == "jax":
        return int(compiled._compiled["step"]._cache_size())
    if compiled.framework == "tensorflow":
        return int(compiled._compiled["step"].experimental_get_tracing_count())
    if compiled.framework == "numpy":
        return len(compiled._compiled["plans"])
    torch = import_framework("torch")
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def as_numpy(compiled: CompiledStep) -> np.ndarray:
    from optspec.adapters.namespaces import to_numpy

    return to_numpy(compiled.param)
