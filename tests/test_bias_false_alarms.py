"""No false alarm from the bias test on real bfloat16 kernels, across 20 draws of its cases.

Each kernel steps the :func:`~optspec.conformance.cases.bias_cases` of 20
seeds in bfloat16 with its own preset, and every case must pass.  A correct
kernel fails one direction and sign of one step with probability at most
:math:`e^{-Z^2/2} = 1.5\\times10^{-8}` (Hoeffding, :mod:`optspec.conformance.bias`),
so that over the 80 cases of a kernel, each of a few steps and about ten directions and signs, a failure
here is a defect of the test or of its allowance, not chance (the ``end_to_end`` session runs it).
"""

from __future__ import annotations

import pytest

from optspec import adapters
from optspec.conformance.cases import bias_cases, restricted
from optspec.conformance.check import run_case
from optspec.conformance.expectation import Expectation
from tests.conftest import needs

SEEDS = range(20)

KERNELS = [
    pytest.param("torch", "torch.optim.AdamW[for-loop]", marks=needs("torch")),
    pytest.param("torch", "torch.optim.AdamW[foreach]", marks=needs("torch")),
    pytest.param("torch", "torch.optim.AdamW[fused]", marks=needs("torch")),
    pytest.param("jax", "optax.adamw", marks=needs("jax")),
    pytest.param("keras", "keras.optimizers.AdamW", marks=needs("keras")),
    pytest.param("mlx", "mlx.optimizers.AdamW[bias_correction=True]", marks=needs("mlx")),
]


@pytest.mark.parametrize(("framework", "name"), KERNELS)
def test_a_real_bfloat16_kernel_passes_the_bias_cases_of_every_seed(framework, name):
    (subject,) = [s for s in adapters.subjects(framework) if s.name == name]
    convention = Expectation.of(subject).convention
    failed = []
    for seed in SEEDS:
        for case in bias_cases(seed):
            result = run_case(subject, restricted(case, subject), convention=convention, dtype="bfloat16")
            if not result.passed:
                failed.append(f"{case.label}: {result.failure}")
    assert not failed, f"{name}: {len(failed)} of {4 * len(SEEDS)} cases: " + "; ".join(failed)
