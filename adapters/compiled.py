"""The spec's pure ``step``, compiled for a framework, without changing the spec.

- torch: ``torch.compile`` of the step with the new parameter and state
  written back in place (``copy_``), so that inductor emits one fused loop
  and no full-size outputs survive the call
  (:func:`optspec.adapters.torch.compiled.torch_inplace_step`);
- jax: ``jax.jit`` with the parameter and state buffers donated;
- tensorflow: ``tf.function(jit_compile=True)`` over the TF namespace, the
  new values assigned to ``tf.Variable`` s inside the compiled function;
- numpy: the step recorded once and replayed with ``out=`` into preallocated
  buffers (:mod:`optspec.adapters.numpy.plan`).

Each framework's backend is ``BACKEND`` in its ``compiled`` module: it
compiles, runs one step and counts its compilations.

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

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from optspec.adapters.frameworks import FRAMEWORKS, has_part, part
from optspec.adapters.namespaces import namespace

#: The runtime scalars of a torch, tensorflow or numpy compiled step, in order.
SCALARS = ("count", "lr", "initial_lr", "beta1", "beta2", "eps", "weight_decay")
_INSTANCES = itertools.count()


def runtime_scalars(count: float, lr: float, initial_lr: float, betas: tuple[float, float], eps: float,
                    weight_decay: float) -> list[float]:
    """The values of :data:`SCALARS`, in that order."""
    return [count, lr, initial_lr, *betas, eps, weight_decay]


def adam_rule(rule: str) -> Any:
    from optspec import spec
    found = spec.get_rule(rule)
    if not found.compiles:
        raise ValueError(f"only adam and adamw are compiled; {rule!r} is not")
    return found


def static_hyper(convention: Any, amsgrad: bool, maximize: bool) -> dict[str, Any]:
    """The hyperparameters fixed at compilation (they choose code paths in the spec)."""
    return {"amsgrad": amsgrad, "maximize": maximize, "convention": convention}


def with_state_arrays(state: Any, convert: Any) -> Any:
    """``state`` with ``convert`` applied to each of its arrays (every field but the step count)."""
    return state._replace(**{k: convert(v) for k, v in state._asdict().items() if k != "step"})


def spec_call(rule: Any, xp: Any, param: Any, grad: Any, moments: tuple[Any, Any, Any], scalars: Any,
               static: Mapping[str, Any]) -> Any:
    """The spec step with every hyperparameter taken from the unpacked ``scalars`` (see :data:`SCALARS`)."""
    from optspec.spec.adam import AdamState

    count, lr, initial_lr, beta1, beta2, eps, weight_decay = scalars
    hyper = {"betas": (beta1, beta2), "eps": eps, "weight_decay": weight_decay, **static}
    if rule.takes_initial_lr:
        hyper["initial_lr"] = initial_lr
    return rule.step(xp, param, grad, AdamState(count, *moments), lr=lr, **hyper)


class CompiledStep:
    """One parameter tensor and its state, stepped in place by the compiled spec.

    ``step(grad, lr)`` advances the parameter; ``param`` and ``state`` are the
    framework's arrays (``tf.Variable`` s for tensorflow).  Hyperparameters are
    fixed at construction; ``lr`` may change every step.
    """

    def __init__(self, framework: str, rule: str, param: Any, *, device: str | None = None,
                 **hyper: Any) -> None:
        if framework not in FRAMEWORKS or not has_part(framework, "compiled"):
            compiled = ", ".join(f for f in FRAMEWORKS if has_part(f, "compiled"))
            raise ValueError(f"no compiled spec for {framework!r}: use one of {compiled}")
        self.framework = framework
        self.rule = adam_rule(rule)
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
        self._backend = part(framework, "compiled").BACKEND
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


def compilations(compiled: CompiledStep) -> int:
    """How many times the step has been compiled since ``compiled`` was made."""
    return _shared_compilations(compiled) - compiled._compilations_before


def _shared_compilations(compiled: CompiledStep) -> int:
    """Compilations so far of the function ``compiled`` runs, which other instances may share."""
    return compiled._backend.compilations(compiled)


def as_numpy(compiled: CompiledStep) -> np.ndarray:
    from optspec.adapters.namespaces import to_numpy

    return to_numpy(compiled.param)
