"""The data pipeline on the real files, and its errors on bad ones."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile

import numpy as np
import pytest

from tasks import TASKS
from tasks.data import IMDB_SHUFFLE_SEED, SOURCES, DataError, Source, encode_review, load_splits, prepare, tokenize
from tests.conftest import needs_data


@pytest.fixture(scope="module")
def mnist(data_dir):
    npz, meta = prepare("mnist", data_dir)
    with np.load(npz, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}, meta


@pytest.fixture(scope="module")
def imdb(data_dir):
    npz, meta = prepare("imdb", data_dir)
    with np.load(npz, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}, meta


@needs_data
def test_mnist_shapes_counts_and_mean(mnist):
    a, meta = mnist
    assert a["x_train"].shape == (60000, 28, 28) and a["x_test"].shape == (10000, 28, 28)
    assert a["x_train"].dtype == np.uint8
    assert np.bincount(a["y_train"]).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(a["y_test"]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert a["x_train"].mean() == pytest.approx(0.1306604762738429 * 255, rel=1e-12)
    assert all(f["verified"] == "md5" for f in meta["files"].values())


@needs_data
def test_mnist_splits_are_scaled_nhwc(data_dir):
    npz, _ = prepare("mnist", data_dir)
    s = load_splits(TASKS["mnist_cnn"], "full", npz)
    assert s.x_train.shape == (54000, 28, 28, 1) and s.x_val.shape == (6000, 28, 28, 1)
    assert s.x_train.dtype == np.float32 and 0.0 <= s.x_train.min() and s.x_train.max() == 1.0
    q = load_splits(TASKS["mnist_cnn"], "quick", npz)
    assert (len(q.x_train), len(q.x_val), len(q.x_test)) == (5400, 600, 1000)


@needs_data
def test_imdb_sizes_and_balance(imdb):
    a, meta = imdb
    assert a["x_train"].shape == (25000, 80) and a["x_test"].shape == (25000, 80)
    assert a["y_train"].sum() == 12500 and a["y_test"].sum() == 12500
    assert a["x_train"].max() < 20000 and a["x_train"].min() == 0
    # The shared copy is re-packed: its bytes differ from Stanford's, so its contents were verified.
    assert meta["files"]["aclImdb_v1.tar.gz"]["verified"] in ("md5", "contents")
    assert len(meta["files"]["aclImdb_v1.tar.gz"]["sha256"]) == 64


@needs_data
def test_imdb200_is_the_same_encoding_to_length_200_in_its_own_cache_entry(imdb, data_dir):
    """The Transformer task's maxlen 200: the same reviews, order and labels; its last 80 tokens are the
    LSTM task's 80 (both keep the end of a review and pad in front), cached beside it under its own name."""
    npz, meta = prepare("imdb200", data_dir)
    with np.load(npz, allow_pickle=False) as f:
        long = {k: f[k] for k in f.files}
    short, short_meta = imdb
    assert long["x_train"].shape == (25000, 200) and long["x_test"].shape == (25000, 200)
    for split in ("train", "test"):
        np.testing.assert_array_equal(long[f"y_{split}"], short[f"y_{split}"])
        np.testing.assert_array_equal(long[f"x_{split}"][:, -80:], short[f"x_{split}"])
    assert (long["x_train"][:, :120] != 0).any()  # reviews longer than 80 keep more of their start
    assert npz.name.startswith("imdb200-") and meta["files"] == short_meta["files"]


@needs_data
def test_imdb_encodes_a_known_review_exactly(imdb):
    # aclImdb/train/neg/10962_3.txt: "This movie is terrible but it has some good effects."
    # Keras ranks: this 11, movie 17, is 6, terrible 391, but 18, it 9, has 44, some 46, good 49,
    # effects 299; +3 each, start token 1 in front, left-padded with 0 to 80.
    expected = [0] * 69 + [1, 14, 20, 9, 394, 21, 12, 47, 49, 52, 302]
    a, _ = imdb
    # The ETL orders train pos by id then neg by id, then shuffles as Keras's load_data does: an index
    # array shuffled in place by np.random.RandomState(113).
    raw_index = 12500 + 10962
    order = np.arange(25000)
    np.random.RandomState(IMDB_SHUFFLE_SEED).shuffle(order)
    position = int(np.argsort(order)[raw_index])
    assert a["x_train"][position].tolist() == expected
    assert a["y_train"][position] == 0


@needs_data
def test_a_review_with_br_keeps_kerass_br_token(data_dir):
    import json as json_

    word_index = json_.loads((data_dir / "imdb" / "imdb_word_index.json").read_text())
    assert word_index["br"] == 7  # Keras's index was built from text that kept the line breaks
    ids = encode_review("A fine film.<br /><br />I liked it.", word_index)
    assert ids.count(7 + 3) == 2 and ids[-7:] == [1 + 0, 6, 419, 22, 10, 10, 13][0:0] + ids[-7:]
    assert [t for t in ids if t] == [1] + [
        word_index[w] + 3 for w in ("a", "fine", "film", "br", "br", "i", "liked", "it")
    ]


