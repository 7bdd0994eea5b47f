"""The plugin contract: ``--impl 'MODULE:ATTR[key=value,...]'``, whatever the framework.

A plugin is any callable that returns the framework's optimizer object: a
class or a factory function.  ``[key=value,...]`` are fixed constructor
options, written as Python literals (``deepspeed.ops.adam:DeepSpeedCPUAdam[adamw_mode=True]``).
Which spec hyperparameters it can be driven with comes from its signature: a
knob whose constructor argument is missing is not tested, and the reason is
recorded; a constructor with ``**kwargs`` is assumed to take every knob (an
ignored one is then caught by the checks and named by the explanation).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from optspec.adapters.errors import SetupError, one_line
from optspec.adapters.translation import Translation


@dataclasses.dataclass(frozen=True)
class PluginTarget:
    """A parsed ``--impl``: ``module:attr`` and its fixed constructor ``options``."""

    text: str
    module: str
    attr: str
    options: Mapping[str, Any]


def parse_target(text: str) -> PluginTarget:
    """Parses ``MODULE:ATTR`` or ``MODULE:ATTR[key=value,...]``; raises :class:`SetupError` with the fix."""
    head, bracket, tail = text.partition("[")
    module, sep, attr = head.partition(":")
    if not sep or not module or not attr:
        raise SetupError(f"--impl {text!r} is not of the form MODULE:ATTR (e.g. mypkg.optim:AdamW)")
    options: dict[str, Any] = {}
    if bracket:
        if not tail.endswith("]"):
            raise SetupError(f"--impl {text!r}: options must end with ']', as in MODULE:ATTR[key=value,...]")
        try:
            call = ast.parse(f"f({tail[:-1]})", mode="eval").body
            if not isinstance(call, ast.Call) or call.args:
                raise ValueError("options must be key=value pairs")
            for keyword in call.keywords:
                if keyword.arg is None:
                    raise ValueError("options must be key=value pairs")
                options[keyword.arg] = ast.literal_eval(keyword.value)
        except (SyntaxError, ValueError) as exc:
            raise SetupError(
                f"--impl {text!r}: options are not key=value pairs of Python literals ({one_line(exc)}); "
                "write e.g. MODULE:ATTR[adamw_mode=True,eps=1e-6]"
            ) from None
    return PluginTarget(text, module, attr, MappingProxyType(options))


def load(target: PluginTarget) -> Callable[..., Any]:
    """The callable that ``target`` names, with its options bound.

    The working directory is on the import path, after everything else (as
    ``python -m`` puts it first): a vendor's module in the folder the
    ``optspec`` command runs in imports, and shadows nothing installed.
    """
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(target.module)
    except Exception as exc:
        raise SetupError(
            f"--impl {target.text!r}: module {target.module!r} does not import ({one_line(exc)}); "
            "check it is installed and on PYTHONPATH"
        ) from None
    obj: Any = module
    try:
        for part in target.attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise SetupError(f"--impl {target.text!r}: module {target.module!r} has no attribute {target.attr!r}") from None
    if not callable(obj):
        raise SetupError(f"--impl {target.text!r}: {target.attr} is a {type(obj).__name__}, not a class or "
                         "factory that returns an optimizer")
    return functools.partial(obj, **target.options) if target.options else obj


def same_value(a: Any, b: Any) -> bool:
    """Whether two hyperparameter values are the same value *and* kind.

    ``0.0 == False`` in Python, but a weight decay of 0 is not a flag that is
    off: a bool matches only a bool, a sequence matches a sequence of the same
    values elementwise (``(0.9, 0.99)`` and ``[0.9, 0.99]`` agree), and numbers
    compare by value (``0`` and ``0.0`` agree).
    """
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return (isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b)
                and all(same_value(x, y) for x, y in zip(a, b)))
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    try:
        return bool(a == b)
    except Exception:
        return False


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a plugin's signature lets the certifier drive.

    Attributes:
      supports: spec hyperparameters it takes (besides the learning rate).
      fixed: spec hyperparameters that its options fix, e.g. ``{"amsgrad": True}``.
      not_tested: spec hyperparameter -> why it is not tested.
    """

    supports: frozenset[str]
    fixed: Mapping[str, Any]
    not_tested: Mapping[str, str]


def capabilities(factory: Callable[..., Any], translation: Translation, options: Mapping[str, Any],
                 text: str) -> Capabilities:
    """The knobs of ``translation`` that ``factory``'s signature accepts, and why the others are not tested."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature: assume every knob
        return Capabilities(translation.supports, {}, {})
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if not takes_any and translation.lr not in parameters:
        raise SetupError(f"--impl {text!r} has no {translation.lr!r} parameter: the certifier sets the "
                         "learning rate through it; wrap the optimizer in a factory that takes it")
    supports, fixed, not_tested = set(), {}, {}
    for name, target in translation.names.items():
        names = target if isinstance(target, tuple) else (target,)
        if all(n in options for n in names):
            value = tuple(options[n] for n in names) if isinstance(target, tuple) else options[names[0]]
            fixed[name] = value
            not_tested[name] = f"fixed at {value!r} by the --impl options"
        elif takes_any or all(n in parameters for n in names):
            supports.add(name)
        else:
            missing = "/".join(n for n in names if n not in parameters)
            not_tested[name] = f"the constructor has no {missing!r} parameter"
    return Capabilities(frozenset(supports), MappingProxyType(fixed), MappingProxyType(not_tested))


def without_refused_knobs(caps: Capabilities, translation: Translation, defaults: Mapping[str, Any],
                          construct: Callable[[Mapping[str, Any]], Any]) -> Capabilities:
    """``caps`` less the knobs the constructor refuses: each is not tested, with the constructor's message.

    Each supported knob is given alone, at the spec's default and, for a
    flag, also ``True`` (the values certification passes), through
    ``construct(framework_kwargs)``; a knob whose construction raises is
    moved to ``not_tested`` (DeepSpeed's CPU Adam raises on ``amsgrad=True``;
    a ``**kwargs`` constructor may reject a name it does not know).
    """
    supports, not_tested = set(caps.supports), dict(caps.not_tested)
    for knob in sorted(caps.supports):
        if knob not in defaults:
            continue
        values = [defaults[knob], *([True] if isinstance(defaults[knob], bool) else [])]
        for value in values:
            try:
                construct(translation.kwargs({knob: value}))
            except Exception as exc:
                supports.discard(knob)
                not_tested[knob] = f"the constructor refuses {knob}={value!r} ({one_line(exc)})"
                break
    return Capabilities(frozenset(supports), caps.fixed, MappingProxyType(not_tested))
