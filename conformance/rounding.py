r"""The check of parameters rounded stochastically into a low-precision dtype: what stochastic rounding promises.

A kernel that keeps bfloat16 parameters may round each new value :math:`x`
(computed in float32) stochastically: to the neighbouring representable
value above, :math:`b`, with probability :math:`p = (x-a)/(b-a)`, else to the
one below, :math:`a` (torchao's ``_fp32_to_bf16_sr``,
``torchao/optim/quant_utils.py``: up where 16 random bits fall below the 16
bits bfloat16 drops).  Declared with ``--state-dtype params=stochastic``, each
step of a bfloat16 or float16 tensor is checked from the subject's own
previous parameters (the re-synced one-step reference :math:`x`, in float64):

- **neighbours**: each new value is :math:`a` or :math:`b`, the representable
  values around :math:`[x-\sigma, x+\sigma]`, where :math:`\sigma =
  8u_{32}(|\theta_{t-1}| + t\,M_t)` bounds what float32 arithmetic and the
  float32 state's history move the kernel's :math:`x` (:math:`M_t` the step's
  magnitude; plus :math:`2tu_sM_t` for a state declared in a dtype of unit
  roundoff :math:`u_s`, :func:`slack`);
- **unbiased**: over the elements whose :math:`[x-\sigma, x+\sigma]` lies
  inside one interval :math:`[a, b]`, rounded up (:math:`U = 1`) or down
  independently, :math:`D = \sum (U - p)` has mean within
  :math:`S = \sum \sigma/(b-a)` of 0 and variance :math:`V = \sum p(1-p)`.  In
  each half (:math:`p < 1/2` and :math:`p \ge 1/2`, so that rounding to
  nearest, whose errors cancel over the whole, is caught) the check asks
  :math:`|D| \le Z\sqrt{V} + S`, with :math:`Z = 5.3`: by the normal
  approximation a correct kernel fails one half with probability
  :math:`2\Phi(-5.3) \approx 1.2\times10^{-7}`, a case with
  :data:`MIN_ELEMENTS` or more such elements in a half at most
  :math:`2.3\times10^{-7}`.  Truncation (always :math:`a` for positive
  :math:`x`) or rounding to nearest moves :math:`D` by about a quarter of the
  elements.
"""

from __future__ import annotations

import numpy as np

from optspec.conformance import tolerance

#: The two-sided z-score each half of a case is allowed (see the module docstring).
Z = 5.3
#: A half of a case with fewer elements is not tested for bias (its normal approximation is poor).
MIN_ELEMENTS = 200
#: Stored mantissa bits and the exponent of the smallest normal, per dtype rounded into.
_FORMATS = {"bfloat16": (7, -126), "float16": (10, -14)}
U32 = 2.0**-24


def slack(previous: np.ndarray, magnitude: np.ndarray, step: np.ndarray, state_dtype: str | None) -> np.ndarray:
    r""":math:`\sigma = 8u_{32}(|\theta_{t-1}| + t M_t)`, plus :math:`2 t u_s M_t` where the state is declared
    stored in a dtype of unit roundoff :math:`u_s` (:mod:`optspec.spec.storage`: the subject's state then
    rounds its own way from the reference's, as the tolerance model's history term allows)."""
    held = 0.0 if state_dtype is None else 2 * step * tolerance.unit_roundoff(state_dtype) * magnitude
    return U32 * 8 * (np.abs(previous) + step * magnitude) + held


def applies_to(dtype: str) -> bool:
    """Whether parameters in ``dtype`` are rounded stochastically under the declaration (bfloat16, float16)."""
    return dtype in _FORMATS


def grid(x: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """The representable values of ``dtype`` at or below and at or above each of ``x`` (``a <= x <= b``,
    ``a == b`` where ``x`` is one)."""
    mantissa, min_exponent = _FORMATS[dtype]
    magnitude = np.abs(x)
    exponent = np.floor(np.log2(np.where(magnitude > 0, magnitude, 1.0)))
    ulp = 2.0 ** (np.maximum(exponent, min_exponent) - mantissa)
    below = np.floor(x / ulp) * ulp
    above = np.ceil(x / ulp) * ulp
    return below, above


def check_stochastic(expected: np.ndarray, got: np.ndarray, slack: np.ndarray, dtype: str,
                     name: str, tested: set[str] | None = None) -> tuple[int, str] | None:
    """The first step at which ``got`` (a ``(T, ...)`` trajectory of tensor ``name``) is not ``expected``
    rounded stochastically in ``dtype`` within ``slack``, or a half of the case whose rounding is biased,
    and why; None where it is.  ``tested``, if given, receives the halves of the interval (``below`` and
    ``at or above`` the midpoint) whose bias was tested: those with :data:`MIN_ELEMENTS` or more elements,
    where every value is a neighbour.  A kernel that rounds to nearest, or truncates, fails either."""
    low, _ = grid(expected - slack, dtype)
    _, high = grid(expected + slack, dtype)
    outside = (got < low) | (got > high)
    if outside.any():
        flat = outside.reshape(len(got), -1)
        step = int(np.argwhere(flat)[0][0])
        i = np.unravel_index(int(np.argmax(flat[step])), expected.shape[1:])
        at = (step, *i)
        return step + 1, (f"{name} element {tuple(int(j) for j in i)} at step {step + 1}: got {float(got[at])!r}, "
                          f"not a {dtype} neighbour of the exact value {float(expected[at])!r} (the neighbours: "
                          f"{float(low[at])!r} and {float(high[at])!r}): not a rounding of it")
    a, b = grid(expected, dtype)
    inside = (b > a) & (low == a) & (high == b)
    p = np.where(inside, (expected - a) / np.where(inside, b - a, 1.0), 0.0)
    up = (got == b) & inside
    for half, members in (("below", inside & (p < 0.5)), ("at or above", inside & (p >= 0.5))):
        count = int(members.sum())
        if count < MIN_ELEMENTS:
            continue
        if tested is not None:
            tested.add(half)
        drift = float((up[members] - p[members]).sum())
        spread = float(np.sqrt((p[members] * (1 - p[members])).sum()))
        systematic = float((slack[members] / (b - a)[members]).sum())
        if abs(drift) > Z * spread + systematic:
            return len(got), (f"{name}: its rounding to {dtype} is biased: of the {count} element-steps whose exact "
                              f"value lies {half} the midpoint of its two neighbours, {int(up[members].sum())} were "
                              f"rounded up where stochastic rounding rounds up {float(p[members].sum()):.1f} on "
                              f"average (a drift of {drift:.1f}, more than {Z:g} standard deviations, "
                              f"{Z * spread:.1f}, plus the float32 arithmetic's share, {systematic:.1f}); "
                              "rounding to nearest or truncation is not stochastic")
    return None
