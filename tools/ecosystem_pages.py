"""The scoreboard's pages: ``docs/ecosystem/README.md`` and the self-contained ``index.html``.

Both show the same rows: the implementation, its package and version, its
framework, the convention its package claims, the one ``identify`` found (and
its fit), ``certify``'s verdict against the claim per dtype, the differing
knob or cause, and a link to the certificates; then, per row, what its source
shows, cited, and where optspec's answer and the source differ, identify's
own words.  The HTML page inlines each failure's error and bound per step as
an SVG plot, and filters by framework and verdict with CSS alone (radio
buttons and ``:checked`` selectors): its Content Security Policy allows no
script and no request, as ``report.html``'s does.
"""

from __future__ import annotations

import html
import math

from optspec.conformance.html import STYLE, document
from tools.ecosystem_records import Implementation, Measured, Verdict, shown
from tools.ecosystem_rows import NOT_RUN

Pair = tuple[Implementation, Measured]

INTRO = ("Which AdamW (or Lion, NAdam or RAdam) am I running, and does it do what its name says? Each row is a real optimizer as it "
         "ships, run by optspec on the CPU: `identify` finds the convention it follows (in float32), and "
         "`certify` holds it to the convention its package claims. What each source computes is read from the "
         "installed package and cited by file and line below the table; \"source agrees\" says whether "
         "identify found the same. Regenerate with `nox -s ecosystem`; CI checks every row against a fresh run "
         "(`nox -s ecosystem_check`).")
HEADER = ("implementation", "package", "framework", "claims", "identified (fit)", "verdict", "knob or cause",
          "source agrees", "certificate")


def _identified(row: Measured) -> str:
    return row.identified if row.identified == "unfit" else f"{row.identified} ({row.fit:.2g})"


def _verdicts(row: Measured) -> str:
    return "; ".join(f"{v.dtype}: {v.verdict}" for v in row.verdicts)


def _causes(row: Measured) -> str:
    """The knobs identify found to differ from the claim, then each other dtype's cause in a few words."""
    causes = [", ".join(f"{k}={shown(v)}" for k, v in row.differs.items())] if row.differs else []
    causes += [f"{v.dtype}: {v.short}" for v in row.verdicts if v.cause and not (row.differs and v.dtype == "float32")]
    return "; ".join(causes) or "-"



def _cells(impl: Implementation, row: Measured) -> tuple[str, ...]:
    return (impl.name, f"{impl.package} {row.version}", impl.where, impl.claims, _identified(row), _verdicts(row),
            _causes(row), "yes" if row.agrees else "no, see below", f"certificates/{impl.slug}.json")


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(pairs: list[Pair]) -> str:
    """``README.md``: the table, then each row's source and evidence."""
    lines = ["# Real optimizers, certified", "", INTRO, "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for impl, row in pairs:
        cells = list(_cells(impl, row))
        cells[-1] = f"[json]({cells[-1]})"
        lines.append("| " + " | ".join(_md_escape(c) for c in cells) + " |")
    lines += ["", "## Not on the scoreboard, and why", ""]
    lines += [f"- {unrun.name} ({unrun.package}): {unrun.reason}." for unrun in NOT_RUN]
    lines += ["", "## What each source shows", ""]
    for impl, row in pairs:
        lines += [f"### {impl.name}", "", f"`{impl.impl}` ({impl.where}); read from the source: "
                  f"{impl.reading.describe()}.", ""]
        lines += [f"- `{c.file}:{c.lines}`: {c.says}" for c in impl.sources]
        if not row.agrees:
            lines += ["", "optspec's answer differs from the reading; identify said:", "", "```",
                      *row.identify_said, "```"]
        for verdict in row.verdicts:
            if verdict.cause:
                lines += ["", f"certify in {verdict.dtype} against `{impl.claims}`: {verdict.verdict}: "
                          f"{verdict.cause}"]
        lines.append("")
    return "\n".join(lines)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower())


def _status(row: Measured) -> str:
    """The row's verdict class: conforms where every dtype conforms (or is not applicable)."""
    return "conforms" if all(v.verdict != "does not conform" for v in row.verdicts) else "differs"


