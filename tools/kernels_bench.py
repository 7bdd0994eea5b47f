"""``python -m tools.kernels_bench``: the compiled spec against each framework's fastest AdamW.

One AdamW step on N parameters (N = 1e5, 1e6, 1e7, and 1e8 where a GPU is
present) in float32 and bfloat16, timed side by side in one run, taking
turns each round in an order that reverses every round, median of
``--repeats`` (at least 20) after warm-up:

- ``spec[torch.compile]`` against ``torch.optim.AdamW(fused=True)``;
- ``spec[jax.jit]`` against ``optax.adamw`` jitted with donation;
- ``spec[tf.function(jit_compile)]`` against Keras ``AdamW`` applied inside
  ``tf.function(jit_compile=True)`` (float32 only);
- ``spec[numpy plan]`` (:mod:`optspec.adapters.numpy.plan`) against the eager spec
  on NumPy, which has no AdamW of its own (float32 only);
- a STREAM-like in-place triad on torch (``a += s * b``), the bandwidth floor;
- peak memory during one torch step: the resident tensors (parameter,
  gradient, two moments) plus what the step allocates, from the torch
  profiler (``profile_memory=True``), for the spec and the fused kernel;
- peak memory of one jax step, by XLA's accounting of the compiled
  executables (:func:`optspec.adapters.jax.compiled.xla_step_bytes`), spec and optax.

Printed as a table with the ratios the issue targets (each the median over
rounds of the ratio within a round), and written to
``bench_results/kernels.json`` and ``kernels.png``.  A row a framework cannot
run (say bfloat16 in some kernel) is recorded with the reason.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optspec import adapters
from optspec.conformance.atomic import write_text

Timed = dict[str, tuple[Callable[[], object], Callable[[], object]]]


def _interleaved_times(steps: Timed, repeats: int) -> dict[str, list[float]]:
    """Seconds of each ``(step, sync)`` per round after 3 warm-up calls, the steps taking turns in every round.

    Taking turns exposes the implementations compared to the same drifts of
    the machine (frequency, other load), and pairs their times round by round.
    The order of the turns reverses every round, so that no implementation
    always runs straight after the same other one (which swings a ratio of
    two equal XLA steps on this machine from 0.9 to 1.02).
    """
    for step, sync in steps.values():
        for _ in range(3):
            step()
        sync()
    times: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps.items())
    for round_ in range(repeats):
        for name, (step, sync) in order if round_ % 2 == 0 else reversed(order):
            start = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def _no_sync() -> None:
    pass


def torch_rows(n: int, repeats: int, dtype: str) -> dict[str, list[float]]:
    import torch

    from optspec.adapters.compiled import CompiledStep

    device = "cuda" if torch.cuda.is_available() else "cpu"
    kind = getattr(torch, dtype)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def randn() -> Any:
        return torch.randn(n, device=device).to(kind)

    grad = randn()
    native_param = torch.nn.Parameter(randn())
    native_param.grad = grad
    fused = torch.optim.AdamW([native_param], lr=1e-3, fused=True)
    compiled = CompiledStep("torch", "adamw", randn(), device=device, weight_decay=1e-2)
    a, b = randn(), randn()
    times = _interleaved_times({
        "torch.optim.AdamW[fused]": (fused.step, sync),
        "spec[torch.compile]": (lambda: compiled.step(grad, 1e-3), sync),
        "triad[torch]": (lambda: a.add_(b, alpha=0.5), sync),
    }, repeats)
    if device == "cpu":
        resident = 4 * n * kind.itemsize  # parameter, gradient, two moments
        times["peak_bytes[fused]"] = [resident + _allocated_bytes(fused.step)]
        times["peak_bytes[spec]"] = [resident + _allocated_bytes(lambda: compiled.step(grad, 1e-3))]
    return times


def _allocated_bytes(step: Callable[[], object]) -> int:
    """Bytes that one (warm) ``step`` allocates, from the torch profiler: an upper bound on its transient peak."""
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    return int(sum(e.self_cpu_memory_usage for e in prof.key_averages() if e.self_cpu_memory_usage > 0))


def jax_rows(n: int, repeats: int, dtype: str) -> dict[str, list[float]]:
    import jax
    import jax.numpy as jnp
    import optax

    from optspec.adapters.compiled import CompiledStep
    from optspec.adapters.jax.compiled import jax_executable, xla_step_bytes

    kind = getattr(jnp, dtype)
    grad = jnp.asarray(np.random.default_rng(0).normal(size=n), kind)
    opt = optax.adamw(1e-3, weight_decay=1e-2)
    params = jnp.ones(n, kind)
    holder = {"params": params, "state": opt.init(params)}

    def _native(p, s, g):
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s

    native = jax.jit(_native, donate_argnums=(0, 1))

    def native_step() -> None:
        holder["params"], holder["state"] = native(holder["params"], holder["state"], grad)

    device = "gpu" if any(d.platform == "gpu" for d in jax.devices()) else "cpu"
    compiled = CompiledStep("jax", "adamw", jnp.ones(n, kind), device=device, weight_decay=1e-2)
    times = _interleaved_times({
        "optax.adamw[jit, donated]": (native_step, lambda: holder["params"].block_until_ready()),
        "spec[jax.jit]": (lambda: compiled.step(grad, 1e-3), lambda: compiled.param.block_until_ready()),
    }, repeats)
    times["peak_bytes[optax]"] = [xla_step_bytes(native.lower(holder["params"], holder["state"], grad).compile())]
    times["peak_bytes[spec jax.jit]"] = [xla_step_bytes(jax_executable(compiled, grad, 1e-3))]
    return times


def tensorflow_rows(n: int, repeats: int, dtype: str) -> dict[str, list[float]]:
    if dtype != "float32":
        return {}
    import os

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    from optspec.adapters.compiled import CompiledStep

    grad = tf.constant(np.random.default_rng(0).normal(size=n), tf.float32)
    variable = keras.Variable(np.ones(n, np.float32))
    optimizer = keras.optimizers.AdamW(1e-3, weight_decay=1e-2)
    optimizer.build([variable])

    @tf.function(jit_compile=True)
    def native(g: Any) -> None:
        optimizer.apply_gradients([(g, variable)])

    # Like for like: Keras's own update (epsilon-hat, decay lr*lambda before the step) and its epsilon.
    compiled = CompiledStep("tensorflow", "adamw", tf.ones(n, tf.float32), weight_decay=1e-2, eps=1e-7,
                            convention="keras")
    return _interleaved_times({
        "keras.AdamW[XLA]": (lambda: native(grad), _no_sync),
        "spec[tf.function(jit_compile)]": (lambda: compiled.step(grad, 1e-3), _no_sync),
    }, repeats)


def numpy_rows(n: int, repeats: int, dtype: str) -> dict[str, list[float]]:
    """The recorded plan against the eager spec (NumPy has no native AdamW); NumPy has no bfloat16."""
    if dtype != "float32":
        return {}
    from optspec import spec
    from optspec.adapters.compiled import CompiledStep

    rng = np.random.default_rng(0)
    grad = rng.normal(size=n).astype(np.float32)
    compiled = CompiledStep("numpy", "adamw", rng.normal(size=n).astype(np.float32), weight_decay=1e-2)
    rule = spec.get_rule("adamw")
    xp = adapters.namespace("numpy")
    hyper = rule.hyperparameters("torch", weight_decay=1e-2)
    eager = {"param": compiled.param.copy()}
    eager["state"] = rule.init_state(xp, eager["param"], hyper)

    def eager_step() -> None:
        eager["param"], eager["state"] = rule.step(xp, eager["param"], grad, eager["state"], lr=1e-3,
                                                   initial_lr=1e-3, **hyper)

    return _interleaved_times({
        "spec[numpy eager]": (eager_step, _no_sync),
        "spec[numpy plan]": (lambda: compiled.step(grad, 1e-3), _no_sync),
    }, repeats)


RATIOS = {
    "torch_spec_over_fused": ("spec[torch.compile]", "torch.optim.AdamW[fused]"),
    "jax_spec_over_optax": ("spec[jax.jit]", "optax.adamw[jit, donated]"),
    "tf_spec_over_keras_xla": ("spec[tf.function(jit_compile)]", "keras.AdamW[XLA]"),
    "torch_peak_memory_spec_over_fused": ("peak_bytes[spec]", "peak_bytes[fused]"),
    "jax_peak_memory_spec_over_optax": ("peak_bytes[spec jax.jit]", "peak_bytes[optax]"),
    "numpy_plan_over_eager": ("spec[numpy plan]", "spec[numpy eager]"),
}


def _paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """The median over rounds of ``numerator / denominator``, measured in the same round."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for axis, dtype in zip(axes, ("float32", "bfloat16")):
        chosen = [r for r in rows if r["dtype"] == dtype]
        names = sorted({k for r in chosen for k in r["median_ms"]})
        for name in names:
            points = [(r["n"], r["median_ms"][name]) for r in chosen if name in r["median_ms"]]
            axis.loglog(*zip(*points), marker="o", label=name, linestyle="--" if "triad" in name else "-")
        axis.set_title(f"one AdamW step, {dtype}")
        axis.set_xlabel("parameters N")
    axes[0].set_ylabel("median ms per step")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.kernels_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="*")
    parser.add_argument("--dtypes", nargs="*", default=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default="bench_results")
    args = parser.parse_args(argv)
    if args.repeats < 20:
        parser.error("--repeats must be at least 20")
    gpu = adapters.is_available("torch") and "cuda" in adapters.devices("torch")
    sizes = args.sizes or ([1e5, 1e6, 1e7, 1e8] if gpu else [1e5, 1e6, 1e7])
    builders = {"torch": torch_rows, "jax": jax_rows, "tensorflow": tensorflow_rows, "numpy": numpy_rows}
    rows = []
    for dtype in args.dtypes:
        for size in sizes:
            n = int(size)
            times: dict[str, list[float]] = {}
            skipped: dict[str, str] = {}
            for framework, build in builders.items():
                if adapters.is_available(framework):
                    try:
                        times |= build(n, args.repeats, dtype)
                    except Exception as exc:  # a kernel without this dtype is a row, not a crash
                        skipped[framework] = adapters.one_line(exc)[:200]
            peaks = {k: v[0] for k, v in times.items() if k.startswith("peak_bytes")}
            row = {"n": n, "dtype": dtype, "device": "cuda" if gpu else "cpu",
                   "median_ms": {k: round(statistics.median(v) * 1e3, 3) for k, v in times.items()
                                 if k not in peaks},
                   "peak_bytes": peaks, "skipped": skipped}
            for ratio, (spec_name, native_name) in RATIOS.items():
                if spec_name in times and native_name in times:
                    row[ratio] = round(_paired_ratio(times[spec_name], times[native_name]), 3)
            if "spec[torch.compile]" in times:
                # AdamW moves 7 arrays per element (read p, g, m, v; write p, m, v); the triad moves 3.
                floor = [t * 7 / 3 for t in times["triad[torch]"]]
                row["torch_floor_over_spec"] = round(_paired_ratio(floor, times["spec[torch.compile]"]), 3)
            rows.append(row)
            ratios = {k: v for k, v in row.items() if "_over_" in k}
            print(f"{dtype:>8} N={n:>9}  " + "  ".join(f"{k} {v:.3f} ms" for k, v in row["median_ms"].items())
                  + "  |  " + "  ".join(f"{k}={v}" for k, v in ratios.items())
                  + ("  |  skipped: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()) if skipped else ""),
                  flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "kernels.json", json.dumps({"repeats": args.repeats, "rows": rows}, indent=2) + "\n")
    _plot(rows, out / "kernels.png")
    print(f"wrote {out / 'kernels.json'} and kernels.png (targets: torch_spec_over_fused <= 1.1, "
          "jax_spec_over_optax <= 1.0, tf_spec_over_keras_xla <= 1.0, torch_floor_over_spec >= 0.8 at 1e7, "
          "torch_peak_memory_spec_over_fused <= 1.1, jax_peak_memory_spec_over_optax <= 1.1)")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
