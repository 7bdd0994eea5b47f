"""The spec-backed optimizers: they certify, they train like the native ones, and they check their input."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from optspec import adapters, spec
from optspec.conformance.certify import certify
from tests.conftest import needs

PAPER = "tests.plugins.spec_backed"
SPEC_BACKED = {
    "torch": "optspec.adapters.torch.optimizer:AdamW",
    "jax": "optspec.adapters.jax.optimizer:adamw",
    "tensorflow": "optspec.adapters.tensorflow.optimizer:AdamW",
}
PAPER_BACKED = {
    "torch": f"{PAPER}:PaperTorchAdamW",
    "jax": f"{PAPER}:paper_optax_adamw",
    "tensorflow": f"{PAPER}:PaperKerasAdamW",
}


def _dtype(framework):
    return "float32" if framework == "tensorflow" else "float64"


@pytest.mark.parametrize("framework", [pytest.param(f, marks=needs(f)) for f in SPEC_BACKED])
def test_the_spec_backed_optimizer_certifies_against_its_frameworks_preset(framework):
    (subject,) = adapters.resolve_subject(framework, SPEC_BACKED[framework])
    cert = certify(subject, dtype=_dtype(framework), examples=100)
    assert cert.conforms, cert.failure
    assert cert.convention == {"torch": "torch", "jax": "optax", "tensorflow": "keras"}[framework]


@pytest.mark.parametrize("framework", [pytest.param(f, marks=needs(f)) for f in PAPER_BACKED])
def test_the_papers_schedule_coupled_decay_certifies_in_every_framework(framework):
    (subject,) = adapters.resolve_subject(framework, PAPER_BACKED[framework])
    assert certify(subject, convention="paper", dtype=_dtype(framework), examples=60).conforms
    against_lr_scaled = certify(subject, convention="torch", dtype=_dtype(framework), examples=60)
    assert not against_lr_scaled.conforms
    assert "decay_scale=schedule" in against_lr_scaled.failure.hint


def _spec_message(**bad):
    with pytest.raises(ValueError) as raised:
        rule = spec.get_rule("adamw")
        hyper = rule.hyperparameters(bad.pop("convention", "torch"), **{k: v for k, v in bad.items() if k != "lr"})
        rule.check(lr=bad.get("lr", 1e-3), **hyper)
    return str(raised.value)


BAD_INPUT = [
    {"betas": (1.0, 0.999)},
    {"eps": -1e-8},
    {"weight_decay": float("nan")},
    {"lr": -1.0},
    {"convention": "adam-ish"},
    {"amsgrad": True, "convention": "bert"},
]


def _construct(framework, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
               convention="torch"):
    if framework == "torch":
        import torch

        from optspec.adapters.torch.optimizer import AdamW
        return AdamW([torch.nn.Parameter(torch.zeros(3))], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                     amsgrad=amsgrad, convention=convention)
    if framework == "jax":
        from optspec.adapters.jax.optimizer import adamw
        return adamw(lr, b1=betas[0], b2=betas[1], eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                     convention=convention)
    from optspec.adapters.tensorflow.optimizer import AdamW
    return AdamW(lr, weight_decay=weight_decay, beta_1=betas[0], beta_2=betas[1], epsilon=eps, amsgrad=amsgrad,
                 convention=convention)


@pytest.mark.parametrize("bad", BAD_INPUT, ids=lambda bad: ",".join(bad))
@pytest.mark.parametrize("framework", [pytest.param(f, marks=needs(f)) for f in SPEC_BACKED])
def test_bad_input_gets_the_specs_own_message(framework, bad):
    expected = _spec_message(**bad)
    with pytest.raises(ValueError) as raised:
        _construct(framework, **bad)
    assert str(raised.value) == expected


def _data(n=256, features=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features))
    y = (x @ rng.normal(size=features) + 0.3 * rng.normal(size=n) > 0).astype(np.float64)
    return x, y


def _train_torch(make_optimizer, steps=150):
    import torch

    x, y = (torch.as_tensor(a, dtype=torch.float32) for a in _data())
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    decayed = [p for n, p in model.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
    optimizer = make_optimizer([{"params": decayed}, {"params": biases, "weight_decay": 0.0}])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(-1), y)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return losses


def _train_optax(transformation, steps=150):
    import jax
    import jax.numpy as jnp
    import optax

    x, y = (jnp.asarray(a, jnp.float32) for a in _data())
    key1, key2 = jax.random.split(jax.random.PRNGKey(0))
    params = {"w1": 0.3 * jax.random.normal(key1, (8, 16), jnp.float32), "b1": jnp.zeros(16, jnp.float32),
              "w2": 0.3 * jax.random.normal(key2, (16,), jnp.float32), "b2": jnp.zeros((), jnp.float32)}

    def loss_fn(p):
        return optax.sigmoid_binary_cross_entropy(jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"], y).mean()

    state = transformation.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = transformation.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    losses = []
    for _ in range(steps):
        params, state, loss = step(params, state)
        losses.append(float(loss))
    return losses


def _train_keras(optimizer, epochs=150):
    import keras

    x, y = (a.astype("float32") for a in _data())
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(1)])
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    model.compile(optimizer=optimizer, loss=keras.losses.BinaryCrossentropy(from_logits=True), jit_compile=True)
    history = model.fit(x, y, batch_size=len(x), epochs=epochs, verbose=0, shuffle=False)
    return history.history["loss"]


def _assert_trains_alike(native, spec_backed):
    assert spec_backed[-1] < 0.5 * spec_backed[0], f"the loss went from {spec_backed[0]} to {spec_backed[-1]}"
    np.testing.assert_allclose(spec_backed, native, rtol=1e-4, err_msg="the loss curves part")


@needs("torch")
def test_the_torch_optimizer_trains_an_mlp_like_torch_adamw():
    import torch

    from optspec.adapters.torch.optimizer import AdamW

    native = _train_torch(lambda groups: torch.optim.AdamW(groups, lr=3e-2, weight_decay=0.1))
    _assert_trains_alike(native, _train_torch(lambda groups: AdamW(groups, lr=3e-2, weight_decay=0.1)))


@needs("jax")
def test_the_optax_transformation_trains_an_mlp_like_optax_adamw():
    import optax

    from optspec.adapters.jax.optimizer import adamw

    schedule = optax.cosine_decay_schedule(3e-2, 150)

    def mask(params):
        return {name: name.startswith("w") for name in params}

    native = _train_optax(optax.adamw(schedule, weight_decay=0.1, mask=mask))
    _assert_trains_alike(native, _train_optax(adamw(schedule, weight_decay=0.1, mask=mask)))


@needs("tensorflow")
def test_the_keras_optimizer_trains_an_mlp_like_keras_adamw():
    import keras

    from optspec.adapters.tensorflow.optimizer import AdamW

    native = _train_keras(keras.optimizers.AdamW(3e-2, weight_decay=0.1, epsilon=1e-7))
    _assert_trains_alike(native, _train_keras(AdamW(3e-2, weight_decay=0.1, epsilon=1e-7)))


@needs("torch")
def test_a_torch_adamw_checkpoint_loads_into_the_spec_optimizer_and_continues_on_its_trajectory():
    """Within a few float64 ulps: inductor may contract a multiply-add that eager torch rounds twice."""
    import torch

    from optspec.adapters.torch.optimizer import AdamW

    rng = np.random.default_rng(3)
    grads = torch.as_tensor(rng.normal(size=(20, 5)))
    params = [torch.nn.Parameter(torch.as_tensor(rng.normal(size=5))) for _ in range(2)]
    native = torch.optim.AdamW([params[0]], lr=1e-2, weight_decay=0.1, amsgrad=True)
    for g in grads[:10]:
        params[0].grad = g.clone()
        native.step()
    params[1].data.copy_(params[0].data)
    resumed = AdamW([params[1]], lr=1e-2, weight_decay=0.1, amsgrad=True)
    resumed.load_state_dict(copy.deepcopy(native.state_dict()))  # state_dict() shares the tensors
    for g in grads[10:]:
        for p, optimizer in zip(params, (native, resumed)):
            p.grad = g.clone()
            optimizer.step()
    torch.testing.assert_close(params[1], params[0], rtol=1e-14, atol=0)


@needs("torch")
def test_one_compiled_torch_step_serves_every_shape_of_a_dtype():
    """Unit dimensions, 0-d and non-contiguous parameters: no recompile per shape, and the eager spec's values."""
    import torch

    from optspec.adapters.torch.compiled import torch_inplace_step
    from optspec.adapters.torch.optimizer import AdamW

    rng = np.random.default_rng(4)
    shapes = [(1, 1, 1), (1, 5, 1), (3, 1, 2), (1, 1, 4), (2, 3, 1), (1, 2, 1, 1), (6, 1), (1, 7), (), (9,), (1,)]
    values = [rng.normal(size=s) for s in shapes] + [rng.normal(size=(4, 3))]

    def tensors():
        made = [torch.nn.Parameter(torch.as_tensor(v, dtype=torch.float32)) for v in values]
        made[-1] = torch.nn.Parameter(made[-1].detach().t())  # not contiguous
        return made

    compiled_params, eager_params = tensors(), tensors()
    assert not compiled_params[-1].is_contiguous()
    compiled = AdamW(compiled_params, lr=1e-2, weight_decay=0.1, convention="keras", amsgrad=True)
    eager = AdamW(eager_params, lr=1e-2, weight_decay=0.1, convention="keras", amsgrad=True, compile=False)
    step = torch_inplace_step("adamw", "keras", True, False, dynamic=True, cache_key=(torch.float32, "cpu"))
    for _ in range(3):
        for a, b in zip(compiled_params, eager_params):
            a.grad = torch.as_tensor(rng.normal(size=a.shape), dtype=torch.float32)
            b.grad = a.grad.clone()
        compiled.step()
        eager.step()
    for a, b in zip(compiled_params, eager_params):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    entries = torch._dynamo.eval_frame._debug_get_cache_entry_list(step._torchdynamo_orig_callable.__code__)
    assert len(entries) <= 2, f"{len(entries)} compilations for one dtype: a shape recompiled"