def plot(verdict: Verdict, width: int = 260, height: int = 90) -> str:
    """An inline SVG of a failure's error (red) and bound (grey) per step on a log scale, or ''."""
    points = [(e, b) for e, b in verdict.errors if e > 0 and b > 0 and math.isfinite(e) and math.isfinite(b)]
    if len(points) < 2:
        return ""
    logs = [math.log10(v) for pair in points for v in pair]
    low, high = min(logs), max(logs)
    span = (high - low) or 1.0

    def line(values: list[float], colour: str) -> str:
        xy = " ".join(f"{4 + i * (width - 8) / (len(values) - 1):.1f},"
                      f"{height - 4 - (math.log10(v) - low) / span * (height - 8):.1f}" for i, v in enumerate(values))
        return f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{xy}"/>'

    label = f"{verdict.dtype}: error (red) and bound (grey) per step, log scale"
    return (f'<svg role="img" aria-label="{html.escape(label)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
            f'<title>{html.escape(label)}</title><rect width="100%" height="100%" fill="#f6f8fa"/>'
            f'{line([b for _, b in points], "#8c959f")}{line([e for e, _ in points], "#cf222e")}</svg>')


def html_page(pairs: list[Pair]) -> str:
    """``index.html``: the table with filters, plots inlined, then each row's source."""
    frameworks = sorted({impl.framework for impl, _ in pairs})
    statuses = ("conforms", "differs")
    filters, rules = [], []
    for group, values in (("framework", frameworks), ("verdict", statuses)):
        # the radios are siblings of the table, which the ``~`` selectors below reach
        filters.append(f'<span class="filter">{group}:</span>'
                       f'<input type="radio" name="{group}" id="{group}-all" checked><label for="{group}-all">all</label>'
                       + "".join(f'<input type="radio" name="{group}" id="{group}-{_slug(v)}">'
                                 f'<label for="{group}-{_slug(v)}">{html.escape(v)}</label>' for v in values)
                       + "<br>\n")
        rules += [f"#{group}-{_slug(v)}:checked ~ table tbody tr:not(.{group}-{_slug(v)}) {{ display: none; }}"
                  for v in values]
    body = []
    for impl, row in pairs:
        cells = _cells(impl, row)
        tds = [html.escape(c) for c in cells[:-1]]
        tds[5] = tds[5] + "".join(plot(v) for v in row.verdicts)
        tds.append(f'<a href="{html.escape(cells[-1])}">json</a>')
        classes = f"framework-{_slug(impl.framework)} verdict-{_status(row)}"
        body.append(f'<tr class="{classes}" id="row-{impl.slug}">' + "".join(f"<td>{t}</td>" for t in tds) + "</tr>")
    sources = []
    for impl, row in pairs:
        items = "".join(f"<li><code>{html.escape(c.file)}:{html.escape(c.lines)}</code>: {html.escape(c.says)}</li>"
                        for c in impl.sources)
        differs = ("" if row.agrees else "<p>optspec's answer differs from the reading; identify said:</p><pre>"
                   + html.escape("\n".join(row.identify_said)) + "</pre>")
        sources.append(f"<h3>{html.escape(impl.name)}</h3><p><code>{html.escape(impl.impl)}</code> "
                       f"({html.escape(impl.where)}); read from the source: {html.escape(impl.reading.describe())}."
                       f"</p><ul>{items}</ul>{differs}")
    style = STYLE + ".filter { font-weight: 600; }\ninput[type=radio] { margin-left: 0.6rem; }\n" + "\n".join(rules)
    return document("optspec: real optimizers, certified", (
            f"<h1>Real optimizers, certified</h1>\n<p>{html.escape(INTRO)}</p>\n<main>\n"
            + "".join(filters)
            + "<table>\n<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in HEADER) + "</tr></thead>\n"
            "<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>\n</main>\n"
            "<h2>Not on the scoreboard, and why</h2>\n<ul>"
            + "".join(f"<li>{html.escape(u.name)} ({html.escape(u.package)}): {html.escape(u.reason)}.</li>"
                      for u in NOT_RUN) + "</ul>\n"
            "<h2>What each source shows</h2>\n" + "\n".join(sources)), style)
