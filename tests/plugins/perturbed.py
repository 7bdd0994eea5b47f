r"""torch's own optimizers with one hyperparameter, or one convention knob, perturbed by a relative δ.

The subjects of the detection-power measurement (``tools/detection.py``) and
of the tests that hold the certifier to its published floor.  Each steps its
``torch.optim`` class (``AdamW``, ``Adam``, ``SGD``, ``Adagrad``,
``RMSprop``, ``Adamax``, ``NAdam``, ``RAdam``, ``Adadelta``, ``Rprop``)
unchanged but for one value it is handed at every step,
restored afterwards so the certifier's schedule and state stay its own; the
initial accumulator alone is perturbed once, in the state the constructor
creates:

=============================  ===========================================================
``knob``                       the step it takes
=============================  ===========================================================
``lr``                         :math:`\mathrm{lr}_t(1+\delta)`, in the step and the decay
``weight_decay``               :math:`\lambda(1+\delta)`
``eps``                        :math:`\epsilon(1+\delta)`
``beta1``                      :math:`\beta_1(1+\delta)`
``one_minus_beta2``            :math:`\beta_2' = 1-(1-\beta_2)(1+\delta)`: the averaging horizon
``decay_scale``                decay :math:`\lambda\,\mathrm{lr}_t^{1+\delta}` (AdamW): between ``lr`` and ``none``
``epsilon``                    :math:`\epsilon\,(1-\beta_2^t)^{-\delta/2}`: from ``corrected`` (δ=0) to ``hat`` (δ=1)
``bias_correction``            the corrections at step :math:`t(1+\delta)` from the second step: :math:`1-\beta^{t(1+\delta)}`
``momentum``                   :math:`\mu(1+\delta)`: SGD's :math:`b_t = \mu(1+\delta)\,b_{t-1} + (1-\tau)\,g_t`, RMSprop's
                               :math:`b_t = \mu(1+\delta)\,b_{t-1} + g_t/(\sqrt{v_t}+\epsilon)`
``dampening``                  :math:`\tau(1+\delta)`: :math:`b_t = \mu\,b_{t-1} + (1-\tau(1+\delta))\,g_t` from the second step
``lr_decay``                   :math:`\kappa(1+\delta)`: the step's rate :math:`\mathrm{lr}_t/(1+(t-1)\,\kappa(1+\delta))`
``initial_accumulator_value``  :math:`s_0 = v(1+\delta)`: every element of ``state["sum"]`` scaled once, at construction
``one_minus_alpha``            :math:`\alpha' = 1-(1-\alpha)(1+\delta)`: the averaging horizon of :math:`v_t`
``momentum_decay``             NAdam's :math:`\psi(1+\delta)` in :math:`\mu_t = \beta_1(1-\tfrac12 0.96^{t\psi})`
``one_minus_rho``              Adadelta's :math:`\rho' = 1-(1-\rho)(1+\delta)`: the horizon of both averages
``eta_minus``, ``eta_plus``    Rprop's factors :math:`\eta_\pm(1+\delta)` on a sign change and on a kept sign
``step_size_min``, ``_max``    Rprop's clamp bounds :math:`\Delta_{\min,\max}(1+\delta)`
=============================  ===========================================================

``KNOBS`` names the knobs of each class: ``AdamW`` the first eight,
``Adam`` all of those but ``decay_scale``; ``SGD`` lr, λ, momentum and
dampening; ``Adagrad`` lr, λ, ε, ``lr_decay`` and the initial accumulator;
``RMSprop`` lr, λ, ε, 1−α and momentum; ``Adamax``, ``RAdam`` lr, λ, ε, β1
and 1−β2, ``NAdam`` those and ψ; ``Adadelta`` lr, λ, ε and 1−ρ; ``Rprop``
lr (which only its first step reads, as the initial step size), η± and
the step-size bounds.  A relative perturbation of a value
that is 0 in a case (a momentum, dampening, ``lr_decay``, initial
accumulator or weight decay of 0) leaves that case unchanged.

``--impl 'tests.plugins.perturbed:AdamW[knob="eps",delta=1e-3]'`` (``--rule sgd`` with ``:SGD[...]``, and so on).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType

import torch


def _relative(name: str) -> Callable[[dict, float, int], dict]:
    """The knob that scales the group's ``name`` by :math:`1+\\delta`."""
    return lambda group, delta, step: {name: group[name] * (1 + delta)}


