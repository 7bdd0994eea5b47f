"""The typed records of the ecosystem scoreboard (``nox -s ecosystem``): what a row claims, what it measured.

An :class:`Implementation` is one optimizer as it ships, with the convention
its package claims and the convention its source shows (:class:`Reading`,
each fact cited by file and line of the installed package).  A
:class:`Measured` row is what optspec said of it: the convention ``identify``
found, and ``certify``'s verdict against the claimed convention in each dtype.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from optspec import spec


@dataclasses.dataclass(frozen=True)
class Citation:
    """One fact of a package's source: ``file`` (relative to site-packages), ``lines``, and what they do."""

    file: str
    lines: str
    says: str

    def text(self) -> str:
        return f"{self.file}:{self.lines}: {self.says}"


@dataclasses.dataclass(frozen=True)
class Reading:
    """The convention read from the source.

    Attributes:
      preset: the preset it is, or that ``changes`` start from; None where the
        source computes a rule the spec's knobs cannot express (``outside``
        says how).
      changes: knobs that differ from ``preset``.
      amsgrad: what identify should find of ``amsgrad=True`` where it is not a
        knob value: ``unsupported`` (not accepted) or ``ignored`` (accepted,
        not used); None to read the knob from the convention (an optimizer
        that takes no ``amsgrad`` agrees with any).
      outside: why no convention of the spec fits, where ``preset`` is None.
    """

    preset: str | None
    changes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    amsgrad: str | None = None
    outside: str | None = None

    def knobs(self, rule: str) -> dict[str, Any]:
        """Knob -> value as identify reports it (empty where the spec cannot express the rule)."""
        if self.preset is None:
            return {}
        convention = spec.get_rule(rule).presets[self.preset].replace(**self.changes)
        found = {k: getattr(convention, k) for k in type(convention).KNOB_VALUES}
        if self.amsgrad is not None:
            found["amsgrad"] = self.amsgrad
        return found

    def describe(self) -> str:
        if self.preset is None:
            return f"outside the spec: {self.outside}"
        changed = ", ".join(f"{k}={shown(v)}" for k, v in self.changes.items())
        amsgrad = f"; amsgrad {self.amsgrad}" if self.amsgrad else ""
        return f"{self.preset}" + (f" with {changed}" if changed else "") + amsgrad


@dataclasses.dataclass(frozen=True)
class Implementation:
    """One row of the scoreboard: an optimizer as it ships.

    Attributes:
      name: the row's label.
      package: the distribution whose version the row records.
      framework: optspec's framework (``keras`` runs on ``backend``).
      impl: the ``--impl`` that reaches it.
      claims: the preset its package presents it as (its name or documentation): the verdict is
        ``certify`` against it.
      reading: the convention its source shows, with ``sources``.
      sources: the citations of the reading.
      dtypes: the dtypes it is certified in (float32, and bfloat16 where it targets it).
      examples: drawn cases of each certification (identify's too).
      backend: ``KERAS_BACKEND`` for the ``keras`` framework.
      rule: the spec rule it implements.
      environment: the environment of its own it runs in (``mindspore``: NumPy 1), whose interpreter
        ``--python mindspore=PATH`` names; None for the scoreboard's own.
      state: the state format it is certified in, as ``--state-dtype`` items (``bitsandbytes-8bit``).
    """

    name: str
    package: str
    framework: str
    impl: str
    claims: str
    reading: Reading
    sources: tuple[Citation, ...]
    dtypes: tuple[str, ...] = ("float32",)
    examples: int = 20
    backend: str | None = None
    rule: str = "adamw"
    environment: str | None = None
    state: tuple[str, ...] = ()

    @property
    def slug(self) -> str:
        """The row's file name: its label in lower case, letters, digits and dashes."""
        return "".join(c if c.isalnum() else "-" for c in self.name.lower()).strip("-").replace("--", "-")

    @property
    def where(self) -> str:
        """The framework as a user names it: ``keras (jax backend)``, ``torch``."""
        return f"{self.framework} ({self.backend} backend)" if self.backend else self.framework


@dataclasses.dataclass(frozen=True)
class Unrun:
    """An optimizer the scoreboard should hold and cannot here: ``name``, ``package`` and the ``reason``
    measured (the error its import or install gave)."""

    name: str
    package: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Verdict:
    """``certify`` against the claimed convention in one dtype.

    Attributes:
      dtype: the dtype.
      verdict: ``conforms``, ``does not conform`` or ``not applicable``.
      cause: where it does not conform, the differing knob (``most likely knob: ...``) or the failed check
        and what it saw; where not applicable, why.
      errors: the failing tensor's (error, bound) per step, for the plot.
    """

    dtype: str
    verdict: str
    cause: str | None = None
    errors: tuple[tuple[float, float], ...] = ()

    @property
    def knob(self) -> str | None:
        """The knob or knobs the diagnosis names (``a=x and b=y``), or None."""
        for prefix in ("most likely knob: ", "most likely knobs: "):
            if self.cause and self.cause.startswith(prefix):
                return self.cause[len(prefix):].split(" (with it", 1)[0]
        return None

    @property
    def knobs(self) -> dict[str, str]:
        """The knobs the diagnosis names, each with its value as the hint words it (an ignored flag's is
        ``ignored``); empty where it names none."""
        named = {}
        for part in self.knob.split(" and ") if self.knob else ():
            flag, _, rest = part.partition(" ")
            if rest.startswith("ignored"):
                named[flag] = "ignored"
            elif (name_value := part.partition("="))[1]:
                named[name_value[0]] = name_value[2]
        return named

    @property
    def short(self) -> str | None:
        """The cause in a few words: the knob, or the failed check and step."""
        return self.knob or (self.cause.split(":", 1)[0] if self.cause else None)

    @property
    def compared(self) -> dict[str, Any]:
        """What a fresh run must reproduce: the verdict and the knob or failed check, not numbers."""
        return {"dtype": self.dtype, "verdict": self.verdict, "cause": self.short}


