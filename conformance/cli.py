"""``optspec``: list, certify, identify, matrix, golden verify.

Exit codes: 0 conforms (or verifies), 1 does not conform (or a golden file
fails), 2 a usage or setup error, printed as one line, 3 optspec itself
failed (a bug in optspec, printed as one line, with no verdict).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import optspec
from optspec import adapters, spec
from optspec.adapters.driver import SubjectInfo
from optspec.adapters.frameworks import describe
from optspec.conformance import run
from optspec.conformance.hidden import held, parse_holds
from optspec.conformance.interrupt import interrupted
from optspec.conformance.progress import Progress
from optspec.conformance.run import CertifyOptions
from optspec.conformance.state_storage import parse_state_dtypes, stored


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise adapters.SetupError(f"{message} (see `optspec --help`)")


def _sharding_choices() -> str:
    """``{fsdp2,zero1,ddp,mesh}``: every strategy of any framework, as argparse shows choices (each is checked
    against the framework's own in :func:`conformance.run.validate`, in one line)."""
    return "{" + ",".join(dict.fromkeys(s for f in adapters.FRAMEWORKS for s in describe(f).shardings)) + "}"


_HOLD_HELP = ("the value of a hyperparameter the constructor does not take (a Python literal, e.g. "
              "weight_decay=0), which the spec's run uses and the constructor is never given; repeat for each "
              "(default: the spec's, or the one value the subject behaves as among 0 and its framework's default, "
              "which the certificate's notes then name)")
_STATE_DTYPE_HELP = ("a state field the subject stores in fewer bits than its parameters (e.g. exp_avg=bfloat16, as "
                     "optax's mu_dtype): the spec's run stores it so, and the bounds take that dtype's rounding for "
                     "the state; or in an 8-bit blockwise format (exp_avg=bitsandbytes-dynamic-signed), or a whole "
                     "state's format (bitsandbytes-8bit), checked step by step from the state the subject holds; "
                     "or params=stochastic: bfloat16 or float16 parameters rounded stochastically, each a "
                     "neighbour of the exact step and the rounding unbiased; or params=kahan: bfloat16 or float16 "
                     "parameters kept with a Kahan compensation, their sum with it held to u^2; repeat for each "
                     "(default: every field "
                     "in the arithmetic's precision, the parameters rounded to nearest)")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="optspec", description=__doc__.splitlines()[0].replace("``", ""))
    top.add_argument("--version", action="version", version=f"%(prog)s {optspec.__version__}")
    sub = top.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="frameworks, subjects, rules and presets")
    for name, about in (("certify", "certify subjects against the spec; the exit code is the verdict"),
                        ("matrix", "every built-in subject against every preset, as a table")):
        p = sub.add_parser(name, help=about, description=about)
        p.add_argument("--framework", help=", ".join(adapters.FRAMEWORKS) + " (default: the framework of a "
                       "MODULE:ATTR plugin, inferred from it" + ("" if name == "certify" else "; otherwise all") + ")")
        p.add_argument("--impl", help="MODULE:ATTR[key=value,...] (a class or factory, with fixed constructor "
                                      "options as Python literals) or a built-in subject name (default: all)")
        p.add_argument("--rule", choices=list(spec.RULES),
                       help="the spec rule a MODULE:ATTR plugin implements (default adamw); for built-ins, "
                            "only the subjects of that rule")
        p.add_argument("--device", help="the framework's device, e.g. cpu or cuda:0 (default: its first)")
        p.add_argument("--dtype", choices=list(adapters.DTYPES),
                       help="the subject's dtype (default: float64, whose bounds are the tightest, so that the "
                            "smallest defect shows; float32 for "
                            f"{', '.join(f for f in adapters.FRAMEWORKS if describe(f).default_dtype == 'float32')}"
                            ", whose optimizers do not compute faithfully in float64 or have no float64 kernel: "
                            "docs/DEVIATIONS.md. identify defaults to float32: it tells conventions apart, "
                            "which differ by far more than float32's rounding)")
        p.add_argument("--examples", type=int, default=CertifyOptions.examples,
                       help=f"drawn cases per subject (default {CertifyOptions.examples})")
        p.add_argument("--seed", type=int, default=CertifyOptions.seed,
                       help=f"the seed of the drawn cases (default {CertifyOptions.seed})")
        p.add_argument("--out", help="a directory for certificate.json, junit.xml, report.md, report.html "
                                      "and the plots")
        p.add_argument("--golden-dir", help="golden files to replay (default: the installed ones)")
        p.add_argument("--time-limit", type=float, default=CertifyOptions.time_limit_s,
                       help="seconds a subject may take for one step (or its construction) before it is "
                            "killed and the verdict is 'does not conform' "
                            f"(default {CertifyOptions.time_limit_s:g})")
    certify_parser = sub.choices["certify"]
    certify_parser.add_argument("--hold", action="append", default=[], metavar="NAME=VALUE", help=_HOLD_HELP)
    certify_parser.add_argument("--state-dtype", action="append", default=[], metavar="FIELD=DTYPE",
                                help=_STATE_DTYPE_HELP)
    certify_parser.add_argument("--convention", help="the preset of the subject's rule to hold it to "
                                                     "(default: its own; `optspec list` names each rule's)")
    certify_parser.add_argument("--size", type=int,
                                help="certify at scale: one tensor of SIZE elements against the compiled spec")
    certify_parser.add_argument("--steps", type=int, help="steps of the --size run (default 100)")
    certify_parser.add_argument("--sharding", metavar=_sharding_choices(),
                                help=f"run the subject across ranks with its framework's strategy "
                                     f"({run.shardings_in_words()}) and check what each rank holds")
    certify_parser.add_argument("--world-size", type=int, help="ranks (a mesh's devices) of a sharded run "
                                                               "(default 2; alone, the framework's first --sharding)")
    matrix_parser = sub.choices["matrix"]
    matrix_parser.add_argument("--sharding", metavar=_sharding_choices(),
                               help="add rows of each subject run across ranks with this strategy of its "
                                    f"framework ({run.shardings_in_words()})")
    matrix_parser.add_argument("--world-size", type=int, help="ranks (a mesh's devices) of the sharded rows "
                                                              "(default 2; alone, a row for every strategy of each "
                                                              "framework that has them)")
    p = sub.add_parser("identify", help="which rule and convention a subject follows, knob by knob (every rule "
                                        "with conventions)",
                       description="which convention a subject follows, knob by knob, certified before "
                                   "it is claimed; the last line is one word: the preset, 'none' (the knobs "
                                   "fit, no preset has them) or 'unfit' (nothing fits, exit 1)")
    p.add_argument("--framework", help=", ".join(adapters.FRAMEWORKS) + " (default: inferred from a MODULE:ATTR "
                   "plugin)")
    p.add_argument("--impl", required=True, help="MODULE:ATTR[key=value,...] or a built-in subject name")
    p.add_argument("--rule", choices=[name for name, rule in spec.RULES.items() if rule.presets],
                   help="the spec rule a MODULE:ATTR plugin implements (default: adamw, and where nothing of "
                        "adamw fits, each other rule in turn until one does, named on a 'rule:' line)")
    p.add_argument("--dtype", choices=list(adapters.DTYPES), default="float32",
                   help="the dtype the subject runs in (default float32, in every framework: the conventions "
                        "differ by far more than its rounding, and every framework's optimizers step in it; "
                        "certify defaults to float64 where the framework computes in it faithfully, whose "
                        "tighter bounds show the smallest defect)")
    p.add_argument("--examples", type=int, default=CertifyOptions.examples,
                   help=f"drawn cases of the certification that backs a fit (default {CertifyOptions.examples})")
    p.add_argument("--hold", action="append", default=[], metavar="NAME=VALUE", help=_HOLD_HELP)
    p.add_argument("--state-dtype", action="append", default=[], metavar="FIELD=DTYPE", help=_STATE_DTYPE_HELP)
    golden = sub.add_parser("golden", help="verify the golden trajectories (regenerate them in a clone: "
                                           "nox -s golden)")
    golden.add_argument("action", choices=["verify"])
    golden.add_argument("--golden-dir", help="the golden directory (default: the installed one)")
    return top


