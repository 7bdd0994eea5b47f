"""Keras 3 on each backend it runs on, certified as ``--framework keras`` (inferred from the optimizer).

Keras picks its backend once per process, from ``KERAS_BACKEND``, so each backend runs in its own process,
as a user runs it.  On torch, ``keras.optimizers.AdamW`` is a different kernel (``TorchOptimizer.__new__``
swaps in ``keras/src/backend/torch/optimizers/torch_adamw.py``, a ``torch._foreach_*`` update); on jax and
tensorflow it is ``keras/src/optimizers/adamw.py`` over the backend's ops.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import needs

#: One process per backend: AdamW certified, then the defective subclass certified.  That identify names keras on
#: each backend is a row of the ecosystem scoreboard ("Keras 3 AdamW on ..."), which `nox -s ecosystem_check` runs.
SCRIPT = """
import sys
from optspec.conformance.cli import main
out = sys.argv[1]
print("certify", main(["certify", "--impl", "keras.optimizers:AdamW", "--examples", "10", "--out", out]))
print("defect", main(["certify", "--impl", "tests.plugins.keras_subjects:AdamWDecayAfter", "--examples", "10"]))
"""


@pytest.mark.parametrize("backend", [pytest.param(b, marks=needs(b)) for b in ("tensorflow", "jax", "torch")])
def test_adamw_conforms_on_each_backend_and_a_defect_is_rejected(backend, tmp_path):
    import keras

    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "out")], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": backend}, cwd=Path(__file__).parents[1], timeout=600)
    lines = done.stdout.splitlines()
    codes = dict(line.split() for line in lines if line.split()[0] in ("certify", "defect") and len(line.split()) == 2)
    assert done.returncode == 0 and codes == {"certify": "0", "defect": "1"}, (lines, done.stderr)
    assert "CONFORMS: keras.optimizers:AdamW vs keras (" in done.stdout, lines
    rejected = next(line for line in lines if line.startswith("DOES NOT CONFORM: tests.plugins.keras_subjects"))
    assert "decay_point=after" in done.stdout[done.stdout.index(rejected):], lines
    (cert,) = json.loads((tmp_path / "out" / "certificate.json").read_text())["certificates"]
    assert cert["framework"] == "keras" and cert["framework_version"].startswith(f"{keras.__version__} on {backend} ")
