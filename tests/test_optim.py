"""Optimizers by name."""

import jax.numpy as jnp
import optax
import pytest

from gossip.errors import ConfigError
from gossip.optim import OPTIMIZERS, make_optimizer


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_descends_a_quadratic(name):
    opt = make_optimizer(name, 0.1, weight_decay=0.01)
    params = {"x": jnp.array([3.0, -2.0])}
    state = opt.init(params)
    for _ in range(50):
        grads = {"x": 2 * params["x"]}
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    assert float(jnp.sum(params["x"] ** 2)) < 0.5


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "sgdd", "lr": 0.1}, "unknown optimizer 'sgdd'; valid choices: adam, adamw"),
    ({"name": "sgd", "lr": 0.0}, "lr must be > 0, got 0.0"),
    ({"name": "momentum", "lr": 0.1, "momentum": 1.0}, "momentum must be in"),
    ({"name": "adam", "lr": 0.1, "weight_decay": -1.0}, "weight_decay must be >= 0"),
])
def test_bad_optimizer_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_optimizer(**kwargs)
