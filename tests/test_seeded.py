"""The cases certify draws depend on the seed, not on which local modules the process has loaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

#: A local module (not site-packages, not a test file) whose float literals hypothesis would collect.
LITERALS = "SENTINEL = 123.456\nVALUES = (" + ", ".join(f"{k}.{k}e-{k % 9}" for k in range(1, 200)) + ")\n"

DRAW = textwrap.dedent("""
    import hashlib, json, sys
    from hypothesis.internal.conjecture import providers
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from optspec import adapters
    from optspec.conformance.strategies import random_cases
    from optspec.conformance.certify import drawn_cases
    from optspec.conformance.seeded import seed_only_draws

    if sys.argv[1] == "with-literals":
        sys.path.insert(0, sys.argv[2])
        import vendor_constants  # noqa: F401

    (subject,) = adapters.resolve_subject("numpy", "spec.adamw")

    def digest(cases):
        h = hashlib.sha256()
        for case in cases:
            h.update(repr((case.hyper, case.lrs, case.restore_at)).encode())
            for array in (*case.params0, *case.grads):
                h.update(array.tobytes())
        return h.hexdigest()

    plain = []

    @settings(max_examples=60, database=None, deadline=None, phases=(Phase.generate,),
              suppress_health_check=list(HealthCheck))
    @seed(0)
    @given(case=random_cases(frozenset(subject.supports), "float32"))
    def collect(case):
        plain.append(case)

    collect()
    with seed_only_draws():
        hidden = 123.456 not in providers._get_local_constants().floats
    print(json.dumps({"certify": digest(drawn_cases(subject, "float32", 60, 0)), "plain": digest(plain),
                      "collected": 123.456 in providers._get_local_constants().floats, "hidden": hidden}))
""")


def _draw(*argv: str) -> dict:
    # drawn, not read back from the cache of drawn cases (optspec.conformance.drawn_cache)
    result = subprocess.run([sys.executable, "-c", DRAW, *argv], capture_output=True, text=True, timeout=300,
                            check=False, env={**os.environ, "OPTSPEC_CACHE_DIR": "off"})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _outside_test_folders(tmp_path: Path) -> Path:
    """A folder hypothesis counts as local: no part of its path may be ``test`` or ``tests``.

    Under nox the temporary folder is ``.nox/tests/tmp/...``, which hypothesis
    takes for a test folder and does not scan.
    """
    if not {"test", "tests"} & set(tmp_path.parts):
        return tmp_path
    return Path(tempfile.mkdtemp(prefix="optspec-literals-", dir="/tmp" if Path("/tmp").is_dir() else None))


def test_a_local_module_full_of_literals_does_not_change_the_drawn_cases(tmp_path: Path):
    folder = _outside_test_folders(tmp_path)
    (folder / "vendor_constants.py").write_text(LITERALS)
    try:
        alone = _draw("alone")
        with_literals = _draw("with-literals", str(folder))
    finally:
        if folder != tmp_path:
            shutil.rmtree(folder)
    assert with_literals["collected"] and not alone["collected"], (
        "precondition: hypothesis collects the literals of a loaded local module; if it no longer does, "
        "optspec.conformance.seeded can go")
    assert with_literals["hidden"], "seed_only_draws must hide the local constants while optspec draws"
    assert alone["plain"] != with_literals["plain"], (
        "precondition: a plain @seed(0) draw changes when the module's literals join hypothesis' constants")
    assert alone["certify"] == with_literals["certify"], (
        "drawn_cases changed when a local module was imported: certify's draws depend on sys.modules, "
        "so `optspec certify --seed N` would not reproduce across environments")
