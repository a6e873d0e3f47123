"""The vectorised simulator: equivalence with centralised SGD, compile-once, gather mixing."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gossip.rules import make_rule
from gossip.sim.simulator import PeerData, make_simulator
from gossip.simulate import mixing_graph
from gossip.topology import make_topology
from gossip.training import round_key, sample_batch


def linear_loss(params, x, y):
    """Least squares of a linear model: any pytree + loss works, no model library needed."""
    pred = x @ params["w"] + params["b"][None, :]
    return jnp.mean((pred - y) ** 2)


def _data(n: int, m: int, key: jax.Array) -> PeerData:
    kx, kw = jax.random.split(key)
    x = jax.random.normal(kx, (n, m, 5))
    y = x @ jax.random.normal(kw, (5, 2))
    sizes = jnp.asarray(np.arange(n) % 3 + m - 2, jnp.int32)  # unequal valid lengths
    return PeerData(x, y, sizes)


def _stack(n: int) -> dict:
    one = {"w": jnp.linspace(-1.0, 1.0, 10).reshape(5, 2), "b": jnp.zeros(2)}
    return jax.tree.map(lambda a: jnp.repeat(a[None], n, axis=0), one)


def _peer_batch(data, train_key, p, t, batch):
    batch_key, _ = jax.random.split(jax.random.fold_in(round_key(train_key, p, t), 0))
    return sample_batch(batch_key, data.x[p], data.y[p], data.size[p], batch)


@pytest.mark.parametrize("rule_name", ["dpsgd", "local_sgd"])
def test_dpsgd_on_complete_graph_equals_centralised_sgd(rule_name, key):
    n, batch, lr, rounds = 4, 8, 0.05, 6
    data = _data(n, 20, key)
    train_key = jax.random.key(7)
    sim = make_simulator(linear_loss, optax.sgd(lr), make_rule(rule_name, 1), batch)
    graph, _ = mixing_graph(make_topology("complete", n), 0)
    state = sim.init(_stack(n))

    central = jax.tree.map(lambda a: a[0], _stack(n))
    for t in range(rounds):
        state, _ = sim.round(state, data, graph, train_key)
        # The same batches the peers drew, concatenated: one SGD step on their union.
        xs, ys = zip(*(_peer_batch(data, train_key, p, t, batch) for p in range(n)),
                     strict=True)
        grads = jax.grad(linear_loss)(central, jnp.concatenate(xs), jnp.concatenate(ys))
        central = jax.tree.map(lambda w, g: w - lr * g, central, grads)

    for name in ("w", "b"):
        for p in range(n):
            np.testing.assert_allclose(state.params[name][p], central[name], rtol=1e-5,
                                       atol=1e-6)


def test_combine_then_adapt_adds_the_local_update_to_the_mixed_parameters(key):
    # x_i <- Σ_j W_ij x_j − lr ∇f_i(x_i): the gradient is taken at the unmixed parameters.
    n, batch, lr = 4, 8, 0.05
    data = _data(n, 20, key)
    train_key = jax.random.key(3)
    params = jax.tree.map(lambda a: a * jnp.arange(1.0, n + 1).reshape(-1, *[1] * (a.ndim - 1)),
                          _stack(n))
    params["b"] = params["b"] + jnp.arange(n, dtype=jnp.float32)[:, None]
    sim = make_simulator(linear_loss, optax.sgd(lr), make_rule("dpsgd_cta"), batch)
    graph, _ = mixing_graph(make_topology("complete", n), 0)
    state, _ = sim.round(sim.init(params), data, graph, train_key)
    for p in range(n):
        own = jax.tree.map(lambda a, p=p: a[p], params)
        grads = jax.grad(linear_loss)(own, *_peer_batch(data, train_key, p, 0, batch))
        for name in ("w", "b"):
            expected = params[name].mean(0) - lr * grads[name]
            np.testing.assert_allclose(state.params[name][p], expected, rtol=1e-5, atol=1e-6)


def test_round_compiles_once_across_50_rounds_of_a_time_varying_topology(key):
    traces = []

    def counting_loss(params, x, y):
        traces.append(1)  # runs only while tracing
        return linear_loss(params, x, y)

    n = 9
    topo = make_topology("random_matching", n, seed=3)
    assert topo.time_varying
    sim = make_simulator(counting_loss, optax.sgd(0.01), make_rule("dpsgd"), 4)
    state = sim.init(_stack(n))
    data = _data(n, 12, key)
    seen = set()
    for t in range(50):
        graph, _ = mixing_graph(topo, t)
        seen.add(np.asarray(graph.neighbours).tobytes())
        state, _ = sim.round(state, data, graph, jax.random.key(1))
    assert len(seen) > 10  # the graph really changed from round to round
    assert len(traces) == 1
    assert sim.round._cache_size() == 1


def test_local_steps_only_sample_valid_rows(key):
    x = jnp.arange(10.0)[:, None]
    xb, _ = sample_batch(key, x, x, jnp.asarray(3, jnp.int32), 500)
    assert set(np.asarray(xb).ravel().tolist()) == {0.0, 1.0, 2.0}


def test_training_reduces_loss_and_mixing_reaches_consensus(key):
    n = 8
    data = _data(n, 30, key)
    sim = make_simulator(linear_loss, optax.sgd(0.05), make_rule("local_sgd", 2), 8)
    graph, _ = mixing_graph(make_topology("ring", n), 0)
    params = jax.tree.map(lambda a: a + jnp.arange(n, dtype=a.dtype).reshape(-1, 1, *[1] *
                          (a.ndim - 2)), _stack(n))
    state = sim.init(params)
    first = None
    for _ in range(200):
        state, loss = sim.round(state, data, graph, jax.random.key(2))
        first = loss if first is None else first
    assert float(loss.mean()) < 0.05 * float(first.mean())
    spread = jnp.var(state.params["w"], axis=0).sum()
    assert spread < 1e-3 * jnp.var(params["w"], axis=0).sum()


def test_peer_chunking_does_not_change_the_result(key):
    n = 7
    data = _data(n, 10, key)
    graph, _ = mixing_graph(make_topology("ring", n), 0)
    finals = []
    for chunk in (None, 3, 32):
        sim = make_simulator(linear_loss, optax.sgd(0.05), make_rule("dpsgd"), 4, chunk)
        state = sim.init(_stack(n))
        for _ in range(3):
            state, _ = sim.round(state, data, graph, jax.random.key(5))
        finals.append(state.params["w"])
    for other in finals[1:]:
        np.testing.assert_allclose(other, finals[0], rtol=1e-6, atol=1e-7)
