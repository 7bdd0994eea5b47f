r"""``python -m tools.detection``: the smallest defect the certifier catches, per rule, dtype and knob.

Each subject is torch's own optimizer of the rule (``AdamW`` for ``adamw``,
``Adam`` for ``adam`` with L2, ``SGD``, ``Adagrad``, ``RMSprop``, ``Adamax``,
``NAdam``, ``RAdam``, ``Adadelta``, ``Rprop``; torch has no Lion) with one
value perturbed by a relative δ (``tests/plugins/perturbed.py``): a
hyperparameter (lr, λ, ε, β1, 1−β2; momentum, dampening, 1−α, ``lr_decay``,
the initial accumulator; NAdam's ψ, Adadelta's 1−ρ, Rprop's η± and
step-size bounds) or, for Adam, the continuous neighbour of a
convention knob (decay scaled by :math:`\mathrm{lr}^{1+\delta}`, ε moved
towards ε-hat by :math:`(1-\beta_2^t)^{-\delta/2}`, bias corrections at step
:math:`t(1+\delta)`).

For each, ``certify`` runs as a user runs it (its default cases, golden
replay on) in-process at decreasing δ, a decade at a time from 1, until one
passes; the decade is then bisected in log space.  The table reports the
smallest δ rejected; ``-`` where even δ = 1 passes.  The unperturbed subject
is certified first in every dtype: if it is rejected the row says so (a false
alarm) and no δ is searched.

With ``--examples 0 --no-golden`` it measures what the named cases alone
catch.  Printed as a table and written to ``bench_results/detection.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from optspec import adapters
from optspec.conformance import golden
from optspec.conformance.atomic import write_text
from optspec.conformance.certify import certify

#: The perturbations of each rule, hyperparameters first (``tests/plugins/perturbed.py``).
KNOBS = {
    "adamw": ("lr", "weight_decay", "eps", "beta1", "one_minus_beta2", "decay_scale", "epsilon", "bias_correction"),
    "adam": ("lr", "weight_decay", "eps", "beta1", "one_minus_beta2", "epsilon", "bias_correction"),
    "sgd": ("lr", "weight_decay", "momentum", "dampening"),
    "adagrad": ("lr", "weight_decay", "eps", "lr_decay", "initial_accumulator_value"),
    "rmsprop": ("lr", "weight_decay", "eps", "one_minus_alpha", "momentum"),
    "adamax": ("lr", "weight_decay", "eps", "beta1", "one_minus_beta2"),
    "nadam": ("lr", "weight_decay", "eps", "beta1", "one_minus_beta2", "momentum_decay"),
    "radam": ("lr", "weight_decay", "eps", "beta1", "one_minus_beta2"),
    "adadelta": ("lr", "weight_decay", "eps", "one_minus_rho"),
    "rprop": ("lr", "eta_minus", "eta_plus", "step_size_min", "step_size_max"),
}
#: The perturbed class of each rule, in ``tests/plugins/perturbed.py``.
SUBJECTS = {"adamw": "AdamW", "adam": "Adam", "sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop",
            "adamax": "Adamax", "nadam": "NAdam", "radam": "RAdam", "adadelta": "Adadelta", "rprop": "Rprop"}
DTYPES = ("float64", "float32", "bfloat16")
#: The smallest δ searched: below float64's unit roundoff (1.1e-16) a perturbation is lost in rounding.
SMALLEST_DELTA = 1e-16
#: Bisection steps inside the first passing decade: the result is within a factor 10^(1/2^steps).
REFINE_STEPS = 3


@dataclasses.dataclass(frozen=True)
class Detection:
    """One row: the smallest δ rejected (None: not even δ = 1) and the largest δ seen to pass."""

    rule: str
    dtype: str
    knob: str
    smallest_rejected: float | None
    largest_accepted: float | None
    certifications: int
    seconds: float


def subject(rule: str, knob: str, delta: float) -> adapters.SubjectInfo:
    factory = SUBJECTS[rule]
    (found,) = adapters.resolve_subject("torch", f"tests.plugins.perturbed:{factory}[knob={knob!r},delta={delta!r}]",
                                        rule)
    return found


def rejected(rule: str, knob: str, delta: float, dtype: str, examples: int, seed: int, *,
             replay_golden: bool = True) -> bool:
    """Whether ``certify`` rejects the subject; one that raises (β1 pushed to 1) is rejected, as the CLI's
    supervisor rejects it."""
    try:
        cert = certify(subject(rule, knob, delta), dtype=dtype, examples=examples, seed_value=seed,
                       golden_dir=str(golden.DEFAULT_DIR) if replay_golden else None)
    except adapters.SubjectError:
        return True
    return not cert.conforms


def smallest_rejected(rule: str, knob: str, dtype: str, examples: int, seed: int, *,
                      replay_golden: bool = True) -> Detection:
    """Searches δ from 1 down a decade at a time, then bisects the decade where it first passes."""
    started, runs = time.perf_counter(), 0

    def test(delta: float) -> bool:
        nonlocal runs
        runs += 1
        return rejected(rule, knob, delta, dtype, examples, seed, replay_golden=replay_golden)

    high, low = None, None
    delta = 1.0
    while delta >= SMALLEST_DELTA:
        if not test(delta):
            low = delta
            break
        high, delta = delta, delta / 10
    if high is not None and low is not None:
        for _ in range(REFINE_STEPS):
            middle = math.sqrt(high * low)
            if test(middle):
                high = middle
            else:
                low = middle
    return Detection(rule, dtype, knob, high, low, runs, round(time.perf_counter() - started, 1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.detection", description=__doc__.splitlines()[0])
    parser.add_argument("--rules", nargs="*", default=list(KNOBS), choices=list(KNOBS))
    parser.add_argument("--dtypes", nargs="*", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--knobs", nargs="*", help="only these perturbations (default: every one of the rule)")
    parser.add_argument("--examples", type=int, default=20, help="drawn cases per certification (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-golden", action="store_true",
                        help="no golden replay: with --examples 0, what the named cases alone catch")
    parser.add_argument("--out", default="bench_results")
    args = parser.parse_args(argv)
    # a large δ (β1 doubled) diverges on purpose: the reference's overflow warnings say nothing here
    warnings.simplefilter("ignore", RuntimeWarning)
    if not adapters.is_available("torch"):
        print("tools.detection needs torch: install the torch extra", file=sys.stderr)
        return 2
    rows: list[Detection] = []
    baseline: dict[tuple[str, str], bool] = {}
    print(f"{'rule':<8} {'dtype':<9} {'knob':<25} {'smallest δ rejected':>20} {'largest passed':>15} "
          f"{'runs':>5} {'seconds':>8}", flush=True)
    for rule in args.rules:
        for dtype in args.dtypes:
            baseline[rule, dtype] = not rejected(rule, "lr", 0.0, dtype, args.examples, args.seed,
                                                 replay_golden=not args.no_golden)
            if not baseline[rule, dtype]:
                print(f"{rule:<8} {dtype:<9} {'(unperturbed)':<25} {'REJECTED: a false alarm':>20}", flush=True)
                continue
            for knob in args.knobs or KNOBS[rule]:
                if knob not in KNOBS[rule]:
                    continue
                row = smallest_rejected(rule, knob, dtype, args.examples, args.seed,
                                        replay_golden=not args.no_golden)
                rows.append(row)
                shown = "-" if row.smallest_rejected is None else f"{row.smallest_rejected:.2g}"
                passed = "-" if row.largest_accepted is None else f"{row.largest_accepted:.2g}"
                print(f"{rule:<8} {dtype:<9} {knob:<25} {shown:>20} {passed:>15} {row.certifications:>5} "
                      f"{row.seconds:>8.1f}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    document = {"examples": args.examples, "seed": args.seed, "golden_replay": not args.no_golden,
                "unperturbed_conforms": {f"{r}/{d}": ok for (r, d), ok in baseline.items()},
                "rows": [dataclasses.asdict(r) for r in rows]}
    write_text(out / "detection.json", json.dumps(document, indent=2) + "\n")
    print(f"wrote {out / 'detection.json'} (δ is relative; '-' means not rejected even at δ = 1)")
    return 0 if all(baseline.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
