"""``python -m tools.bench_quantized``: what a quantized state costs a certification, beside a float one.

One kernel, ``tests.plugins.blockwise_subjects``' AdamW, is certified twice
in one run, alternating, ``--rounds`` times each: with its state as 8-bit
blockwise codes, declared ``bitsandbytes-8bit`` (each step checked from the
codes it holds, :mod:`optspec.conformance.quantized_state`), and with the
same arithmetic on float32 state (``FloatStateAdamW``).  Each certification
is split into the subject's own stepping (``adapters.drive`` and
``drive_batch``: its quantization included) and the certifier's (drawing,
the reference, the checks, reading the state); the quantized one's cases
per second and certifier seconds are printed beside the float one's with
their ratio (issue #37's goal: within 2x), never asserted.  Results go to
``bench_results/quantized.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from optspec import adapters, spec
from optspec.conformance.atomic import write_text

PLUGIN = "tests.plugins.blockwise_subjects"
#: The two set-ups: (label, the subject, the state it is declared to hold).
SETUPS = (("float32 state", f"{PLUGIN}:FloatStateAdamW", {}),
          ("bitsandbytes-8bit state", f"{PLUGIN}:Blockwise8bitAdamW", dict(spec.quantized.PRESETS["bitsandbytes-8bit"])))
#: The goal: a quantized certification at most this many times slower than the float one (issue #37).
GOAL = 2.0


def measure(impl: str, storage: dict[str, str], examples: int) -> dict[str, float]:
    """One float32 certification of ``impl`` holding ``storage``: its seconds, the subject's, and its cases."""
    from optspec.conformance.certify import certify
    from optspec.conformance.state_storage import stored

    (subject,) = adapters.resolve_subject("torch", impl)
    subject = stored(subject, storage)
    stepping = [0.0]
    originals = {name: getattr(adapters, name) for name in ("drive", "drive_batch")}

    def timed(original):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                stepping[0] += time.perf_counter() - start
        return run

    for name, original in originals.items():  # the certifier calls them through the module
        setattr(adapters, name, timed(original))
    try:
        start = time.perf_counter()
        cert = certify(subject, dtype="float32", examples=examples, golden_dir=None)
        total = time.perf_counter() - start
    finally:
        for name, original in originals.items():
            setattr(adapters, name, original)
    if not cert.conforms:
        raise SystemExit(f"{impl} does not conform: {cert.failure.detail}")
    return {"seconds": total, "subject_s": stepping[0], "certifier_s": total - stepping[0], "cases": cert.cases_run}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_quantized", description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="bench_results")
    args = parser.parse_args(argv)
    if not adapters.is_available("torch"):
        print("torch is not installed: no quantized benchmark")
        return 0
    runs: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in SETUPS}
    for index in range(args.rounds):
        for label, impl, storage in SETUPS if index % 2 == 0 else SETUPS[::-1]:
            runs[label].append(measure(impl, storage, args.examples))
    rows = {label: {key: round(statistics.median(r[key] for r in measured), 3) for key in measured[0]}
            for label, measured in runs.items()}
    for row in rows.values():
        row["cases_per_s"] = round(row["cases"] / row["seconds"], 2)
    (float_label, *_), (quantized_label, *_) = SETUPS
    slower = round(rows[float_label]["cases_per_s"] / rows[quantized_label]["cases_per_s"], 2)
    certifier = round(rows[quantized_label]["certifier_s"] / rows[float_label]["certifier_s"], 2)
    print(f"{'certify, float32, ' + str(args.examples) + ' drawn cases':<40} {'cases':>6} {'cases/s':>8} "
          f"{'whole':>7} {'subject':>8} {'certifier':>10}")
    for label, row in rows.items():
        print(f"{label:<40} {row['cases']:>6.0f} {row['cases_per_s']:>8.2f} {row['seconds']:>7.2f} "
              f"{row['subject_s']:>8.2f} {row['certifier_s']:>10.2f}")
    print(f"quantized / float: {slower}x the time per case, the certifier's own {certifier}x (goal: within "
          f"{GOAL:g}x; median of {args.rounds} rounds, alternating)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "quantized.json", json.dumps({"examples": args.examples, "rounds": args.rounds, "rows": rows,
                                                   "time_per_case_ratio": slower, "certifier_ratio": certifier,
                                                   "goal": GOAL}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
