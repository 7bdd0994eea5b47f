"""The documentation's generated reference (``tools/docs_reference.py``): every option of the CLI and the plugin,
the exit codes, every field of the certificate's schema, and the reST maths of docstrings as Markdown."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from optspec.conformance import pytest_plugin
from optspec.conformance.cli import parser
from tools import docs_reference

ROOT = Path(__file__).resolve().parent.parent


def test_the_cli_reference_shows_every_option_of_every_command():
    page = docs_reference.cli_markdown(parser())
    assert docs_reference.missing_options(parser(), page) == []
    assert {"certify --sharding", "identify --impl", "golden <action>", "--version"} <= set(
        docs_reference.options(parser()))
    for action in parser()._subparsers._group_actions[0].choices["certify"]._actions:
        for choice in action.choices or ():
            assert f"`{choice}`" in page


def test_an_option_missing_from_the_built_page_is_named_with_its_command():
    page = docs_reference.cli_markdown(parser())
    certify = page.index("## `optspec certify`")
    end = page.index("## `optspec", certify + 1)
    dropped = page[:certify] + page[certify:end].replace("--seed", "--sd") + page[end:]
    assert docs_reference.missing_options(parser(), dropped) == ["certify --seed"]


def test_a_new_option_appears_in_the_reference_without_an_edit():
    cli = parser()
    cli._subparsers._group_actions[0].choices["identify"].add_argument("--brand-new", help="a new option")
    assert "`--brand-new`" in docs_reference.cli_markdown(cli)
    assert docs_reference.missing_options(cli, docs_reference.cli_markdown(parser())) == ["identify --brand-new"]


def test_the_plugin_reference_lists_every_option_the_plugin_adds():
    page = docs_reference.plugin_markdown(pytest_plugin.pytest_addoption)
    listed = re.findall(r"^\| `(--optspec-[a-z-]+)`", page, re.M)
    assert {*pytest_plugin.OPTIONS, "--optspec-skips"} <= set(listed) and len(listed) == len(set(listed))


def test_the_exit_codes_are_read_from_the_clis_docstrings():
    assert re.findall(r"^\| `(\d+)` \|", docs_reference.exit_codes_markdown(), re.M) == ["0", "1", "2", "3", "130"]


def test_the_certificate_reference_lists_every_field_of_the_schema():
    schema = json.loads(docs_reference.SCHEMA_PATH.read_text())
    page = docs_reference.schema_markdown(schema)
    for definition in [schema, *schema["$defs"].values()]:
        for field in definition["properties"]:
            assert f"| `{field}` |" in page


def test_rest_maths_and_roles_become_markdown():
    text = ("Let :math:`u` be ``x``, see :class:`~optspec.spec.Rule`.\n\n"
            "    .. math::\n\n        B = c\\,u\n\n    done")
    assert docs_reference.rst_to_markdown(text) == (
        "Let $u$ be `x`, see `optspec.spec.Rule`.\n\n    $$\n    B = c\\,u\n    $$\n\n    done")


def test_every_generated_block_of_the_pages_generates():
    names = [m["name"] for page in (ROOT / "docs").rglob("*.md") for m in docs_reference.GENERATED.finditer(
        page.read_text())]
    assert {"cli", "pytest-plugin", "exit-codes", "certificate-schema"} <= set(names)
    for name in names:
        assert docs_reference.generate(name).strip()


@pytest.mark.parametrize("name", ["nothing", "docstring optspec.conformance.no_such_module", "docstring numpy.linalg"])
def test_a_block_that_cannot_be_generated_is_an_error(name):
    with pytest.raises(docs_reference.GenerationError):
        docs_reference.generate(name)


