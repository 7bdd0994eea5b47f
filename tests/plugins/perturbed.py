r"""torch's own AdamW and Adam with one hyperparameter, or one convention knob, perturbed by a relative δ.

The subjects of the detection-power measurement (``tools/detection.py``) and
of the tests that hold the certifier to its published floor.  Each steps
``torch.optim.AdamW`` (or ``Adam``) unchanged but for one value it is handed
at every step, restored afterwards so the certifier's schedule and state
stay its own:

=====================  ===========================================================
``knob``               the step it takes
=====================  ===========================================================
``lr``                 :math:`\mathrm{lr}_t(1+\delta)`, in the Adam step and the decay
``weight_decay``       :math:`\lambda(1+\delta)`
``eps``                :math:`\epsilon(1+\delta)`
``beta1``              :math:`\beta_1(1+\delta)`
``one_minus_beta2``    :math:`\beta_2' = 1-(1-\beta_2)(1+\delta)`: the averaging horizon
``decay_scale``        decay :math:`\lambda\,\mathrm{lr}_t^{1+\delta}` (AdamW): between ``lr`` and ``none``
``epsilon``            :math:`\epsilon\,(1-\beta_2^t)^{-\delta/2}`: from ``corrected`` (δ=0) to ``hat`` (δ=1)
``bias_correction``    the corrections at step :math:`t(1+\delta)` from the second step: :math:`1-\beta^{t(1+\delta)}`
=====================  ===========================================================

``--impl 'tests.plugins.perturbed:AdamW[knob="eps",delta=1e-3]'``.
"""

from __future__ import annotations

import contextlib

import torch

#: Every perturbation a subject here can carry.
KNOBS = ("lr", "weight_decay", "eps", "beta1", "one_minus_beta2", "decay_scale", "epsilon", "bias_correction")

#: The knobs that only an AdamW has (decoupled decay).
DECOUPLED_ONLY = ("decay_scale",)


def perturbed_group(group: dict, knob: str, delta: float, step: int) -> dict:
    """The values of ``group`` that the perturbed subject steps with at 1-based ``step``."""
    beta1, beta2 = group["betas"]
    lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
    if knob == "lr":
        return {"lr": lr * (1 + delta)}
    if knob == "weight_decay":
        return {"weight_decay": wd * (1 + delta)}
    if knob == "eps":
        return {"eps": eps * (1 + delta)}
    if knob == "beta1":
        return {"betas": (beta1 * (1 + delta), beta2)}
    if knob == "one_minus_beta2":
        return {"betas": (beta1, 1 - (1 - beta2) * (1 + delta))}
    if knob == "decay_scale":
        return {"weight_decay": wd * lr**delta if lr > 0 else wd}
    if knob == "epsilon":
        return {"eps": eps * (1 - beta2**step) ** (-delta / 2)}
    if knob == "bias_correction":
        return {}
    raise ValueError(f"knob {knob!r}: use one of {', '.join(KNOBS)}")


def _perturbed(base: type[torch.optim.Optimizer], default_weight_decay: float) -> type[torch.optim.Optimizer]:
    class Perturbed(base):
        __doc__ = f"{base.__name__} with ``knob`` perturbed by the relative ``delta`` (see the module docstring)."

        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=default_weight_decay,
                     amsgrad=False, maximize=False, *, knob: str = "lr", delta: float = 0.0) -> None:
            if knob not in KNOBS or (knob in DECOUPLED_ONLY and base is torch.optim.Adam):
                raise ValueError(f"knob {knob!r} cannot perturb {base.__name__}: use one of {', '.join(KNOBS)}")
            super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                             maximize=maximize)
            self.knob, self.delta = knob, float(delta)

        @torch.no_grad()
        def step(self, closure=None):
            with contextlib.ExitStack() as restore:
                for group in self.param_groups:
                    params = [p for p in group["params"] if p.grad is not None]
                    step = 1 + int(self.state[params[0]]["step"]) if params and self.state[params[0]] else 1
                    saved = {k: group[k] for k in ("lr", "weight_decay", "eps", "betas")}
                    group.update(perturbed_group(group, self.knob, self.delta, step))
                    restore.callback(group.update, saved)
                    if self.knob == "bias_correction" and self.delta:
                        for p in params:
                            if self.state[p]:
                                # torch adds 1 to the count, then corrects with it; the true count comes back after
                                true = self.state[p]["step"].clone()
                                self.state[p]["step"].fill_(float(true + 1) * (1 + self.delta) - 1)
                                restore.callback(self.state[p]["step"].copy_, true + 1)
                return super().step(closure)

    Perturbed.__name__ = Perturbed.__qualname__ = f"Perturbed{base.__name__}"
    return Perturbed


AdamW = _perturbed(torch.optim.AdamW, 1e-2)
Adam = _perturbed(torch.optim.Adam, 0.0)
