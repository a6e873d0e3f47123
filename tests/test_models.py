"""Conformance suite every model passes, plus Transformer causality and the user errors.

Model code runs under strict dtype promotion here (``_strict``), whatever conftest sets, so
no model relies on implicit promotion; only optax's own update runs under "standard".
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from gossip.models import MODELS, Model, make_model

from gossip.data import load_dataset
from gossip.errors import ConfigError


@pytest.fixture(autouse=True)
def _strict() -> Iterator[None]:
    with jax.numpy_dtype_promotion("strict"):
        yield


@dataclass(frozen=True)
class Case:
    """One model on one kind of data: a tiny learnable synthetic batch and its shapes."""

    id: str
    name: str
    meta: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    steps: int = 60
    lr: float = 0.03

    def data(self, n: int = 32) -> tuple[jax.Array, jax.Array]:
        """A fixed batch ``(x (n, *input_shape), y)`` the model can fit.

        For ratings, ``n`` pairs out of all ``n_users * n_items`` (every pair if n is larger).
        """
        rng = np.random.default_rng(0)
        task, shape = self.meta["task"], self.meta["input_shape"]
        if task == "lm":  # next token = current + 1 (mod V): fully predictable
            v, t = self.meta["vocab_size"], self.meta["seq_len"]
            seq = (rng.integers(0, v, size=(n, 1)) + np.arange(t + 1)) % v
            return jnp.asarray(seq[:, :-1], jnp.int32), jnp.asarray(seq[:, 1:], jnp.int32)
        if task == "ratings":  # low-rank ratings of every (user, item) pair
            nu, ni = self.meta["n_users"], self.meta["n_items"]
            u, i = np.meshgrid(np.arange(nu), np.arange(ni), indexing="ij")
            x = np.stack([u.ravel(), i.ravel()], axis=1)[rng.permutation(nu * ni)[:n]]
            pu, qi = rng.normal(size=(nu, 2)), rng.normal(size=(ni, 2))
            y = 3.0 + np.sum(pu[x[:, 0]] * qi[x[:, 1]], axis=1)
            return jnp.asarray(x, jnp.int32), jnp.asarray(y, jnp.float32)
        x = rng.normal(size=(n, *shape)).astype(np.float32)
        if task == "classification":  # random labels: the model must memorise them
            y = rng.integers(0, self.meta["num_classes"], size=n)
            return jnp.asarray(x), jnp.asarray(y, jnp.int32)
        w = rng.normal(size=x[0].size) / np.sqrt(x[0].size)
        return jnp.asarray(x), jnp.asarray(x.reshape(n, -1) @ w, jnp.float32)

    def out_shape(self, batch: int) -> tuple[int, ...]:
        """The shape ``apply`` must give for a batch."""
        task = self.meta["task"]
        if task == "classification":
            return (batch, self.meta["num_classes"])
        if task == "lm":
            return (batch, self.meta["seq_len"], self.meta["vocab_size"])
        return (batch,)

    def model(self) -> Model:
        """The model under test."""
        return make_model(self.name, self.meta, **self.options)


def _cls(shape: tuple[int, ...], classes: int = 4) -> dict[str, Any]:
    return {"task": "classification", "num_classes": classes, "input_shape": shape}


def _reg(shape: tuple[int, ...]) -> dict[str, Any]:
    return {"task": "regression", "num_classes": None, "input_shape": shape}


LM_META = {"task": "lm", "num_classes": 11, "input_shape": (12,), "vocab_size": 11,
           "seq_len": 12}
RATINGS_META = {"task": "ratings", "num_classes": None, "input_shape": (2,), "n_users": 12,
                "n_items": 10}

# The full conformance suite (init, apply, loss, metric, jit(grad), vmap, training) per case.
CASES = [
    Case("linear", "linear", _reg((10,))),
    Case("logistic-cls", "logistic", _cls((8, 8))),
    Case("logistic-reg", "logistic", _reg((10,))),
    Case("mlp-cls", "mlp", _cls((20,)), {"hidden": [32, 16]}),
    Case("mlp-reg", "mlp", _reg((10,)), {"hidden": (16,)}),
    Case("cnn1d", "cnn1d", _cls((40,)), {"channels": (4, 8), "hidden": 16}),
    Case("cnn2d-digits", "cnn2d", _cls((8, 8), 10), lr=0.01),
    Case("transformer", "transformer", LM_META, {"d_model": 32, "heads": 4}, lr=0.01),
    Case("mf", "mf", RATINGS_META, {"rank": 4}, steps=100),
]
# Checks that compile the random initialisers again (slow on CPU) run on cheap models only.
CHEAP_CASES = ("linear", "logistic-cls", "mlp-reg", "mf")
# More configurations, checked by shape only (jax.eval_shape: traced, never compiled).
SHAPE_CASES = [
    Case("linear-2d", "linear", _reg((3, 4))),
    Case("logistic-reg-2d", "logistic", _reg((3, 4))),
    Case("mlp-default", "mlp", _cls((8, 8), 10)),
    Case("mlp-linear", "mlp", _reg((6,)), {"hidden": []}),
    Case("cnn1d-channels", "cnn1d", _cls((24, 3)), {"channels": [4], "kernel": 3}),
    Case("cnn1d-reg", "cnn1d", _reg((16,))),
    Case("cnn1d-odd", "cnn1d", _cls((5,)), {"channels": (2, 2, 2, 2)}),
    Case("cnn2d-28", "cnn2d", _cls((28, 28), 10)),
    Case("cnn2d-rgb", "cnn2d", _cls((9, 7, 3))),
    Case("cnn2d-reg", "cnn2d", _reg((8, 8, 1)), {"kernel": 5}),
    Case("transformer-default", "transformer", LM_META),
    Case("mf-default", "mf", RATINGS_META),
]

CASES_BY_ID = {c.id: c for c in CASES}


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


def _stack(trees: list[Any]) -> Any:
    return jax.tree.map(lambda *a: jnp.stack(a), *trees)


class Compiled(NamedTuple):
    """A case's model and its jitted functions, compiled once and shared by the tests."""

    model: Model
    run: Any  # jit: (params, x, y) -> (outputs, loss, metric, grads)
    vrun: Any  # the same vmapped over a leading peer axis of params only


