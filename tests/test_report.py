"""The written report: plots optional, files with the umask, a small matrix report, checks not run."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from optspec import adapters, spec
from optspec.conformance import atomic, report, run
from optspec.conformance.cli import main
from optspec.conformance.matrix import Matrix
from optspec.conformance.verdict import (
    NOT_APPLICABLE,
    Certificate,
    CheckOutcome,
    Failure,
    GoldenOutcome,
)

#: In every failure's reproducing code: a matrix report must leave it to certificate.json.
SPEC_SNIPPET = "# the spec's trajectory of the failing case"
MISSING = "plots skipped: matplotlib is not installed: pip install matplotlib"


def failure(index: int, check: str = "trajectory", steps: int = 200) -> Failure:
    """A numeric failure as certify writes one: long per-step lists and reproducing code."""
    return Failure(
        check=check, step=17, case=f"epsilon-placement: case {index}",
        detail="tensor 0 element (3,) at step 17: got 0.12345678901234, expected 0.12345678, |error| 6.9e-9",
        reproduce_cli=f"optspec certify --framework torch --impl subject{index} --convention keras --seed 0",
        hint="explained by epsilon=hat: the error falls to 0.01 of the bound",
        hyperparameters={"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2},
        learning_rates=[1e-3] * steps, ulps=1.2e4,
        error_and_bound_per_step=[(1e-8 * t, 1e-9) for t in range(1, steps + 1)],
        reproduce_spec=f"{SPEC_SNIPPET}\n" + "print(spec.step(state, grads, lr=1e-3))\n" * 60,
    )


def certificate(index: int, *, failing: bool, subject: str = "", convention: str | None = "keras",
                checks: dict[str, CheckOutcome] | None = None, fail: Failure | None = None) -> Certificate:
    """A certificate with a dozen golden replays, failing or not, built as :func:`verdict.certificate` would."""
    fail = fail or (failure(index) if failing else None)
    return Certificate(
        subject=subject or f"torch.optim.AdamW[variant{index // 6}]", framework="torch",
        framework_version="2.5.0", device="cpu", dtype="float32", spec_version="1", rule="adamw",
        convention=convention, knobs=None, seed=0, cases_run=12,
        checks=checks or {"one_step": CheckOutcome(True, 0.3),
                          "trajectory": CheckOutcome(not failing, 40.0 if failing else 0.4, worst_ulps=3.0)},
        golden=[GoldenOutcome(f"scenario-{k}", True, True, 0.01 * k, None) for k in range(12)],
        verdict="does not conform" if fail else "conforms", failure=fail,
        per_case_worst=[0.1 * (k % 9) for k in range(60)],
    )


def not_applicable(index: int) -> Certificate:
    """A cell the subject cannot run at all (no kernel in the dtype), as the CLI's matrix passes it: not
    conforming, so in ``informational`` when the preset is not the subject's own."""
    return dataclasses.replace(certificate(index, failing=False), checks={}, golden=[], cases_run=0,
                               per_case_worst=[], verdict=NOT_APPLICABLE,
                               notes=["not applicable in float32: no kernel"])


@pytest.fixture
def sketch(monkeypatch):
    """Plots named but not drawn (matplotlib takes most of a second per plot): ``write`` returns and links
    the names it would have drawn."""
    monkeypatch.setattr(report, "load_pyplot", lambda: (object(), None))
    monkeypatch.setattr(report, "plot", lambda plt, cert, label, path: path.name)


#: A plot as certify draws one: about 20 KB of PNG.
PLOT_BYTES = 20_000


@pytest.fixture
def sketch_sized(monkeypatch):
    """Plots written as bytes of a real plot's size, not drawn (matplotlib takes most of a second per plot)."""
    def plot(plt, cert, label, path):
        path.write_bytes(b"\x89PNG" + os.urandom(PLOT_BYTES))
        return path.name

    monkeypatch.setattr(report, "load_pyplot", lambda: (object(), None))
    monkeypatch.setattr(report, "plot", plot)


def subject(name: str, framework: str, rule: str, convention: str | None, sharding: str | None = None,
            ) -> adapters.SubjectInfo:
    """A built-in subject's record as the matrix receives it (never driven here)."""
    return adapters.SubjectInfo(name=name, framework=framework, rule=rule, convention=convention,
                                supports=frozenset(), build=lambda *args: None,
                                sharding=None if sharding is None else adapters.Sharding(sharding, 2))


