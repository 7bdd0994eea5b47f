"""MindSpore: ``mindspore.nn`` and ``mindspore.experimental.optim`` optimizers, and plugins (MindSpore 2.10).

Both families take their parameters at construction and are called with a
tuple of gradients (``optimizer(grads)``).  The learning rate is a float32
``Parameter`` (``nn``: ``optimizer.learning_rate``; ``experimental``: each
``param_groups[i]["lr"]``), set before each step with ``ops.assign``: the
``nn`` step is compiled (``@jit``), and ``set_data`` there is silently
ignored.  The state is ``get_parameters()``, restored with ``ops.assign``.
Parameters are named ``p0``, ``p1``, ...: ``nn`` optimizers skip the decay
of a parameter whose name holds ``beta`` or ``gamma``
(``nn/optim/optimizer.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import mindspore
import mindspore.experimental.optim as experimental
import numpy as np
from mindspore import nn, ops

from optspec import spec
from optspec.adapters.driver import Session, SubjectInfo
from optspec.adapters.namespaces import asarray, to_numpy
from optspec.adapters.plugins import Capabilities
from optspec.adapters.translation import Translation

#: ``mindspore.nn`` names (``nn/optim/*.py``); its ``weight_decay`` is L2 (``decay_weight``), but for
#: ``AdamWeightDecay``'s, which is BERT's decoupled term inside the update.
NN: Mapping[str, Translation] = MappingProxyType({
    "sgd": Translation({"momentum": "momentum", "dampening": "dampening", "weight_decay": "weight_decay",
                        "nesterov": "nesterov"}, lr="learning_rate"),
    "adagrad": Translation({"initial_accumulator_value": "accum", "weight_decay": "weight_decay"},
                           lr="learning_rate"),
    "rmsprop": Translation({"alpha": "decay", "eps": "epsilon", "momentum": "momentum", "centered": "centered",
                            "weight_decay": "weight_decay"}, lr="learning_rate"),
    "adam": Translation({"betas": ("beta1", "beta2"), "eps": "eps", "weight_decay": "weight_decay",
                         "amsgrad": "use_amsgrad"}, lr="learning_rate"),
    "adamw": Translation({"betas": ("beta1", "beta2"), "eps": "eps", "weight_decay": "weight_decay"},
                         lr="learning_rate"),
    "adamax": Translation({"betas": ("beta1", "beta2"), "eps": "eps", "weight_decay": "weight_decay"},
                          lr="learning_rate"),
    "adadelta": Translation({"rho": "rho", "eps": "epsilon", "weight_decay": "weight_decay"}, lr="learning_rate"),
    # nn.Rprop's weight_decay (L2) has no counterpart in the spec's Rprop: left at its default, 0.
    "rprop": Translation({"etas": "etas", "step_sizes": "step_sizes"}, lr="learning_rate"),
})

#: ``mindspore.experimental.optim`` takes torch's names.
EXPERIMENTAL: Mapping[str, Translation] = MappingProxyType({
    "adam": Translation.same_names("betas", "eps", "weight_decay", "maximize"),
    "adamw": Translation.same_names("betas", "eps", "weight_decay", "amsgrad", "maximize"),
    "adamax": Translation.same_names("betas", "eps", "weight_decay", "maximize"),
    "adadelta": Translation.same_names("rho", "eps", "weight_decay", "maximize"),
    "nadam": Translation.same_names("betas", "eps", "weight_decay", "momentum_decay"),  # no maximize
    "radam": Translation.same_names("betas", "eps", "weight_decay"),  # no maximize; the threshold is 5, fixed
    "rprop": Translation.same_names("etas", "step_sizes", "maximize"),
})

#: The rules a plugin may implement, by ``nn`` names (:func:`translations` gives a plugin its family's).
TRANSLATIONS = NN


class MindSporeSession(Session):
    """A MindSpore optimizer over ``Parameter`` s named ``p0``, ``p1``, ..."""

    def __init__(self, factory: Callable[..., Any], lr_name: str, kwargs: Mapping[str, Any],
                 params0: Sequence[np.ndarray], lr0: float, dtype: str, device: str | None) -> None:
        self.dtype, self.device = dtype, device
        self.parameters = [mindspore.Parameter(asarray("mindspore", p, dtype, device), name=f"p{i}")
                           for i, p in enumerate(params0)]
        self.optimizer = factory(self.parameters, **{lr_name: lr0}, **kwargs)

    def feed(self, grads: Sequence[np.ndarray]) -> list[Any]:
        return [asarray("mindspore", g, self.dtype, self.device) for g in grads]

    def _rates(self) -> list[Any]:
        groups = getattr(self.optimizer, "param_groups", None)
        return [group["lr"] for group in groups] if groups is not None else [self.optimizer.learning_rate]

    def step(self, grads: list[Any], lr: float, index: int) -> None:
        for rate in self._rates():
            ops.assign(rate, mindspore.Tensor(lr, mindspore.float32))
        self.optimizer(tuple(grads))

    def params(self) -> list[np.ndarray]:
        return [to_numpy(p) for p in self.parameters]

    def _slots(self) -> dict[str, Any]:
        rates = {id(rate) for rate in self._rates()}
        return {p.name: p for p in self.optimizer.get_parameters()
                if id(p) not in rates and all(p is not q for q in self.parameters)}

    def state(self) -> dict[str, np.ndarray]:
        return {name: to_numpy(value) for name, value in self._slots().items()}

    def storage(self) -> list[Any]:
        return [*self.parameters, *self._slots().values()]

    def save(self) -> Any:
        return {name: value.asnumpy().copy() for name, value in self._slots().items()}

    def restore(self, saved: Any) -> None:
        for name, value in self._slots().items():
            ops.assign(value, mindspore.Tensor(saved[name]))


def builder(factory: Callable[..., Any], translation: Translation, extra: Mapping[str, Any] | None = None):
    """A ``SubjectInfo.build`` for ``factory``, with ``extra`` constructor arguments."""

    def build(params0, hyper, lrs, dtype, device) -> MindSporeSession:
        kwargs = {**translation.kwargs(hyper), **(extra or {})}
        return MindSporeSession(factory, translation.lr, kwargs, params0, lrs[0] if lrs else 0.0, dtype, device)

    return build


#: ``nn.Adam`` with AMSGrad steps through ``ApplyAdamWithAmsgradV2``, whose CPU kernel refuses a 0-D parameter
#: (``apply_adam_with_amsgrad_v2_cpu_kernel.cc`` ``Resize``: "the dimension of 'var' must be at least 1-D"),
#: a shape the cases draw: it raises "Framework Unexpected Exception" at the first step.
AMSGRAD_REFUSES_SCALARS = ("its CPU kernel ApplyAdamWithAmsgradV2 refuses a 0-D parameter ('the dimension of var "
                           "must be at least 1-D'), a shape the cases draw")

#: The built-ins: (name, rule, class, translation, the preset its source follows, hyperparameters it fixes, knobs
#: not tested and why), each read from its source and checked against NumPy models of it (``docs/DEVIATIONS.md``).
#: Not among them yet, each for a failure measured and not diagnosed: ``nn.RMSProp`` (with momentum 0 it behaves
#: as ε outside the root, with momentum as inside, as tf-keras' legacy RMSprop) and ``nn.Adagrad`` (1e-3 relative
#: off the spec on the named case exact-zeros-and-resume).  Not among them, each diagnosed: ``nn.AdaMax`` matches
#: no preset of Adamax: ε outside the maximum and bias-corrected as Keras', but its ``weight_decay`` is L2
#: (``nn/optim/adamax.py:214`` ``decay_weight``, then ``ops.ApplyAdaMax``, ``var -= lr/(1 - beta1_power) *
#: m/(v + eps)``), where Keras' is decoupled.  ``experimental.optim.NAdam`` steps as torch's, but keeps
#: ``mu_product`` in a list of ``Parameter`` s the cell does not register (``experimental/optim/nadam.py:115``): it
#: is in neither ``get_parameters()`` nor a checkpoint, so a resumed run starts the product again at 1.
#: ``experimental.optim.RAdam`` computes :math:`\rho_t` in float32 (``experimental/optim/radam.py:157-164``), where
#: :math:`\beta_2^t` near 1 loses the second-order term of :math:`1-\beta_2^t`: with :math:`\beta_2` = 0.99999 its
#: :math:`\rho_t` is :math:`2t-1` where the exact one is :math:`t`, so the rectified step starts at step 4, not 6.
BUILTINS: tuple[tuple[str, str, Any, Translation, str, Mapping[str, Any], Mapping[str, str]], ...] = (
    # nn/optim/adam.py AdamWeightDecay, _update_run_op: m, v without bias correction;
    # p -= lr*(m/(sqrt(v)+eps) + wd*p): BERT's rule.
    ("mindspore.nn.AdamWeightDecay", "adamw", nn.AdamWeightDecay, NN["adamw"], "bert", {}, {}),
    # experimental/optim/adamw.py: p *= 1 - lr*wd; m/(sqrt(v)/sqrt(bc2) + eps) * lr/bc1; amsgrad the max of raw v.
    ("mindspore.experimental.optim.AdamW", "adamw", experimental.AdamW, EXPERIMENTAL["adamw"], "torch", {}, {}),
    # nn/optim/adam.py Adam.construct: decay_weight (L2) on the gradient, then ApplyAdam with
    # lr_t = lr*sqrt(1 - beta2_power)/(1 - beta1_power), m/(sqrt(v) + eps): ε-hat, Keras' rule with an L2 term.
    ("mindspore.nn.Adam", "adam", nn.Adam, NN["adam"].without("amsgrad"), "keras", {},
     {"amsgrad": AMSGRAD_REFUSES_SCALARS}),
    # nn/optim/sgd.py: torch's SGD (the first buffer is the gradient; dampening, Nesterov, L2 decay).
    ("mindspore.nn.SGD", "sgd", nn.SGD, NN["sgd"], "torch", {}, {}),
    # nn/optim/adadelta.py:199-214: decay_weight (L2, nn/optim/optimizer.py:397-418, :862-867), then
    # ops.ApplyAdadelta: accum = rho*accum + (1 - rho)*g^2, update = sqrt(accum_update + eps)*g/sqrt(accum + eps),
    # accum_update = rho*accum_update + (1 - rho)*update^2, var -= lr*update: torch's.
    ("mindspore.nn.Adadelta", "adadelta", nn.Adadelta, NN["adadelta"], "torch", {}, {}),
    # nn/optim/rprop.py:233-265: the step sizes start at the first step's lr (:233-234), are multiplied by
    # etaplus, etaminus or 1 by sign(g*prev) and clipped at every step (:253), the gradient kept as 0 where the sign
    # flipped (:257-260), param -= sign(g)*step_size (:261): torch's (clamp always).
    ("mindspore.nn.Rprop", "rprop", nn.Rprop, NN["rprop"], "torch", {}, {}),
    # experimental/optim/adamax.py:18-26, :128-141: L2 (experimental/optim/optimizer.py:156-161, :237-240);
    # exp_inf = max(beta2*exp_inf, |g| + eps), param -= lr/(1 - beta1**t) * exp_avg/exp_inf: torch's.
    ("mindspore.experimental.optim.Adamax", "adamax", experimental.Adamax, EXPERIMENTAL["adamax"], "torch", {}, {}),
    # experimental/optim/adadelta.py:128-138: L2, then ops.ApplyAdadelta as nn.Adadelta: torch's.
    ("mindspore.experimental.optim.Adadelta", "adadelta", experimental.Adadelta, EXPERIMENTAL["adadelta"], "torch",
     {}, {}),
    # experimental/optim/rprop.py:26-50: nn.Rprop's step (step sizes from the first lr, clipped at every step): torch's.
    ("mindspore.experimental.optim.Rprop", "rprop", experimental.Rprop, EXPERIMENTAL["rprop"], "torch", {}, {}),
)


def _subject(name: str, rule: str, factory: Any, translation: Translation, convention: str | None, *,
             supports: frozenset[str], fixed: Mapping[str, Any], not_tested: Mapping[str, str]) -> SubjectInfo:
    return SubjectInfo(name=name, framework="mindspore", rule=rule,
                       convention=convention if spec.get_rule(rule).takes_convention else None,
                       supports=supports, fixed=dict(fixed), not_tested=dict(not_tested),
                       build=builder(factory, translation), holds_hyperparameters_in_dtype=True)


SUBJECTS: tuple[SubjectInfo, ...] = tuple(
    _subject(name, rule, cls, translation, convention, supports=translation.supports, fixed=fixed,
             not_tested={**{k: "the kernel has none: it is fixed" for k in fixed}, **not_tested})
    for name, rule, cls, translation, convention, fixed, not_tested in BUILTINS
)


def translations(factory: Any) -> Mapping[str, Translation]:
    """The names a plugin takes: ``experimental``'s (torch's) for a subclass of
    ``mindspore.experimental.optim.Optimizer``, else ``nn``'s."""
    return EXPERIMENTAL if isinstance(factory, type) and issubclass(factory, experimental.Optimizer) else NN