@functools.cache
def _compiled(case_id: str) -> Compiled:
    model = CASES_BY_ID[case_id].model()

    def run(params: Any, x: jax.Array, y: jax.Array) -> tuple[Any, ...]:
        loss, grads = jax.value_and_grad(model.loss)(params, x, y)
        return model.apply(params, x), loss, model.metric(params, x, y), grads

    return Compiled(model, jax.jit(run), jax.jit(jax.vmap(run, in_axes=(0, None, None))))


def test_registry_names():
    assert sorted(MODELS) == sorted(["linear", "logistic", "mlp", "cnn1d", "cnn2d", "transformer",
                                     "mf"])


def test_init_apply_loss_metric_grad(case, key):
    c = _compiled(case.id)
    x, y = case.data(8)
    params = c.model.init(key, x[:1])
    assert c.model.name == case.name
    leaves, treedef = jax.tree.flatten(params)
    assert leaves and all(isinstance(a, jax.Array) and a.dtype == jnp.float32 for a in leaves)
    assert isinstance(params, dict)
    assert jax.tree.structure(jax.tree.map(np.asarray, params)) == treedef  # no flax objects
    out, loss, metric, grads = c.run(params, x, y)
    assert out.shape == case.out_shape(8)
    assert loss.shape == () and loss.dtype == jnp.float32 and np.isfinite(loss)
    assert metric.shape == () and metric.dtype == jnp.float32
    if c.model.metric_name == "accuracy":
        assert case.meta["task"] in ("classification", "lm") and 0.0 <= metric <= 1.0
    else:
        assert c.model.metric_name == "rmse" and metric >= 0.0
        np.testing.assert_allclose(metric**2, loss, rtol=1e-5)
    assert jax.tree.structure(grads) == treedef
    for g, p in zip(jax.tree.leaves(grads), leaves, strict=True):
        assert g.shape == p.shape and g.dtype == p.dtype and np.all(np.isfinite(g))
    assert any(np.any(g != 0) for g in jax.tree.leaves(grads))
    # numpy inputs give the same result
    np.testing.assert_allclose(c.run(params, np.asarray(x), np.asarray(y))[1], loss, rtol=1e-6)


