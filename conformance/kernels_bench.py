"""``python -m conformance.kernels_bench``: the compiled spec against each framework's fastest AdamW.

One AdamW step on N float32 parameters (N = 1e5, 1e6, 1e7), timed side by
side in one run, median of ``--repeats`` (at least 20) after warm-up:

- ``spec[torch.compile]`` against ``torch.optim.AdamW(fused=True)``;
- ``spec[jax.jit]`` against ``optax.adamw`` jitted with donation;
- a STREAM-like in-place triad on torch (``a += s * b``), the bandwidth floor.

Printed as a table with the ratios the issue targets (compiled/native, and
floor/compiled), and written to ``bench_results/kernels.json``.  Only float32
on CPU is measured here; bfloat16, TensorFlow, NumPy and GPU rows are not
built.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

import adapters
from conformance.atomic import write_text


def _median_seconds(step: Callable[[], object], repeats: int, sync: Callable[[], object] = lambda: None) -> float:
    for _ in range(3):
        step()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_rows(n: int, repeats: int) -> dict[str, float]:
    import torch

    from adapters.compiled import CompiledStep

    grad = torch.randn(n)
    native_param = torch.nn.Parameter(torch.randn(n))
    native_param.grad = grad
    fused = torch.optim.AdamW([native_param], lr=1e-3, fused=True)
    compiled = CompiledStep("torch", "adamw", torch.randn(n), weight_decay=1e-2)
    a, b = torch.randn(n), torch.randn(n)
    return {
        "torch.optim.AdamW[fused]": _median_seconds(fused.step, repeats),
        "spec[torch.compile]": _median_seconds(lambda: compiled.step(grad, 1e-3), repeats),
        "triad[torch]": _median_seconds(lambda: a.add_(b, alpha=0.5), repeats),
    }


def jax_rows(n: int, repeats: int) -> dict[str, float]:
    import jax
    import jax.numpy as jnp
    import optax

    from adapters.compiled import CompiledStep

    grad = jnp.asarray(np.random.default_rng(0).normal(size=n), jnp.float32)
    opt = optax.adamw(1e-3, weight_decay=1e-2)
    params = jnp.ones(n, jnp.float32)
    holder = {"params": params, "state": opt.init(params)}

    def _native(p, s, g):
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s

    native = jax.jit(_native, donate_argnums=(0, 1))

    def native_step() -> None:
        holder["params"], holder["state"] = native(holder["params"], holder["state"], grad)

    compiled = CompiledStep("jax", "adamw", jnp.ones(n, jnp.float32), weight_decay=1e-2)
    return {
        "optax.adamw[jit, donated]": _median_seconds(native_step, repeats, lambda: holder["params"].block_until_ready()),
        "spec[jax.jit]": _median_seconds(lambda: compiled.step(grad, 1e-3), repeats,
                                         lambda: compiled.param.block_until_ready()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.kernels_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="*", default=[1e5, 1e6, 1e7])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default="bench_results")
    args = parser.parse_args(argv)
    if args.repeats < 20:
        parser.error("--repeats must be at least 20")
    rows = []
    for size in args.sizes:
        n = int(size)
        times: dict[str, float] = {}
        if adapters.is_available("torch"):
            times |= torch_rows(n, args.repeats)
        if adapters.is_available("jax"):
            times |= jax_rows(n, args.repeats)
        row = {"n": n, "dtype": "float32", "device": "cpu", "median_ms": {k: round(v * 1e3, 3) for k, v in times.items()}}
        if "spec[torch.compile]" in times:
            row["torch_spec_over_fused"] = round(times["spec[torch.compile]"] / times["torch.optim.AdamW[fused]"], 3)
            # AdamW moves 28 bytes per element (read p, g, m, v; write p, m, v); the triad moves 12.
            floor = times["triad[torch]"] * 28 / 12
            row["torch_floor_over_spec"] = round(floor / times["spec[torch.compile]"], 3)
        if "spec[jax.jit]" in times:
            row["jax_spec_over_optax"] = round(times["spec[jax.jit]"] / times["optax.adamw[jit, donated]"], 3)
        rows.append(row)
        ratios = {k: v for k, v in row.items() if "_over_" in k}
        print(f"N={n:>9}  " + "  ".join(f"{k} {v:.3f} ms" for k, v in row["median_ms"].items())
              + "  |  " + "  ".join(f"{k}={v}" for k, v in ratios.items()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "kernels.json", json.dumps({"repeats": args.repeats, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out / 'kernels.json'} (targets: torch_spec_over_fused <= 1.1, jax_spec_over_optax <= 1.0, "
          "torch_floor_over_spec >= 0.8 at 1e7)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