@dataclasses.dataclass(frozen=True)
class Measured:
    """What optspec said of an :class:`Implementation`.

    Attributes:
      name: the implementation's label.
      version: the package's installed version.
      identified: identify's last word: a preset, ``none`` (knobs fit, no preset has them) or ``unfit``.
      knobs: identify's knobs (empty where nothing fits).
      fit: identify's error/bound (1 or less fits); None where it is not finite (no convention was scored).
      identify_said: identify's lines, the evidence.
      verdicts: certify against the claimed convention, per dtype.
      agrees: whether identify's answer is the source's reading.
      differs: the knobs in which identify's fit differs from the claim (:func:`differing_knobs`).
      seconds: the row's wall time (not compared).
    """

    name: str
    version: str
    identified: str
    knobs: dict[str, Any]
    fit: float | None
    identify_said: tuple[str, ...]
    verdicts: tuple[Verdict, ...]
    agrees: bool
    differs: dict[str, Any] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    @property
    def compared(self) -> dict[str, Any]:
        """The fields a fresh run must reproduce (the scoreboard check): versions, verdicts, causes,
        identified convention and knobs; not errors or timings."""
        return {"version": self.version, "identified": self.identified, "knobs": self.knobs,
                "agrees": self.agrees, "differs": self.differs, "verdicts": [v.compared for v in self.verdicts]}


def agreement(reading: Reading, rule: str, identified: str, knobs: Mapping[str, Any]) -> bool:
    """Whether identify's answer is the reading: no fit where the source is outside the spec; else each
    knob identify reached has the value read (an unreached knob, ``untested``, says nothing)."""
    if reading.preset is None:
        return identified == "unfit"
    if identified == "unfit":
        return False
    expected = reading.knobs(rule)
    read = spec.get_rule(rule).presets[reading.preset].replace(**reading.changes)
    values = type(read).KNOB_VALUES
    # two names of the same maths agree (Convention.canonical): compare the canonical forms
    found = _found(read, knobs)
    read = read.canonical()
    expected |= {k: getattr(read, k) for k in values if k != "amsgrad"}
    found_knobs = {**knobs, **{k: getattr(found, k) for k in values if k != "amsgrad" and knobs.get(k) in values[k]}}
    # an optimizer that takes no amsgrad flag follows its convention's AMSGrad variant, whichever it is,
    # unless the reading says what becomes of the flag
    return all(value == "untested" or expected.get(knob) == value
               or (knob == "amsgrad" and value == "unsupported" and reading.amsgrad is None)
               for knob, value in found_knobs.items())


def shown(value: Any) -> str:
    """A knob's value as identify prints it: ``on``/``off`` for a flag."""
    return "on" if value is True else "off" if value is False else str(value)


def differing_knobs(claims: str, rule: str, identified: str, knobs: Mapping[str, Any]) -> dict[str, Any]:
    """The knobs in which identify's fit differs from the claimed preset (canonical forms compared; an
    ``amsgrad=True`` accepted and ignored is ``ignored``); empty where nothing fits or nothing differs."""
    if identified == "unfit":
        return {}
    claimed = spec.get_rule(rule).presets[claims]
    values = type(claimed).KNOB_VALUES
    found = _found(claimed, knobs)
    # a knob differs where setting it back to the claim's value changes the maths of the fit (without bias
    # correction, the claim's epsilon "hat" is no difference)
    differs = {k: knobs[k] for k in values
               if k != "amsgrad" and knobs.get(k) in values[k]
               and found.replace(**{k: getattr(claimed, k)}).canonical() != found}
    amsgrad = knobs.get("amsgrad")
    if amsgrad == "ignored" or (amsgrad in values.get("amsgrad", ()) and not claimed.agrees("amsgrad", amsgrad)):
        differs["amsgrad"] = amsgrad
    return differs


def _found(base: spec.Knobs, knobs: Mapping[str, Any]) -> spec.Knobs:
    """``base`` with the knobs identify reached (a value of the knob, not ``untested`` and the like), canonical."""
    values = type(base).KNOB_VALUES
    return base.replace(**{k: v for k, v in knobs.items() if v in values.get(k, ())}).canonical()
