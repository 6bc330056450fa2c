"""Data: find or download the source files, verify them, run the ETL once, cache numpy arrays.

Files are looked for, in order, in `--data-dir`, `$DLBENCH_DATA_DIR` and the per-user cache
(`$DLBENCH_CACHE_DIR`, else `$XDG_CACHE_HOME/dlbench`, else `~/.cache/dlbench`), each directly or in
a sub-folder named after the data set; missing files are downloaded into the cache with pooch.
The ETL result is an `.npz` in the cache, keyed by the sources' hashes, read with allow_pickle=False.
Framework-neutral: numpy and the standard library only (pooch is imported only to download).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlbench import files
from tasks.spec import Task


class DataError(Exception):
    """A data file is missing, corrupt or unreadable; the message is one line that says what to do."""


@dataclass(frozen=True)
class Source:
    name: str
    md5: str  # the published checksum
    urls: tuple[str, ...] = ()


_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",  # the mirror torchvision uses
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def _mnist(name: str, md5: str) -> Source:
    return Source(name, md5, tuple(m + name for m in _MNIST_MIRRORS))


SOURCES: dict[str, tuple[Source, ...]] = {
    "mnist": (
        _mnist("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        _mnist("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        _mnist("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        _mnist("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ),
    "imdb": (
        Source(
            "aclImdb_v1.tar.gz",
            "7c2ac02c03563afcf9b574c7e56c153a",
            ("http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",),
        ),
        Source(
            "imdb_word_index.json",
            "bfafd718b763782e994055a2d397834f",
            ("https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb_word_index.json",),
        ),
    ),
    # the same two files, encoded to maxlen 200 for the Transformer task (a second cache entry, keyed alike)
    "imdb200": (),  # filled below from "imdb"
    "imdb_text": (),  # the raw reviews themselves, for the text pipelines (dlbench/worker/pipelines.py)
    # scikit-learn's copy of the 150-row table ships with this repository (tasks/iris.csv).
    "iris": (Source("iris.csv", "d69a16ea6136ccb02a7c37c66375ebba"),),
}

SOURCES["imdb200"] = SOURCES["imdb_text"] = SOURCES["imdb"]
FOLDER = {"imdb200": "imdb", "imdb_text": "imdb"}  # where a dataset's files lie in a data folder or the download cache

ETL_VERSION = 2  # bump when an ETL's output changes, so old caches are not reused (2: Keras's "br", RandomState)
IMDB_SHUFFLE_SEED = 113  # Keras's imdb.load_data seed: the split files are sorted by class
IRIS_SPLIT_SEED = 0
SOURCE_CAP = 1 << 30


def cache_dir() -> Path:
    """The per-user cache folder for downloads and ETL arrays."""
    if os.environ.get("DLBENCH_CACHE_DIR"):
        return Path(os.environ["DLBENCH_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dlbench"


def search_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """Where source files are looked for, in order."""
    dirs = [Path(data_dir)] if data_dir else []
    if os.environ.get("DLBENCH_DATA_DIR"):
        dirs.append(Path(os.environ["DLBENCH_DATA_DIR"]))
    dirs.append(cache_dir())
    return dirs


def file_hashes(path: Path) -> dict[str, str]:
    """md5 and sha256 of a file, in one pass."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            md5.update(block)
            sha.update(block)
    return {"md5": md5.hexdigest(), "sha256": sha.hexdigest()}


def locate(dataset: str, src: Source, data_dir: str | Path | None = None) -> Path:
    """The path of a verified source file, downloading it into the cache if it is nowhere."""
    dirs = search_dirs(data_dir)
    if dataset == "iris":
        dirs.append(Path(__file__).parent)  # the shipped copy comes last: a user's copy wins
    for d in dirs:
        for p in (d / src.name, d / FOLDER.get(dataset, dataset) / src.name):
            if p.is_file():
                return p
    if not src.urls:
        raise DataError(f"{src.name} not found in {', '.join(map(str, dirs))}: restore it from git")
    return _download(dataset, src, dirs)


