"""identify's answer is one certify accepts; far misfits name no knob values; it takes --dtype."""

from __future__ import annotations

import pytest

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


#: (framework, plugin, the rule and preset identify must name without --rule).
OTHER_RULES = [("torch", "torch.optim:NAdam", "nadam", "torch"), ("torch", "torch.optim:Adadelta", "adadelta", "torch"),
               ("jax", "optax:radam", "radam", "optax")]


@pytest.mark.parametrize(("framework", "impl", "rule", "preset"),
                         [pytest.param(*row, marks=needs(row[0]), id=row[1]) for row in OTHER_RULES])
def test_identify_without_a_rule_names_the_rule_a_plugin_follows(framework, impl, rule, preset, capsys):
    code = main(["identify", "--framework", framework, "--impl", impl, "--examples", "5"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and lines[0].startswith(f"rule: {rule} (nothing of rule adamw fits its steps; --rule {rule})")
    assert lines[-1] == preset, lines


@needs("torch")
def test_identify_without_a_rule_claims_no_rule_for_a_defect_of_every_rule(capsys):
    code = main(["identify", "--framework", "torch", "--impl", "tests.plugins.rule_defects:AdadeltaSwappedRho",
                 "--examples", "5"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1 and lines[-1] == "unfit" and not any(line.startswith("rule:") for line in lines), lines
