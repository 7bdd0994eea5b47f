"""optspec's executable specification of optimizer update rules.

Every rule is a pair of pure functions over the Array API standard:
``init(xp, param) -> State`` and ``step(xp, param, grad, state, *, lr, **hyper)
-> (param, State)``.  :func:`run` drives a whole trajectory.
"""

from optspec.spec import quantized
from optspec.spec._knobs import Knobs
from optspec.spec.adadelta import AdadeltaConvention
from optspec.spec.adagrad import AdagradConvention
from optspec.spec.adamax import AdamaxConvention
from optspec.spec.conventions import KNOBS, PRESETS, Convention, resolve
from optspec.spec.lion import LionConvention
from optspec.spec.nadam import NAdamConvention
from optspec.spec.radam import RAdamConvention
from optspec.spec.rmsprop import RMSpropConvention
from optspec.spec.rprop import RpropConvention
from optspec.spec.rules import RULES, Rule, SignArgument, get_rule, preset_names
from optspec.spec.run import learning_rates, run
from optspec.spec.sgd import SGDConvention
from optspec.spec.storage import StateStorage

#: Bumped whenever a change to the spec changes a number it produces.
SPEC_VERSION = "1.0.0"

__all__ = [
    "KNOBS",
    "PRESETS",
    "RULES",
    "SPEC_VERSION",
    "AdadeltaConvention",
    "AdagradConvention",
    "AdamaxConvention",
    "Convention",
    "Knobs",
    "LionConvention",
    "NAdamConvention",
    "RAdamConvention",
    "RMSpropConvention",
    "RpropConvention",
    "Rule",
    "SGDConvention",
    "SignArgument",
    "StateStorage",
    "get_rule",
    "learning_rates",
    "preset_names",
    "quantized",
    "resolve",
    "run",
]
