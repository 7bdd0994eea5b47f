"""The matrix of every framework: a subject stepped by the same code under two frameworks is one row."""

from __future__ import annotations

import json

import pytest

from optspec import adapters
from optspec.adapters import keras as keras_adapter
from optspec.conformance import run
from optspec.conformance.cli import main


@pytest.fixture
def certified(monkeypatch) -> list[str]:
    """The frameworks whose matrix is certified, with numpy, tensorflow and keras installed (nothing runs)."""
    seen: list[str] = []

    def certify_matrix(options, **kwargs):
        seen.append(options.framework)
        return iter(())

    monkeypatch.setattr(run, "certify_matrix", certify_matrix)
    monkeypatch.setattr(adapters, "is_available", lambda framework: framework in ("numpy", "tensorflow", "keras"))
    return seen


@pytest.mark.parametrize("backend", ["tensorflow", ""])
def test_keras_on_tensorflow_is_listed_once_under_tensorflow(certified, monkeypatch, capsys, tmp_path, backend):
    monkeypatch.setenv("KERAS_BACKEND", backend)  # empty: Keras' default, with no keras.json
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert main(["matrix", "--examples", "2"]) == 0
    assert certified == ["numpy", "tensorflow"]
    assert "keras: its subjects are tensorflow's here, listed once, under tensorflow" in capsys.readouterr().out


def test_keras_on_another_backend_has_rows_of_its_own(certified, monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax", "floatx": "float32"}))
    assert main(["matrix", "--examples", "2"]) == 0
    assert certified == ["numpy", "tensorflow", "keras"]
    assert "listed once" not in capsys.readouterr().out


def test_keras_named_alone_is_certified_whatever_its_backend(certified, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert main(["matrix", "--framework", "keras", "--examples", "2"]) == 0
    assert certified == ["keras"]


@pytest.mark.parametrize(("environment", "config", "backend"), [
    ({"KERAS_BACKEND": "torch"}, {"backend": "jax"}, "torch"),
    ({}, {"backend": "jax"}, "jax"),
    ({}, None, "tensorflow"),
    ({}, "not json", "tensorflow"),
])
def test_the_keras_backend_is_read_as_keras_reads_it(monkeypatch, tmp_path, environment, config, backend):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    if config is not None:
        (tmp_path / "keras.json").write_text(config if isinstance(config, str) else json.dumps(config))
    assert keras_adapter.configured_backend() == backend
