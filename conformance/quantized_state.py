r"""The check of a state held in a blockwise quantized format (:mod:`optspec.spec.quantized`), one step at a time.

A free-running reference cannot follow a quantized kernel: where the value it
quantizes lies within rounding of the boundary between two codes, a correct
kernel may store either, and the trajectories part by a whole code from
there on.  So a state declared quantized is checked from what the subject
held (:attr:`~optspec.adapters.driver.Trajectory.quantized`): each step of
the reference starts from the subject's dequantized state
(:func:`held_states`, the one-step and trajectory checks then bound the
parameters as for a float state), and the state the subject stored after the
step is held to the format (:func:`check_stored`):

- its codebook is the format's (to two float32 ulps: bitsandbytes builds its
  map with ``torch.linspace``) and its block is the format's;
- each block's scale is :math:`\max(\max_i |e_i|, \mathrm{floor}) / \max_c |q_c|`
  of the expected new state :math:`e`, within the rounding of its largest
  element, :math:`\varepsilon_i = 8u\,(|s_i| + |e_i|)`, the float32 rounding
  of computing :math:`e_i` from the held state :math:`s` (:math:`u = 2^{-24}`;
  each field of the rules is a sum of at most three rounded products of
  :math:`s_i` and the gradient, each bounded by :math:`|s_i| + |e_i|`), plus
  two roundings of its own;
- each code is one the scaled value :math:`e_i / s_k` rounds to, give or take
  :math:`\delta_i = \varepsilon_i / s_k + 4u\,(1 + |e_i / s_k|)`: the nearest
  code to a value in :math:`[e_i/s_k - \delta_i,\ e_i/s_k + \delta_i]`.  A
  code beyond that is not a rounding choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from optspec import spec
from optspec.adapters.driver import QuantizedState, Trajectory

#: float32's unit roundoff, the precision quantizing kernels update their state in.
U32 = 2.0**-24


def formats_for(storage: Mapping[str, str], rule: str, size: int) -> dict[str, tuple[int, spec.quantized.BlockwiseFormat]]:
    """The fields of ``storage`` held quantized in a tensor of ``size`` elements: field -> (its position in
    the rule's state, its format)."""
    fields = spec.get_rule(rule).state_fields
    return {field: (fields.index(field), fmt) for field, fmt in spec.StateStorage(storage).quantized().items()
            if field in fields and fmt.applies_to(size)}


def float_storage(storage: Mapping[str, str], size: int) -> dict[str, str]:
    """``storage`` as a tensor of ``size`` elements holds it between steps, where not read from the subject:
    a quantized field of a tensor below its format's size in float32, one above it left out."""
    out = {}
    for field, name in spec.StateStorage(storage).state_fields().items():
        fmt = spec.quantized.FORMATS.get(name)
        if fmt is None:
            out[field] = name
        elif not fmt.applies_to(size):
            out[field] = "float32"
    return out


def unread(got: Trajectory, index: int, formats: Mapping[str, tuple[int, spec.quantized.BlockwiseFormat]]
           ) -> str | None:
    """Why the quantized state of tensor ``index`` cannot be checked (the driver read no codes of it), or None."""
    if not formats or (got.quantized and all(step[index] for step in got.quantized)):
        return None
    names = ", ".join(f"{field} in {fmt.name}" for field, (_, fmt) in formats.items())
    return (f"its state is declared quantized ({names}) but its driver reads no quantized codes from it at every "
            "step (bitsandbytes' layout, torchao's state subclasses and FlashAdamW's are read): declare only what it "
            "shows")


def present(got: Trajectory, index: int, formats: Mapping[str, tuple[int, spec.quantized.BlockwiseFormat]]
            ) -> dict[str, tuple[int, spec.quantized.BlockwiseFormat]]:
    """The fields of ``formats`` the subject holds in tensor ``index``: a kernel keeps no AMSGrad maximum
    without AMSGrad, so a declared one it does not hold is not checked."""
    held = min((len(step[index]) for step in got.quantized), default=0)
    return {field: (position, fmt) for field, (position, fmt) in formats.items() if position < held}


def malformed(got: Trajectory, index: int, shape: tuple[int, ...],
              formats: Mapping[str, tuple[int, spec.quantized.BlockwiseFormat]]) -> tuple[int, str] | None:
    """The first step at which a quantized state of tensor ``index`` (of ``shape``) cannot be decoded, and
    why: codes of another shape or beyond its codebook, a block of no elements, a scale count that is not the
    blocks', a scale that is not finite or is negative.  Checked before anything is dequantized."""
    size = int(np.prod(shape))
    for t, step in enumerate(got.quantized):
        for field, (position, fmt) in formats.items():
            state, at = step[index][position], f"{field} of tensor {index} at step {t + 1}"
            if state.codes.shape != tuple(shape):
                return t + 1, f"{at}: codes of shape {state.codes.shape} for a tensor of shape {tuple(shape)}"
            if state.block_size < 1:
                return t + 1, f"{at}: blocks of {state.block_size} elements"
            if state.codes.size and (state.codes.min() < 0 or state.codes.max() >= state.codebook.size):
                return t + 1, (f"{at}: code {int(state.codes.max())} of a codebook of {state.codebook.size} "
                               "values")
            if state.scales.size != -(-size // state.block_size):
                return t + 1, (f"{at}: {state.scales.size} block scales for {-(-size // state.block_size)} "
                               f"blocks of {state.block_size}")
            if not (np.isfinite(state.scales).all() and (state.scales >= 0).all()):
                bad = float(state.scales[~(np.isfinite(state.scales) & (state.scales >= 0))][0])
                beyond = (f": {fmt.name} holds its scales in {fmt.scale_dtype}, and the block's largest |value| "
                          f"is beyond its range" if bad == np.inf and fmt.scale_dtype != "float32" else "")
                return t + 1, f"{at}: a block scale of {bad!r}{beyond}"
    return None


def held_states(got: Trajectory, index: int, formats: Mapping[str, tuple[int, spec.quantized.BlockwiseFormat]]
                ) -> list[dict[str, np.ndarray]]:
    """For each step, the quantized fields tensor ``index`` held after it, dequantized."""
    return [{field: step[index][position].dequantized() for field, (position, _) in formats.items()}
            for step in got.quantized]


def check_stored(held: Sequence[Sequence[QuantizedState]], index: int, field: str, position: int,
                 fmt: spec.quantized.BlockwiseFormat, previous: Sequence[np.ndarray],
                 expected: Sequence[np.ndarray]) -> tuple[int, str] | None:
    """The first step at which tensor ``index``'s ``field`` is not ``expected`` stored in ``fmt``, and why.

    ``held[t][index][position]`` is what the subject stored after step ``t + 1``,
    ``previous[t]`` the state that step started from (the subject's, dequantized; the spec's initial one at
    the first), and ``expected[t]`` the spec's new state from there, in float64.
    """
    largest_code = float(np.abs(fmt.codes()).max())
    for t, (stored_after, before, value) in enumerate(zip(held, previous, expected)):
        state = stored_after[index][position]
        step, what = t + 1, f"{field} of tensor {index}"
        if (why := _layout(state, fmt)) is not None:
            return step, f"{what} at step {step}: {why}"
        flat, before_flat = np.asarray(value, np.float64).reshape(-1), np.asarray(before, np.float64).reshape(-1)
        rounding = 8 * U32 * (np.abs(before_flat) + np.abs(flat))
        due = fmt.scales(flat)
        allowed = (fmt.block_max(rounding) + 2 * U32 * due * largest_code) / largest_code
        scales = state.scales.astype(np.float64).reshape(-1)
        if scales.size != due.size:
            return step, f"{what} at step {step}: {scales.size} block scales for {due.size} blocks"
        held_root, due_root, allowed_root = _as_held(scales, due, allowed, fmt)
        if (np.abs(held_root - due_root) > allowed_root).any():
            if _unchanged(held, t, index, position):
                return step, (f"{what} at step {step}: it stores the state this step started from: the state "
                              "was quantized before the update, not after")
            k = int(np.argmax(np.abs(held_root - due_root) - allowed_root))
            return step, (f"{what} at step {step}: block {k}'s scale is {float(scales[k])!r} where its new state "
                          f"gives {float(due[k])!r} (allowed {allowed[k]:.3g}): the scale is not the absolute "
                          "maximum of the state it scales")
        scale = np.repeat(scales, fmt.block_size)[:flat.size]
        live = scale > 0
        scaled = np.divide(flat, scale, out=np.zeros_like(flat), where=live)
        # the codes were computed with the float32 scale, before it was rounded to the dtype it is held in
        moved = np.repeat(fmt.scale_root * np.divide(allowed_root, due_root, out=np.zeros_like(due_root),
                                                      where=due_root > 0), fmt.block_size)[:flat.size]
        slack = (np.divide(rounding, scale, out=np.zeros_like(flat), where=live)
                 + (4 * U32 + moved) * (1 + np.abs(scaled)))
        codebook = state.codebook.astype(np.float64)
        midpoints = fmt.decision_boundaries()
        low = np.searchsorted(midpoints, scaled - slack, side="left")
        high = np.searchsorted(midpoints, scaled + slack, side="right")
        codes = state.codes.reshape(-1).astype(np.int64)
        wrong = live & ((codes < low) | (codes > high))
        if wrong.any():
            i = int(np.argmax(wrong))
            nearest = int(np.searchsorted(midpoints, scaled[i], side="left"))
            element = tuple(int(j) for j in np.unravel_index(i, np.shape(value)))
            boundary = midpoints[nearest if codes[i] > nearest else nearest - 1]
            return step, (f"{what} element {element} at step {step}: stored code {codes[i]} "
                          f"({codebook[codes[i]]:.6g}), {abs(int(codes[i]) - nearest)} from code {nearest} "
                          f"({codebook[nearest]:.6g}), the nearest to its new value {scaled[i]:.6g} of the "
                          f"block's scale, which lies {abs(scaled[i] - boundary):.3g} inside that code's interval, "
                          f"beyond its rounding ({slack[i]:.3g}); {int(wrong.sum())} of {flat.size} elements so at "
                          "this step")
    return None


def _as_held(scales: np.ndarray, due: np.ndarray, allowed: np.ndarray, fmt: spec.quantized.BlockwiseFormat
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scales as the kernel holds them (their :attr:`~spec.quantized.BlockwiseFormat.scale_root`-th
    root), the due ones so, and what each may differ by: ``allowed`` carried into the root, its float32
    rounding, and half a unit in the last place of the dtype it is held in."""
    root = fmt.scale_root
    held_root, due_root = scales ** (1 / root), due ** (1 / root)
    carried = allowed / (root * np.maximum(due_root, np.finfo(np.float64).tiny) ** (root - 1))
    stored = 0.0 if fmt.scale_dtype == "float32" else np.spacing(
        np.abs(due_root).astype(fmt.scale_dtype)).astype(np.float64) / 2
    return held_root, due_root, carried + 2 * U32 * due_root + stored


def _unchanged(held: Sequence[Sequence[QuantizedState]], t: int, index: int, position: int) -> bool:
    """Whether the state stored after step ``t + 1`` is the one that step started from (all zero at the
    first)."""
    now = held[t][index][position]
    if t == 0:
        return not now.scales.any()
    before = held[t - 1][index][position]
    return np.array_equal(now.scales, before.scales) and np.array_equal(now.codes, before.codes)


def _layout(state: QuantizedState, fmt: spec.quantized.BlockwiseFormat) -> str | None:
    """Why ``state``'s codebook or block is not ``fmt``'s, or None."""
    if state.block_size != fmt.block_size:
        return f"blocks of {state.block_size} elements where {fmt.name} has {fmt.block_size}"
    if not _same_codebook(state.codebook, fmt.codes()):
        like = [name for name, other in spec.quantized.FORMATS.items()
                if name != fmt.name and _same_codebook(state.codebook, other.codes())]
        return f"its codebook is not {fmt.name}'s" + (f": it is {like[0]}'s" if like else "")
    return None


def _same_codebook(held: np.ndarray, codes: np.ndarray) -> bool:
    held = np.asarray(held, np.float64)
    return held.shape == codes.shape and bool((np.abs(held - codes) <= 2 * 2.0**-23 * np.abs(codes)).all())
