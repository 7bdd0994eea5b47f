"""Hyperparameters a constructor hides: held at the value the subject behaves as (0 for λ, its framework's
default), or at the value the user declares with ``--hold``; otherwise the hint names the value that explains it."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from optspec import adapters
from optspec.conformance.certify import certify
from optspec.conformance.cli import main
from optspec.conformance.hidden import held, parse_holds, plausible_values
from tests.conftest import needs

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "tests.plugins.torch_subjects"


@needs("torch")
def test_a_factory_that_switches_the_decay_off_conforms_held_at_zero_and_says_so():
    (subject,) = adapters.resolve_subject("torch", f"{PLUGIN}:adamw_without_decay")
    assert plausible_values(subject) == {"weight_decay": (0.01, 0.0)}
    cert = certify(subject, examples=10, golden_dir=None)
    assert cert.conforms, cert.failure
    assert any(note.startswith("weight_decay: not tested: held at 0.0: the constructor takes no weight_decay; ")
               and "behaves as weight_decay=0.0" in note for note in cert.notes), cert.notes


@needs("torch")
def test_a_factory_that_hides_another_decay_is_rejected_and_the_hint_names_it(capsys):
    argv = ["certify", "--framework", "torch", "--impl", f"{PLUGIN}:adamw_hiding_decay", "--examples", "5"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert ("most likely: the constructor takes no weight_decay, and the subject behaves as weight_decay=0.05"
            in out), out
    assert "declare it: --hold weight_decay=0.05" in out, out


@needs("torch")
def test_a_declared_value_is_held_and_the_reproduce_line_carries_it(capsys):
    argv = ["certify", "--framework", "torch", "--impl", f"{PLUGIN}:adamw_hiding_decay", "--examples", "5"]
    assert main([*argv, "--hold", "weight_decay=0.05"]) == 0, capsys.readouterr().out
    capsys.readouterr()
    assert main([*argv, "--hold", "weight_decay=0.04"]) == 1
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.strip().startswith("reproduce:")]
    words = shlex.split(line.split("reproduce:", 1)[1])
    assert words[words.index("--hold") + 1] == "weight_decay=0.04", line
    assert main(words[1:]) == 1


@needs("torch")
def test_identify_takes_a_declared_value(capsys):
    assert main(["identify", "--framework", "torch", "--impl", f"{PLUGIN}:adamw_hiding_decay", "--examples", "5",
                 "--hold", "weight_decay=0.05"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "torch"


@pytest.mark.parametrize(("texts", "message"), [
    (["weight_decay"], "is not NAME=VALUE"),
    (["weight_decay=zero"], "is not NAME=VALUE"),
    (["weight_decay=0", "weight_decay=1"], "given twice"),
])
def test_a_malformed_hold_is_one_line(texts, message):
    with pytest.raises(adapters.SetupError, match=message):
        parse_holds(texts)


@needs("torch")
@pytest.mark.parametrize(("values", "message"), [
    ({"lr_decay": 0.0}, "not a hyperparameter of rule adamw"),
    ({"eps": 1e-3}, "constructor takes eps"),
    ({"weight_decay": -1.0}, "must be a finite number >= 0"),
])
def test_a_hold_the_subject_cannot_take_is_refused(values, message):
    (subject,) = adapters.resolve_subject("torch", f"{PLUGIN}:adamw_hiding_decay")
    with pytest.raises(adapters.SetupError, match=message):
        held(subject, values, "declared with --hold")


@needs("torch")
def test_the_pytest_plugin_takes_a_held_value(tmp_path):
    (tmp_path / "test_empty.py").write_text("")
    done = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path), "-q", "-p", "no:cacheprovider",
                           "--optspec-framework", "torch", "--optspec-impl", f"{PLUGIN}:adamw_hiding_decay",
                           "--optspec-examples", "5",
                           "--optspec-hold", "weight_decay=0.05"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


@needs("torch")
def test_identify_finds_the_value_certify_holds_a_hidden_hyperparameter_at(capsys):
    assert main(["identify", "--framework", "torch", "--impl", f"{PLUGIN}:adamw_without_decay",
                 "--examples", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "torch" and any(line.startswith("held: weight_decay=0.0 ") for line in lines), lines