def options_of(args: argparse.Namespace, framework: str | None = None) -> CertifyOptions:
    """The certification options of a ``certify`` or ``matrix`` command line (``framework`` for a matrix row)."""
    return CertifyOptions(framework=framework or args.framework, impl=args.impl, rule=args.rule,
                          convention=getattr(args, "convention", None), dtype=args.dtype, device=args.device,
                          examples=args.examples, seed=args.seed, golden_dir=args.golden_dir,
                          size=getattr(args, "size", None), steps=getattr(args, "steps", None),
                          time_limit_s=args.time_limit, sharding=getattr(args, "sharding", None),
                          world_size=getattr(args, "world_size", None),
                          hold=tuple(getattr(args, "hold", None) or ()),
                          state_dtypes=tuple(getattr(args, "state_dtype", None) or ()))


def matrix_frameworks(args: argparse.Namespace) -> list[str]:
    return [args.framework] if args.framework else list(adapters.FRAMEWORKS)


def matrix_options(args: argparse.Namespace, framework: str) -> list[CertifyOptions]:
    """The certifications of ``framework``'s matrix rows: in one process, then, with ``--sharding`` or
    ``--world-size``, under each strategy of the framework's that ``--sharding`` names (every one where it names
    none) across ``--world-size`` ranks."""
    single = dataclasses.replace(options_of(args, framework), sharding=None, world_size=None)
    if args.sharding is None and args.world_size is None:
        return [single]
    return [single, *(dataclasses.replace(single, sharding=strategy, world_size=args.world_size)
                      for strategy in describe(framework).shardings if args.sharding in (None, strategy))]


