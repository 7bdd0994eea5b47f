"""Errors a user can cause, each a one-line message that names the fix."""

from __future__ import annotations

import signal


class SetupError(Exception):
    """A usage or setup problem: unknown framework, missing install, bad --impl, bad device.

    The CLI prints ``str(error)`` on one line and exits with code 2.
    """


class InternalError(Exception):
    """optspec itself failed: an exception raised in its own checks or spec, not by the subject or its framework
    (:func:`raised_by_optspec`).  No verdict is given; the CLI prints ``str(error)`` on one line and exits with
    code 3."""


def raised_by_optspec(exc: BaseException) -> bool:
    """Whether ``exc`` was raised in optspec's own checks or spec: the innermost of its traceback's frames that
    belongs to optspec is in ``optspec.conformance`` or ``optspec.spec`` (the frames below it, if any, are a
    library it called, such as NumPy).  Where that frame is in ``optspec.adapters``, which drives the subject,
    or no frame is optspec's, the subject or its framework raised."""
    innermost = _innermost_optspec_frame(exc)
    return innermost is not None and innermost[0].startswith(("optspec.conformance", "optspec.spec"))


def where_raised(exc: BaseException) -> str:
    """``module:line`` of the innermost frame of ``exc``'s traceback that belongs to optspec, or ``""``."""
    innermost = _innermost_optspec_frame(exc)
    return "" if innermost is None else f"{innermost[0]}:{innermost[1]}"


def _innermost_optspec_frame(exc: BaseException) -> tuple[str, int] | None:
    """(module, line) of the innermost frame of ``exc``'s traceback in an ``optspec.`` module, or None."""
    found = None
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module.startswith("optspec."):
            found = (module, tb.tb_lineno)
        tb = tb.tb_next
    return found


class NotInstalled(SetupError):
    """A framework's modules do not import: it is not installed (as opposed to installed but misconfigured)."""


class SubjectError(Exception):
    """The subject under test misbehaved: it raised, or rejected a hyperparameter.

    Carries the step (1-based, 0 for construction) so that nothing else in the
    run is lost: the steps before it are kept in :attr:`completed`; ``hung``
    when it ran past the time limit rather than raising, ``crashed`` when a
    process of it died (a rank of a sharded run).
    """

    def __init__(self, message: str, *, step: int = 0, completed: object = None, hung: bool = False,
                 crashed: bool = False) -> None:
        super().__init__(message)
        self.step = step
        self.completed = completed
        self.hung = hung
        self.crashed = crashed


def one_line(exc: BaseException) -> str:
    """``Type: message`` with newlines folded, for embedding in a one-line error."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def exit_name(exitcode: int | None) -> str:
    """How a process ended, from its ``exitcode``: the signal's name (``SIGSEGV``), or ``exit code N``."""
    if exitcode is not None and exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"
