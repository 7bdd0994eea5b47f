"""Hyperparameters a constructor hides: the value a subject is held to where its constructor takes none.

A plugin is driven through its constructor's signature
(:func:`optspec.adapters.plugins.capabilities`); a spec hyperparameter the
constructor does not take still has a value inside the subject, which the
certifier cannot set.  It is held at the spec's default unless the user
declares the value (``--hold NAME=VALUE``, :func:`held`), or the subject
behaves as one of the values it plausibly has (:func:`plausible_values`: the
rule's "off" value, its framework's default), which the diagnosis finds and
the certifier then holds it to, saying so in the certificate's notes.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from optspec import adapters, spec
from optspec.adapters.driver import SubjectInfo
from optspec.adapters.plugins import same_value


def parse_holds(texts: Sequence[str]) -> dict[str, Any]:
    """``NAME=VALUE`` items (Python literals: ``weight_decay=0``, ``betas=(0.9, 0.95)``) as a mapping.

    Raises a one-line :class:`adapters.SetupError` for an item that is not of that form.
    """
    holds: dict[str, Any] = {}
    for text in texts:
        name, sep, literal = text.partition("=")
        name = name.strip()
        try:
            value = ast.literal_eval(literal.strip()) if sep and name.isidentifier() else None
        except (ValueError, SyntaxError):
            value = None
        if value is None:
            raise adapters.SetupError(f"--hold {text!r} is not NAME=VALUE with a Python literal value "
                                      "(e.g. --hold weight_decay=0)")
        if name in holds:
            raise adapters.SetupError(f"--hold {name} is given twice: give each hyperparameter once")
        holds[name] = float(value) if isinstance(value, int) and not isinstance(value, bool) else value
    return holds


def held(subject: SubjectInfo, values: Mapping[str, Any], why: str) -> SubjectInfo:
    """``subject`` held at ``values`` for hyperparameters its constructor does not take (``why`` says on what
    grounds, in its notes); the certifier never passes them to the constructor.

    Raises a one-line :class:`adapters.SetupError` for a name that is not a
    hyperparameter of the subject's rule, one the constructor takes (the
    certifier sets it, case by case), one its options fix at another value,
    or a value the spec refuses.
    """
    rule = spec.get_rule(subject.rule)
    for name in values:
        if name == "lr" or name not in rule.defaults:
            accepted = ", ".join(k for k in rule.defaults if k != "lr")
            raise adapters.SetupError(f"--hold {name}: not a hyperparameter of rule {rule.name} ({accepted})")
        if name in subject.supports:
            raise adapters.SetupError(f"--hold {name}: {subject.name}'s constructor takes {name}, and the "
                                      f"certifier sets it case by case; --hold is for one it does not take (to fix "
                                      f"it, pass it in --impl as MODULE:ATTR[{name}=VALUE])")
        if name in subject.fixed and not same_value(subject.fixed[name], values[name]):
            raise adapters.SetupError(f"--hold {name}={values[name]!r}: {subject.name} fixes {name} at "
                                      f"{subject.fixed[name]!r}")
    try:
        rule.hyperparameters(**values)
    except ValueError as exc:
        raise adapters.SetupError(f"--hold: {exc}") from None
    return dataclasses.replace(
        subject, fixed={**subject.fixed, **values},
        not_tested={**subject.not_tested, **{name: f"held at {value!r}: {why}" for name, value in values.items()}})


def plausible_values(subject: SubjectInfo) -> dict[str, tuple[Any, ...]]:
    """Each hyperparameter of the subject's rule that its constructor neither takes nor fixes, with the values
    it may plausibly have inside: the spec's default (what it is held to unless found otherwise), the rule's
    "off" value (:attr:`spec.Rule.off_values`), its framework's default (:attr:`SubjectInfo.own_defaults`)."""
    rule = spec.get_rule(subject.rule)
    found: dict[str, tuple[Any, ...]] = {}
    for name, default in rule.defaults.items():
        if name == "lr" or name in subject.supports or name in subject.fixed:
            continue
        values: list[Any] = [default]
        for value in (rule.off_values.get(name), subject.own_defaults.get(name)):
            if value is not None and not any(same_value(value, v) for v in values):
                values.append(value)
        found[name] = tuple(values)
    return found


def behaves_as(subject: SubjectInfo, values: Mapping[str, Any]) -> bool:
    """Whether ``values`` are each one of the plausible values of a hyperparameter ``subject`` hides (so that
    a case that conforms with them is grounds to hold the subject there)."""
    plausible = plausible_values(subject)
    return bool(values) and all(name in plausible and any(same_value(value, v) for v in plausible[name])
                                for name, value in values.items())