def infer_framework(args: argparse.Namespace) -> None:
    """Sets ``args.framework`` from a plugin ``--impl`` where it is not given (:func:`adapters.infer_framework`)."""
    if args.command not in ("certify", "identify", "matrix") or args.framework:
        return
    if adapters.is_plugin(args.impl):
        args.framework = adapters.infer_framework(args.impl)
    elif args.command != "matrix":
        raise adapters.SetupError(f"{args.command} needs --framework (one of {', '.join(adapters.FRAMEWORKS)}) "
                                  "unless --impl names a MODULE:ATTR plugin, whose framework is inferred")


def validate(args: argparse.Namespace) -> None:
    """Every option checked before any work is done; a problem is one :class:`adapters.SetupError` line."""
    if args.command == "certify":
        run.validate(options_of(args))
    elif args.command == "identify":
        if args.examples < 0:
            raise adapters.SetupError(f"--examples must be 0 or more (got {args.examples})")
        parse_holds(args.hold)
        parse_state_dtypes(args.state_dtype)
    elif args.command == "matrix":
        if args.framework is not None:  # --sharding and --world-size as certify takes them
            run.validate(options_of(args))
        elif args.sharding is not None and not any(args.sharding in describe(f).shardings
                                                   for f in adapters.FRAMEWORKS):
            raise adapters.SetupError(f"--sharding {args.sharding!r}: no framework has it "
                                      f"({run.shardings_in_words()})")
        for framework in matrix_frameworks(args):
            for options in matrix_options(args, framework):
                run.validate(options)
    if getattr(args, "out", None):
        run.check_writable_directory(args.out)
        run.check_plots()


def cmd_list(args: argparse.Namespace) -> int:
    print("rules: " + ", ".join(spec.RULES))
    for rule in spec.RULES.values():
        if rule.presets:
            print(f"presets of {rule.name}: " + ", ".join(rule.presets))
    for framework in adapters.FRAMEWORKS:
        if not adapters.is_available(framework):
            print(f"{framework}: not installed")
            continue
        for subject in adapters.subjects(framework):
            print(f"{framework}: {subject.name} ({subject.rule}"
                  + (f", {subject.convention}" if subject.convention else "") + ")")
    return 0


def print_written(written, out: str) -> None:
    """``wrote DIR/a, b, c`` and a line for each thing left out (:class:`conformance.report.Written`)."""
    print(f"wrote {str(Path(out)).rstrip('/')}/" + ", ".join(written.files))
    for note in written.notes:
        print(note)


def cmd_certify(args: argparse.Namespace) -> int:
    """Certifies each subject in a supervised worker (:func:`conformance.run.certify_all`)."""
    from optspec.conformance import certify, report

    options = options_of(args)
    certs = []
    for cert in run.certify_all(options, progress=certify.stderr_progress):
        what = (f"{args.size} elements x {options.steps or 100} steps" if args.size is not None
                else f"{cert.cases_run} case{'' if cert.cases_run == 1 else 's'}")
        certs.append(cert)
        print(cert.headline(what))
        for line in cert.failure.lines() if cert.failure else []:
            print(line)
    if args.out:
        PROGRESS.stage(f"writing {args.out}")
        print_written(report.write(certs, args.out), args.out)
    return 0 if all(c.passes for c in certs) else 1


