"""The messages of a sharded run across machines (:mod:`optspec.adapters.wire`): JSON that comes back as
what was sent, and that can carry nothing else."""

from __future__ import annotations

import json

import numpy as np
import pytest

from optspec.adapters import wire
from optspec.adapters.driver import Sharding
from optspec.adapters.ranks import Origin


def test_a_case_and_its_result_come_back_as_they_were_sent():
    origin = Origin("torch", "mypkg.optim:AdamW[fused=True]", "adamw", "mypkg.optim:AdamW")
    case = ("case", origin, [np.arange(6.0).reshape(2, 3).T, np.float32(0.5), np.zeros((), np.float16)],
            [np.ones((4, 2, 3), np.float64)], [0.1, np.float64(0.05)], {"betas": (0.9, 0.999), "amsgrad": False},
            "bfloat16", None, 4, 30.0, "uneven-shards", None, "/tmp/checkpoint")
    done = ("done", [(0, 1, (3, 5), "rank 1's shard", np.full((6, 2, 3), np.nan))], None, frozenset({"float32"}))
    start = ("start", 3, Sharding("fsdp2", 4, launcher="torchrun"), "cuda", {"XLA_FLAGS": "x"})
    for message in (case, done, start):
        back = wire.decode(wire.encode(message))
        assert repr(back) == repr(message)
    back_case = wire.decode(wire.encode(case))
    assert [(a.dtype, a.shape, type(a)) for a in back_case[2]] == [(a.dtype, a.shape, type(a)) for a in case[2]]
    assert isinstance(back_case[4][1], np.float64) and back_case[1] == origin


@pytest.mark.parametrize("data", [
    b"\x80\x04K\x01.",  # a pickle
    json.dumps({"__wire__": "Popen", "fields": {"args": ["rm", "-rf", "/"]}}).encode(),
    json.dumps({"__wire__": "array", "dtype": "|O", "shape": [1], "data": "", "scalar": False}).encode(),
    json.dumps({"unknown": 1}).encode(),
])
def test_anything_but_a_message_is_refused_and_runs_no_code(data):
    with pytest.raises(ValueError, match="not a message of a sharded run"):
        wire.decode(data)


def test_what_cannot_be_sent_is_refused_when_it_is_sent():
    with pytest.raises(TypeError, match="cannot be sent"):
        wire.encode(("case", object()))
    with pytest.raises(TypeError, match="objects"):
        wire.encode(np.array([object()]))
