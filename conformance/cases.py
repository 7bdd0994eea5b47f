"""Cases: a gradient stream over several tensors with a schedule and hyperparameters.

Hypothesis draws random cases (:func:`optspec.conformance.strategies.random_cases`); :data:`NAMED_CASES` are a
few discriminating steps that separate the conventions deliberately.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from optspec.adapters.driver import Dtypes, Sharding, SubjectInfo


@dataclasses.dataclass
class Case:
    """One certification case; arrays are float64 before rounding to the subject's dtype.

    ``rules``, for a named case, the rules whose conventions it separates (None: every rule).
    ``refusable``, the hyperparameters it sets at the closed edge of their domain (ε = 0), which a
    constructor may refuse by design: where it refuses only those, the case does not apply
    (:func:`~optspec.conformance.check.refused_edge`).
    ``resume_world_size``, for a sharded subject: the state saved after step ``restore_at`` is resumed
    on this many ranks.
    ``companion_tensors``, the tensors held in the certification dtype's :data:`COMPANION_DTYPES` entry
    rather than in that dtype (one model of several dtypes, :meth:`dtypes`).
    ``only_in``, the dtypes a named case is run in (None: every one).
    """

    params0: list[np.ndarray]
    grads: list[np.ndarray]
    lrs: list[float]
    hyper: dict[str, Any]
    restore_at: int | None = None
    label: str = "random"
    rules: frozenset[str] | None = None
    refusable: frozenset[str] = frozenset()
    resume_world_size: int | None = None
    companion_tensors: frozenset[int] = frozenset()
    only_in: frozenset[str] | None = None

    @property
    def steps(self) -> int:
        return len(self.lrs)

    def dtypes(self, dtype: str) -> Dtypes:
        """The dtype of the run certified in ``dtype``: ``dtype`` itself, or where the case mixes dtypes,
        one name per tensor (:func:`~optspec.adapters.driver.tensor_dtypes` reads either)."""
        if not self.companion_tensors:
            return dtype
        return tuple(COMPANION_DTYPES[dtype] if i in self.companion_tensors else dtype
                     for i in range(len(self.params0)))

    def short(self) -> str:
        """The case in a few words: its label, steps and shapes."""
        return f"{self.label} ({self.steps} steps on shapes {[p.shape for p in self.params0]})"

    def describe(self) -> str:
        shapes = ", ".join(str(p.shape) for p in self.params0)
        if self.companion_tensors:
            shapes += f" (tensors {sorted(self.companion_tensors)} in the companion dtype)"
        hyper = ", ".join(f"{k}={v!r}" for k, v in sorted(self.hyper.items()))
        restore = f", state restored after step {self.restore_at}" if self.restore_at else ""
        if self.resume_world_size is not None:
            restore += f" on {self.resume_world_size} ranks"
        return f"{self.label}: {self.steps} steps on shapes [{shapes}], lr={self.lrs}, {hyper}{restore}"


#: The second dtype of a model of several dtypes certified in a given one: the mix users train
#: with (bfloat16 weights beside float32 norms and biases; float32 beside a float64 run).
COMPANION_DTYPES: Mapping[str, str] = MappingProxyType(
    {"float64": "float32", "float32": "bfloat16", "bfloat16": "float32", "float16": "float32"})


def _signed(rng: np.random.Generator, shape: tuple[int, ...], scale: float | np.ndarray) -> np.ndarray:
    """Random signs, magnitudes uniform in [scale/2, scale): no element is near zero."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 1.0, size=shape) * scale


def _named(label: str, steps: int, hyper: Mapping[str, Any], *, grad_scale: float = 1.0,
           decreasing: bool = False, zeros: bool = False, restore_at: int | None = None,
           rules: frozenset[str] | None = None, refusable: frozenset[str] = frozenset(),
           shapes: Sequence[tuple[int, ...]] = ((3,), (2, 2))) -> Case:
    rng = np.random.default_rng(sum(map(ord, label)))
    params0 = [rng.normal(size=s) + np.sign(rng.normal(size=s)) for s in shapes]
    grads = []
    for shape in shapes:
        # Magnitudes within one decade: the case then fits float16's range after scaling.
        g = rng.choice([-1.0, 1.0], size=(steps, *shape)) * rng.uniform(0.1, 1.0, size=(steps, *shape)) * grad_scale
        if decreasing:
            g *= np.geomspace(1.0, 1e-3, steps).reshape((steps,) + (1,) * len(shape))
        if zeros:
            g[::2] = 0.0
        grads.append(g)
    lrs = [0.1 * (0.5 if t % 2 else 1.0) * (1 + t / steps) for t in range(steps)]
    return Case(params0, grads, lrs, dict(hyper), restore_at, label=label, rules=rules, refusable=refusable)


