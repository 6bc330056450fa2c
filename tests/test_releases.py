"""Releases on demand (NAME@VERSION) and the history of a framework over its releases.

The environment tests are offline: uv resolves against a folder of tiny wheels made here (a fake
framework's distribution and a numpy stand-in at the main environment's version), with the index off,
so they test the resolution, the cache keys and the reuse without the network or gigabytes.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbench.analysis import history
from dlbench.analysis.verdicts import Verdict
from dlbench.driver import releases
from dlbench.driver.config import UsageError
from frameworks import ENVIRONMENTS, FRAMEWORKS, Framework
from tests.support.cli import ROOT, cli
from tests.support.rows import speed_row

UV = ROOT / ".uv" / "bin" / "uv"


def harness(*args, env=None):
    return cli(*args, env={**os.environ, **(env or {})})


needs_uv = pytest.mark.skipif(not UV.exists() or not ENVIRONMENTS["main"].python.exists(), reason="run make setup")


# -- the spec ------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=30),
        st.builds(lambda f, v: f"{f}@{v}", st.sampled_from([*FRAMEWORKS, "x"]), st.text(max_size=12)),
    )
)
def test_any_item_is_a_release_in_its_frameworks_range_or_one_clear_refusal(text):
    try:
        rel = releases.parse(text)
    except UsageError as e:
        assert "\n" not in str(e) and str(e)
        return
    fw = FRAMEWORKS[rel.framework]
    from packaging.specifiers import SpecifierSet

    assert fw.releases and rel.version in SpecifierSet(fw.releases)
    assert rel.name == f"{rel.framework}@{rel.version}"


@pytest.mark.parametrize(
    "spec, says",
    [
        ("torch@1.13.1", "supports releases >=2.4"),  # exists on PyPI, outside the adapter's range
        ("nosuch@1.0", "unknown framework 'nosuch'"),
        ("mxnet@1.9.0", "declares no releases"),
        ("torch@", "not a release"),
        ("torch@two", "not a version"),
        ("torch@@2.15.0", "not a release"),
        ("torch@2.15.0,nosuch", "unknown framework 'nosuch'"),  # said before the release is built
    ],
)
def test_a_bad_release_is_one_line_and_exit_2_before_anything_is_built(tmp_path, spec, says):
    where = tmp_path / "releases"
    r = harness(
        "run",
        "--frameworks",
        f"torch,{spec}",
        "--tasks",
        "iris_mlp",
        "--results",
        str(tmp_path / "r"),
        env={"DLBENCH_RELEASES_DIR": str(where)},
    )
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and says in r.stderr, r.stderr
    assert not where.exists() and not (tmp_path / "r").exists()


@needs_uv
def test_without_the_network_a_release_is_one_line_and_exit_2(tmp_path):
    r = harness(
        "speed",
        "--frameworks",
        "torch@2.14.0",
        "--tasks",
        "iris_mlp",
        "--results",
        str(tmp_path / "r"),
        env={
            "DLBENCH_RELEASES_DIR": str(tmp_path / "rel"),
            "UV_OFFLINE": "1",
            "UV_CACHE_DIR": str(tmp_path / "empty-cache"),
        },
    )
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and "torch@2.14.0 cannot be resolved" in line and "package index" in line
    assert not list((tmp_path / "rel").glob("torch-*"))  # no environment was started


# -- environments, offline ---------------------------------------------------------------------------------


def _wheel(folder, name: str, version: str) -> None:
    """A pure-Python wheel with nothing in it but its metadata and one module."""
    mod = name.replace("-", "_")
    dist = f"{mod}-{version}.dist-info"
    wheel = "Wheel-Version: 1.0\nGenerator: dlbench-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    body = {
        f"{mod}/__init__.py": f"__version__ = {version!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": wheel,
    }

    def digest(text: str) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()

    record = "".join(f"{p},sha256={digest(t)},{len(t.encode())}\n" for p, t in body.items()) + f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{mod}-{version}-py3-none-any.whl", "w") as z:
        for p, t in {**body, f"{dist}/RECORD": record}.items():
            z.writestr(p, t)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """A fake framework `fake` whose releases 1.0 and 2.0 lie in a local folder; uv with no index, offline."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for v in ("1.0", "2.0"):
        _wheel(wheels, "dlbench-fake", v)
    numpy = releases._python_version(ENVIRONMENTS["main"].python).split()[1]
    _wheel(wheels, "numpy", numpy)  # the stand-in for the main environment's numpy: only the release changes
    for k, v in {
        "DLBENCH_RELEASES_DIR": str(tmp_path / "rel"),
        "UV_OFFLINE": "1",
        "UV_NO_INDEX": "1",
        "UV_FIND_LINKS": str(wheels),
        "UV_CACHE_DIR": str(tmp_path / "cache"),
    }.items():
        monkeypatch.setenv(k, v)
    fake = Framework(
        name="fake",
        module="tests.support.fake_adapter",
        env="main",
        distributions=("dlbench-fake",),
        releases=">=1,<3",
        pinned=("dlbench-fake",),
    )
    return {"fake": fake}, dict(ENVIRONMENTS), tmp_path / "rel"


