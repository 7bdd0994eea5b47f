"""The kernel benchmark: fair side-by-side timing, paired ratios, and its JSON and plot."""

from __future__ import annotations

import json

import pytest

from tools import kernels_bench


def test_the_compared_steps_take_turns_after_their_warm_up_in_an_order_reversed_every_round():
    calls = []
    steps = {name: (lambda name=name: calls.append(name), lambda: None) for name in ("spec", "native", "floor")}
    times = kernels_bench._interleaved_times(steps, repeats=4)
    warm_up, rounds = calls[:9], calls[9:]
    assert warm_up == ["spec"] * 3 + ["native"] * 3 + ["floor"] * 3
    assert rounds == ["spec", "native", "floor", "floor", "native", "spec"] * 2
    assert {name: len(values) for name, values in times.items()} == {"spec": 4, "native": 4, "floor": 4}


def test_a_ratio_is_the_median_of_the_ratios_within_each_round():
    # A slow round (the machine busy for both) moves the ratio of medians, not the paired ratio.
    assert kernels_bench._paired_ratio([2.0, 4.0, 100.0], [1.0, 2.0, 10.0]) == 2.0
    with pytest.raises(ValueError):
        kernels_bench._paired_ratio([1.0], [1.0, 2.0])


def test_fewer_than_20_repeats_is_refused(capsys):
    with pytest.raises(SystemExit):
        kernels_bench.main(["--repeats", "5"])
    assert "--repeats must be at least 20" in capsys.readouterr().err


def test_one_small_run_writes_the_table_json_and_plot(tmp_path, capsys):
    assert kernels_bench.main(["--sizes", "1000", "--dtypes", "float32", "--out", str(tmp_path)]) == 0
    (row,) = json.loads((tmp_path / "kernels.json").read_text())["rows"]
    assert row["n"] == 1000 and row["dtype"] == "float32"
    assert "spec[numpy plan]" in row["median_ms"] and "spec[numpy eager]" in row["median_ms"]
    assert all(value > 0 for value in row["median_ms"].values())
    assert row["numpy_plan_over_eager"] > 0
    if "optax.adamw[jit, donated]" in row["median_ms"]:
        # XLA's accounting, not a timing: a step that did not donate its buffers would be ~1.75.
        assert row["jax_peak_memory_spec_over_optax"] <= 1.1
    assert (tmp_path / "kernels.png").stat().st_size > 0
    assert "numpy_plan_over_eager=" in capsys.readouterr().out
