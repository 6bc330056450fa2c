"""The Ray executor against a real local cluster (`ray start --head` on loopback, 2 CPUs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from frameworks import ENVIRONMENTS
from tests.support.cli import LAUNCH, ROOT

pytestmark = pytest.mark.slow  # minutes of real frameworks: `make test-slow` runs it (and CI)

ray = pytest.importorskip("ray", reason="ray is not installed: run `make setup`")
RAY = shutil.which("ray", path=os.path.dirname(sys.executable))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A cluster with token authentication, as `ray start` makes one wherever a token exists (Ray >= 2.59: any
    earlier local ray.init() leaves ~/.ray/auth_token behind); the harness must connect without being told."""
    tmp = tmp_path_factory.mktemp("ray")
    (tmp / "token").write_text(os.urandom(16).hex())
    with pytest.MonkeyPatch.context() as env_of_this_shell:  # what the user's shell has; the harness inherits it
        env_of_this_shell.delenv("RAY_AUTH_MODE", raising=False)
        env_of_this_shell.setenv("RAY_AUTH_TOKEN_PATH", str(tmp / "token"))
        yield from _cluster(tmp)


def _cluster(tmp):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(tmp)}
    start = [
        RAY,
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        "--port=0",
        "--num-cpus=2",
        "--num-gpus=0",
        "--include-dashboard=false",
        f"--temp-dir={tmp}",
        "--disable-usage-stats",
    ]
    r = subprocess.run(start, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    address = next(line.split("'")[1] for line in r.stdout.splitlines() if "ray start --address=" in line)
    yield address
    subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)


def _rows(results):
    return [json.loads(line) for line in (results / "runs.jsonl").read_text().splitlines()]


def _key(r):
    return (r["framework"], r["task"], r["seed"], r["status"], r["test_accuracy"])


def test_ray_gives_the_same_ok_rows_as_the_local_executor(cluster, tmp_path):
    mxnet = ",mxnet" if ENVIRONMENTS["mxnet"].python.exists() else ""  # its own environment, when built
    args = ["run", "--frameworks", f"torch{mxnet},fake-ok", "--tasks", "iris_mlp", "--seeds", "0", "--threads", "1"]
    local = subprocess.run(
        [sys.executable, "-c", LAUNCH, *args, "--results", str(tmp_path / "local")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert local.returncode == 0, local.stderr
    on_ray = subprocess.run(
        [
            sys.executable,
            "-c",
            LAUNCH,
            *args,
            "--results",
            str(tmp_path / "ray"),
            "--executor",
            "ray",
            "--ray-address",
            cluster,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert on_ray.returncode == 0, on_ray.stderr
    a, b = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert all(r["status"] == "ok" for r in a) and len(a) == (3 if mxnet else 2)
    assert sorted(map(_key, a)) == sorted(map(_key, b))  # same runs, same accuracies (same seeds and order)
    assert {r["provenance"]["executor"] for r in b} == {"ray"}


def test_a_driver_refused_by_the_clusters_authentication_says_what_to_set(cluster, tmp_path):
    """RAY_AUTH_MODE=disabled against a token cluster: Ray retries, then one harness line naming the setting."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_py_gcs_connect_timeout_s": "3"}  # Ray's retries: 20 s
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            LAUNCH,
            "run",
            "--frameworks",
            "fake-ok",
            "--tasks",
            "iris_mlp",
            "--seeds",
            "0",
            "--threads",
            "1",
            "--results",
            str(tmp_path),
            "--executor",
            "ray",
            "--ray-address",
            cluster,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    last = r.stderr.strip().splitlines()[-1]  # above it, Ray's own log of its retries
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert last.startswith("harness.py: error: ") and "RAY_AUTH_MODE=disabled" in last, last
    assert not (tmp_path / "runs.jsonl").exists() or not (tmp_path / "runs.jsonl").read_text().strip()


def test_a_task_killed_on_the_cluster_becomes_a_row_with_a_cause(cluster, tmp_path):
    p = subprocess.Popen(
        [
            sys.executable,
            "-c",
            LAUNCH,
            "run",
            "--frameworks",
            "fake-slow",
            "--tasks",
            "iris_mlp",
            "--epochs",
            "100",
            "--seeds",
            "0",
            "--threads",
            "1",
            "--results",
            str(tmp_path),
            "--executor",
            "ray",
            "--ray-address",
            cluster,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the Ray worker running our task, once its worker process exists
        found = subprocess.run(["pgrep", "-f", "ray::measure_on_node"], capture_output=True, text=True).stdout.split()
        if found and subprocess.run(["pgrep", "-f", "dlbench.worker"], capture_output=True).returncode == 0:
            break
        time.sleep(0.2)
    assert found, "the Ray task never started"
    for pid in found:
        os.kill(int(pid), 9)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    (row,) = _rows(tmp_path)
    assert row["status"] == "lost" and "Ray task lost" in row["error"], row["error"]


def test_concurrent_tasks_on_one_node_get_disjoint_cpu_sets(cluster, tmp_path):
    """Two 1-thread tasks on the 2-CPU node run at once; each pins to its own core, recorded in its row."""
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            LAUNCH,
            "run",
            "--frameworks",
            "fake-slow",
            "--tasks",
            "iris_mlp",
            "--epochs",
            "25",
            "--seeds",
            "0,1",
            "--threads",
            "1",
            "--results",
            str(tmp_path),
            "--executor",
            "ray",
            "--ray-address",
            cluster,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    a, b = _rows(tmp_path)
    assert a["status"] == b["status"] == "ok"
    assert len(a["cpus"]) == len(b["cpus"]) == 1 and not set(a["cpus"]) & set(b["cpus"]), (a["cpus"], b["cpus"])
    # They ran at the same time (each takes 25 x 0.2 s and more): one ended before the other's run could
    # have started only if their ends lie a whole run apart (timestamps have 1 s resolution).
    from datetime import datetime

    ends = [datetime.fromisoformat(x["timestamp"]) for x in (a, b)]
    assert abs((ends[0] - ends[1]).total_seconds()) + 1 < min(a["wall_s"], b["wall_s"])
