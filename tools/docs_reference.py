"""The generated pages of the documentation site: written at build time from the code, never by hand.

``tools/docs_hooks.py`` (MkDocs hooks) replaces each ``<!-- generated: NAME -->`` line of a page with
:func:`generate` ``(NAME)``:

- ``cli``: every command and option of ``optspec``, from its argparse parser (``conformance/cli.py``);
- ``pytest-plugin``: every option of the pytest plugin, from its ``pytest_addoption``;
- ``exit-codes``: the exit codes, from the docstrings of the CLI and of its Ctrl-C handling;
- ``certificate-schema``: the fields of ``certificate.json``, from the JSON Schema the wheel ships;
- ``docstring MODULE``: a module's docstring (``optspec.conformance.tolerance``), its reST maths as Markdown.

After the build, :func:`missing_options` checks that the built CLI reference names every option of the parser.
"""

from __future__ import annotations

import argparse
import ast
import html
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: Where each installed subpackage's source lives in the repository (pyproject.toml's package-dir).
SOURCES = {"optspec": "optspec", "optspec.spec": "spec", "optspec.adapters": "adapters",
           "optspec.conformance": "conformance"}


class GenerationError(ValueError):
    """A page asks for something that cannot be generated (an unknown name, a module without a docstring)."""


# --- reST in docstrings, as Markdown --------------------------------------------------------------------------

_BLOCK_MATH = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*\n(?P<body>(?:[ \t]*\n|(?P=indent)[ \t]+\S.*\n?)+)",
                         re.M)
_ROLE = re.compile(r":(?:py:)?(?P<role>math|class|func|mod|data|attr|meth|exc|obj):`(?P<text>[^`]+)`")


def rst_to_markdown(text: str) -> str:
    """The docstring ``text`` with its reST constructs as Markdown: ``.. math::`` blocks and ``:math:`` roles as
    ``$$...$$`` and ``$...$`` (arithmatex), ````literal```` and the Python roles (``:class:`X```) as code."""

    def block(match: re.Match[str]) -> str:
        lines = [line.strip() for line in match.group("body").splitlines() if line.strip()]
        indent = match.group("indent")
        return f"{indent}$$\n" + "".join(f"{indent}{line}\n" for line in lines) + f"{indent}$$\n\n"

    text = _BLOCK_MATH.sub(block, text)

    def role(match: re.Match[str]) -> str:
        inner = match.group("text")
        return f"${inner}$" if match.group("role") == "math" else f"`{inner.lstrip('~')}`"

    text = _ROLE.sub(role, text)
    return re.sub(r"``(.+?)``", r"`\1`", text)


def module_docstring(module: str) -> str:
    """The docstring of ``module`` (``optspec.conformance.tolerance``), read from its source without importing it."""
    package, _, name = module.rpartition(".")
    if package not in SOURCES:
        raise GenerationError(f"{module}: not a module of optspec's namespace ({', '.join(SOURCES)})")
    path = ROOT / SOURCES[package] / f"{name}.py"
    if not path.is_file():
        raise GenerationError(f"{module}: no file {path.relative_to(ROOT)}")
    docstring = ast.get_docstring(ast.parse(path.read_text()), clean=True)
    if not docstring:
        raise GenerationError(f"{module} has no docstring")
    return docstring


# --- the CLI ---------------------------------------------------------------------------------------------------

def _subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser, str]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, sub, helps.get(name) or ""