def full_matrix(failing_every: int = 6) -> Matrix:
    """A matrix larger than ``optspec matrix`` of every framework: nine subjects of every rule's kind in each
    framework, following its framework's preset (a subject of one name in every framework, as Keras' are in
    tensorflow and in keras on another backend), and three sharded rows per AdamW and SGD subject of torch and
    jax, each against every preset of its rule; every ``failing_every``-th own cell fails with numbers, every
    other preset differs."""
    found = Matrix()
    kinds = [("adamw", "AdamW"), ("adamw", "AdamW[fused]"), ("adam", "Adam"), ("sgd", "SGD"),
             ("sgdw", "SGDW"), ("adagrad", "Adagrad"), ("rmsprop", "RMSprop"), ("adamax", "Adamax"),
             ("nadam", "NAdam"), ("adamw", "shared.AdamW")]
    rows = [(framework, rule, name if name.startswith("shared") else f"{framework}.optim.{name}", sharding)
            for framework in adapters.FRAMEWORKS for rule, name in kinds
            for sharding in (None, *(("fsdp2", "zero1", "ddp") if framework in ("torch", "jax")
                                     and name in ("AdamW", "SGD") else ()))]
    for framework, rule, name, sharding in rows:
        presets = list(spec.get_rule(rule).presets)
        native = adapters.describe(framework).native_convention
        own = (native if native in presets else presets[0]) if presets else None
        info = subject(name, framework, rule, own, sharding)
        for preset in presets or [None]:
            index = len(found.certs)
            is_own = preset == own
            fails = is_own and len(found.own) % failing_every == 0
            cert = certificate(index, failing=fails or not is_own, subject=name, convention=preset)
            cert = dataclasses.replace(cert, framework=framework, rule=rule,
                                       sharding=info.sharding and info.sharding.describe())
            found.add(info, preset, cert, "float32")
    return found


