"""The written report: plots optional, files with the umask, a small matrix report, checks not run."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import pytest

from optspec.conformance import atomic, report, run
from optspec.conformance.cli import main
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


def matrix_certs() -> tuple[list[Certificate], frozenset[int], frozenset[int]]:
    """60 cells (10 subjects x 6 presets), every third failing: half their own preset (FAIL), half another
    one (differs). Returns the certificates, the informational indices and the failing own indices."""
    presets = ["torch", "optax", "keras", "paper", "bert", "tfa"]
    certs = [certificate(i, failing=i % 3 == 0, convention=presets[i % 6]) for i in range(60)]
    failing = [i for i, c in enumerate(certs) if not c.conforms]
    return certs, frozenset(failing[::2]), frozenset(failing[1::2])


def not_applicable(index: int) -> Certificate:
    """A cell the subject cannot run at all (no kernel in the dtype), as the CLI's matrix passes it: not
    conforming, so in ``informational`` when the preset is not the subject's own."""
    return dataclasses.replace(certificate(index, failing=False), checks={}, golden=[], cases_run=0,
                               per_case_worst=[], verdict=NOT_APPLICABLE,
                               notes=["not applicable in float32: no kernel"])


def section(text: str, index: int) -> str:
    """The short section of cell ``index`` in a matrix report (up to the next one)."""
    start = text.index(f"### {index}. ")
    end = text.find("\n### ", start + 1)
    return text[start:] if end < 0 else text[start:end]


@pytest.fixture
def sketch(monkeypatch):
    """Plots named but not drawn (matplotlib takes most of a second per plot): ``write`` returns and links
    the names it would have drawn."""
    monkeypatch.setattr(report, "load_pyplot", lambda: (object(), None))
    monkeypatch.setattr(report, "plot", lambda plt, cert, label, path: path.name)


def test_a_full_matrix_report_is_small_with_a_short_section_per_failing_or_differing_cell(tmp_path, sketch):
    certs, informational, own_failing = matrix_certs()
    certs.append(not_applicable(60))
    preamble = "subject  dtype  torch  optax ...\n" * 12 + "differs: does not conform to this preset"
    written = report.write(certs, tmp_path, informational=informational | {60}, preamble=preamble)
    text = (tmp_path / "report.md").read_text()
    assert len(text.encode()) < 50_000, len(text.encode())
    assert text.startswith("# optspec matrix") and preamble in text and "is in certificate.json" in text
    assert SPEC_SNIPPET not in text and "golden scenario" not in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "torch.optim" in line]
    assert len(rows) == 61 and rows[60].endswith("| not applicable |  | 0 |"), rows[60]
    for index, cert in enumerate(certs):
        assert f"| {index} | {cert.subject} | {cert.convention} | float32 |" in rows[index]
        if cert.conforms or index == 60:
            assert f"### {index}. " not in text
            continue
        cell = section(text, index)
        assert cell.startswith(f"### {index}. {cert.subject} vs {cert.convention}: ")
        assert "- check: trajectory, step 17" in cell and cert.failure.hint in cell
        assert f"- reproduce: `{cert.failure.reproduce_cli}`" in cell and f"(errors-{index}.png)" in cell
        if index in informational:
            assert "does not conform" not in cell.lower() and "| differs |" in rows[index], cell
        else:
            assert index in own_failing and "does not conform" in cell and "| does not conform |" in rows[index]
    # a plot per cell that does not conform, none for the others
    assert set(written.files[4:]) == {f"errors-{i}.png" for i in informational | own_failing}


def test_a_certification_keeps_the_detailed_section_and_a_summary_when_several(tmp_path, sketch):
    certs = [certificate(0, failing=True), certificate(1, failing=False)]
    report.write(certs, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert text.startswith("# optspec certification") and "| 0 | torch.optim.AdamW[variant0] | keras |" in text
    assert text.count("# optspec certificate: ") == 2
    assert SPEC_SNIPPET in text and "- check: trajectory, step 17" in text and "| scenario-11 | True |" in text
    assert "(errors-0.png)" in text and "(errors-1.png)" in text  # a certification plots conforming subjects too
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
             certificate(3, failing=False)]  # a matrix plots only the cells that do not conform
    written = report.write(certs, tmp_path, informational=frozenset({1}), preamble="table")
    assert [ax.get_title().splitlines()[0] for ax in spy.axes] == [
        "torch.optim.AdamW[foreach] vs keras (float32, does not conform)",
        "torch.optim.AdamW[fused] vs torch (float32, differs)",
        "spec.adamw vs adamw (float32, does not conform)",
    ]
    assert written.files[4:] == ("errors-0.png", "errors-1.png", "errors-2.png")
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


@pytest.mark.parametrize("conforms", [True, False])
def test_without_matplotlib_the_exit_code_is_the_verdict(tmp_path, monkeypatch, conforms):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(run, "certify_all", lambda options, **kwargs: iter([certificate(0, failing=not conforms)]))
    code = main(["certify", "--framework", "numpy", "--impl", "spec.adamw", "--out", str(tmp_path)])
    assert code == (0 if conforms else 1)
    assert json.loads((tmp_path / "certificate.json").read_text())["certificates"][0]["verdict"] == (
        "conforms" if conforms else "does not conform")
    assert (tmp_path / "junit.xml").exists() and (tmp_path / "report.md").exists()
    assert not list(tmp_path.glob("*.png"))


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
