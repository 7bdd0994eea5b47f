"""The one protocol by which any optimizer, built-in or plugin, is driven.

A framework module supplies a :class:`Session` (build, step, read back, save,
restore); :func:`drive` owns the loop that every framework shares: the
per-step learning rate, the mid-trajectory save and restore into a fresh
subject, the per-case time limit, the check that input gradients are not
mutated, and the wrapping of a subject's exception into a one-line
:class:`~adapters.errors.SubjectError`.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from optspec.adapters.batching import Member
from optspec.adapters.errors import SubjectError, one_line
from optspec.adapters.namespaces import DTYPES, dtype_name, quantized, to_numpy
from optspec.adapters.plugins import same_value

#: The dtype of a run: one name for every tensor, or one per tensor (a model of several dtypes).
Dtypes = str | tuple[str, ...]


def tensor_dtypes(dtype: Dtypes, count: int) -> tuple[str, ...]:
    """The dtype of each of ``count`` tensors in a run of ``dtype``."""
    if isinstance(dtype, str):
        return (dtype,) * count
    if len(dtype) != count:
        raise ValueError(f"{len(dtype)} dtypes for {count} tensors")
    return tuple(dtype)


def widest_dtype(dtype: Dtypes) -> str:
    """The dtype of most precision among ``dtype``'s: the one a session keeps its scalars (the learning
    rate) in, as a user of a model of several dtypes keeps them in the widest."""
    names = (dtype,) if isinstance(dtype, str) else dtype
    return max(names, key=lambda name: (DTYPES.index(name) if name in DTYPES else -1))


class Session(abc.ABC):
    """One live optimizer over a list of parameter tensors."""

    @abc.abstractmethod
    def feed(self, grads: Sequence[np.ndarray]) -> list[Any]:
        """Converts one step's gradients to the subject's arrays."""

    @abc.abstractmethod
    def step(self, grads: list[Any], lr: float, index: int) -> None:
        """Applies one step with learning rate ``lr``; ``index`` is 0-based."""

    @abc.abstractmethod
    def params(self) -> list[np.ndarray]:
        """The current parameters, as NumPy."""

    def whole_params(self) -> list[np.ndarray]:
        """The whole parameters, that a fresh session is built from on a resume; :meth:`params` unless
        this process holds only part of them (a rank of a sharded run gathers the rest)."""
        return self.params()

    @abc.abstractmethod
    def state(self) -> dict[str, np.ndarray]:
        """The optimizer state as NumPy, keyed ``"<tensor index>.<name>"``."""

    def quantized_state(self) -> list[list[QuantizedState]]:
        """Per parameter tensor, the state it holds as blockwise codes, in the kernel's order (the n-th is the
        n-th state field of the rule); empty lists where its state is in floats, and ``[]`` where the session
        cannot read it."""
        return []

    def compensation(self) -> list[np.ndarray | None]:
        """Per parameter tensor, the Kahan compensation the kernel keeps beside its low-precision parameters
        (what it has yet to add to them, :mod:`optspec.conformance.kahan`), or None for a tensor without one;
        ``[]`` where the session keeps or shows none."""
        return []

    def storage(self) -> list[Any]:
        """The parameters and optimizer state as the subject holds them (the framework's own arrays).

        Their dtypes are what the diagnosis may blame on reduced precision
        (:attr:`Trajectory.storage_dtypes`); the default, none, means unknown.
        """
        return []

    @abc.abstractmethod
    def save(self) -> Any:
        """A deep copy of the optimizer state, in the framework's own format."""

    @abc.abstractmethod
    def restore(self, saved: Any) -> None:
        """Loads ``saved`` (from another session's :meth:`save`) into this fresh one."""


@dataclasses.dataclass(frozen=True)
class SubjectInfo:
    """A capability record for one subject.

    Attributes:
      name: the subject's id, e.g. ``"torch.optim.AdamW[foreach]"``.
      framework: a name of the registry (:data:`~optspec.adapters.frameworks.FRAMEWORKS`).
      rule: the spec rule it implements.
      convention: the preset it follows (adam family), or None.
      supports: spec hyperparameters (besides lr) it can express.
      fixed: hyperparameters it fixes, e.g. ``{"amsgrad": True}``.
      build: ``build(params0, hyper, lrs, dtype, device) -> Session``; ``dtype``
        is a :data:`Dtypes`, one name per tensor only for a sharded subject
        (the ``mixed-dtypes`` case), whose session reads it with :func:`tensor_dtypes`.
      devices: the devices it runs on (None: all the framework sees).
      build_batch: ``build_batch(members, steps, dtype, device) -> Session``
        over every member's tensors (member-major), each step taking one
        learning rate per member; None where the subject cannot be batched.
      not_tested: spec hyperparameter -> why it is not tested (a plugin
        whose constructor lacks it, :mod:`optspec.adapters.plugins`).
      own_defaults: its framework's defaults where they differ from the
        spec's (:attr:`~optspec.adapters.translation.Translation.defaults`):
        values a hyperparameter its constructor hides may have.
      state_storage: the dtypes it stores state fields in between steps,
        where coarser than its parameters' (state field -> dtype, as
        :class:`spec.StateStorage` names them): declared (``--state-dtype``)
        or read from it by the certifier; the spec's run stores them so.
      holds_hyperparameters_in_dtype: whether it casts its hyperparameters
        (β above all) to the parameter's dtype, as Keras does.
      not_shardable: sharding strategy -> why its framework cannot run it
        so (torch has no DTensor kernel for fused SGD under ``fsdp2``): a
        certification under that strategy is "not applicable", with the reason.
      sharding: how it runs across ranks (:class:`Sharding`), or None for one process.
      drive_elsewhere: where not None, :func:`drive` hands it the whole
        trajectory, with :func:`drive`'s arguments, and it returns the
        :class:`Trajectory`: the ranks of a sharded subject run it and send
        back what each holds (:attr:`Trajectory.views`).
    """

    name: str
    framework: str
    rule: str
    convention: str | None
    supports: frozenset[str]
    build: Callable[..., Session]
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    devices: tuple[str, ...] | None = None
    build_batch: Callable[..., Session] | None = None
    not_tested: Mapping[str, str] = dataclasses.field(default_factory=dict)
    holds_hyperparameters_in_dtype: bool = False
    not_shardable: Mapping[str, str] = dataclasses.field(default_factory=dict)
    sharding: Sharding | None = None
    drive_elsewhere: Callable[..., Trajectory] | None = None
    own_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    state_storage: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Sharding:
    """A subject run across ``world_size`` ranks with the framework's ``strategy`` (torch: ``fsdp2``,
    ``zero1``, ``ddp``; jax: ``mesh``).

    Attributes:
      launcher: the framework's launcher that started the ranks, on one
        machine or several (``torchrun``); None where optspec spawned them.
      resume_world_size: the world size its checkpoint is resumed on in the
        resharded-resume case, or None where it has none;
      not_resharded: then why not.
      one_dtype: why the strategy takes parameters of one dtype only (the
        ``mixed-dtypes`` case is then not run), or None.
    """

    strategy: str
    world_size: int
    launcher: str | None = None
    resume_world_size: int | None = dataclasses.field(default=None, compare=False)
    not_resharded: str | None = dataclasses.field(default=None, compare=False)
    one_dtype: str | None = dataclasses.field(default=None, compare=False)

    def describe(self) -> str:
        launched = f", launched by {self.launcher}" if self.launcher else ""
        return f"{self.strategy}, world size {self.world_size}{launched}"


@dataclasses.dataclass(frozen=True)
class View:
    """What one rank holds of one parameter tensor: all of it, or the rows ``rows[0]:rows[1]`` of its
    first dimension (a shard).  ``name`` says so in a failure."""

    tensor: int
    rank: int
    rows: tuple[int, int] | None
    name: str


@dataclasses.dataclass(frozen=True)
class QuantizedState:
    """One state tensor as a kernel holds it in 8 or 4 bits (:mod:`optspec.spec.quantized`): ``codes`` (the
    tensor's shape, each an index into ``codebook``, unpacked), ``scales`` (one float32 scale per block of
    ``block_size`` elements of the flattened tensor) and the ``codebook`` the kernel holds (sorted, each value
    once), all as NumPy."""

    codes: np.ndarray
    scales: np.ndarray
    codebook: np.ndarray
    block_size: int

    def dequantized(self) -> np.ndarray:
        """``codebook[codes] * scale`` of each element's block, in float32 as the kernel computes it, as
        float64."""
        flat = self.codes.reshape(-1).astype(np.int64)
        scale = np.repeat(self.scales.astype(np.float32), self.block_size)[:flat.size]
        return (self.codebook.astype(np.float32)[flat] * scale).astype(np.float64).reshape(self.codes.shape)


@dataclasses.dataclass
class Trajectory:
    """What a subject produced: ``params[i]`` is ``(T, *shape_i)``.

    ``mutated_at`` is the first step at which the subject changed the gradient
    it was given, or None; ``mutated_to``, what each gradient of that step
    held after it.  A sharded subject's trajectory has one entry
    of ``params`` per :class:`View` in ``views`` (what each rank held), in
    place of one per tensor.  ``storage_dtypes`` are the floating dtypes (of
    :data:`~optspec.adapters.namespaces.DTYPES`) its parameters and state were
    held in after the last step, and the 8-bit ones of quantized state
    (:func:`~optspec.adapters.namespaces.quantized`); empty where the session
    does not say.  ``quantized[t][i]`` is what tensor ``i`` held as blockwise
    codes after step ``t + 1`` (:meth:`Session.quantized_state`); empty where
    the session holds or shows none.  ``compensation[t][i]`` is tensor ``i``'s
    Kahan compensation after step ``t + 1`` (:meth:`Session.compensation`),
    likewise.
    """

    params: list[np.ndarray]
    mutated_at: int | None = None
    mutated_to: list[np.ndarray] = dataclasses.field(default_factory=list)
    states: list[dict[str, np.ndarray]] = dataclasses.field(default_factory=list)
    storage_dtypes: frozenset[str] = frozenset()
    views: list[View] = dataclasses.field(default_factory=list)
    quantized: list[list[list[QuantizedState]]] = dataclasses.field(default_factory=list)
    compensation: list[list[np.ndarray | None]] = dataclasses.field(default_factory=list)


class SubjectTimeout(Exception):
    pass


_heartbeat: Callable[[str, int], None] | None = None


def set_heartbeat(beat: Callable[[str, int], None] | None) -> None:
    """Calls ``beat(case, step)`` before construction (step 0) and before every step of every drive.

    A supervisor in another process (:mod:`optspec.conformance.isolation`) uses it to
    tell a slow step from a hung one, and to name the step a crash happened at.
    """
    global _heartbeat
    _heartbeat = beat


def heartbeat(case: str, step: int) -> None:
    """Reports that ``case`` is about to run ``step`` (0: construction), if anyone listens."""
    if _heartbeat is not None:
        _heartbeat(case, step)


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[Callable[[], None]]:
    """Raises :class:`SubjectTimeout` in the main thread ``seconds`` after the last call of the ``rearm``
    it yields (or after entry): a limit per step, as the supervisor's (:mod:`optspec.conformance.isolation`).

    It fires only where Python gets control back (the supervisor ends a
    subject that holds the GIL in C code).
    """
    usable = seconds and threading.current_thread() is threading.main_thread()
    if not usable:
        yield lambda: None
        return

    def _expired(signum: int, frame: object) -> None:
        raise SubjectTimeout(f"no result within {seconds:g} s")

    def rearm() -> None:
        signal.setitimer(signal.ITIMER_REAL, seconds)

    previous = signal.signal(signal.SIGALRM, _expired)
    rearm()
    try:
        yield rearm
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def drive(
    subject: SubjectInfo,
    params0: Sequence[np.ndarray],
    grads: Sequence[np.ndarray],
    lrs: Sequence[float],
    hyper: Mapping[str, Any],
    *,
    dtype: Dtypes = "float64",
    device: str | None = None,
    restore_at: int | None = None,
    time_limit_s: float | None = None,
    record_state: bool = False,
    label: str = "",
    resume_world_size: int | None = None,
) -> Trajectory:
    """Runs ``subject`` over ``grads`` (one ``(T, *shape)`` array per tensor).

    If ``restore_at`` is a step k in ``1..T-1``, the state is saved after step k
    and the rest of the run continues in a fresh subject that restored it, as a
    resumed training job would; with ``resume_world_size`` too (a sharded
    subject), it is resumed on that many ranks, from the strategy's resharding
    checkpoint.  A subject that raises or runs past
    ``time_limit_s`` becomes a :class:`SubjectError` naming the step; the steps
    completed so far travel with it.
    """
    hyper = _without_fixed(subject, hyper)
    if subject.drive_elsewhere is not None:
        return subject.drive_elsewhere(params0, grads, list(lrs), hyper, dtype=dtype, device=device,
                                       restore_at=restore_at, time_limit_s=time_limit_s, label=label,
                                       resume_world_size=resume_world_size)
    if resume_world_size is not None:
        raise ValueError(f"{subject.name} runs in one process: it cannot resume on {resume_world_size} ranks")

    def build(current: list[np.ndarray]) -> Session:
        return subject.build(current, hyper, list(lrs), dtype, device)

    return _loop(subject.name, build, params0, grads, list(lrs), restore_at, time_limit_s, record_state,
                 label)


def drive_batch(
    subject: SubjectInfo,
    members: Sequence[Member],
    grads: Sequence[Sequence[np.ndarray]],
    *,
    dtype: str = "float64",
    device: str | None = None,
    restore_at: int | None = None,
    time_limit_s: float | None = None,
    label: str = "",
) -> list[Trajectory]:
    """Runs many cases through one subject at once (see :mod:`optspec.adapters.batching`).

    ``grads[i]`` is member ``i``'s list of ``(T, *shape)`` streams; every
    member runs the same number of steps T (pad shorter cases and ignore the
    extra steps).  Returns one trajectory per member.  A subject without
    :attr:`SubjectInfo.build_batch` raises ``NotImplementedError``.
    """
    if subject.build_batch is None:
        raise NotImplementedError(f"{subject.name} has no batched driver")
    members = [dataclasses.replace(m, hyper=_without_fixed(subject, m.hyper)) for m in members]
    counts = [len(m.params0) for m in members]
    steps = len(grads[0][0])
    lrs = np.stack([np.asarray(m.lrs, np.float64)[:steps] for m in members], axis=1)

    def build(current: list[np.ndarray]) -> Session:
        split = np.cumsum([0, *counts])
        return subject.build_batch(
            [dataclasses.replace(m, params0=current[a:b]) for m, a, b in zip(members, split, split[1:])],
            steps, dtype, device)

    flat_params = [p for m in members for p in m.params0]
    flat_grads = [g for streams in grads for g in streams]
    whole = _loop(subject.name, build, flat_params, flat_grads, list(lrs), restore_at, time_limit_s, False,
                  label or f"a batch of {len(members)} cases")
    out, index = [], 0
    for count in counts:
        out.append(Trajectory(params=whole.params[index:index + count], mutated_at=whole.mutated_at,
                              mutated_to=whole.mutated_to[index:index + count],
                              storage_dtypes=whole.storage_dtypes,
                              quantized=[held[index:index + count] for held in whole.quantized],
                              compensation=[kept[index:index + count] for kept in whole.compensation]))
        index += count
    return out


def _without_fixed(subject: SubjectInfo, hyper: Mapping[str, Any]) -> dict[str, Any]:
    for name, value in subject.fixed.items():
        if name in hyper and not same_value(hyper[name], value):
            raise SubjectError(f"{subject.name} fixes {name}={value!r}; it cannot run with {hyper[name]!r}")
    return {k: v for k, v in hyper.items() if k not in subject.fixed}


def _unchanged(before: np.ndarray, fed: Any) -> bool:
    """Whether the gradient ``fed`` to a step still holds the values ``before`` it (NaN equal to NaN)."""
    after = fed if type(fed) is np.ndarray else to_numpy(fed)
    return (before.dtype == after.dtype and before.tobytes() == after.tobytes()) or np.array_equal(
        before, after, equal_nan=True)


def _loop(name: str, build: Callable[[list[np.ndarray]], Session], params0: Sequence[np.ndarray],
          grads: Sequence[np.ndarray], lrs: list[Any], restore_at: int | None,
          time_limit_s: float | None, record_state: bool, label: str) -> Trajectory:
    """The loop every driver shares: steps, read-back, mutation check, restore, time limit, errors."""
    steps = len(lrs)
    history: list[list[np.ndarray]] = [[] for _ in params0]
    result = Trajectory(params=[])

    def stacked() -> list[np.ndarray]:
        return [np.stack(h) if h else np.zeros((0, *p.shape)) for h, p in zip(history, params0)]

    index = 0
    where = "construction"
    try:
        with time_limit(time_limit_s) as rearm:
            heartbeat(label, 0)
            session = build(list(params0))
            where = "step"
            for index in range(steps):
                rearm()
                heartbeat(label, index + 1)
                fed = session.feed([g[index] for g in grads])
                before = [to_numpy(g) for g in fed]
                session.step(fed, lrs[index], index)
                if result.mutated_at is None and not all(map(_unchanged, before, fed)):
                    result.mutated_at = index + 1
                    result.mutated_to = [to_numpy(g) for g in fed]
                current = session.params()
                for h, p in zip(history, current):
                    h.append(p)
                if record_state:
                    result.states.append(session.state())
                if index == 0 or result.quantized:  # read every step where the first step held codes
                    held = session.quantized_state()
                    if result.quantized or any(held):
                        result.quantized.append(held)
                if index == 0 or result.compensation:  # likewise a Kahan compensation
                    kept = session.compensation()
                    if result.compensation or any(c is not None for c in kept):
                        result.compensation.append(kept)
                if restore_at is not None and index + 1 == restore_at:
                    saved = session.save()
                    session = build(session.whole_params())
                    session.restore(saved)
    except SubjectError:
        raise
    except SubjectTimeout as exc:
        at = where if where == "construction" else f"step {index + 1}"
        raise SubjectError(
            f"{name} hung: {exc} at {at} of case {label} (--time-limit sets the limit)",
            step=index + 1, completed=stacked(), hung=True,
        ) from None
    except Exception as exc:
        at = where if where == "construction" else f"step {index + 1}"
        raise SubjectError(
            f"{name} raised at {at}: {one_line(exc)}",
            step=index + 1, completed=stacked(),
        ) from None
    result.params = stacked()
    result.storage_dtypes = frozenset(name for name in map(dtype_name, session.storage())
                                      if name in DTYPES or quantized(name))
    return result
