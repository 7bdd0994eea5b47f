"""State held in a blockwise 8-bit format (issue #37): the spec's formats, and a kernel certified in its own
format, step by step from the state it holds, with each defect of the format named."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optspec import adapters, spec
from optspec.conformance.cli import main
from optspec.conformance.state_storage import parse_state_dtypes
from tests.conftest import needs

PLUGIN = "tests.plugins.blockwise_subjects"
SIGNED = spec.quantized.FORMATS["bitsandbytes-dynamic-signed"]
UNSIGNED = spec.quantized.FORMATS["bitsandbytes-dynamic-unsigned"]


def _certify(impl: str, *extra: str) -> list[str]:
    return ["certify", "--framework", "torch", "--impl", f"{PLUGIN}:{impl}", "--dtype", "float32",
            "--examples", "5", *extra]


def test_the_dynamic_maps_are_256_sorted_codes_in_their_range():
    for fmt, low in ((SIGNED, -1.0), (UNSIGNED, 0.0)):
        codes = fmt.codes()
        assert codes.size == 256 and np.all(np.diff(codes) >= 0), fmt.name
        assert low <= codes[0] < codes[1] and codes[-1] == 1.0 and 0.0 in codes, fmt.name
    assert np.count_nonzero(SIGNED.codes() < 0) == 127


@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=700), st.sampled_from([SIGNED, UNSIGNED]))
def test_each_element_is_stored_as_the_code_nearest_its_scaled_value(values, fmt):
    x = np.abs(values) if fmt is UNSIGNED else np.asarray(values)
    codes, absmax = fmt.quantize(x)
    assert absmax.size == -(-x.size // fmt.block_size)
    scale = np.repeat(absmax, fmt.block_size)[:x.size]
    scaled = np.divide(x, scale, out=np.zeros_like(x), where=scale > 0)
    distance = np.abs(scaled[:, None] - fmt.codes()[None, :])
    chosen = distance[np.arange(x.size), codes]
    assert np.all(chosen <= distance.min(axis=1)), (x, codes)


def test_a_tensor_below_the_formats_size_keeps_its_state_in_float32():
    x = np.linspace(-1, 1, SIGNED.min_size - 1) / 3
    assert np.array_equal(SIGNED.stored(x), x.astype(np.float32).astype(np.float64))
    x = np.linspace(-1, 1, SIGNED.min_size) / 3
    assert len(np.unique(SIGNED.stored(x))) <= 256 * (x.size // SIGNED.block_size)


def test_a_whole_state_format_expands_to_its_fields_and_an_unknown_one_is_one_line():
    assert parse_state_dtypes(["bitsandbytes-8bit"]) == {"exp_avg": "bitsandbytes-dynamic-signed",
                                                         "exp_avg_sq": "bitsandbytes-dynamic-unsigned"}
    with pytest.raises(adapters.SetupError, match="is not FIELD=DTYPE or a state format"):
        parse_state_dtypes(["bitsandbytes-4bit"])
    with pytest.raises(adapters.SetupError, match=r"'int8' is not one of float64, .*bitsandbytes-dynamic-signed"):
        parse_state_dtypes(["exp_avg=int8"])
    with pytest.raises(adapters.SetupError, match="exp_avg is given twice"):
        parse_state_dtypes(["bitsandbytes-8bit", "exp_avg=bfloat16"])


@needs("torch")
def test_a_faithful_8bit_kernel_conforms_to_its_format_and_the_certificate_says_so(tmp_path, capsys):
    assert main([*_certify("Blockwise8bitAdamW", "--state-dtype", "bitsandbytes-8bit"),
                 "--out", str(tmp_path)]) == 0, capsys.readouterr().out
    (cert,) = json.loads((tmp_path / "certificate.json").read_text())["certificates"]
    assert ("state stored as declared: exp_avg in bitsandbytes-dynamic-signed, exp_avg_sq in "
            "bitsandbytes-dynamic-unsigned") in cert["notes"], cert["notes"]


@needs("torch")
def test_the_advised_format_certifies_it(capsys):
    assert main(_certify("Blockwise8bitAdamW", "--state-dtype", "bitsandbytes-8bit")) == 0, capsys.readouterr().out


@needs("torch")
@pytest.mark.parametrize(("impl", "named"), [
    ("Block128", "exp_avg of tensor 0 at step 1: blocks of 128 elements where bitsandbytes-dynamic-signed has 256"),
    ("SignedSecondMoment", "exp_avg_sq of tensor 0 at step 1: its codebook is not bitsandbytes-dynamic-unsigned's: "
                           "it is bitsandbytes-dynamic-signed's"),
    ("StaleScale", "the scale is not the absolute maximum of the state it scales"),
    ("CodesBeforeUpdate", "it stores the state this step started from: the state was quantized before the update"),
])
def test_each_defect_of_the_format_is_rejected_by_name(impl, named, capsys):
    assert main(_certify(impl, "--state-dtype", "bitsandbytes-8bit")) == 1
    out = capsys.readouterr().out
    assert "failed state at step" in out and named in out, out


@needs("torch")
@pytest.mark.parametrize(("impl", "named"), [
    ("CodesBeyondItsCodebook", "exp_avg of tensor 0 at step 1: code 2"),
    ("ScalesOfNoBlock", "exp_avg of tensor 0 at step 1: blocks of 0 elements"),
])
def test_a_state_that_cannot_be_decoded_is_rejected_in_one_line_before_any_is_dequantized(impl, named, capsys):
    assert main(_certify(impl, "--state-dtype", "bitsandbytes-8bit")) == 1
    out = capsys.readouterr().out
    assert "failed state at step 1" in out and named in out and "Traceback" not in out, out


@needs("torch")
def test_a_format_declared_for_a_kernel_whose_codes_cannot_be_read_is_a_usage_error(capsys):
    argv = ["certify", "--framework", "torch", "--impl", "torch.optim.AdamW[foreach]", "--dtype", "float32",
            "--examples", "5", "--state-dtype", "bitsandbytes-8bit"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "declared quantized" in err and "declare only what it shows" in err and len(err.strip().splitlines()) == 1, err


@needs("torch")
def test_identify_names_the_convention_of_a_faithful_kernel_and_the_state_defect_of_another(capsys):
    identify = ["identify", "--framework", "torch", "--examples", "5", "--state-dtype", "bitsandbytes-8bit",
                "--impl"]
    assert main([*identify, f"{PLUGIN}:Blockwise8bitAdamW"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "torch"
    assert main([*identify, f"{PLUGIN}:StaleScale"]) == 1
    out = capsys.readouterr().out
    assert "no convention fits: its state is not held in its declared format: exp_avg of tensor 0" in out, out
    assert out.strip().splitlines()[-1] == "unfit"
    assert main([*identify[:-3], "--impl", f"{PLUGIN}:Blockwise8bitAdamW"]) == 0  # no format declared
    out = capsys.readouterr().out
    assert "state: bitsandbytes-8bit (the format it stores its state in" in out, out
    assert out.strip().splitlines()[-1] == "torch"


@needs("torch")
def test_the_fp8_codebook_is_every_finite_float8_e4m3fn_value():
    import torch

    patterns = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float().numpy().astype(np.float64)
    assert spec.quantized.FORMATS["torchao-fp8"].codebook == tuple(np.unique(patterns[np.isfinite(patterns)]))


def test_the_4bit_maps_are_16_codes_and_the_unsigned_one_has_no_zero():
    signed, unsigned = (spec.quantized.FORMATS[f"torchao-4bit-{kind}"] for kind in ("signed", "unsigned"))
    assert len(signed.codebook) == len(unsigned.codebook) == 16
    assert 0.0 in signed.codebook and 0.0 not in unsigned.codebook and unsigned.codebook[0] == 1 / 16


def test_a_format_of_whole_blocks_leaves_a_tensor_of_a_partial_block_in_float32():
    fmt = spec.quantized.FORMATS["torchao-8bit-signed"]
    assert fmt.applies_to(4096) and not fmt.applies_to(4096 + 1) and not fmt.applies_to(4096 - 256)
    assert SIGNED.applies_to(4096 + 1)


@needs("torch")
def test_undeclared_a_kernel_of_a_known_format_is_told_its_format(capsys):
    assert main(_certify("Blockwise8bitAdamW")) == 1
    out = capsys.readouterr().out
    assert "most likely: the subject stores its state in one of the formats bitsandbytes-8bit, torchao-8bit" in out
    assert "certify it in that set-up: --state-dtype bitsandbytes-8bit" in out, out


@given(st.lists(st.floats(-1, 1), min_size=1, max_size=64))
def test_flash_adamw_codes_round_in_its_companded_space(values):
    """pytorch-optimizer's quantize_state: round(127 * 2x/(1+|x|)) for the first moment, round(255 sqrt(v)) for
    the second, each of the value over its group's scale."""
    x = np.asarray(values)
    softsign = spec.quantized.FORMATS["flash-adamw-softsign"]
    expected = np.round(127 * 2 * x / (1 + np.abs(x)))
    near_tie = np.abs(np.abs(127 * 2 * x / (1 + np.abs(x))) % 1 - 0.5) < 1e-9
    chosen = softsign.nearest(x) - 127
    assert np.all((chosen == expected) | near_tie), (x, chosen, expected)
    root = spec.quantized.FORMATS["flash-adamw-sqrt"]
    v = x**2
    expected = np.round(255 * np.sqrt(v))
    near_tie = np.abs((255 * np.sqrt(v)) % 1 - 0.5) < 1e-9
    assert np.all((root.nearest(v) == expected) | near_tie)


@needs("torch")
def test_a_quantized_format_across_ranks_is_refused_before_any_work(capsys):
    argv = ["certify", "--framework", "torch", "--impl", f"{PLUGIN}:Blockwise8bitAdamW", "--sharding", "ddp",
            "--state-dtype", "bitsandbytes-8bit"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "a quantized state format is not checked across ranks yet" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("size", [1, 255, 256, 257, 4096 + 31])
def test_each_blocks_largest_element_is_the_blocks_own_the_last_one_partial(size):
    fmt = spec.quantized.FORMATS["bitsandbytes-dynamic-unsigned"]
    x = np.abs(np.random.default_rng(size).normal(size=size))
    expected = [x[k:k + fmt.block_size].max() for k in range(0, size, fmt.block_size)]
    assert fmt.block_max(x).tolist() == expected
