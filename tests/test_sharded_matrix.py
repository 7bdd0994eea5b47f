"""Every form of torch's AdamW, and Adam, under each sharding strategy at world sizes 2 and 4, and optax's AdamW
on a four-device mesh (``nox -s sharded``).

The subjects conform to torch's preset as they do in one process: FSDP2's
DTensor shards (uneven, empty, 0-d), ZeRO-1's partitioned state with its
consolidated checkpoint, and DDP's replicas, each checked rank by rank.
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
