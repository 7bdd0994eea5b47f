"""Writing a certificate as ``certificate.json``, ``junit.xml`` and ``report.md`` with plots."""

from __future__ import annotations

import dataclasses
import io
import json
import math
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from optspec.conformance.atomic import write_bytes, write_text
from optspec.conformance.verdict import Certificate

#: The schema of ``certificate.json``: one object, ``certificates`` a list of one per subject.
SCHEMA = "optspec.certificate"
SCHEMA_VERSION = 1


def to_json(certs: list[Certificate]) -> str:
    """``certificate.json``: ``{"schema", "schema_version", "certificates": [...]}``, for one subject or several."""
    records = []
    for cert in certs:
        data = dataclasses.asdict(cert)
        data.pop("per_case_worst")
        records.append(data)
    document = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "certificates": records}
    return json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"


def junit(certs: list[Certificate], informational: frozenset[int] = frozenset()) -> str:
    """One test case per check and golden scenario of each certificate.

    A certificate whose index is in ``informational`` (a matrix cell of a
    preset that is not the subject's own) is skipped where it does not
    conform: following another convention is not a failure.
    """
    cases = []
    for index, cert in enumerate(certs):
        suite = quoteattr(f"{cert.subject} vs {cert.convention or cert.rule}")
        for name, check in cert.checks.items():
            body = ""
            if not check.passed and cert.failure is not None:
                fail = cert.failure
                if index in informational:
                    body = f'<skipped message={quoteattr("differs: follows another convention: " + fail.detail)}/>'
                else:
                    evidence = json.dumps(dataclasses.asdict(fail), indent=2, default=str)
                    body = (f'<failure message={quoteattr(f"{fail.detail} | {fail.hint}")}>{escape(evidence)}'
                            '</failure>')
            cases.append(f'  <testcase classname={suite} name={quoteattr(name)}>{body}</testcase>')
        for replay in cert.golden:
            if not replay.applicable:
                body = f'<skipped message={quoteattr(str(replay.detail))}/>'
            elif replay.passed:
                body = ""
            else:
                body = f'<failure message={quoteattr(str(replay.detail))}/>'
            name = quoteattr("golden:" + replay.scenario)
            cases.append(f'  <testcase classname={suite} name={name}>{body}</testcase>')
    failures = sum("<failure" in c for c in cases)
    skipped = sum("<skipped" in c for c in cases)
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="optspec" tests="{len(cases)}" '
            f'failures="{failures}" skipped="{skipped}">\n' + "\n".join(cases) + "\n</testsuite>\n")


#: Ratios are drawn on a log axis between these (an exact zero error sits on the floor).
RATIO_FLOOR, RATIO_CEILING = 1e-6, 1e12


def _plot(cert: Certificate, path: Path) -> str | None:
    """The error/bound ratio on a log axis against the bound at 1: per step of the failing case, or the
    worst of every case when the subject conforms.

    None when there is nothing numeric to show (a crash, a hang, a raise, NaN,
    a mutated gradient): a plot there would look like a pass.
    """
    if cert.failure is not None and not cert.failure.numeric:
        return None
    if cert.failure is None and not cert.per_case_worst:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if cert.failure is not None:
        ratios = [error / bound if bound > 0 else (0.0 if error == 0 else math.inf)
                  for error, bound in cert.failure.error_and_bound_per_step]
        x_label, what = "step", f"{cert.failure.check} check, failing case ({cert.failure.case.split(':')[0]})"
    else:
        ratios, x_label, what = cert.per_case_worst, "case", "one-step and trajectory checks, worst step of each case"
    shown = [min(max(r, RATIO_FLOOR), RATIO_CEILING) for r in ratios]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.semilogy(range(1, len(shown) + 1), shown, "o-" if cert.failure else ".", label="|error| / bound")
    ax.axhline(1.0, color="red", linestyle="--", label="bound (above fails)")
    ax.set_xlabel(x_label)
    ax.set_ylabel("|error| / bound (log)")
    ax.set_title(f"{cert.subject} ({cert.dtype}, {cert.verdict})\n{what}", fontsize=8)
    ax.legend(fontsize=7)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    write_bytes(path, buffer.getvalue())
    return path.name


def markdown(cert: Certificate, plot: str | None) -> str:
    lines = [
        f"# optspec certificate: {cert.subject}",
        "",
        f"**Verdict: {cert.verdict}** against the spec rule `{cert.rule}`"
        + (f", convention `{cert.convention}`" if cert.convention else ""),
        "",
        f"- framework: {cert.framework} {cert.framework_version}, device {cert.device}, dtype {cert.dtype}",
        f"- spec version {cert.spec_version}, seed {cert.seed}, {cert.cases_run} cases",
        "",
        "| check | passed | worst error / bound |",
        "|---|---|---|",
    ]
    for name, check in cert.checks.items():
        worst = check.worst_error_over_bound
        lines.append(f"| {name} | {check.passed} | {'' if worst is None else f'{worst:.3g}'} |")
    if cert.golden:
        lines += ["", "| golden scenario | passed | worst error / bound |", "|---|---|---|"]
        lines += [f"| {g.scenario} | {g.passed} | {g.worst_error_over_bound:.3g} |"
                  if g.applicable else f"| {g.scenario} | n/a: {g.detail} | |"
                  for g in cert.golden]
    if cert.notes:
        lines += ["", "Not tested, or tested differently, and why:", ""] + [f"- {n}" for n in cert.notes]
    if cert.failure:
        fail = cert.failure
        lines += ["", "## Failure", "", f"- check: {fail.check}, step {fail.step}", f"- {fail.detail}"]
        lines += [f"- {fail.hint}"] if fail.hint else []
        lines += [f"- case: {fail.case}", "", "Reproduce:", "", "```", fail.reproduce_cli, "```"]
        if fail.reproduce_spec:  # None at --size: the case is too large to print
            lines += ["", "```python", fail.reproduce_spec, "```"]
    if plot:
        lines += ["", f"![|error| / bound, log axis]({plot})"]
    return "\n".join(lines) + "\n"


def write(certs: list[Certificate], out: str | Path, *, informational: frozenset[int] = frozenset(),
          preamble: str | None = None) -> None:
    """``certificate.json``, ``junit.xml`` and ``report.md`` (after ``preamble``, as text) with a plot per
    certificate that has numbers to show; each file is written atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "certificate.json", to_json(certs))
    write_text(out / "junit.xml", junit(certs, informational))
    parts = [f"# optspec matrix\n\n```\n{preamble}\n```\n"] if preamble else []
    plots = set()
    for index, cert in enumerate(certs):
        plot = _plot(cert, out / f"errors-{index}.png")
        plots.add(plot)
        parts.append(markdown(cert, plot))
    write_text(out / "report.md", "\n---\n\n".join(parts))
    for stale in out.glob("errors-*.png"):  # an earlier run's plots would be read as this run's
        if stale.name not in plots:
            stale.unlink()
