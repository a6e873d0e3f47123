"""Local training: one optimizer step, H steps on a peer's shard, and PRNG key derivation.

Both drivers use these functions, so a real peer and the simulator draw the same batches
and take the same steps: peer ``i`` in round ``t`` uses ``round_key(run_key, i, t)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

Params = Any
LossFn = Callable[[Params, jax.Array, jax.Array], jax.Array]
LocalStep = Callable[[Params, Any, tuple[jax.Array, jax.Array], jax.Array],
                     tuple[Params, Any, dict[str, jax.Array]]]


def round_key(run_key: jax.Array, peer: int | jax.Array, round_: int | jax.Array) -> jax.Array:
    """The PRNG key of one peer in one round: ``fold_in(fold_in(run_key, peer), round)``."""
    return jax.random.fold_in(jax.random.fold_in(run_key, peer), round_)


def make_local_step(loss_fn: LossFn, optimizer: optax.GradientTransformation) -> LocalStep:
    """Builds ``step(params, opt_state, batch, key) -> (params, opt_state, metrics)``.

    Args:
        loss_fn: ``loss(params, x, y) -> ()`` mean loss over the batch.
        optimizer: an optax transformation.

    Returns:
        The pure local step; ``batch`` is ``(x, y)`` with a leading batch axis and
        ``metrics`` holds ``{"loss": ()}``, the loss before the step.
    """

    def step(params: Params, opt_state: Any, batch: tuple[jax.Array, jax.Array],
             key: jax.Array) -> tuple[Params, Any, dict[str, jax.Array]]:
        del key  # the models are deterministic; kept so stochastic ones fit the contract
        x, y = batch
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, {"loss": loss}

    return step


def sample_batch(key: jax.Array, x: jax.Array, y: jax.Array, size: jax.Array,
                 batch_size: int) -> tuple[jax.Array, jax.Array]:
    """Draws a batch uniformly with replacement from the first ``size`` rows of a shard.

    Args:
        key: PRNG key.
        x: (M, *X) shard inputs, possibly padded beyond ``size``.
        y: (M, *Y) shard targets.
        size: () number of valid rows (>= 1).
        batch_size: B.

    Returns:
        ``(x_batch (B, *X), y_batch (B, *Y))``.
    """
    idx = jax.random.randint(key, (batch_size,), 0, size)
    return x[idx], y[idx]


def make_local_round(step: LocalStep, batch_size: int, local_steps: int) -> Callable[..., Any]:
    """Builds the H local steps of one peer in one round.

    Returns:
        ``local_round(params, opt_state, x, y, size, key) -> (params, opt_state, loss)``
        where ``x (M, *X)``, ``y (M, *Y)`` is the peer's padded shard, ``size`` () its valid
        length and ``loss`` () the mean loss over the H steps. Step h uses
        ``fold_in(key, h)``, split into a batch key and a step key.
    """

    def local_round(params: Params, opt_state: Any, x: jax.Array, y: jax.Array,
                    size: jax.Array, key: jax.Array) -> tuple[Params, Any, jax.Array]:
        def body(carry: tuple[Params, Any], h: jax.Array) -> tuple[tuple[Params, Any], Any]:
            p, o = carry
            batch_key, step_key = jax.random.split(jax.random.fold_in(key, h))
            batch = sample_batch(batch_key, x, y, size, batch_size)
            p, o, metrics = step(p, o, batch, step_key)
            return (p, o), metrics["loss"]

        (params, opt_state), losses = jax.lax.scan(
            body, (params, opt_state), jnp.arange(local_steps))
        return params, opt_state, jnp.mean(losses)

    return local_round


def run_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """Splits a run seed into ``(init_key, train_key)``; every peer derives its keys from these."""
    init_key, train_key = jax.random.split(jax.random.key(seed))
    return init_key, train_key


def init_key_for(init_key: jax.Array, peer: int, same_init: bool) -> jax.Array:
    """The key a peer initialises its model with: shared when ``same_init``, else per peer."""
    return jax.random.fold_in(init_key, 0 if same_init else peer)
