"""Hypothesis draws that depend on the seed alone, not on which modules the process has loaded.

Hypothesis (6.170 here) collects the numeric literals of every *local* module
in ``sys.modules`` (not the standard library, not site-packages, not test
files) and, with probability 0.05 per choice, draws one of them instead of a
random value (``hypothesis/internal/constants_ast.py``,
``is_local_module_file``; ``internal/conjecture/providers.py``,
``_get_local_constants``).  So ``@seed(0)`` draws different cases in a
process that has imported a vendor's package, an editable optspec, or one
more test module, and ``optspec certify ... --seed 0`` would not reproduce
from one environment to the next.

:func:`seed_only_draws` hides the local constants while optspec draws its
cases.  Hypothesis' own global constants (``0.5``, ``1e-5``, the float
boundaries and so on) stay: they depend only on its version, as every draw
does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def seed_only_draws() -> Iterator[None]:
    """Within the block, hypothesis draws no constants from local modules.

    The cache of permitted constants is cleared on entry and on exit, so that
    neither a value cached by an earlier test nor one cached here crosses over.
    """
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - a hypothesis layout without providers draws no local constants
        yield
        return
    collect = getattr(providers, "_get_local_constants", None)
    if collect is None:  # pragma: no cover - a hypothesis without local constants
        yield
        return
    empty = providers.Constants()
    providers._get_local_constants = lambda: empty
    providers.CONSTANTS_CACHE.cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = collect
        providers.CONSTANTS_CACHE.cache.clear()