def _large(label: str, sizes: tuple[int, ...], steps: int, hyper: Mapping[str, Any]) -> Case:
    """Flat tensors of ``sizes`` elements: per-element gradient scales over one decade, random signs,
    about 1% exact zeros, and a warm-up schedule."""
    rng = np.random.default_rng(sum(map(ord, label)))
    params0, grads = [], []
    for size in sizes:
        params0.append(rng.normal(size=size))
        scale = 10.0 ** rng.uniform(-0.5, 0.5, size=size)
        g = _signed(rng, (steps, size), scale)
        g[rng.random(size=(steps, size)) < 0.01] = 0.0
        grads.append(g)
    lrs = [1e-2 * min(1.0, (t + 1) / 3) for t in range(steps)]
    return Case(params0, grads, lrs, dict(hyper), label=label)


def _sensitive(label: str, steps: int, hyper: Mapping[str, Any], lrs: list[float], *,
               gradient_scale: np.ndarray, theta_scale: float = 1.0, alternating: bool = False,
               rules: frozenset[str] | None = None, shapes: Sequence[tuple[int, ...]] = ((3,), (2, 2)),
               only_in: frozenset[str] | None = None, seed: int = 0) -> Case:
    """A case built to make one hyperparameter move the step far more than rounding does.

    ``gradient_scale[t]`` is the magnitude of step ``t``'s gradients, with
    random signs, or alternating ones (``alternating``: every element flips
    sign at every step); parameters are of magnitude ``theta_scale``, so that
    the step is large against the rounding of :math:`\theta`.  ``rules``: the rules it is run for (None:
    every rule); ``only_in``: the dtypes it is run in (None: every one).  A ``seed`` other than 0 draws other
    values of the same kind, and is appended to the label.
    """
    rng = np.random.default_rng(sum(map(ord, label)) + 7919 * seed)
    label = label if seed == 0 else f"{label}-{seed}"
    params0 = [_signed(rng, s, theta_scale) for s in shapes]
    grads = []
    for shape in shapes:
        scale = np.asarray(gradient_scale, np.float64).reshape((steps,) + (1,) * len(shape))
        if alternating:
            signs = np.where(np.arange(steps) % 2, -1.0, 1.0).reshape((steps,) + (1,) * len(shape))
            grads.append(signs * np.sign(rng.normal(size=shape)) * rng.uniform(0.5, 1.0, size=(steps, *shape)) * scale)
        else:
            grads.append(_signed(rng, (steps, *shape), scale))
    return Case(params0, grads, lrs, dict(hyper), label=label, rules=rules, only_in=only_in)


#: Steps of the β2-horizon case: long enough that :math:`\beta_2^{t}` departs from 1 at β2 = 0.95.
HORIZON_STEPS = 40

#: β for the cases where the rounding of :math:`1-\beta^t`, amplified by the bias correction's condition
#: number :math:`\kappa_t(\beta)` (:mod:`optspec.conformance.tolerance`, about :math:`1/(1-\beta)` in early
#: steps), would widen the bound: at 0.5, :math:`\kappa_t \le 1`.
LOW_CONDITION_BETAS = (0.5, 0.5)

