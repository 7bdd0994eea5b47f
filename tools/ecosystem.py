"""``python -m tools.ecosystem``: the scoreboard of real optimizers (AdamWs, and Lions, NAdams and RAdams) (``nox -s ecosystem``), and its check.

Each row of :data:`tools.ecosystem_rows.IMPLEMENTATIONS` runs in a process
of its own (a framework per process, as a user's would be): ``identify``
finds its convention in float32, and ``certify`` holds it to the convention
its package claims in each of its dtypes.  The rows go to ``docs/ecosystem/``:
``scoreboard.json`` (every result, with package versions), ``README.md`` and
``index.html`` (:mod:`tools.ecosystem_pages`) and each row's certificates,
all swapped in at once when every row has run.

``--check`` runs the rows afresh into a temporary folder and compares them
with the committed scoreboard, as ``optspec golden verify`` does the golden
files: a row whose version, verdict, cause, identified convention or knobs
changed fails it (errors and timings are not compared).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optspec.conformance.atomic import replace_directory, write_text
from tools import ecosystem_pages
from tools.ecosystem_records import Implementation, Measured, Verdict, agreement, differing_knobs
from tools.ecosystem_rows import IMPLEMENTATIONS

if TYPE_CHECKING:
    from optspec.conformance.verdict import Certificate

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / "docs" / "ecosystem"
#: Seconds one row (identify and every certification) may take before it is reported as hung.
ROW_TIME_LIMIT_S = 900


def by_name(names: Sequence[str] | None) -> list[Implementation]:
    """The rows named (every row for None); a one-line error names an unknown one."""
    if not names:
        return list(IMPLEMENTATIONS)
    known = {impl.name: impl for impl in IMPLEMENTATIONS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"error: no scoreboard row named {unknown[0]!r}; `python -m tools.ecosystem --list` "
                         "names them")
    return [known[n] for n in names]


def measure(impl: Implementation, out: Path) -> Measured:
    """Identifies and certifies ``impl`` in this process; writes its certificates to ``out/<slug>.json``."""
    from importlib.metadata import version

    from optspec import adapters
    from optspec.conformance import report
    from optspec.conformance.certify import certify
    from optspec.conformance.golden import DEFAULT_DIR as GOLDEN
    from optspec.conformance.identify import identify
    from optspec.conformance.state_storage import parse_state_dtypes, stored

    start = time.monotonic()
    golden_dir = str(GOLDEN) if GOLDEN.is_dir() else None
    subject = adapters.resolve_subject(impl.framework, impl.impl, impl.rule)[0]
    if impl.state:
        subject = stored(subject, parse_state_dtypes(impl.state))
    found = identify(subject, dtype="float32", examples=impl.examples, golden_dir=golden_dir)
    said = found.lines()
    identified = said[-1]
    knobs = dict(found.knobs) if identified != "unfit" else {}
    # identify certified its fit in float32 with these examples: where that is the claim, its certificate is
    # the one certify would give, unless identify found a state format, which certify never takes undeclared
    reused = found.certificate if (found.certificate is not None and found.certificate.convention == impl.claims
                                   and found.state_format is None) else None
    certs = [reused if reused is not None and dtype == reused.dtype else
             certify(subject, convention=impl.claims, dtype=dtype, examples=impl.examples, golden_dir=golden_dir)
             for dtype in impl.dtypes]
    verdicts = tuple(_verdict(cert) for cert in certs)
    (out / f"{impl.slug}.json").write_text(report.to_json(certs))
    return Measured(name=impl.name, version=version(impl.package), identified=identified, knobs=knobs,
                    fit=round(found.error_over_bound, 3) if math.isfinite(found.error_over_bound) else None,
                    identify_said=tuple(said), verdicts=verdicts,
                    agrees=agreement(impl.reading, impl.rule, identified, knobs),
                    differs=differing_knobs(impl.claims, impl.rule, identified, knobs),
                    seconds=round(time.monotonic() - start, 1))


def _verdict(cert: Certificate) -> Verdict:
    """A certificate's verdict in the scoreboard's words; the failure's error and bound per step to 4 digits."""
    if not cert.applicable:
        return Verdict(cert.dtype, cert.verdict, cert.why_not_applicable)
    if cert.failure is None:
        return Verdict(cert.dtype, cert.verdict)
    fail = cert.failure
    cause = fail.hint if fail.hint and fail.hint.startswith(("most likely knob: ", "most likely knobs: ")) else (
        f"{fail.check} at step {fail.step}: {fail.detail}" + (f"; {fail.hint}" if fail.hint else ""))
    return Verdict(cert.dtype, cert.verdict, cause,
                   tuple((float(f"{e:.4g}"), float(f"{b:.4g}")) for e, b in fail.error_and_bound_per_step))


