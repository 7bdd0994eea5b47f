"""``python -m tools.bench_sharded``: what a case costs certified across ranks, against one process.

For ``torch.optim.AdamW[foreach]`` in float64, the same drawn cases
(``--examples``, ``--seed``, those inside float64's range, as ``certify``
keeps them) are run one by one through the checks
(:func:`optspec.conformance.check.run_case`: the subject's trajectory, the
spec's reference, the checks), in one run, first in this process and then
under each strategy (``fsdp2``, ``zero1``, ``ddp``) at world sizes 1, 2 and
4, the ranks spawned on this machine:

- ``startup``: the ranks' start (spawn, imports, joining the group;
  ``Ranks.start``), once per strategy and world size;
- ``first``: the rest of the first case (each rank re-creating the subject,
  the first distributed operations), kept out of the per-case cost;
- ``s/case`` and ``cases/s``: over the other cases;
- ``x 1 proc``: ``s/case`` over the one-process run's, the same cases one by
  one; ``x batched``: over the one-process run with the cases batched, as
  ``certify`` runs drawn cases in one process (a sharded subject is not
  batched: each case is a run of its own on the ranks).

The target (issue #24: at world size 2 a case costs at most twice the
one-process one) is printed against both ratios, never asserted.  Results go
to ``bench_results/sharded.json``.
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
from optspec.adapters import ranks
from optspec.conformance.atomic import write_text
from optspec.conformance.batched import run_batched
from optspec.conformance.cases import Case
from optspec.conformance.certify import drawn_cases, representable_cases
from optspec.conformance.check import run_case
from optspec.conformance.expectation import Expectation

FRAMEWORK, SUBJECT, DTYPE = "torch", "torch.optim.AdamW[foreach]", "float64"
STRATEGIES = ("fsdp2", "zero1", "ddp")
WORLD_SIZES = (1, 2, 4)
#: At this world size a case may cost at most this many one-process cases (issue #24).
TARGET_WORLD_SIZE, TARGET_RATIO = 2, 2.0
#: Seconds one step may take before the case is a hang.
TIME_LIMIT_S = 120.0


@contextlib.contextmanager
def startups() -> Iterator[list[float]]:
    """Collects the seconds of every ranks' start (:meth:`ranks.Ranks.start`) inside the block."""
    original = ranks.Ranks.start
    spent: list[float] = []

    def start(self: ranks.Ranks, *args: Any, **kwargs: Any) -> None:
        began = time.perf_counter()
        try:
            original(self, *args, **kwargs)
        finally:
            spent.append(time.perf_counter() - began)

    ranks.Ranks.start = start
    try:
        yield spent
    finally:
        ranks.Ranks.start = original


def one_by_one(subject: adapters.SubjectInfo, cases: list[Case]) -> dict[str, Any]:
    """Runs ``cases`` in order through :func:`run_case`: the ranks' startup, the rest of the first case, and
    the cost of each of the others."""
    convention = Expectation.of(subject, None).convention
    seconds, passed = [], []
    with startups() as spent:
        for case in cases:
            began = time.perf_counter()
            passed.append(run_case(subject, case, convention=convention, dtype=DTYPE,
                                   time_limit_s=TIME_LIMIT_S).passed)
            seconds.append(time.perf_counter() - began)
    startup = sum(spent)
    rest = seconds[1:]
    return {"startup_s": round(startup, 3), "first_case_s": round(seconds[0] - startup, 3),
            "cases": len(rest), "s_per_case": sum(rest) / len(rest), "cases_per_s": round(len(rest) / sum(rest), 2),
            "passed": all(passed)}


