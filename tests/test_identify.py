"""identify's answer is one certify accepts; far misfits name no knob values; it takes --dtype."""

from __future__ import annotations

from optspec.conformance.cli import main
from tests.conftest import needs

PLUGIN = "tests.plugins.torch_subjects"


def _identify(capsys, *argv: str) -> tuple[int, list[str]]:
    code = main(["identify", "--framework", "torch", *argv])
    return code, capsys.readouterr().out.strip().splitlines()


@needs("torch")
def test_a_fit_on_identifys_cases_that_certify_rejects_is_not_claimed(capsys):
    # a 1e-15 inside the root is invisible on identify's cases, and certify's drawn cases reach it
    code, lines = _identify(capsys, "--impl", f"{PLUGIN}:AdamW_constant_in_root")
    assert code == 1 and lines[-1] == "unfit", lines
    assert lines[0].startswith("no convention fits: the best fit on identify's cases (") and \
        "is rejected by certify: failed one_step" in lines[0], lines
    assert not any(line.startswith("knob: ") for line in lines)


@needs("torch")
def test_a_candidate_more_than_ten_times_off_names_no_knob_values(capsys):
    code, lines = _identify(capsys, "--impl", "torch.optim:SGD", "--rule", "adamw")
    assert code == 1 and lines[-1] == "unfit", lines
    assert "too far for its knob values to say anything" in lines[0], lines
    assert "decay_scale" not in "\n".join(lines)


@needs("torch")
def test_every_line_but_the_last_is_labelled_and_the_fit_is_certified_in_the_dtype_asked(capsys):
    code, lines = _identify(capsys, "--impl", "torch.optim:AdamW", "--dtype", "float64")
    assert code == 0 and lines[-1] == "torch", lines
    assert lines[0].startswith("fit: error/bound ") and " in float64 " in lines[0], lines
    assert lines[1].startswith("certified: conforms in ") and lines[1].endswith("(float64)"), lines
    assert all(line.split(":")[0] in ("fit", "certified", "knob") for line in lines[:-1]), lines

