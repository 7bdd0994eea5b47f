"""The matrix: every built-in subject against every preset of its rule, as named rows of cells.

``optspec matrix`` hands each (subject, preset, certificate) that
:func:`conformance.run.certify_matrix` yields to :meth:`Matrix.add`.  A
:class:`Matrix` holds the certificates in the order of ``certificate.json``,
a :class:`Row` per subject (and sharding) whose name no other row shares
(a subject of the same name in two frameworks is named with its framework),
and each :class:`Cell`'s verdict as printed with the index of its
certificate.  :meth:`Matrix.text` is the table the CLI prints;
:mod:`conformance.report` writes the same rows as ``report.md``'s table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from optspec import spec
from optspec.adapters.driver import SubjectInfo
from optspec.conformance.verdict import Certificate, subject_label

#: What each cell of the matrix means; printed under it.
MATRIX_LEGEND = (
    "PASS n: conforms; n is the worst trajectory error in ulps of the row's dtype",
    "FAIL: does not conform to the subject's own convention (marked *) or to its rule: a bug;"
    " `optspec certify` gives the evidence",
    "differs: does not conform to this preset: the subject follows a different convention, not a bug"
    " (the knobs in which its own preset and this one differ are listed under the table)",
    "-: the subject's rule has no such preset",
    "n/a: not certified: the subject always runs AMSGrad and the preset has no AMSGrad variant, or it has no"
    " kernel in the row's dtype or under the row's sharding (listed under the table, with the reason)",
    "a row named with a sharding (fsdp2, world size 2): the subject run across that many ranks, each rank's part"
    " checked (`optspec certify --sharding`)",
    "exit code: 0 when every * cell and every rule cell passes",
)

#: The column of a rule without presets (SGDW: one behaviour).
RULE_COLUMN = "rule"


def matrix_cell(passed: bool, worst_ulps: float | None, own: bool) -> str:
    """One cell: PASS with its ulps (where a case measured them), or FAIL (own convention or rule: a bug) or
    differs (another preset)."""
    text = ("PASS" + (f" {worst_ulps:.2g}" if worst_ulps is not None else "")) if passed else (
        "FAIL" if own else "differs")
    return text + ("*" if own else "")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One cell of a row.

    Attributes:
      text: the verdict as printed (:func:`matrix_cell`, or ``n/a``), ``*`` on the subject's own preset.
      index: its certificate's index in ``certificate.json``; None for a cell not certified at all (the
        subject always runs AMSGrad and the preset has no AMSGrad variant).
    """

    text: str
    index: int | None

    @property
    def kind(self) -> str:
        """``PASS``, ``FAIL``, ``differs`` or ``n/a``: the text without its number and ``*``."""
        return self.text.rstrip("*").split(" ")[0]


@dataclasses.dataclass
class Row:
    """One subject of a framework, in one dtype, run in one process or under one sharding.

    Attributes:
      subject: the subject, with the sharding it ran under.
      framework: the framework it was certified in.
      dtype: the dtype of its certifications.
      cells: its cells by column (a preset name, or :data:`RULE_COLUMN`).
      name: its name in the matrix, unique (:meth:`Matrix.add` sets it).
    """

    subject: SubjectInfo
    framework: str
    dtype: str
    cells: dict[str, Cell]
    name: str = ""

    @property
    def label(self) -> str:
        """The subject with its sharding (:func:`verdict.subject_label`)."""
        return subject_label(self.subject.name, self.subject.sharding and self.subject.sharding.describe())


@dataclasses.dataclass(frozen=True)
class Differing:
    """A pair of presets of a rule, once whichever of the two is a subject's own, with the ``differs`` cells
    that hold a subject of one to the other.

    Attributes:
      rule: the rule.
      presets: the two presets, the first a subject's own where it was first met.
      knobs: the knobs in which the two differ, each with its value in the first and in the second.
      cells: the certificate index of each ``differs`` cell of the pair.
    """

    rule: str
    presets: tuple[str, str]
    knobs: dict[str, tuple[object, object]]
    cells: tuple[int, ...]

    def because(self) -> str:
        """``rule: a and b differ in knob (x vs y), ...``, or that no knob sets them apart."""
        knobs = (", ".join(f"{k} ({a} vs {b})" for k, (a, b) in self.knobs.items())
                 or "no knob: the two presets agree, so this cell is not explained")
        return f"{self.rule}: {self.presets[0]} and {self.presets[1]} differ in {knobs}"


