"""The epoch loop of one framework x task x seed, inside the framework's interpreter.

It owns what must be measured the same way for every framework: the data order, the epoch loop,
early stopping, the clocks (read only after the adapter's `sync`) and the memory readings. The adapter
only builds the model and runs what it is told (frameworks/contract.py).
"""

from __future__ import annotations

import gc
import importlib
import resource
import sys
import time

from dlbench.protocol import Event, JobConfig, Profile, emit
from dlbench.worker.cpus import pin


def rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def status_mib(field: str) -> float | None:
    """A /proc/self/status memory line (VmRSS: now, VmHWM: the peak) in MiB; None off Linux."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS count (VmHWM) from the current RSS (Linux >= 4.0: clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _on_gpu(device: str) -> bool:
    return any(w in device.lower() for w in ("gpu", "cuda"))


def batch1_latency(
    ad,
    model,
    singles: list,
    warmup: int = 20,
    calls: int = 200,
    min_s: float = 2.0,
    max_s: float = 20.0,
    max_calls: int = 100_000,
) -> dict:
    """Serving latency, as MLPerf's single-stream scenario measures it: one example per `predict` call,
    the adapter's sync after each, WARMUP calls first (counted, not timed into the figures), then at least
    CALLS calls and MIN_S seconds of calls (at most MAX_S seconds or MAX_CALLS calls). Milliseconds."""
    import numpy as np

    for i in range(warmup):
        ad.predict(model, singles[i % len(singles)])
    ad.sync(model)
    times: list[float] = []
    total = 0.0
    while (len(times) < calls or total < min_s) and total < max_s and len(times) < max_calls:
        t = time.perf_counter()
        ad.predict(model, singles[len(times) % len(singles)])
        ad.sync(model)
        times.append(time.perf_counter() - t)
        total += times[-1]
    ms = 1000 * np.asarray(times)
    p25, p50, p75, p90, p99 = (float(v) for v in np.percentile(ms, [25, 50, 75, 90, 99]))
    return {
        "latency_b1_ms_p50": p50,
        "latency_b1_ms_p90": p90,
        "latency_b1_ms_p99": p99,
        "latency_b1_ms_iqr": p75 - p25,
        "latency_b1_calls": len(times),
        "latency_b1_warmup_calls": warmup,
    }


def manifest(cfg: JobConfig, ad) -> dict:
    """The fairness manifest: everything that shaped a row's speed, under one key."""
    return {
        "tier": str(cfg.tier),
        "candidate": cfg.candidate,
        "precision": str(cfg.precision),
        "deterministic": str(cfg.deterministic),
        **ad.settings(),
    }


def epoch_order(seed: int, epoch: int, n: int):
    """The training order of one epoch: the same permutation for every framework."""
    import numpy as np

    return np.random.default_rng([seed, epoch]).permutation(n)


