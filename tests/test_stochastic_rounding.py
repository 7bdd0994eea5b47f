"""Parameters rounded stochastically into bfloat16 (issue #37): declared with ``--state-dtype params=stochastic``,
each new value must be a neighbour of the exact one and the rounding unbiased, so that truncation or rounding
to nearest does not pass as stochastic."""

from __future__ import annotations

import numpy as np
import pytest

from optspec import adapters
from optspec.conformance import rounding
from optspec.conformance.cli import main
from optspec.conformance.state_storage import parse_state_dtypes
from tests.conftest import needs

PLUGIN = "tests.plugins.rounding_subjects"


def _certify(impl: str, *extra: str) -> list[str]:
    return ["certify", "--framework", "torch", "--impl", impl, "--dtype", "bfloat16", "--examples", "5",
            "--state-dtype", "params=stochastic", *extra]


def test_the_grid_brackets_each_value_by_its_bfloat16_neighbours():
    x = np.array([1.0, 1.0 + 2.0**-9, -3.0 - 2.0**-7, 2.0**-130])
    below, above = rounding.grid(x, "bfloat16")
    assert list(below) == [1.0, 1.0, -3.0 - 2.0**-6, 2.0**-130] and list(above) == [1.0, 1.0 + 2.0**-7, -3.0, 2.0**-130]


def _rounded(x: np.ndarray, rng: np.random.Generator, how: str) -> np.ndarray:
    a, b = rounding.grid(x, "bfloat16")
    p = (x - a) / np.where(b > a, b - a, 1.0)
    up = {"stochastic": rng.random(x.shape) < p, "truncate": np.zeros(x.shape, bool), "nearest": p >= 0.5}[how]
    return np.where(up, b, a)


@pytest.mark.parametrize("seed", range(20))
def test_exact_stochastic_rounding_passes_across_seeds(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(6, 4096))
    assert rounding.check_stochastic(x, _rounded(x, rng, "stochastic"), np.zeros_like(x), "bfloat16", "t") is None


@pytest.mark.parametrize("how", ["truncate", "nearest"])
def test_truncation_and_rounding_to_nearest_are_biased(how):
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=(6, 4096)))
    step, why = rounding.check_stochastic(x, _rounded(x, rng, how), np.zeros_like(x), "bfloat16", "t")
    assert step == 6 and "its rounding to bfloat16 is biased" in why, why


def test_a_value_that_is_no_neighbour_is_named():
    x = np.full((2, 3), 1.0 + 2.0**-9)
    got = np.full((2, 3), 1.0 + 2.0**-6)
    step, why = rounding.check_stochastic(x, got, np.zeros_like(x), "bfloat16", "tensor 0")
    assert step == 1 and "tensor 0 element (0,) at step 1" in why and "not a bfloat16 neighbour" in why, why


def test_the_parameters_rounding_is_declared_by_name_and_only_stochastic():
    assert parse_state_dtypes(["params=stochastic"]) == {"params": "stochastic"}
    with pytest.raises(adapters.SetupError, match="the parameters may be declared params=stochastic or params=kahan"):
        parse_state_dtypes(["params=bfloat16"])


@needs("torch")
def test_a_stochastically_rounding_kernel_conforms_declared(capsys):
    assert main(_certify(f"{PLUGIN}:StochasticRoundingAdamW")) == 0, capsys.readouterr().out


@needs("torch")
@pytest.mark.parametrize("impl", [f"{PLUGIN}:TruncatingAdamW", f"{PLUGIN}:NearestAdamW"])
def test_truncation_or_rounding_to_nearest_declared_stochastic_is_rejected_by_name(impl, capsys):
    assert main(_certify(impl)) == 1
    out = capsys.readouterr().out
    assert "failed rounding at step" in out and "its rounding to bfloat16 is biased" in out, out


@needs("torch")
def test_a_kernel_that_steps_in_bfloat16_declared_stochastic_is_rejected(capsys):
    """torch's foreach AdamW keeps bfloat16 state and steps in bfloat16: its values are no rounding of the
    float32 step."""
    assert main(_certify("torch.optim.AdamW[foreach]")) == 1
    out = capsys.readouterr().out
    assert "failed rounding at step" in out and "not a bfloat16 neighbour of the exact value" in out, out


@needs("torch")
def test_a_gradient_used_as_kahan_scratch_is_named_and_another_change_is_not(capsys):
    argv = ["certify", "--framework", "torch", "--dtype", "bfloat16", "--examples", "0", "--impl"]
    assert main([*argv, f"{PLUGIN}:KahanScratchAdamW"]) == 1
    out = capsys.readouterr().out
    assert "changed the gradient it was given at step 1: each gradient holds the parameters' change" in out, out
    assert main([*argv, "tests.plugins.torch_subjects:AdamW_mutate_grad"]) == 1
    out = capsys.readouterr().out
    assert "changed the gradient it was given at step 1" in out and "Kahan" not in out, out


@needs("torch")
@pytest.mark.parametrize(("impl", "named"), [("StochasticRoundingAdamW", "stochastic"), ("NearestAdamW", None),
                                             ("TruncatingAdamW", None), ("KahanAdamW", "kahan"),
                                             ("KahanDroppingAdamW", None)])
def test_identify_names_the_parameters_rounding_and_only_where_it_holds(impl, named, capsys):
    code = main(["identify", "--framework", "torch", "--impl", f"{PLUGIN}:{impl}", "--dtype", "bfloat16",
                 "--examples", "5"])
    out = capsys.readouterr().out
    assert ("rounding:" in out) is (named is not None), out
    if named:  # certified as declared: its rounding is checked there too
        assert f"rounding: {named}" in out and f"--state-dtype params={named}" in out, out
        assert code == 0 and "certified: conforms" in out, out


def _kahan(impl: str, examples: int = 5) -> list[str]:
    return ["certify", "--framework", "torch", "--impl", f"{PLUGIN}:{impl}", "--dtype", "bfloat16", "--examples",
            str(examples), "--state-dtype", "params=kahan"]


@needs("torch")
def test_a_kahan_compensated_kernel_conforms_declared(capsys):
    assert main(_kahan("KahanAdamW")) == 0, capsys.readouterr().out


@needs("torch")
def test_a_kahan_kernel_that_drops_its_compensation_is_rejected_by_name(capsys):
    assert main(_kahan("KahanDroppingAdamW")) == 1
    out = capsys.readouterr().out
    assert "failed rounding at step" in out and "the compensated value theta + kahan_comp" in out, out
    assert "the compensation does not carry what the rounded parameters lost" in out, out


@needs("torch")
def test_kahan_declared_where_no_compensation_is_kept_is_a_setup_error(capsys):
    assert main(_kahan("StochasticRoundingAdamW")) == 2
    err = capsys.readouterr().err
    assert "declared params=kahan, but the driver reads no Kahan compensation" in err, err


@needs("torch")
def test_a_decay_outside_the_compensation_is_rejected_and_named(capsys):
    """The shrunk case has steps without gradient, where the update's share of the bound is small."""
    assert main(_kahan("KahanDecayOutsideAdamW", examples=20)) == 1
    out = capsys.readouterr().out
    assert "failed rounding at step" in out and "the decay did not reach the compensated sum" in out, out
