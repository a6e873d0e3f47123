"""Atomic, validated peer checkpoints: round trip, every kind of bad file, and real kills."""

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from checkpoint_writer import trees as writer_trees

from gossip.peer import checkpoint
from gossip.peer.checkpoint import (
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)

ROOT = Path(__file__).resolve().parent.parent


class RuleState(NamedTuple):
    step: jax.Array
    residual: dict


def _trees(seed: int = 0) -> dict:
    k1, k2 = jax.random.split(jax.random.key(seed))
    params = {"Dense_0": {"kernel": jax.random.normal(k1, (3, 4)), "bias": jnp.zeros(4)},
              "w": jax.random.normal(k2, (4,))}
    opt_state = optax.adam(1e-3).init(params)
    opt_state = jax.tree.map(lambda x: x + 1, opt_state)  # non-zero moments and count
    residual = jax.tree.map(jnp.ones_like, params)
    rule_state = RuleState(step=jnp.array(7, jnp.int32), residual=residual)
    return {"params": params, "opt_state": opt_state, "rule_state": rule_state}


def _like(trees: dict) -> dict:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), trees)


def _meta(round_: int = 12) -> dict:
    key_data = jax.random.key_data(jax.random.key(3)).tolist()
    return {"round": round_, "peer": 3, "config": "ab12", "key": key_data}


def _assert_trees_equal(a, b) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.dtype(x.dtype) == np.dtype(y.dtype)
        np.testing.assert_array_equal(x, y)


