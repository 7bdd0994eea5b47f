"""Every form of torch's AdamW, and Adam, under each sharding strategy at world sizes 2 and 4, and optax's AdamW
on a four-device mesh, whose state Orbax saves and restores on a mesh of another size (``nox -s sharded``).

The subjects conform to torch's preset as they do in one process: FSDP2's
DTensor shards (uneven, empty, 0-d), ZeRO-1's partitioned state with its
consolidated checkpoint, and DDP's replicas, each checked rank by rank.
The fused SGD and Adagrad, declared not shardable under FSDP2, still cannot
step DTensor shards.
"""

from __future__ import annotations

import re

import pytest

from optspec.conformance.cli import main
from tests.conftest import needs

pytestmark = needs("torch")

#: One command each, so that the ranks started for the first subject serve the others.
COMMANDS = (("torch.optim.AdamW", 3), ("torch.optim.Adam[foreach]", 1))


@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("sharding", ["fsdp2", "zero1", "ddp"])
def test_torch_adamw_in_every_form_and_adam_conform_sharded(capsys, sharding, world_size):
    verdicts = {}
    for impl, count in COMMANDS:
        code = main(["certify", "--framework", "torch", "--impl", impl, "--sharding", sharding,
                     "--world-size", str(world_size), "--examples", "3"])
        out = capsys.readouterr().out
        verdicts[impl] = (code, count, re.findall(r"^(?:CONFORMS|DOES NOT CONFORM).*$", out, re.M))
    expected = f"({sharding}, world size {world_size}) vs torch"
    assert all(code == 0 and len(lines) == count and all(expected in line for line in lines)
               for code, count, lines in verdicts.values()), verdicts
    assert any("AdamW[fused]" in line for line in verdicts["torch.optim.AdamW"][2]), verdicts


@needs("jax")
def test_optax_adamw_conforms_on_a_four_device_mesh(capsys):
    code = main(["certify", "--framework", "jax", "--impl", "optax.adamw", "--world-size", "4", "--examples", "10"])
    out = capsys.readouterr().out
    assert code == 0 and "CONFORMS: optax.adamw (mesh, world size 4) vs optax" in out, out


@pytest.mark.parametrize("impl, kernel", [("torch.optim.SGD[fused]", "_fused_sgd_"),
                                          ("torch.optim.Adagrad[fused]", "_fused_adagrad_")])
def test_torch_still_cannot_step_the_fused_kernels_declared_not_shardable_on_dtensor_shards(impl, kernel):
    """The evidence behind their ``not_shardable``: run anyway, the step raises DTensor's refusal.  Should torch
    register a sharding strategy for the kernel, this fails, and the declaration is to be dropped."""
    import dataclasses

    import numpy as np

    from optspec import adapters
    from optspec.adapters import ranks

    (subject,) = adapters.resolve_subject("torch", impl)
    assert "fsdp2" in subject.not_shardable
    sharding = adapters.Sharding("fsdp2", 2)
    try:
        with adapters.sharded(dataclasses.replace(subject, not_shardable={}), "torch", impl, None,
                              sharding) as on_ranks, pytest.raises(adapters.SubjectError) as raised:
            adapters.drive(on_ranks, [np.arange(4.0)], [np.ones((1, 4))], [1e-3], {}, dtype="float64",
                           time_limit_s=60)
    finally:
        ranks.stop_ranks()
    assert f"NotImplementedError: Operator aten.{kernel}.default does not have a sharding strategy registered" \
        in str(raised.value), raised.value


@needs("jax")
@pytest.mark.parametrize("saved_on, resumed_on", [(2, 4), (4, 2)])
def test_optax_state_saved_with_orbax_resumes_on_a_mesh_of_another_size_as_if_it_never_stopped(
        saved_on, resumed_on):
    from optspec import adapters, spec
    from optspec.adapters import ranks
    from optspec.conformance.cases import sharded_cases
    from optspec.conformance.check import run_case

    (subject,) = adapters.resolve_subject("jax", "optax.adamw")
    try:
        with adapters.sharded(subject, "jax", None, None, adapters.Sharding("mesh", saved_on)) as on_mesh:
            (case,) = [c for c in sharded_cases(on_mesh.sharding) if c.resume_world_size is not None]
            assert (case.restore_at, case.resume_world_size) == (4, resumed_on)
            got = run_case(on_mesh, case, convention=spec.resolve("optax"), dtype="float64", time_limit_s=120)
    finally:
        ranks.stop_ranks()
    assert got.passed, got.failure
