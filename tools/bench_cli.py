"""``python -m tools.bench_cli``: what a vendor feels, a default ``optspec certify`` end to end, split by stage.

For one AdamW subject per installed framework, two fresh processes run side
by side in one run:

- ``whole``: ``optspec certify --framework F --impl X`` exactly as a user
  types it (default cases, golden replay, the supervised worker), timed
  from outside;
- the same certification in-process (no worker), timed stage by stage:
  ``import optspec`` (the CLI, numpy, hypothesis), ``import framework``,
  ``resolve`` (the subject and its constructor check), ``probe`` (the
  one-step kernel probe), ``named`` (the named cases, the large-tensor case
  among them), ``drawn`` (the hypothesis cases, drawn and run in batches)
  and ``golden`` (the replay of the golden scenarios).

``isolation`` is ``whole`` less the in-process total: the worker's start and
what the parent does around it, less what the workers run side by side (the
golden replay runs in a second worker beside the cases, so it may be
negative).

``whole`` reads what optspec keeps between runs (the drawn cases, JAX's
compilations: :mod:`optspec.adapters.caches`), filled by one untimed run
before; ``first`` is the same command on a machine that has run none, its
cache empty.

``floor`` is what no certifier can go below, timed in another fresh process:
the framework's own import, the subject's construction (torch imports
``torch._dynamo`` there) and the golden ``long`` scenario's 10 000 steps
through the subject's session, gradients fed and nothing read back or
checked.  ``overhead`` (``whole`` less ``floor``) is what certification
adds; its target (issue #36: at most 1.5 s for every framework with a
built-in AdamW, on an idle 2-core machine) is printed beside it, never
asserted.  ``--rounds N`` runs ``whole`` and ``floor`` N times each,
alternating which goes first, and takes the median of each (the stages
are timed once).  Results go to ``bench_results/cli.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from optspec.adapters.caches import CACHE_VARIABLE

#: The subject per framework: what ``optspec certify --framework F --impl X`` takes.
SUBJECTS = (
    ("numpy", "spec.adamw"),
    ("torch", "torch.optim.AdamW[foreach]"),
    ("jax", "optax.adamw"),
    ("paddle", "paddle.optimizer.AdamW"),
    ("tensorflow", "keras.optimizers.AdamW"),
    ("tf_keras", "tf_keras.optimizers.AdamW"),
    ("mlx", "mlx.optimizers.AdamW[bias_correction=True]"),
    ("mindspore", "mindspore.experimental.optim.AdamW"),
)
#: The Python module a framework's import stands for.
FRAMEWORK_MODULE = {"numpy": "numpy", "torch": "torch", "jax": "optax", "paddle": "paddle", "tensorflow": "keras",
                    "tf_keras": "tf_keras", "mlx": "mlx.optimizers", "mindspore": "mindspore"}
#: Seconds a default run may add to its floor on an idle 2-core machine (issue #36).
OVERHEAD_TARGET_S = 1.5
#: The golden scenario whose steps the floor takes: the longest one.
FLOOR_SCENARIO = "long"
STAGES = ("import optspec", "import framework", "resolve", "probe", "named", "drawn", "golden")

#: Run in a fresh interpreter: prints the stage timings as one JSON line.
_IN_PROCESS = r"""
import json, sys, time
seconds = {}
start = time.perf_counter()
def lap(name):
    global start
    now = time.perf_counter()
    seconds[name] = seconds.get(name, 0.0) + now - start
    start = now
import optspec.conformance.cli
lap("import optspec")
import importlib
importlib.import_module(sys.argv[3])
lap("import framework")
from optspec import adapters
from optspec.conformance import certify as certify_module, golden, run
options = run.CertifyOptions(framework=sys.argv[1], impl=sys.argv[2])
(subject,) = [s for s in adapters.resolve_subject(options.framework, options.impl) if s.name == options.impl]
lap("resolve")
def timed(module, attribute, stage, *, after=None):
    original = getattr(module, attribute)
    def wrapper(*args, **kwargs):
        lap(after) if after else None
        try:
            return original(*args, **kwargs)
        finally:
            lap(stage() if callable(stage) else stage)
    setattr(module, attribute, wrapper)
