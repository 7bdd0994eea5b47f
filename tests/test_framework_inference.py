"""``--framework`` inferred from a plugin: from its bases' modules, its own module, or what it returns."""

from __future__ import annotations

import pytest

from optspec import adapters
from optspec.conformance.cli import main
from tests.conftest import needs

INFERRED = [
    pytest.param("torch.optim:AdamW", "torch", marks=needs("torch"), id="a torch class"),
    pytest.param("tests.plugins.torch_subjects:ReferenceAdamW", "torch", marks=needs("torch"),
                 id="a subclass in another package"),
    pytest.param("optax:adamw", "jax", marks=needs("jax"), id="an optax factory"),
    pytest.param("tests.plugins.jax_subjects:adamw_torch_order", "jax", marks=needs("jax"),
                 id="a factory in another package, by what it returns"),
    pytest.param("tests.plugins.keras_subjects:PlainAdamW", "keras", marks=needs("keras"),
                 id="a Keras subclass"),
    pytest.param("tf_keras.optimizers.legacy:Adam", "tf_keras", marks=needs("tf_keras"), id="a tf_keras class"),
    pytest.param("tests.plugins.tf_keras_subjects:AdamWDecayAfter", "tf_keras", marks=needs("tf_keras"),
                 id="a tf_keras subclass"),
    pytest.param("mlx.optimizers:AdamW[bias_correction=True]", "mlx", marks=needs("mlx"),
                 id="an MLX class with options"),
    pytest.param("paddle.optimizer:AdamW", "paddle", marks=needs("paddle"), id="a paddle class"),
]


@pytest.mark.parametrize(("target", "framework"), INFERRED)
def test_the_framework_is_inferred_from_the_object(target, framework):
    assert adapters.infer_framework(target) == framework


@needs("torch")
def test_a_third_party_optimizer_is_inferred_from_its_bases():
    pytest.importorskip("transformers")
    assert adapters.infer_framework("transformers.optimization:AdamW") == "torch"


def test_an_object_of_no_framework_asks_for_the_flag_in_one_line(capsys):
    code = main(["certify", "--impl", "os:getcwd"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot tell which framework" in err[0] and "--framework" in err[0], err


def test_a_builtin_name_needs_the_flag(capsys):
    code = main(["identify", "--impl", "spec.adamw"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "identify needs --framework" in err[0], err


@needs("mlx")
def test_certify_and_identify_run_without_the_flag(capsys):
    assert main(["certify", "--impl", "tests.plugins.mlx_subjects:AdamWDecayAfter", "--examples", "3"]) == 1
    assert "DOES NOT CONFORM: tests.plugins.mlx_subjects:AdamWDecayAfter vs bert" in capsys.readouterr().out
    assert main(["identify", "--impl", "mlx.optimizers:AdamW[bias_correction=True]", "--examples", "3"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "torch"


@needs("keras")
@needs("torch")
def test_a_mistaken_framework_is_refused_with_the_one_the_object_belongs_to(capsys):
    code = main(["certify", "--framework", "torch", "--impl", "tests.plugins.keras_subjects:PlainAdamW"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].endswith("; it is a keras optimizer: drop --framework, or pass --framework keras"), err
