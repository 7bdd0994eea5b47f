"""The committed scoreboard of real optimizers (``docs/ecosystem``, ``nox -s ecosystem``) and its check.

Each row must agree with its source's reading or carry identify's own words
as the evidence of where it differs; the check must fail when a committed
row no longer matches a fresh run.  The fresh run here is of one row that
needs only torch; ``nox -s ecosystem -- --check`` runs every row in CI.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools import ecosystem
from tools.ecosystem_records import Reading, agreement, differing_knobs
from tools.ecosystem_rows import IMPLEMENTATIONS
from tools.torch_source import TORCH_VERSION

COMMITTED = ecosystem.DEFAULT_DIR
ROWS = ecosystem.load(COMMITTED)
BY_NAME = {impl.name: impl for impl in IMPLEMENTATIONS}


def test_every_row_is_committed_with_its_sources_across_at_least_six_frameworks():
    assert [row.name for row in ROWS] == [impl.name for impl in IMPLEMENTATIONS]
    assert len(ROWS) >= 25
    assert len({impl.where for impl in IMPLEMENTATIONS}) >= 6
    for impl in IMPLEMENTATIONS:
        assert impl.sources and all(c.file and c.lines and c.says for c in impl.sources), impl.name
        assert (COMMITTED / "certificates" / f"{impl.slug}.json").is_file(), impl.name


def test_the_session_installs_each_package_at_the_version_its_row_records():
    pins = dict(line.split("==") for name in ("ecosystem-constraints.txt", "ecosystem-constraints-mindspore.txt")
                for line in (ecosystem.ROOT / "tools" / name).read_text().splitlines()
                if line and not line.startswith("#"))
    pins["torch"] = f"{TORCH_VERSION}+cpu"
    for row in ROWS:
        assert pins[BY_NAME[row.name].package] == row.version, row.name


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_each_row_agrees_with_its_source_or_says_why_not_with_identifys_evidence(row):
    impl = BY_NAME[row.name]
    assert row.agrees == agreement(impl.reading, impl.rule, row.identified, row.knobs), row.name
    assert row.differs == differing_knobs(impl.claims, impl.rule, row.identified, row.knobs), row.name
    if row.differs:  # identify's fit differs from the claim, so certify must reject the claim
        assert any(v.verdict == "does not conform" for v in row.verdicts), row.name
    assert row.identify_said and row.identify_said[-1] == row.identified
    readme = (COMMITTED / "README.md").read_text()
    section = readme.split(f"### {row.name}\n", 1)[1].split("\n### ", 1)[0]
    assert impl.reading.describe() in section
    if not row.agrees:
        assert "optspec's answer differs from the reading" in section and "\n".join(row.identify_said) in section
    for verdict in row.verdicts:
        assert (verdict.cause is None) == (verdict.verdict == "conforms"), (row.name, verdict)
        if verdict.cause:
            assert verdict.cause in section


@pytest.mark.parametrize("row", [row for row in ROWS if any(v.verdict == "does not conform" for v in row.verdicts)],
                         ids=lambda row: row.name)
def test_the_hint_names_the_knobs_identify_fits_where_a_row_does_not_conform(row):
    """certify's hint and identify agree (both in float32, identify's dtype): the knobs a rejection names are
    those in which identify's fit differs from the claim; where certify rejects identify's best fit (on
    another check), each knob the hint names is one of that fit's, which identify's evidence quotes."""
    (verdict,) = [v for v in row.verdicts if v.dtype == "float32"] or [None]
    if verdict is None or verdict.verdict != "does not conform":
        pytest.skip(f"{row.name} is rejected in another dtype than identify's")
    if row.identified != "unfit":
        assert verdict.knobs == {k: str(v) for k, v in row.differs.items()}, (verdict.cause, row.differs)
    else:
        best_fit = row.identify_said[0].split("best fit on identify's cases (", 1)[-1].split(", error/bound")[0]
        assert all(f"{k}={v}" in best_fit.split(", ") for k, v in verdict.knobs.items()), (verdict.cause, best_fit)


def test_the_committed_pages_are_the_rendering_of_the_committed_rows():
    for name, text in ecosystem.pages(ROWS).items():
        assert (COMMITTED / name).read_text() == text, f"{name} is stale: python -m tools.ecosystem --pages"


def test_the_certificates_hold_the_verdicts_of_the_rows():
    for row in ROWS:
        certs = json.loads((COMMITTED / "certificates" / f"{BY_NAME[row.name].slug}.json").read_text())["certificates"]
        assert [(c["dtype"], c["verdict"], c["convention"]) for c in certs] == \
            [(v.dtype, v.verdict, BY_NAME[row.name].claims) for v in row.verdicts], row.name


def test_a_row_whose_fresh_verdict_or_knob_changed_is_a_mismatch_naming_it_and_an_unchanged_one_is_not():
    row = ROWS[0]
    assert ecosystem.mismatches([row], [row]) == []
    flipped = dataclasses.replace(row, verdicts=tuple(dataclasses.replace(v, verdict="does not conform")
                                                      for v in row.verdicts))
    (line,) = ecosystem.mismatches([row], [flipped])
    assert line.startswith(f"{row.name}: verdicts was ") and "does not conform" in line
    moved = dataclasses.replace(row, knobs={**row.knobs, "epsilon": "inside"})
    assert ecosystem.mismatches([row], [moved]) == [
        f"{row.name}: knobs was {row.knobs!r}, a fresh run gives {moved.knobs!r}"]
    timed = dataclasses.replace(row, seconds=row.seconds + 100, fit=row.fit / 2)
    assert ecosystem.mismatches([row], [timed]) == []  # numbers are not compared
    assert ecosystem.mismatches([row], []) == [f"{row.name}: not in the fresh run"]


def test_agreement_holds_two_names_of_the_same_maths_equal_and_a_different_knob_not():
    # without bias correction, epsilon "hat" computes what "corrected" does
    found = {"decay_scale": "lr", "decay_point": "after", "bias_correction": False, "epsilon": "corrected",
             "amsgrad": "unsupported"}
    assert agreement(Reading("hf_legacy", {"bias_correction": False}), "adamw", "none", found)
    assert not agreement(Reading("hf_legacy"), "adamw", "none", found)
    assert not agreement(Reading("hf_legacy", {"bias_correction": False}), "adamw", "unfit", {})
    assert agreement(Reading(None, outside="nesterov momentum"), "adamw", "unfit", {})
    assert agreement(Reading("torch"), "adamw", "torch", {**found, "epsilon": "untested", "decay_point": "before",
                                                          "bias_correction": True, "amsgrad": "raw"})


def test_the_knobs_that_differ_from_the_claim_are_those_that_change_the_maths():
    hf_without_bias_correction = {"decay_scale": "lr", "decay_point": "after", "bias_correction": False,
                                  "epsilon": "corrected", "amsgrad": "unsupported"}
    # epsilon "hat" and "corrected" coincide without bias correction: only the bias correction differs
    assert differing_knobs("hf_legacy", "adamw", "none", hf_without_bias_correction) == {"bias_correction": False}
    hf_legacy = {**hf_without_bias_correction, "bias_correction": True, "epsilon": "hat"}
    assert differing_knobs("torch", "adamw", "hf_legacy", hf_legacy) == {"decay_point": "after", "epsilon": "hat"}
    assert differing_knobs("torch", "adamw", "none", {**hf_legacy, "decay_point": "before", "epsilon": "corrected",
                                                      "amsgrad": "ignored"}) == {"amsgrad": "ignored"}
    assert differing_knobs("torch", "adamw", "unfit", {}) == {}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_check_fails_when_a_committed_row_no_longer_matches_a_fresh_run(tmp_path):
    name = "torch AdamW (foreach)"
    slug = BY_NAME[name].slug
    shutil.copytree(COMMITTED, tmp_path / "board")
    board = json.loads((tmp_path / "board" / "scoreboard.json").read_text())
    (entry,) = [e for e in board["rows"] if e["name"] == name]

    # a committed row that matches a fresh run is what `nox -s ecosystem_check` shows in CI, row by row
    entry["identified"] = "optax"
    entry["verdicts"][0]["verdict"] = "does not conform"
    (tmp_path / "board" / "scoreboard.json").write_text(json.dumps(board))
    stale = subprocess.run([sys.executable, "-m", "tools.ecosystem", "--check", "--only", name, "--out",
                            str(tmp_path / "board")], cwd=ecosystem.ROOT, capture_output=True, text=True, timeout=600)
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert f"MISMATCH {name}: identified was 'optax', a fresh run gives 'torch'" in stale.stdout
    assert f"MISMATCH {name}: verdicts was" in stale.stdout
    assert "0 of 1 rows match the committed scoreboard" in stale.stdout
    assert (tmp_path / "board" / "certificates" / f"{slug}.json").read_bytes() == \
        (COMMITTED / "certificates" / f"{slug}.json").read_bytes()  # a check writes nothing


def test_an_unknown_row_is_a_one_line_error_naming_the_way_to_list_them():
    with pytest.raises(SystemExit, match=r"no scoreboard row named 'nope'; `python -m tools.ecosystem --list`"):
        ecosystem.main(["--only", "nope"])


def test_the_projects_readme_links_the_scoreboard_as_the_answer():
    readme = (Path(ecosystem.ROOT) / "README.md").read_text()
    assert "Which AdamW am I running?" in readme and "docs/ecosystem/README.md" in readme


def test_an_interrupted_write_leaves_the_committed_scoreboard_as_it_was(tmp_path, monkeypatch):
    board = tmp_path / "board"
    shutil.copytree(COMMITTED, board)
    before = {p: p.read_bytes() for p in board.rglob("*") if p.is_file()}
    calls = []

    def interrupted(path, text):
        calls.append(path)
        if len(calls) == 2:  # the scoreboard written, the pages not yet
            raise KeyboardInterrupt

    monkeypatch.setattr(ecosystem, "write_text", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ecosystem.write(ROWS[:1], board / "certificates", board)
    assert {p: p.read_bytes() for p in board.rglob("*") if p.is_file()} == before
    assert not list(tmp_path.glob(".board.new.*"))
