"""Strict JAX settings for every test.

Rank promotion raises, so a broadcast that was not meant fails loudly. Dtype promotion stays
"standard": optax's Adam mixes Python floats with int32 step counts, which "strict" rejects.
"""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key() -> jax.Array:
    return jax.random.key(0)