#: Cases that maximise the detection power for one hyperparameter each (``nox -s bench``'s table):
#:
#: - ``beta2-horizon``: one gradient, then a run of gradients 1e-3 its size.  At step 1 the bias
#:   correction cancels :math:`1-\beta_2` exactly (:math:`\hat v_1 = g_1^2`); later :math:`\hat v_t` is the
#:   first gradient's square decaying at the rate β2 sets, and
#:   :math:`\partial\ln\hat v_t/\partial\ln(1-\beta_2) = 1-(t-1)\tfrac{1-\beta_2}{\beta_2}
#:   -\tfrac{t\beta_2^{t-1}(1-\beta_2)}{1-\beta_2^t}`, about -1.4 at β2 = 0.95 and t = 40, so a relative
#:   change δ of :math:`1-\beta_2` moves the step by about 0.7δ.  Parameters of 1e-2 keep their rounding
#:   small against the step.
#: - ``epsilon-dominated``: gradients 1e-3 of ε, so the step is :math:`\mathrm{lr}\,\hat m/\epsilon` and
#:   moves by δ with ε; parameters of 1e-2, so that the step (1e-3) is large against their rounding.
#: - ``beta1-sign-flips``: every gradient flips sign at every step, so
#:   :math:`m_t \approx \pm\tfrac{1-\beta_1}{1+\beta_1}g`, whose relative sensitivity to β1 is
#:   :math:`\tfrac{2\beta_1}{1-\beta_1^2}` (about 9.5 at 0.9).
#: - ``schedule-edge``: a warm-up jump (1e-3 to 0.1), two steps at lr 0 and a restart: the decay
#:   scale (lr, lr/lr₀ or none) and a decay taken with the wrong step's lr differ by factors of 100.
#: - ``large-decay``: lr·λ = 0.4, so the decay, not the Adam step, moves the parameters: λ and lr
#:   are seen directly, and decay before and after the step differ by lr·λ·step.
#:
#: - ``rectified-epsilon`` (RAdam only): the ε-dominated case at β2 = 0.9, where RAdam's rectification
#:   starts (:math:`\rho_\infty = 2/(1-\beta_2) - 1 = 19`, :math:`\rho_t > 5` from step 6): at β2 = 0.5
#:   (:math:`\rho_\infty = 3`) RAdam never divides by :math:`\sqrt{v}+\epsilon`, so ε has no effect there.
#:
#: Where β is not what a case measures it is :data:`LOW_CONDITION_BETAS`.
SENSITIVE_CASES: tuple[Case, ...] = (
    _sensitive("beta2-horizon", HORIZON_STEPS, {"betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.0},
               [1e-2] * HORIZON_STEPS, gradient_scale=np.array([1.0] + [1e-3] * (HORIZON_STEPS - 1)),
               theta_scale=1e-2),
    _sensitive("epsilon-dominated", 8, {"betas": LOW_CONDITION_BETAS, "eps": 1e-2, "weight_decay": 0.0},
               [1.0] * 8, gradient_scale=np.full(8, 1e-5), theta_scale=1e-2),
    _sensitive("beta1-sign-flips", 12, {"betas": (0.9, 0.5), "eps": 1e-8, "weight_decay": 0.0}, [1e-2] * 12,
               gradient_scale=np.ones(12), theta_scale=1e-2, alternating=True),
    _sensitive("schedule-edge", 8, {"betas": LOW_CONDITION_BETAS, "eps": 1e-8, "weight_decay": 1e-3},
               [1e-3, 0.05, 0.1, 0.0, 0.0, 0.1, 0.02, 0.1], gradient_scale=np.ones(8)),
    _sensitive("large-decay", 6, {"betas": LOW_CONDITION_BETAS, "eps": 1e-8, "weight_decay": 0.8}, [0.5] * 6,
               gradient_scale=np.ones(6)),
    _sensitive("rectified-epsilon", 10, {"betas": (0.5, 0.9), "eps": 1e-2, "weight_decay": 0.0}, [1.0] * 10,
               gradient_scale=np.full(10, 1e-5), theta_scale=1e-2, rules=frozenset({"radam"})),
)

#: The elements of each :data:`BIAS_CASES` tensor: enough flips for the bias test, below the 4,096 from which
#: bitsandbytes and torchao quantize their state.
BIAS_ELEMENTS = 2048

_LOW_PRECISION = frozenset({"bfloat16", "float16"})


def bias_cases(seed: int = 0) -> tuple[Case, ...]:
    """The :data:`BIAS_CASES`, their values drawn from ``seed`` (0: the named cases themselves)."""
    size = [(BIAS_ELEMENTS,)]
    return (
        _sensitive("bias-decay", 3, {"betas": LOW_CONDITION_BETAS, "eps": 2.0**-7, "weight_decay": 0.5},
                   [0.125] * 3, gradient_scale=np.full(3, 1e-5), shapes=size, only_in=_LOW_PRECISION, seed=seed),
        _sensitive("bias-epsilon", 3, {"betas": LOW_CONDITION_BETAS, "eps": 2.0**-7, "weight_decay": 0.0},
                   [2.0**-5] * 3, gradient_scale=np.full(3, 2.0**-12), theta_scale=1e-2, shapes=size,
                   only_in=_LOW_PRECISION, seed=seed),
        _sensitive("bias-first-moment", 3, {"betas": (0.875, 0.5), "eps": 1e-8, "weight_decay": 0.0},
                   [2.0**-7] * 3, gradient_scale=np.ones(3), theta_scale=1e-2, alternating=True, shapes=size,
                   only_in=_LOW_PRECISION, seed=seed),
        _sensitive("bias-second-moment", 3, {"betas": (0.5, 0.125), "eps": 1e-8, "weight_decay": 0.0},
                   [2.0**-7] * 3, gradient_scale=np.array([1.0, 1e-2, 1e-2]), theta_scale=1e-2, shapes=size,
                   only_in=_LOW_PRECISION, seed=seed),
    )


#: Cases for the bias test (:mod:`optspec.conformance.bias`), run in bfloat16 and float16 only, where the
#: per-element bounds are tens of units wide.  Each moves the parameters by many units of their rounding in
#: its first steps, where a kernel holding its state in the parameters' dtype has not yet drifted from the
#: spec's (the test's allowance for that drift grows with the step), so that a 1 % change in its
#: hyperparameter moves a tenth of a unit or more, in most elements, one way:
#:
#: - ``bias-decay``: lr·λ = 1/16, parameters of 1 and an ε-dominated Adam step of about 1e-4: the decay is
#:   about 8 units of bfloat16, and :math:`1 - \mathrm{lr}\lambda` is exact in bfloat16, which torch's foreach
#:   kernel rounds it to (``_foreach_mul_`` casts its scalar to the parameters' dtype);
#: - ``bias-epsilon``: an ε-dominated step (gradients 1/64 to 1/32 of ε = 2^-7, which is exact in bfloat16,
#:   the dtype torch's ``add_`` rounds its scalar to), about 16 units of parameters of 1e-2.  Not smaller:
#:   where :math:`\sqrt{\hat v}` is below half a unit of ε, a kernel adding them in bfloat16 loses it in
#:   every element, a systematic 0.1 % (torch's for-loop and foreach kernels do);
#: - ``bias-first-moment``: gradients that flip sign, so that the second step's :math:`\hat m_2` moves by
#:   about :math:`2\beta_1/(1-\beta_1^2)` = 7.5 times a relative change of β1 at 0.875 (``beta1-sign-flips``);
#: - ``bias-second-moment``: a second gradient 1e-2 of the first at β2 = 0.125, so that
#:   :math:`\hat v_2 \approx \beta_2 g_1^2/(1+\beta_2)` moves by about 6 % for 1 % of :math:`1-\beta_2`.
#:
#: Every lr and β here is exact in bfloat16 and float16, and so is ε where it moves the step, so that a
#: kernel holding them there (Keras, MLX) is allowed nothing for their rounding
#: (:func:`optspec.conformance.bias.scalar_roundoff`).
BIAS_CASES: tuple[Case, ...] = bias_cases()



def sign_ties(seed: int = 0, steps: int = 6, size: int = 12) -> Case:
    r"""Lion's sign argument :math:`c_t = \beta_1 m_{t-1} + (1-\beta_1) g_t` at 0 on purpose.

    In elements 0-1 the first two gradients are 0, so :math:`c_1 = c_2 = 0`
    exactly in any kernel (the sign of 0, which is 0 everywhere); in 2-5 the
    second gradient is :math:`-\beta_1(1-\beta_2)/(1-\beta_1)` times the first,
    so :math:`c_2 = 0` in exact arithmetic and, once the gradients are rounded
    to the subject's dtype, within its rounding of 0; in 6-7 it is one float32
    ulp off that; the other elements, and every later step, are drawn at
    random (``seed``).  A correct kernel may take either sign where the
    argument is tied (:mod:`optspec.conformance.branches`).  Parameters of
    1e-2 and lr = 1e-2 keep a sign's step (lr) far above the parameters'
    rounding, in bfloat16 too; lr·λ = 1e-3."""
    rng = np.random.default_rng(seed)
    betas = (0.9, 0.99)
    g = _signed(rng, (steps, size), 1.0)
    g[:2, :2] = 0.0
    tie = -betas[0] * (1 - betas[1]) / (1 - betas[0])
    g[1, 2:6] = tie * g[0, 2:6]
    g[1, 6:8] = tie * g[0, 6:8] * (1 + np.array([1.0, -1.0]) * 2.0**-24)
    return Case([_signed(rng, (size,), 1e-2)], [g], [1e-2] * steps, {"betas": betas, "weight_decay": 0.1},
                label="sign-ties" if seed == 0 else f"sign-ties-{seed}", rules=frozenset({"lion"}))


def step_size_bounds(seed: int = 0, steps: int = 6, size: int = 12) -> Case:
    r"""Rprop from a first lr (1e-7) below ``step_sizes``' minimum (1e-6), on gradients of random signs: where the
    step size is clipped at every step (torch) it is 1e-6 from the first step, where it is clipped only when
    multiplied by :math:`\eta_\pm` (optax) it stays 1e-7 until the gradient's sign is compared; in elements
    8-11 the gradients are about 1e-23, whose products underflow in float32 and bfloat16 (a tie: the kernel's
    product is 0 where the float64 one is not).  Parameters of 1e-4 keep the steps above their rounding."""
    rng = np.random.default_rng(seed)
    g = _signed(rng, (steps, size), 1.0)
    g[:, 8:] *= 1e-23
    return Case([_signed(rng, (size,), 1e-4)], [g], [1e-7] * steps, {"step_sizes": (1e-6, 50.0)},
                label="step-size-bounds" if seed == 0 else f"step-size-bounds-{seed}", rules=frozenset({"rprop"}))


#: Sizes at which real kernels switch algorithm: bitsandbytes' and torchao's
#: 8-bit AdamW keep 8-bit state only from 4,096 elements on (and torchao only
#: for multiples of its block size), and blockwise kernels change at 65,536.
LARGE_SIZES = (4096, 65536)

#: Discriminating cases: each separates one knob by a wide margin.  Tiny
#: gradients against a large ε split the ε placements; a varying schedule with
#: large lr·λ splits the decay scales and points; early steps (bias
#: corrections far from 1) split bias correction; shrinking gradients make the
#: AMSGrad maximum matter; momentum under that schedule splits where SGD's and
#: RMSprop's lr multiplies (inside or outside the trace); with ε = 0 and an
#: accumulator that starts at 0, a first gradient of zeros splits Adagrad's zero
#: guard (0 against 0/0); tensors of :data:`LARGE_SIZES` elements reach the
#: kernels that only large tensors take.  At these sizes the float64 reference
#: of every element costs milliseconds, so every element of every step is
#: checked with the full model, as for the small cases.
NAMED_CASES: tuple[Case, ...] = (
    _named("epsilon-placement", 6, {"eps": 1e-3, "weight_decay": 0.1}, grad_scale=1e-3),
    _named("decay-scale-and-point", 6, {"eps": 1e-8, "weight_decay": 0.5}),
    _named("bias-correction", 3, {"eps": 1e-8, "weight_decay": 0.0, "betas": (0.9, 0.999)}),
    _named("amsgrad", 8, {"eps": 1e-8, "amsgrad": True, "weight_decay": 0.0}, decreasing=True),
    _named("maximize", 4, {"maximize": True, "weight_decay": 0.1}),
    _named("exact-zeros-and-resume", 8, {"eps": 1e-6, "weight_decay": 0.1}, zeros=True, restore_at=4),
    _named("momentum-under-schedule", 6, {"momentum": 0.9, "eps": 1e-8, "weight_decay": 0.0},
           rules=frozenset({"sgd", "sgdw", "rmsprop"})),
    _named("damped-momentum", 4, {"momentum": 0.9, "dampening": 0.5, "weight_decay": 0.0},
           rules=frozenset({"sgd"})),
    _named("zero-accumulator", 4, {"eps": 0.0, "initial_accumulator_value": 0.0, "weight_decay": 0.0},
           zeros=True, rules=frozenset({"adagrad"}), refusable=frozenset({"eps"})),
    *SENSITIVE_CASES,
    *BIAS_CASES,
    sign_ties(),
    step_size_bounds(),
    _large("large-tensors", LARGE_SIZES, 6, {"weight_decay": 0.1}),
)


def restricted(case: Case, subject: SubjectInfo) -> Case:
    """``case`` without the hyperparameters that ``subject`` cannot express."""
    return dataclasses.replace(case, hyper={k: v for k, v in case.hyper.items() if k in subject.supports})


def sharded_cases(sharding: Sharding) -> tuple[Case, ...]:
    """The cases where sharding matters, run first for a sharded subject:

    - ``uneven-shards``: first dimensions that the world size does not divide, so the last shard is short,
      beside one it divides (a mesh, which cannot split the others, splits that one);
    - ``smaller-than-world``: tensors with fewer rows than ranks (and a 0-d one), so some ranks hold
      empty shards;
    - ``sharded-resume``: the same shards, their state saved mid-run, as the strategy checkpoints it, and
      restored into a fresh optimizer;
    - ``resharded-resume``: the same, saved with the strategy's distributed checkpoint and resumed on
      :attr:`~optspec.adapters.driver.Sharding.resume_world_size` ranks, where it has one; one of its
      tensors has rows both world sizes divide, so that a mesh, which cannot split the others, splits it;
    - ``mixed-dtypes``: the uneven shapes in one model, two of its tensors in the certification dtype's
      :data:`COMPANION_DTYPES` entry (torch's foreach and fused kernels group tensors by dtype; FSDP2
      shards each dtype's parameters in a group of their own), unless the strategy takes one dtype only
      (:attr:`~optspec.adapters.driver.Sharding.one_dtype`).
    """
    world_size = sharding.world_size
    uneven = [(2 * world_size + 1, 3), (world_size + 1,), (2 * world_size, 2)]
    cases = [
        _named("uneven-shards", 6, {"eps": 1e-8, "weight_decay": 0.1}, shapes=uneven),
        _named("smaller-than-world", 6, {"eps": 1e-8, "weight_decay": 0.1},
               shapes=[(max(world_size - 1, 1),), (1, 2), ()]),
        _named("sharded-resume", 8, {"eps": 1e-6, "weight_decay": 0.1}, zeros=True, restore_at=4, shapes=uneven),
    ]
    if sharding.one_dtype is None:
        # β of low condition and parameters a tenth of the step: bfloat16's bounds stay well below one step
        # (at β2 = 0.999, or beside parameters of 1, they do not)
        mixed = _named("mixed-dtypes", 6, {"betas": LOW_CONDITION_BETAS, "eps": 1e-8, "weight_decay": 0.1},
                       shapes=uneven)
        cases.append(dataclasses.replace(mixed, params0=[p / 10 for p in mixed.params0],
                                         companion_tensors=frozenset({1, 2})))
    if sharding.resume_world_size is not None:
        resume = dataclasses.replace(
            _named("resharded-resume", 8, {"eps": 1e-6, "weight_decay": 0.1}, zeros=True, restore_at=4,
                   shapes=[(2 * world_size * sharding.resume_world_size + 1, 2), (3,), (),
                           (2 * world_size * sharding.resume_world_size, 2)]),
            resume_world_size=sharding.resume_world_size)
        cases.append(resume)
    return tuple(cases)


def named_cases_for(subject: SubjectInfo, dtype: str | None = None) -> list[Case]:
    """The named cases whose hyperparameters the subject can express (a sharded one's
    :func:`sharded_cases` first).

    The ``amsgrad`` and ``maximize`` cases exist only to exercise that flag, so
    they are dropped for a subject without it, and a case meant for other
    rules (:attr:`Case.rules`) is dropped too, as is one meant for other dtypes (:attr:`Case.only_in`) where
    ``dtype`` is given.
    """
    sharded = sharded_cases(subject.sharding) if subject.sharding is not None else ()
    return [
        restricted(case, subject)
        for case in (*sharded, *NAMED_CASES)
        if (case.label not in ("amsgrad", "maximize") or case.label in subject.supports)
        and (case.rules is None or subject.rule in case.rules)
        and (case.only_in is None or dtype is None or dtype in case.only_in)
    ]
