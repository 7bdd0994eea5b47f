"""optspec: an executable specification of optimizer update rules, and a conformance suite.

The repository keeps its parts at the top level; installed, they live under
this one namespace:

- :mod:`optspec.spec`: the update rules, pure functions over the Array API.
- :mod:`optspec.adapters`: each framework's namespace, drivers and subjects.
- :mod:`optspec.conformance`: the certifier, its CLI (``optspec``) and pytest plugin.
- ``optspec/golden``: the committed golden trajectories (data).

Imported from a clone's own ``optspec/`` folder (Python puts the current
directory first on ``sys.path``: ``python -m optspec`` or ``python -c`` at
the clone's root), this module yields to an optspec installed elsewhere on
``sys.path`` (a wheel), which then serves every import of ``optspec``; with
none, the clone's top-level folders serve ``optspec.spec``,
``optspec.adapters``, ... (an editable install maps them so; without one,
the clone's root joins this package's path).
"""

import importlib.machinery
import importlib.util
import os
import sys

__version__ = "0.1.0"


def _clone_root() -> str | None:
    """The clone this package's folder sits in (its folder beside ``spec/``, ``adapters/``, ``conformance/`` and
    ``pyproject.toml``), or None where it is installed."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    beside = ("pyproject.toml", os.path.join("spec", "rules.py"), os.path.join("adapters", "frameworks.py"),
              os.path.join("conformance", "cli.py"))
    return root if all(os.path.isfile(os.path.join(root, name)) for name in beside) else None


def _installed_elsewhere(root: str) -> importlib.machinery.ModuleSpec | None:
    """The spec of an ``optspec`` package on ``sys.path`` outside the clone ``root``, or None."""
    def outside(entry: str) -> bool:
        try:
            return os.path.realpath(entry or os.curdir) != os.path.realpath(root)
        except OSError:  # the current directory was removed: it holds no package
            return False

    found = importlib.machinery.PathFinder.find_spec(__name__, [e for e in sys.path if outside(e)])
    if found is None or found.origin is None or not found.submodule_search_locations:
        return None
    here = os.path.realpath(os.path.dirname(__file__))
    return None if os.path.realpath(os.path.dirname(found.origin)) == here else found


def _yield_to(found: importlib.machinery.ModuleSpec) -> None:
    """Puts the installed package ``found`` in this module's place in ``sys.modules`` and runs it there: the
    import that is running this module returns it."""
    installed = importlib.util.module_from_spec(found)
    sys.modules[__name__] = installed
    found.loader.exec_module(installed)


if __name__ == "optspec" and (_root := _clone_root()) is not None:
    if (_found := _installed_elsewhere(_root)) is not None:
        _yield_to(_found)
    elif importlib.util.find_spec(f"{__name__}.spec") is None:  # no editable install maps the clone's folders
        __path__.append(_root)  # optspec.spec is the clone's spec/, as pyproject.toml's package-dir maps it
