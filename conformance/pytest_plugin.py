"""A pytest plugin: ``pytest --optspec-framework torch --optspec-impl pkg.mod:AdamW`` certifies inside a vendor's suite.

Registered through the ``pytest11`` entry point; it does nothing unless
``--optspec-framework`` is given.  ``--optspec-skips FILE`` reads one
``<id> <reason>`` per line (ids are subject names); ids that match no subject
are warned about.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("optspec", "optspec conformance certification")
    group.addoption("--optspec-framework", help="numpy, torch, jax or tensorflow")
    group.addoption("--optspec-impl", help="MODULE:ATTR or a built-in subject name")
    group.addoption("--optspec-convention", help="preset to certify against")
    group.addoption("--optspec-device", help="device, e.g. cpu or cuda")
    group.addoption("--optspec-examples", type=int, default=50)
    group.addoption("--optspec-skips", help="file of '<subject id> <reason>' lines to skip")


def _skips(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    out = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, reason = line.partition(" ")
            out[key] = reason.strip() or "listed in the skip file"
    return out


class OptspecItem(pytest.Item):
    def __init__(self, *, subject, **kwargs) -> None:
        super().__init__(**kwargs)
        self.subject = subject

    def runtest(self) -> None:
        from conformance.certify import certify

        config = self.config
        cert = certify(self.subject, convention=config.getoption("--optspec-convention"),
                       device=config.getoption("--optspec-device"),
                       examples=config.getoption("--optspec-examples"))
        if not cert.conforms:
            fail = cert.failure
            raise AssertionError(f"{fail['check']} at step {fail['step']}: {fail['detail']} | {fail['hint']}\n"
                                 f"reproduce: {fail['reproduce_cli']}")

    def reportinfo(self):
        return self.path, 0, f"optspec certify {self.subject.name}"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    framework = config.getoption("--optspec-framework")
    if not framework:
        return
    import adapters

    skips = _skips(config.getoption("--optspec-skips"))
    subjects = adapters.resolve_subject(framework, config.getoption("--optspec-impl"))
    names = {s.name for s in subjects}
    for unknown in sorted(set(skips) - names):
        warnings.warn(f"optspec skip file: id {unknown!r} matches no subject", stacklevel=1)
    for subject in subjects:
        item = OptspecItem.from_parent(session, name=f"optspec[{subject.name}]", subject=subject)
        if subject.name in skips:
            item.add_marker(pytest.mark.skip(reason=skips[subject.name]))
        items.append(item)
