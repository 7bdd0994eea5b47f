"""The one certification entry point: the CLI's ``certify`` and the pytest plugin both call :func:`certify_all`.

:class:`CertifyOptions` owns the defaults (the dtype per framework, the
installed golden files, the subject's own convention, seed 0) and
:func:`validate` checks every option before any work is done.  Each subject
is certified in a supervised worker (:mod:`optspec.conformance.isolation`).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from optspec import adapters, spec
from optspec.adapters.driver import SubjectInfo
from optspec.adapters.frameworks import has_part
from optspec.conformance.certify import DEFAULT_TIME_LIMIT_S
from optspec.conformance.expectation import Expectation
from optspec.conformance.hidden import held, parse_holds
from optspec.conformance.isolation import Request, certify_isolated, start_workers
from optspec.conformance.state_storage import parse_state_dtypes, stored
from optspec.conformance.verdict import Certificate


def default_dtype(framework: str) -> str:
    """The framework's own default (float64, but float32 for Keras-TF, which drifts in float64 through
    tensorflow#35938, and for MLX, whose GPU has no float64)."""
    return adapters.frameworks.describe(framework).default_dtype


@dataclasses.dataclass(frozen=True)
class CertifyOptions:
    """Everything that affects a verdict; ``None`` means the default.

    Attributes:
      framework: a name of :data:`adapters.FRAMEWORKS`.
      impl: ``MODULE:ATTR[key=value,...]`` or a built-in subject name; None for every built-in.
      rule: the rule a plugin implements (adamw), or the rule of the built-ins to take.
      convention: the preset of the subject's rule to hold it to (default: its own).
      dtype: the subject's dtype (:func:`default_dtype`; float32 at ``size``).
      device: the framework's device (its first).
      examples: drawn cases per subject.
      seed: the seed of the drawn cases.
      golden_dir: golden files to replay (the installed ones, if present).
      size, steps: certify at scale: one tensor of ``size`` elements over ``steps`` steps (100).
      time_limit_s: seconds a subject may take for one step before it is killed.
      sharding: run the subject across ranks with this strategy of its framework
        (:attr:`~optspec.adapters.frameworks.Framework.shardings`: torch's fsdp2, zero1,
        ddp; jax's mesh); with ``world_size`` alone, the framework's first.
      world_size: the number of ranks (devices of a mesh) of a sharded run (default 2).
      hold: ``NAME=VALUE`` items: the values of hyperparameters the subject's
        constructor does not take (:mod:`optspec.conformance.hidden`).
      state_dtypes: ``FIELD=DTYPE`` items: the dtypes the subject stores state
        fields in (:mod:`optspec.conformance.state_storage`).
    """

    framework: str
    impl: str | None = None
    rule: str | None = None
    convention: str | None = None
    dtype: str | None = None
    device: str | None = None
    examples: int = 100
    seed: int = 0
    golden_dir: str | None = None
    size: int | None = None
    steps: int | None = None
    time_limit_s: float = DEFAULT_TIME_LIMIT_S
    sharding: str | None = None
    world_size: int | None = None
    hold: tuple[str, ...] = ()
    state_dtypes: tuple[str, ...] = ()

    @property
    def resolved_sharding(self) -> adapters.Sharding | None:
        if self.sharding is None and self.world_size is None:
            return None
        strategy = self.sharding or adapters.describe(self.framework).shardings[0]
        if (launched := adapters.launched()) is not None and launched.framework == self.framework:
            return adapters.Sharding(strategy, launched.world_size, launcher=launched.launcher)
        return adapters.Sharding(strategy, self.world_size if self.world_size is not None else 2)

    @property
    def resolved_dtype(self) -> str:
        if self.dtype is not None:
            return self.dtype
        return "float32" if self.size is not None else default_dtype(self.framework)

    @property
    def resolved_golden_dir(self) -> str | None:
        from optspec.conformance import golden

        if self.golden_dir is not None:
            return self.golden_dir
        return str(golden.DEFAULT_DIR) if golden.DEFAULT_DIR.is_dir() else None


