"""``report.html``: the report's Markdown as one self-contained page, for a CI artifact.

The page is rendered from the very Markdown of ``report.md``
(:mod:`optspec.conformance.report`), so the two never say different things.
It understands the Markdown that report writes and nothing more: headings,
paragraphs, ``- `` lists, pipe tables (``\\|`` a pipe inside a cell),
fenced code, ``---`` rules, inline ``code`` and ``**bold**``, a link to an
anchor of the page ``[text](#name)`` and an anchor ``<a id="name"></a>``
(nothing else of HTML), and an image line ``![alt](NAME)`` whose PNG
``NAME`` is inlined as a ``data:`` URI.  Everything else is text.  A table
cell whose first word is a key of ``cell_classes`` gets that class (the
matrix's verdicts, coloured by :data:`STYLE`).

Every piece of text is HTML-escaped (a subject's name, a case, an exception
message come from the code under test), and the page's Content Security
Policy allows no script, no request and no resource but its own style and
inlined images: it opens offline, and shows what it says and nothing else.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterator, Mapping

#: No script, no request: inline style and ``data:`` images only.
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #1b1f24; }
table { border-collapse: collapse; margin: 0.8rem 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
td.pass { background: #dafbe1; } td.fail { background: #ffebe9; font-weight: 600; }
td.differs { background: #fff8c5; } td.na { color: #57606a; background: #f6f8fa; }
td.pass, td.fail, td.differs, td.na { white-space: nowrap; }
td a { color: inherit; }
th { background: #f6f8fa; }
pre { background: #f6f8fa; padding: 0.8rem; overflow-x: auto; }
code { font: 13px ui-monospace, monospace; }
img { max-width: 100%; }
strong { font-size: 1.1em; }
"""

_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<name>[^)\s]+)\)$")
#: An anchor, and a link to one (its text may hold balanced brackets: ``AdamW[foreach]``).
_ANCHOR = r'<a id="(?P<anchor>[A-Za-z0-9_-]+)"></a>'
_LINK = re.compile(r"\[(?P<text>(?:[^\[\]]|\[[^\[\]]*\])*)\]\(#(?P<target>[A-Za-z0-9_-]+)\)")
_ANCHOR_OR_LINK = re.compile(f"{_ANCHOR}|{_LINK.pattern}")
#: A cell separator of a pipe table: a ``|`` not escaped as ``\|``.
_CELL = re.compile(r"(?<!\\)\|")
_HEADING = re.compile(r"^(?P<level>#{1,6}) (?P<text>.*)$")


def page(title: str, markdown: str, images: Mapping[str, bytes],
         cell_classes: Mapping[str, str] | None = None) -> str:
    """The HTML page of ``markdown``, titled ``title``, with the PNGs of ``images`` (by the name the
    Markdown links) inlined; an image not in ``images`` reads as its alt text and name.  A table cell whose
    first word is a key of ``cell_classes`` gets its value as class."""
    return document(title, "\n".join(_blocks(markdown.splitlines(), images, cell_classes or {})))


def document(title: str, body: str, style: str = STYLE) -> str:
    """A whole page of ``body`` (HTML, already escaped) under :data:`POLICY`, titled ``title``."""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{style}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def _blocks(lines: list[str], images: Mapping[str, bytes], classes: Mapping[str, str]) -> Iterator[str]:
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            index += 1
        elif line.startswith("```"):
            end = next((i for i in range(index + 1, len(lines)) if lines[i].startswith("```")), len(lines))
            yield f"<pre><code>{html.escape(chr(10).join(lines[index + 1:end]))}</code></pre>"
            index = end + 1
        elif heading := _HEADING.match(line):
            level = len(heading["level"])
            yield f"<h{level}>{_inline(heading['text'])}</h{level}>"
            index += 1
        elif line.strip() == "---":
            yield "<hr>"
            index += 1
        elif image := _IMAGE.match(line.strip()):
            yield _image(image["alt"], image["name"], images)
            index += 1
        else:
            kind = "table" if line.startswith("|") else "list" if line.startswith("- ") else "text"
            end = index + 1
            while end < len(lines) and lines[end].strip() and _kind(lines[end]) == kind:
                end += 1
            block = lines[index:end]
            yield _table(block, classes) if kind == "table" else {"list": _list, "text": _paragraph}[kind](block)
            index = end


def _kind(line: str) -> str:
    if line.startswith("|"):
        return "table"
    if line.startswith("- "):
        return "list"
    if line.startswith(("```", "#", "---")) or _IMAGE.match(line.strip()):
        return "block"
    return "text"


def _table(rows: list[str], classes: Mapping[str, str]) -> str:
    cells = [[cell.strip().replace("\\|", "|") for cell in _CELL.split(row.strip().removeprefix("|").removesuffix("|"))]
             for row in rows]
    head, body = cells[0], [row for row in cells[1:] if not all(set(c) <= set("-: ") for c in row)]
    lines = ["<table>", "<thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead>", "<tbody>"]
    lines += ["<tr>" + "".join(_cell(c, classes) for c in row) + "</tr>" for row in body]
    return "\n".join([*lines, "</tbody>", "</table>"])


def _cell(text: str, classes: Mapping[str, str]) -> str:
    """A ``<td>``, with the class of ``classes`` that its shown text's first word names, if any."""
    shown = _LINK.sub(lambda link: link["text"], text).split(" ")[0].rstrip("*")
    kind = classes.get(shown)
    return f'<td class="{kind}">{_inline(text)}</td>' if kind else f"<td>{_inline(text)}</td>"


def _list(items: list[str]) -> str:
    return "<ul>\n" + "\n".join(f"<li>{_inline(item[2:])}</li>" for item in items) + "\n</ul>"


def _paragraph(lines: list[str]) -> str:
    return f"<p>{_inline(' '.join(lines))}</p>"


def _image(alt: str, name: str, images: Mapping[str, bytes]) -> str:
    if name not in images:
        return f"<p>{html.escape(alt)} ({html.escape(name)}: not written)</p>"
    data = base64.b64encode(images[name]).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'


def _inline(text: str) -> str:
    """``code``, ``**bold**``, anchors and links to them in escaped text (the code's own text is read as
    nothing but text; ``\\*`` is a star)."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if len(part) >= 2 and part.startswith("`") and part.endswith("`"):
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            out.append(_links(part))
    return "".join(out)


def _links(text: str) -> str:
    """Text outside code: anchors and links to them kept as HTML, everything else escaped, bold read."""
    out, at = [], 0
    for found in _ANCHOR_OR_LINK.finditer(text):
        out.append(_plain(text[at:found.start()]))
        if found["anchor"] is not None:
            out.append(f'<a id="{found["anchor"]}"></a>')
        else:
            out.append(f'<a href="#{found["target"]}">{_plain(found["text"])}</a>')
        at = found.end()
    return "".join([*out, _plain(text[at:])])


def _plain(text: str) -> str:
    """Escaped text with ``**bold**`` read, and ``\\*`` a star."""
    bold = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))
    return bold.replace("\\*", "*")
