"""Writing a certificate as ``certificate.json``, ``junit.xml`` and ``report.md`` with plots."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from optspec.conformance.atomic import write_bytes, write_text
from optspec.conformance.certify import Certificate

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


def failure_lines(cert: Certificate) -> list[str]:
    """The evidence of a failing certificate as the CLI and the pytest plugin print it (none if it conforms)."""
    fail = cert.failure
    if not fail:
        return []
    ulps = f" ({fail['ulps']:.3g} ulp)" if fail.get("ulps") else ""
    lines = [f"  failed {fail['check']} at step {fail['step']}{ulps}: {fail['detail']}"]
    if fail.get("hint"):
        lines.append(f"  {fail['hint']}")
    return [*lines, f"  case: {fail['case']}", f"  reproduce: {fail['reproduce_cli']}"]


def junit(certs: list[Certificate]) -> str:
    cases = []
    for cert in certs:
        for name, check in cert.checks.items():
            body = ""
            if not check["passed"]:
                fail = cert.failure or {}
                message = f"{fail.get('detail')} | {fail.get('hint')}"
                body = f'<failure message={quoteattr(message)}>{escape(json.dumps(fail, indent=2, default=str))}</failure>'
            cases.append(f'  <testcase classname={quoteattr(cert.subject)} name={quoteattr(name)}>{body}</testcase>')
        for replay in cert.golden:
            if not replay.get("applicable", True):
                body = f'<skipped message={quoteattr(str(replay.get("detail")))}/>'
            elif replay["passed"]:
                body = ""
            else:
                body = f'<failure message={quoteattr(str(replay.get("detail")))}/>'
            cases.append(f'  <testcase classname={quoteattr(cert.subject)} name={quoteattr("golden:" + replay["scenario"])}>{body}</testcase>')
    failures = sum("<failure" in c for c in cases)
    skipped = sum("<skipped" in c for c in cases)
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="optspec" tests="{len(cases)}" '
            f'failures="{failures}" skipped="{skipped}">\n' + "\n".join(cases) + "\n</testsuite>\n")


def _plot(cert: Certificate, path: Path) -> str | None:
    """A plot of the failing case's error against its bound, or of every case's worst ratio; None when
    there is nothing numeric to show (a crash, a hang, NaN, a mutated gradient)."""
    if cert.failure and not cert.failure.get("error_and_bound_per_step"):
        return None
    if not cert.failure and not cert.per_case_worst:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    title = f"{cert.subject}, {cert.dtype}"
    if cert.failure:
        pairs = cert.failure["error_and_bound_per_step"]
        steps = range(1, len(pairs) + 1)
        ax.semilogy(steps, [max(e, 1e-300) for e, _ in pairs], "o-", label="|error|")
        ax.semilogy(steps, [max(b, 1e-300) for _, b in pairs], "--", label="bound")
        ax.set_xlabel("step")
        ax.set_title(f"{title}: {cert.failure['check']} check of the failing case", fontsize=9)
    else:
        ax.semilogy(range(1, len(cert.per_case_worst) + 1), [max(w, 1e-300) for w in cert.per_case_worst], ".")
        ax.axhline(1.0, color="red", linestyle="--", label="bound")
        ax.set_xlabel("case")
        ax.set_ylabel("worst error / bound")
        ax.set_title(f"{title}: every case, worst step", fontsize=9)
    ax.legend()
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
        worst = check.get("worst_error_over_bound")
        lines.append(f"| {name} | {check['passed']} | {'' if worst is None else f'{worst:.3g}'} |")
    if cert.golden:
        lines += ["", "| golden scenario | passed | worst error / bound |", "|---|---|---|"]
        lines += [f"| {g['scenario']} | {g['passed']} | {g['worst_error_over_bound']:.3g} |"
                  if g.get("applicable", True) else f"| {g['scenario']} | n/a: {g['detail']} | |"
                  for g in cert.golden]
    if cert.notes:
        lines += ["", "Not tested, or tested differently, and why:", ""] + [f"- {n}" for n in cert.notes]
    if cert.failure:
        fail = cert.failure
        lines += ["", "## Failure", "", f"- check: {fail['check']}, step {fail['step']}",
                  f"- {fail['detail']}", f"- {fail['hint']}", f"- case: {fail['case']}", "",
                  "Reproduce:", "", "```", fail["reproduce_cli"], "```"]
        if "reproduce_spec" in fail:  # not at --size: the case is too large to print
            lines += ["", "```python", fail["reproduce_spec"], "```"]
    if plot:
        lines += ["", f"![error against step]({plot})"]
    return "\n".join(lines) + "\n"


def write(certs: list[Certificate], out: str | Path) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "certificate.json", to_json(certs))
    write_text(out / "junit.xml", junit(certs))
    parts = []
    for index, cert in enumerate(certs):
        plot = _plot(cert, out / f"errors-{index}.png")
        parts.append(markdown(cert, plot))
    write_text(out / "report.md", "\n---\n\n".join(parts))