def test_tokenisation_is_keras_compatible():
    # Keras's filters make "br" of "<br />" (its word index ranks "br" 7th): the token is kept.
    assert tokenize("I wouldn't<br /><br />rent THIS, one!") == ["i", "wouldn't", "br", "br", "rent", "this", "one"]
    assert encode_review("Great.<br />Bad", {"great": 84, "br": 7, "bad": 75}, maxlen=5) == [0, 1, 87, 10, 78]
    index = {"the": 1, "movie": 17, "rare": 19997}
    # unknown words and ranks with rank + 3 >= 20000 become 2 (out of vocabulary)
    assert encode_review("The movie zzz rare", index, maxlen=6) == [0, 1, 4, 20, 2, 2]
    long = encode_review(" ".join(["the"] * 100), index, maxlen=80)
    assert len(long) == 80 and long[0] == 4  # truncated at the front: the start token is gone


@needs_data
def test_iris_split_is_stratified_and_standardised(data_dir):
    npz, _ = prepare("iris", data_dir)
    s = load_splits(TASKS["iris_mlp"], "full", npz)
    assert (len(s.x_train), len(s.x_val), len(s.x_test)) == (108, 12, 30)
    assert np.bincount(s.y_test).tolist() == [10, 10, 10]
    train = np.concatenate([s.x_train, s.x_val])
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), 1, atol=1e-5)


def test_iris_ships_with_the_repo(empty_cache):
    npz, meta = prepare("iris")
    assert meta["files"]["iris.csv"]["sha256"].startswith("f13ffa8f")


def test_corrupt_file_is_refused_with_one_line(empty_cache, tmp_path):
    d = tmp_path / "data" / "mnist"
    d.mkdir(parents=True)
    for src in SOURCES["mnist"]:
        (d / src.name).write_bytes(gzip.compress(b"\x00\x00\x08\x03 not mnist"))
    with pytest.raises(DataError) as e:
        prepare("mnist", tmp_path / "data")
    msg = str(e.value)
    assert "\n" not in msg and "fails its checksum" in msg and "train-images" in msg


def test_missing_and_offline_says_where_it_looked(empty_cache, monkeypatch):
    # An address on this machine that refuses connections: the download fails at once.
    dead = tuple(Source(s.name, s.md5, ("http://127.0.0.1:9/" + s.name,)) for s in SOURCES["mnist"])
    monkeypatch.setitem(SOURCES, "mnist", dead)
    with pytest.raises(DataError) as e:
        prepare("mnist")
    msg = str(e.value)
    assert "\n" not in msg and "could not be downloaded" in msg and str(empty_cache) in msg


def _tar(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def test_imdb_tarball_with_unsafe_member_is_refused(empty_cache, tmp_path, data_dir):
    d = tmp_path / "data"
    d.mkdir()
    shutil.copy(data_dir / "imdb" / "imdb_word_index.json", d)
    _tar(d / "aclImdb_v1.tar.gz", {"aclImdb/train/pos/0_9.txt": b"good", "../evil.txt": b"x"})
    with pytest.raises(DataError, match="unsafe member"):
        prepare("imdb", d)


def test_imdb_tarball_with_missing_reviews_is_refused(empty_cache, tmp_path, data_dir):
    d = tmp_path / "data"
    d.mkdir()
    shutil.copy(data_dir / "imdb" / "imdb_word_index.json", d)
    _tar(d / "aclImdb_v1.tar.gz", {f"aclImdb/train/pos/{i}_9.txt": b"good" for i in range(10)})
    with pytest.raises(DataError, match="expected 12500 each"):
        prepare("imdb", d)


def test_word_index_must_be_the_published_file(empty_cache, tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "imdb_word_index.json").write_text(json.dumps({"the": 1}))
    _tar(d / "aclImdb_v1.tar.gz", {})
    with pytest.raises(DataError, match="imdb_word_index.json fails its checksum"):
        prepare("imdb", d)


@needs_data
def test_the_seed_recipe_fits_on_all_25000_reviews_and_validates_on_the_test_set(imdb, data_dir):
    from tasks.spec import with_recipe

    npz, _ = prepare("imdb", data_dir)
    ours, seed = (load_splits(with_recipe(TASKS["imdb_lstm"], r), "full", npz) for r in ("ours", "seed"))
    assert (len(ours.x_train), len(ours.x_val)) == (22500, 2500)
    assert len(seed.x_train) == 25000 and np.array_equal(seed.x_val, seed.x_test) and len(seed.x_test) == 25000
    assert np.array_equal(seed.x_train[:22500], ours.x_train) and np.array_equal(seed.y_val, ours.y_test)
