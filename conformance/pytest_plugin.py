"""A pytest plugin: ``pytest --optspec-impl pkg.mod:AdamW`` certifies inside a vendor's suite.

Registered through the ``pytest11`` entry point; it does nothing unless
``--optspec-framework`` or ``--optspec-impl`` is given (the framework of a
``MODULE:ATTR`` plugin is inferred from it, as the CLI's).  It takes the options of ``certify``
(``--optspec-dtype``, ``--optspec-rule``, ``--optspec-convention``, ...), with
the same defaults and golden replay, through the same entry point
(:func:`conformance.run.certify_all`): each subject is one test item,
certified in a supervised worker.  A bad option is a usage error.
``--optspec-skips FILE`` reads one ``<id> <reason>`` per line (ids are subject
names); ids that match no subject are warned about.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from optspec.adapters.frameworks import FRAMEWORKS

#: pytest option -> (CertifyOptions field, type, help).
OPTIONS = {
    "--optspec-framework": ("framework", str, ", ".join(FRAMEWORKS) + " (default: inferred from a MODULE:ATTR "
                            "--optspec-impl; either turns the plugin on)"),
    "--optspec-impl": ("impl", str, "MODULE:ATTR[key=value,...] or a built-in subject name (default: all)"),
    "--optspec-rule": ("rule", str, "the rule a MODULE:ATTR plugin implements (default adamw)"),
    "--optspec-convention": ("convention", str, "the preset of the subject's rule to hold it to (default: its own)"),
    "--optspec-dtype": ("dtype", str, "the subject's dtype (default: float64; float32 for tensorflow and mlx)"),
    "--optspec-device": ("device", str, "the framework's device, e.g. cpu or cuda:0"),
    "--optspec-examples": ("examples", int, "drawn cases per subject (default 100)"),
    "--optspec-seed": ("seed", int, "the seed of the drawn cases (default 0)"),
    "--optspec-golden-dir": ("golden_dir", str, "golden files to replay (default: the installed ones)"),
    "--optspec-size": ("size", int, "certify at scale: one tensor of SIZE elements"),
    "--optspec-steps": ("steps", int, "steps of the --optspec-size run (default 100)"),
    "--optspec-time-limit": ("time_limit_s", float, "seconds a subject may take for one step (default 300)"),
    "--optspec-sharding": ("sharding", str, "run the subject across ranks (torch: fsdp2, zero1 or ddp; jax: mesh)"),
    "--optspec-world-size": ("world_size", int, "ranks (a mesh's devices) of a sharded run (default 2)"),
}


def in_plugin_terms(text: str) -> str:
    """``text`` with each ``certify`` flag named as this plugin takes it (``--dtype`` -> ``--optspec-dtype``)."""
    plugin_flags = {flag.removeprefix("--optspec-"): flag
                    for flag in (*OPTIONS, "--optspec-skips", "--optspec-hold", "--optspec-state-dtype")}
    return re.sub(r"(?<![\w-])--([a-z][a-z-]*)", lambda m: plugin_flags.get(m.group(1), m.group(0)), text)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("optspec", "optspec conformance certification")
    for flag, (_, kind, about) in OPTIONS.items():
        group.addoption(flag, type=kind, help=about)
    group.addoption("--optspec-skips", help="file of '<subject id> <reason>' lines to skip")
    group.addoption("--optspec-hold", action="append", metavar="NAME=VALUE",
                    help="the value of a hyperparameter the constructor does not take, e.g. weight_decay=0 "
                         "(repeat for each)")
    group.addoption("--optspec-state-dtype", action="append", metavar="FIELD=DTYPE",
                    help="a state field the subject stores in fewer bits than its parameters, e.g. "
                         "exp_avg=bfloat16 (repeat for each), a state format: bitsandbytes-8bit, params=stochastic or "
                         "params=kahan")


def _options(config: pytest.Config, **overrides):
    from optspec.conformance.run import CertifyOptions

    given = {field: config.getoption(flag) for flag, (field, _, _) in OPTIONS.items()}
    given["hold"] = tuple(config.getoption("--optspec-hold") or ()) or None
    given["state_dtypes"] = tuple(config.getoption("--optspec-state-dtype") or ()) or None
    return CertifyOptions(**{**{k: v for k, v in given.items() if v is not None}, **overrides})


def _skips(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise pytest.UsageError(f"--optspec-skips {path!r} cannot be read ({exc.strerror})") from None
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, reason = line.partition(" ")
            out[key] = reason.strip() or "listed in the skip file"
    return out


class CertificationFailed(Exception):
    """A verdict of 'does not conform', shown as the CLI shows it."""


class OptspecItem(pytest.Item):
    def __init__(self, *, subject, options, **kwargs) -> None:
        super().__init__(**kwargs)
        self.subject = subject
        self.options = options

    def runtest(self) -> None:
        from optspec.conformance.run import certify_all

        (cert,) = certify_all(self.options, subjects=[self.subject])
        if not cert.applicable:
            pytest.skip(in_plugin_terms(cert.why_not_applicable))
        if not cert.conforms:
            headline = f"DOES NOT CONFORM: {cert.label} vs {cert.convention or cert.rule} ({cert.dtype})"
            # the reproduce line is a command of the CLI; the rest names the plugin's flags
            lines = [line if line.lstrip().startswith("reproduce:") else in_plugin_terms(line)
                     for line in cert.failure.lines()]
            raise CertificationFailed("\n".join([headline, *lines]))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CertificationFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, 0, f"optspec certify {self.subject.name}"


class OptspecCollector(pytest.Collector):
    """The certification of one framework's subjects: node id ``optspec/<framework>``, an item per subject."""

    def __init__(self, *, subjects, options, skips: dict[str, str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.subjects, self.options, self.skips = subjects, options, skips

    def collect(self) -> list[OptspecItem]:
        items = []
        for subject in self.subjects:
            item = OptspecItem.from_parent(self, name=f"optspec[{subject.name}]", subject=subject,
                                           options=self.options)
            if subject.name in self.skips:
                item.add_marker(pytest.mark.skip(reason=self.skips[subject.name]))
            items.append(item)
        return items


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    framework, impl = config.getoption("--optspec-framework"), config.getoption("--optspec-impl")
    if not framework and not impl:
        return
    from optspec import adapters
    from optspec.conformance.run import subjects_of, validate

    try:
        if not framework and not adapters.is_plugin(impl):
            raise adapters.SetupError(f"--impl {impl!r} is a built-in subject's name: add --framework (one of "
                                      f"{', '.join(adapters.FRAMEWORKS)}), or name a MODULE:ATTR plugin")
        options = _options(config, **({} if framework else {"framework": adapters.infer_framework(impl)}))
        validate(options)
        subjects = subjects_of(options)
    except adapters.SetupError as exc:
        raise pytest.UsageError(f"optspec: {in_plugin_terms(str(exc))}") from None
    skips = _skips(config.getoption("--optspec-skips"))
    names = {s.name for s in subjects}
    for unknown in sorted(set(skips) - names):
        warnings.warn(f"optspec skip file: id {unknown!r} matches no subject", stacklevel=1)
    # Collected as a collector's items are, so that pytest counts them ("collected N items") and names them
    # with a path (optspec/<framework>::optspec[<subject>]).
    collector = OptspecCollector.from_parent(session, name="optspec", nodeid=f"optspec/{options.framework}",
                                             subjects=subjects, options=options, skips=skips)
    session.ihook.pytest_collectstart(collector=collector)
    collected = session.ihook.pytest_make_collect_report(collector=collector)
    session.ihook.pytest_collectreport(report=collected)
    items.extend(node for node in collected.result if isinstance(node, pytest.Item))
