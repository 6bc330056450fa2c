"""Shared fixtures: where the real data is, an isolated cache, and fake frameworks in the registry.

Real data is found through DLBENCH_DATA_DIR (read once, when the tests start, before any test changes
the environment) and, failing that, ../shared/data beside the repository (a developer's checkout, CI).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from frameworks import ENVIRONMENTS, FRAMEWORKS, Environment, Framework
from tests.support.cli import ROOT

_DATA_ENV = os.environ.get("DLBENCH_DATA_DIR")  # saved before any test can unset it


def real_data_dir() -> Path | None:
    for d in (_DATA_ENV, ROOT.parent / "shared" / "data"):
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


@pytest.fixture
def register(monkeypatch):
    """register(name, module="tests.support.fake_adapter", env="main", **env_vars): a framework in the
    registry for this test only (the registry is restored afterwards)."""

    def add(name: str, module: str = "tests.support.fake_adapter", env: str = "main", **env_vars) -> Framework:
        fw = Framework(name=name, module=module, env=env, env_vars=env_vars)
        monkeypatch.setitem(FRAMEWORKS, name, fw)
        return fw

    return add


@pytest.fixture
def register_env(monkeypatch):
    """register_env(key, venv): an Environment in the registry for this test only."""

    def add(key: str, venv: str) -> Environment:
        env = Environment(venv=venv, requirements=f"requirements/{key}.txt")
        monkeypatch.setitem(ENVIRONMENTS, key, env)
        return env

    return add
