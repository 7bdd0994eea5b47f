"""Hypothesis profiles (``dev``, ``ci`` derandomized, ``certify``) and shared fixtures."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("dev", max_examples=30, **_COMMON)
settings.register_profile("ci", max_examples=60, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("certify", max_examples=500, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def false_alarm_cases() -> int:
    """Hypothesis cases per framework and seed for the no-false-alarm test (2,000 on CI)."""
    return 2000 if settings.default.derandomize or settings.default.max_examples >= 500 else 200


def needs(framework: str):
    """Skips a test, with the reason, when ``framework`` is not installed."""
    from optspec.adapters import is_available

    return pytest.mark.skipif(not is_available(framework), reason=f"{framework} is not installed")
