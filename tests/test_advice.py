"""Advice never weakens the check: every command a failing run suggests still rejects the defect.

The defects are real-world ones that no convention knob names (tests/plugins/torch_subjects.py,
``UNNAMED_DEFECTS``): heavyball's max(√v̂, ε), a constant inside the root as well as ε outside it, a
bias correction of the second moment only one step late, both one step late or one step early, and a
decay that reads the previous step's learning rate.
"""

from __future__ import annotations

import shlex

import pytest

from optspec.conformance.cli import main
from tests.conftest import needs
from tests.plugins.torch_subjects import UNNAMED_DEFECTS

PLUGIN = "tests.plugins.torch_subjects"
#: The hint that names each defect, where a single change models it (the others must name none).
NAMED_BY = {
    "bias_off_by_one": "bias_correction one step late",
    "bias_one_early": "bias_correction one step early",
    "beta2_bias_lag": "the second moment's bias correction one step late",
    "previous_lr_decay": "weight decay scaled by the previous step's lr",
}


def suggested_commands(argv: list[str], output: str) -> list[list[str]]:
    """Every ``optspec`` command line the output suggests: its reproduce lines, and the run again with
    each ``--dtype`` it advises."""
    commands = []
    for line in output.splitlines():
        if line.strip().startswith("reproduce:"):
            words = shlex.split(line.split("reproduce:", 1)[1])
            assert words[0] == "optspec", line
            commands.append(words[1:])
        words = line.split()
        for i, word in enumerate(words[:-1]):
            if word == "--dtype" and "reproduce:" not in line:
                advised = list(argv)
                advised[advised.index("--dtype") + 1] = words[i + 1].rstrip(".,;)")
                commands.append(advised)
    return commands


@needs("torch")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("defect", UNNAMED_DEFECTS)
def test_a_defect_is_rejected_and_no_advice_leads_to_a_passing_run(defect, dtype, capsys):
    argv = ["certify", "--framework", "torch", "--impl", f"{PLUGIN}:AdamW_{defect}", "--dtype", dtype,
            "--examples", "20"]
    assert main(argv) == 1, f"{defect} was not rejected in {dtype}"
    output = capsys.readouterr().out
    hint = next(line.strip() for line in output.splitlines()
                if line.strip().startswith(("most likely knob:", "no single knob")))
    if defect in NAMED_BY:
        assert hint.startswith(f"most likely knob: {NAMED_BY[defect]}"), hint
    else:
        assert hint.startswith("no single knob explains it"), hint
    assert "reduced precision" not in hint and "--dtype" not in hint, hint
    commands = suggested_commands(argv, output)
    assert commands, output
    for command in commands:
        if command == argv:
            continue  # the reproduce line of this very run: its verdict is the one above
        assert main(command) != 0, f"the output advised `optspec {shlex.join(command)}`, which passes:\n{output}"
        capsys.readouterr()


def test_the_suggested_commands_include_the_advised_dtype():
    argv = ["certify", "--impl", "x:Y", "--dtype", "float32"]
    output = ("  no single knob explains it; ... within bfloat16's bounds: certify it with --dtype bfloat16\n"
              "  reproduce: optspec certify --impl x:Y --dtype float32 --seed 0\n")
    assert suggested_commands(argv, output) == [
        ["certify", "--impl", "x:Y", "--dtype", "bfloat16"],
        ["certify", "--impl", "x:Y", "--dtype", "float32", "--seed", "0"],
    ]


# pytorch-optimizer 4.1.0, pytorch_optimizer/optimizer/flash_adamw.py:33-101: FlashAdamW holds m and v as 8-bit
# codes (int8 softsign, uint8 of the square root) in groups of 32 with float16 scales; the float16 tensors are
# scales, not its arithmetic, and certified in float16 it passes.  It is told its format, never a dtype, and the
# advised declaration checks it from the codes it holds.
@needs("torch")
def test_an_optimizer_of_8_bit_state_is_told_its_format_and_advised_no_dtype_that_would_pass_it(capsys):
    pytest.importorskip("pytorch_optimizer")
    argv = ["certify", "--framework", "torch", "--impl", "pytorch_optimizer:FlashAdamW[amsgrad=False,maximize=False]",
            "--dtype", "float32", "--examples", "20"]
    assert main(argv) == 1
    output = capsys.readouterr().out
    assert "most likely: the subject stores its state in the format flash-adamw" in output, output
    assert "certify it in that set-up: --state-dtype flash-adamw" in output, output
    commands = suggested_commands(argv, output)
    assert all("--dtype" not in line or "reproduce:" in line for line in output.splitlines()), output
    for command in commands:
        if command != argv:
            assert main(command) != 0, f"the output advised `optspec {shlex.join(command)}`, which passes:\n{output}"
            capsys.readouterr()
    main([*argv, "--state-dtype", "flash-adamw"])  # the declaration: every step checked from the codes it holds
    declared = capsys.readouterr().out
    assert declared.startswith("CONFORMS") or "failed state at step" in declared, declared
