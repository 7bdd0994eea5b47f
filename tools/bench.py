"""``python -m tools.bench``: certification throughput per framework, split by stage.

For one AdamW subject per installed framework it draws N hypothesis cases
(about 10 steps each), drives them through the subject in batches, and checks
each against the float64 reference, timing each stage side by side in one run:

- ``generate``: hypothesis drawing the cases;
- ``subject``: the framework running the cases (:func:`adapters.drive_batch`);
- ``reference``: the spec's float64 trajectories and update magnitudes;
- ``checks``: the one-step and trajectory comparisons.

Then the whole of ``certify`` (named cases, the large-tensor case of 4,096
and 65,536 elements, and the drawn cases; golden replay off) against the same
targets, and ``identify`` against one ``certify`` of the same subject (target:
at most 1.5 times).

The targets (1,000 cases in at most 30 s, 60 s for Keras) are printed as
ratios, never asserted.  Results go to ``bench_results/throughput.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from optspec import adapters
from optspec.conformance import check
from optspec.conformance.atomic import write_text

#: One AdamW subject per framework, the dtype it is certified in, and its target in seconds per 1,000 cases.
SUBJECTS = (
    ("numpy", "spec.adamw", "float64", 30.0),
    ("torch", "torch.optim.AdamW[fused]", "float64", 30.0),
    ("torch", "torch.optim.AdamW[foreach]", "float64", 30.0),
    ("jax", "optax.adamw", "float64", 30.0),
    ("tensorflow", "keras.optimizers.AdamW", "float32", 60.0),
)


class _Stopwatch:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def wrap(self, module: Any, attribute: str, name: str) -> None:
        original = getattr(module, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.stage(name):
                return original(*args, **kwargs)

        setattr(module, attribute, timed)


def measure(framework: str, impl: str, dtype: str, examples: int, seed: int) -> dict[str, Any]:
    """Times every stage of certifying ``impl`` on ``examples`` cases."""
    from optspec.conformance import batched
    from optspec.conformance.certify import drawn_cases

    (subject,) = adapters.resolve_subject(framework, impl)
    convention = subject.convention
    watch = _Stopwatch()
    saved = {name: getattr(check, name) for name in ("reference", "update_magnitude")}
    saved_drive = adapters.drive_batch
    watch.wrap(check, "reference", "reference")
    watch.wrap(check, "update_magnitude", "reference")
    watch.wrap(batched.adapters, "drive_batch", "subject")
    try:
        with watch.stage("generate"):
            cases = drawn_cases(subject, dtype, examples, seed)
        with watch.stage("total_run"):
            results = batched.run_batched(subject, cases, convention=convention, dtype=dtype,
                                          device=None, time_limit_s=None)
            if results is None:  # no batched driver, or a failing case: one by one, as certify does
                results = [check.run_case(subject, case, convention=convention, dtype=dtype) for case in cases]
    finally:
        for name, value in saved.items():
            setattr(check, name, value)
        batched.adapters.drive_batch = saved_drive
    seconds = watch.seconds
    if subject.build_batch is None:
        seconds["subject"] = seconds["total_run"] - seconds.get("reference", 0.0)
        seconds["checks"] = 0.0
    else:
        seconds["checks"] = seconds["total_run"] - seconds.get("subject", 0.0) - seconds.get("reference", 0.0)
    total = seconds["generate"] + seconds["total_run"]
    return {
        "framework": framework, "subject": impl, "dtype": dtype, "cases": len(cases),
        "passed": all(r.passed for r in results), "batched": subject.build_batch is not None,
        "seconds": {k: round(seconds.get(k, 0.0), 3) for k in ("generate", "subject", "reference", "checks")},
        "total_s": round(total, 3), "cases_per_s": round(len(cases) / total, 1),
    }


def measure_certify(framework: str, impl: str, dtype: str, examples: int, seed: int) -> dict[str, Any]:
    """Wall time of one ``certify`` (large tensors included) and of one ``identify`` of ``impl``."""
    from optspec.conformance.certify import certify
    from optspec.conformance.identify import identify

    (subject,) = adapters.resolve_subject(framework, impl)
    start = time.perf_counter()
    cert = certify(subject, dtype=dtype, examples=examples, seed_value=seed)
    certify_s = time.perf_counter() - start
    start = time.perf_counter()
    found = identify(subject)
    identify_s = time.perf_counter() - start
    return {"framework": framework, "subject": impl, "dtype": dtype, "cases": cert.cases_run,
            "conforms": cert.conforms, "certify_s": round(certify_s, 2), "identify_s": round(identify_s, 2),
            "identify_preset": found.preset, "identify_over_certify": round(identify_s / certify_s, 3)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench_results")
    parser.add_argument("--frameworks", nargs="*", default=list(adapters.FRAMEWORKS))
    args = parser.parse_args(argv)
    rows = []
    print(f"{'subject':<30} {'dtype':<8} {'cases':>6} {'cases/s':>8} {'generate':>9} {'subject':>8} "
          f"{'reference':>9} {'checks':>7} {'total':>7} {'target':>7} {'ratio':>6}")
    for framework, impl, dtype, target in SUBJECTS:
        if framework not in args.frameworks or not adapters.is_available(framework):
            continue
        row = measure(framework, impl, dtype, args.examples, args.seed)
        allowed = target * row["cases"] / 1000
        row["target_s"], row["ratio_to_target"] = allowed, round(row["total_s"] / allowed, 3)
        rows.append(row)
        s = row["seconds"]
        print(f"{impl:<30} {dtype:<8} {row['cases']:>6} {row['cases_per_s']:>8} {s['generate']:>9.2f} "
              f"{s['subject']:>8.2f} {s['reference']:>9.2f} {s['checks']:>7.2f} {row['total_s']:>7.2f} "
              f"{allowed:>7.1f} {row['ratio_to_target']:>6.2f}" + ("" if row["passed"] else "  (a case failed)"))
    print(f"\n{'whole certify, then identify':<30} {'dtype':<8} {'cases':>6} {'certify':>8} {'target':>7} "
          f"{'ratio':>6} {'identify':>9} {'id/cert':>8}")
    whole = []
    for framework, impl, dtype, target in SUBJECTS:
        if framework not in args.frameworks or not adapters.is_available(framework):
            continue
        row = measure_certify(framework, impl, dtype, args.examples, args.seed)
        allowed = target * args.examples / 1000
        row["target_s"], row["ratio_to_target"] = allowed, round(row["certify_s"] / allowed, 3)
        whole.append(row)
        print(f"{impl:<30} {dtype:<8} {row['cases']:>6} {row['certify_s']:>8.2f} {allowed:>7.1f} "
              f"{row['ratio_to_target']:>6.2f} {row['identify_s']:>9.2f} {row['identify_over_certify']:>8.2f}"
              + ("" if row["conforms"] else "  (does not conform)"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "throughput.json", json.dumps({"examples": args.examples, "seed": args.seed, "rows": rows,
                                                    "whole_certify": whole}, indent=2) + "\n")
    print(f"wrote {out / 'throughput.json'} (ratio = total / target; <= 1 meets the target; "
          "id/cert <= 1.5 meets identify's)")
    from tools import kernels_bench

    return kernels_bench.main(["--out", str(out)])


if __name__ == "__main__":
    raise SystemExit(main())
