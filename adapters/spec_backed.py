"""What the spec-backed optimizers share: each framework's ``optimizer`` module runs the compiled spec.

- :class:`optspec.adapters.torch.optimizer.AdamW`: a ``torch.optim.Optimizer``;
- :func:`optspec.adapters.jax.optimizer.adamw`: an optax ``GradientTransformation``;
- :class:`optspec.adapters.tensorflow.optimizer.AdamW`: a Keras 3 optimizer (TensorFlow backend).

Each takes its framework's argument names plus ``convention`` (a preset name
or a :class:`spec.Convention`) and ``rule`` (``"adamw"``, or ``"adam"`` for an
L2 penalty).  Defaults are the spec's (torch's), whatever the framework's own
are.  Hyperparameters are checked by the spec, so bad input gets the spec's
messages.
"""

from __future__ import annotations

from typing import Any

from optspec import spec


def checked_hyperparameters(rule: str, convention: Any, lr: Any, **given: Any) -> dict[str, Any]:
    """``given`` checked by the spec's rule (with ``lr`` when it is a number), defaults filled in.

    Array-valued hyperparameters (one value per element, as the certifier's
    batching passes them) are left to the caller: a traced array cannot be checked.
    """
    spec_rule = spec.get_rule(rule)
    if not spec_rule.compiles:
        raise ValueError(f"rule={rule!r} is not an Adam-family rule: use 'adamw' or 'adam'")
    numbers = {k: v for k, v in given.items() if not _is_array(v)}
    hyper = spec_rule.hyperparameters(convention, **numbers)
    if isinstance(lr, (int, float)):
        spec_rule.check(lr=lr, **hyper)
    return {**hyper, **given}


def _is_array(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return any(_is_array(v) for v in value)
    return hasattr(value, "shape") and hasattr(value, "dtype")