def _tmp_files(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def test_checkpoint_path():
    assert checkpoint_path("out", 3) == Path("out/checkpoints/peer-0003.npz")
    assert checkpoint_path(Path("/x"), 1234).name == "peer-1234.npz"


def test_round_trip(tmp_path):
    path = checkpoint_path(tmp_path / "out", 3)
    trees = _trees()
    save_checkpoint(path, trees, _meta())
    assert path.exists() and _tmp_files(path) == []
    back, meta = load_checkpoint(path, _like(trees))
    assert meta == _meta()
    _assert_trees_equal(back, trees)
    assert isinstance(back["opt_state"][0], optax.ScaleByAdamState)
    assert isinstance(back["opt_state"][1], optax.EmptyState)
    assert isinstance(back["rule_state"], RuleState)
    assert back["opt_state"][0].count.dtype == np.int32
    with np.load(path, allow_pickle=False) as data:
        assert "opt_state/0/mu/Dense_0/kernel" in data.files and "__meta__" in data.files
    # Only the trees asked for are read; arrays work as templates too.
    only, _ = load_checkpoint(path, {"params": trees["params"]})
    _assert_trees_equal(only, {"params": trees["params"]})


def test_overwrite_and_empty_tree(tmp_path):
    path = tmp_path / "c.npz"
    empty = optax.EmptyState()
    save_checkpoint(path, {"params": {"w": jnp.zeros(2)}, "empty": empty}, {"round": 1})
    save_checkpoint(path, {"params": {"w": jnp.ones(2)}, "empty": empty}, {"round": 2})
    back, meta = load_checkpoint(path, {"params": {"w": jnp.zeros(2)}, "empty": empty})
    assert meta == {"round": 2} and back["empty"] == optax.EmptyState()
    np.testing.assert_array_equal(back["params"]["w"], np.ones(2))


@pytest.mark.parametrize("change, message", [
    (lambda t: t["opt_state"][0].mu.__setitem__("w", jnp.zeros(5)),
     r"leaf 'opt_state/0/mu/w' is float32\[4\], expected float32\[5\]"),
    (lambda t: t["params"].__setitem__("w", jnp.zeros(4, jnp.int32)),
     r"leaf 'params/w' is float32\[4\], expected int32\[4\]"),
    (lambda t: t["params"].__setitem__("extra", jnp.zeros(1)), r"leaf 'params/extra' is missing"),
    (lambda t: t["params"].pop("w"), r"leaf 'params/w' is not in the template"),
    (lambda t: t.__setitem__("ema", {"w": jnp.zeros(4)}), r"tree 'ema' is missing"),
])
def test_mismatch_names_leaf(tmp_path, change, message):
    path = tmp_path / "checkpoints" / "peer-0003.npz"
    save_checkpoint(path, _trees(), _meta())
    like = _trees()
    like["params"] = dict(like["params"])
    change(like)
    with pytest.raises(CheckpointError, match=f"^checkpoint {path}: {message}"):
        load_checkpoint(path, _like(like))


def test_non_finite_leaf(tmp_path):
    path = tmp_path / "c.npz"
    trees = _trees()
    trees["params"]["Dense_0"]["bias"] = trees["params"]["Dense_0"]["bias"].at[1].set(jnp.nan)
    save_checkpoint(path, trees, _meta())
    with pytest.raises(CheckpointError, match="leaf 'params/Dense_0/bias' is not finite"):
        load_checkpoint(path, _like(trees))


def test_missing_garbage_truncated_corrupt(tmp_path):
    path = tmp_path / "c.npz"
    like = _like(_trees())
    with pytest.raises(CheckpointError, match=f"^no checkpoint at {path}$"):
        load_checkpoint(path, like)
    for garbage in [b"", b"not a checkpoint", b"\x93NUMPY garbage"]:
        path.write_bytes(garbage)
        with pytest.raises(CheckpointError, match=f"^checkpoint {path}: not a readable checkpoint"):
            load_checkpoint(path, like)
    np.save(path.with_suffix(".npy"), np.zeros(3))
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path.with_suffix(".npy"), like)
    save_checkpoint(path, _trees(), _meta())
    whole = path.read_bytes()
    rng = random.Random(0)
    for cut in [len(whole) // 2, len(whole) - 1, *rng.sample(range(1, len(whole)), 5)]:
        path.write_bytes(whole[:cut])
        with pytest.raises(CheckpointError, match="not a readable checkpoint"):
            load_checkpoint(path, like)
    # One flipped byte inside the data of a leaf: the zip CRC catches it.
    offset = whole.index(np.asarray(_trees()["params"]["w"]).tobytes())
    path.write_bytes(whole[:offset] + bytes([whole[offset] ^ 1]) + whole[offset + 1:])
    with pytest.raises(CheckpointError, match="not a readable checkpoint.*CRC"):
        load_checkpoint(path, like)


def test_bad_meta(tmp_path):
    path = tmp_path / "c.npz"
    like = {"params": {"w": jnp.zeros(2)}}
    np.savez(path, **{"params/w": np.zeros(2, np.float32)})
    with pytest.raises(CheckpointError, match="not a readable checkpoint \\(no __meta__\\)"):
        load_checkpoint(path, like)
    np.savez(path, **{"__meta__": np.frombuffer(b"{nope", np.uint8)})
    with pytest.raises(CheckpointError, match="meta is not readable JSON"):
        load_checkpoint(path, like)
    np.savez(path, **{"__meta__": np.frombuffer(b'{"format": 2}', np.uint8)})
    with pytest.raises(CheckpointError, match="format 2 is not supported"):
        load_checkpoint(path, like)
    with pytest.raises(CheckpointError, match="meta is not JSON-serialisable"):
        save_checkpoint(path, like, {"key": jnp.zeros(2)})
    with pytest.raises(CheckpointError, match="'__meta__' is reserved"):
        save_checkpoint(path, {"__meta__": jnp.zeros(2)}, {})


def test_failed_save_keeps_previous(tmp_path, monkeypatch):
    path = checkpoint_path(tmp_path, 0)
    old = _trees(0)
    save_checkpoint(path, old, _meta(1))

    def boom(*args):
        raise OSError("disk on fire")

    monkeypatch.setattr(checkpoint.os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        save_checkpoint(path, _trees(1), _meta(2))
    assert _tmp_files(path) == []
    back, meta = load_checkpoint(path, _like(old))
    assert meta["round"] == 1
    _assert_trees_equal(back, old)

    monkeypatch.undo()  # a failure while writing the temporary file
    monkeypatch.setattr(checkpoint.os, "fsync", boom)
    with pytest.raises(OSError, match="disk on fire"):
        save_checkpoint(path, _trees(1), _meta(2))
    assert _tmp_files(path) == []
    assert load_checkpoint(path, _like(old))[1]["round"] == 1


def test_stale_temporary_files_are_removed(tmp_path):
    path = checkpoint_path(tmp_path, 5)
    path.parent.mkdir(parents=True)
    stale = [path.with_name(f".{path.name}.{pid}.tmp") for pid in (1, 99999)]
    for f in stale:
        f.write_bytes(b"half a checkpoint")
    other = path.with_name(".peer-0006.npz.1.tmp")  # another peer's file is left alone
    other.write_bytes(b"x")
    save_checkpoint(path, _trees(), _meta())
    assert _tmp_files(path) == [] and other.exists()


def test_survives_sigkill_while_writing(tmp_path):
    path = checkpoint_path(tmp_path, 0)
    like = _like(writer_trees(0))
    rng = random.Random(0)
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"),
                                          os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "checkpoint_writer", str(path)], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    watchdog = threading.Timer(60, proc.kill)  # a hung writer makes readline() return ""
    watchdog.start()
    torn = 0
    try:
        for i in range(10):
            start = 1000 * i
            proc.stdin.write(f"{start}\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            assert line.startswith("saved "), line
            time.sleep(rng.uniform(0.02, 0.2))
            os.kill(int(line.split()[1]), signal.SIGKILL)
            assert proc.stdout.readline() == "reaped\n"
            torn += bool(_tmp_files(path))
            trees, meta = load_checkpoint(path, like)
            assert meta["round"] >= start
            for leaf in jax.tree.leaves(trees):
                assert (leaf == meta["round"]).all()
    finally:
        watchdog.cancel()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the writer and any forked child
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()
    print(f"{torn} of 10 kills left a temporary file")
    assert torn > 0, "no kill landed while a temporary file existed"
    save_checkpoint(path, writer_trees(-1), {"round": -1})
    assert _tmp_files(path) == []
