"""``python -m conformance``: list, certify, identify, matrix, golden verify|regenerate.

Exit codes: 0 conforms (or verifies), 1 does not conform (or a golden file
fails), 2 a usage or setup error, printed as one line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import adapters
import spec


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise adapters.SetupError(f"{message} (see `python -m conformance --help`)")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="python -m conformance", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="frameworks, subjects, rules and presets")
    for name in ("certify", "matrix"):
        p = sub.add_parser(name)
        p.add_argument("--framework", required=name == "certify", choices=None)
        p.add_argument("--impl", help="MODULE:ATTR[key=value,...] (a class or factory, with fixed constructor "
                                      "options as Python literals) or a built-in subject name")
        p.add_argument("--rule", choices=list(spec.RULES),
                       help="the spec rule a MODULE:ATTR plugin implements (default adamw)")
        p.add_argument("--convention")
        p.add_argument("--device")
        p.add_argument("--dtype", help="default: float64 (float32 for tensorflow, see docs/DEVIATIONS.md)")
        p.add_argument("--examples", type=int, default=100)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out")
        p.add_argument("--golden-dir")
    certify_parser = sub.choices["certify"]
    certify_parser.add_argument("--size", type=int,
                                help="certify at scale: one tensor of SIZE elements against the compiled spec")
    certify_parser.add_argument("--steps", type=int, default=100, help="steps of the --size run (default 100)")
    p = sub.add_parser("identify")
    p.add_argument("--framework", required=True)
    p.add_argument("--impl", required=True)
    p.add_argument("--rule", choices=["adamw", "adam"], help="adamw (default) or adam (L2)")
    golden = sub.add_parser("golden")
    golden.add_argument("action", choices=["verify", "regenerate"])
    golden.add_argument("--golden-dir")
    return top


def _convention(name: str | None) -> str | None:
    if name is not None:
        try:
            spec.resolve(name)
        except ValueError as exc:
            raise adapters.SetupError(str(exc)) from None
    return name


def default_dtype(framework: str) -> str:
    """float64, but float32 for Keras-TF, whose float64 path drifts through tensorflow#35938."""
    return "float32" if framework == "tensorflow" else "float64"


def cmd_list(args: argparse.Namespace) -> int:
    print("rules: " + ", ".join(spec.RULES))
    print("presets: " + ", ".join(spec.PRESETS))
    for framework in adapters.FRAMEWORKS:
        if not adapters.is_available(framework):
            print(f"{framework}: not installed")
            continue
        for subject in adapters.subjects(framework):
            print(f"{framework}: {subject.name} ({subject.rule}"
                  + (f", {subject.convention}" if subject.convention else "") + ")")
    return 0


def cmd_certify(args: argparse.Namespace) -> int:
    from conformance import certify, golden, report

    subjects = adapters.resolve_subject(args.framework, args.impl, args.rule)
    golden_dir = args.golden_dir or (golden.DEFAULT_DIR if golden.DEFAULT_DIR.is_dir() else None)
    if args.size is not None:
        from conformance.scale import certify_at_scale

        subjects = [s for s in subjects if spec.get_rule(s.rule).takes_convention] or subjects
        dtype = args.dtype or "float32"
    else:
        dtype = args.dtype or default_dtype(args.framework)
    certs = []
    for subject in subjects:
        if args.size is not None:
            cert = certify_at_scale(subject, size=args.size, steps=args.steps, convention=_convention(args.convention),
                                    dtype=dtype, device=args.device, seed_value=args.seed,
                                    progress=certify.stderr_progress)
            what = f"{args.size} elements x {args.steps} steps"
        else:
            cert = certify.certify(subject, convention=_convention(args.convention), dtype=dtype,
                                   device=args.device, examples=args.examples, seed_value=args.seed,
                                   golden_dir=golden_dir, progress=certify.stderr_progress)
            what = f"{cert.cases_run} cases"
        certs.append(cert)
        worst = cert.checks["trajectory"].get("worst_ulps", 0.0)
        print(f"{cert.verdict.upper()}: {cert.subject} vs {cert.convention or cert.rule} "
              f"({what}, {dtype}, worst {worst:.3g} ulp"
              + (f", {len(cert.golden)} golden scenarios" if cert.golden else "") + ")")
        if cert.failure:
            fail = cert.failure
            ulps = f" ({fail['ulps']:.3g} ulp)" if fail.get("ulps") else ""
            print(f"  failed {fail['check']} at step {fail['step']}{ulps}: {fail['detail']}")
            if fail['hint']:
                print(f"  {fail['hint']}")
            print(f"  case: {fail['case']}")
            print(f"  reproduce: {fail['reproduce_cli']}")
    if args.out:
        report.write(certs, args.out)
        print(f"wrote {args.out}/certificate.json, junit.xml, report.md")
    return 0 if all(c.conforms for c in certs) else 1