timed(certify_module, "missing_kernel", "probe", after="other")
# run_case after the draw is a drawn case run one by one (a subject without a batched driver)
timed(certify_module, "run_case", lambda: "drawn" if "drawn" in seconds else "named", after="other")
timed(certify_module, "drawn_cases", "drawn", after="other")
timed(certify_module, "run_batched", "drawn", after="other")
timed(golden, "replay", "golden", after="other")
cert = certify_module.certify(subject, dtype=options.resolved_dtype, examples=options.examples,
                              golden_dir=options.resolved_golden_dir)
lap("other")
print(json.dumps({"seconds": seconds, "passes": cert.passes, "cases": cert.cases_run}))
"""

#: Run in a fresh interpreter: prints the floor's seconds as one JSON line.
_FLOOR = r"""
import json, sys, time
start = time.perf_counter()
import importlib
importlib.import_module(sys.argv[3])
seconds = time.perf_counter() - start
from optspec import adapters
from optspec.conformance import golden, run
from optspec.conformance.reference import explicit_hyperparameters
options = run.CertifyOptions(framework=sys.argv[1], impl=sys.argv[2])
(subject,) = [s for s in adapters.resolve_subject(options.framework, options.impl) if s.name == options.impl]
(scenario,) = [s for s in golden.scenarios() if s["name"] == sys.argv[4]]
arrays = golden.build(scenario)
grads = arrays["grads_0"]
lrs = [float(x) for x in arrays["lrs"]]
hyper = {k: v for k, v in explicit_hyperparameters(subject, {}).items() if k not in subject.fixed}
start = time.perf_counter()
session = subject.build([arrays["param0_0"]], hyper, lrs, options.resolved_dtype, None)
for index, lr in enumerate(lrs):
    session.step(session.feed([grads[index]]), lr, index)
