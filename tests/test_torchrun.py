"""``optspec certify`` started once per rank by ``torchrun``: on one machine, and across two machines (two
``torchrun`` agents on this one, meeting through c10d rendezvous, as two nodes would).

Rank 0 certifies and its exit code is the verdict (``torchrun`` exits 1 on any
other); a defect only sharding shows is rejected naming the rank on the other
node; a rank that crashes is a verdict naming it, and leaves no process.
These spawn several torch processes each, so they run in ``nox -s sharded``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import needs

pytestmark = needs("torch")

PLUGINS = "tests.plugins.sharded_subjects"
ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def certify(*torchrun: str, impl: str, log: Path, out: Path | None = None, extra: tuple[str, ...] = (),
            env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
    """One ``torchrun`` (one node) started, its output going to ``log`` (a file: a pipe that nobody reads
    while the other node's ``torchrun`` is awaited would fill and stall it)."""
    command = [*TORCHRUN, *torchrun, "-m", "optspec", "certify", "--impl", f"{PLUGINS}:{impl}",
               "--sharding", "fsdp2", "--examples", "3", *extra, *(["--out", str(out)] if out else [])]
    with open(log, "w") as output:
        return subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}), log


def finished(started: tuple[subprocess.Popen, Path]) -> tuple[int, str]:
    process, log = started
    process.wait(timeout=600)
    return process.returncode, log.read_text()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def test_on_one_machine_rank_0_certifies_the_ranks_torchrun_started_and_writes_the_certificate(tmp_path):
    code, out = finished(certify("--standalone", "--nproc-per-node", "2", impl="PlainAdamW", out=tmp_path,
                                 log=tmp_path / "torchrun.log"))
    assert code == 0, out
    assert "CONFORMS: tests.plugins.sharded_subjects:PlainAdamW (fsdp2, world size 2, launched by torchrun)" in out
    (cert,) = json.loads((tmp_path / "certificate.json").read_text())["certificates"]
    assert cert["sharding"] == "fsdp2, world size 2, launched by torchrun"
    assert ("resharded resume: not tested: the world is the 2 ranks torchrun started, which cannot change "
            "mid-run") in cert["notes"]


def test_across_two_nodes_a_lagging_rank_on_the_other_node_is_named(tmp_path):
    port = free_port()
    nodes = [certify("--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-id", "optspec",
                     "--rdzv-endpoint", f"localhost:{port}", impl="LaggingStepAdamW", log=tmp_path / f"node{node}.log")
             for node in range(2)]
    (coordinator,) = [out for _, out in map(finished, nodes) if "DOES NOT CONFORM" in out]
    assert "(fsdp2, world size 2, launched by torchrun)" in coordinator
    assert re.search(r"failed one_step at step 2 .*: rank 1's shard of tensor 0 \(rows 3:5 of 5\)", coordinator)
    assert "most likely knob: bias_correction one step late" in coordinator


def test_a_rank_that_crashes_under_torchrun_is_a_verdict_naming_it_and_leaves_no_process(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    code, out = finished(certify("--standalone", "--nproc-per-node", "2", impl="CrashingRankAdamW",
                                 extra=("--time-limit", "20"), env={"OPTSPEC_TEST_RANK_PIDS": str(pids)},
                                 log=tmp_path / "torchrun.log"))
    assert code == 1 and "failed crash at step 2: rank 1 crashed with SIGKILL at step 2" in out, out
    recorded = [int(p.name) for p in pids.iterdir()]
    assert len(recorded) >= 3, recorded  # the two ranks, and the processes that probed the plugin
    alive = [pid for pid in recorded if os.path.exists(f"/proc/{pid}")
             and "Z" not in open(f"/proc/{pid}/stat").read().split()[2]]
    assert not alive, f"processes left behind: {alive}"


@pytest.mark.parametrize("extra, message", [
    ((), "torchrun started this process as one of 2 ranks: add --sharding (fsdp2, zero1, ddp)"),
    (("--sharding", "fsdp2", "--world-size", "4"), "--world-size 4: torchrun started this process as one of 2 "
                                                   "ranks; drop --world-size or set torchrun's world size to 4"),
])
def test_options_that_do_not_fit_the_ranks_torchrun_started_are_one_line_errors_and_every_rank_ends(
        extra, message):
    command = [*TORCHRUN, "--standalone", "--nproc-per-node", "2", "-m", "optspec", "certify",
               "--impl", f"{PLUGINS}:PlainAdamW", *extra]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert f"error: {message}" in done.stderr, done.stderr
