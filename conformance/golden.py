"""Golden trajectories: frozen float64 runs of the spec, hashed in a manifest, replayed against subjects.

Scenarios are data (``conformance/scenarios.json``).  Each file
``golden/<rule>/<scenario>.npz`` holds ``param0_<i>``, ``grads_<i>``, ``lrs``,
``steps`` (the 1-based steps kept, every ``stride``-th) and ``params_<i>``.
The zip is written with fixed timestamps, so regeneration is byte-identical.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from optspec import spec

if TYPE_CHECKING:
    from optspec.conformance.check import CheckResult
    from optspec.conformance.verdict import GoldenOutcome

SCENARIOS_PATH = Path(__file__).with_name("scenarios.json")
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "golden"
MIN_FILES = 20
_EPOCH = (1980, 1, 1, 0, 0, 0)


#: Where set (by a certifying worker, :mod:`optspec.conformance.isolation`), the replay computed elsewhere for
#: :func:`replay`'s arguments (by a second worker, while the cases ran), or None, and :func:`replay` runs it here.
replayed_aside: Callable[..., list[tuple[GoldenOutcome, CheckResult | None]] | None] | None = None


class GoldenError(Exception):
    """A golden directory that cannot be read at all (one line, exit 2)."""


def scenarios() -> list[dict[str, Any]]:
    return json.loads(SCENARIOS_PATH.read_text())


def _gradients(kind: str, shape: tuple[int, ...], steps: int, rng: np.random.Generator) -> np.ndarray:
    g = rng.normal(size=(steps, *shape))
    if kind == "tiny":
        return g * 1e-30
    if kind == "mixed":
        scale = rng.choice([0.0, 1e-30, 1.0, 1e30], size=(steps, *shape))
        return g * scale
    if kind == "signflip":
        return np.abs(g) * np.where(np.arange(steps) % 2, -1.0, 1.0).reshape((steps,) + (1,) * len(shape))
    if kind == "decreasing":
        # math.pow, not np.geomspace: geomspace's last bits changed between numpy releases (2.4.6 moved 11
        # elements of the amsgrad scenarios by an ulp), and golden files must not depend on numpy's version.
        factors = np.array([math.pow(1e-3, t / max(steps - 1, 1)) for t in range(steps)])
        return g * factors.reshape((steps,) + (1,) * len(shape))
    return g


def _schedule(kind: str, lr: float, steps: int) -> list[float]:
    if kind == "warmup":
        return [lr * min(1.0, (t + 1) / (steps // 4)) for t in range(steps)]
    if kind == "cosine":
        return [lr * 0.5 * (1 + math.cos(math.pi * t / steps)) + lr * 1e-3 for t in range(steps)]
    return [lr] * steps


def build(scenario: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of one scenario, computed by the spec on NumPy in float64."""
    rng = np.random.default_rng(sum(map(ord, scenario["name"])))
    steps, stride = scenario["steps"], scenario.get("stride", 1)
    lrs = _schedule(scenario.get("schedule", "constant"), scenario["lr"], steps)
    kept = np.arange(stride, steps + 1, stride)
    arrays: dict[str, np.ndarray] = {"lrs": np.asarray(lrs), "steps": kept}
    kwargs = dict(scenario.get("hyper", {}))
    if "convention" in scenario:
        kwargs["convention"] = scenario["convention"]
    for i, shape in enumerate(scenario["shapes"]):
        theta0 = rng.normal(size=tuple(shape))
        grads = _gradients(scenario.get("grads", "normal"), tuple(shape), steps, rng)
        trajectory = spec.run(scenario["rule"], theta0, grads, lr=lrs, **kwargs)
        arrays[f"param0_{i}"], arrays[f"grads_{i}"] = theta0, grads
        arrays[f"params_{i}"] = trajectory[kept - 1]
    return arrays


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            body = io.BytesIO()
            np.lib.format.write_array(body, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, body.getvalue())
    return buffer.getvalue()


