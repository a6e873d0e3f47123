"""Strict JAX settings for every test: no silent rank or dtype promotion."""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key() -> jax.Array:
    return jax.random.key(0)
