"""Writing certificates as ``certificate.json``, ``junit.xml``, ``report.md`` with plots, and ``report.html``.

Two shapes of ``report.md``:

- a certification (no ``preamble``): one detailed section per certificate
  (checks, golden replays, notes, the failure with its reproducing code and a
  plot), after a summary table when there are several;
- a matrix (``preamble``, the matrix table): the table, a summary row per
  cell, and one short section per cell that fails or differs; the rest is in
  ``certificate.json``.

``report.html`` is ``report.md`` as one self-contained page, the plots
inlined (:mod:`optspec.conformance.html`): the artifact a CI system shows,
where ``report.md`` fits a job summary (``$GITHUB_STEP_SUMMARY``).

Plots need matplotlib; without it every other file is written and
:func:`write` says, in one line, that the plots were skipped and why.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from pathlib import Path
from types import ModuleType
from xml.sax.saxutils import escape, quoteattr

from optspec.conformance import html
from optspec.conformance.atomic import write_bytes, write_text
from optspec.conformance.verdict import Certificate, CheckOutcome, Failure, GoldenOutcome

#: The schema of ``certificate.json``: one object, ``certificates`` a list of one per subject.
SCHEMA = "optspec.certificate"
SCHEMA_VERSION = 1

#: The verdict written for a matrix cell of a preset the subject does not follow (its index in ``informational``).
DIFFERS = "differs"
DIFFERS_MEANS = "the subject follows another convention than this preset, not a bug"

#: What a check without a number reads: it did not run (the certification stopped before it).
NOT_RUN = "not run"

#: Ratios are drawn on a log axis between these (an exact zero error sits on the floor).
RATIO_FLOOR, RATIO_CEILING = 1e-6, 1e12


@dataclasses.dataclass(frozen=True)
class Written:
    """What :func:`write` left in its directory.

    Attributes:
      files: the names written, in order: ``certificate.json``, ``junit.xml``, ``report.md``,
        ``report.html``, then plots.
      notes: one line each, for the caller to print: what was left out and why (plots without matplotlib).
    """

    files: tuple[str, ...]
    notes: tuple[str, ...] = ()


def against(cert: Certificate) -> str:
    """``subject vs convention`` (or ``vs rule`` for a rule without conventions), the subject with its sharding
    where it ran across ranks (:attr:`Certificate.label`)."""
    return f"{cert.label} vs {cert.convention or cert.rule}"


def verdict_label(cert: Certificate, informational: bool) -> str:
    """The verdict as written: the certificate's own, or :data:`DIFFERS` for an informational cell that
    does not conform (following another convention is not a failure; "not applicable" stays as it is)."""
    return DIFFERS if informational and not cert.passes else cert.verdict


def check_status(name: str, check: CheckOutcome, failure: Failure | None) -> str:
    """``failed`` for the check the failure names, :data:`NOT_RUN` for any other check without a worst
    error/bound (whether or not it is marked passed), else ``passed`` or ``failed``."""
    if failure is not None and name == failure.check:
        return "failed"
    if check.worst_error_over_bound is None:
        return NOT_RUN
    return "passed" if check.passed else "failed"


def to_json(certs: list[Certificate]) -> str:
    """``certificate.json``: ``{"schema", "schema_version", "certificates": [...]}``, for one subject or several."""
    records = []
    for cert in certs:
        data = dataclasses.asdict(cert)
        data.pop("per_case_worst")
        records.append(data)
    document = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "certificates": records}
    return json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"


def _junit_check(cert: Certificate, check: CheckOutcome, informational: bool) -> str:
    """The body of one check's test case: empty (passed), ``<skipped>`` (not run, or an informational cell
    that differs) or ``<failure>`` with the failure's evidence."""
    if check.passed:
        return f'<skipped message="{NOT_RUN}"/>' if check.worst_error_over_bound is None else ""
    fail = cert.failure
    if fail is None:
        return ""
    if informational:
        return f'<skipped message={quoteattr(f"{DIFFERS}: follows another convention: {fail.detail}")}/>'
    evidence = json.dumps(dataclasses.asdict(fail), indent=2, default=str)
    return f'<failure message={quoteattr(f"{fail.detail} | {fail.hint}")}>{escape(evidence)}</failure>'