@needs_uv
def test_a_release_environment_is_built_once_per_resolved_lock_and_reused(offline, capsys):
    registry, environments, where = offline
    releases.register("fake@1.0,fake@2.0", registry, environments)
    first = capsys.readouterr().err
    assert first.count("built in") == 2 and "resolved in" in first, first
    one, two = environments["fake@1.0"], environments["fake@2.0"]
    assert one.venv != two.venv  # each release its own environment
    for env, version in ((one, "1.0"), (two, "2.0")):
        stamp = json.loads((ROOT / env.venv / ".stamp").read_text())
        lock = (ROOT / stamp["lock"]).read_text()
        assert f"dlbench-fake=={version}" in lock and stamp["sha256"] == hashlib.sha256(lock.encode()).hexdigest()
        assert env.venv.endswith(releases.key(lock))  # the key is the resolved lock's
    assert registry["fake@1.0"] == dataclasses.replace(
        registry["fake"], name="fake@1.0", env="fake@1.0", description=registry["fake@1.0"].description
    )
    again_registry, again_envs = {"fake": registry["fake"]}, dict(ENVIRONMENTS)
    releases.register("fake@1.0", again_registry, again_envs)  # a second call: nothing resolved, nothing built
    second = capsys.readouterr().err
    assert "lock reused" in second and "reused (Python" in second and "built in" not in second, second
    assert again_envs["fake@1.0"].venv == one.venv


@needs_uv
def test_a_release_that_does_not_exist_is_refused_in_one_line(offline):
    registry, environments, where = offline
    with pytest.raises(UsageError, match=r"^fake@2\.5 cannot be resolved .*package index$"):
        releases.register("fake@2.5", registry, environments)  # inside the range, but never released
    assert not list(where.glob("fake-2.5-*"))


def test_the_requirements_pin_the_release_and_keep_the_frameworks_numpy():
    torch = FRAMEWORKS["torch"]
    text = releases.requirements(torch, "2.15.0", "2.4.6")
    assert text.splitlines()[1:] == ["torch==2.15.0", "numpy==2.4.6"]
    jax = releases.requirements(FRAMEWORKS["jax-nnx"], "0.11.0", "2.4.6").splitlines()[1:]
    assert jax == ["jax==0.11.0", "jaxlib==0.11.0", "flax", "optax", "numpy==2.4.6"]
    assert releases.key(text) == releases.key(text) != releases.key(text.replace("2.4.6", "2.4.5"))
    assert releases.key(text) == releases.key(text.replace("# torch@2.15.0", "# built elsewhere, /other/clone"))


# -- step detection ------------------------------------------------------------------------------------------


def _series(rng, ratios, groups=6, noise=0.03, sittings=None, speed=None):
    """Releases 1.0, 1.1, ... with true times 10 ms x ratios[i]; each process lognormal noise; each release in
    sitting sittings[i] (default one sitting), whose machine runs speed[i] times slower, beside an anchor."""
    points = []
    for i, r in enumerate(ratios):
        sid = sittings[i] if sittings else "S"
        k = speed[i] if speed else 1.0
        anchor = {g: 5e-3 * k * rng.lognormal(0, noise) for g in range(groups)}
        times = {g: 10e-3 * r * k * rng.lognormal(0, noise) for g in range(groups)}
        points.append(history.Point(f"x@1.{i}", f"1.{i}", sid, times, {g: times[g] / anchor[g] for g in times}))
    return points


def test_a_20_percent_step_at_one_release_is_found_and_nowhere_else():
    rng = np.random.default_rng(0)
    trials, found, false = 300, 0, 0
    for _ in range(trials):
        comps = history.steps(_series(rng, [1, 1, 1, 1.2, 1.2]))
        flagged = [i for i, c in enumerate(comps) if c.verdict in (Verdict.FASTER, Verdict.SLOWER)]
        found += flagged.count(2) and comps[2].verdict == Verdict.SLOWER
        false += any(i != 2 for i in flagged)
    assert found / trials >= 0.95
    assert false / trials <= 0.05 + 0.03  # the familywise rate, with Monte Carlo slack


def test_noise_alone_is_not_a_step():
    rng = np.random.default_rng(1)
    trials = 600
    any_step = sum(
        any(c.verdict in (Verdict.FASTER, Verdict.SLOWER) for c in history.steps(_series(rng, [1] * 5)))
        for _ in range(trials)
    )
    assert any_step / trials <= 0.05 + 0.02  # Holm holds the familywise false-step rate at 0.05


def test_releases_in_different_sittings_meet_only_through_their_anchors():
    """Each release on its own boot, the second machine twice as slow: raw times would show a 2x step."""
    rng = np.random.default_rng(2)
    flat = _series(rng, [1, 1, 1], sittings=["A", "B", "C"], speed=[1, 2, 1])
    assert not [c for c in history.steps(flat) if c.verdict in (Verdict.FASTER, Verdict.SLOWER)]
    step = _series(rng, [1, 1.2, 1.2], sittings=["A", "B", "C"], speed=[1, 2, 1], noise=0.01)
    assert [c.verdict for c in history.steps(step)][0] == Verdict.SLOWER


def test_history_prints_the_series_in_version_order_and_flags_the_step(tmp_path):
    rng = np.random.default_rng(3)
    rows = []
    for g in range(6):  # the anchor torch (2.13) and two other releases beside it, in one sitting
        for name, version, t in (
            ("torch", "2.13.0+cpu", 1e-3),
            ("torch@2.15.0", "2.15.0", 1.3e-3),
            ("torch@2.14.0", "2.14.0", 1e-3),
        ):
            rows.append(speed_row("S", name, t * rng.lognormal(0, 0.01), g, framework_version=version))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "speed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = harness("history", "torch", "--results", str(tmp_path))
    assert r.returncode == 0, r.stderr
    table = r.stdout.split("**iris_mlp**")[1]
    assert table.index("2.13.0+cpu") < table.index("2.14.0") < table.index("2.15.0")
    steps = [ln for ln in table.splitlines() if " vs " in ln]
    assert len(steps) == 2 and "STEP" in steps[1] and "slower" in steps[1] and "STEP" not in steps[0], table
    assert "1 step(s) among 2 release change(s)" in table
    assert harness("history", "nosuch", "--results", str(tmp_path)).returncode == 2
