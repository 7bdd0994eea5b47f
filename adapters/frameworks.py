"""The framework registry: one package per framework, and importing a framework with a one-line error.

Each framework is a package ``optspec.adapters.<name>`` with the same face:

- ``__init__.py``: ``FRAMEWORK``, a :class:`Framework` (cheap: it imports no framework);
- ``arrays.py``: ``namespace()``, ``dtype(name)``, ``asarray(x, dtype, device)``, ``devices()``;
- ``subjects.py``: its ``Session``, built-in ``SUBJECTS``, ``TRANSLATIONS`` and ``plugin()``;
- ``compiled.py`` (optional): ``BACKEND`` of :class:`optspec.adapters.compiled.CompiledStep`;
- ``optimizer.py`` (optional): its spec-backed optimizer.

Adding a framework is one such package and one entry in :data:`FRAMEWORKS`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import os
import re
import shlex
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType

from optspec.adapters.errors import NotInstalled, SetupError

#: The registry: each name is a package ``optspec.adapters.<name>``.
#: Paddle comes before TensorFlow: imported after it, Paddle crashes the process (``Framework.crashes_after``).
FRAMEWORKS: tuple[str, ...] = ("numpy", "torch", "jax", "paddle", "tensorflow", "keras", "tf_keras", "mlx",
                               "mindspore")


@dataclasses.dataclass(frozen=True)
class Framework:
    """What the certifier knows of a framework before importing it.

    Attributes:
      name: the name ``--framework`` takes.
      modules: the modules it needs, imported in order; the first is its main module.
      extra: the extra of ``pyproject.toml`` that installs them.
      default_dtype: the dtype ``certify`` uses unless told otherwise.
      native_convention: the preset that the framework's own AdamW follows.
      environment: variables set (unless already set) before the first import.
      configure: called with the main module once imported.
      import_noise: regular expressions of the lines its import writes to
        the process's stderr (from C++, below Python) that are dropped.
      pip_options: what ``pip install`` needs besides the extra (torch's CPU
        build lives on PyTorch's own index), for the install hint.
      fork_safe: whether importing it starts no thread, so that a process
        that imported it may fork: the certifier's worker processes then
        start from a fork server that imported it once.
      describe_version: the version the certificate records, from the main
        module (default: its ``__version__``); Keras adds its backend's.
      array_namespace: whether ``arrays.namespace()`` is an Array API
        namespace over its own arrays, that the spec runs on; where it has
        none (Paddle), the spec's reference runs on NumPy.
      crashes_after: modules whose earlier import in the same process makes
        this framework's import crash it (Paddle's native library after
        TensorFlow's: a segmentation fault); the import is refused instead.
      lazy_modules: modules the framework imports on first use rather than
        at import (torch's optimizers import ``torch._dynamo`` when the first
        one is constructed); a fork-safe framework's fork server imports them
        too, so that no worker pays for them again.
      shardings: the strategies ``--sharding`` takes (its package's
        ``sharding`` module runs them across ranks); none where it cannot shard.
      launcher: the module of its package for the framework's own launcher
        of ranks across machines (torch's ``torchrun``), if it has one: its
        ``launched_world_size()`` is the number of ranks that launcher
        started this process among (None where it did not start it), and
        ``run(main)`` runs the command as one of them.
      sharding_requires: the modules a run across ranks needs beyond the
        framework's own (jax: ``orbax.checkpoint``, which saves and restores
        a mesh's state), each with what it is for; the framework's extra
        installs them, and ``--sharding`` without one is refused before any
        case (:func:`missing_for_sharding`).
      same_as: where this framework's subjects are, here, another
        framework's run by the same code (Keras 3 on its TensorFlow backend:
        tensorflow's Keras subjects), a function that names that framework,
        found without importing either (None where they are not); the matrix
        of every framework lists those rows once, under the other.
    """

    name: str
    modules: tuple[str, ...]
    extra: str
    default_dtype: str = "float64"
    native_convention: str = "torch"
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)
    configure: Callable[[ModuleType], None] | None = None
    import_noise: tuple[str, ...] = ()
    pip_options: str = ""
    fork_safe: bool = False
    describe_version: Callable[[ModuleType], str] | None = None
    array_namespace: bool = True
    crashes_after: tuple[str, ...] = ()
    lazy_modules: tuple[str, ...] = ()
    shardings: tuple[str, ...] = ()
    launcher: str | None = None
    sharding_requires: Mapping[str, str] = dataclasses.field(default_factory=dict)
    same_as: Callable[[], str | None] | None = None


@dataclasses.dataclass(frozen=True)
class Launched:
    """A framework's own launcher started this process as one of ``world_size`` ranks.

    Attributes:
      framework: the framework whose launcher it is.
      launcher: its name (the ``launcher`` module of the framework's package).
      world_size: how many ranks it started.
      module: that module, whose ``run(main)`` runs the command as one of the ranks.
    """

    framework: str
    launcher: str
    world_size: int
    module: ModuleType


def launched() -> Launched | None:
    """Which framework's launcher started this process, if any (it imports no framework)."""
    for name in FRAMEWORKS:
        record = describe(name)
        if record.launcher is None:
            continue
        module = importlib.import_module(f"optspec.adapters.{name}.{record.launcher}")
        if (world_size := module.launched_world_size()) is not None:
            return Launched(name, record.launcher, world_size, module)
    return None


def check_framework(framework: str) -> str:
    if framework not in FRAMEWORKS:
        raise SetupError(
            f"unknown framework {framework!r}: use one of {', '.join(FRAMEWORKS)}"
        )
    return framework


def describe(framework: str) -> Framework:
    """The :class:`Framework` record of a registered framework, without importing it."""
    check_framework(framework)
    return importlib.import_module(f"optspec.adapters.{framework}").FRAMEWORK


def import_framework(framework: str) -> ModuleType:
    """Imports the framework's modules, configured as optspec needs them, and returns the main one."""
    if (imported := _IMPORTED.get(framework)) is not None:  # the drivers ask once per array
        return imported
    record = describe(framework)
    if (loaded := [m for m in record.crashes_after if m in sys.modules]) and record.modules[0] not in sys.modules:
        if importlib.util.find_spec(record.modules[0].partition(".")[0]) is not None:
            raise SetupError(f"{framework} cannot be imported into a process that has imported {loaded[0]}: its "
                             "import would crash the process; certify it in a process of its own "
                             f"(optspec certify --framework {framework} ...), or import {framework} first")
    for name, value in record.environment.items():
        os.environ.setdefault(name, value)
    modules = []
    with _stderr_without(record.import_noise if record.modules[0] not in sys.modules else ()):
        for name in record.modules:
            try:
                modules.append(importlib.import_module(name))
            except ImportError as exc:
                raise NotInstalled(
                    f"framework {framework!r} is not installed ({exc.name or name} is missing): "
                    + install_advice(record.extra, record.pip_options)
                ) from None
    if record.configure is not None:
        record.configure(modules[0])
    _IMPORTED[framework] = modules[0]
    return modules[0]


def importable(module: str) -> bool:
    """Whether ``module`` (dotted) can be found, without importing it where its parents are not installed
    (``importlib.util.find_spec`` raises there)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def install_advice(extra: str, pip_options: str = "") -> str:
    """The one-line advice that installs optspec's ``extra`` where the user is (:func:`install_hint`)."""
    return install_hint(extra, _source_checkout(), Path.cwd(), pip_options, _extra_requirements(extra))


def missing_for_sharding(framework: str) -> str | None:
    """Why ``framework``'s subjects cannot run across ranks here, naming the install command: a module of its
    :attr:`Framework.sharding_requires` that is not installed; None where every one is."""
    record = describe(framework)
    for module, purpose in record.sharding_requires.items():
        if not importable(module):
            return (f"a {framework} run across ranks needs {module}, which {purpose}, and it is not installed: "
                    + install_advice(record.extra, record.pip_options))
    return None


#: The main module of each framework :func:`import_framework` has imported and configured.
_IMPORTED: dict[str, ModuleType] = {}


def install_hint(extra: str, checkout: Path | None, cwd: Path, pip_options: str = "",
                 requirements: list[str] | None = None) -> str:
    """The one-line advice that installs ``extra`` (with ``pip_options``) where the user is.

    From a source checkout (``checkout``, as :func:`_source_checkout` finds it) it is the editable
    install of that checkout, or a nox session.  From an installed wheel it is the extra's own
    ``requirements`` (:func:`_extra_requirements`), not ``optspec[extra]`` from the index: the name
    ``optspec`` on PyPI belongs to another project.
    """
    options = f" {pip_options}" if pip_options else ""
    if checkout is None:
        packages = " ".join(shlex.quote(r) for r in requirements or []) or f"the packages of optspec's {extra!r} extra"
        return f"run `pip install {packages}{options}`"
    target = "." if checkout == cwd else str(checkout)
    return (f"run `pip install -e {shlex.quote(f'{target}[{extra}]')}{options}` "
            "or use a nox session, which installs it")


def _extra_requirements(extra: str) -> list[str]:
    """The requirements of the installed optspec's ``extra`` (``["jax>=0.4.30", "optax>=0.2.4"]``)."""
    from importlib import metadata

    try:
        declared = metadata.requires("optspec") or []
    except metadata.PackageNotFoundError:
        return []
    pattern = re.compile(rf"""extra\s*==\s*["']{re.escape(extra)}["']""")
    return [requirement.strip() for requirement, _, marker in (r.partition(";") for r in declared)
            if pattern.search(marker)]


def _source_checkout() -> Path | None:
    """The clone optspec runs from (an editable install, or the tree on ``sys.path``), or None.

    It is the folder above the ``optspec`` package when that folder's ``pyproject.toml`` names the
    project ``optspec``; an installed wheel sits in ``site-packages``, which has none.
    """
    import optspec

    root = Path(optspec.__file__).resolve().parent.parent
    try:
        with open(root / "pyproject.toml", "rb") as handle:
            name = tomllib.load(handle).get("project", {}).get("name")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return None
    return root if name == "optspec" else None


@contextlib.contextmanager
def quiet_imports() -> Iterator[None]:
    """The lines every registered framework's import is known to write to stderr are dropped inside: for a
    plugin module that imports its framework itself, before optspec knows which framework that is."""
    with _stderr_without(tuple(noise for name in FRAMEWORKS for noise in describe(name).import_noise)):
        yield


@contextlib.contextmanager
def _stderr_without(noise: tuple[str, ...]) -> Iterator[None]:
    """File descriptor 2 goes to a temporary file; on exit its lines come back, less those matching ``noise``."""
    if not noise:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            pattern = re.compile("|".join(f"(?:{n})" for n in noise))
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not pattern.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


#: (framework, name) -> its imported part (the drivers ask several times a step).
_PARTS: dict[tuple[str, str], ModuleType] = {}


def part(framework: str, name: str) -> ModuleType:
    """``optspec.adapters.<framework>.<name>`` (``arrays``, ``subjects``, ...), after the framework imported."""
    if framework in _IMPORTED and (found := _PARTS.get((framework, name))) is not None:
        return found
    import_framework(framework)
    found = _PARTS[framework, name] = importlib.import_module(f"optspec.adapters.{framework}.{name}")
    return found


def has_part(framework: str, name: str) -> bool:
    """Whether the framework's package has the optional module ``name`` (``compiled``, ``optimizer``), without
    importing the framework."""
    return importlib.util.find_spec(f"optspec.adapters.{check_framework(framework)}.{name}") is not None


def is_available(framework: str) -> bool:
    """Whether the framework is installed; one installed but misconfigured raises its :class:`SetupError`."""
    try:
        import_framework(framework)
    except NotInstalled:
        return False
    return True


def version(framework: str) -> str:
    """What a certificate records as the framework's version (Keras: with its backend's)."""
    main = import_framework(framework)
    describe_version = describe(framework).describe_version
    return describe_version(main) if describe_version is not None else str(main.__version__)
