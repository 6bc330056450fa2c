"""What the hardware did while a worker trained: GPU utilisation and energy (NVML), CPU package energy (RAPL).

Runs in the driver beside the worker. The worker says when training starts (the `training` event) and
when each epoch ends (`epoch`); the monitor samples GPU utilisation every 0.1 s between the two and
reads the energy counters at both ends. So the figures cover the training epochs and their validation
passes, nothing before (imports, data, compilation outside the first epoch) or after.

What they are, so nobody reads them as wall-plug energy:
- `gpu_energy_j`: NVML's total-energy counter of the GPU board (nvmlDeviceGetTotalEnergyConsumption,
  Volta and later): the board only, not the host CPU, memory, fans or power supply.
- `cpu_energy_j`: the RAPL package counters under /sys/class/powercap (Intel, and AMD on recent
  kernels): the CPU packages of the whole machine, other processes included, not DRAM or the rest.
Where a counter cannot be read, the field is null and `monitor_note` says why.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

POWERCAP = Path("/sys/class/powercap")


def _rapl_zones() -> list[Path]:
    """Top-level RAPL package zones (intel-rapl:0, intel-rapl:1, ...), readable ones only."""
    zones = []
    for z in sorted(POWERCAP.glob("*-rapl:*")):
        if z.name.count(":") == 1 and (z / "energy_uj").is_file():
            try:
                int((z / "energy_uj").read_text())
                zones.append(z)
            except (OSError, ValueError):
                continue
    return zones


class Monitor:
    """Samples while training runs; `summary()` gives the row's fields (null with a reason where unmeasured)."""

    def __init__(self, device: str, interval_s: float = 0.1):
        self.interval_s, self.samples, self.notes = interval_s, [], {}
        self.gpu = None
        if device in ("gpu", "auto"):
            try:
                import pynvml

                pynvml.nvmlInit()
                self.gpu = pynvml.nvmlDeviceGetHandleByIndex(0)
                self.nvml = pynvml
            except Exception as e:  # noqa: BLE001 - no library, no driver, no GPU: the row says which
                self.notes["gpu"] = f"NVML unavailable ({type(e).__name__}: {str(e)[:80]})"
        else:
            self.notes["gpu"] = "--device cpu"
        self.rapl = _rapl_zones()
        if not self.rapl:
            self.notes["cpu"] = "no readable RAPL counters under /sys/class/powercap"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.start_t = self.end_t = None
        self.gpu_mj0 = self.gpu_mj1 = None
        self.cpu_uj0 = self.cpu_uj1 = None

    def _gpu_mj(self) -> int | None:
        try:
            return self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.gpu) if self.gpu else None
        except Exception as e:  # noqa: BLE001 - an older GPU without the counter
            self.notes["gpu_energy"] = f"no energy counter ({type(e).__name__})"
            return None

    def _cpu_uj(self) -> list[int] | None:
        try:
            return [int((z / "energy_uj").read_text()) for z in self.rapl] if self.rapl else None
        except (OSError, ValueError):
            return None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.samples.append(self.nvml.nvmlDeviceGetUtilizationRates(self.gpu).gpu)
            except Exception:  # noqa: BLE001 - a transient NVML error: that sample is missing
                continue

    def training_started(self) -> None:
        self.start_t, self.gpu_mj0, self.cpu_uj0 = time.monotonic(), self._gpu_mj(), self._cpu_uj()
        if self.gpu and self._thread is None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def epoch_ended(self) -> None:
        self.end_t, self.gpu_mj1, self.cpu_uj1 = time.monotonic(), self._gpu_mj(), self._cpu_uj()

    def summary(self) -> dict:
        self._stop.set()
        out: dict = {
            "gpu_util_pct_median": None,
            "gpu_util_pct_mean": None,
            "gpu_util_samples": len(self.samples),
            "gpu_energy_j": None,
            "cpu_energy_j": None,
        }
        if self.samples:
            s = sorted(self.samples)
            out["gpu_util_pct_median"] = float(s[len(s) // 2])
            out["gpu_util_pct_mean"] = round(sum(s) / len(s), 1)
        if self.gpu_mj0 is not None and self.gpu_mj1 is not None:
            out["gpu_energy_j"] = round((self.gpu_mj1 - self.gpu_mj0) / 1000, 3)
        if self.cpu_uj0 and self.cpu_uj1:  # each zone's counter wraps at its max_energy_range_uj
            total = 0
            for z, a, b in zip(self.rapl, self.cpu_uj0, self.cpu_uj1, strict=True):
                wrap = int((z / "max_energy_range_uj").read_text()) if (z / "max_energy_range_uj").is_file() else 0
                total += b - a if b >= a else b + wrap - a
            out["cpu_energy_j"] = round(total / 1e6, 3)
        out["monitored_s"] = round(self.end_t - self.start_t, 3) if self.start_t and self.end_t else None
        out["monitor_note"] = "; ".join(f"{k}: {v}" for k, v in self.notes.items()) or None
        return out
