"""Atomic, validated checkpoints of a real peer, so a killed peer can restart with ``--resume``.

File format (version 1): one uncompressed ``.npz`` (zip) file, ``OUT/checkpoints/peer-XXXX.npz``.

- ``TREE/LEAFPATH``: one ``.npy`` member per array leaf of each named pytree (``params``,
  ``opt_state``, ``rule_state`` ...), where ``LEAFPATH`` is ``gossip.pytree.leaf_paths`` of the
  tree, e.g. ``params/hidden_0/kernel`` or ``opt_state/0/mu/hidden_0/kernel``. A tree that is a
  single array is stored under ``TREE``. Trees with no leaves (optax ``EmptyState()``, ``None``)
  have no members.
- ``__meta__``: a ``uint8[n]`` array holding UTF-8 JSON
  ``{"format": 1, "trees": {TREE: [KEY, ...]}, "meta": {...}}``: the format version, the members
  of every tree (possibly empty), and the caller's JSON metadata (round, peer, config digest, PRNG
  key data ...).

No member is pickled; the file is read with ``np.load(..., allow_pickle=False)``. A save writes a
temporary file ``.peer-XXXX.npz.PID.tmp`` in the same directory, fsyncs it, renames it onto the
checkpoint with ``os.replace`` and fsyncs the directory, so the checkpoint is always either the old
or the new complete file. One process writes a given checkpoint at a time.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gossip.errors import check_int
from gossip.pytree import leaf_paths, save_npz, tree_from_arrays

FORMAT = 1
META_KEY = "__meta__"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not match the local template.

    The message is one line that names the file and, where relevant, the leaf.
    """


def checkpoint_path(out_dir: Path | str, peer: int) -> Path:
    """The checkpoint file of one peer.

    Args:
        out_dir: the run's output directory ``OUT``.
        peer: the peer index, ``>= 0``.

    Returns:
        ``OUT/checkpoints/peer-XXXX.npz`` with a 4-digit peer index.
    """
    return Path(out_dir) / "checkpoints" / f"peer-{check_int('peer', peer, 0):04d}.npz"


def _tmp_pattern(path: Path) -> str:
    return f".{path.name}.*.tmp"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(path: Path | str, trees: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """Writes named pytrees and metadata to ``path`` atomically.

    The parent directories are created; temporary files left by a killed writer are removed. If
    writing fails, ``path`` keeps the previous checkpoint (if any) and no temporary file remains.

    Args:
        path: the checkpoint file, usually ``checkpoint_path(out, peer)``.
        trees: named pytrees of arrays, e.g. ``{"params": ..., "opt_state": ...}``; the name
            ``"__meta__"`` is reserved.
        meta: JSON-serialisable metadata (round, peer, config digest, PRNG key data ...).

    Raises:
        CheckpointError: a tree is named ``"__meta__"``, two leaves share a key, or ``meta`` is not
            JSON-serialisable.
    """
    path = Path(path)
    if META_KEY in trees:
        raise CheckpointError(f"checkpoint {path}: tree name {META_KEY!r} is reserved")
    index = {name: leaf_paths({name: tree}) for name, tree in trees.items()}
    keys = [key for tree_keys in index.values() for key in tree_keys]
    if len(set(keys)) != len(keys):
        dup = next(key for key in keys if keys.count(key) > 1)
        raise CheckpointError(f"checkpoint {path}: two leaves have the key {dup!r}")
    try:
        blob = json.dumps({"format": FORMAT, "trees": index, "meta": dict(meta)}).encode()
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: meta is not JSON-serialisable: {e}") from None

    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(_tmp_pattern(path)):
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            save_npz(f, {**trees, META_KEY: np.frombuffer(blob, dtype=np.uint8)})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _read(path: Path) -> dict[str, np.ndarray]:
    """Every member of the ``.npz`` at ``path``, read in full so that corruption shows here."""
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("an .npy file, not an .npz file")
        with data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        reason = " ".join(f"{type(e).__name__}: {e}".split())
        raise CheckpointError(f"checkpoint {path}: not a readable checkpoint ({reason})") from None


def _read_meta(path: Path, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    blob = arrays.get(META_KEY)
    if blob is None or blob.dtype != np.uint8 or blob.ndim != 1:
        raise CheckpointError(f"checkpoint {path}: not a readable checkpoint (no {META_KEY})")
    try:
        payload = json.loads(blob.tobytes().decode("utf-8"))
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CheckpointError(f"checkpoint {path}: meta is not readable JSON ({e})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        got = payload.get("format") if isinstance(payload, dict) else None
        raise CheckpointError(f"checkpoint {path}: format {got!r} is not supported "
                              f"(expected {FORMAT})")
    if not isinstance(payload.get("trees"), dict) or not isinstance(payload.get("meta"), dict):
        raise CheckpointError(f"checkpoint {path}: meta lacks 'trees' or 'meta'")
    return payload


def load_checkpoint(path: Path | str,
                    like: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reads a checkpoint written by ``save_checkpoint`` and validates it against ``like``.

    Args:
        path: the checkpoint file.
        like: named template pytrees whose leaves are arrays or ``jax.ShapeDtypeStruct``; only
            these trees are read (the file may hold more).

    Returns:
        ``(trees, meta)``: a dict with the structure of ``like`` whose leaves are numpy arrays of
        the template's shapes and dtypes, and the metadata dict given to ``save_checkpoint``.

    Raises:
        CheckpointError: no file at ``path``; the file is truncated, corrupt or of another format;
            a tree or leaf is missing or extra; a leaf's shape or dtype differs from the
            template's; a floating leaf holds NaN or infinity. For example
            ``checkpoint OUT/checkpoints/peer-0003.npz: leaf 'opt_state/0/mu/w' is float32[3],
            expected float32[4]``.
    """
    path = Path(path)
    arrays = _read(path)
    payload = _read_meta(path, arrays)
    stored = payload["trees"]
    trees = {}
    for name, template in like.items():
        if name not in stored:
            raise CheckpointError(f"checkpoint {path}: tree {name!r} is missing "
                                  f"(has {', '.join(sorted(stored)) or 'none'})")
        keys = leaf_paths({name: template})
        extra = sorted(set(stored[name]) - set(keys))
        if extra:
            raise CheckpointError(f"checkpoint {path}: leaf {extra[0]!r} is not in the template")
        trees[name] = tree_from_arrays(arrays, {name: template}, f"checkpoint {path}",
                                       finite=True, error=CheckpointError)[name]
    return trees, payload["meta"]
