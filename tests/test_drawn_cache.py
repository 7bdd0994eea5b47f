"""Drawn cases kept on disk: a run reads back exactly what it would have drawn, or draws afresh."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from optspec import adapters
from optspec.adapters.caches import CACHE_VARIABLE, cache_folder
from optspec.adapters.numpy.subjects import SpecSession
from optspec.conformance import certify, drawn_cache
from optspec.conformance.batched import run_each
from optspec.conformance.expectation import Expectation


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path))
    certify._drawn.cache_clear()
    yield tmp_path / "drawn"
    certify._drawn.cache_clear()


def _subject():
    (subject,) = adapters.resolve_subject("numpy", "spec.adamw")
    return subject


def _same_cases(left, right) -> None:
    assert len(left) == len(right)
    for index, (a, b) in enumerate(zip(left, right)):
        assert (a.hyper, a.lrs, a.restore_at) == (b.hyper, b.lrs, b.restore_at), f"case {index}"
        assert all(type(x) is type(y) for x, y in zip(a.hyper.values(), b.hyper.values())), f"case {index}"
        for x, y in zip((*a.params0, *a.grads), (*b.params0, *b.grads)):
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), f"case {index}"


def _fresh(monkeypatch: pytest.MonkeyPatch, dtype: str, examples: int, seed_value: int):
    with monkeypatch.context() as patch:
        patch.setenv(CACHE_VARIABLE, "off")
        certify._drawn.cache_clear()
        drawn = certify.drawn_cases(_subject(), dtype, examples, seed_value)
    certify._drawn.cache_clear()
    return drawn


@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_a_cached_draw_reads_back_as_the_draw_itself(cache: Path, monkeypatch: pytest.MonkeyPatch, dtype: str):
    first = certify.drawn_cases(_subject(), dtype, 30, 7)
    assert len(list(cache.glob("*.npz"))) == 1, "the first draw is stored"
    certify._drawn.cache_clear()
    read_back = certify.drawn_cases(_subject(), dtype, 30, 7)
    _same_cases(read_back, first)
    _same_cases(read_back, _fresh(monkeypatch, dtype, 30, 7))


def test_every_input_of_the_draw_names_another_entry():
    base = (frozenset({"betas", "eps"}), "float64", 100, 0)
    others = [(frozenset({"betas"}), "float64", 100, 0), (base[0], "float32", 100, 0),
              (base[0], "float64", 99, 0), (base[0], "float64", 100, 1)]
    keys = {drawn_cache.key(*inputs) for inputs in [base, *others]}
    assert len(keys) == 1 + len(others)
    assert drawn_cache.key(*base) == drawn_cache.key(*base)


def test_an_entry_that_does_not_read_back_is_drawn_afresh_and_replaced(cache: Path, monkeypatch: pytest.MonkeyPatch):
    name = drawn_cache.key(frozenset(_subject().supports), "float64", 12, 3)
    cache.mkdir(parents=True)
    entry = cache / f"{name}.npz"
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array([{"key": name}], dtype=object))  # loading it would need pickle
    entry.write_bytes(buffer.getvalue())
    drawn = certify.drawn_cases(_subject(), "float64", 12, 3)
    _same_cases(drawn, _fresh(monkeypatch, "float64", 12, 3))
    assert drawn_cache.load(name) is not None, "the unreadable entry is replaced by the draw"
    entry.write_bytes(entry.read_bytes()[:200])  # truncated
    assert drawn_cache.load(name) is None


def test_an_entry_stored_under_another_key_is_not_read(cache: Path):
    cases = certify.drawn_cases(_subject(), "float64", 5, 0)
    (stored,) = cache.glob("*.npz")
    stored.rename(cache / "0123456789abcdef0123456789abcdef.npz")
    assert drawn_cache.load("0123456789abcdef0123456789abcdef") is None
    assert len(cases) == 5


def test_off_keeps_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv(CACHE_VARIABLE, "off")
    assert cache_folder("drawn") is None
    certify._drawn.cache_clear()
    try:
        certify.drawn_cases(_subject(), "float64", 5, 0)
    finally:
        certify._drawn.cache_clear()
    assert not list(tmp_path.rglob("*")), "OPTSPEC_CACHE_DIR=off wrote to the cache"
    monkeypatch.delenv(CACHE_VARIABLE)
    assert cache_folder("drawn") == tmp_path / "optspec" / "drawn"


def test_a_folder_that_cannot_be_written_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv(CACHE_VARIABLE, str(blocked))
    certify._drawn.cache_clear()
    try:
        assert len(certify.drawn_cases(_subject(), "float64", 5, 0)) == 5
    finally:
        certify._drawn.cache_clear()


class _WrongOnCubes(SpecSession):
    """The spec's AdamW but for 3-d tensors, whose gradients it scales by 1.01: no named case has one."""

    def step(self, grads, lr, index):
        super().step([g * 1.01 if g.ndim == 3 else g for g in grads], lr, index)


def test_a_subject_without_a_batched_driver_is_screened_and_its_failure_still_shrinks(cache: Path):
    subject = _subject()
    assert subject.build_batch is None
    wrong = dataclasses.replace(subject, name="wrong-on-cubes", build=lambda params0, hyper, lrs, dtype, device:
                                _WrongOnCubes("adamw", params0, hyper, lrs, dtype))
    convention = Expectation.of(subject, None).convention
    cases = certify.drawn_cases(subject, "float64", 100, 0)
    assert run_each(subject, cases, convention=convention, dtype="float64", device=None,
                    time_limit_s=60.0) is not None
    assert run_each(wrong, cases, convention=convention, dtype="float64", device=None, time_limit_s=60.0) is None
    cert = certify.certify(wrong, examples=100)
    assert not cert.passes and cert.failure is not None
    assert cert.failure.case.startswith("random: 1 steps on shapes [(1, 1, 1)]"), (
        f"hypothesis did not shrink the failure to one step on one 1x1x1 tensor: {cert.failure.case}")


FIRST_RUN = textwrap.dedent("""
    import sys
    from optspec import adapters
    adapters.import_framework("jax")
    import jax
    print(jax.config.jax_compilation_cache_dir)
""")


@pytest.mark.skipif(not adapters.is_available("jax"), reason="JAX is not installed")
@pytest.mark.parametrize("setting", ["default", "off", "the user's own"])
def test_jax_keeps_its_compilations_in_optspecs_cache_unless_told_otherwise(tmp_path: Path, setting: str):
    import os

    env = {k: v for k, v in os.environ.items() if k not in (CACHE_VARIABLE, "JAX_COMPILATION_CACHE_DIR")}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    if setting == "off":
        env[CACHE_VARIABLE] = "off"
    elif setting == "the user's own":
        env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / "mine")
    done = subprocess.run([sys.executable, "-c", FIRST_RUN], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = {"default": str(tmp_path / "optspec" / "jax"), "off": "None",
                "the user's own": str(tmp_path / "mine")}[setting]
    assert done.stdout.strip().splitlines()[-1] == expected