def run_rows(rows: list[Implementation], out: Path, jobs: int, took: Mapping[str, float] | None = None,
             pythons: Mapping[str, str] | None = None) -> tuple[list[Measured], list[str]]:
    """Each row in a process of its own, ``jobs`` at a time, the longest first by the seconds each ``took``
    before, a row of an environment of its own run by that environment's interpreter (``pythons``): the
    measured rows, and a line per row that could not run."""
    took, pythons = took or {}, pythons or {}

    def one(impl: Implementation) -> tuple[Measured | None, str | None]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        if impl.backend:
            env["KERAS_BACKEND"] = impl.backend
        python = sys.executable if impl.environment is None else pythons.get(impl.environment)
        if python is None:
            return None, (f"{impl.name}: runs in an environment of its own: give its interpreter with --python "
                          f"{impl.environment}=PATH (nox -s ecosystem does)")
        try:
            done = subprocess.run([python, "-m", "tools.ecosystem", "--row", impl.name, "--out", str(out)],
                                  env=env, cwd=ROOT, capture_output=True, text=True, timeout=ROW_TIME_LIMIT_S)
        except subprocess.TimeoutExpired:
            return None, f"{impl.name}: did not finish in {ROW_TIME_LIMIT_S} s"
        result = out / f"{impl.slug}.row.json"
        if done.returncode != 0 or not result.is_file():
            last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            return None, f"{impl.name}: exit {done.returncode}: {last}"
        row = from_json(json.loads(result.read_text()))
        result.unlink()
        print(f"{impl.name}: {row.identified}; " + ", ".join(f"{v.dtype} {v.verdict}" for v in row.verdicts)
              + f" ({row.seconds:.0f} s)", flush=True)
        return row, None

    # the longest rows first (by the seconds they took last time): DeepSpeed's op compiles for two minutes,
    # beside which the short rows fill the other worker
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        started = {impl.name: pool.submit(one, impl)
                   for impl in sorted(rows, key=lambda impl: -took.get(impl.name, 0.0))}
        results = [started[impl.name].result() for impl in rows]
    return [r for r, _ in results if r is not None], [e for _, e in results if e is not None]


def from_json(data: dict[str, Any]) -> Measured:
    """A :class:`Measured` row from its ``scoreboard.json`` entry."""
    verdicts = tuple(Verdict(v["dtype"], v["verdict"], v.get("cause"), tuple(tuple(p) for p in v.get("errors", ())))
                     for v in data["verdicts"])
    return Measured(**{**{f.name: data[f.name] for f in dataclasses.fields(Measured) if f.name in data},
                       "identify_said": tuple(data["identify_said"]), "verdicts": verdicts})


def to_json(rows: list[Measured]) -> str:
    """``scoreboard.json``: every row, in the order of :data:`IMPLEMENTATIONS`, with what it claims."""
    claims = {impl.name: impl for impl in IMPLEMENTATIONS}
    entries = []
    for row in rows:
        impl = claims[row.name]
        entries.append({
            **dataclasses.asdict(row),
            "package": impl.package, "framework": impl.where, "impl": impl.impl, "claims": impl.claims,
            "reading": impl.reading.describe(), "sources": [c.text() for c in impl.sources],
            "certificate": f"certificates/{impl.slug}.json",
        })
    return json.dumps({"rows": entries}, indent=1, sort_keys=True) + "\n"


def mismatches(committed: list[Measured], fresh: list[Measured]) -> list[str]:
    """One line per committed row that a fresh run no longer reproduces (or did not run)."""
    fresh_by_name = {row.name: row for row in fresh}
    lines = []
    for row in committed:
        now = fresh_by_name.get(row.name)
        if now is None:
            lines.append(f"{row.name}: not in the fresh run")
            continue
        was, is_ = row.compared, now.compared
        for key in was:
            if was[key] != is_[key]:
                lines.append(f"{row.name}: {key} was {was[key]!r}, a fresh run gives {is_[key]!r}")
    return lines


def pages(rows: list[Measured]) -> dict[str, str]:
    """``README.md`` and ``index.html`` of ``rows``, by file name."""
    impls = {impl.name: impl for impl in IMPLEMENTATIONS}
    pairs = [(impls[row.name], row) for row in rows]
    return {"README.md": ecosystem_pages.markdown(pairs), "index.html": ecosystem_pages.html_page(pairs)}


