"""Hides the modules ``OPTSPEC_TEST_HIDDEN`` names (top-level names, comma-separated) as if not installed.

A process whose ``PYTHONPATH`` starts with this folder runs it at startup
(and so does every process it spawns): the path finder finds nothing of a
hidden module, so ``import orbax`` fails and ``importlib.util.find_spec``
answers as they do where it was never installed (tests/test_first_minutes.py).
"""
import importlib.machinery
import os
import sys

_hidden = tuple(filter(None, os.environ.get("OPTSPEC_TEST_HIDDEN", "").split(",")))


class _Hiding:
    """A path finder that finds nothing of a hidden module: its import fails as a missing one's does."""

    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _hidden:
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, attribute):
        return getattr(self.finder, attribute)


if _hidden:
    sys.meta_path[:] = [_Hiding(f) if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