def _download(dataset: str, src: Source, dirs: list[Path]) -> Path:
    import pooch  # only the harness's environment downloads; workers never do

    pooch.get_logger().setLevel("WARNING")  # the progress bar shows the download; errors are ours

    target = cache_dir() / FOLDER.get(dataset, dataset)
    errors = []
    for url in src.urls:
        try:
            path = pooch.retrieve(url, known_hash=f"md5:{src.md5}", fname=src.name, path=target, progressbar=True)
            return Path(path)
        except Exception as e:  # noqa: BLE001 - offline, HTTP error or checksum mismatch
            errors.append(f"{url}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    looked = ", ".join(str(d) for d in dirs)
    raise DataError(
        f"{src.name} is not in {looked} and could not be downloaded ({'; '.join(errors)}): "
        f"download it yourself into one of those folders, or pass --data-dir / set DLBENCH_DATA_DIR"
    )


def verify(path: Path, src: Source) -> dict[str, str]:
    """Hash a local file; raise DataError if it fails its published md5 (the IMDB tarball excepted)."""
    size = path.stat().st_size
    if size > SOURCE_CAP:  # the largest source is 84 MB: hashing a huge (or sparse) file would only take time
        raise DataError(f"{path} is {size >> 20} MiB, not {src.name} (at most {SOURCE_CAP >> 20} MiB): remove it")
    h = file_hashes(path)
    h["verified"] = "md5"
    if h["md5"] != src.md5:
        if src.name == "aclImdb_v1.tar.gz":
            # A re-packed copy may hold byte-identical reviews under another hash: the ETL then
            # verifies its contents instead (12500 reviews per split and class, valid ratings).
            h["verified"] = "contents"
        else:
            raise DataError(
                f"{path} fails its checksum (md5 {h['md5']}, expected {src.md5}): it is corrupt or "
                f"truncated; delete it and run again to download a fresh copy"
            )
    return h


# ---------------------------------------------------------------- ETL: sources -> arrays


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an IDX file (MNIST's format): magic 0x0000080N, N big-endian dims, uint8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[:4], "big")
    if magic != 0x0800 + ndim:
        raise DataError(f"{path} is not an IDX file with {ndim} dimensions: delete it and run again")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated ({data.size} of {np.prod(dims)} bytes): delete it")
    return data.reshape(dims)


def _etl_mnist(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    return {
        "x_train": _read_idx(paths["train-images-idx3-ubyte.gz"], 3),
        "y_train": _read_idx(paths["train-labels-idx1-ubyte.gz"], 1),
        "x_test": _read_idx(paths["t10k-images-idx3-ubyte.gz"], 3),
        "y_test": _read_idx(paths["t10k-labels-idx1-ubyte.gz"], 1),
    }


def _etl_iris(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    try:  # md5-verified before, so only a changed ETL or numpy meets a bad table here
        rows = np.loadtxt(paths["iris.csv"], delimiter=",", skiprows=1, dtype=np.float64, encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{paths['iris.csv']} is not a table of numbers ({str(e)[:80]}): restore it") from None
    if rows.shape != (150, 5):
        raise DataError(f"{paths['iris.csv']} has shape {rows.shape}, expected (150, 5)")
    return {"x": rows[:, :4].astype(np.float32), "y": rows[:, 4].astype(np.int32)}


# Keras's text_to_word_sequence filters; the apostrophe is kept ("don't" is in the word index).
FILTERS = re.compile(r"[!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~\t\n]")
_REVIEW = re.compile(r"^aclImdb/(train|test)/(pos|neg)/([0-9]{1,9})_([0-9]{1,2})\.txt$")
REVIEW_CAP = 1 << 20  # the longest review in aclImdb is 13.7 kB: a member of a megabyte is not a review


def tokenize(text: str) -> list[str]:
    """Keras's text_to_word_sequence: lower-case, its filter characters -> space, split on whitespace.

    The raw reviews' `<br />` line breaks are left in, as in the text Keras's word index was built from:
    its filters turn them into the word "br", which that index ranks 7th."""
    return FILTERS.sub(" ", text.lower()).split()


def encode_review(text: str, word_index: dict[str, int], vocab: int = 20_000, maxlen: int = 80):
    """Keras imdb encoding: [1] + (rank + 3, or 2 if unknown or >= vocab); keep last maxlen, left-pad 0."""
    ids = [1] + [r + 3 if (r := word_index.get(w)) is not None and r + 3 < vocab else 2 for w in tokenize(text)]
    ids = ids[-maxlen:]  # pad_sequences' default truncating="pre": keep the end of the review
    return [0] * (maxlen - len(ids)) + ids  # and padding="pre"


def _etl_imdb(paths: dict[str, Path], maxlen: int = 80) -> dict[str, np.ndarray]:
    word_index = json.loads(paths["imdb_word_index.json"].read_text(encoding="utf-8"))
    out = {}
    for split, (texts, y) in _imdb_reviews(paths).items():
        out[f"x_{split}"] = np.asarray([encode_review(t, word_index, maxlen=maxlen) for t in texts], np.int32)
        out[f"y_{split}"] = y
    return out


def _etl_imdb_text(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    """The training reviews as text, in the order of the encoded training set: UTF-8 bytes end to end with each
    review's end offset, their labels, and the word index (JSON bytes), for the text pipelines."""
    texts, y = _imdb_reviews(paths)["train"]
    raw = [t.encode("utf-8") for t in texts]
    return {
        "text_utf8": np.frombuffer(b"".join(raw), np.uint8),
        "text_ends": np.cumsum([len(r) for r in raw]).astype(np.int64),
        "y_train": y,
        "word_index_json": np.frombuffer(paths["imdb_word_index.json"].read_bytes(), np.uint8),
    }


def imdb_texts(npz: str | Path) -> tuple[list[str], np.ndarray, dict[str, int]]:
    """(training reviews, labels, word index) from an `imdb_text` cache entry (`prepare("imdb_text")`)."""
    with np.load(npz) as z:
        blob, ends = z["text_utf8"].tobytes(), z["text_ends"]
        starts = np.concatenate([[0], ends[:-1]])
        texts = [blob[a:b].decode("utf-8") for a, b in zip(starts, ends, strict=True)]
        return texts, z["y_train"], json.loads(z["word_index_json"].tobytes())


def _imdb_reviews(paths: dict[str, Path]) -> dict[str, tuple[list[str], np.ndarray]]:
    """split -> (review texts, labels) in Keras's imdb.load_data order, read from the tarball and checked."""
    tar_path = paths["aclImdb_v1.tar.gz"]
    reviews: dict[tuple[str, str], list[tuple[int, str]]] = {}
    try:
        with tarfile.open(tar_path, "r:gz") as tar:
            for m in tar:  # read members in memory: nothing is extracted, so nothing can escape
                if m.name.startswith("/") or ".." in Path(m.name).parts:
                    raise DataError(f"{tar_path} has an unsafe member {m.name!r}: refusing it")
                match = _REVIEW.match(m.name)
                if not (m.isfile() and match):
                    continue
                split, cls, rid, rating = match.groups()
                if not (7 <= int(rating) <= 10 if cls == "pos" else 1 <= int(rating) <= 4):
                    raise DataError(f"{tar_path}: {m.name} has a rating outside its class")
                if m.size > REVIEW_CAP:
                    raise DataError(f"{tar_path}: {m.name} is {m.size} bytes, not a review: a corrupt copy")
                try:  # the reviews are UTF-8 without a byte-order mark; a copy that adds one still matches
                    text = files.text(tar.extractfile(m).read(REVIEW_CAP + 1))
                except ValueError as e:
                    raise DataError(
                        f"{tar_path}: {m.name} is {e}: a corrupt or re-encoded copy; delete it and run again"
                    ) from None
                reviews.setdefault((split, cls), []).append((int(rid), text))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{tar_path} is not a readable tar.gz ({e}): delete it and run again") from None
    out = {}
    # Keras's imdb.load_data: one np.random.RandomState(113) shuffles an index array of the training
    # set, then (the same generator, continued) one of the test set.
    rng = np.random.RandomState(IMDB_SHUFFLE_SEED)
    for split in ("train", "test"):
        counts = {cls: len(reviews.get((split, cls), [])) for cls in ("pos", "neg")}
        if counts != {"pos": 12500, "neg": 12500}:
            raise DataError(f"{tar_path}: {split} has {counts} reviews, expected 12500 each: corrupt copy")
        x, y = [], []
        for label, cls in ((1, "pos"), (0, "neg")):
            for _, text in sorted(reviews[(split, cls)]):  # a fixed order, whatever the tar's order
                x.append(text)
                y.append(label)
        order = np.arange(len(y))
        rng.shuffle(order)
        out[split] = ([x[i] for i in order], np.asarray(y, np.uint8)[order])
    return out


_ETL = {
    "mnist": _etl_mnist,
    "iris": _etl_iris,
    "imdb": _etl_imdb,
    "imdb200": lambda p: _etl_imdb(p, maxlen=200),
    "imdb_text": _etl_imdb_text,
}


def prepare(dataset: str, data_dir: str | Path | None = None) -> tuple[Path, dict]:
    """Verify the sources and run the ETL once: return the cached .npz path and its provenance.

    Every failure to read a source or to use the cache is a DataError: one line that says what to do."""
    try:
        return _prepare(dataset, data_dir)
    except OSError as e:
        where = e.filename or cache_dir()
        raise DataError(
            f"cannot use {where} ({e.strerror or e}): make it readable and writable, or point "
            f"DLBENCH_CACHE_DIR at a folder you can write (data files: --data-dir / DLBENCH_DATA_DIR)"
        ) from None


def _read_meta(path: Path) -> dict | None:
    """A cache entry's metadata, or None if it is missing, unreadable or not what we wrote."""
    try:
        meta = files.read_json(path)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and isinstance(meta.get("sha256"), str) else None


def _prepare(dataset: str, data_dir: str | Path | None) -> tuple[Path, dict]:
    paths, hashes = {}, {}
    for src in SOURCES[dataset]:
        path = locate(dataset, src, data_dir)
        try:
            h = verify(path, src)
        except DataError:
            if not (src.urls and path.resolve().is_relative_to(cache_dir().resolve())):
                raise  # the user's own copy: never deleted; the message says what to do
            path.unlink()  # a truncated or corrupt download of ours: discard it and fetch it again
            path = _download(dataset, src, search_dirs(data_dir))
            h = verify(path, src)
        paths[src.name], hashes[src.name] = path, {"path": str(path), **h}
    key = hashlib.sha256(
        json.dumps([ETL_VERSION, sorted((n, h["sha256"]) for n, h in hashes.items())]).encode()
    ).hexdigest()[:16]
    npz = cache_dir() / "arrays" / f"{dataset}-{key}.npz"
    meta_path = npz.with_suffix(".json")
    meta = _read_meta(meta_path)
    if npz.is_file() and meta and meta["sha256"] == file_hashes(npz)["sha256"]:
        return npz, {**meta, "files": hashes, "cached": True}
    # A cache entry that does not match its recorded hash (truncated, corrupted, hand-edited, or its
    # metadata unreadable) is rebuilt below.
    if npz.exists() and not npz.is_file():
        raise DataError(f"the cache entry {npz} is not a file: delete it and run again")
    t0 = time.perf_counter()
    arrays = _ETL[dataset](paths)
    etl_s = time.perf_counter() - t0
    npz.parent.mkdir(parents=True, exist_ok=True)
    tmp = npz.with_suffix(f".{os.getpid()}.tmp.npz")  # two harnesses at once each write their own
    np.savez(tmp, **arrays)
    os.replace(tmp, npz)  # never leave a half-written cache entry under the real name
    meta = {
        "dataset": dataset,
        "etl_s": round(etl_s, 3),
        "etl_version": ETL_VERSION,
        "sha256": file_hashes(npz)["sha256"],
    }
    tmp_meta = meta_path.with_suffix(f".{os.getpid()}.tmp")
    tmp_meta.write_text(json.dumps(meta))
    os.replace(tmp_meta, meta_path)
    return npz, {**meta, "files": hashes, "cached": False}


# ---------------------------------------------------------------- arrays -> training splits


@dataclass
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _iris_split(x: np.ndarray, y: np.ndarray):
    """Stratified 80/20 split with a fixed seed, standardised with the training rows' statistics."""
    rng = np.random.default_rng(IRIS_SPLIT_SEED)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = round(len(idx) * 0.2)
        test.extend(idx[:n_test])
        train.extend(idx[n_test:])
    train, test = rng.permutation(train), rng.permutation(test)  # classes mixed, so is validation
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    return (x[train] - mean) / std, y[train], (x[test] - mean) / std, y[test]


def load_splits(task: Task, profile: str, npz: str | Path) -> Splits:
    """The task's train/validation/test arrays for a profile ('quick' or 'full'), from the ETL cache."""
    with np.load(npz, allow_pickle=False) as f:
        a = {k: f[k] for k in f.files}
    if task.dataset == "iris":
        x_tr, y_tr, x_te, y_te = _iris_split(a["x"], a["y"])
    else:
        x_tr, y_tr, x_te, y_te = a["x_train"], a["y_train"], a["x_test"], a["y_test"]
    if profile == "quick" and task.quick:
        x_tr, y_tr = x_tr[: task.quick["n_train"]], y_tr[: task.quick["n_train"]]
        x_te, y_te = x_te[: task.quick["n_test"]], y_te[: task.quick["n_test"]]
    if task.dataset == "mnist":
        x_tr, x_te = (x.reshape(-1, 28, 28, 1).astype(np.float32) / 255.0 for x in (x_tr, x_te))
    x_tr, x_te = x_tr.astype(task.input_dtype), x_te.astype(task.input_dtype)
    label_dtype = np.float32 if task.binary else np.int32
    y_tr, y_te = y_tr.astype(label_dtype), y_te.astype(label_dtype)
    if task.recipe.validate_on_test:  # the seeds' recipe: Keras's fit(validation_data=(x_test, y_test))
        return Splits(x_tr, y_tr, x_te, y_te, x_te, y_te)
    n_fit = int(len(x_tr) * (1 - task.recipe.validation_split))  # Keras: the LAST 10 % validates
    return Splits(x_tr[:n_fit], y_tr[:n_fit], x_tr[n_fit:], y_tr[n_fit:], x_te, y_te)