def write(rows: list[Measured], certificates: Path, out: Path) -> None:
    """The scoreboard into ``out``, swapped in whole: until the last rename the committed folder is intact."""

    def fill(staging: Path) -> None:
        shutil.copytree(certificates, staging / "certificates")  # each row's {slug}.json
        (staging / "certificates").chmod(staging.stat().st_mode)  # not the scratch folder's 0700
        write_text(staging / "scoreboard.json", to_json(rows))
        for name, text in pages(rows).items():
            write_text(staging / name, text)

    replace_directory(out, fill)


def load(directory: Path) -> list[Measured]:
    path = directory / "scoreboard.json"
    if not path.is_file():
        raise SystemExit(f"error: {path} does not exist; regenerate it with `nox -s ecosystem`")
    return [from_json(entry) for entry in json.loads(path.read_text())["rows"]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.ecosystem", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_DIR), help="the scoreboard's folder (default docs/ecosystem)")
    parser.add_argument("--check", action="store_true",
                        help="run the rows afresh and fail where a committed row no longer matches")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these rows only")
    parser.add_argument("--jobs", type=int, default=2, help="rows run at once (default 2)")
    parser.add_argument("--list", action="store_true", help="name every row")
    parser.add_argument("--pages", action="store_true",
                        help="rewrite README.md and index.html from the committed scoreboard.json, running nothing")
    parser.add_argument("--python", action="append", default=[], metavar="ENVIRONMENT=PATH",
                        help="the interpreter of an environment the rows of that environment run in "
                             "(mindspore=PATH: MindSpore needs NumPy 1)")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # one row, in this process (run_rows's children)
    args = parser.parse_args(argv)
    if args.list:
        for impl in IMPLEMENTATIONS:
            print(f"{impl.name}: {impl.impl} ({impl.where}), claims {impl.claims}")
        return 0
    if args.row:
        (impl,) = by_name([args.row])
        row = measure(impl, Path(args.out))
        (Path(args.out) / f"{impl.slug}.row.json").write_text(json.dumps(dataclasses.asdict(row)))
        return 0
    if args.pages:
        out = Path(args.out)
        for name, text in pages(load(out)).items():
            write_text(out / name, text)
        print(f"wrote {out}/README.md, index.html")
        return 0
    if args.jobs < 1:
        raise SystemExit(f"error: --jobs {args.jobs}: give at least 1")
    pythons = {}
    for given in args.python:
        environment, _, path = given.partition("=")
        if not path or not os.access(path, os.X_OK):
            raise SystemExit(f"error: --python {given}: give ENVIRONMENT=PATH, PATH an interpreter that runs")
        pythons[environment] = os.path.abspath(path)
    rows = by_name(args.only)
    out = Path(args.out)
    committed = load(out) if args.check else None
    before = committed if committed is not None else load(out) if (out / "scoreboard.json").is_file() else []
    with tempfile.TemporaryDirectory(prefix="optspec-ecosystem-") as scratch:
        measured, failed = run_rows(rows, Path(scratch), args.jobs, {row.name: row.seconds for row in before},
                                    pythons)
        for line in failed:
            print(f"could not run: {line}")
        if committed is not None:
            wanted = {impl.name for impl in rows}
            lines = mismatches([r for r in committed if r.name in wanted], measured)
            lines += [f"{impl.name}: a row with no committed result; regenerate with `nox -s ecosystem`"
                      for impl in rows if impl.name not in {r.name for r in committed}]
            for line in lines:
                print(f"MISMATCH {line}")
            stale = {impl.name for impl in rows if any(line.startswith(f"{impl.name}: ") for line in lines)}
            print(f"{len(rows) - len(stale)} of {len(rows)} rows match the committed scoreboard")
            return 1 if lines else 0
        if failed:
            print(f"{out} left as it was: {len(failed)} of {len(rows)} rows could not run")
            return 1
        if args.only and (out / "scoreboard.json").is_file():  # the other rows stay as committed
            kept = [row for row in load(out) if row.name not in {impl.name for impl in rows}]
            for row in kept:
                shutil.copy(out / "certificates" / f"{by_name([row.name])[0].slug}.json", scratch)
            order = [impl.name for impl in IMPLEMENTATIONS]
            measured = sorted([*kept, *measured], key=lambda row: order.index(row.name))
        write(measured, Path(scratch), out)
    print(f"wrote {out}: {len(measured)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
