"""Local training: one optimizer step, H steps on a peer's shard, and PRNG key derivation.

Both drivers use these functions, so a real peer and the simulator draw the same batches
and take the same steps: peer ``i`` in round ``t`` uses ``round_key(run_key, i, t)``.

Batch size 0 (``FULL_BATCH``) makes every local step use each valid row of the peer's shard
exactly once: a deterministic full-shard gradient. The simulator pads shards to a common
length and a real peer does not, so the full batch carries a ``valid`` mask and its loss is
the mean of the model's per-row losses over the valid rows (``masked_loss``): the same number
on a padded and an unpadded shard. This needs a model loss that is a mean of per-row terms,
as every zoo model's is (one with batch statistics, such as batch norm, would differ).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from gossip.errors import check_int

Params = Any
LossFn = Callable[[Params, jax.Array, jax.Array], jax.Array]
Batch = tuple[jax.Array, jax.Array] | tuple[jax.Array, jax.Array, jax.Array]
LocalStep = Callable[[Params, Any, Batch, jax.Array], tuple[Params, Any, dict[str, jax.Array]]]
FULL_BATCH = 0
MAX_UNROLL = 16  # local steps of a convolutional model unrolled per loop trip


def round_key(run_key: jax.Array, peer: int | jax.Array, round_: int | jax.Array) -> jax.Array:
    """The PRNG key of one peer in one round: ``fold_in(fold_in(run_key, peer), round)``."""
    return jax.random.fold_in(jax.random.fold_in(run_key, peer), round_)


def masked_loss(loss_fn: LossFn) -> Callable[..., jax.Array]:
    """The mean of ``loss_fn``'s per-row losses over the valid rows of a batch.

    Args:
        loss_fn: ``loss(params, x, y) -> ()``, a mean of per-row terms over the batch.

    Returns:
        ``loss(params, x (M, *X), y (M, *Y), valid (M,) bool) -> ()``: ``loss_fn`` applied to
        each row alone, averaged over the rows where ``valid``. Invalid rows (padding) add
        nothing to the value or the gradient, so a padded shard gives what its valid rows
        alone give (up to float rounding).
    """

    def loss(params: Params, x: jax.Array, y: jax.Array, valid: jax.Array) -> jax.Array:
        per_row = jax.vmap(lambda xi, yi: loss_fn(params, xi[None], yi[None]))(x, y)
        total = jnp.sum(jnp.where(valid, per_row, jnp.zeros_like(per_row)))
        return total / jnp.sum(valid).astype(per_row.dtype)

    return loss


def make_local_step(loss_fn: LossFn, optimizer: optax.GradientTransformation) -> LocalStep:
    """Builds ``step(params, opt_state, batch, key) -> (params, opt_state, metrics)``.

    Args:
        loss_fn: ``loss(params, x, y) -> ()`` mean loss over the batch.
        optimizer: an optax transformation.

    Returns:
        The pure local step; ``batch`` is ``(x, y)`` with a leading batch axis, or
        ``(x, y, valid)`` with ``valid`` (B,) bool, whose loss is ``masked_loss``'s mean over
        the valid rows (the full batch of ``batch_size`` 0). ``metrics`` holds
        ``{"loss": ()}``, the loss before the step.
    """
    masked = masked_loss(loss_fn)

    def step(params: Params, opt_state: Any, batch: Batch,
             key: jax.Array) -> tuple[Params, Any, dict[str, jax.Array]]:
        del key  # the models are deterministic; kept so stochastic ones fit the contract
        objective = loss_fn if len(batch) == 2 else masked
        loss, grads = jax.value_and_grad(objective)(params, *batch)
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


def full_batch(x: jax.Array, y: jax.Array,
               size: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The whole shard as one batch, with the mask of its valid rows.

    Args:
        x: (M, *X) shard inputs, possibly padded beyond ``size``.
        y: (M, *Y) shard targets.
        size: () number of valid rows (>= 1).

    Returns:
        ``(x, y, valid)`` with ``valid`` (M,) bool, true on the first ``size`` rows.
    """
    return x, y, jnp.arange(x.shape[0]) < size