def _junit_golden(replay: GoldenOutcome) -> str:
    """The body of one golden scenario's test case: skipped where not applicable, else passed or failed."""
    if not replay.applicable:
        return f'<skipped message={quoteattr(str(replay.detail))}/>'
    return "" if replay.passed else f'<failure message={quoteattr(str(replay.detail))}/>'


def junit(certs: list[Certificate], informational: frozenset[int] = frozenset()) -> str:
    """One test case per check and golden scenario of each certificate, and a skipped one for a certificate
    that is not applicable, with the reason.

    A check that did not run (passed, without a worst error/bound) is
    skipped. A certificate whose index is in ``informational`` (a matrix cell
    of a preset that is not the subject's own) is skipped where it does not
    conform: following another convention is not a failure.
    """
    cases = []
    for index, cert in enumerate(certs):
        suite = quoteattr(against(cert))
        if not cert.applicable:
            cases.append(f'  <testcase classname={suite} name="applicable">'
                         f'<skipped message={quoteattr(str(cert.why_not_applicable))}/></testcase>')
        for name, check in cert.checks.items():
            body = _junit_check(cert, check, index in informational)
            cases.append(f'  <testcase classname={suite} name={quoteattr(name)}>{body}</testcase>')
        for replay in cert.golden:
            name = quoteattr("golden:" + replay.scenario)
            cases.append(f'  <testcase classname={suite} name={name}>{_junit_golden(replay)}</testcase>')
    failures = sum("<failure" in c for c in cases)
    skipped = sum("<skipped" in c for c in cases)
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="optspec" tests="{len(cases)}" '
            f'failures="{failures}" skipped="{skipped}">\n' + "\n".join(cases) + "\n</testsuite>\n")


def has_numbers(cert: Certificate) -> bool:
    """Whether there is an error/bound to plot: not for a crash, a hang, a raise, NaN or a mutated gradient
    (a plot there would look like a pass), nor for a conforming certificate without cases."""
    return cert.failure.numeric if cert.failure is not None else bool(cert.per_case_worst)


def load_pyplot() -> tuple[ModuleType | None, str | None]:
    """matplotlib's pyplot on the non-interactive Agg backend, or None and why it cannot be imported."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError as exc:
        if exc.name != "matplotlib":
            return None, f"matplotlib cannot be imported: {exc}"
        return None, "matplotlib is not installed: pip install matplotlib"
    except ImportError as exc:
        return None, f"matplotlib cannot be imported: {exc}"
    return plt, None


def plot_title(cert: Certificate, label: str) -> str:
    """The plot's first title line: ``subject vs convention (dtype, verdict)``."""
    return f"{against(cert)} ({cert.dtype}, {label})"


def _ratios(cert: Certificate) -> tuple[list[float], str, str]:
    """The ratios to draw, the x label, and what they are: per step of the failing case, or the worst step
    of every case when the subject conforms."""
    if cert.failure is None:
        return cert.per_case_worst, "case", "one-step and trajectory checks, worst step of each case"
    ratios = [error / bound if bound > 0 else (0.0 if error == 0 else math.inf)
              for error, bound in cert.failure.error_and_bound_per_step]
    return ratios, "step", f"{cert.failure.check} check, failing case ({cert.failure.case.split(':')[0]})"


def plot(plt: ModuleType, cert: Certificate, label: str, path: Path) -> str:
    """Writes ``path``: the error/bound ratio on a log axis against the bound at 1, titled
    :func:`plot_title`; returns the file's name. Only for a certificate that :func:`has_numbers`."""
    ratios, x_label, what = _ratios(cert)
    shown = [min(max(r, RATIO_FLOOR), RATIO_CEILING) for r in ratios]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.semilogy(range(1, len(shown) + 1), shown, "o-" if cert.failure else ".", label="|error| / bound")
    ax.axhline(1.0, color="red", linestyle="--", label="bound (above fails)")
    ax.set_xlabel(x_label)
    ax.set_ylabel("|error| / bound (log)")
    ax.set_title(f"{plot_title(cert, label)}\n{what}", fontsize=8)
    ax.legend(fontsize=7)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    write_bytes(path, buffer.getvalue())
    return path.name


