"""Every ``certificate.json`` the suite writes is held to the schema the wheel ships
(``optspec/conformance/certificate.schema.json``): ``tests/conftest.py`` calls :func:`assert_all_valid` on each
test's ``tmp_path`` after the test, and on each :func:`tests.conftest.built_once` folder."""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

SCHEMA_FILE = "certificate.schema.json"


@functools.cache
def schema() -> dict[str, Any]:
    """The JSON Schema of ``certificate.json``, read from the installed package."""
    return json.loads((resources.files("optspec.conformance") / SCHEMA_FILE).read_text())


@functools.cache
def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(schema())


def problems(document: Any) -> list[str]:
    """One line per way ``document`` breaks the schema (empty where it validates)."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{e.message} at /{'/'.join(map(str, e.absolute_path))}" for e in errors]


def assert_all_valid(folder: Path) -> int:
    """:func:`assert_valid` on every ``certificate.json`` under ``folder`` that holds a JSON document (a test of
    atomic writes leaves one of plain text); returns how many were validated."""
    __tracebackhide__ = True
    checked = 0
    for path in sorted(folder.rglob("certificate.json")) if folder.is_dir() else []:
        try:
            document = json.loads(path.read_text())
        except (ValueError, OSError):
            continue
        found = problems(document)
        assert not found, (f"{path} does not validate against optspec/conformance/{SCHEMA_FILE}: {found[0]} "
                           f"({len(found)} violation(s)); the schema is the certificate's contract: change both "
                           "together")
        checked += 1
    return checked
