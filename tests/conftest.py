"""Shared fixtures: where the real data is (CI: ../shared/data), and an isolated cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def real_data_dir() -> Path | None:
    for d in (os.environ.get("DLBENCH_DATA_DIR"), ROOT.parent / "shared" / "data"):
        if d and (Path(d) / "mnist").is_dir() and (Path(d) / "imdb").is_dir():
            return Path(d)
    return None


needs_data = pytest.mark.skipif(
    real_data_dir() is None, reason="real data not found: set DLBENCH_DATA_DIR (CI points it at ../shared/data)"
)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = real_data_dir()
    if d is None:
        pytest.skip("real data not found: set DLBENCH_DATA_DIR")
    return d


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    """A fresh cache and no data folder: nothing is found unless a test puts it there."""
    monkeypatch.setenv("DLBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DLBENCH_DATA_DIR", raising=False)
    return tmp_path / "cache"
