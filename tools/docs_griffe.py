"""A griffe extension (``mkdocs.yml``'s mkdocstrings options): docstrings' reST maths and roles as Markdown, so
that the API pages render each rule's update with its maths (``tools/docs_reference.rst_to_markdown``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import griffe

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.docs_reference import rst_to_markdown


class RstDocstrings(griffe.Extension):
    """Rewrites every docstring griffe loads with :func:`rst_to_markdown`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