def _failure_facts(fail: Failure) -> list[str]:
    """The failure's check and step, what was seen, and the hint, as markdown list items."""
    return [f"- check: {fail.check}, step {fail.step}", f"- {fail.detail}"] + ([f"- {fail.hint}"] if fail.hint else [])


def _image(plot_name: str | None) -> list[str]:
    return ["", f"![|error| / bound, log axis]({plot_name})"] if plot_name else []


def detailed_section(cert: Certificate, label: str, plot_name: str | None) -> str:
    """A certificate in full: verdict, environment, the checks, golden replays, notes, the failure with its
    case and reproducing command and code, and the plot ``plot_name`` if there is one."""
    verdict = f"**Verdict: {label}**" + (f" ({DIFFERS_MEANS})" if label == DIFFERS else "")
    lines = [
        f"# optspec certificate: {cert.label}",
        "",
        f"{verdict} against the spec rule `{cert.rule}`"
        + (f", convention `{cert.convention}`" if cert.convention else ""),
        "",
        f"- framework: {cert.framework} {cert.framework_version}, device {cert.device}, dtype {cert.dtype}",
        f"- spec version {cert.spec_version}, seed {cert.seed}, {cert.cases_run} cases",
        "",
        "| check | result | worst error / bound |",
        "|---|---|---|",
    ]
    for name, check in cert.checks.items():
        worst = check.worst_error_over_bound
        lines.append(f"| {name} | {check_status(name, check, cert.failure)} | "
                     f"{'' if worst is None else f'{worst:.3g}'} |")
    if cert.golden:
        lines += ["", "| golden scenario | passed | worst error / bound |", "|---|---|---|"]
        lines += [f"| {g.scenario} | {g.passed} | {g.worst_error_over_bound:.3g} |"
                  if g.applicable else f"| {g.scenario} | n/a: {g.detail} | |"
                  for g in cert.golden]
    if cert.notes:
        lines += ["", "Not tested, or tested differently, and why:", ""] + [f"- {n}" for n in cert.notes]
    if cert.failure:
        fail = cert.failure
        lines += ["", "## Failure", "", *_failure_facts(fail)]
        lines += [f"- case: {fail.case}", "", "Reproduce:", "", "```", fail.reproduce_cli, "```"]
        if fail.reproduce_spec:  # None at --size: the case is too large to print
            lines += ["", "```python", fail.reproduce_spec, "```"]
    return "\n".join(lines + _image(plot_name)) + "\n"


def short_section(index: int, cert: Certificate, label: str, plot_name: str | None) -> str:
    """A failing or differing matrix cell in a few lines: a headline (its index in ``certificate.json``,
    subject, convention, verdict), the failing check and step, what was seen, the hint, the command that
    reproduces it, and the plot ``plot_name`` if there is one."""
    lines = [f"### {index}. {against(cert)}: {label}", "",
             f"- {cert.dtype}, {cert.cases_run} cases" + (f"; {DIFFERS_MEANS}" if label == DIFFERS else "")]
    if cert.failure:
        lines += [*_failure_facts(cert.failure), f"- reproduce: `{cert.failure.reproduce_cli}`"]
    return "\n".join(lines + _image(plot_name)) + "\n"


def _worst_ulps(cert: Certificate) -> str:
    """The trajectory check's worst error in ulps, or empty where it was not measured."""
    trajectory = cert.checks.get("trajectory")
    return "" if trajectory is None or trajectory.worst_ulps is None else f"{trajectory.worst_ulps:.3g}"


def summary_table(certs: list[Certificate], labels: list[str]) -> str:
    """One row per certificate: its index, subject, convention or rule, dtype, verdict, worst ulps, cases."""
    lines = ["| # | subject | convention or rule | dtype | verdict | worst ulps | cases |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {i} | {c.label} | {c.convention or c.rule} | {c.dtype} | {label} | {_worst_ulps(c)} | "
              f"{c.cases_run} |" for i, (c, label) in enumerate(zip(certs, labels))]
    return "\n".join(lines) + "\n"