def construct(factory: Any, kwargs: Mapping[str, Any]) -> Any:
    """``factory`` called as the certifier calls it, on a one-element parameter, with ``kwargs``."""
    lr = next(iter(translations(factory).values())).lr
    return factory([mindspore.Parameter(mindspore.Tensor(np.zeros(1, np.float32)), name="p0")], **{lr: 1e-3},
                   **kwargs)


def _preset_of(factory: Any) -> str:
    """BERT's rule for a subclass of ``nn.AdamWeightDecay``, Keras' (ε-hat) for one of ``nn.Adam``, else torch's."""
    for cls, preset in ((nn.AdamWeightDecay, "bert"), (nn.Adam, "keras")):
        if isinstance(factory, type) and issubclass(factory, cls):
            return preset
    return "torch"


def plugin(name: str, factory: Any, rule: str, caps: Capabilities) -> SubjectInfo:
    """A plugin: ``factory(params, learning_rate=..., **knobs)`` (``lr=`` for ``experimental``) returns a
    MindSpore optimizer, held to the preset of the family it derives from (:func:`_preset_of`)."""
    probe = construct(factory, {})
    if not isinstance(probe, (nn.Optimizer, experimental.Optimizer)):
        raise TypeError(f"it returned a {type(probe).__name__}, not a MindSpore optimizer")
    return _subject(name, rule, factory, translations(factory)[rule], _preset_of(factory),
                    supports=caps.supports, fixed=caps.fixed, not_tested=caps.not_tested)
