"""Local training with batch size 0: the exact full-shard gradient, padded or not."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from gossip.models import make_model

from gossip.config import Config
from gossip.errors import ConfigError
from gossip.experiment import build_experiment, stack_shards
from gossip.training import (
    FULL_BATCH,
    full_batch,
    has_convolution,
    make_local_round,
    make_local_step,
    masked_loss,
    round_key,
    sample_batch,
)


def _pad(x: np.ndarray, m: int) -> np.ndarray:
    out = np.zeros((m, *x.shape[1:]), x.dtype)
    out[:len(x)] = x
    return out


def test_full_batch_step_is_the_exact_full_shard_gradient_step():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)).astype(np.float32), rng.normal(size=7).astype(np.float32)
    w0 = np.array([0.5, -1.0, 2.0], np.float32)
    model = make_model("linear", {"task": "regression", "input_shape": (3,)})
    lr, steps = 0.1, 3
    local_round = jax.jit(make_local_round(make_local_step(model.loss, optax.sgd(lr)),
                                           FULL_BATCH, steps))
    # Padded to 10 rows of garbage: only the first 7 count.
    xp, yp = _pad(x, 10), _pad(y, 10)
    xp[7:], yp[7:] = 100.0, -100.0
    params = {"w": jnp.asarray(w0)}
    out, _, loss = local_round(params, optax.sgd(lr).init(params), xp, yp,
                               jnp.asarray(7, jnp.int32), jax.random.key(0))
    # By hand, in float64: w <- w - lr * 2/7 X^T (X w - y), three times.
    w, xd, yd, losses = w0.astype(np.float64), x.astype(np.float64), y.astype(np.float64), []
    for _ in range(steps):
        losses.append(np.mean((xd @ w - yd) ** 2))
        w = w - lr * 2 * xd.T @ (xd @ w - yd) / 7
    np.testing.assert_allclose(out["w"], w, rtol=1e-5)
    np.testing.assert_allclose(loss, np.mean(losses), rtol=1e-5)
    # Deterministic: the round key plays no part.
    again, _, _ = local_round(params, optax.sgd(lr).init(params), xp, yp,
                              jnp.asarray(7, jnp.int32), jax.random.key(9))
    np.testing.assert_array_equal(again["w"], out["w"])


def test_padded_and_unpadded_shards_give_the_same_rounds():
    """The simulator's padded shards (``stack_shards``) against real peers' own rows."""
    cfg = Config(peers=4, dataset="teacher_linear", dataset_options={"num_samples": 80},
                 partition="quantity", alpha=0.3, model="mlp",
                 model_options={"hidden": [8]}, optimizer="adam", lr=0.01, batch_size=0)
    exp = build_experiment(cfg)
    sizes = [len(s) for s in exp.shards]
    assert len(set(sizes)) > 1, sizes  # unequal shards: some peers are padded
    data = stack_shards(exp.dataset, exp.shards)
    local_round = jax.jit(make_local_round(make_local_step(exp.model.loss, exp.optimizer),
                                           cfg.batch_size, 3))
    params = exp.model.init(jax.random.key(0), exp.dataset.x_train[:1])
    opt_state = exp.optimizer.init(params)
    train_key = jax.random.key(1)
    for peer, rows in enumerate(exp.shards):
        key = round_key(train_key, peer, 0)
        padded = local_round(params, opt_state, data.x[peer], data.y[peer], data.size[peer],
                             key)
        own = local_round(params, opt_state, exp.dataset.x_train[rows],
                          exp.dataset.y_train[rows], jnp.asarray(len(rows), jnp.int32), key)
        for a, b in zip(jax.tree.leaves(padded), jax.tree.leaves(own), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _cls(shape, classes=3):
    return {"task": "classification", "num_classes": classes, "input_shape": shape}


@pytest.mark.parametrize("name, meta, options, make", [
    ("logistic", _cls((4, 2)), {}, lambda r, n: (r.normal(size=(n, 4, 2)), r.integers(0, 3, n))),
    ("cnn1d", _cls((6,)), {"channels": [2], "hidden": 4},
     lambda r, n: (r.normal(size=(n, 6)), r.integers(0, 3, n))),
    ("transformer", {"task": "lm", "num_classes": 5, "input_shape": (4,), "vocab_size": 5,
                     "seq_len": 4}, {"layers": 1, "d_model": 8, "heads": 2},
     lambda r, n: (r.integers(0, 5, (n, 4)), r.integers(0, 5, (n, 4)))),
    ("mf", {"task": "ratings", "num_classes": None, "input_shape": (2,), "n_users": 3,
            "n_items": 4}, {"rank": 2},
     lambda r, n: (np.stack([r.integers(0, 3, n), r.integers(0, 4, n)], 1), r.normal(size=n))),
])
def test_masked_loss_is_the_loss_of_the_valid_rows(name, meta, options, make):
    model = make_model(name, meta, **options)
    x, y = make(np.random.default_rng(0), 5)
    x = x.astype(np.int32 if x.dtype.kind == "i" else np.float32)
    y = y.astype(np.int32 if y.dtype.kind == "i" else np.float32)
    params = model.init(jax.random.key(0), x[:1])

    @jax.jit
    def both(params, x, y, xp, yp):
        return (jax.value_and_grad(model.loss)(params, x, y),
                jax.value_and_grad(masked_loss(model.loss))(
                    params, *full_batch(xp, yp, jnp.asarray(5, jnp.int32))))

    (want, want_grad), (got, got_grad) = both(params, x, y, _pad(x, 8), _pad(y, 8))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(got_grad), jax.tree.leaves(want_grad), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_negative_batch_size_is_refused():
    step = make_local_step(lambda p, x, y: jnp.mean((x @ p - y) ** 2), optax.sgd(0.1))
    with pytest.raises(ConfigError, match="batch_size must be >= 0, got -1"):
        make_local_round(step, -1, 1)


@pytest.mark.parametrize("name, options, conv", [
    ("cnn1d", {"channels": [2], "hidden": 4}, True),  # H steps unrolled
    ("mlp", {"hidden": [4]}, False),  # H steps in a loop
])
def test_h_local_steps_equal_the_steps_one_by_one(name, options, conv):
    model = make_model(name, _cls((6,)), **options)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 6)).astype(np.float32)
    y = rng.integers(0, 3, 9).astype(np.int32)
    size, key, opt = jnp.asarray(9, jnp.int32), jax.random.key(4), optax.adam(0.05)
    params = model.init(jax.random.key(0), x[:1])
    step = make_local_step(model.loss, opt)
    assert has_convolution(lambda p: model.loss(p, x, y), params) is conv
    local_round = make_local_round(step, 4, 3)
    traced = str(jax.make_jaxpr(local_round)(params, opt.init(params), x, y, size, key))
    assert ("unroll=3" if conv else "unroll=1") in traced
    got, _, loss = jax.jit(local_round)(params, opt.init(params), x, y, size, key)
    p, o, losses = params, opt.init(params), []
    for h in range(3):  # the documented keys: fold_in(key, h), split into batch and step keys
        batch_key, step_key = jax.random.split(jax.random.fold_in(key, h))
        p, o, metrics = jax.jit(step)(p, o, sample_batch(batch_key, x, y, size, 4), step_key)
        losses.append(metrics["loss"])
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(p), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, np.mean(losses), rtol=1e-5)