def run(cfg: JobConfig) -> dict:
    """Train and measure; the fields of the result event (the driver adds provenance)."""
    import numpy as np

    from tasks import TASKS
    from tasks.data import load_splits
    from tasks.spec import lstm_bias_delta, with_recipe

    task = with_recipe(TASKS[cfg.task], str(cfg.recipe))  # the driver refused a task without the seed's
    cpus = pin(cfg.threads, cfg.cpus)
    t0 = time.perf_counter()
    ad = importlib.import_module(cfg.module)
    device = ad.configure(cfg.threads, str(cfg.device), str(cfg.precision), cfg.deterministic, cfg.configuration)
    if cfg.precision == "tf32" and not _on_gpu(device):
        raise RuntimeError(f"--precision tf32 applies on an NVIDIA GPU only; this run is on {device}")
    import_s = time.perf_counter() - t0

    s = load_splits(task, str(cfg.profile), cfg.npz)
    train, val, test = ad.prepare(s.x_train, s.y_train), ad.prepare(s.x_val, s.y_val), ad.prepare(s.x_test, s.y_test)
    n_train, n_val, n_test = len(s.x_train), len(s.x_val), len(s.x_test)
    singles = [ad.prepare(s.x_test[i : i + 1]) for i in range(min(16, n_test))]  # batch-1 latency inputs
    del s  # the adapter holds its own copies now: the peak below is the framework's, not ours twice over
    gc.collect()
    model = ad.build(task, cfg.seed)
    n_params = ad.n_params(model)
    delta = lstm_bias_delta(task, ad.LSTM_BIAS_VECTORS)
    if n_params != task.n_params + delta:
        raise RuntimeError(f"{n_params} parameters, expected {task.n_params} + documented {delta}")
    ad.sync(model)
    gc.collect()
    rss_before_train = status_mib("VmRSS") or rss_mib()  # now: framework, its data copies, the model
    peak_reset = reset_peak_rss()

    r = task.recipe
    max_epochs = task.quick.get("epochs", r.max_epochs) if cfg.profile == Profile.QUICK else r.max_epochs
    if cfg.epochs:
        max_epochs = min(max_epochs, cfg.epochs)
    early = r.early_stopping and cfg.profile == Profile.FULL
    history, train_s, time_to_target, best, wait, stopped = [], 0.0, None, np.inf, 0, False
    emit(Event.TRAINING)
    for epoch in range(max_epochs):
        order = epoch_order(cfg.seed, epoch, n_train)
        ad.sync(model)
        t = time.perf_counter()
        model, loss, acc = ad.train_epoch(model, train, order)
        ad.sync(model)
        epoch_s = time.perf_counter() - t
        train_s += epoch_s
        t = time.perf_counter()
        val_loss, val_acc = ad.evaluate(model, val)
        val_s = time.perf_counter() - t
        if not (np.isfinite(loss) and np.isfinite(val_loss)):
            raise FloatingPointError(f"loss is not finite at epoch {epoch + 1}: {loss}, {val_loss}")
        history.append(
            dict(
                epoch_s=epoch_s,
                val_s=val_s,
                train_loss=loss,
                train_accuracy=acc,
                val_loss=val_loss,
                val_accuracy=val_acc,
            )
        )
        emit(Event.EPOCH, epoch=epoch + 1, max_epochs=max_epochs, **history[-1])
        if time_to_target is None and val_acc >= r.target_val_accuracy:
            time_to_target = train_s  # training time only: validation passes are not counted
        if early:  # Keras EarlyStopping(monitor="val_loss", min_delta, patience), no weight restore
            if val_loss < best - r.es_min_delta:
                best, wait = val_loss, 0
            else:
                wait += 1
                if wait >= r.es_patience:
                    stopped = epoch + 1 < max_epochs
                    break

    test_loss, test_acc = ad.evaluate(model, test)
    ad.predict(model, test)  # warm-up: Keras and JAX compile predict apart from evaluate
    ad.sync(model)
    t = time.perf_counter()
    ad.predict(model, test)
    ad.sync(model)
    eval_s = time.perf_counter() - t

    latency = batch1_latency(ad, model, singles)
    train_peak = max(status_mib("VmHWM") or 0.0, rss_before_train) if peak_reset else None
    epochs = [h["epoch_s"] for h in history]
    steady = float(np.median(epochs[1:])) if len(epochs) > 1 else None
    return dict(
        device=device,
        cpus=cpus,  # the CPUs this worker was pinned to
        settings=manifest(cfg, ad),
        versions=ad.versions(),
        numpy_version=np.__version__,
        python=sys.version.split()[0],
        n_params=n_params,
        n_params_delta=delta,
        n_train=n_train,
        n_val=n_val,
        n_test=n_test,
        test_accuracy=test_acc,
        test_loss=test_loss,
        epochs_run=len(history),
        max_epochs=max_epochs,
        stopped_early=stopped,
        train_s=train_s,
        first_epoch_s=epochs[0],
        steady_epoch_s=steady,
        # Throughput from steady epochs; with one epoch only, from the first (compilation included).
        train_samples_per_s=n_train / (steady if steady else epochs[0]),
        throughput_basis="steady" if steady else "first_epoch",
        time_to_target_s=time_to_target,
        eval_samples_per_s=n_test / eval_s,
        **latency,
        import_s=import_s,
        rss_before_train_mib=rss_before_train,
        # The peak while training, evaluating and predicting (from rss_before_train on), where the kernel
        # lets us restart its count; peak_rss_mib is the whole process's, imports and data loading included.
        # After the reset the kernel refreshes its high-water mark lazily, so a reading can lag the RSS
        # read a moment earlier: both are bounded below by what we already know.
        train_peak_rss_mib=train_peak,
        peak_rss_mib=max(rss_mib(), train_peak or 0.0),
        peak_device_mib=ad.peak_device_mib(model),
        history=history,
    )