def cmd_identify(args: argparse.Namespace) -> int:
    from optspec.conformance.identify import identify, identify_rule

    def resolved(rule: str | None) -> SubjectInfo:
        subject = adapters.resolve_subject(args.framework, args.impl, rule)[0]
        if holds := parse_holds(args.hold):
            subject = held(subject, holds, "declared with --hold")
        return stored(subject, parse_state_dtypes(args.state_dtype))

    options = {"dtype": args.dtype, "examples": args.examples,
               "golden_dir": CertifyOptions(args.framework).resolved_golden_dir}
    subject = resolved(args.rule)
    # without --rule, a plugin may follow any rule of the spec; a built-in's rule is its own
    found = (identify_rule(subject, resolved, **options) if args.rule is None and ":" in (args.impl or "")
             else identify(subject, **options))
    for line in found.lines():
        print(line)
    return 0 if found.fits else 1


def cmd_matrix(args: argparse.Namespace) -> int:
    """Every built-in subject against every preset of its rule (or the rule, if it has none), with a legend.

    Each framework's cells are certified in one supervised worker, so a
    subject that crashes or hangs fails its cell and the others go on.
    Without ``--framework``, a framework whose subjects are another's here
    (:attr:`Framework.same_as`: Keras 3 on the TensorFlow backend) is left
    out, and a line under the table says so.
    """
    from optspec.conformance import certify, report
    from optspec.conformance.matrix import Matrix

    found = Matrix()
    frameworks = [f for f in matrix_frameworks(args) if args.framework or adapters.is_available(f)]
    for framework in frameworks:
        same = describe(framework).same_as
        if not args.framework and same is not None and (other := same()) in frameworks:
            found.notes.append(f"{framework}: its subjects are {other}'s here, listed once, under {other}")
            continue
        for options in matrix_options(args, framework):
            for subject, preset, cert in run.certify_matrix(options, progress=certify.stderr_progress):
                subject = dataclasses.replace(subject, sharding=options.resolved_sharding)
                cell = found.add(subject, preset, cert, options.resolved_dtype)
                print(f"{cert.label} vs {preset or subject.rule}: {cell.text}", file=sys.stderr)
    table = found.text()
    print("\n" + table)
    if args.out:
        PROGRESS.stage(f"writing {args.out}")
        print_written(report.write(found.certs, args.out, informational=frozenset(found.informational),
                                   matrix=found), args.out)
    return 0 if found.passes else 1


def cmd_golden(args: argparse.Namespace) -> int:
    from optspec.conformance import golden

    directory = args.golden_dir or golden.DEFAULT_DIR
    if args.golden_dir is not None and not os.path.isdir(args.golden_dir):
        raise adapters.SetupError(f"--golden-dir {args.golden_dir!r} is not a directory")
    problems = golden.verify(directory)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"verified: every golden file in {directory} is exactly what spec {spec.SPEC_VERSION} produces")
    return 1 if problems else 0


#: The CLI's line of progress (:mod:`optspec.conformance.progress`).
PROGRESS = Progress()


def _stage_of(args: argparse.Namespace) -> str:
    what = getattr(args, "impl", None) or "every built-in subject"
    where = getattr(args, "framework", None) or "every framework"
    return {"certify": f"certifying {what} ({where})", "identify": f"identifying {what} ({where})",
            "matrix": f"certifying {what} against every preset ({where})",
            "golden": "verifying the golden files"}.get(args.command, args.command)


def main(argv: Sequence[str] | None = None) -> int:
    from optspec.conformance.golden import GoldenError

    try:
        args = parser().parse_args(argv)
        infer_framework(args)
        validate(args)
        if getattr(args, "framework", None):
            adapters.check_framework(args.framework)
        command = {"list": cmd_list, "certify": cmd_certify, "identify": cmd_identify,
                   "matrix": cmd_matrix, "golden": cmd_golden}[args.command]
        with PROGRESS.running():
            PROGRESS.stage(_stage_of(args))
            return command(args)
    except (adapters.SetupError, adapters.SubjectError, GoldenError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except adapters.InternalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:
        if not adapters.raised_by_optspec(exc):
            raise
        print(f"error: optspec itself failed: {adapters.one_line(exc)} (at {adapters.where_raised(exc)}); this is a "
              "bug in optspec, not a verdict on the subject: please report it with the command that gave it",
              file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return interrupted()


if __name__ == "__main__":
    sys.exit(main())
