"""``optspec --version`` prints the installed distribution's version, the one a wheel's file name carries."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version


def test_version_prints_the_installed_distributions_version(tmp_path):
    done = subprocess.run([sys.executable, "-m", "optspec", "--version"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120, check=False)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, f"optspec {version('optspec')}", "")