def cmd_identify(args: argparse.Namespace) -> int:
    from conformance.identify import identify

    subject = adapters.resolve_subject(args.framework, args.impl, args.rule)[0]
    found = identify(subject)
    for line in found.lines():
        print(line)
    return 0 if found.fits else 1


def cmd_matrix(args: argparse.Namespace) -> int:
    """Every built-in subject against every preset (Adam family) or its rule."""
    from conformance import certify

    frameworks = [args.framework] if args.framework else list(adapters.FRAMEWORKS)
    rows = []
    for framework in frameworks:
        for subject in adapters.resolve_subject(framework, args.impl, args.rule):
            targets = list(spec.PRESETS) if spec.get_rule(subject.rule).takes_convention else [None]
            cells = {}
            for preset in targets:
                if preset and subject.fixed.get("amsgrad") and spec.PRESETS[preset].amsgrad == "off":
                    cells[preset] = "n/a"
                    continue
                cert = certify.certify(subject, convention=preset, dtype=args.dtype or default_dtype(framework),
                                       device=args.device,
                                       examples=args.examples, seed_value=args.seed)
                worst = cert.checks["trajectory"].get("worst_ulps", 0.0)
                cells[preset or subject.rule] = f"PASS {worst:.2g}ulp" if cert.conforms else "fail"
            rows.append((subject, cells))
            print(f"{subject.name}: " + "  ".join(f"{k}={v}" for k, v in cells.items()), file=sys.stderr)
    columns = [*spec.PRESETS, "rule"]
    width = max(len(s.name) for s, _ in rows)
    print(f"\n{'subject':<{width}}  " + "  ".join(f"{c:>14}" for c in columns))
    for subject, cells in rows:
        values = [cells.get(c, "") for c in spec.PRESETS] + [cells.get(subject.rule, "")]
        print(f"{subject.name:<{width}}  " + "  ".join(f"{v:>14}" for v in values))
    native_ok = all(
        cells.get(subject.convention, "").startswith("PASS")
        for subject, cells in rows if subject.convention
    )
    return 0 if native_ok else 1


def cmd_golden(args: argparse.Namespace) -> int:
    from conformance import golden

    directory = args.golden_dir or golden.DEFAULT_DIR
    if args.action == "regenerate":
        count = golden.regenerate(directory)
        print(f"regenerated {count} golden files in {directory}")
        return 0
    problems = golden.verify(directory)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"verified: every golden file in {directory} is exactly what spec {spec.SPEC_VERSION} produces")
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    from conformance.golden import GoldenError

    try:
        args = parser().parse_args(argv)
        if getattr(args, "framework", None):
            adapters.check_framework(args.framework)
        return {"list": cmd_list, "certify": cmd_certify, "identify": cmd_identify,
                "matrix": cmd_matrix, "golden": cmd_golden}[args.command](args)
    except (adapters.SetupError, adapters.SubjectError, GoldenError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
