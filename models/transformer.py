"""A small causal (decoder-only) Transformer for character-level language modelling."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from gossip.models.base import (
    Model,
    from_module,
    meta_int,
    option_int,
    require_task,
    resolve_options,
)

from gossip.errors import ConfigError

NAME = "transformer"
DEFAULTS = {"layers": 2, "d_model": 64, "heads": 4}
EMBED_INIT = nn.initializers.normal(stddev=0.02)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees positions <= t only.

    Attributes:
        heads: number of heads; divides the model width D.
    """

    heads: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps ``(B, T, D)`` to ``(B, T, D)``."""
        b, t, d = x.shape
        hd = d // self.heads
        qkv = nn.Dense(3 * d, name="qkv")(x).reshape(b, t, 3, self.heads, hd)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, T, H, hd) each
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * (1.0 / math.sqrt(hd))
        causal = jnp.tril(jnp.ones((t, t), dtype=bool))[None, None]  # (1, 1, T, T)
        logits = jnp.where(causal, logits, jnp.finfo(logits.dtype).min)
        weights = jax.nn.softmax(logits, axis=-1)  # (B, H, T, T)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, t, d)
        return nn.Dense(d, name="proj")(out)


class Block(nn.Module):
    """Pre-LayerNorm block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))`` (MLP width 4D).

    Attributes:
        heads: attention heads.
    """

    heads: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps ``(B, T, D)`` to ``(B, T, D)``."""
        d = x.shape[-1]
        x = x + CausalSelfAttention(self.heads, name="attn")(nn.LayerNorm(name="ln_1")(x))
        h = nn.LayerNorm(name="ln_2")(x)
        h = nn.Dense(d, name="mlp_out")(nn.gelu(nn.Dense(4 * d, name="mlp_in")(h)))
        return x + h


class Transformer(nn.Module):
    """Token + learned position embeddings, pre-LN blocks, final LayerNorm, logits head.

    Attributes:
        vocab_size: V.
        seq_len: the longest sequence (number of position embeddings).
        layers: number of blocks.
        d_model: model width D.
        heads: attention heads per block.
    """

    vocab_size: int
    seq_len: int
    layers: int
    d_model: int
    heads: int

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        """Maps int32 tokens ``(B, T)``, ``T <= seq_len``, to logits ``(B, T, V)``."""
        t = tokens.shape[1]
        if t > self.seq_len:
            raise ValueError(f"sequences of length {t} exceed seq_len={self.seq_len}")
        tok = nn.Embed(self.vocab_size, self.d_model, embedding_init=EMBED_INIT,
                       name="tok_embed")(tokens)
        pos = self.param("pos_embed", EMBED_INIT, (self.seq_len, self.d_model))
        x = tok + pos[None, :t]
        for i in range(self.layers):
            x = Block(self.heads, name=f"block_{i}")(x)
        x = nn.LayerNorm(name="ln_f")(x)
        return nn.Dense(self.vocab_size, name="head")(x)


def make_transformer(meta: Mapping[str, Any], **options: Any) -> Model:
    """Builds the ``transformer`` model for task ``lm``.

    ``x`` is ``(B, seq_len)`` int32 tokens and ``y`` ``(B, seq_len)`` int32 next tokens;
    ``apply`` gives logits ``(B, seq_len, vocab_size)``; loss is the mean per-token
    cross-entropy and the metric the per-token accuracy.

    Args:
        meta: dataset meta with ``task == "lm"``, ``vocab_size`` and ``seq_len``.
        **options: ``layers`` (default 2), ``d_model`` (default 64), ``heads`` (default 4,
            must divide ``d_model``).

    Raises:
        ConfigError: unknown or bad option, or a task other than ``lm``.
    """
    opts = resolve_options(NAME, options, DEFAULTS)
    layers = option_int(NAME, "layers", opts["layers"])
    d_model = option_int(NAME, "d_model", opts["d_model"])
    heads = option_int(NAME, "heads", opts["heads"])
    if d_model % heads:
        raise ConfigError(f"model {NAME!r}: option 'heads' ({heads}) must divide "
                          f"'d_model' ({d_model})")
    require_task(NAME, meta, ("lm",))
    vocab_size = meta_int(NAME, meta, "vocab_size")
    seq_len = meta_int(NAME, meta, "seq_len")
    module = Transformer(vocab_size, seq_len, layers, d_model, heads)
    return from_module(NAME, module, "lm", input_dtype=jnp.int32)
