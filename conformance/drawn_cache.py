"""The drawn cases of a certification, kept on disk so that each machine draws them once.

Hypothesis takes about 15 ms to generate one case (its engine, not the
arrays), so a default certification spends 1.5 s drawing its 100 cases
before it runs any.  What it draws depends only on what
:func:`~optspec.conformance.certify.drawn_cases` takes (the hyperparameters
the subject supports, the dtype, the count and the seed), on the versions
of hypothesis and NumPy, and on the source of the modules that draw them
(:data:`DRAWING_MODULES`); :func:`key` names all of it, so a cached draw is
the draw itself, and any change to one of them draws afresh.

A draw is stored as one ``.npz`` file: the arrays, and the rest as JSON
(hyperparameters as Python literals, read back with :func:`ast.literal_eval`),
read with ``allow_pickle=False``.  A file that does not read back as that
key's cases is ignored and replaced; a write is atomic.  The folder is
:func:`~optspec.adapters.caches.cache_folder`'s ``drawn``
(``OPTSPEC_CACHE_DIR=off`` keeps nothing); one that cannot be written is
simply not used.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from optspec.conformance import cache_files
from optspec.conformance.cases import Case

#: The modules whose source decides what a seed draws: the strategies, the case's form and range, the
#: hypothesis settings of the draw, and the hiding of local constants.
DRAWING_MODULES = ("optspec.conformance.strategies", "optspec.conformance.cases",
                   "optspec.conformance.representable", "optspec.conformance.seeded",
                   "optspec.conformance.certify")

#: Bumped when the file's layout changes.
FORMAT = 1


@functools.cache
def _sources_digest() -> str:
    digest = hashlib.sha256()
    for name in DRAWING_MODULES:
        digest.update(Path(importlib.util.find_spec(name).origin).read_bytes())  # found, not imported
    return digest.hexdigest()


def key(supports: frozenset[str], dtype: str, examples: int, seed_value: int) -> str:
    """The name of a draw: everything it depends on, hashed."""
    named = json.dumps([FORMAT, importlib.metadata.version("hypothesis"), np.__version__, _sources_digest(), sorted(supports),
                        dtype, examples, seed_value])
    return hashlib.sha256(named.encode()).hexdigest()[:32]


def load(name: str) -> tuple[Case, ...] | None:
    """The cases stored under ``name``, or None where there are none that read back whole."""
    return cache_files.read("drawn", name, lambda stored, meta: tuple(
        _case(stored, index, entry) for index, entry in enumerate(meta["cases"])))


def _case(stored: np.lib.npyio.NpzFile, index: int, entry: dict) -> Case:
    params0 = [np.asarray(stored[f"{index}.params.{j}"], np.float64) for j in range(entry["tensors"])]
    grads = [np.asarray(stored[f"{index}.grads.{j}"], np.float64) for j in range(entry["tensors"])]
    lrs = [float(lr) for lr in entry["lrs"]]
    if any(g.shape != (len(lrs), *p.shape) for p, g in zip(params0, grads)):
        raise ValueError("a stored case's gradients do not match its parameters and steps")
    hyper = ast.literal_eval(entry["hyper"])
    if not isinstance(hyper, dict):
        raise ValueError("a stored case's hyperparameters are not a mapping")
    restore_at = entry["restore_at"]
    return Case(params0, grads, lrs, hyper, None if restore_at is None else int(restore_at))


def save(name: str, cases: Sequence[Case]) -> None:
    """Stores ``cases`` under ``name``, atomically; where the folder cannot be written, nothing."""
    if any(_literal(case.hyper) != case.hyper for case in cases):
        return  # a value that is not a Python literal would not read back: such a draw is made each time
    arrays: dict[str, np.ndarray] = {}
    entries = []
    for index, case in enumerate(cases):
        for j, (params, grads) in enumerate(zip(case.params0, case.grads)):
            arrays[f"{index}.params.{j}"], arrays[f"{index}.grads.{j}"] = params, grads
        entries.append({"tensors": len(case.params0), "lrs": [float(lr) for lr in case.lrs],
                        "hyper": repr(case.hyper), "restore_at": case.restore_at})
    cache_files.write("drawn", name, arrays, {"cases": entries})


def _literal(hyper: dict) -> object:
    try:
        return ast.literal_eval(repr(hyper))
    except (ValueError, SyntaxError):
        return None
