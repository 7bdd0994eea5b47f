"""The JSON Schema of ``certificate.json`` that the wheel ships: valid, field for field the records of
``conformance/verdict.py``, and met by the scoreboard's certificates and by every kind of verdict."""

from __future__ import annotations

import dataclasses
import glob
import json
from pathlib import Path

import jsonschema
import pytest

from optspec.conformance import report
from optspec.conformance.verdict import (
    NOT_APPLICABLE,
    Certificate,
    CheckOutcome,
    Failure,
    GoldenOutcome,
)
from tests import certificates

ROOT = Path(__file__).resolve().parent.parent


def test_the_schema_is_a_valid_draft_2020_12_schema_of_this_schema_version():
    schema = certificates.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    properties = schema["properties"]
    assert (properties["schema"]["const"], properties["schema_version"]["const"]) == (report.SCHEMA,
                                                                                       report.SCHEMA_VERSION)


@pytest.mark.parametrize(("definition", "record", "left_out"), [
    ("certificate", Certificate, {"per_case_worst"}), ("failure", Failure, set()), ("check", CheckOutcome, set()),
    ("golden", GoldenOutcome, set())])
def test_the_schema_names_every_field_of_the_records_and_no_other(definition, record, left_out):
    written = {f.name for f in dataclasses.fields(record)} - left_out
    declared = certificates.schema()["$defs"][definition]
    assert set(declared["properties"]) == written, f"{definition}: schema and {record.__name__} differ"
    assert set(declared["required"]) == written and declared["additionalProperties"] is False


def _certificate(**changes) -> Certificate:
    base = Certificate(
        subject="mypkg.optim:AdamW[fused=True]", framework="torch", framework_version="2.13.0+cpu", device="cpu",
        dtype="float32", spec_version="1.0.0", rule="adamw", convention="torch",
        knobs={"decay_scale": "lr", "decay_point": "before", "bias_correction": True, "epsilon": "corrected",
               "amsgrad": "raw"},
        seed=0, cases_run=31, checks={"one_step": CheckOutcome(True, 0.2), "trajectory": CheckOutcome(True, 0.3, 4.0)},
        golden=[GoldenOutcome("long", True, True, 0.1, None), GoldenOutcome("amsgrad", False, None, None, "no knob")],
        verdict="conforms", per_case_worst=[0.1, 0.2], notes=["maximize: not tested (the constructor has none)"])
    return dataclasses.replace(base, **changes)


FAILURE = Failure(check="one_step", step=3, detail="got 1, expected 2", case="named: 4 steps",
                  reproduce_cli="optspec certify --framework torch --impl mypkg.optim:AdamW", hint="most likely ...",
                  hyperparameters={"lr": 1e-3, "betas": (0.9, 0.999)}, learning_rates=[1e-3] * 4, restore_at=2,
                  ulps=12.5, error_and_bound_per_step=[(1e-9, 1e-8), (2e-7, 1e-8)], reproduce_spec="print(1)")
KINDS = {
    "conforms": _certificate(),
    "fails": _certificate(verdict="does not conform", failure=FAILURE,
                          checks={"one_step": CheckOutcome(False, 20.0), "trajectory": CheckOutcome(True, None)}),
    "crashed": _certificate(verdict="does not conform", cases_run=0, checks={}, golden=[],
                            failure=Failure(check="crash", step=3, detail="crashed with SIGSEGV", case="the worker",
                                            reproduce_cli="optspec certify ...")),
    "not applicable": _certificate(verdict=NOT_APPLICABLE, checks={}, golden=[], cases_run=0,
                                   notes=[f"{NOT_APPLICABLE} in bfloat16: no kernel"]),
    "sharded, no conventions": _certificate(rule="sgdw", convention=None, knobs=None, sharding="fsdp2, world size 2"),
}


def test_every_kind_of_verdict_validates_as_written():
    document = json.loads(report.to_json(list(KINDS.values())))
    assert certificates.problems(document) == []


@pytest.mark.parametrize(("break_it", "message"), [
    (lambda c: c.pop("verdict"), "'verdict' is a required property"),
    (lambda c: c.update(held={"weight_decay": 0}), "Additional properties are not allowed ('held' was unexpected)"),
    (lambda c: c["checks"]["one_step"].update(passed="yes"), "'yes' is not of type 'boolean'"),
    (lambda c: c.update(verdict="differs"), "'differs' is not one of"),
])
def test_a_certificate_that_breaks_the_schema_is_named_with_the_violation(break_it, message, tmp_path):
    document = json.loads(report.to_json([KINDS["fails"]]))
    break_it(document["certificates"][0])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "certificate.json").write_text(json.dumps(document))
    with pytest.raises(AssertionError, match="does not validate against") as raised:
        certificates.assert_all_valid(tmp_path)
    assert message in str(raised.value)
    (tmp_path / "out" / "certificate.json").unlink()  # the conftest hook would fail this test's teardown on it


def test_the_scoreboards_committed_certificates_validate():
    paths = sorted(glob.glob(str(ROOT / "docs" / "ecosystem" / "certificates" / "*.json")))
    assert len(paths) >= 20, "docs/ecosystem/certificates/ holds the scoreboard's certificates"
    for path in paths:
        assert certificates.problems(json.loads(Path(path).read_text())) == [], path
