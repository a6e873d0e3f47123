"""Strict JAX settings for every test.

Rank promotion raises, so a broadcast that was not meant fails loudly. Dtype promotion stays
"standard": optax's Adam mixes Python floats with int32 step counts, which "strict" rejects.

The processes the tests start (simulations, peers, launchers) share one persistent XLA
compilation cache for the session, through JAX's own environment variables (read by each
child's JAX at import; this process's JAX has read them already): the many short runs of the
suite compile the same few functions once. A peer's ``compile_cache = "auto"`` uses it too.
"""

import os

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key() -> jax.Array:
    return jax.random.key(0)


@pytest.fixture(scope="session", autouse=True)
def shared_compile_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("xla-cache")
    saved = {k: os.environ.get(k) for k in _CACHE_ENV}
    os.environ.update({"JAX_COMPILATION_CACHE_DIR": str(cache),
                       "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                       "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"})
    yield cache
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


_CACHE_ENV = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
              "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES")
