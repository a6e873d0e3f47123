"""The wire codec: one multipart message = a msgpack header frame + one raw frame per leaf.

``encode`` never copies a leaf: its frames are the C-contiguous leaf buffers. ``decode``
checks a received message against the receiver's own ``Template`` (like equinox's
deserialisation against ``like``) before anything touches the model, and names the leaf
that failed. Only the header goes through msgpack, with bounded sizes; nothing is pickled.
The format is specified in ``docs/protocol.md``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import ml_dtypes
import msgpack
import numpy as np

from gossip.pytree import leaf_paths

PROTOCOL_VERSION = 2
KINDS = ("gossip", "hello", "bye", "heartbeat", "state_request", "state")
# Kinds with leaf frames, and which template checks them: the gossip message, or the
# parameters a peer sends to one that is catching up.
PAYLOAD_KINDS = {"gossip": "message", "state": "params"}
CODECS = ("raw",)
# dtype name on the wire -> numpy dtype; anything else is refused.
DTYPES: dict[str, np.dtype] = {
    name: np.dtype(name) for name in (
        "float16", "float32", "float64", "int8", "int16", "int32", "int64",
        "uint8", "uint16", "uint32", "uint64", "bool")
} | {"bfloat16": np.dtype(ml_dtypes.bfloat16)}
# Looked up per leaf and message: dict and set lookups, where ``np.dtype.name`` and
# ``np.issubdtype`` cost microseconds each (the per-message cost at 1 MiB, docs/benchmarks.md).
_NAMES: dict[np.dtype, str] = {dtype: name for name, dtype in DTYPES.items()}
_INEXACT = frozenset(d for d in DTYPES.values() if np.issubdtype(d, np.inexact))
_BLAS = frozenset({np.dtype(np.float32), np.dtype(np.float64)})
_HEADER_KEYS = {"v": int, "kind": str, "sender": int, "round": int, "struct": str,
                "leaves": list}
_HEADER_BASE_BYTES = 1024  # header budget besides the per-leaf entries


class WireError(ValueError):
    """A received message failed a check; the message says which, and for which leaf."""


class LeafSpec(NamedTuple):
    """What the receiver expects of one leaf: path, dtype, shape."""

    path: str
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


class Template(NamedTuple):
    """The local structure every payload is checked against.

    Attributes:
        leaves: one ``LeafSpec`` per leaf, in ``jax.tree.leaves`` order.
        treedef: the payload's tree structure.
        struct_hash: 16 hex digits of SHA-256 over the leaves' paths, dtypes and shapes.
        header_limit: the largest header frame accepted, in bytes.
        check: ``check(payload) -> None``, run on a decoded payload that passed every leaf
            check: the sender's rule's own checks (a compressed payload's indices in range,
            sorted and unique; its counts and scales); raises ``ValueError``. None: none.
        entries: the msgpack bytes of the header's ``leaves`` list that an honest sender of
            this structure writes. ``decode`` packs the list it received again (canonical
            msgpack) and, when the bytes are equal, skips the per-leaf header checks, which
            that equality implies (same paths, dtypes, shapes, lengths, codecs and types).
        layout: per leaf, ``(dtype, shape, nbytes, scan)``: what a frame becomes, and
            which NaN/Inf scan it gets (0: none, 1: BLAS dot, 2: sum), computed once.
    """

    leaves: tuple[LeafSpec, ...]
    treedef: Any
    struct_hash: str
    header_limit: int
    check: Callable[[Any], None] | None = None
    entries: bytes = b""
    layout: tuple[tuple[np.dtype, tuple[int, ...], int, int], ...] = ()

    @property
    def nbytes(self) -> int:
        """Payload bytes of one message (all leaves)."""
        return sum(leaf.nbytes for leaf in self.leaves)

    @property
    def max_frame_bytes(self) -> int:
        """The largest frame a valid message has (header or leaf)."""
        return max([self.header_limit, *(leaf.nbytes for leaf in self.leaves)])


def make_template(payload: Any, check: Callable[[Any], None] | None = None) -> Template:
    """Builds the template of a payload pytree (arrays or ``jax.ShapeDtypeStruct``).

    ``check``, when given, validates every decoded payload beyond its leaves' dtype, shape,
    length and finiteness (``Template.check``).

    Raises:
        WireError: a leaf's dtype is not in ``DTYPES``.
    """
    leaves = []
    for path, x in zip(leaf_paths(payload), jax.tree.leaves(payload), strict=True):
        dtype = np.dtype(x.dtype)
        if dtype_name(dtype) not in DTYPES:
            raise WireError(f"leaf {path!r}: dtype {dtype} cannot be sent")
        leaves.append(LeafSpec(path, dtype, tuple(int(d) for d in x.shape)))
    struct_hash = structure_hash([(leaf.path, dtype_name(leaf.dtype), leaf.shape)
                                  for leaf in leaves])
    limit = _HEADER_BASE_BYTES + sum(64 + len(leaf.path) + 12 * len(leaf.shape)
                                     for leaf in leaves)
    entries = msgpack.packb([_entry(leaf.path, leaf.dtype, leaf.shape, leaf.nbytes)
                             for leaf in leaves])
    return Template(tuple(leaves), jax.tree.structure(payload), struct_hash, limit, check,
                    entries, tuple(_layout(leaf) for leaf in leaves))


def _layout(leaf: LeafSpec) -> tuple[np.dtype, tuple[int, ...], int, int]:
    """``Template.layout`` of one leaf: dtype, shape, bytes, scan (0 none, 1 dot, 2 sum)."""
    scan = (1 if leaf.dtype in _BLAS else 2) if leaf.dtype in _INEXACT else 0
    return leaf.dtype, leaf.shape, leaf.nbytes, scan


def _entry(path: str, dtype: np.dtype, shape: tuple[int, ...], nbytes: int) -> list[Any]:
    """One leaf's entry of the header's ``leaves`` list."""
    return [path, dtype_name(dtype), list(shape), int(nbytes), "raw"]


def structure_hash(leaves: Sequence[tuple[str, str, tuple[int, ...]]]) -> str:
    """The first 16 hex digits of SHA-256 over one ``path|dtype|d0,d1,...`` line per leaf.

    Example: leaves ``[("b", "float32", (3,)), ("w", "float32", (2, 3))]`` hash the UTF-8
    text ``"b|float32|3\nw|float32|2,3"``; a scalar leaf has an empty shape field.
    """
    text = "\n".join(f"{path}|{dtype}|{','.join(str(d) for d in shape)}"
                     for path, dtype, shape in leaves)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dtype_name(dtype: np.dtype) -> str:
    """The wire name of a dtype (``np.dtype.name``, e.g. ``"float32"``, ``"bfloat16"``)."""
    name = _NAMES.get(dtype)
    return name if name is not None else np.dtype(dtype).name


class Message(NamedTuple):
    """A decoded, validated message.

    Attributes:
        kind: one of ``KINDS``.
        sender: the sender's peer id.
        round: the round the message belongs to (for ``"hello"``, ``"heartbeat"`` and
            ``"state_request"``: the sender's current round).
        payload: for ``"gossip"`` and ``"state"``, a pytree like the template whose leaves
            are read-only numpy views of the received frames; None otherwise.
        payload_bytes: bytes of the leaf frames.
        header_bytes: bytes of the header frame.
    """

    kind: str
    sender: int
    round: int
    payload: Any
    payload_bytes: int
    header_bytes: int


def encode(kind: str, sender: int, round_: int, template: Template,
           payload: Any = None) -> list[Any]:
    """Encodes a message into frames, without copying the leaves.

    Args:
        kind: one of ``KINDS``.
        sender: this peer's id.
        round_: the round the message belongs to.
        template: this peer's template (gives the structure hash and leaf paths).
        payload: for ``"gossip"`` and ``"state"``, a pytree matching the template (numpy or
            JAX arrays).

    Returns:
        ``[header bytes, leaf buffer, ...]``, ready for ``send_multipart(copy=False)``.
    """
    arrays = [] if payload is None else [np.asarray(x, order="C") for x in jax.tree.leaves(payload)]
    head = _PACK_HEAD + _packb(kind) + _PACK_SENDER + _packb(int(sender)) + _PACK_ROUND \
        + _packb(int(round_)) + _PACK_STRUCT + _packb(template.struct_hash) + _PACK_LEAVES
    if not arrays:
        head += _PACK_EMPTY
    elif template.entries and len(arrays) == len(template.layout) and all(
            a.dtype == dtype and a.shape == shape
            for a, (dtype, shape, _, _) in zip(arrays, template.layout, strict=True)):
        head += template.entries  # the leaves are the template's: its packed entries
    else:  # what the arrays are (a receiver refuses what differs from its template)
        head += _packb([_entry(spec.path, a.dtype, a.shape, a.nbytes)
                        for spec, a in zip(template.leaves, arrays, strict=True)])
    # Flat byte views: zero-copy, and a buffer for dtypes the buffer protocol lacks (bfloat16).
    return [head, *(a.reshape(-1).view(np.uint8) for a in arrays)]


# The header map, packed piece by piece in ``encode``: the same bytes as ``msgpack.packb`` of
# the dict ``{"v": ..., "kind": ..., "sender": ..., "round": ..., "struct": ..., "leaves":
# ...}`` (a fixmap of 6 pairs, keys in that order), with the leaves' entries packed once per
# template rather than once per message.
_packb = msgpack.packb
_PACK_HEAD = b"\x86" + _packb("v") + _packb(PROTOCOL_VERSION) + _packb("kind")
_PACK_SENDER, _PACK_ROUND = _packb("sender"), _packb("round")
_PACK_STRUCT, _PACK_LEAVES, _PACK_EMPTY = _packb("struct"), _packb("leaves"), _packb([])


class Header(NamedTuple):
    """A message's header frame, read and checked (checks 1 to 3 of ``docs/protocol.md``).

    Attributes:
        kind: one of ``KINDS``.
        sender: the sender id the header claims, in ``[0, n_peers)``.
        round: the round it carries, ``>= 0``.
        fields: the whole header map (``struct`` and ``leaves`` still unchecked).
        nbytes: bytes of the header frame.
    """

    kind: str
    sender: int
    round: int
    fields: dict[str, Any]
    nbytes: int


def _unpack_header(frame: memoryview, limit: int) -> dict[str, Any]:
    # The size is checked on the received buffer, before anything is copied or unpacked.
    if frame.nbytes > limit:
        raise WireError(f"header of {frame.nbytes} bytes is over the limit of {limit}")
    try:
        header = msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except Exception as e:  # msgpack raises several unrelated types for bad input
        raise WireError(f"header is not valid msgpack ({type(e).__name__})") from None
    if not isinstance(header, dict):
        raise WireError(f"header is a msgpack {type(header).__name__}, expected a map")
    for key, typ in _HEADER_KEYS.items():
        value = header.get(key)
        if not isinstance(value, typ) or isinstance(value, bool):
            raise WireError(f"header key {key!r} is missing or not {typ.__name__}")
    if len(header) != len(_HEADER_KEYS):
        extra = sorted(repr(k) for k in header if k not in _HEADER_KEYS)
        raise WireError(f"header has unexpected key(s) {', '.join(extra)}")
    return header


def _buffers(frames: Sequence[Any]) -> list[memoryview]:
    # ``zmq.Frame``, bytes and numpy arrays all export the buffer protocol
    return [memoryview(f) for f in frames]


def read_header(frames: Sequence[Any], template: Template, n_peers: int,
                params_template: Template | None = None) -> Header:
    """Reads and checks the header frame only: size, msgpack, keys and types, version,
    kind, sender range, round sign. Cheap: no leaf frame is touched.

    Args:
        frames: the received frames (``bytes`` or ``zmq.Frame``), header first.
        template: the receiver's gossip-message template.
        n_peers: number of peers (sender ids must be below it).
        params_template: the receiver's parameter template (its header limit counts too).

    Returns:
        The checked header.

    Raises:
        WireError: the first check that failed.
    """
    if not frames:
        raise WireError("empty message")
    limit = max(template.header_limit, params_template.header_limit if params_template else 0)
    first = frames[0]
    header = _unpack_header(memoryview(first), limit)
    if header["v"] != PROTOCOL_VERSION:
        raise WireError(f"protocol version {header['v']}, expected {PROTOCOL_VERSION}")
    kind, sender, round_ = header["kind"], header["sender"], header["round"]
    if kind not in KINDS:
        raise WireError(f"unknown kind {kind!r}")
    if not 0 <= sender < n_peers:
        raise WireError(f"sender id {sender} is not in [0, {n_peers})")
    if round_ < 0:
        raise WireError(f"negative round {round_}")
    return Header(kind, sender, round_, header, len(first))


def decode(frames: Sequence[Any], template: Template, n_peers: int,
           params_template: Template | None = None, header: Header | None = None) -> Message:
    """Decodes and validates a message against the local template.

    Args:
        frames: the received frames (``bytes`` or ``zmq.Frame``), header first.
        template: the receiver's gossip-message template (checks every kind but ``"state"``).
        n_peers: number of peers (sender ids must be below it).
        params_template: the receiver's parameter template, which checks ``"state"``
            messages; without it they are refused.
        header: ``read_header`` of these frames, when the caller has read it already.

    Returns:
        The message; gossip leaves are zero-copy views of the frames.

    Raises:
        WireError: the first check that failed, naming the leaf where there is one.
    """
    if header is None:
        header = read_header(frames, template, n_peers, params_template)
    kind, sender, round_ = header.kind, header.sender, header.round
    if PAYLOAD_KINDS.get(kind) == "params":
        if params_template is None:
            raise WireError(f"from peer {sender}, round {round_}: unexpected {kind!r} message")
        template = params_template
    try:
        return _decode_body(header, _buffers(frames), template)
    except WireError as e:
        raise WireError(f"from peer {sender}, round {round_}: {e}") from None


def _decode_body(header: Header, buffers: list[memoryview], template: Template) -> Message:
    fields = header.fields
    if fields["struct"] != template.struct_hash:
        raise WireError(f"structure hash {fields['struct']!r} does not match ours "
                        f"{template.struct_hash!r} (a different model or rule?)")
    kind, entries = header.kind, fields["leaves"]
    expected_leaves = len(template.leaves) if kind in PAYLOAD_KINDS else 0
    if len(entries) != expected_leaves:
        raise WireError(f"{len(entries)} leaves in the header, expected {expected_leaves}")
    if len(buffers) != 1 + expected_leaves:
        raise WireError(f"{len(buffers)} frames, expected {1 + expected_leaves}")
    specs = template.leaves[:expected_leaves]
    # (a Template made by hand, not by make_template, has no layout: derive it)
    layouts = template.layout[:expected_leaves] or tuple(_layout(spec) for spec in specs)
    # The entries an honest sender writes: one comparison of canonical msgpack bytes stands
    # for every per-leaf header check (and, unlike ``==`` on the decoded lists, tells
    # ``1`` from ``1.0`` and ``True``). Any difference takes the per-leaf path, which names it.
    known = bool(expected_leaves) and _packs_to(entries, template.entries)
    with np.errstate(over="ignore", invalid="ignore"):  # the NaN/Inf scan's overflow
        if known:
            leaves = [_leaf_array(spec, layout, buf) for spec, layout, buf in
                      zip(specs, layouts, buffers[1:], strict=True)]
        else:
            leaves = [_decode_leaf(spec, layout, entry, buf) for spec, layout, entry, buf in
                      zip(specs, layouts, entries, buffers[1:], strict=True)]
    payload = jax.tree.unflatten(template.treedef, leaves) if kind in PAYLOAD_KINDS else None
    if payload is not None and template.check is not None:
        try:
            template.check(payload)
        except ValueError as e:
            raise WireError(f"payload: {e}") from None
    return Message(kind, header.sender, header.round, payload,
                   sum(layout[2] for layout in layouts), header.nbytes)


def _packs_to(value: Any, packed: bytes) -> bool:
    """True when ``value`` (unpacked from a header) packs to exactly ``packed``."""
    try:
        return _packb(value) == packed
    except (ValueError, TypeError, OverflowError):  # too deep to pack again: not ours
        return False


def _decode_leaf(spec: LeafSpec, layout: tuple, entry: Any, buf: memoryview) -> np.ndarray:
    """The per-leaf header checks (path, codec, dtype, shape, length), then the frame's."""
    where = f"leaf {spec.path!r}"
    if not (isinstance(entry, list) and len(entry) == 5):
        raise WireError(f"{where}: header entry is not [path, dtype, shape, nbytes, codec]")
    path, dtype, shape, nbytes, codec = entry
    if path != spec.path:
        raise WireError(f"{where}: header names leaf {path!r}")
    if codec not in CODECS:
        raise WireError(f"{where}: unknown codec {codec!r}")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise WireError(f"{where}: dtype {dtype!r} is not allowed")
    if DTYPES[dtype] != spec.dtype:
        raise WireError(f"{where}: dtype {dtype}, expected {dtype_name(spec.dtype)}")
    if not (isinstance(shape, list) and all(type(d) is int for d in shape)):
        raise WireError(f"{where}: shape {shape!r} is not a list of ints")
    if tuple(shape) != spec.shape:
        raise WireError(f"{where}: shape {tuple(shape)}, expected {spec.shape}")
    if type(nbytes) is not int or nbytes != spec.nbytes:
        raise WireError(f"{where}: header says {nbytes!r} bytes, shape x itemsize is "
                        f"{spec.nbytes}")
    return _leaf_array(spec, layout, buf)


def _leaf_array(spec: LeafSpec, layout: tuple, buf: memoryview) -> np.ndarray:
    """A leaf frame as a read-only array, after its length check and NaN/Inf scan."""
    dtype, shape, nbytes, scan = layout
    if buf.nbytes != nbytes:
        raise WireError(f"leaf {spec.path!r}: frame has {buf.nbytes} bytes, expected {nbytes}")
    array = np.frombuffer(buf, dtype=dtype).reshape(shape)
    if scan and not _all_finite(array, scan):
        raise WireError(f"leaf {spec.path!r}: contains NaN or Inf")
    return array


def _all_finite(a: np.ndarray, scan: int = 0) -> bool:
    # NaN and Inf propagate through a sum of squares, which BLAS computes in one fast pass
    # (2-3x faster than ``isfinite(a).all()``); only when it is not finite (NaN, Inf, or the
    # overflow of huge finite values) look element by element.
    # The caller silences overflow warnings (``_decode_body``: once per message, not per leaf).
    # ``scan``: 1 BLAS dot, 2 sum, 0 look the dtype up (the template knows it: ``layout``).
    flat = a.reshape(-1)
    if not scan:
        scan = 1 if a.dtype in _BLAS else 2
    fast = np.dot(flat, flat) if scan == 1 else np.sum(flat)
    return math.isfinite(float(fast)) or bool(np.isfinite(a).all())
