"""The cases certify draws depend on the seed, not on which local modules the process has loaded."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

#: A local module (not site-packages, not a test file) whose float literals hypothesis would collect.
LITERALS = "VALUES = (" + ", ".join(f"{k}.{k}e-{k % 9}" for k in range(1, 200)) + ")\n"

DRAW = textwrap.dedent("""
    import hashlib, sys
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from optspec import adapters
    from optspec.conformance.cases import random_cases
    from optspec.conformance.certify import drawn_cases

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
    print(digest(drawn_cases(subject, "float32", 60, 0)), digest(plain))
""")


def _digests(*argv: str) -> tuple[str, str]:
    result = subprocess.run([sys.executable, "-c", DRAW, *argv], capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    certify_digest, plain_digest = result.stdout.split()
    return certify_digest, plain_digest


def test_a_local_module_full_of_literals_does_not_change_the_drawn_cases(tmp_path: Path):
    (tmp_path / "vendor_constants.py").write_text(LITERALS)
    alone_certify, alone_plain = _digests("alone")
    with_certify, with_plain = _digests("with-literals", str(tmp_path))
    assert alone_plain != with_plain, (
        "precondition: a plain @seed(0) draw should change when a local module full of literals is loaded "
        "(hypothesis' local constants); if hypothesis no longer does this, optspec.conformance.seeded can go")
    assert alone_certify == with_certify, (
        "drawn_cases changed when a local module was imported: certify's draws depend on sys.modules, "
        "so `optspec certify --seed N` would not reproduce across environments")