def test_init_is_deterministic_and_key_dependent(case):
    c = _compiled(case.id)
    x, _ = case.data(2)
    a, b = c.model.init(jax.random.key(1), x[:1]), c.model.init(jax.random.key(1), x[:1])
    other = c.model.init(jax.random.key(2), x[:1])
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert any(not np.array_equal(u, v) for u, v in zip(jax.tree.leaves(a),
                                                           jax.tree.leaves(other), strict=True))
    if case.id in CHEAP_CASES:  # the sample's batch size does not matter (another compile)
        jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7), a,
                     c.model.init(jax.random.key(1), x))


def test_vmap_over_peers_matches_each_peer(case):
    c = _compiled(case.id)
    x, y = case.data(8)
    keys = [jax.random.key(k) for k in (3, 4, 5)]
    peers = [c.model.init(k, x[:1]) for k in keys]
    stacked = _stack(peers)
    if case.id in CHEAP_CASES:  # as the simulator builds its stacked params
        vinit = jax.vmap(c.model.init, in_axes=(0, None))(jnp.stack(keys), x[:1])
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), vinit, stacked)
    out, losses, metrics, grads = c.vrun(stacked, x, y)
    assert out.shape == (3, *case.out_shape(8)) and losses.shape == metrics.shape == (3,)
    for i, p in enumerate(peers):
        want = c.run(p, x, y)
        np.testing.assert_allclose(out[i], want[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(losses[i], want[1], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(metrics[i], want[2], rtol=1e-4, atol=1e-6)
        jax.tree.map(lambda a, b, i=i: np.testing.assert_allclose(a[i], b, rtol=1e-3,
                                                                  atol=1e-5), grads, want[3])


def test_training_reduces_loss(case, key):
    c = _compiled(case.id)
    x, y = case.data(n=1000 if case.name == "mf" else 32)
    params = c.model.init(key, x[:1])
    opt = optax.adam(case.lr)

    @jax.jit
    def train(params: Any) -> Any:
        with jax.numpy_dtype_promotion("standard"):  # optax's Adam mixes float and int32
            state = opt.init(params)

        def body(carry: Any, _: Any) -> tuple[Any, None]:
            params, state = carry
            grads = jax.grad(c.model.loss)(params, x, y)
            with jax.numpy_dtype_promotion("standard"):
                updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        first = c.model.loss(params, x, y)
        (params, _), _ = jax.lax.scan(body, (params, state), None, length=case.steps)
        return first, c.model.loss(params, x, y), c.model.metric(params, x, y)

    first, last, metric = train(params)
    assert last < 0.2 * first, (first, last)
    if c.model.metric_name == "accuracy":
        assert metric >= 0.95, metric
    else:
        assert metric < 0.5 * np.sqrt(first), (first, metric)


def test_mlp_overfits_with_sgd(key):
    """Plain SGD (no Adam) drives the training accuracy on 32 random labels to 1."""
    case = Case("mlp", "mlp", _cls((16,), 5), {"hidden": [64]})
    model = case.model()
    x, y = case.data()
    params = model.init(key, x[:1])
    opt = optax.sgd(0.2, momentum=0.9)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        updates, state = opt.update(jax.grad(model.loss)(params, x, y), state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(100):
        params, state = step(params, state)
    assert jax.jit(model.metric)(params, x, y) == 1.0


@pytest.mark.parametrize("case", SHAPE_CASES, ids=[c.id for c in SHAPE_CASES])
def test_shapes(case, key):
    model = case.model()
    x, y = case.data(5)
    params = jax.eval_shape(model.init, key, x[:1])
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(params))
    assert jax.eval_shape(model.apply, params, x).shape == case.out_shape(5)
    for fn in (model.loss, model.metric):
        out = jax.eval_shape(fn, params, x, y)
        assert out.shape == () and out.dtype == jnp.float32
    grads = jax.eval_shape(jax.grad(model.loss), params, x, y)
    assert jax.tree.structure(grads) == jax.tree.structure(params)


def test_default_hyper_parameters(key):
    shapes = {c.id: jax.eval_shape(c.model().init, key, c.data(1)[0])
              for c in SHAPE_CASES if c.id.endswith("default")}
    mlp = shapes["mlp-default"]
    assert [mlp[k]["kernel"].shape for k in ("hidden_0", "hidden_1", "out")] == [
        (64, 128), (128, 64), (64, 10)]
    lm = shapes["transformer-default"]
    assert sorted(k for k in lm if k.startswith("block_")) == ["block_0", "block_1"]
    assert lm["tok_embed"]["embedding"].shape == (11, 64)
    assert lm["block_0"]["attn"]["qkv"]["kernel"].shape == (64, 192)
    assert shapes["mf-default"]["user"]["embedding"].shape == (12, 16)
    cnn = jax.eval_shape(CASES_BY_ID["cnn2d-digits"].model().init, key, jnp.ones((1, 8, 8)))
    assert cnn["conv_0"]["kernel"].shape == (3, 3, 1, 16)
    assert cnn["conv_1"]["kernel"].shape == (3, 3, 16, 32)


def test_transformer_is_causal(key):
    c = _compiled("transformer")
    x, y = CASES_BY_ID["transformer"].data(8)
    params = c.model.init(key, x[:1])
    logits = c.run(params, x, y)[0]
    for t in (0, 5, 10):
        changed = x.at[:, t + 1:].set((x[:, t + 1:] + 3) % LM_META["vocab_size"])
        other = c.run(params, changed, y)[0]
        np.testing.assert_allclose(other[:, :t + 1], logits[:, :t + 1], rtol=1e-5, atol=1e-6)
        assert not np.allclose(other[:, t + 1:], logits[:, t + 1:])
    # sequences shorter than seq_len use the first position embeddings
    short = jax.jit(c.model.apply)(params, x[:, :5])
    np.testing.assert_allclose(short, logits[:, :5], rtol=1e-5, atol=1e-6)


def test_mf_prediction_is_dot_plus_biases(key):
    c = _compiled("mf")
    x, y = CASES_BY_ID["mf"].data(8)
    params = c.model.init(key, x[:1])
    params = jax.tree.map(lambda a: a + 0.5, params)  # non-zero biases
    u, i = params["user"]["embedding"], params["item"]["embedding"]
    want = (np.sum(u[x[:, 0]] * i[x[:, 1]], axis=1) + params["user_bias"]["embedding"][x[:, 0], 0]
            + params["item_bias"]["embedding"][x[:, 1], 0] + params["bias"])
    np.testing.assert_allclose(c.run(params, x, y)[0], want, rtol=1e-6)


def test_unknown_model():
    with pytest.raises(ConfigError, match=r"^unknown model 'resnet'; valid choices: cnn1d, "
                                          r"cnn2d, linear, logistic, mf, mlp, transformer$"):
        make_model("resnet", _cls((4,)))


def test_unknown_option():
    with pytest.raises(ConfigError) as info:
        make_model("mlp", _cls((4,)), foo=1)
    assert str(info.value) == "unknown option 'foo' for model 'mlp'; valid options: hidden"
    with pytest.raises(ConfigError, match="unknown option 'bias' for model 'linear'; valid "
                                          r"options: \(none\)"):
        make_model("linear", _reg((4,)), bias=True)
    with pytest.raises(ConfigError, match="unknown option 'hidden' for model 'logistic'"):
        make_model("logistic", _cls((4,)), hidden=[3])
    with pytest.raises(ConfigError, match="valid options: channels, hidden, kernel"):
        make_model("cnn2d", _cls((8, 8)), channel=3)


@pytest.mark.parametrize(("name", "meta", "message"), [
    ("mf", _cls((4,)), "model 'mf' needs a ratings dataset, got task 'classification'"),
    ("linear", _cls((4,)), "model 'linear' needs a regression dataset, got task "
                           "'classification'"),
    ("linear", _reg(()), "model 'linear' needs inputs of rank 1 or 2 or 3, got input shape ()"),
    ("transformer", _reg((4,)), "model 'transformer' needs an lm dataset, got task "
                                "'regression'"),
    ("mlp", LM_META, "model 'mlp' needs a classification or regression dataset, got task 'lm'"),
    ("logistic", RATINGS_META, "model 'logistic' needs a classification or regression"),
    ("cnn2d", _cls((40,)), "model 'cnn2d' needs inputs of rank 2 or 3, got input shape (40,)"),
    ("cnn1d", _cls((8, 8, 1)), "model 'cnn1d' needs inputs of rank 1 or 2"),
    ("cnn2d", LM_META, "model 'cnn2d' needs a classification or regression dataset"),
    ("mlp", {"input_shape": (4,)}, "model 'mlp': dataset meta has bad task None"),
    ("mlp", _cls((4,), classes=1), "'num_classes' must be an int >= 2, got 1"),
    ("transformer", {**LM_META, "vocab_size": None}, "'vocab_size' must be an int >= 1"),
    ("mf", {**RATINGS_META, "n_items": 0}, "'n_items' must be an int >= 1, got 0"),
])
def test_incompatible_dataset(name, meta, message):
    with pytest.raises(ConfigError) as info:
        make_model(name, meta)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("name", "meta", "options", "message"), [
    ("mlp", _cls((4,)), {"hidden": 32}, "option 'hidden' must be a list of ints >= 1"),
    ("mlp", _cls((4,)), {"hidden": [32, 0]}, "option 'hidden' must be a list"),
    ("cnn1d", _cls((8,)), {"channels": []}, "option 'channels' must be a non-empty list"),
    ("cnn2d", _cls((8, 8)), {"kernel": True}, "option 'kernel' must be an int >= 1"),
    ("transformer", LM_META, {"d_model": 30, "heads": 4}, "'heads' (4) must divide"),
    ("transformer", LM_META, {"layers": 0}, "option 'layers' must be an int >= 1, got 0"),
    ("mf", RATINGS_META, {"rank": 2.5}, "option 'rank' must be an int >= 1, got 2.5"),
    ("mf", RATINGS_META, {"global_bias": "3"}, "option 'global_bias' must be a number"),
])
def test_bad_option_values(name, meta, options, message):
    with pytest.raises(ConfigError, match=None) as info:
        make_model(name, meta, **options)
    assert message in str(info.value)


def test_mf_global_bias(key):
    x = jnp.zeros((1, 2), jnp.int32)
    params = _compiled("mf").model.init(key, x)  # rank 4, default global_bias
    assert params["bias"] == 3.0  # the middle of a 1-5 rating scale
    params = make_model("mf", RATINGS_META, global_bias=0).init(key, x)
    assert params["bias"] == 0.0 and params["bias"].dtype == jnp.float32


def test_linear_is_x_dot_w_with_mean_squared_error(key):
    """``{"w": (d,)}``, no bias; loss ``mean (x . w - y)^2``, its gradient ``2/B X^T (Xw - y)``."""
    ds = load_dataset("teacher_linear", num_samples=40, dim=5)
    model = make_model("linear", {**ds.meta, "task": ds.task})
    params = model.init(key, ds.x_train[:1])
    assert jax.tree.map(jnp.shape, params) == {"w": (5,)}
    x, y = ds.x_train.astype(np.float64), ds.y_train.astype(np.float64)
    w = np.asarray(params["w"], np.float64)
    np.testing.assert_allclose(model.apply(params, ds.x_train), x @ w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.loss(params, ds.x_train, ds.y_train),
                               np.mean((x @ w - y) ** 2), rtol=1e-5)
    np.testing.assert_allclose(jax.grad(model.loss)(params, ds.x_train, ds.y_train)["w"],
                               2 * x.T @ (x @ w - y) / len(y), rtol=1e-4, atol=1e-6)
    # At the least-squares solution the test RMSE is about the label noise (0.1).
    best = {"w": jnp.asarray(np.linalg.lstsq(x, y, rcond=None)[0], jnp.float32)}
    assert float(model.metric(best, ds.x_test, ds.y_test)) < 0.15