def batched(subject: adapters.SubjectInfo, cases: list[Case]) -> float:
    """Cases per second of ``cases`` run batched in this process, as ``certify`` runs its drawn cases."""
    convention = Expectation.of(subject, None).convention
    run_batched(subject, cases[:1], convention=convention, dtype=DTYPE, device=None, time_limit_s=None)  # warm
    began = time.perf_counter()
    results = run_batched(subject, cases, convention=convention, dtype=DTYPE, device=None, time_limit_s=None)
    if results is None or not all(r.passed for r in results):
        raise SystemExit(f"{SUBJECT} failed a drawn case in one process: run optspec certify for the evidence")
    return len(cases) / (time.perf_counter() - began)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_sharded", description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100, help="drawn cases per configuration (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategies", nargs="*", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--world-sizes", nargs="*", type=int, default=list(WORLD_SIZES))
    parser.add_argument("--out", default="bench_results")
    args = parser.parse_args(argv)
    if not adapters.is_available(FRAMEWORK):
        print(f"sharded bench skipped: {FRAMEWORK} is not installed")
        return 0
    (subject,) = adapters.resolve_subject(FRAMEWORK, SUBJECT)
    cases, _ = representable_cases(subject, Expectation.of(subject, None).convention,
                                   drawn_cases(subject, DTYPE, args.examples, args.seed), DTYPE)
    alone = one_by_one(subject, cases)
    alone_batched = batched(subject, cases)
    print(f"{SUBJECT}, {DTYPE}: {len(cases)} drawn cases, the first of each run kept out of the per-case cost")
    print(f"{'run':<26} {'startup':>8} {'first':>7} {'s/case':>8} {'cases/s':>8} {'x 1 proc':>8} {'x batched':>9}")
    print(f"{'one process, batched':<26} {'':>8} {'':>7} {1 / alone_batched:>8.4f} {alone_batched:>8.1f} "
          f"{1 / alone_batched / alone['s_per_case']:>8.2f} {1.0:>9.2f}")
    rows = [{"run": "one process", **alone}]
    print(_line(rows[0], alone, alone_batched))
    for strategy in args.strategies:
        for world_size in args.world_sizes:
            sharding = adapters.Sharding(strategy, world_size)
            try:
                with adapters.sharded(subject, FRAMEWORK, SUBJECT, None, sharding) as on_ranks:
                    row = {"run": f"{strategy}, world size {world_size}", "strategy": strategy,
                           "world_size": world_size, **one_by_one(on_ranks, cases)}
            finally:
                ranks.stop_ranks()
            rows.append(row)
            print(_line(row, alone, alone_batched))
    for row in rows:
        row["over_one_process"] = round(row["s_per_case"] / alone["s_per_case"], 3)
        row["over_batched"] = round(row["s_per_case"] * alone_batched, 3)
        row["s_per_case"] = round(row["s_per_case"], 5)
    print(f"\ntarget: at world size {TARGET_WORLD_SIZE} a case costs at most {TARGET_RATIO:g}x one process's")
    for row in rows:
        if row.get("world_size") == TARGET_WORLD_SIZE:
            print(f"  {row['strategy']:<6} {row['over_one_process']:>6.2f}x one process case by case: "
                  f"{_met(row['over_one_process'])}; {row['over_batched']:>6.2f}x batched: "
                  f"{_met(row['over_batched'])}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "sharded.json", json.dumps({
        "subject": SUBJECT, "dtype": DTYPE, "examples": args.examples, "seed": args.seed, "cases": len(cases),
        "one_process_batched_cases_per_s": round(alone_batched, 2), "target_world_size": TARGET_WORLD_SIZE,
        "target_ratio": TARGET_RATIO, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out / 'sharded.json'} (startup: spawn, imports, joining the group; first: the rest of the first "
          "case; s/case over the other cases; x 1 proc: over the same cases one by one in one process; x batched: "
          "over one process batching them, as certify does)")
    return 0 if all(row["passed"] for row in rows) else 1


def _line(row: dict[str, Any], alone: dict[str, Any], alone_batched: float) -> str:
    startup = f"{row['startup_s']:>8.2f}" if "strategy" in row else f"{'':>8}"
    return (f"{row['run']:<26} {startup} {row['first_case_s']:>7.2f} {row['s_per_case']:>8.4f} "
            f"{row['cases_per_s']:>8.1f} {row['s_per_case'] / alone['s_per_case']:>8.2f} "
            f"{row['s_per_case'] * alone_batched:>9.2f}" + ("" if row["passed"] else "  (a case failed)"))


def _met(ratio: float) -> str:
    return "met" if ratio <= TARGET_RATIO else "not met"


if __name__ == "__main__":
    raise SystemExit(main())
