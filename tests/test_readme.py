"""Every Python snippet of the README runs as written, in a fresh interpreter outside the checkout."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import needs

README = Path(__file__).resolve().parent.parent / "README.md"
SNIPPETS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.M | re.S)


def test_the_readme_has_its_snippets():
    assert len(SNIPPETS) == 2, "tests/test_readme.py expects the README's two Python snippets"


@needs("torch")
@needs("jax")
@needs("tensorflow")
@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.splitlines()[-1][:40] for s in SNIPPETS])
def test_a_readme_snippet_runs_as_written(snippet, tmp_path):
    done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300, check=False)
    assert done.returncode == 0, f"README snippet failed:\n{snippet}\n{done.stderr[-3000:]}"