def load(path: Path) -> dict[str, np.ndarray]:
    """Loads a golden file, refusing pickled objects."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except ValueError as exc:
        raise GoldenError(f"{path}: holds a pickled object or is not a plain npz ({exc}); regenerate it") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise GoldenError(f"{path}: is not a readable npz ({exc}); regenerate it") from None


def _entry(scenario: dict[str, Any], data: bytes) -> dict[str, Any]:
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "rule": scenario["rule"],
        "convention": scenario.get("convention"),
        "hyperparameters": scenario.get("hyper", {}),
        "steps": scenario["steps"],
        "stride": scenario.get("stride", 1),
        "dtype": "float64",
    }


def generate() -> tuple[dict[str, bytes], dict[str, Any]]:
    """Every scenario's file (path relative to the golden directory -> npz bytes), and the manifest."""
    files, entries = {}, {}
    for scenario in scenarios():
        relative = f"{scenario['rule']}/{scenario['name']}.npz"
        files[relative] = npz_bytes(build(scenario))
        entries[relative] = _entry(scenario, files[relative])
    manifest = {"spec_version": spec.SPEC_VERSION, "files": entries}
    return files, manifest


def manifest_text(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def verify(golden_dir: str | Path = DEFAULT_DIR) -> list[str]:
    """One line per problem; an empty list means every file is exactly what the spec produces."""
    golden_dir = Path(golden_dir)
    manifest_path = golden_dir / "MANIFEST.json"
    if not manifest_path.is_file():
        return [f"{manifest_path}: missing: regenerate it in a clone with `nox -s golden`"]
    try:
        manifest = json.loads(manifest_path.read_text())
        recorded = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        return [f"{manifest_path}: corrupt manifest ({exc}); regenerate it"]
    if manifest.get("spec_version") != spec.SPEC_VERSION:
        return [f"{manifest_path}: from another spec version ({manifest.get('spec_version')!r}, "
                f"this spec is {spec.SPEC_VERSION!r}): regenerate the golden files"]
    problems = []
    if len(recorded) < MIN_FILES:
        problems.append(f"{manifest_path}: lists {len(recorded)} files, fewer than the minimum {MIN_FILES}")
    _, expected = generate()
    present = {str(p.relative_to(golden_dir)) for p in golden_dir.rglob("*.npz")}
    for relative in sorted(present - set(recorded)):
        problems.append(f"{golden_dir / relative}: extra file not in the manifest")
    for relative in sorted(set(expected["files"]) - set(recorded)):
        problems.append(f"{golden_dir / relative}: scenario has no manifest entry: regenerate")
    for relative, entry in sorted(recorded.items()):
        path = golden_dir / relative
        if relative not in expected["files"]:
            problems.append(f"{path}: listed in the manifest but no scenario produces it")
            continue
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        if entry != expected["files"][relative]:
            changed = sorted(k for k in entry if entry.get(k) != expected["files"][relative].get(k))
            problems.append(f"{path}: manifest entry edited ({', '.join(changed) or 'fields'} differ from the scenario)")
            continue
        if hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
            problems.append(f"{path}: tampered with (sha256 differs from the manifest)")
    return problems


def incompatibility(subject: Any, hyper: dict[str, Any]) -> str | None:
    """Why a scenario recorded with ``hyper`` (the rule's defaults elsewhere) cannot be replayed on
    ``subject``, or None when it can.

    A hyperparameter the subject cannot be given, or one that its fixed
    options pin to another value, makes the scenario not applicable.  Values
    are compared by value and kind (:func:`~optspec.adapters.plugins.same_value`):
    a weight decay fixed at 0.0 is not the flag ``False``.
    """
    from optspec.adapters.plugins import same_value

    defaults = spec.get_rule(subject.rule).defaults
    for name, value in sorted(hyper.items()):
        if name not in subject.supports and name not in subject.fixed:
            why = subject.not_tested.get(name, f"it has no {name} knob")
            return f"it is recorded with {name}={value!r}, which the subject cannot take ({why})"
    for name, fixed in sorted(subject.fixed.items()):
        recorded = hyper.get(name, defaults.get(name))
        if not same_value(recorded, fixed):
            return f"it is recorded with {name}={recorded!r}; the subject fixes {name}={fixed!r}"
    return None


#: The longest golden scenario a sharded subject replays: each of its steps is a distributed step (about
#: 1.5 ms for FSDP2 on 2 CPU ranks, against 0.2 ms in one process), and the 10 000 steps of ``long``
#: measure accumulation, which the subject's single-process certification replays.
SHARDED_MAX_STEPS = 1000


def replay(subject: Any, convention: spec.Knobs | None, *, dtype: str, device: str | None,
           golden_dir: str | Path = DEFAULT_DIR) -> list[tuple[GoldenOutcome, CheckResult | None]]:
    """Runs the subject on every golden scenario it supports, against the stored trajectory.

    Returns each scenario's outcome with its check result (None when not run).

    A scenario of another convention is left out; one whose hyperparameters
    the subject cannot take (:func:`incompatibility`) is listed as not
    applicable, with the reason.

    A scenario whose values leave ``dtype``'s range (:mod:`optspec.conformance.representable`)
    is listed as not applicable, with the reason, and not run; so is one of
    more than :data:`SHARDED_MAX_STEPS` steps for a sharded subject.
    """
    if replayed_aside is not None and (aside := replayed_aside(subject, convention, dtype, device,
                                                               golden_dir)) is not None:
        return aside
    from optspec.conformance.cases import Case
    from optspec.conformance.check import run_case
    from optspec.conformance.reference import explicit_hyperparameters
    from optspec.conformance.representable import unrepresentable
    from optspec.conformance.verdict import GoldenOutcome

    golden_dir = Path(golden_dir)
    out = []
    for scenario in scenarios():
        if scenario["rule"] != subject.rule:
            continue
        rule = spec.get_rule(subject.rule)
        if rule.takes_convention and rule.resolve(scenario.get("convention")) != convention:
            continue
        hyper = dict(scenario.get("hyper", {}))
        reason = incompatibility(subject, hyper)
        if reason is None and subject.sharding is not None and scenario["steps"] > SHARDED_MAX_STEPS:
            reason = (f"it runs {scenario['steps']} steps, more than the {SHARDED_MAX_STEPS} a sharded run "
                      "replays (the subject's certification in one process replays it)")
        if reason is not None:
            out.append((GoldenOutcome(scenario["name"], applicable=False, passed=None, worst_error_over_bound=None,
                                      detail=f"not applicable: {reason}"), None))
            continue
        arrays = load(golden_dir / scenario["rule"] / f"{scenario['name']}.npz")
        count = len(scenario["shapes"])
        case = Case([arrays[f"param0_{i}"] for i in range(count)], [arrays[f"grads_{i}"] for i in range(count)],
                    [float(x) for x in arrays["lrs"]], hyper, label=f"golden:{scenario['name']}")
        explicit = Case(case.params0, case.grads, case.lrs, explicit_hyperparameters(subject, hyper))
        reason = unrepresentable(subject.rule, convention, explicit, dtype,
                                 holds_betas=subject.holds_hyperparameters_in_dtype)
        if reason is not None:
            out.append((GoldenOutcome(scenario["name"], applicable=False, passed=None, worst_error_over_bound=None,
                                      detail=f"not applicable in {dtype}: {reason}"), None))
            continue
        stored = [arrays[f"params_{i}"] for i in range(count)]
        result = run_case(subject, case, convention=convention, dtype=dtype, device=device,
                          time_limit_s=300.0, stored=(arrays["steps"], stored))
        out.append((GoldenOutcome(scenario["name"], applicable=True, passed=result.passed,
                                  worst_error_over_bound=max(result.worst.values()), detail=result.failure),
                    result))
    return out
