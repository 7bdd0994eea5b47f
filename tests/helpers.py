"""Assertion helpers whose messages explain themselves."""

from __future__ import annotations

import numpy as np


def assert_trajectory_close(actual: np.ndarray, expected: np.ndarray, param0: np.ndarray,
                            *, rtol: float, what: str, atol: np.ndarray | float = 0.0) -> None:
    r"""Each step within ``rtol`` of the largest magnitude the element has had so far, plus ``atol``.

    The rounding error of :math:`\theta_t = \theta_{t-1} - u_t` is a few ulps of
    :math:`\max(|\theta_{t-1}|, |u_t|) \le |\theta_{t-1}| + |\theta_t|`, and it is
    carried forward (a ±1e26 step that cancels leaves a residue of ~1e10 when one
    side uses a fused multiply-add).  So the bound is ``rtol`` times the running
    maximum of :math:`|\theta_s|, s \le t` elementwise; NaNs must agree.
    """
    __tracebackhide__ = True
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    values = np.concatenate([np.asarray(param0, np.float64)[None], expected])
    history = np.abs(values)
    history[1:] = np.fmax(history[1:], 1e3 * np.abs(np.diff(values, axis=0)))
    with np.errstate(invalid="ignore"):
        # norm-wise floor: ill-conditioned updates (centered RMSprop's v - gbar**2) are
        # only accurate relative to the tensor's scale, not each element's
        bound = rtol * 2 * np.fmax(np.fmax.accumulate(history, axis=0)[1:], np.nanmax(history[0], initial=0.0))
    bound = bound + atol
    with np.errstate(invalid="ignore"):
        bad = ~((np.abs(actual - expected) <= bound) | (np.isnan(actual) & np.isnan(expected))
                | (actual == expected))
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: step {index[0] + 1}, element {index[1:]}: got {actual[index]!r}, "
            f"expected {expected[index]!r} (|diff| {abs(actual[index] - expected[index]):.3g} > "
            f"bound {bound[index]:.3g} = rtol {rtol:g} x step magnitude + atol)"
        )


def conforming_presets(lines: list[str]) -> dict[str, str]:
    """Subject -> preset of each ``CONFORMS: <subject> vs <preset> (...)`` line that ``certify`` printed."""
    return {line.split()[1]: line.split()[3] for line in lines if line.startswith("CONFORMS: ")}


def assert_builtins_conform(capsys, framework: str, own_presets: dict[str, str], *, examples: int,
                            dtype: str = "float32") -> None:
    """``optspec certify --framework F`` exits 0, every built-in conforms to exactly its preset in
    ``own_presets``, and each certificate is in ``dtype`` (the framework's default)."""
    __tracebackhide__ = True
    from optspec.conformance.cli import main

    code = main(["certify", "--framework", framework, "--examples", str(examples)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and conforming_presets(lines) == own_presets, lines
    assert all(f", {dtype}, " in line for line in lines if line.startswith("CONFORMS: ")), lines


def builtin_subject(framework: str, name: str):
    """The built-in subject of ``framework`` called ``name``."""
    from optspec import adapters

    return next(s for s in adapters.subjects(framework) if s.name == name)


def told_its_rule(framework: str, impl: str, rule: str, preset: str, dtype: str, capsys) -> None:
    """``impl`` certified as AdamW is told ``rule`` with ``preset``, and the command it advises conforms."""
    from optspec.conformance.cli import main

    __tracebackhide__ = True
    argv = ["certify", "--framework", framework, "--impl", impl, "--dtype", dtype, "--examples", "5"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    advised = f"certify it with --rule {rule} --convention {preset}"
    assert f"another rule: its steps follow the spec's rule {rule} with preset {preset}, not adamw" in out, out
    assert advised in out, out
    assert main([*argv, *advised.split()[3:]]) == 0, capsys.readouterr().out
