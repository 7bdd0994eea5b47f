"""AdamW conventions: orthogonal knobs and the named presets built from them.

Every framework ships an optimizer called "AdamW", and they differ in five
independent ways.  A :class:`Convention` names one choice for each; a preset is
a plain value of it.  The exact maths of each knob is in
:func:`spec.adam.adamw_step`; the sources behind each preset are in its entry of
:data:`PRESETS` and in ``docs/DEVIATIONS.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from optspec.spec._knobs import Knobs

DECAY_SCALES = ("lr", "schedule", "none")
DECAY_POINTS = ("before", "after")
EPSILONS = ("corrected", "hat", "inside")
AMSGRADS = ("off", "raw", "corrected")


@dataclasses.dataclass(frozen=True)
class Convention(Knobs):
    r"""How an AdamW step is computed.

    Attributes:
      decay_scale: what multiplies the decay coefficient :math:`\lambda`:
        ``"lr"`` for :math:`\mathrm{lr}_t\lambda`, ``"schedule"`` for
        :math:`\eta_t\lambda` with :math:`\eta_t=\mathrm{lr}_t/\mathrm{lr}_0`,
        ``"none"`` for :math:`\lambda` alone.
      decay_point: ``"before"`` decays :math:`\theta_{t-1}`; ``"after"`` decays
        the parameter already moved by the Adam step.
      bias_correction: whether :math:`m` and :math:`v` are divided by
        :math:`1-\beta_1^t` and :math:`1-\beta_2^t`.
      epsilon: ``"corrected"`` is :math:`\hat m/(\sqrt{\hat v}+\epsilon)`;
        ``"hat"`` is :math:`\alpha_t m/(\sqrt{v}+\epsilon)` with
        :math:`\alpha_t=\mathrm{lr}\sqrt{bc_2}/bc_1`; ``"inside"`` is
        :math:`\hat m/\sqrt{\hat v+\epsilon}`.
      amsgrad: the AMSGrad variant used when ``amsgrad=True``: ``"raw"`` keeps
        :math:`\max(v)` and then corrects it, ``"corrected"`` keeps
        :math:`\max(\hat v)`, ``"off"`` means the convention has no AMSGrad.
    """

    WILDCARDS: ClassVar[Mapping[str, str]] = MappingProxyType({"amsgrad": "off"})
    KNOB_VALUES: ClassVar[Mapping[str, tuple]] = MappingProxyType({
        "decay_scale": DECAY_SCALES,
        "decay_point": DECAY_POINTS,
        "bias_correction": (True, False),
        "epsilon": EPSILONS,
        "amsgrad": AMSGRADS,
    })

    decay_scale: str = "lr"
    decay_point: str = "before"
    bias_correction: bool = True
    epsilon: str = "corrected"
    amsgrad: str = "raw"

    def canonical(self) -> Convention:
        r"""Without bias correction :math:`\alpha_t=\mathrm{lr}`, so ``epsilon="hat"`` computes what
        ``"corrected"`` does (:math:`\mathrm{lr}\,m/(\sqrt{v}+\epsilon)`): it is named ``"corrected"``."""
        if not self.bias_correction and self.epsilon == "hat":
            return self.replace(epsilon="corrected")
        return self


#: Each knob of :class:`Convention` and the values it may take.
KNOB_VALUES: Mapping[str, tuple] = Convention.KNOB_VALUES
KNOBS: tuple[str, ...] = tuple(KNOB_VALUES)

#: torch ``AdamW`` / ``Adam(decoupled_weight_decay=True)``,
#: ``torch/optim/adam.py`` ``_single_tensor_adam``: ``param.mul_(1 - lr*wd)``,
#: then ``param.addcdiv_(m, sqrt(v)/sqrt(bc2) + eps, value=-lr/bc1)``;
#: AMSGrad keeps ``max(v_max, v)`` of the raw v.
TORCH = Convention("lr", "before", True, "corrected", "raw")
#: optax ``adamw`` (``optax/_src/alias.py``): ``chain(scale_by_adam,
#: add_decayed_weights, scale_by_learning_rate)``; ``optax.amsgrad`` keeps the
#: max of the bias-corrected v (``bias_correction_nu=True``).
OPTAX = Convention("lr", "before", True, "corrected", "corrected")
#: Keras 3 ``AdamW`` (``keras/src/optimizers/adam.py`` ``update_step`` and
#: ``base_optimizer.py`` ``_apply_weight_decay``): ε-hat with
#: ``alpha = lr*sqrt(bc2)/bc1``; AMSGrad on raw v.
KERAS = Convention("lr", "before", True, "hat", "raw")
#: Loshchilov & Hutter, arXiv 1711.05101, Algorithm 2 line 12:
#: :math:`\theta_t=\theta_{t-1}-\eta_t(\alpha\hat m/(\sqrt{\hat v}+\epsilon)+\lambda\theta_{t-1})`.
PAPER = Convention("schedule", "before", True, "corrected", "off")
#: google-research/bert ``optimization.py`` ``AdamWeightDecayOptimizer``: no
#: bias correction, ``u = m/(sqrt(v)+eps) + wd*theta``; ``theta -= lr*u``.
#: Without bias correction the ``corrected`` and ``hat`` placements coincide.
BERT = Convention("lr", "before", False, "corrected", "off")
#: HF transformers legacy ``AdamW`` (<= 4.49, ``optimization.py``): ε-hat, then
#: ``p -= lr*wd*p`` on the already-updated parameter.
HF_LEGACY = Convention("lr", "after", True, "hat", "off")
#: TF-Addons ``AdamW`` (v0.23, ``weight_decay_optimizers.py``): ``var -= wd*var``
#: not multiplied by lr, before the legacy Keras Adam step (ε-hat).
TFA = Convention("none", "before", True, "hat", "raw")

PRESETS: Mapping[str, Convention] = MappingProxyType(
    {
        "torch": TORCH,
        "optax": OPTAX,
        "keras": KERAS,
        "paper": PAPER,
        "bert": BERT,
        "hf_legacy": HF_LEGACY,
        "tfa": TFA,
    }
)


def resolve(convention: str | Convention) -> Convention:
    """Returns the :class:`Convention` named by a preset name, or itself."""
    if isinstance(convention, Convention):
        return convention
    try:
        return PRESETS[convention]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown convention {convention!r}: use one of "
            f"{', '.join(PRESETS)} or a spec.Convention"
        ) from None

