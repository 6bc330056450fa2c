"""GPU paths: the quick matrix and the parity check on a GPU. Skipped where there is none (CI has none)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from frameworks import ENVIRONMENTS, FRAMEWORKS
from tests.support.cli import cli


def _has_gpu() -> bool:
    if not shutil.which("nvidia-smi"):
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not _has_gpu(), reason="no NVIDIA GPU here (nvidia-smi): GPU paths need one")


GPU_FRAMEWORKS = [f for f in FRAMEWORKS if ENVIRONMENTS[FRAMEWORKS[f].env].python.exists() and f != "mlx"]


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
@pytest.mark.parametrize("framework", GPU_FRAMEWORKS)
def test_quick_matrix_on_the_gpu_records_device_memory_and_utilisation(framework, precision, tmp_path):
    if precision not in FRAMEWORKS[framework].precisions:
        pytest.skip(f"{framework} implements {', '.join(FRAMEWORKS[framework].precisions)}")
    r = cli(
        "run",
        "--frameworks",
        framework,
        "--tier",
        "all",
        "--device",
        "gpu",
        "--precision",
        precision,
        "--epochs",
        "2",
        "--results",
        str(tmp_path),
        timeout=3600,
    )
    assert r.returncode == 0, r.stderr
    for row in map(json.loads, (tmp_path / "runs.jsonl").read_text().splitlines()):
        assert row["status"] == "ok", row["error"]
        assert "gpu" in row["device"].lower() or "cuda" in row["device"].lower(), row["device"]
        assert row["peak_device_mib"] > 0 and row["provenance"]["machine"]["gpus"]
        assert row["precision"] == precision and row["gpu_util_samples"] > 0, row.get("monitor_note")


def test_parity_on_the_gpu_at_fp32_with_deterministic_kernels(tmp_path):
    frameworks = ",".join(GPU_FRAMEWORKS)
    r = cli(
        "parity",
        "--device",
        "gpu",
        "--frameworks",
        frameworks,
        "--tier",
        "all",
        "--results",
        str(tmp_path),
        timeout=3600,
    )
    assert r.returncode == 0, r.stdout[-3000:]
