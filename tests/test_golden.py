"""Golden files: byte-identical regeneration, verify catches every tampering, atomicity, replay."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import tools.golden
from optspec import adapters, spec
from optspec.conformance import golden
from optspec.conformance.certify import certify
from optspec.conformance.expectation import Expectation
from tests.conftest import needs
from tools.golden import regenerate


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    directory = tmp_path_factory.mktemp("golden") / "golden"
    regenerate(directory)
    return directory


@pytest.fixture
def copy(generated, tmp_path):
    target = tmp_path / "golden"
    shutil.copytree(generated, target)
    return target


def test_regeneration_is_byte_identical(generated, tmp_path):
    again = tmp_path / "again"
    regenerate(again)
    first = {p.relative_to(generated): p.read_bytes() for p in generated.rglob("*") if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first == second


def test_committed_files_verify():
    assert golden.verify() == []


def test_enough_files_and_small(generated):
    files = list(generated.rglob("*.npz"))
    assert len(files) >= golden.MIN_FILES
    assert sum(f.stat().st_size for f in files) < 20e6


def test_flipped_byte(copy):
    path = copy / "adamw" / "defaults.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert golden.verify(copy) == [f"{path}: tampered with (sha256 differs from the manifest)"]


def test_deleted_file(copy):
    path = copy / "sgd" / "sgd-nesterov.npz"
    path.unlink()
    assert golden.verify(copy) == [f"{path}: missing"]


def test_extra_file(copy):
    shutil.copy(copy / "adamw" / "defaults.npz", copy / "adamw" / "stray.npz")
    assert golden.verify(copy) == [f"{copy / 'adamw' / 'stray.npz'}: extra file not in the manifest"]


def test_edited_manifest_entry(copy):
    manifest = json.loads((copy / "MANIFEST.json").read_text())
    manifest["files"]["adamw/defaults.npz"]["hyperparameters"] = {"weight_decay": 0.5}
    (copy / "MANIFEST.json").write_text(json.dumps(manifest))
    (problem,) = golden.verify(copy)
    assert "manifest entry edited (hyperparameters differ from the scenario)" in problem


def test_other_spec_version(copy):
    manifest = json.loads((copy / "MANIFEST.json").read_text())
    manifest["spec_version"] = "0.9.0"
    (copy / "MANIFEST.json").write_text(json.dumps(manifest))
    (problem,) = golden.verify(copy)
    assert "from another spec version ('0.9.0'" in problem


def test_too_few_files_never_pass(copy):
    manifest = json.loads((copy / "MANIFEST.json").read_text())
    manifest["files"] = dict(list(manifest["files"].items())[:3])
    (copy / "MANIFEST.json").write_text(json.dumps(manifest))
    assert any("fewer than the minimum" in p for p in golden.verify(copy))


def test_interrupted_regeneration_leaves_files_intact(copy, monkeypatch):
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tools.golden, "write_text", interrupted)
    with pytest.raises(KeyboardInterrupt):
        regenerate(copy)
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before
    assert not list(copy.parent.glob(".golden.new.*"))


def test_pickled_file_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(golden.GoldenError, match="holds a pickled object"):
        golden.load(path)


def test_stored_trajectory_is_the_spec():
    scenario = next(s for s in golden.scenarios() if s["name"] == "keras-defaults")
    arrays = golden.load(golden.DEFAULT_DIR / "adamw" / "keras-defaults.npz")
    again = spec.run("adamw", arrays["param0_0"], arrays["grads_0"], lr=list(arrays["lrs"]),
                     convention="keras", **scenario["hyper"])
    np.testing.assert_array_equal(again[arrays["steps"] - 1], arrays["params_0"])


def replay_subjects():
    out = []
    for framework in ("torch", "jax", "numpy"):
        if adapters.is_available(framework):
            out += [s for s in adapters.subjects(framework) if s.rule in ("adam", "adamw", "sgd")
                    and (framework != "torch" or "for-loop" in s.name or "fused" in s.name)]
    return out


@pytest.mark.parametrize("subject", replay_subjects(), ids=lambda s: s.name)
def test_builtin_subjects_pass_golden_replay(subject):
    results = [outcome for outcome, _ in golden.replay(subject, Expectation.of(subject).convention,
                                                       dtype="float64", device=None)]
    assert all(r.passed for r in results if r.applicable), [r.detail for r in results if r.passed is False]
    for outcome in results:
        assert outcome.applicable or outcome.detail.startswith("not applicable: it is recorded with"), outcome


@needs("torch")
@pytest.mark.parametrize("deviation", ["epsilon_hat", "decay_after", "no_bias_correction"])
def test_defective_subjects_fail_golden_replay(deviation):
    (subject,) = adapters.resolve_subject("torch", f"tests.plugins.torch_subjects:AdamW_{deviation}")
    results = [outcome for outcome, _ in golden.replay(subject, spec.resolve("torch"), dtype="float64", device=None)]
    assert results and not all(r.passed for r in results)


@needs("torch")
def test_certificate_lists_golden_scenarios():
    (subject,) = adapters.resolve_subject("torch", "torch.optim.AdamW[fused]")
    cert = certify(subject, examples=2, golden_dir=str(golden.DEFAULT_DIR))
    assert cert.conforms and {g.scenario for g in cert.golden} >= {"defaults", "long", "amsgrad"}


@needs("tensorflow")
@pytest.mark.parametrize("name", ["keras.optimizers.AdamW"])
def test_keras_passes_golden_replay_in_float32(name):
    """In float64 Keras-TF drifts by about 1e-8 per step (tensorflow#35938), so replay is in float32."""
    (subject,) = adapters.resolve_subject("tensorflow", name)
    results = [outcome for outcome, _ in golden.replay(subject, Expectation.of(subject).convention,
                                                       dtype="float32", device=None)]
    assert {r.scenario for r in results} == {"keras-defaults", "keras-cosine"}
    assert all(r.passed for r in results if r.applicable), [r.detail for r in results if r.passed is False]
    for outcome in results:
        assert outcome.applicable or outcome.detail.startswith("not applicable: it is recorded with"), outcome