def validate(options: CertifyOptions) -> None:
    """Raises a one-line :class:`adapters.SetupError` for the first bad option, before any work."""
    adapters.check_framework(options.framework)
    if options.examples < 0:
        raise adapters.SetupError(f"--examples must be 0 or more (got {options.examples})")
    if options.size is not None and options.size < 1:
        raise adapters.SetupError(f"--size must be 1 or more (got {options.size})")
    if options.size is not None and not has_part(options.framework, "compiled"):
        compiled = ", ".join(f for f in adapters.FRAMEWORKS if has_part(f, "compiled"))
        raise adapters.SetupError(f"--size checks against the spec compiled for the framework, which {options.framework} "
                                  f"does not have: drop --size, or use it with {compiled}")
    if options.steps is not None:
        if options.size is None:
            raise adapters.SetupError("--steps applies only with --size: add --size N, or drop --steps")
        if options.steps < 1:
            raise adapters.SetupError(f"--steps must be 1 or more (got {options.steps})")
    if options.time_limit_s <= 0:
        raise adapters.SetupError(f"--time-limit must be positive (got {options.time_limit_s:g})")
    if options.dtype is not None and options.dtype not in adapters.DTYPES:
        raise adapters.SetupError(f"--dtype {options.dtype!r}: use one of {', '.join(adapters.DTYPES)}")
    if options.rule is not None and options.rule not in spec.RULES:
        raise adapters.SetupError(f"--rule {options.rule!r}: use one of {', '.join(spec.RULES)}")
    if options.convention is not None and options.convention not in spec.preset_names():
        raise adapters.SetupError(f"unknown convention {options.convention!r}: use one of "
                                  f"{', '.join(spec.preset_names())}")
    if options.sharding is not None or options.world_size is not None:
        shardings = adapters.describe(options.framework).shardings
        flag = "--sharding" if options.sharding is not None else "--world-size"
        if not shardings:
            raise adapters.SetupError(f"{flag}: {options.framework} subjects are certified in one process; drop "
                                      f"{flag} ({shardings_in_words()})")
        if options.sharding is not None and options.sharding not in shardings:
            raise adapters.SetupError(f"--sharding {options.sharding!r}: use one of {', '.join(shardings)}")
        if options.world_size is not None and options.world_size < 1:
            raise adapters.SetupError(f"--world-size must be 1 or more (got {options.world_size})")
        if options.size is not None:
            raise adapters.SetupError(f"--size certifies one process at scale: drop --size or {flag}")
        if (missing := adapters.frameworks.missing_for_sharding(options.framework)) is not None:
            raise adapters.SetupError(f"{flag}: {missing}")
        if spec.StateStorage(parse_state_dtypes(options.state_dtypes)).quantized():
            raise adapters.SetupError(f"{flag}: a quantized state format is not checked across ranks yet: certify "
                                      f"it in one process (drop {flag})")
    if (launched := adapters.launched()) is not None:
        _validate_launched(options, launched)
    if options.golden_dir is not None and not os.path.isdir(options.golden_dir):
        raise adapters.SetupError(f"--golden-dir {options.golden_dir!r} is not a directory")
    for flag, given in (("--hold", parse_holds(options.hold)), ("--state-dtype", parse_state_dtypes(options.state_dtypes))):
        if given and options.size is not None:
            raise adapters.SetupError(f"{flag} applies to a certification of cases: drop --size or {flag}")


def _validate_launched(options: CertifyOptions, launched: adapters.Launched) -> None:
    """Under a framework's own launcher (``torchrun``) a run is sharded across the ranks it started."""
    ranks = f"{launched.launcher} started this process as one of {launched.world_size} ranks"
    if options.framework != launched.framework:
        raise adapters.SetupError(f"{ranks}, which run {launched.framework} subjects only: certify "
                                  f"{options.framework} subjects without {launched.launcher}")
    if options.sharding is None:
        shardings = adapters.describe(options.framework).shardings
        raise adapters.SetupError(f"{ranks}: add --sharding ({', '.join(shardings)}) to certify across them, or "
                                  f"run optspec without {launched.launcher}")
    if options.world_size is not None and options.world_size != launched.world_size:
        raise adapters.SetupError(f"--world-size {options.world_size}: {ranks}; drop --world-size or set "
                                  f"{launched.launcher}'s world size to {options.world_size}")


def shardings_in_words() -> str:
    return "; ".join(f"{name} takes {', '.join(record.shardings)}" for name in adapters.FRAMEWORKS
                     if (record := adapters.describe(name)).shardings)


def subjects_of(options: CertifyOptions) -> list[SubjectInfo]:
    """The subjects ``options`` names (a plugin is imported and probed here: exit 2 if it cannot be driven)."""
    with warnings.catch_warnings():  # the worker constructs it again and records its warnings in the notes
        warnings.simplefilter("ignore")
        found = adapters.resolve_subject(options.framework, options.impl, options.rule)
    if options.size is not None:
        found = [s for s in found if spec.get_rule(s.rule).compiles] or found
    return found


