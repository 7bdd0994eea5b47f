"""Certifying optimizers sharded across ranks (``--sharding``, ``--world-size``): one and two ranks of torch,
a two-device JAX mesh.

Each defect of :mod:`tests.plugins.sharded_subjects` conforms on one rank and is
rejected on two, naming the rank and the shard: only a sharded run shows it.
A rank that crashes or hangs ends the run with a verdict naming it, and
leaves no process behind.  The matrix adds a row per strategy (one subject
here).  Every built-in form at world sizes 2 and 4 is ``nox -s sharded``
(:mod:`tests.test_sharded_matrix`).
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from optspec import adapters, spec
from optspec.conformance.cli import main
from optspec.conformance.run import CertifyOptions, validate
from tests.conftest import needs

pytestmark = needs("torch")  # jax's mesh: needs("jax") on its test

PLUGINS = "tests.plugins.sharded_subjects"


def certify(capsys, impl: str, *, world_size: int, sharding: str = "fsdp2", examples: int = 3,
            extra: tuple[str, ...] = ()) -> tuple[int, str]:
    code = main(["certify", "--framework", "torch", "--impl", impl, "--sharding", sharding,
                 "--world-size", str(world_size), "--examples", str(examples), *extra])
    return code, capsys.readouterr().out


def test_fsdp2_steps_torch_adamw_as_the_spec_does_on_two_ranks_and_the_certificate_says_so(capsys, tmp_path):
    code, out = certify(capsys, "torch.optim.AdamW[foreach]", world_size=2, extra=("--out", str(tmp_path)))
    assert code == 0, out
    assert "CONFORMS: torch.optim.AdamW[foreach] (fsdp2, world size 2) vs torch" in out, out
    (record,) = json.loads((tmp_path / "certificate.json").read_text())["certificates"]
    assert record["sharding"] == "fsdp2, world size 2"


@needs("jax")
def test_optax_adamw_steps_under_jit_on_a_two_device_mesh_as_the_spec_does(capsys, tmp_path):
    code = main(["certify", "--framework", "jax", "--impl", "optax.adamw", "--world-size", "2", "--examples", "3",
                 "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "CONFORMS: optax.adamw (mesh, world size 2) vs optax" in out, out


@needs("jax")
def test_a_per_device_defect_conforms_on_one_device_and_is_rejected_on_a_mesh_of_two_naming_the_device(capsys):
    def on_mesh(world_size: int) -> tuple[int, str]:
        code = main(["certify", "--impl", "tests.plugins.mesh_subjects:lagging_device_adamw", "--sharding", "mesh",
                     "--world-size", str(world_size), "--examples", "3"])
        return code, capsys.readouterr().out

    alone, out_alone = on_mesh(1)
    assert alone == 0 and "(mesh, world size 1)" in out_alone, out_alone
    sharded, out = on_mesh(2)
    assert sharded == 1, out
    assert re.search(r"failed one_step at step 2 .*: device 1's shard of tensor 2 \(rows 2:4 of 4\)", out), out
    assert "case: uneven-shards" in out


@needs("jax")
def test_a_mesh_splits_the_rows_the_world_size_divides_and_replicates_the_rest_device_by_device():
    import numpy as np

    from optspec.adapters import ranks

    (subject,) = adapters.resolve_subject("jax", "optax.adamw")
    sharding = adapters.Sharding("mesh", 2)
    try:
        with adapters.sharded(subject, "jax", "optax.adamw", None, sharding) as on_mesh:
            got = adapters.drive(on_mesh, [np.arange(4.0), np.arange(3.0)], [np.ones((2, 4)), np.ones((2, 3))],
                                 [1e-3, 1e-3], {}, dtype="float32")
    finally:
        ranks.stop_ranks()
    assert [view.name for view in got.views] == [
        "device 0's shard of tensor 0 (rows 0:2 of 4)", "device 1's shard of tensor 0 (rows 2:4 of 4)",
        "tensor 1 (replicated on every device: 2 does not divide its shape (3,))"]
    assert [p.shape for p in got.params] == [(2, 2), (2, 2), (2, 3)]


@pytest.mark.parametrize("defect, rejection", [
    ("LaggingStepAdamW", r"failed one_step at step 2 .*: rank 1's shard of tensor 0 \(rows 3:5 of 5\)"),
    # neither rank's shard of the (5, 3) tensor is all of it: whichever reports first is named
    ("GlobalShapeStateAdamW", r"failed raised at step 1: rank [01]: .* must match the size"),
    ("ShardStateLostOnResume", r"failed one_step at step 5 .*: rank 1's shard of tensor 0 \(rows 3:5 of 5\)"),
])
def test_a_defect_only_sharding_shows_conforms_on_one_rank_and_is_rejected_on_two_naming_the_rank(
        capsys, defect, rejection):
    alone, out_alone = certify(capsys, f"{PLUGINS}:{defect}", world_size=1)
    assert alone == 0 and "(fsdp2, world size 1)" in out_alone, out_alone
    sharded, out = certify(capsys, f"{PLUGINS}:{defect}", world_size=2)
    assert sharded == 1, out
    assert re.search(rejection, out), out
    assert "--sharding fsdp2 --world-size 2" in out  # the reproduce line runs it sharded again


def test_the_lagging_rank_is_named_under_ddp_and_zero1_too(capsys):
    for sharding, copy in (("ddp", "rank 1's copy of tensor"), ("zero1", "(stepped by rank 1)")):
        code, out = certify(capsys, f"{PLUGINS}:LaggingStepAdamW", world_size=2, sharding=sharding)
        assert code == 1 and copy in out, out


@pytest.mark.parametrize("fault, verdict", [
    ("CrashingRankAdamW", "failed crash at step 2: rank 1 crashed with SIGKILL at step 2"),
    # the rank's own time limit or this process's, whichever fires first: both name rank 1
    ("HangingRankAdamW", r"failed hang at step 2: rank 1(: .*)? hung: no result within 5 s at step 2"),
])
def test_a_rank_that_crashes_or_hangs_gets_a_verdict_naming_it_and_leaves_no_process(
        capsys, tmp_path, monkeypatch, fault, verdict):
    monkeypatch.setenv("OPTSPEC_TEST_RANK_PIDS", str(tmp_path))
    code, out = certify(capsys, f"{PLUGINS}:{fault}", world_size=2, extra=("--time-limit", "5"))
    assert code == 1 and re.search(verdict, out), out
    pids = [int(p.name) for p in tmp_path.iterdir()]
    assert len(pids) >= 3, pids  # the two ranks, and the processes that probed the plugin
    alive = [pid for pid in pids if pid != os.getpid() and os.path.exists(f"/proc/{pid}")
             and "Z" not in open(f"/proc/{pid}/stat").read().split()[2]]
    assert not alive, f"processes left behind: {alive}"


@pytest.mark.parametrize("options, message", [
    (CertifyOptions("numpy", world_size=2), "--world-size: numpy subjects are certified in one process"),
    (CertifyOptions("torch", sharding="fsdp1"), "--sharding 'fsdp1': use one of fsdp2, zero1, ddp"),
    (CertifyOptions("jax", sharding="fsdp2"), "--sharding 'fsdp2': use one of mesh"),
    (CertifyOptions("torch", sharding="fsdp2", world_size=0), "--world-size must be 1 or more"),
    (CertifyOptions("torch", sharding="ddp", size=1000), "drop --size or --sharding"),
])
def test_sharding_options_are_refused_in_one_line_before_any_work(options, message):
    with pytest.raises(adapters.SetupError, match=re.escape(message)):
        validate(options)


@pytest.mark.parametrize("saved_on, resumed_on", [(2, 4), (4, 2)])
def test_a_state_saved_with_the_distributed_checkpoint_resumes_on_another_world_size_as_if_it_never_stopped(
        saved_on, resumed_on):
    from optspec.adapters import ranks
    from optspec.conformance.cases import sharded_cases
    from optspec.conformance.check import run_case

    def resharded_run(impl: str, strategy: str):
        (subject,) = adapters.resolve_subject("torch", impl)
        with adapters.sharded(subject, "torch", impl, None, adapters.Sharding(strategy, saved_on)) as on_ranks:
            (case,) = [c for c in sharded_cases(on_ranks.sharding) if c.resume_world_size is not None]
            assert (case.restore_at, case.resume_world_size) == (4, resumed_on)
            return run_case(on_ranks, case, convention=spec.resolve("torch"), dtype="float64", time_limit_s=60)

    try:
        for strategy in ("fsdp2", "ddp"):
            assert resharded_run("torch.optim.AdamW[foreach]", strategy).passed
        lost = resharded_run(f"{PLUGINS}:ShardStateLostOnResume", "fsdp2")
    finally:
        ranks.stop_ranks()
    assert not lost.passed and lost.step == 5, lost.failure
    assert f"(saved by {saved_on} ranks after step 4, resumed by {resumed_on})" in lost.failure


def test_zero1_has_no_resharding_checkpoint_and_takes_one_dtype_so_neither_case():
    from optspec.conformance.cases import sharded_cases

    (subject,) = adapters.resolve_subject("torch", "torch.optim.AdamW[foreach]")
    with adapters.sharded(subject, "torch", None, None, adapters.Sharding("zero1", 2)) as on_ranks:
        assert [c.label for c in sharded_cases(on_ranks.sharding)] == [
            "uneven-shards", "smaller-than-world", "sharded-resume"]
        assert "ZeroRedundancyOptimizer refuses parameters of several dtypes" in on_ranks.sharding.one_dtype
    with adapters.sharded(subject, "torch", None, None, adapters.Sharding("fsdp2", 2)) as on_ranks:
        assert "mixed-dtypes" in [c.label for c in sharded_cases(on_ranks.sharding)]


@pytest.mark.parametrize("framework, impl, strategy", [
    ("torch", "torch.optim.AdamW[fused]", "fsdp2"),
    ("torch", "torch.optim.AdamW[foreach]", "ddp"),
    pytest.param("jax", "optax.adamw", "mesh", marks=needs("jax")),
])
def test_a_model_of_several_dtypes_is_held_to_each_tensors_own_dtype(framework, impl, strategy):
    from optspec.adapters import ranks
    from optspec.conformance.cases import sharded_cases
    from optspec.conformance.check import run_case

    (subject,) = adapters.resolve_subject(framework, impl)
    try:
        with adapters.sharded(subject, framework, impl, None, adapters.Sharding(strategy, 2)) as on_ranks:
            (case,) = [c for c in sharded_cases(on_ranks.sharding) if c.label == "mixed-dtypes"]
            assert case.dtypes("float32") == ("float32", "bfloat16", "bfloat16")
            result = run_case(on_ranks, case, convention=spec.resolve(subject.convention), dtype="float32",
                              keep_run=True)
    finally:
        ranks.stop_ranks()
    assert result.passed, result.failure
    params0, _, got = result.run
    assert got.storage_dtypes == {"float32", "bfloat16"}
    # each tensor reached the subject rounded to its own dtype
    assert not np.array_equal(params0[1], case.params0[1].astype(np.float32).astype(np.float64))


def test_a_defect_only_several_dtypes_show_conforms_in_one_dtype_and_is_rejected_naming_the_tensor_and_its_dtype(
        capsys):
    alone = main(["certify", "--framework", "torch", "--impl", f"{PLUGINS}:FirstDtypeOnlyAdamW", "--examples", "3"])
    out_alone = capsys.readouterr().out
    assert alone == 0, out_alone
    code, out = certify(capsys, f"{PLUGINS}:FirstDtypeOnlyAdamW", world_size=2, extra=("--dtype", "float32"))
    assert code == 1, out
    assert re.search(r"failed one_step at step 1 .*: rank 0's shard of tensor 1 \(rows 0:2 of 3\), in bfloat16,", out), out
    assert "case: mixed-dtypes" in out


def test_the_matrix_adds_a_row_per_strategy_and_one_torch_cannot_run_is_not_applicable_with_the_reason(
        capsys, tmp_path):
    code = main(["matrix", "--framework", "torch", "--impl", "torch.optim.SGD[fused]", "--world-size", "2",
                 "--examples", "3", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = {line.split("  ")[0]: " ".join(line.split("  ", 1)[1].split()) for line in out.splitlines()
            if line.startswith("torch.optim.SGD")}
    assert list(rows) == ["torch.optim.SGD[fused]", *(f"torch.optim.SGD[fused] ({s}, world size 2)"
                                                       for s in ("fsdp2", "zero1", "ddp"))], out
    assert rows["torch.optim.SGD[fused] (zero1, world size 2)"].startswith("float64 PASS 2.1* PASS 2.1 differs"), out
    assert rows["torch.optim.SGD[fused] (ddp, world size 2)"].startswith("float64 PASS 2.1* PASS 2.1 differs"), out
    assert rows["torch.optim.SGD[fused] (fsdp2, world size 2)"] == "float64 n/a* n/a n/a n/a", out
    assert ("  torch.optim.SGD[fused] (fsdp2, world size 2): not applicable under fsdp2: torch cannot step it on "
            "fully_shard's DTensor shards: DTensor has no sharding strategy for its kernel, aten._fused_sgd_") in out
    records = json.loads((tmp_path / "certificate.json").read_text())["certificates"]
    assert [r["sharding"] for r in records] == [None] * 4 + [f"{s}, world size 2" for s in ("fsdp2", "zero1", "ddp")
                                                             for _ in range(4)]
    junit = (tmp_path / "junit.xml").read_text()
    assert 'classname="torch.optim.SGD[fused] (zero1, world size 2) vs torch" name="one_step">' in junit
    assert ('classname="torch.optim.SGD[fused] (fsdp2, world size 2) vs torch" name="applicable"><skipped '
            'message="not applicable under fsdp2: torch cannot step it') in junit


@pytest.mark.parametrize("argv, message", [
    (["--framework", "numpy", "--world-size", "2"], "--world-size: numpy subjects are certified in one process"),
    (["--framework", "jax", "--sharding", "fsdp2"], "--sharding 'fsdp2': use one of mesh"),
    (["--sharding", "fsdp1"], "--sharding 'fsdp1': no framework has it (torch takes fsdp2, zero1, ddp; jax takes mesh)"),
    (["--world-size", "0"], "--world-size must be 1 or more"),
])
def test_matrix_sharding_options_are_refused_in_one_line_before_any_work(capsys, argv, message):
    code = main(["matrix", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_a_whole_matrix_shards_the_frameworks_that_have_the_strategy_and_runs_the_others_in_one_process():
    from optspec.conformance.cli import matrix_options, parser

    def strategies(argv: list[str], framework: str) -> list[tuple[str | None, int | None]]:
        return [(o.sharding, o.world_size) for o in matrix_options(parser().parse_args(["matrix", *argv]), framework)]

    assert strategies(["--world-size", "4"], "torch") == [(None, None), ("fsdp2", 4), ("zero1", 4), ("ddp", 4)]
    assert strategies(["--world-size", "4"], "jax") == [(None, None), ("mesh", 4)]
    assert strategies(["--world-size", "4"], "numpy") == [(None, None)]
    assert strategies(["--sharding", "zero1"], "torch") == [(None, None), ("zero1", None)]
    assert strategies(["--sharding", "zero1"], "jax") == [(None, None)]
    assert strategies([], "torch") == [(None, None)]