def has_convolution(fn: Callable[..., Any], *args: Any) -> bool:
    """Whether ``fn(*args)`` computes a convolution (traced, not run; ``args`` may be
    tracers)."""
    return "conv_general_dilated" in str(jax.make_jaxpr(fn)(*args))


def make_local_round(step: LocalStep, batch_size: int, local_steps: int) -> Callable[..., Any]:
    """Builds the H local steps of one peer in one round.

    Args:
        step: the local step (``make_local_step``).
        batch_size: rows drawn with replacement per step (``sample_batch``), or
            ``FULL_BATCH`` (0): every valid row once per step (``full_batch``), a
            deterministic full-shard gradient.
        local_steps: H.

    Returns:
        ``local_round(params, opt_state, x, y, size, key, steps=None) -> (params, opt_state,
        loss)`` where ``x (M, *X)``, ``y (M, *Y)`` is the peer's padded shard, ``size`` () its
        valid length and ``loss`` () the mean loss over the H steps. Step h uses
        ``fold_in(key, h)``, split into a batch key and a step key. ``steps`` () int32, given:
        only steps h < ``steps`` change the state (the rest are computed and discarded, so
        the count can differ per peer under ``vmap``) and ``loss`` is their mean.

    Raises:
        ConfigError: ``batch_size`` < 0.
    """
    batch_size = check_int("batch_size", batch_size, FULL_BATCH)

    def local_round(params: Params, opt_state: Any, x: jax.Array, y: jax.Array,
                    size: jax.Array, key: jax.Array, steps: jax.Array | None = None
                    ) -> tuple[Params, Any, jax.Array]:
        def body(carry: tuple[Params, Any], h: jax.Array) -> tuple[tuple[Params, Any], Any]:
            p, o = carry
            batch_key, step_key = jax.random.split(jax.random.fold_in(key, h))
            batch = (full_batch(x, y, size) if batch_size == FULL_BATCH
                     else sample_batch(batch_key, x, y, size, batch_size))
            new_p, new_o, metrics = step(p, o, batch, step_key)
            if steps is not None:  # a step past the peer's count leaves the state as it was
                new_p, new_o = jax.tree.map(lambda a, b: jnp.where(h < steps, a, b),
                                            (new_p, new_o), (p, o))
            return (new_p, new_o), metrics["loss"]

        first = jnp.zeros((), jnp.int32)
        if local_steps == 1:
            # No loop: under vmap, XLA on CPU runs a convolution's gradient inside a loop
            # about 6x slower than outside one (a 16-peer 1-D CNN round: 45 vs 7 ms).
            (params, opt_state), loss = body((params, opt_state), first)
            losses = loss[None]
        else:
            # The same for H steps of a convolutional model: unrolled (up to MAX_UNROLL steps
            # a loop trip), a 16-peer 1-D CNN round of 4 steps takes 50 instead of 150 ms. A
            # dense model runs faster in the loop (an MLP: 12 against 15 ms), so it stays.
            unroll = (min(local_steps, MAX_UNROLL)
                      if has_convolution(body, (params, opt_state), first) else 1)
            (params, opt_state), losses = jax.lax.scan(
                body, (params, opt_state), jnp.arange(local_steps), unroll=unroll)
        if steps is None:
            return params, opt_state, jnp.mean(losses)
        done = jnp.arange(local_steps) < steps
        return params, opt_state, jnp.sum(jnp.where(done, losses, 0)) / jnp.maximum(steps, 1)

    return local_round


def run_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """Splits a run seed into ``(init_key, train_key)``; every peer derives its keys from these."""
    init_key, train_key = jax.random.split(jax.random.key(seed))
    return init_key, train_key


def init_key_for(init_key: jax.Array, peer: int, same_init: bool) -> jax.Array:
    """The key a peer initialises its model with: shared when ``same_init``, else per peer."""
    return jax.random.fold_in(init_key, 0 if same_init else peer)
