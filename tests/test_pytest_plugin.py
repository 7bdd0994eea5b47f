"""The pytest plugin: the options and verdicts of ``certify``, inside a vendor's own pytest run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import needs

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "tests.plugins.torch_subjects"


def _pytest(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_empty.py").write_text("")
    return subprocess.run([sys.executable, "-m", "pytest", str(tmp_path), "-q", "-p", "no:cacheprovider", *options],
                          capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)


@needs("tensorflow")
def test_the_plugin_certifies_keras_adamw_in_float32_with_golden_replay(tmp_path):
    done = _pytest(tmp_path, "--optspec-framework", "tensorflow", "--optspec-impl", "keras.optimizers.AdamW",
                   "--optspec-dtype", "float32", "--optspec-examples", "10", "-rA")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "PASSED" in done.stdout and "optspec[keras.optimizers.AdamW]" in done.stdout


@needs("torch")
def test_a_failure_reads_like_the_cli_without_the_plugins_traceback(tmp_path):
    done = _pytest(tmp_path, "--optspec-framework", "torch", "--optspec-impl", f"{PLUGIN}:AdamW_epsilon_hat",
                   "--optspec-examples", "3")
    assert done.returncode == 1, done.stdout[-3000:]
    assert "DOES NOT CONFORM" in done.stdout and "epsilon=hat" in done.stdout
    assert "reproduce: optspec certify" in done.stdout
    assert "pytest_plugin.py" not in done.stdout and "Traceback" not in done.stdout


@needs("torch")
def test_a_bad_impl_is_a_usage_error_not_an_internal_error(tmp_path):
    done = _pytest(tmp_path, "--optspec-framework", "torch", "--optspec-impl", "nosuchpkg.optim:AdamW")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "INTERNALERROR" not in done.stdout + done.stderr
    assert "does not import" in done.stderr


@needs("torch")
def test_the_plugin_certifies_across_ranks_and_names_the_rank_of_a_defect_only_sharding_shows(tmp_path):
    done = _pytest(tmp_path, "--optspec-framework", "torch",
                   "--optspec-impl", "tests.plugins.sharded_subjects:LaggingStepAdamW",
                   "--optspec-sharding", "fsdp2", "--optspec-world-size", "2", "--optspec-examples", "3")
    assert done.returncode == 1, done.stdout[-3000:]
    assert "(fsdp2, world size 2)" in done.stdout and "rank 1's shard of tensor 0" in done.stdout
    assert "--sharding fsdp2 --world-size 2" in done.stdout  # the reproduce line runs it sharded again


#: A defective plugin of each framework that no other test process can import beside the rest: its preset, the
#: knob its hint names.
DEFECTS = [
    pytest.param("tests.plugins.mlx_subjects:AdamWDecayAfter", "bert", "decay_point=after", marks=needs("mlx"),
                 id="mlx"),
    pytest.param("tests.plugins.keras_subjects:AdamWDecayAfter", "keras", "decay_point=after", marks=needs("keras"),
                 id="keras"),
    pytest.param("tests.plugins.tf_keras_subjects:AdamWDecayAfter", "keras", "decay_point=after",
                 marks=needs("tf_keras"), id="tf_keras"),
    pytest.param("tests.plugins.paddle_subjects:AdamWAsL2", "torch", "weight decay applied as an L2 term",
                 marks=needs("paddle"), id="paddle"),
    pytest.param("tests.plugins.mindspore_subjects:AdamWDecayWithoutLr", "torch", "decay_scale=none",
                 marks=needs("mindspore"), id="mindspore"),
]


@pytest.mark.parametrize(("impl", "preset", "knob"), DEFECTS)
def test_the_framework_of_a_plugin_is_inferred_and_a_defect_is_rejected(tmp_path, impl, preset, knob):
    done = _pytest(tmp_path, "--optspec-impl", impl, "--optspec-examples", "3")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"DOES NOT CONFORM: {impl} vs {preset} (float32)" in done.stdout, done.stdout[-3000:]
    assert knob in done.stdout and "Traceback" not in done.stdout, done.stdout[-3000:]


def test_a_builtin_name_without_a_framework_is_a_usage_error_that_asks_for_one(tmp_path):
    done = _pytest(tmp_path, "--optspec-impl", "spec.adamw")
    assert done.returncode == 4 and "add --optspec-framework" in done.stderr, done.stdout + done.stderr
