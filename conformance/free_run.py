"""The spec's free run of a golden scenario, kept on disk: computed once per machine, read by every later replay.

The golden ``long`` scenario runs 10,000 steps, and the float64 reference
takes about as long per step as the subject, so a replay would pay for it
at every certification.  What the free run holds (the reference trajectory
:math:`\\theta^{\\mathrm{spec}}_t`, the state after each step, and the update
magnitude :math:`M_t` the tolerance model reads) depends only on the rule,
the convention, the case (hyperparameters, learning rates and inputs, as
the subject receives them), the state's storage, NumPy's version and the
source of the modules that compute it (:data:`COMPUTING_MODULES`); :func:`key`
hashes all of it, so a stored run is the run itself.  The re-synced one-step
references, which read the subject's own trajectory, are computed each time
(:func:`optspec.conformance.reference.resynced`), from the stored states.

A run is one ``.npz`` file, read with ``allow_pickle=False``; a file that
does not read back whole, or as another key's, is ignored and replaced; a
write is atomic.  The folder is :func:`~optspec.adapters.caches.cache_folder`'s
``reference`` (``OPTSPEC_CACHE_DIR=off`` keeps nothing).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from optspec import spec
from optspec.conformance import cache_files
from optspec.conformance.cases import Case

#: The modules whose source decides a free run: the rules, the reference's loop, and the update magnitude.
COMPUTING_MODULES = ("optspec.conformance.reference", "optspec.conformance.tolerance_inputs")

#: Bumped when the file's layout changes.
FORMAT = 1


@dataclasses.dataclass(frozen=True)
class FreeRun:
    """The spec's run of a case from :math:`\\theta_0` alone: ``free`` (steps, ...), ``states`` (the state
    after each step) and ``magnitude`` (:func:`~optspec.conformance.tolerance_inputs.update_magnitude`
    along it)."""

    free: np.ndarray
    states: list[Any]
    magnitude: np.ndarray


@functools.cache
def _sources_digest() -> str:
    digest = hashlib.sha256()
    spec_folder = Path(importlib.util.find_spec("optspec.spec").origin).parent
    for path in sorted(spec_folder.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    for name in COMPUTING_MODULES:
        digest.update(Path(importlib.util.find_spec(name).origin).read_bytes())  # found, not imported
    return digest.hexdigest()


def key(rule: str, convention: spec.Knobs | None, case: Case, theta0: np.ndarray, grads: np.ndarray,
        storage: Mapping[str, str]) -> str:
    """The name of a free run: everything it depends on, hashed."""
    digest = hashlib.sha256(json.dumps([FORMAT, np.__version__, _sources_digest(), rule, repr(convention),
                                        repr(sorted(case.hyper.items())), sorted(storage.items()),
                                        theta0.shape, grads.shape]).encode())
    for array in (np.asarray(case.lrs, np.float64), theta0, grads):
        digest.update(np.ascontiguousarray(array, np.float64).tobytes())
    return digest.hexdigest()[:32]


def load(name: str, initial: Any) -> FreeRun | None:
    """The run stored under ``name``, its states of ``initial``'s type, or None where none reads back whole."""

    def decode(stored: np.lib.npyio.NpzFile, meta: dict[str, Any]) -> FreeRun | None:
        if list(meta["fields"]) != list(initial._fields):
            return None
        free, magnitude = stored["free"], stored["magnitude"]
        columns = {field: _column(stored, field, kind, len(free)) for field, kind in meta["fields"].items()}
        states = [type(initial)(**{field: values[t] for field, values in columns.items()}) for t in range(len(free))]
        return FreeRun(free, states, magnitude)

    return cache_files.read("reference", name, decode)


def _column(stored: np.lib.npyio.NpzFile, field: str, kind: str, steps: int) -> list[Any]:
    if kind == "none":
        return [None] * steps
    values = stored[f"state.{field}"]
    if len(values) != steps:
        raise ValueError("a stored state does not match the run's steps")
    if kind == "int":
        return [int(v) for v in values]
    return list(values) if kind == "array" else [np.asarray(v) for v in values]


def save(name: str, run: FreeRun) -> None:
    """Stores ``run`` under ``name``, atomically; a state it cannot store faithfully, or a folder that cannot
    be written, stores nothing."""
    if not run.states:
        return
    arrays: dict[str, np.ndarray] = {"free": run.free, "magnitude": run.magnitude}
    fields = {}
    for field in run.states[0]._fields:
        values = [getattr(state, field) for state in run.states]
        kind = _kind(values)
        if kind is None:
            return
        fields[field] = kind
        if kind != "none":
            arrays[f"state.{field}"] = np.stack([np.asarray(v) for v in values])
    cache_files.write("reference", name, arrays, {"fields": fields})


def _kind(values: list[Any]) -> str | None:
    """How a state field's values are kept: ``none``, ``int`` (a step count), ``array`` (float64 arrays of
    one shape, at least one axis), ``scalar-array`` (0-d float64 arrays); None where they are none of these."""
    if all(v is None for v in values):
        return "none"
    if all(type(v) is int for v in values):
        return "int"
    if all(type(v) is np.ndarray and v.dtype == np.float64 and v.shape == values[0].shape for v in values):
        return "array" if values[0].ndim else "scalar-array"
    return None