session.params()
seconds += time.perf_counter() - start
print(json.dumps({"seconds": seconds}))
"""


def optspec_command() -> list[str]:
    """The installed ``optspec`` script beside this interpreter, or ``python -m optspec``."""
    script = Path(sys.executable).with_name("optspec")
    return [str(script)] if script.exists() else [sys.executable, "-m", "optspec"]


def _run(argv: list[str], env: dict[str, str], what: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise SystemExit(f"{what} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done


def measure(framework: str, impl: str, rounds: int = 1) -> dict:
    """``whole`` (the CLI from outside) and ``floor``, the median of ``rounds`` runs each (alternating which
    goes first), and the in-process stages of one default certify of ``impl``."""
    caches = Path(tempfile.mkdtemp(prefix="optspec-bench-cache-"))
    env = dict(os.environ, PYTHONWARNINGS="ignore", **{CACHE_VARIABLE: str(caches / "kept")})
    module = FRAMEWORK_MODULE[framework]
    whole_argv = [*optspec_command(), "certify", "--framework", framework, "--impl", impl]
    floor_argv = [sys.executable, "-c", _FLOOR, framework, impl, module, FLOOR_SCENARIO]
    wholes, firsts, floors, exits = [], [], [], set()
    try:
        _run(whole_argv, env, f"optspec certify of {impl}")  # fills the cache that "whole" reads
        for index in range(rounds):
            for which in (("whole", "first", "floor") if index % 2 == 0 else ("floor", "first", "whole")):
                if which == "floor":
                    _, done = _run(floor_argv, env, f"the floor run of {impl}")
                    floors.append(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])
                    continue
                empty = {CACHE_VARIABLE: str(caches / f"empty-{index}")} if which == "first" else {}
                seconds, done = _run(whole_argv, {**env, **empty}, f"optspec certify of {impl}")
                (firsts if which == "first" else wholes).append(seconds)
                exits.add(done.returncode)
        _, staged = _run([sys.executable, "-c", _IN_PROCESS, framework, impl, module], env,
                         f"the in-process run of {impl}")
    finally:
        shutil.rmtree(caches, ignore_errors=True)
    inside = json.loads(staged.stdout.strip().splitlines()[-1])
    whole_s, floor_s = round(statistics.median(wholes), 2), round(statistics.median(floors), 2)
    seconds = {stage: round(inside["seconds"].get(stage, 0.0), 2) for stage in (*STAGES, "other")}
    first_s = round(statistics.median(firsts), 2)
    return {"framework": framework, "subject": impl, "exit": max(exits), "rounds": rounds, "whole_s": whole_s,
            "whole_runs_s": [round(x, 2) for x in wholes], "first_s": first_s,
            "first_runs_s": [round(x, 2) for x in firsts], "first_overhead_s": round(first_s - floor_s, 2),
            "floor_s": floor_s,
            "floor_runs_s": [round(x, 2) for x in floors], "overhead_s": round(whole_s - floor_s, 2),
            "overhead_target_s": OVERHEAD_TARGET_S, "in_process_s": round(sum(seconds.values()), 2),
            "seconds": seconds, "passes": inside["passes"], "cases": inside["cases"],
            "isolation_s": round(whole_s - sum(seconds.values()), 2)}


def _compile_bytecode() -> None:
    """optspec's modules compiled to bytecode, as installing its wheel leaves them: an editable install run
    with ``PYTHONDONTWRITEBYTECODE`` would otherwise compile them from source in every process it times."""
    import compileall


    for package in ("optspec", "optspec.spec", "optspec.adapters", "optspec.conformance"):
        for folder in importlib.import_module(package).__path__:
            compileall.compile_dir(folder, quiet=1)


def main(argv: Sequence[str] | None = None) -> int:
    from optspec import adapters
    from optspec.conformance.atomic import write_text

    parser = argparse.ArgumentParser(prog="python -m tools.bench_cli", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_results")
    parser.add_argument("--frameworks", nargs="*", default=[f for f, _ in SUBJECTS])
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of whole and of floor per framework, alternating; the median is printed")
    args = parser.parse_args(argv)
    _compile_bytecode()
    columns = [*STAGES, "other", "isolation"]
    print(f"{'default certify, end to end':<28} {'exit':>4} {'whole':>6} {'floor':>6} {'overhead':>8} "
          f"{'target':>6} {'first':>6} {'overhead':>8}  " + " ".join(f"{c:>{max(len(c), 6)}}" for c in columns))
    rows = []
    for framework, impl in SUBJECTS:
        try:
            available = adapters.is_available(framework)
        except adapters.SetupError:  # Paddle after TensorFlow: its own environment benchmarks it
            available = False
        if framework not in args.frameworks or not available:
            continue
        row = measure(framework, impl, max(1, args.rounds))
        rows.append(row)
        cells = {**row["seconds"], "isolation": row["isolation_s"]}
        print(f"{impl:<28} {row['exit']:>4} {row['whole_s']:>6.2f} {row['floor_s']:>6.2f} {row['overhead_s']:>8.2f} "
              f"{OVERHEAD_TARGET_S:>6.1f} {row['first_s']:>6.2f} {row['first_overhead_s']:>8.2f}  " + " ".join(f"{cells[c]:>{max(len(c), 6)}.2f}" for c in columns))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "cli.json", json.dumps({"overhead_target_s": OVERHEAD_TARGET_S, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out / 'cli.json'} (whole: the CLI timed from outside; floor: the framework's import, the "
          f"subject's construction and the golden {FLOOR_SCENARIO!r} scenario's steps, unchecked, which no "
          "certifier goes below; overhead = whole - floor, its target on an idle 2-core machine beside it; "
          "first: the same command with optspec's cache empty, and its overhead; the stages: the same certify in "
          "one process; isolation = whole - their sum)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
