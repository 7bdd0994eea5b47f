"""A golden replay's free run kept on disk: read back, it gives the checks bit for bit what computing it gives."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from optspec import adapters, spec
from optspec.adapters.caches import CACHE_VARIABLE
from optspec.conformance import free_run, golden
from optspec.conformance.cases import Case
from optspec.conformance.check import check_trajectory
from optspec.conformance.expectation import Expectation
from optspec.conformance.reference import initial_state, prepared, reference, resynced


def _rules_and_presets() -> list[tuple[str, str | None]]:
    return [(name, preset) for name, rule in spec.RULES.items()
            for preset in (rule.presets or {None: None})]


def _case(seed: int, steps: int = 12) -> Case:
    rng = np.random.default_rng(seed)
    return Case([rng.normal(size=(3, 2))], [rng.normal(size=(steps, 3, 2))], list(rng.uniform(1e-3, 1e-1, steps)),
                {"weight_decay": 0.1})


@pytest.mark.parametrize(("rule", "preset"), _rules_and_presets())
def test_the_resynced_steps_from_the_free_runs_states_are_the_stacked_steps_bit_for_bit(rule, preset):
    case = _case(3)
    hyper = {k: v for k, v in case.hyper.items() if k in spec.get_rule(rule).defaults}
    case = dataclasses.replace(case, hyper=hyper)
    convention = spec.get_rule(rule).resolve(preset) if preset else None
    theta0, grads = case.params0[0], case.grads[0]
    subject_traj = reference(rule, convention, case, theta0 * (1 + 1e-6), grads)[0]
    states: list = []
    free, stacked = reference(rule, convention, case, theta0, grads, subject_traj, states=states)
    alone, _ = reference(rule, convention, case, theta0, grads)
    assert free.tobytes() == alone.tobytes()
    assert resynced(rule, convention, case, theta0, grads, subject_traj, states).tobytes() == stacked.tobytes()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path))
    return tmp_path / "reference"


def test_a_stored_free_run_reads_back_whole(cache: Path):
    case = _case(4)
    convention = spec.resolve("torch")
    theta0, grads = case.params0[0], case.grads[0]
    states: list = []
    free, _ = reference("adamw", convention, case, theta0, grads, states=states)
    run = free_run.FreeRun(free, states, np.abs(free))
    name = free_run.key("adamw", convention, case, theta0, grads, {})
    free_run.save(name, run)
    back = free_run.load(name, initial_state("adamw", convention, case, theta0))
    assert back is not None
    assert back.free.tobytes() == free.tobytes() and back.magnitude.tobytes() == run.magnitude.tobytes()
    for read, kept in zip(back.states, states, strict=True):
        assert type(read) is type(kept) and type(read.step) is int and read.step == kept.step
        for field in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            assert getattr(read, field).tobytes() == getattr(kept, field).tobytes()


def test_a_free_run_is_named_by_all_it_depends_on():
    case = _case(5)
    theta0, grads = case.params0[0], case.grads[0]
    torch_preset = spec.resolve("torch")
    name = free_run.key("adamw", torch_preset, case, theta0, grads, {})
    others = [
        free_run.key("adam", torch_preset, case, theta0, grads, {}),
        free_run.key("adamw", spec.resolve("optax"), case, theta0, grads, {}),
        free_run.key("adamw", torch_preset, dataclasses.replace(case, hyper={"weight_decay": 0.2}), theta0, grads, {}),
        free_run.key("adamw", torch_preset, dataclasses.replace(case, lrs=[*case.lrs[:-1], 0.5]), theta0, grads, {}),
        free_run.key("adamw", torch_preset, case, np.nextafter(theta0, 1), grads, {}),
        free_run.key("adamw", torch_preset, case, theta0, grads, {"exp_avg": "bfloat16"}),
    ]
    assert len({name, *others}) == len(others) + 1


def test_a_damaged_or_foreign_file_is_not_read(cache: Path):
    case = _case(6)
    convention = spec.resolve("torch")
    theta0, grads = case.params0[0], case.grads[0]
    initial = initial_state("adamw", convention, case, theta0)
    states: list = []
    free, _ = reference("adamw", convention, case, theta0, grads, states=states)
    name = free_run.key("adamw", convention, case, theta0, grads, {})
    free_run.save(name, free_run.FreeRun(free, states, free))
    (cache / f"{name}.npz").write_bytes((cache / f"{name}.npz").read_bytes()[:200])
    assert free_run.load(name, initial) is None
    other = free_run.key("adamw", convention, case, theta0 + 1, grads, {})
    free_run.save(other, free_run.FreeRun(free, states, free))
    (cache / f"{other}.npz").rename(cache / f"{name}.npz")
    assert free_run.load(name, initial) is None, "a file stored under another key"


def test_off_keeps_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(CACHE_VARIABLE, "off")
    case = _case(7)
    theta0, grads = case.params0[0], case.grads[0]
    states: list = []
    free, _ = reference("adamw", spec.resolve("torch"), case, theta0, grads, states=states)
    free_run.save("x", free_run.FreeRun(free, states, free))
    assert free_run.load("x", states[0]) is None
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("perturbed", [False, True], ids=["conforming", "perturbed"])
def test_a_golden_check_from_the_kept_run_is_the_computed_check(cache: Path, perturbed: bool):
    (subject,) = adapters.resolve_subject("numpy", "spec.adamw")
    convention = Expectation.of(subject, None).convention
    (scenario,) = [s for s in golden.scenarios() if s["name"] == "warmup" and s["rule"] == "adamw"]
    arrays = golden.load(golden.DEFAULT_DIR / "adamw" / "warmup.npz")
    case = Case([arrays["param0_0"]], [arrays["grads_0"]], [float(x) for x in arrays["lrs"]],
                dict(scenario.get("hyper", {})), label="golden:warmup")
    case, params0, grads = prepared(subject, case, "float64")
    got = adapters.drive(subject, params0, grads, case.lrs, case.hyper, dtype="float64")
    if perturbed:
        got.params[0][40:] *= 1 + 1e-9
    stored = (arrays["steps"], [arrays["params_0"]])

    def checked():
        return check_trajectory(subject, case, params0, grads, got, convention=convention, dtype="float64",
                                stored=stored, stop_at_failure=False, explain_failure=False)

    computed = checked()
    assert len(list(cache.glob("*.npz"))) == 1, "the first check stores its free run"
    read_back = checked()
    assert (read_back.passed, read_back.worst, read_back.worst_ulps, read_back.failure) == (
        computed.passed, computed.worst, computed.worst_ulps, computed.failure)
    assert computed.passed is not perturbed