@dataclasses.dataclass
class Matrix:
    """The certificates of a matrix and their rows, in the order :meth:`add` was given them.

    Attributes:
      certs: every certificate, in the order of ``certificate.json``.
      rows: a row per subject (and sharding) of each framework.
      informational: the indices of the certificates that read "differs" (or "not applicable") on a preset
        that is not the subject's own: not a failure.
      own: the indices of the certificates the exit code reads: the subject's own preset, or its rule.
      notes: lines printed under the table (a framework whose rows are another's, listed once).
    """

    certs: list[Certificate] = dataclasses.field(default_factory=list)
    rows: list[Row] = dataclasses.field(default_factory=list)
    informational: set[int] = dataclasses.field(default_factory=set)
    own: list[int] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def add(self, subject: SubjectInfo, preset: str | None, cert: Certificate, dtype: str) -> Cell:
        """Records ``cert`` (``subject`` against ``preset``, None for its rule) in its row, the row made on the
        row's first certificate with a cell ``n/a`` for each preset the subject cannot be held to; returns the
        cell."""
        from optspec.conformance import run

        framework = subject.framework
        row = next((r for r in self.rows if r.framework == framework and r.label == cert.label), None)
        if row is None:
            row = Row(subject, framework, dtype, {
                column or RULE_COLUMN: Cell("n/a" + ("*" if column == subject.convention else ""), None)
                for column in run.matrix_conventions(subject) if run.not_applicable(subject, column)})
            self.rows.append(row)
            self._name_rows()
        own = preset is None or preset == subject.convention
        index = len(self.certs)
        text = matrix_cell(cert.conforms, cert.worst_ulps, own) if cert.applicable else "n/a" + ("*" if own else "")
        cell = row.cells[preset or RULE_COLUMN] = Cell(text, index)
        if own:
            self.own.append(index)
        elif not cert.conforms:
            self.informational.add(index)
        self.certs.append(cert)
        return cell

    def _name_rows(self) -> None:
        """Names each row by its label, with its framework where another framework has a row of that label."""
        frameworks: dict[str, set[str]] = {}
        for row in self.rows:
            frameworks.setdefault(row.label, set()).add(row.framework)
        for row in self.rows:
            row.name = row.label if len(frameworks[row.label]) == 1 else f"{row.label} [{row.framework}]"

    @property
    def passes(self) -> bool:
        """What the exit code reads: every cell of a subject's own preset, and every rule cell, passes."""
        return all(self.certs[i].passes for i in self.own)

    @property
    def failing(self) -> list[int]:
        """The indices of the cells that fail: an own preset or a rule cell that does not pass."""
        return [i for i in self.own if not self.certs[i].passes]

    @property
    def columns(self) -> list[str]:
        """The presets (then :data:`RULE_COLUMN`) that some row has a cell for, in the spec's order."""
        return [c for c in (*spec.preset_names(), RULE_COLUMN) if any(c in row.cells for row in self.rows)]

    def row_names(self) -> list[str]:
        """The name of each certificate's row, by certificate index."""
        names = [""] * len(self.certs)
        for row in self.rows:
            for cell in row.cells.values():
                if cell.index is not None:
                    names[cell.index] = row.name
        return names

    def differing(self, explained_only: bool = False) -> list[Differing]:
        """Each pair of presets that a ``differs`` cell holds a subject to, once (whichever of the two is the
        subject's own), with the knobs in which they differ and its cells.

        With ``explained_only``, only the cells of rows whose own preset passed:
        such a subject was measured to follow its own preset, so what sets it
        apart from the column's preset is among the knobs the two do not share
        (which of them its cases reach is the certificate's business:
        ``optspec certify --convention``).
        """
        pairs: dict[tuple[str, frozenset[str]], tuple[tuple[str, str], list[int]]] = {}
        for row in self.rows:
            own = row.subject.convention
            if own is None or (explained_only and row.cells.get(own, Cell("", None)).kind != "PASS"):
                continue
            rule = spec.get_rule(row.subject.rule)
            for column, cell in row.cells.items():
                if cell.kind == "differs" and column in rule.presets and cell.index is not None:
                    key = (rule.name, frozenset((own, column)))
                    pairs.setdefault(key, ((own, column), []))[1].append(cell.index)
        return [Differing(rule, presets, spec.get_rule(rule).differences(spec.get_rule(rule).presets[presets[0]],
                                                                          spec.get_rule(rule).presets[presets[1]]),
                          tuple(cells))
                for (rule, _), (presets, cells) in pairs.items()]

    def not_applicable(self) -> list[str]:
        """For each row with a cell that could not run at all (no kernel in its dtype or under its sharding),
        its name and why, once."""
        names = self.row_names()
        return list(dict.fromkeys(f"{names[i]}: {cert.why_not_applicable}" for i, cert in enumerate(self.certs)
                                  if not cert.applicable))

    def text(self) -> str:
        """The matrix as text: a row per subject (and sharding), a column per preset and the rule, each as wide
        as its widest entry; the pairs of presets that differ, why rows were not applicable, the legend."""
        columns = self.columns
        table = [["subject", "dtype", *columns]]
        table += [[row.name, row.dtype, *(row.cells[c].text if c in row.cells else "-" for c in columns)]
                  for row in self.rows]
        lines = aligned(table, left=1)
        explained = [f"  {pair.because()}" for pair in self.differing(explained_only=True)]
        not_applicable = [f"  {line}" for line in self.not_applicable()]
        return "\n".join([*lines, *(["", "where the presets differ:", *explained] if explained else []),
                          *(["", "not certified (n/a):", *not_applicable] if not_applicable else []),
                          *(["", *self.notes] if self.notes else []), "", *MATRIX_LEGEND])


def aligned(table: Sequence[Sequence[str]], left: int, separator: str = "  ") -> list[str]:
    """The rows of ``table`` as lines, each column as wide as its widest entry: the first ``left`` columns
    flush left, the others flush right (a wider entry widens its column, never shifts the row)."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return [separator.join(cell.ljust(width) if i < left else cell.rjust(width)
                           for i, (cell, width) in enumerate(zip(row, widths))).rstrip() for row in table]