#: knob -> the values of a param group that the perturbed subject steps with at 1-based ``step``.
_PERTURB: Mapping[str, Callable[[dict, float, int], dict]] = MappingProxyType({
    "lr": _relative("lr"),
    "weight_decay": _relative("weight_decay"),
    "eps": _relative("eps"),
    "beta1": lambda g, delta, step: {"betas": (g["betas"][0] * (1 + delta), g["betas"][1])},
    "one_minus_beta2": lambda g, delta, step: {"betas": (g["betas"][0], 1 - (1 - g["betas"][1]) * (1 + delta))},
    "decay_scale": lambda g, delta, step: {"weight_decay": g["weight_decay"] * g["lr"]**delta if g["lr"] > 0
                                           else g["weight_decay"]},
    "epsilon": lambda g, delta, step: {"eps": g["eps"] * (1 - g["betas"][1]**step) ** (-delta / 2)},
    "bias_correction": lambda g, delta, step: {},  # the step count, in ``step``
    "momentum": _relative("momentum"),
    "dampening": _relative("dampening"),
    "lr_decay": _relative("lr_decay"),
    "initial_accumulator_value": lambda g, delta, step: {},  # the state, at construction
    "one_minus_alpha": lambda g, delta, step: {"alpha": 1 - (1 - g["alpha"]) * (1 + delta)},
    "momentum_decay": _relative("momentum_decay"),
    "one_minus_rho": lambda g, delta, step: {"rho": 1 - (1 - g["rho"]) * (1 + delta)},
    "eta_minus": lambda g, delta, step: {"etas": (g["etas"][0] * (1 + delta), g["etas"][1])},
    "eta_plus": lambda g, delta, step: {"etas": (g["etas"][0], g["etas"][1] * (1 + delta))},
    "step_size_min": lambda g, delta, step: {"step_sizes": (g["step_sizes"][0] * (1 + delta), g["step_sizes"][1])},
    "step_size_max": lambda g, delta, step: {"step_sizes": (g["step_sizes"][0], g["step_sizes"][1] * (1 + delta))},
})

#: The perturbations each subject here can carry, by class name.
KNOBS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "AdamW": ("lr", "weight_decay", "eps", "beta1", "one_minus_beta2", "decay_scale", "epsilon", "bias_correction"),
    "Adam": ("lr", "weight_decay", "eps", "beta1", "one_minus_beta2", "epsilon", "bias_correction"),
    "SGD": ("lr", "weight_decay", "momentum", "dampening"),
    "Adagrad": ("lr", "weight_decay", "eps", "lr_decay", "initial_accumulator_value"),
    "RMSprop": ("lr", "weight_decay", "eps", "one_minus_alpha", "momentum"),
    "Adamax": ("lr", "weight_decay", "eps", "beta1", "one_minus_beta2"),
    "NAdam": ("lr", "weight_decay", "eps", "beta1", "one_minus_beta2", "momentum_decay"),
    "RAdam": ("lr", "weight_decay", "eps", "beta1", "one_minus_beta2"),
    "Adadelta": ("lr", "weight_decay", "eps", "one_minus_rho"),
    "Rprop": ("lr", "eta_minus", "eta_plus", "step_size_min", "step_size_max"),
})


def perturbed_group(group: dict, knob: str, delta: float, step: int) -> dict:
    """The values of ``group`` that the perturbed subject steps with at 1-based ``step``."""
    if knob not in _PERTURB:
        raise ValueError(f"knob {knob!r}: use one of {', '.join(_PERTURB)}")
    return _PERTURB[knob](group, delta, step)


def _perturbed(base: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    knobs = KNOBS[base.__name__]

    class Perturbed(base):
        __doc__ = f"{base.__name__} with ``knob`` perturbed by the relative ``delta`` (see the module docstring)."

        def __init__(self, params, *args, knob: str = "lr", delta: float = 0.0, **kwargs) -> None:
            if knob not in knobs:
                raise ValueError(f"knob {knob!r} cannot perturb {base.__name__}: use one of {', '.join(knobs)}")
            super().__init__(params, *args, **kwargs)
            self.knob, self.delta = knob, float(delta)
            if knob == "initial_accumulator_value" and self.delta:
                for group in self.param_groups:
                    for p in group["params"]:
                        self.state[p]["sum"].mul_(1 + self.delta)

        @torch.no_grad()
        def step(self, closure=None):
            with contextlib.ExitStack() as restore:
                for group in self.param_groups:
                    params = [p for p in group["params"] if p.grad is not None]
                    state = self.state[params[0]] if params else {}
                    step = 1 + int(state["step"]) if "step" in state else 1
                    changes = perturbed_group(group, self.knob, self.delta, step)
                    saved = {k: group[k] for k in changes}
                    group.update(changes)
                    restore.callback(group.update, saved)
                    if self.knob == "bias_correction" and self.delta:
                        for p in params:
                            if self.state[p]:
                                # torch adds 1 to the count, then corrects with it; the true count comes back after
                                true = self.state[p]["step"].clone()
                                self.state[p]["step"].fill_(float(true + 1) * (1 + self.delta) - 1)
                                restore.callback(self.state[p]["step"].copy_, true + 1)
                return super().step(closure)

    # the certifier reads which hyperparameters a plugin takes from its signature: torch's, and the two options
    signature = inspect.signature(base)
    Perturbed.__signature__ = signature.replace(parameters=[
        *signature.parameters.values(),
        inspect.Parameter("knob", inspect.Parameter.KEYWORD_ONLY, default="lr", annotation=str),
        inspect.Parameter("delta", inspect.Parameter.KEYWORD_ONLY, default=0.0, annotation=float),
    ])
    Perturbed.knobs = knobs
    Perturbed.__name__ = Perturbed.__qualname__ = f"Perturbed{base.__name__}"
    return Perturbed


AdamW = _perturbed(torch.optim.AdamW)
Adam = _perturbed(torch.optim.Adam)
SGD = _perturbed(torch.optim.SGD)
Adagrad = _perturbed(torch.optim.Adagrad)
RMSprop = _perturbed(torch.optim.RMSprop)
Adamax = _perturbed(torch.optim.Adamax)
NAdam = _perturbed(torch.optim.NAdam)
RAdam = _perturbed(torch.optim.RAdam)
Adadelta = _perturbed(torch.optim.Adadelta)
Rprop = _perturbed(torch.optim.Rprop)