def section(text: str, index: int) -> str:
    """The short section of cell ``index`` in a matrix report (up to the next one)."""
    start = text.index(f'<a id="c{index}"></a>{index}. ')
    end = text.find("\n### ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def test_a_full_matrix_report_reads_in_a_minute_and_stays_small(tmp_path, sketch_sized):
    found = full_matrix()
    # more rows than the real matrix (about 80), more failing cells than are plotted
    assert len(found.rows) > 100 and len(found.failing) > report.MATRIX_PLOTS
    written = report.write(found.certs, tmp_path, informational=frozenset(found.informational), matrix=found)
    text = (tmp_path / "report.md").read_text()
    assert len(text.encode()) < 50_000, len(text.encode())
    assert (tmp_path / "report.html").stat().st_size < 1_000_000, (tmp_path / "report.html").stat().st_size
    # the verdict first, naming the failing cells
    names = found.row_names()
    assert text.startswith("# optspec matrix: does not conform\n\n"
                           f"**{len(found.failing)} of {len(found.own)} cells fail**"), text[:300]
    first = found.failing[0]
    assert f"[{names[first]} vs {found.certs[first].convention or 'adamw'}](#c{first})" in text.split("## Matrix")[0]
    # a short section per failing cell, none for a cell that differs or conforms; plots for the first ones only
    assert text.count("\n### ") == len(found.failing)
    for index in found.failing:
        cell = section(text, index)
        cert = found.certs[index]
        assert f"{names[index]} vs {cert.convention or cert.rule}: does not conform" in cell
        assert cert.failure.hint in cell and SPEC_SNIPPET not in cell
    plotted = {f"errors-{i}.png" for i in found.failing[:report.MATRIX_PLOTS]}
    assert set(written.files[4:]) == plotted and {p.name for p in tmp_path.glob("*.png")} == plotted
    # each cell that differs is in one table, under its pair of presets, each pair once
    differing = text.split("## Cells that differ")[1]
    pairs = [line.split(" | ")[1].strip() for line in differing.splitlines() if line.startswith('| <a id="d')]
    unordered = [(rule, frozenset(presets.split(" and "))) for rule, presets in (p.split(": ") for p in pairs)]
    assert len(unordered) == len(set(unordered)) > 1, pairs
    listed = [int(i) for line in differing.splitlines() if line.startswith('| <a id="d')
              for i in line.rstrip(" |").rsplit(" | ", 1)[1].split(", ")]
    assert sorted(listed) == sorted(found.informational), "every cell that differs, once"


def test_every_row_and_junit_case_of_a_matrix_is_named_once(tmp_path, sketch_sized):
    found = full_matrix()
    report.write(found.certs, tmp_path, informational=frozenset(found.informational), matrix=found)
    names = [row.name for row in found.rows]
    assert len(names) == len(set(names)) and "shared.AdamW [torch]" in names and "shared.AdamW [numpy]" in names
    cases = ElementTree.parse(tmp_path / "junit.xml").getroot().findall("testcase")
    pairs = [(case.get("classname"), case.get("name")) for case in cases]
    assert len(pairs) == len(set(pairs))
    assert (f"shared.AdamW [jax] vs {adapters.describe('jax').native_convention}", "trajectory") in pairs
    assert ("torch.optim.SGD (zero1, world size 2) vs optax", "one_step") in pairs


def test_the_matrix_tables_stay_aligned_whatever_a_cell_holds(tmp_path, sketch_sized):
    found = full_matrix()
    long_name = subject("a.very.long.module.path.to.an.Optimizer[option=1|2]", "numpy", "sgdw", None)
    cert = certificate(len(found.certs), failing=False, subject=long_name.name, convention=None)
    found.add(long_name, None, dataclasses.replace(cert, rule="sgdw"), "bfloat16")
    report.write(found.certs, tmp_path, informational=frozenset(found.informational), matrix=found)
    text = (tmp_path / "report.md").read_text()
    for table in (text.split("## Matrix")[1], text.split("## Cells that differ")[1]):
        lines = [line for line in table.split("\n\n", 2)[1].splitlines()]
        bars = {tuple(i for i, char in enumerate(line) if char == "|" and line[i - 1] != "\\") for line in lines}
        assert len(bars) == 1, "every row's columns start where the header's do"
    # the printed table: every right-aligned column ends where its header does, whatever is wider
    header, *rows = found.text().split("\n\n")[0].splitlines()
    ends = [found_at.end() for found_at in re.finditer(r"\S+", header)][1:]
    assert all(line[end - 1] != " " and line[end:end + 1] in ("", " ") for line in rows for end in ends), rows
    page = (tmp_path / "report.html").read_text()
    assert '<td class="fail"><a href="#c0">FAIL*</a></td>' in page and 'id="c0"' in page
    assert '<td class="differs"><a href="#d' in page and "option=1|2" in page


def test_a_certification_keeps_the_detailed_section_and_a_summary_when_several(tmp_path, sketch):
    certs = [certificate(0, failing=True), certificate(1, failing=False)]
    report.write(certs, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert text.startswith("# optspec certification") and "| 0 | torch.optim.AdamW[variant0] | keras |" in text
    assert text.count("# optspec certificate: ") == 2
    assert SPEC_SNIPPET in text and "- check: trajectory, step 17" in text and "| scenario-11 | True |" in text
    assert "(errors-0.png)" in text and "errors-1.png" not in text  # nothing to plot for a conforming subject
    assert not (tmp_path / "errors-1.png").exists()
    report.write(certs[:1], tmp_path)
    assert (tmp_path / "report.md").read_text().startswith("# optspec certificate: ")


@pytest.mark.parametrize(("checks", "fail", "rows"), [
    # stopped at the first case's one-step check: the trajectory check never ran
    ({"one_step": CheckOutcome(False, 3.0), "trajectory": CheckOutcome(True, None)},
     failure(0, check="one_step"), ["| one_step | failed | 3 |", "| trajectory | not run |  |"]),
    # a crash before any case finished
    ({"crash": CheckOutcome(False, None), "trajectory": CheckOutcome(False, None)},
     Failure(check="crash", step=3, detail="crashed with SIGSEGV at step 3", case="c", reproduce_cli="optspec"),
     ["| crash | failed |  |", "| trajectory | not run |  |"]),
])
def test_a_check_that_did_not_run_reads_not_run(tmp_path, sketch, checks, fail, rows):
    report.write([certificate(0, failing=True, checks=checks, fail=fail)], tmp_path)
    lines = (tmp_path / "report.md").read_text().splitlines()
    assert [line for line in lines if line.startswith(("| one_step", "| trajectory", "| crash"))] == rows
    junit = (tmp_path / "junit.xml").read_text()
    assert ('name="trajectory"><skipped message="not run"/>' in junit) == checks["trajectory"].passed


@pytest.mark.parametrize(("before", "trajectory"), [((), "| trajectory | not run |  |"),
                                                   ((0.4,), "| trajectory | passed | 0.4 |")])
def test_a_case_stopped_at_its_one_step_check_did_not_measure_the_trajectory(tmp_path, sketch, before, trajectory):
    from optspec.conformance.certify import check_outcomes
    from optspec.conformance.check import CheckResult

    passed = [CheckResult(case=None, passed=True, worst={"one_step": 0.2, "trajectory": w}) for w in before]
    stopped = CheckResult(case=None, passed=False, worst={"one_step": 3.0, "trajectory": 0.0}, check="one_step",
                          step=1)
    checks = check_outcomes([*passed, stopped], stopped)
    report.write([certificate(0, failing=True, checks=checks, fail=failure(0, check="one_step"))], tmp_path)
    lines = (tmp_path / "report.md").read_text().splitlines()
    assert [line for line in lines if line.startswith(("| one_step", "| trajectory"))] == [
        "| one_step | failed | 3 |", trajectory]


def test_a_differing_certificate_never_reads_does_not_conform(tmp_path, sketch):
    report.write([certificate(0, failing=True), certificate(1, failing=False)], tmp_path,
                 informational=frozenset({0}))
    first = (tmp_path / "report.md").read_text().split("\n---\n")[1]
    assert "**Verdict: differs**" in first and "does not conform" not in first.lower()


class _SpyPyplot:
    """matplotlib.pyplot, recording the axes of every figure drawn."""

    def __init__(self, plt):
        self.plt, self.axes = plt, []

    def __getattr__(self, name):
        return getattr(self.plt, name)

    def subplots(self, *args, **kwargs):
        fig, ax = self.plt.subplots(*args, **kwargs)
        self.axes.append(ax)
        return fig, ax


def test_plot_titles_name_the_convention_and_the_verdict_as_written(tmp_path, monkeypatch):
    plt, why = report.load_pyplot()
    if plt is None:
        pytest.skip(why)
    spy = _SpyPyplot(plt)
    monkeypatch.setattr(report, "load_pyplot", lambda: (spy, None))
    certs = [certificate(0, failing=True, subject="torch.optim.AdamW[foreach]"),
             certificate(1, failing=True, subject="torch.optim.AdamW[fused]", convention="torch"),
             certificate(2, failing=True, subject="spec.adamw", convention=None),
             certificate(3, failing=False)]  # only a failure is plotted: not one that differs or conforms
    written = report.write(certs, tmp_path, informational=frozenset({1}))
    assert [ax.get_title().splitlines()[0] for ax in spy.axes] == [
        "torch.optim.AdamW[foreach] vs keras (float32, does not conform)",
        "spec.adamw vs adamw (float32, does not conform)",
    ]
    assert written.files[4:] == ("errors-0.png", "errors-2.png")
    assert (tmp_path / "errors-0.png").read_bytes()[:4] == b"\x89PNG"


def test_without_matplotlib_every_file_but_the_plots_is_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ModuleNotFoundError
    (tmp_path / "errors-0.png").write_bytes(b"an earlier run's plot")
    written = report.write([certificate(0, failing=True), certificate(1, failing=False)], tmp_path)
    assert written == report.Written(files=("certificate.json", "junit.xml", "report.md", "report.html"),
                                     notes=(MISSING,))
    assert all((tmp_path / name).stat().st_size for name in written.files)
    assert not list(tmp_path.glob("*.png"))
    assert "errors-" not in (tmp_path / "report.md").read_text()


def test_without_matplotlib_out_is_refused_before_any_case_with_the_install_command(tmp_path, monkeypatch,
                                                                                    capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(run, "certify_all", lambda options, **kwargs: pytest.fail("a case ran"))
    code = main(["certify", "--framework", "numpy", "--impl", "spec.adamw", "--out", str(tmp_path / "out")])
    (error,) = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "matplotlib, which is not installed: run `pip install" in error and "[plots]" in error, error
    assert not (tmp_path / "out").exists()


@pytest.fixture
def umask():
    """Sets the process's umask for the test, and puts the previous one back."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_written_file_has_the_mode_the_umask_gives(tmp_path, umask, mask, mode):
    umask(mask)
    fresh, replaced = tmp_path / "fresh.json", tmp_path / "replaced.json"
    replaced.write_text("old")
    replaced.chmod(0o400)
    atomic.write_text(fresh, "new")
    atomic.write_text(replaced, "new")
    assert [(p.stat().st_mode & 0o777, p.read_text()) for p in (fresh, replaced)] == [(mode, "new")] * 2


@pytest.mark.parametrize("broken", ["fsync", "replace"])
def test_a_failed_write_leaves_the_previous_file_and_no_temporary_one(tmp_path, monkeypatch, broken):
    target = tmp_path / "certificate.json"
    target.write_text("previous")

    def fails(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, broken, fails)
    with pytest.raises(OSError, match="No space left"):
        atomic.write_text(target, "next")
    monkeypatch.undo()
    assert target.read_text() == "previous"
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["certificate.json"]
