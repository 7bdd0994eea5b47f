"""Batched driving: many cases in one subject give each case's own trajectory."""

from __future__ import annotations

import numpy as np
import pytest

from optspec import adapters, spec
from optspec.adapters.batching import Member, Packing, batch_key
from optspec.conformance import tolerance
from optspec.conformance.batched import run_batched
from optspec.conformance.certify import drawn_cases
from optspec.conformance.check import prepared
from optspec.conformance.expectation import Expectation
from optspec.conformance.tolerance_inputs import update_magnitude
from tests.conftest import needs


def test_packing_round_trips_and_pads_with_zero():
    shapes = [[(2, 3), ()], [(4,)], [(1,), (2, 2), (3,)]]
    packing = Packing(shapes, align=8)
    tensors = [np.arange(np.prod(s), dtype=float).reshape(s) + 10 * i
               for i, s in enumerate(s for member in shapes for s in member)]
    slots = packing.pack(tensors)
    assert len(slots) == 3 and all(s.shape == (packing.length,) for s in slots)
    assert packing.length % 8 == 0 and packing.length >= 6 + 4 + 4
    assert all(np.array_equal(a, b) for a, b in zip(packing.unpack(slots), tensors))
    assert slots[1][packing.offsets[1]:packing.offsets[2]].tolist() == [0.0] * 4
    assert packing.per_element([1.0, 2.0, 3.0])[:14].tolist() == [1.0] * 6 + [2.0] * 4 + [3.0] * 4


def batchable(framework, names):
    if not adapters.is_available(framework):
        return []
    return [pytest.param(framework, n, id=n) for n in names]


SUBJECTS = (batchable("torch", ["torch.optim.AdamW[for-loop]", "torch.optim.AdamW[fused]", "torch.optim.SGD[foreach]"])
            + batchable("jax", ["optax.adamw", "optax.rmsprop"])
            + batchable("tensorflow", ["keras.optimizers.AdamW", "keras.optimizers.Adam"]))


@pytest.mark.parametrize(("framework", "name"), SUBJECTS)
def test_a_batch_gives_each_member_its_own_trajectory(framework, name):
    (subject,) = adapters.resolve_subject(framework, name)
    dtype = "float32" if framework == "tensorflow" else "float64"
    ready = [prepared(subject, case, dtype) for case in drawn_cases(subject, dtype, 12, seed_value=3)]
    # one batch holds members of one batch key (equal flags), as conformance.batched groups them
    key = (ready[0][0].steps, batch_key(ready[0][0].hyper))
    ready = [r for r in ready if r[0].restore_at is None and (r[0].steps, batch_key(r[0].hyper)) == key]
    assert len(ready) >= 2, "the draw must give a batch of at least two members"
    members = [Member(p0, case.hyper, case.lrs) for case, p0, _ in ready]
    together = adapters.drive_batch(subject, members, [g for _, _, g in ready], dtype=dtype)
    convention = Expectation.of(subject).convention
    for (case, p0, grads), batched in zip(ready, together):
        alone = adapters.drive(subject, p0, grads, case.lrs, case.hyper, dtype=dtype)
        betas = tuple(case.hyper["betas"]) if "betas" in case.hyper else None
        for theta0, g, a, b in zip(p0, grads, alone.params, batched.params):
            # both are the subject's own arithmetic: each within the trajectory bound of the exact run
            a = a.astype(np.float64)
            parts = update_magnitude(subject.rule, convention, case, g, np.concatenate([theta0[None], a[:-1]]))
            bound = 2 * tolerance.trajectory_bounds(theta0, a, dtype, betas, update=parts)
            assert np.all(np.abs(a - b) <= bound), (case.describe(), np.max(np.abs(a - b) / bound))


@needs("torch")
@needs("tensorflow")
def test_a_subject_that_cannot_be_batched_is_referred_to_one_by_one():
    """Keras SGD branches on ``momentum != 0`` in Python, so a momentum vector cannot drive it."""
    (subject,) = adapters.resolve_subject("tensorflow", "keras.optimizers.SGD")
    cases = drawn_cases(subject, "float32", 10, seed_value=0)
    assert run_batched(subject, cases, convention=None, dtype="float32", device=None, time_limit_s=30) is None


@needs("torch")
def test_batch_screen_passes_a_conforming_subject_and_refers_a_defective_one():
    plugin = "tests.plugins.torch_subjects"
    (good,) = adapters.resolve_subject("torch", f"{plugin}:ReferenceAdamW")
    (bad,) = adapters.resolve_subject("torch", f"{plugin}:AdamW_decay_unscaled")
    cases = drawn_cases(good, "float64", 40, seed_value=0)
    results = run_batched(good, cases, convention=spec.resolve("torch"), dtype="float64", device=None, time_limit_s=30)
    assert results is not None and len(results) == len(cases) and all(r.passed for r in results)
    assert run_batched(bad, cases, convention=spec.resolve("torch"), dtype="float64", device=None, time_limit_s=30) is None


@needs("torch")
def test_a_failure_found_in_a_batch_is_shrunk_one_case_at_a_time(monkeypatch):
    """The named cases are skipped here so that only the hypothesis cases (batched first) can fail."""
    from optspec.conformance import certify as certify_module

    (bad,) = adapters.resolve_subject("torch", "tests.plugins.torch_subjects:AdamW_decay_unscaled")
    monkeypatch.setattr(certify_module, "named_cases_for", lambda subject, dtype=None: [])
    cert = certify_module.certify(bad, convention="torch", examples=40)
    # Under a constant lr, decay scaled by lr_t/lr_0 is decay scaled by nothing: either names the knob.
    assert not cert.conforms and "decay_scale=" in cert.failure.hint, cert.failure.hint
    assert cert.failure.case.startswith("random:")