def certify_all(options: CertifyOptions, subjects: list[SubjectInfo] | None = None,
                progress: Callable[[str], None] | None = None) -> Iterator[Certificate]:
    """Certifies every subject of ``options`` in a supervised worker, yielding each certificate."""
    validate(options)
    start_workers(options.framework)  # the workers' imports overlap the subjects' resolution below
    subjects = subjects if subjects is not None else subjects_of(options)
    for subject in subjects:
        # a convention the subject cannot take, or a value it cannot be held at, is refused here
        declared = stored(held(subject, parse_holds(options.hold), "declared with --hold"),
                          parse_state_dtypes(options.state_dtypes))
        Expectation.of(declared, options.convention)
    requests = [_request(options, subject, options.convention, progress) for subject in subjects]
    yield from certify_isolated(subjects, requests, time_limit_s=options.time_limit_s)


def matrix_conventions(subject: SubjectInfo) -> list[str | None]:
    """The columns of ``subject``'s matrix row: every preset of its rule, or the rule (None) if it has none."""
    return list(spec.get_rule(subject.rule).presets) or [None]


def not_applicable(subject: SubjectInfo, preset: str | None) -> bool:
    """Whether a matrix cell has no expected trajectory: the subject always runs AMSGrad and the preset has none."""
    return (preset is not None and bool(subject.fixed.get("amsgrad"))
            and getattr(spec.get_rule(subject.rule).presets[preset], "amsgrad", None) == "off")


def certify_matrix(options: CertifyOptions, progress: Callable[[str], None] | None = None
                   ) -> Iterator[tuple[SubjectInfo, str | None, Certificate]]:
    """Every subject of ``options`` against every column of :func:`matrix_conventions` but the
    :func:`not_applicable` ones, in one supervised worker: yields (subject, preset, certificate)."""
    validate(options)
    start_workers(options.framework)
    cells = [(subject, preset) for subject in subjects_of(options) for preset in matrix_conventions(subject)
             if not not_applicable(subject, preset)]
    requests = [_request(options, subject, preset, progress) for subject, preset in cells]
    certs = certify_isolated([subject for subject, _ in cells], requests, time_limit_s=options.time_limit_s)
    for (subject, preset), cert in zip(cells, certs):
        yield subject, preset, cert


def _request(options: CertifyOptions, subject: SubjectInfo, convention: str | None,
             progress: Callable[[str], None] | None) -> Request:
    settings: dict = {"convention": convention, "dtype": options.resolved_dtype, "device": options.device,
                      "seed_value": options.seed, "progress": progress}
    if options.size is not None:
        settings["steps"] = options.steps or 100
    else:
        settings |= {"examples": options.examples, "golden_dir": options.resolved_golden_dir,
                     "time_limit_s": options.time_limit_s, "hold": parse_holds(options.hold),
                     "state_dtypes": parse_state_dtypes(options.state_dtypes)}
    return Request(options.framework, options.impl, options.rule, subject.name, options.size, settings,
                   options.resolved_sharding)


def check_plots() -> None:
    """Raises a one-line :class:`adapters.SetupError` naming the install command where matplotlib, which draws
    ``report.md``'s plots (``--out``), is not installed: a missing dependency is found before any case."""
    if not adapters.frameworks.importable("matplotlib"):
        raise adapters.SetupError("--out draws report.md's plots with matplotlib, which is not installed: "
                                  + adapters.frameworks.install_advice("plots"))


def check_writable_directory(path: str) -> None:
    """Raises a one-line :class:`adapters.SetupError` unless ``path`` is, or can be made, a writable directory.

    Nothing is created: a run that stops with a usage error leaves no empty
    directory behind.  The nearest existing ancestor is probed with a
    temporary file, which is removed.
    """
    import tempfile

    target = Path(path)
    if target.exists() and not target.is_dir():
        raise adapters.SetupError(f"--out {path!r} is a file: give a directory for certificate.json, "
                                  "junit.xml and report.md")
    existing = target.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise adapters.SetupError(f"--out {path!r} cannot be created: {existing} is a file")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise adapters.SetupError(f"--out {path!r} cannot be written ({exc.strerror or exc}): "
                                  "give a writable directory") from None
