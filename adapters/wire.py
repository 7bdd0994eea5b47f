"""The messages of a sharded run, as bytes that cross machines without pickle.

Between a coordinator and ranks on other machines (under ``torchrun``) the
messages of :mod:`optspec.adapters.ranks` travel through a key-value store
that anything on the network may write to, so they are JSON, never pickle:
a received message can hold nothing but the values below, and decoding it
runs no code.  Arrays travel as their dtype, shape and raw bytes (base64);
tuples, frozensets and the records :data:`RECORDS` names are tagged so that
they come back as what was sent.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import numpy as np

from optspec.adapters.driver import Sharding
from optspec.adapters.ranks import Origin

#: The records a message may carry, by name.
RECORDS: dict[str, type] = {"Origin": Origin, "Sharding": Sharding}

_TAG = "__wire__"


def encode(message: Any) -> bytes:
    """``message`` as UTF-8 JSON (:func:`decode` gives it back)."""
    return json.dumps(_plain(message), separators=(",", ":")).encode()


def decode(data: bytes) -> Any:
    """The message :func:`encode` made; ValueError on anything else."""
    try:
        return _typed(json.loads(data))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"not a message of a sharded run: {exc}") from None


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        array = np.asarray(value)  # not ascontiguousarray, which makes a 0-d array 1-d; tobytes is C order
        if array.dtype.hasobject:
            raise TypeError("an array of Python objects cannot be sent")
        return {_TAG: "array", "dtype": array.dtype.str, "shape": list(array.shape),
                "data": base64.b64encode(array.tobytes()).decode("ascii"), "scalar": isinstance(value, np.generic)}
    if type(value) in RECORDS.values():
        fields = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {_TAG: type(value).__name__, "fields": fields}
    if isinstance(value, tuple | frozenset | set):
        return {_TAG: type(value).__name__ if isinstance(value, tuple) else "frozenset",
                "items": [_plain(v) for v in value]}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("a dict sent must have string keys")
        return {"__dict__": {k: _plain(v) for k, v in value.items()}}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"a {type(value).__name__} cannot be sent")


def _typed(value: Any) -> Any:
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__dict__" in value:
        return {k: _typed(v) for k, v in value["__dict__"].items()}
    tag = value[_TAG]
    if tag == "array":
        dtype = np.dtype(value["dtype"])
        if dtype.hasobject:
            raise TypeError("an array of Python objects")
        array = np.frombuffer(base64.b64decode(value["data"]), dtype=dtype).reshape(value["shape"]).copy()
        return array[()] if value["scalar"] else array
    if tag == "tuple":
        return tuple(_typed(v) for v in value["items"])
    if tag == "frozenset":
        return frozenset(_typed(v) for v in value["items"])
    return RECORDS[tag](**{k: _typed(v) for k, v in value["fields"].items()})
