"""Hypothesis profiles (``dev``, ``ci`` derandomized, ``certify``) and shared fixtures."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests import certificates

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("dev", max_examples=30, **_COMMON)
settings.register_profile("ci", max_examples=60, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("certify", max_examples=500, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


#: Modules that run the installed CLI, a built wheel, third-party optimizers from PyPI or whole reduced-dtype
#: certifications end to end: ``nox -s end_to_end`` runs them, ``nox -s tests`` the rest.
END_TO_END = frozenset({
    "test_advice", "test_docs_ci", "test_isolation", "test_pytest_plugin", "test_readme", "test_real_subjects", "test_trust",
    "test_vendor_flow", "test_wheel", "test_bias_false_alarms",
})


#: Every built-in of SGD, Adagrad, RMSprop, Adamax, NAdam, RAdam and Adadelta certified, matrixed and identified
#: through the CLI in each of its dtypes: ``nox -s end_to_end`` runs them.
CONVENTIONS = frozenset({"test_rule_conventions"})

#: torch's AdamW and Adam certified across 2 and 4 ranks under every sharding strategy, and on one and two
#: (``test_sharded``): ``nox -s sharded`` runs them, in an environment of torch and JAX alone.
SHARDED = frozenset({"test_sharded", "test_sharded_matrix", "test_torchrun"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if module in END_TO_END:
            item.add_marker(pytest.mark.end_to_end)
        if module in CONVENTIONS:
            item.add_marker(pytest.mark.conventions)
        if module in SHARDED:
            item.add_marker(pytest.mark.sharded)


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder ``name`` that ``build`` fills once per test run, whichever xdist worker asks first.

    Every worker of one run shares the parent of its own base temporary
    folder; a file lock there makes the others wait for the first build
    (the wheel and its venv, the vendor flow's commands) and then read it.
    """
    import filelock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    folder = root / name
    with filelock.FileLock(str(folder) + ".lock"):
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            certificates.assert_all_valid(folder)
            (folder / ".built").touch()
    return folder


@pytest.fixture(autouse=True)
def _certificates_follow_the_schema(request: pytest.FixtureRequest):
    """After a test that has a ``tmp_path``, every ``certificate.json`` it left there validates against the schema
    the wheel ships (``tests/certificates.py``)."""
    folder = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if folder is not None:
        certificates.assert_all_valid(folder)


def false_alarm_cases() -> int:
    """Hypothesis cases per framework and seed for the no-false-alarm test (2,000 on CI)."""
    return 2000 if settings.default.derandomize or settings.default.max_examples >= 500 else 200


def needs(framework: str):
    """Skips a test, with the reason, when ``framework`` is not installed."""
    from optspec.adapters import SetupError, is_available

    try:
        available, reason = is_available(framework), f"{framework} is not installed"
    except SetupError as exc:  # Paddle in a process that imported TensorFlow: `nox -s separate` runs its tests
        available, reason = False, str(exc)
    return pytest.mark.skipif(not available, reason=reason)
