"""Writing certificates as ``certificate.json``, ``junit.xml``, ``report.md`` with plots, and ``report.html``.

Two shapes of ``report.md``:

- a certification: one detailed section per certificate
  (checks, golden replays, notes, the failure with its reproducing code and a
  plot), after a summary table when there are several;
- a matrix (a :class:`conformance.matrix.Matrix`): the verdict and counts,
  the matrix as a table, one short section per failing cell, the cells that
  differ in one table (a row per pair of presets); the rest is in
  ``certificate.json``.

``report.html`` is ``report.md`` as one self-contained page, the plots
inlined (:mod:`optspec.conformance.html`): the artifact a CI system shows,
where ``report.md`` fits a job summary (``$GITHUB_STEP_SUMMARY``).

Only a failure with numbers is plotted.  Plots need matplotlib; without it every other file is written and
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
from optspec.conformance.matrix import MATRIX_LEGEND, Cell, Matrix
from optspec.conformance.verdict import Certificate, CheckOutcome, Failure, GoldenOutcome

#: The schema of ``certificate.json``: one object, ``certificates`` a list of one per subject.
SCHEMA = "optspec.certificate"
SCHEMA_VERSION = 1

#: The verdict written for a matrix cell of a preset the subject does not follow (its index in ``informational``).
DIFFERS = "differs"
DIFFERS_MEANS = "the subject follows another convention than this preset, not a bug"

#: What a check without a number reads: it did not run (the certification stopped before it).
NOT_RUN = "not run"

#: The class of a matrix cell in ``report.html``, by its first word (colours in :data:`html.STYLE`).
CELL_CLASSES = {"PASS": "pass", "FAIL": "fail", DIFFERS: "differs", "n/a": "na"}

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


def junit(certs: list[Certificate], informational: frozenset[int] = frozenset(),
          names: list[str] | None = None) -> str:
    """One test case per check and golden scenario of each certificate, and a skipped one for a certificate
    that is not applicable, with the reason; its class is ``subject vs convention``, the subject named
    ``names[index]`` where given (a matrix's row names, unique across frameworks).

    A check that did not run (passed, without a worst error/bound) is
    skipped. A certificate whose index is in ``informational`` (a matrix cell
    of a preset that is not the subject's own) is skipped where it does not
    conform: following another convention is not a failure.
    """
    cases = []
    for index, cert in enumerate(certs):
        suite = quoteattr(against(cert) if names is None else f"{names[index]} vs {cert.convention or cert.rule}")
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
    """Whether there is an error/bound to plot: a failure with numbers, not a crash, a hang, a raise, NaN or a
    mutated gradient (a plot there would look like a pass); a conforming certificate has nothing to show."""
    return cert.failure is not None and cert.failure.numeric


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
    """The ratios to draw, the x label, and what they are: per step of the failing case."""
    ratios = [error / bound if bound > 0 else (0.0 if error == 0 else math.inf)
              for error, bound in cert.failure.error_and_bound_per_step]
    return ratios, "step", f"{cert.failure.check} check, failing case ({cert.failure.case.split(':')[0]})"


def plot(plt: ModuleType, cert: Certificate, label: str, path: Path) -> str:
    """Writes ``path``: the error/bound ratio on a log axis against the bound at 1, titled
    :func:`plot_title`; returns the file's name. Only for a certificate that :func:`has_numbers`."""
    ratios, x_label, what = _ratios(cert)
    shown = [min(max(r, RATIO_FLOOR), RATIO_CEILING) for r in ratios]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.semilogy(range(1, len(shown) + 1), shown, "o-", label="|error| / bound")
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


def short_section(index: int, cert: Certificate, label: str, plot_name: str | None, name: str) -> str:
    """A failing matrix cell in a few lines: a headline anchored ``c<index>`` (its index in
    ``certificate.json``, its row's ``name``, convention, verdict), the failing check and step, what was seen,
    the hint, the command that reproduces it, and the plot ``plot_name`` if there is one."""
    lines = [f"### {anchor(cell_anchor(index))}{index}. {name} vs {cert.convention or cert.rule}: {label}", "",
             f"- {cert.dtype}, {cert.cases_run} cases"]
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


#: A matrix report plots at most this many failing cells (the first ones); the others' numbers are in
#: ``certificate.json``, so that a matrix where much fails still gives a page a browser opens at once.
MATRIX_PLOTS = 12

#: The anchor of the list of rows not certified (n/a) in a matrix report.
NOT_APPLICABLE_ANCHOR = "na"

#: The cells listed by name in a matrix report's headline; the rest are counted.
HEADLINE_CELLS = 10


def anchor(name: str) -> str:
    """An HTML anchor a link ``(#name)`` leads to, in Markdown (GitHub keeps it) and in ``report.html``."""
    return f'<a id="{name}"></a>'


def cell_anchor(index: int) -> str:
    """The anchor of the failing cell whose certificate is ``index``."""
    return f"c{index}"


def table_text(text: str) -> str:
    """``text`` as one cell of a Markdown table: a ``|`` escaped, so that it does not end the cell."""
    return text.replace("|", "\\|")


def markdown_table(rows: list[list[str]], left: int) -> list[str]:
    """A Markdown table of ``rows`` (the first the header), each column padded to its widest cell so that the
    text reads aligned too: the first ``left`` columns flush left, the others flush right.  A last column flush
    left is not padded (it would only align the closing bar, and a list of cells makes it long)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    if left >= len(widths):
        widths[-1] = 3
    rule = ["-" * w if i < left else "-" * (w - 1) + ":" for i, w in enumerate(widths)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i < left else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    return [line(rows[0]), line(rule), *(line(row) for row in rows[1:])]


def _matrix_cell(cell: Cell, differs_at: dict[int, int]) -> str:
    """A matrix cell in Markdown: a failing one linked to its section, a differing one to its pair of presets
    in the table of cells that differ, an n/a one to the list of rows not certified; a passing one as text."""
    kind = cell.kind
    if kind == "FAIL" and cell.index is not None:
        return f"[{cell.text}](#{cell_anchor(cell.index)})"
    if kind == "differs" and cell.index in differs_at:
        return f"[{cell.text}](#d{differs_at[cell.index]})"
    if kind == "n/a":
        return f"[{cell.text}](#{NOT_APPLICABLE_ANCHOR})"
    return cell.text


def _headline(matrix: Matrix, labels: list[str]) -> list[str]:
    """The verdict, the failing cells named and linked, and what the matrix holds, counted."""
    names = matrix.row_names()
    failing = matrix.failing
    counted = {kind: labels.count(kind) for kind in ("conforms", DIFFERS, "not applicable")}
    frameworks = dict.fromkeys(f"{c.framework} {c.framework_version}" for c in matrix.certs)
    summary = (f"{len(matrix.certs)} cells of {len(matrix.rows)} rows: {counted['conforms']} conform, "
               f"{counted[DIFFERS]} differ (the subject follows another preset: expected, not a bug), "
               f"{counted['not applicable']} not applicable, {len(failing)} fail. "
               f"Frameworks: {', '.join(frameworks) or 'none'}.")
    if not failing:
        return ["# optspec matrix: conforms", "",
                "**Every subject conforms to its own preset (\\*) and to its rule.**", "", summary, ""]
    shown = [f"[{names[i]} vs {matrix.certs[i].convention or matrix.certs[i].rule}](#{cell_anchor(i)})"
             for i in failing[:HEADLINE_CELLS]]
    more = f", and {len(failing) - HEADLINE_CELLS} more" if len(failing) > HEADLINE_CELLS else ""
    return ["# optspec matrix: does not conform", "",
            f"**{len(failing)} of {len(matrix.own)} cells fail** against the subject's own preset (\\*) or its "
            f"rule: {', '.join(shown)}{more}.", "", summary, ""]


def matrix_markdown(matrix: Matrix, labels: list[str], plots: dict[int, str]) -> str:
    """``report.md`` of a matrix: the verdict and counts, the matrix as a table (each cell that does not pass
    linked to what explains it), the legend, a short section per failing cell (not one per cell that
    differs, conforms or is not applicable), the cells that differ in one table (a row per pair of presets,
    once), the rows not certified and why, and a pointer to ``certificate.json`` for the rest."""
    differing = matrix.differing()
    differs_at = {index: number for number, pair in enumerate(differing) for index in pair.cells}
    columns = matrix.columns
    table = [["subject", "framework", "dtype", *columns]]
    table += [[table_text(row.name), row.framework, row.dtype,
               *(_matrix_cell(row.cells[c], differs_at) if c in row.cells else "-" for c in columns)]
              for row in matrix.rows]
    names = matrix.row_names()
    sections = [short_section(i, matrix.certs[i], labels[i], plots.get(i), names[i]) for i in matrix.failing]
    parts = [*_headline(matrix, labels), "## Matrix", "", *markdown_table(table, left=2), "",
             *(f"- {line}" for line in MATRIX_LEGEND), ""]
    if sections:
        parts += ["## Failing cells", "", *sections]
        if len(matrix.failing) > MATRIX_PLOTS:
            parts += [f"The first {MATRIX_PLOTS} failing cells are plotted; every other one's errors per step are "
                      "in certificate.json.", ""]
    if differing:
        pairs = [["#", "presets that differ", "in the knobs", "cells (index in certificate.json)"]]
        pairs += [[f"{anchor(f'd{number}')}{number}", f"{pair.rule}: {pair.presets[0]} and {pair.presets[1]}",
                   table_text(pair.because().split(" differ in ", 1)[1]), ", ".join(map(str, pair.cells))]
                  for number, pair in enumerate(differing)]
        parts += ["## Cells that differ", "", f"Each pair of presets once: a subject of one held to the other "
                  f"{DIFFERS}; {DIFFERS_MEANS}.", "", *markdown_table(pairs, left=4), ""]
    if not_applicable := matrix.not_applicable():
        parts += [f"## {anchor(NOT_APPLICABLE_ANCHOR)}Not certified (n/a)", "",
                  *(f"- {line}" for line in not_applicable), ""]
    if matrix.notes:
        parts += [*(f"- {note}" for note in matrix.notes), ""]
    parts.append("Every check, golden replay, case and reproducing code is in certificate.json: a cell's number "
                 "here is its index there.")
    return "\n".join(parts) + "\n"


def certify_markdown(certs: list[Certificate], labels: list[str], plots: dict[int, str]) -> str:
    """``report.md`` of a certification: a detailed section per certificate, after a summary table when
    there are several."""
    parts = [detailed_section(c, labels[i], plots.get(i)) for i, c in enumerate(certs)]
    if len(certs) > 1:
        parts.insert(0, "# optspec certification\n\n" + summary_table(certs, labels))
    return "\n---\n\n".join(parts)


def _plotted(certs: list[Certificate], labels: list[str], matrix: Matrix | None) -> list[int]:
    """The indices to plot: every certificate that fails with numbers (not one that conforms, or differs);
    in a matrix, the first :data:`MATRIX_PLOTS` failing cells."""
    wanted = [i for i, c in enumerate(certs) if has_numbers(c) and labels[i] != DIFFERS]
    return wanted if matrix is None else [i for i in matrix.failing if i in wanted][:MATRIX_PLOTS]


def _write_plots(certs: list[Certificate], labels: list[str], out: Path,
                 matrix: Matrix | None) -> tuple[dict[int, str], tuple[str, ...]]:
    """Writes ``errors-INDEX.png`` for each certificate :func:`_plotted` selects and removes an earlier run's
    other ``errors-*.png``; returns the plots by index, and a one-line note if matplotlib is missing."""
    wanted = _plotted(certs, labels, matrix)
    plt, missing = load_pyplot() if wanted else (None, None)
    plots = {} if plt is None else {i: plot(plt, certs[i], labels[i], out / f"errors-{i}.png") for i in wanted}
    for stale in out.glob("errors-*.png"):  # an earlier run's plots would be read as this run's
        if stale.name not in plots.values():
            stale.unlink()
    return plots, (() if missing is None else (f"plots skipped: {missing}",))


def write(certs: list[Certificate], out: str | Path, *, informational: frozenset[int] = frozenset(),
          matrix: Matrix | None = None) -> Written:
    """Writes ``certificate.json``, ``junit.xml``, ``report.md``, ``report.html`` and ``errors-INDEX.png``
    plots into ``out``, each atomically, and returns what was written.

    With ``matrix`` (whose certificates are ``certs``) ``report.md`` is the
    compact matrix report, and the JUnit names its rows as the matrix does;
    without it, each certificate is written in full.  A certificate whose
    index is in ``informational`` reads "differs".  Only a failure with
    numbers is plotted (not a conforming or differing certificate).  When
    matplotlib cannot be imported, no plot is written and
    :attr:`Written.notes` says why.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "certificate.json", to_json(certs))
    write_text(out / "junit.xml", junit(certs, informational, None if matrix is None else matrix.row_names()))
    labels = [verdict_label(c, i in informational) for i, c in enumerate(certs)]
    plots, notes = _write_plots(certs, labels, out, matrix)
    text = (matrix_markdown(matrix, labels, plots) if matrix is not None
            else certify_markdown(certs, labels, plots))
    text += "".join(f"\n{note}\n" for note in notes)
    write_text(out / "report.md", text)
    title = "optspec matrix" if matrix is not None else f"optspec: {', '.join(against(c) for c in certs)}"
    images = {name: (out / name).read_bytes() for name in plots.values() if (out / name).is_file()}
    write_text(out / "report.html", html.page(title, text, images, CELL_CLASSES))
    return Written(files=("certificate.json", "junit.xml", "report.md", "report.html", *plots.values()),
                   notes=notes)
