"""Compression operators for gossip messages: pure JAX, one leaf at a time.

An operator is a small NamedTuple of pure functions (like an optax transformation) made by
a factory that closes over its options. It encodes one array (a leaf of a message) into a
dict of fixed-shape arrays, the *fields* that travel on the wire, and decodes them back:

- ``top_k`` / ``rand_k`` (``ratio``): ``idx`` (k,) sorted unique indices into the flattened
  leaf, the index dtype sized to the leaf (uint8 up to 256 elements, uint16 up to 65536,
  uint32 beyond), and ``val`` (k,) the kept values; k = ceil(ratio · d), at least 1;
- ``int8`` / ``int4`` (``block``): ``codes`` (int8 per element; int4: two 4-bit codes per
  uint8) and ``scale`` (float32, one per block of ``block`` elements; ``block=0``: one per
  leaf). Round to nearest: code = round(x / scale), scale = max|x| / 127 (int4: / 7);
- ``fp16`` / ``bf16``: ``val``, the leaf cast (fp16 clipped to its finite range);
- ``sign``: ``bits`` (the signs, 8 per uint8) and ``scale`` () = mean |x| (scaled sign,
  Karimireddy et al. 2019).

Every operator declares the fields' shapes and dtypes for a leaf (``spec``), a lower bound
``delta(d)`` of its contraction, ``E‖Q(x) − x‖² ≤ (1 − δ)‖x‖²`` (in expectation over the key
for ``rand_k``), and, where it has one, ``unbiased_scale(d)``: a factor s with
``E[s · Q(x)] = x`` (``rand_k``: d / k). ``check`` validates received fields (numpy) against
the declared shapes: indices in range, sorted and unique, finite scales and values.

``rand_k`` draws its indices from the key it is given; a rule derives it from its round
counter, so in the simulator and on real peers the same peer draws the same indices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

from gossip.errors import ConfigError, unknown

Fields = dict[str, jax.Array]
FP16_MAX = 65504.0


class Compressor(NamedTuple):
    """A compression operator over one array (a message leaf).

    Attributes:
        name: the operator's name (``COMPRESSORS``).
        encode: ``encode(x, key) -> fields``: x of any shape S and float dtype.
        decode: ``decode(fields, shape, dtype) -> x_hat`` of shape S.
        spec: ``spec(shape, dtype) -> {field: jax.ShapeDtypeStruct}``, the declared fields.
        delta: ``delta(d) -> float``: lower bound of the contraction for a leaf of d elements.
        unbiased_scale: ``unbiased_scale(d) -> float`` with ``E[s Q(x)] = x``, or None
            where the operator is biased.
        check: ``check(fields, shape) -> None`` on numpy fields; raises ``ValueError``
            naming the field that is not valid.
        random: whether ``encode`` uses its key.
    """

    name: str
    encode: Callable[[jax.Array, jax.Array], Fields]
    decode: Callable[[Fields, tuple[int, ...], Any], jax.Array]
    spec: Callable[[tuple[int, ...], Any], dict[str, jax.ShapeDtypeStruct]]
    delta: Callable[[int], float]
    unbiased_scale: Callable[[int], float] | None
    check: Callable[[dict[str, np.ndarray], tuple[int, ...]], None]
    random: bool = False


def index_dtype(size: int) -> np.dtype:
    """The smallest unsigned dtype that indexes a leaf of ``size`` elements."""
    for dtype in (np.uint8, np.uint16):
        if size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.uint32)


def kept(ratio: float, size: int) -> int:
    """k = ceil(ratio · size), clipped to [1, size]."""
    return min(size, max(1, math.ceil(ratio * size - 1e-9)))


def _sds(shape: tuple[int, ...], dtype: Any) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(shape), np.dtype(dtype))


def _finite(name: str, a: np.ndarray) -> None:
    if not np.all(np.isfinite(a.astype(np.float32))):
        raise ValueError(f"field {name!r} has non-finite values")


def _sparse(name: str, ratio: float, random: bool) -> Compressor:
    if isinstance(ratio, bool) or not 0 < ratio <= 1:
        raise ConfigError(f"compress_ratio must be in (0, 1], got {ratio}")

    def spec(shape, dtype):
        d = math.prod(shape)
        k = kept(ratio, d)
        return {"idx": _sds((k,), index_dtype(d)), "val": _sds((k,), dtype)}

    def encode(x, key):
        flat = x.reshape(-1)
        d = flat.shape[0]
        k = kept(ratio, d)
        if random:
            idx = jax.random.choice(key, d, (k,), replace=False)
        else:
            idx = jax.lax.top_k(jnp.abs(flat), k)[1]
        idx = jnp.sort(idx)
        return {"idx": idx.astype(index_dtype(d)), "val": flat[idx]}

    def decode(fields, shape, dtype):
        d = math.prod(shape)
        out = jnp.zeros((d,), dtype).at[fields["idx"].astype(jnp.int32)].set(
            fields["val"].astype(dtype), unique_indices=True, indices_are_sorted=True)
        return out.reshape(shape)

    def check(fields, shape):
        d = math.prod(shape)
        idx = fields["idx"].astype(np.int64)
        if idx.shape != (kept(ratio, d),) or fields["val"].shape != idx.shape:
            raise ValueError(f"field 'idx'/'val': {idx.shape[0]} entries, the operator "
                             f"declares {kept(ratio, d)}")
        if idx.size and (idx.min() < 0 or idx.max() >= d):
            raise ValueError(f"field 'idx': an index is out of range [0, {d})")
        if np.any(np.diff(idx) <= 0):
            raise ValueError("field 'idx': indices are not sorted and unique")
        _finite("val", fields["val"])

    def delta(d):
        return kept(ratio, d) / d

    scale = (lambda d: d / kept(ratio, d)) if random else None
    return Compressor(name, encode, decode, spec, delta, scale, check, random=random)


def _quantise(name: str, bits: int, block: int) -> Compressor:
    if isinstance(block, bool) or not isinstance(block, int) or block < 0:
        raise ConfigError(f"compress_block must be an integer >= 0 (0: one scale per leaf), "
                          f"got {block!r}")
    levels = 2 ** (bits - 1) - 1  # int8: 127, int4: 7

    def blocks(d: int) -> tuple[int, int]:  # (block size, number of blocks)
        b = d if block == 0 else min(block, d)
        return b, -(-d // b)

    def n_codes(d: int) -> int:
        b, nb = blocks(d)
        return nb * b if bits == 8 else -(-(nb * b) // 2)

    def spec(shape, dtype):
        d = math.prod(shape)
        return {"codes": _sds((n_codes(d),), np.int8 if bits == 8 else np.uint8),
                "scale": _sds((blocks(d)[1],), np.float32)}

    def encode(x, key):
        del key
        flat = x.reshape(-1).astype(jnp.float32)
        d = flat.shape[0]
        b, nb = blocks(d)
        padded = jnp.pad(flat, (0, nb * b - d)).reshape(nb, b)
        top = jnp.max(jnp.abs(padded), axis=1)
        scale = jnp.where(top > 0, top / levels, 1.0)
        codes = jnp.clip(jnp.round(padded / scale[:, None]), -levels, levels)
        codes = codes.reshape(-1).astype(jnp.int32)
        if bits == 8:
            return {"codes": codes.astype(jnp.int8), "scale": scale}
        nibbles = jnp.pad(codes + 8, (0, 2 * n_codes(d) - codes.shape[0]), constant_values=8)
        pairs = nibbles.reshape(-1, 2)
        return {"codes": (pairs[:, 0] | (pairs[:, 1] << 4)).astype(jnp.uint8),
                "scale": scale}

    def decode(fields, shape, dtype):
        d = math.prod(shape)
        b, nb = blocks(d)
        codes = fields["codes"]
        if bits == 8:
            values = codes.astype(jnp.float32)
        else:
            c = codes.astype(jnp.int32)
            values = (jnp.stack([c & 15, c >> 4], axis=1).reshape(-1) - 8).astype(jnp.float32)
        values = values[:nb * b].reshape(nb, b) * fields["scale"][:, None]
        return values.reshape(-1)[:d].reshape(shape).astype(dtype)

    def check(fields, shape):
        d = math.prod(shape)
        _finite("scale", fields["scale"])
        if fields["scale"].shape != (blocks(d)[1],) or fields["codes"].shape != (n_codes(d),):
            raise ValueError("field 'codes'/'scale': counts differ from the operator's")
        if np.any(fields["scale"] < 0):
            raise ValueError("field 'scale': negative scale")
        if bits == 8:
            if np.any(fields["codes"] == -128):
                raise ValueError("field 'codes': code -128 is outside [-127, 127]")
        else:
            c = fields["codes"].astype(np.int32)
            if np.any((c & 15) == 0) or np.any((c >> 4) == 0):
                raise ValueError("field 'codes': a 4-bit code is outside [-7, 7]")

    def delta(d):
        b = blocks(d)[0]
        # |error| <= scale / 2 = max / (2 levels) per element, max^2 <= the block's squared norm.
        return max(0.0, 1.0 - b / (2 * levels) ** 2)

    return Compressor(name, encode, decode, spec, delta, None, check)


def _cast(name: str, dtype: Any, rel: float) -> Compressor:
    def spec(shape, x_dtype):
        del x_dtype
        return {"val": _sds(shape, dtype)}

    def encode(x, key):
        del key
        if dtype == np.float16:
            x = jnp.clip(x, -FP16_MAX, FP16_MAX)
        return {"val": x.astype(dtype)}

    def decode(fields, shape, x_dtype):
        return fields["val"].reshape(shape).astype(x_dtype)

    def check(fields, shape):
        if fields["val"].shape != tuple(shape):
            raise ValueError("field 'val': wrong shape")
        _finite("val", fields["val"])

    return Compressor(name, encode, decode, spec, lambda d: 1.0 - rel ** 2, None, check)


def _sign() -> Compressor:
    def spec(shape, dtype):
        del dtype
        return {"bits": _sds((-(-math.prod(shape) // 8),), np.uint8),
                "scale": _sds((), np.float32)}

    def encode(x, key):
        del key
        flat = x.reshape(-1).astype(jnp.float32)
        d = flat.shape[0]
        positive = jnp.pad((flat >= 0).astype(jnp.int32), (0, -(-d // 8) * 8 - d))
        bits = jnp.sum(positive.reshape(-1, 8) << jnp.arange(8)[None, :], axis=1)
        return {"bits": bits.astype(jnp.uint8), "scale": jnp.mean(jnp.abs(flat))}

    def decode(fields, shape, dtype):
        d = math.prod(shape)
        bits = (fields["bits"].astype(jnp.int32)[:, None] >> jnp.arange(8)[None, :]) & 1
        signs = 2.0 * bits.reshape(-1)[:d].astype(jnp.float32) - 1.0
        return (fields["scale"] * signs).reshape(shape).astype(dtype)

    def check(fields, shape):
        _finite("scale", fields["scale"])
        if fields["scale"] < 0:
            raise ValueError("field 'scale': negative scale")
        if fields["bits"].shape != (-(-math.prod(shape) // 8),):
            raise ValueError("field 'bits': wrong count")

    return Compressor("sign", encode, decode, spec, lambda d: 1.0 / d, None, check)


def _identity() -> Compressor:
    def check(fields, shape):
        _finite("val", fields["val"])

    return Compressor("none", lambda x, key: {"val": x},
                      lambda f, shape, dtype: f["val"].reshape(shape).astype(dtype),
                      lambda shape, dtype: {"val": _sds(shape, dtype)},
                      lambda d: 1.0, lambda d: 1.0, check)


COMPRESSORS: dict[str, Callable[..., Compressor]] = {
    "top_k": lambda ratio=0.01, block=64: _sparse("top_k", ratio, random=False),
    "rand_k": lambda ratio=0.01, block=64: _sparse("rand_k", ratio, random=True),
    "int8": lambda ratio=0.01, block=64: _quantise("int8", 8, block),
    "int4": lambda ratio=0.01, block=32: _quantise("int4", 4, block),
    "fp16": lambda ratio=0.01, block=64: _cast("fp16", np.float16, 2.0 ** -11),
    "bf16": lambda ratio=0.01, block=64: _cast("bf16", ml_dtypes.bfloat16, 2.0 ** -8),
    "sign": lambda ratio=0.01, block=64: _sign(),
}
SPARSIFIERS = ("top_k", "rand_k")


def make_compressor(name: str, ratio: float = 0.01, block: int | None = None) -> Compressor:
    """Builds a compression operator by name.

    Args:
        name: one of ``COMPRESSORS``, or ``"none"`` (the identity).
        ratio: the fraction of elements a sparsifier keeps, in (0, 1].
        block: elements per scale of ``int8``/``int4`` (None: 64 and 32; 0: per leaf).

    Raises:
        ConfigError: an unknown name or a bad option.
    """
    if name == "none":
        return _identity()
    if name not in COMPRESSORS:
        raise unknown("compression operator", name, COMPRESSORS)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 1:
        raise ConfigError(f"compress_ratio must be in (0, 1], got {ratio!r}")
    return COMPRESSORS[name](ratio) if block is None else COMPRESSORS[name](ratio, block)
