r"""State formats: the dtype each state tensor of a rule is stored in between steps.

A kernel may keep its optimizer state in fewer bits than its parameters:
optax's ``scale_by_adam(mu_dtype=jnp.bfloat16)`` (``optax/_src/transform.py``,
``mu = otu.tree_cast(mu, mu_dtype)`` after the update is computed) keeps the
first moment in bfloat16 beside float32 parameters; a kernel may keep
:math:`v` in bfloat16 to halve its memory.  A :class:`StateStorage` names,
per state field of a rule (:attr:`optspec.spec.Rule.state_fields`: ``exp_avg``,
``exp_avg_sq``, ``max_exp_avg_sq`` for the Adam family), the float dtype it is
stored in.  The order is the one optax's is: each step computes from the
stored state in full precision, and the new state is then stored,

.. math::

    m_t = \beta_1\,\mathrm{fl}_s(m_{t-1}) + (1-\beta_1)\,g_t, \quad
    \theta_t = \theta_{t-1} - \mathrm{lr}_t\,\hat m_t/(\ldots), \quad
    \text{stored: } \mathrm{fl}_s(m_t)

where :math:`\mathrm{fl}_s` rounds to nearest-even in the field's dtype, or,
for a blockwise 8-bit format of :data:`optspec.spec.quantized.FORMATS`,
quantizes and dequantizes it (:math:`\mathrm{fl}_Q`, in the same order:
dequantize, update, quantize).  A field not named is stored in the
arithmetic's own precision.

The parameters themselves are stored too, rounded to nearest by default;
``params`` names how they are rounded where a kernel rounds them otherwise
(:data:`PARAM_ROUNDINGS`: ``stochastic``, checked in bfloat16 and float16 by
:mod:`optspec.conformance.rounding`; ``kahan``, kept with a compensation
buffer, whose sum with the parameters :mod:`optspec.conformance.kahan` checks).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from optspec.spec import quantized

#: The float dtypes a state field may be stored in.
FLOAT_DTYPES = ("float64", "float32", "bfloat16", "float16")
#: The name that stands for the parameters, and the roundings they may be stored with.
PARAMS = "params"
PARAM_ROUNDINGS = ("stochastic", "kahan")


@dataclasses.dataclass(frozen=True)
class StateStorage:
    """Each named state field with the float dtype or quantized format it is stored in between steps.

    Attributes:
      dtypes: state field -> dtype name (of :data:`FLOAT_DTYPES`) or format name (of
        :data:`optspec.spec.quantized.FORMATS`).
    """

    dtypes: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        for field, dtype in self.dtypes.items():
            if field == PARAMS and dtype not in PARAM_ROUNDINGS:
                raise ValueError(f"{PARAMS} rounded {dtype!r}: use one of {', '.join(PARAM_ROUNDINGS)}")
            if field != PARAMS and dtype not in FLOAT_DTYPES and dtype not in quantized.FORMATS:
                raise ValueError(f"state field {field!r} stored in {dtype!r}: use one of "
                                 f"{', '.join((*FLOAT_DTYPES, *quantized.FORMATS))}")
        object.__setattr__(self, "dtypes", MappingProxyType(dict(self.dtypes)))

    def __bool__(self) -> bool:
        return bool(self.dtypes)

    def checked(self, rule: str, fields: tuple[str, ...]) -> StateStorage:
        """Itself, after checking that every field it names is one of ``fields``, ``rule``'s state (``ValueError``)."""
        for field in self.dtypes:
            if field not in fields and field != PARAMS:
                raise ValueError(f"{field!r} is not a state field of rule {rule!r}: use one of "
                                 f"{', '.join((*fields, PARAMS))}")
        return self

    def merged(self, other: Mapping[str, str]) -> StateStorage:
        """This storage with ``other``'s fields in their dtypes."""
        return StateStorage({**self.dtypes, **other})

    def state_fields(self) -> dict[str, str]:
        """The state fields it names, without the parameters' rounding."""
        return {field: dtype for field, dtype in self.dtypes.items() if field != PARAMS}

    def param_rounding(self) -> str:
        """How the parameters are rounded: ``nearest`` unless named."""
        return self.dtypes.get(PARAMS, "nearest")

    def quantized(self) -> dict[str, quantized.BlockwiseFormat]:
        """The fields stored in a blockwise quantized format, with it."""
        return {field: quantized.FORMATS[name] for field, name in self.dtypes.items() if name in quantized.FORMATS}

    def describe(self) -> str:
        """``exp_avg in bfloat16, exp_avg_sq in float16``, ``params rounded stochastically``, ``params kept with
        a Kahan compensation``."""
        words = {"stochastic": "params rounded stochastically", "kahan": "params kept with a Kahan compensation"}
        return ", ".join(words[dtype] if field == PARAMS else f"{field} in {dtype}"
                         for field, dtype in self.dtypes.items())