def matrix_markdown(preamble: str, certs: list[Certificate], labels: list[str],
                    plots: dict[int, str]) -> str:
    """``report.md`` of a matrix: the table ``preamble``, the summary, a short section per cell that fails or
    differs (not one that conforms or is not applicable), and a pointer to ``certificate.json`` for the rest."""
    sections = [short_section(i, c, labels[i], plots.get(i)) for i, c in enumerate(certs) if not c.passes]
    return "\n".join([
        f"# optspec matrix\n\n```\n{preamble}\n```\n",
        "## Summary\n",
        summary_table(certs, labels),
        "## Cells that fail or differ\n",
        *(sections or ["None.\n"]),
        "The rest (every check, golden replays, cases, reproducing code) is in certificate.json.\n",
    ])


def certify_markdown(certs: list[Certificate], labels: list[str], plots: dict[int, str]) -> str:
    """``report.md`` of a certification: a detailed section per certificate, after a summary table when
    there are several."""
    parts = [detailed_section(c, labels[i], plots.get(i)) for i, c in enumerate(certs)]
    if len(certs) > 1:
        parts.insert(0, "# optspec certification\n\n" + summary_table(certs, labels))
    return "\n---\n\n".join(parts)


def _plotted(certs: list[Certificate], matrix: bool) -> list[int]:
    """The indices to plot: every certificate with numbers; in a matrix, only the cells that fail or differ."""
    return [i for i, c in enumerate(certs) if has_numbers(c) and not (matrix and c.passes)]


def _write_plots(certs: list[Certificate], labels: list[str], out: Path,
                 matrix: bool) -> tuple[dict[int, str], tuple[str, ...]]:
    """Writes ``errors-INDEX.png`` for each certificate :func:`_plotted` selects and removes an earlier run's
    other ``errors-*.png``; returns the plots by index, and a one-line note if matplotlib is missing."""
    wanted = _plotted(certs, matrix)
    plt, missing = load_pyplot() if wanted else (None, None)
    plots = {} if plt is None else {i: plot(plt, certs[i], labels[i], out / f"errors-{i}.png") for i in wanted}
    for stale in out.glob("errors-*.png"):  # an earlier run's plots would be read as this run's
        if stale.name not in plots.values():
            stale.unlink()
    return plots, (() if missing is None else (f"plots skipped: {missing}",))


def write(certs: list[Certificate], out: str | Path, *, informational: frozenset[int] = frozenset(),
          preamble: str | None = None) -> Written:
    """Writes ``certificate.json``, ``junit.xml``, ``report.md``, ``report.html`` and ``errors-INDEX.png``
    plots into ``out``, each atomically, and returns what was written.

    With ``preamble`` (a matrix table) ``report.md`` is the compact matrix
    report and only cells that do not conform are plotted; without it, each
    certificate is written in full, with a plot where it has numbers. A
    certificate whose index is in ``informational`` reads "differs". When
    matplotlib cannot be imported, no plot is written and
    :attr:`Written.notes` says why.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "certificate.json", to_json(certs))
    write_text(out / "junit.xml", junit(certs, informational))
    labels = [verdict_label(c, i in informational) for i, c in enumerate(certs)]
    plots, notes = _write_plots(certs, labels, out, matrix=preamble is not None)
    text = (matrix_markdown(preamble, certs, labels, plots) if preamble is not None
            else certify_markdown(certs, labels, plots))
    text += "".join(f"\n{note}\n" for note in notes)
    write_text(out / "report.md", text)
    title = "optspec matrix" if preamble is not None else f"optspec: {', '.join(against(c) for c in certs)}"
    images = {name: (out / name).read_bytes() for name in plots.values() if (out / name).is_file()}
    write_text(out / "report.html", html.page(title, text, images))
    return Written(files=("certificate.json", "junit.xml", "report.md", "report.html", *plots.values()),
                   notes=notes)
