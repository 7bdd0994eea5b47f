"""Adapters: the spec's array namespace on each framework, and drivers for real optimizers.

One package per framework (``numpy``, ``torch``, ``jax``, ``tensorflow``, ``mlx``),
each with the face that :mod:`optspec.adapters.frameworks` describes, over
shared code: :mod:`optspec.adapters.namespaces` gives the spec a namespace
on a device; :mod:`optspec.adapters.driver` drives subjects.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect

from optspec.adapters import plugins
from optspec.adapters.driver import Session, Sharding, SubjectInfo, Trajectory, drive, drive_batch
from optspec.adapters.errors import (
    InternalError,
    SetupError,
    SubjectError,
    one_line,
    raised_by_optspec,
    where_raised,
)
from optspec.adapters.frameworks import (
    FRAMEWORKS,
    Launched,
    check_framework,
    describe,
    import_framework,
    is_available,
    launched,
    part,
    quiet_imports,
)
from optspec.adapters.namespaces import DTYPES, asarray, devices, namespace, to_numpy
from optspec.spec import get_rule

__all__ = [
    "DTYPES",
    "FRAMEWORKS",
    "InternalError",
    "Launched",
    "Session",
    "SetupError",
    "Sharding",
    "SubjectError",
    "SubjectInfo",
    "Trajectory",
    "asarray",
    "devices",
    "drive",
    "drive_batch",
    "import_framework",
    "infer_framework",
    "is_available",
    "is_plugin",
    "launched",
    "load_plugin",
    "namespace",
    "raised_by_optspec",
    "resolve_subject",
    "sharded",
    "subjects",
    "to_numpy",
    "where_raised",
]


def subjects(framework: str) -> tuple[SubjectInfo, ...]:
    """The framework's built-in subjects."""
    return part(framework, "subjects").SUBJECTS


def load_plugin(framework: str, text: str, rule: str = "adamw") -> SubjectInfo:
    """Imports ``MODULE:ATTR[options]`` and makes it a subject of ``rule`` (:mod:`optspec.adapters.plugins`).

    The constructor is called once on a one-element parameter, so that one
    that rejects the call is a setup error (exit 2) before any case runs.
    """
    target = plugins.parse_target(text)
    adapter = part(framework, "subjects")
    if not hasattr(adapter, "plugin"):
        raise SetupError(f"{framework} takes no plugins: use one of its built-in subjects")
    factory = plugins.load(target)
    # A framework with two families of optimizers, named differently (MindSpore's nn and experimental), says which.
    table = adapter.translations(factory) if hasattr(adapter, "translations") else adapter.TRANSLATIONS
    if rule not in table:
        raise SetupError(f"--rule {rule!r}: {framework} plugins like this one can implement {', '.join(table)}")
    translation = table[rule]
    caps = plugins.capabilities(factory, translation, target.options, text)
    try:
        adapter.construct(factory, {})
    except Exception as exc:
        raise SetupError(f"--impl {text!r} cannot be driven as a {framework} {rule} optimizer: its constructor "
                         f"raised {one_line(exc)}{_other_framework(text, framework)}") from None
    caps = plugins.without_refused_knobs(caps, translation, get_rule(rule).defaults,
                                         lambda kwargs: adapter.construct(factory, kwargs))
    try:
        subject = adapter.plugin(text, factory, rule, caps)
    except Exception as exc:
        raise SetupError(f"--impl {text!r} cannot be driven as a {framework} {rule} optimizer: "
                         f"{one_line(exc)}") from None
    return dataclasses.replace(subject, own_defaults=translation.defaults)


def sharded(subject: SubjectInfo, framework: str, impl: str | None, rule: str | None,
            sharding: Sharding) -> contextlib.AbstractContextManager[SubjectInfo]:
    """``subject`` run across ranks by its framework's ``sharding`` module; ``framework``, ``impl`` and
    ``rule`` are what re-creates it in each rank (``--framework``, ``--impl``, ``--rule``)."""
    from optspec.adapters import ranks

    return ranks.sharded(subject, ranks.Origin(framework, impl, rule, subject.name), sharding)


def is_plugin(impl: str | None) -> bool:
    """Whether ``--impl`` names a plugin (``MODULE:ATTR[options]``) rather than a built-in subject."""
    return bool(impl) and ":" in impl.partition("[")[0]


def infer_framework(text: str) -> str:
    """The framework a plugin ``MODULE:ATTR[options]`` belongs to, from the object itself.

    A class belongs to the first framework among the top-level modules of
    its bases (``transformers``' AdamW derives from ``torch.optim.Optimizer``:
    torch); a function to its own module's (``optax.adamw``: jax) or, failing
    that, to the type of what it returns when called with a learning rate
    alone, as optax, Keras and MLX factories are.  Raises a one-line
    :class:`SetupError` that asks for ``--framework`` when none is found.
    """
    target = plugins.parse_target(text)
    with quiet_imports():
        factory = plugins.load(target)
    roots = {module.partition(".")[0]: name for name in FRAMEWORKS
             for module in describe(name).modules if name != "numpy"}

    def owner(cls: type) -> str | None:
        for base in inspect.getmro(cls):
            if (found := roots.get(base.__module__.partition(".")[0])) is not None:
                return found
        return None

    obj = getattr(factory, "func", factory)  # the callable under its bound options
    if inspect.isclass(obj):
        found = owner(obj)
    else:
        found = roots.get((getattr(obj, "__module__", None) or "").partition(".")[0])
        if found is None:
            try:
                found = owner(type(factory(learning_rate=1e-3)))
            except Exception:
                found = None
    if found is None:
        raise SetupError(f"--impl {text!r}: cannot tell which framework it belongs to (neither it nor what it "
                         f"returns derives from a framework's optimizer): pass --framework, one of "
                         f"{', '.join(FRAMEWORKS)}")
    return found


def _other_framework(text: str, framework: str) -> str:
    """Advice where ``text`` belongs to a framework other than ``framework`` (a mistaken ``--framework``)."""
    try:
        found = infer_framework(text)
    except SetupError:
        return ""
    return "" if found == framework else f"; it is a {found} optimizer: drop --framework, or pass --framework {found}"


def resolve_subject(framework: str, impl: str | None, rule: str | None = None) -> list[SubjectInfo]:
    """Subjects for ``--impl``: a plugin ``MODULE:ATTR[options]``, a built-in name, or all built-ins.

    ``rule`` is the rule a plugin implements (AdamW by default); a built-in
    subject already has its own.
    """
    check_framework(framework)
    if is_plugin(impl):
        return [load_plugin(framework, impl, rule or "adamw")]
    found = subjects(framework)
    if impl is None:
        chosen = list(found)
    else:
        chosen = [s for s in found if s.name == impl or s.name.split("[")[0] == impl]
    if not chosen and impl and "." in impl:
        raise SetupError(
            f"--impl {impl!r} is not of the form MODULE:ATTR (e.g. mypkg.optim:AdamW) nor a built-in "
            f"{framework} subject ({', '.join(s.name for s in found)})"
        )
    if not chosen:
        raise SetupError(
            f"unknown subject {impl!r} for {framework}: use MODULE:ATTR or one of "
            f"{', '.join(s.name for s in found)}"
        )
    if rule is not None:
        chosen = [s for s in chosen if s.rule == rule]
        if not chosen:
            named = f"subject {impl}" if impl else "subject"
            raise SetupError(f"--rule {rule!r}: no built-in {framework} {named} implements it; "
                             "--rule chooses the rule of a MODULE:ATTR plugin")
    return chosen