def options(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string of ``parser`` and of its subcommands (``--framework`` once per command that takes it),
    as ``COMMAND OPTION`` (``OPTION`` alone for the top level), and every positional as ``COMMAND <dest>``."""
    found = [flag for action in parser._actions for flag in action.option_strings]
    for name, sub, _ in _subcommands(parser):
        for action in sub._actions:
            found += [f"{name} {flag}" for flag in action.option_strings] or [f"{name} <{action.dest}>"]
    return found


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _default(action: argparse.Action) -> str:
    if action.required:
        return "required"
    if action.default in (None, argparse.SUPPRESS) or isinstance(action, argparse._HelpAction):
        return ""
    return f"`{action.default}`"


def _option_table(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| option | value | default | what it does |", "|---|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        names = ", ".join(f"`{flag}`" for flag in action.option_strings) or f"`{action.dest}` (positional)"
        if action.choices:
            value = " \\| ".join(f"`{choice}`" for choice in action.choices)
        elif action.nargs == 0:
            value = ""
        else:
            value = f"`{action.metavar or action.dest.upper()}`" + (
                f" ({action.type.__name__})" if isinstance(action.type, type) else "")
        rows.append(f"| {names} | {value} | {_default(action)} | {_cell(action.help or '')} |")
    return rows


def cli_markdown(parser: argparse.ArgumentParser) -> str:
    """The reference of ``parser``: its usage and options, then a section per subcommand with its usage,
    description and a table of its options (choices, defaults, help), all read from the parser."""
    parts = [f"```\n{parser.format_usage().strip()}\n```", "", _cell(parser.description or ""), "",
             *_option_table(parser), ""]
    for name, sub, about in _subcommands(parser):
        description = sub.description or about
        parts += [f"## `{parser.prog} {name}`", "", _cell(description[:1].upper() + description[1:]) + ".", "",
                  f"```\n{sub.format_usage().strip()}\n```", "", *_option_table(sub), ""]
    return "\n".join(parts)


def missing_options(parser: argparse.ArgumentParser, page_html: str) -> list[str]:
    """The options of :func:`options` that the built page ``page_html`` does not show in its command's section."""
    article = re.search(r"<article\b.*?</article>", page_html, re.S)  # not the navigation, which names the sections
    text = html.unescape(re.sub(r"<[^>]+>", "", article.group(0) if article else page_html))
    sections = re.split(rf"\n[#\s`]*{re.escape(parser.prog)} (\w+)`?\s*¶?\n", text)  # its headings, built or not
    by_command = {"": sections[0], **dict(zip(sections[1::2], sections[2::2]))}
    missing = []
    for entry in options(parser):
        command, _, option = entry.rpartition(" ")
        if option.startswith("<"):
            option = option[1:-1]
        if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", by_command.get(command, "")):
            missing.append(entry)
    return missing


# --- the pytest plugin -----------------------------------------------------------------------------------------

class _RecordingGroup:
    """Stands in for pytest's option group: records each ``addoption``."""

    def __init__(self) -> None:
        self.added: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    def addoption(self, *names: str, **attrs: Any) -> None:
        self.added.append((names, attrs))

    def getgroup(self, *args: Any, **kwargs: Any) -> _RecordingGroup:
        return self


def plugin_options(addoption: Callable[[Any], None]) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """What ``addoption`` (a plugin's ``pytest_addoption``) adds, as (names, attributes) pairs."""
    group = _RecordingGroup()
    addoption(group)
    return group.added


def plugin_markdown(addoption: Callable[[Any], None]) -> str:
    """A table of the options ``addoption`` adds, read from the calls it makes."""
    rows = ["| option | value | what it does |", "|---|---|---|"]
    for names, attrs in plugin_options(addoption):
        kind = attrs.get("type", str)
        rows.append(f"| {', '.join(f'`{n}`' for n in names)} | {getattr(kind, '__name__', kind)} | "
                    f"{_cell(attrs.get('help', ''))} |")
    return "\n".join(rows)


# --- exit codes and the certificate's schema ------------------------------------------------------------------

def exit_codes_markdown() -> str:
    """The exit codes as the CLI's docstring states them, and Ctrl-C's, from its handling's docstring."""
    cli = module_docstring("optspec.conformance.cli")
    stated = re.search(r"Exit codes:(.*?)(?:\n\n|$)", cli, re.S)
    if stated is None:
        raise GenerationError("conformance/cli.py's docstring states no 'Exit codes:'")
    rows = ["| code | meaning |", "|---|---|"]
    for code, meaning in re.findall(r"(\d+) (.*?)(?=,\s*\d+ |\.?$)", " ".join(stated.group(1).split())):
        rows.append(f"| `{code}` | {_cell(meaning)} |")
    interrupt = module_docstring("optspec.conformance.interrupt").splitlines()[0]
    code = re.search(r"exit (\d+)", interrupt)
    if code is None:
        raise GenerationError("conformance/interrupt.py's docstring names no exit code")
    rows.append(f"| `{code.group(1)}` | {_cell(rst_to_markdown(interrupt))} |")
    return "\n".join(rows)


def _schema_rows(schema: dict[str, Any], definition: dict[str, Any], prefix: str) -> list[str]:
    rows = []
    for name, field in definition["properties"].items():
        ref = field.get("$ref") or next((o["$ref"] for o in field.get("oneOf", []) if "$ref" in o), None)
        items = field.get("items", {}).get("$ref") or (field.get("additionalProperties") or {}).get("$ref")
        kind = field.get("type") or ("const" if "const" in field else "object or null" if ref else "")
        kind = " or ".join(kind) if isinstance(kind, list) else kind
        if "const" in field:
            kind = f"`{json.dumps(field['const'])}`"
        if "enum" in field:
            kind = " \\| ".join(f"`{value}`" for value in field["enum"])
        if items or ref:
            target = (items or ref).rsplit("/", 1)[-1]
            kind = f"{kind} of [{target}](#{target})" if items else f"[{target}](#{target}) or null"
        required = "yes" if name in definition.get("required", ()) else ""
        rows.append(f"| `{prefix}{name}` | {kind} | {required} | {_cell(field.get('description', ''))} |")
    return rows


def schema_markdown(schema: dict[str, Any]) -> str:
    """The schema's objects as tables of their fields (type, required, description), read from ``schema``."""
    header = ["| field | type | required | meaning |", "|---|---|---|---|"]
    parts = [_cell(schema.get("description", "")), "", "### The document", "", *header,
             *_schema_rows(schema, schema, ""), ""]
    for name, definition in schema.get("$defs", {}).items():
        parts += [f"### {name}", "", _cell(definition.get("description", "")), "", *header,
                  *_schema_rows(schema, definition, ""), ""]
    return "\n".join(parts)


SCHEMA_PATH = ROOT / "conformance" / "certificate.schema.json"


def generate(name: str) -> str:
    """The Markdown of the generated block ``name`` (see the module's docstring)."""
    kind, _, argument = name.partition(" ")
    if kind == "cli":
        from optspec.conformance.cli import parser

        return cli_markdown(parser())
    if kind == "pytest-plugin":
        from optspec.conformance.pytest_plugin import pytest_addoption

        return plugin_markdown(pytest_addoption)
    if kind == "exit-codes":
        return exit_codes_markdown()
    if kind == "certificate-schema":
        return schema_markdown(json.loads(SCHEMA_PATH.read_text()))
    if kind == "docstring" and argument:
        return rst_to_markdown(module_docstring(argument))
    raise GenerationError(f"no generated block named {name!r} (cli, pytest-plugin, exit-codes, "
                          "certificate-schema, docstring MODULE)")


GENERATED = re.compile(r"^<!-- generated: (?P<name>[^>]+?) -->$", re.M)


def expand(markdown: str) -> str:
    """``markdown`` with each ``<!-- generated: NAME -->`` line replaced by :func:`generate` ``(NAME)``."""
    return GENERATED.sub(lambda m: generate(m.group("name")), markdown)
