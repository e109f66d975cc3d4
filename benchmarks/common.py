"""Helpers shared by the benchmark scripts: device names, synchronisation, interleaved timing, JSON results."""

from __future__ import annotations

import datetime
import json
import platform
import statistics
import time

import torch


def environment(device: torch.device | None = None) -> dict:
    """Date, machine and versions, recorded with every JSON result."""
    from cooklab.versions import package_versions

    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return dict(date=str(datetime.date.today()), device=device.type, device_name=device_name(device),
                **package_versions("torch", "diffusers", "transformers", "cooklab"), threads=torch.get_num_threads())


def write_json(path, benchmark: str, args: dict, **results) -> None:
    """Write one benchmark's arguments, environment and results to ``path`` (atomically)."""
    from cooklab.fileio import atomic_write

    payload = dict(benchmark=benchmark, args=args, environment=environment(), **results)
    atomic_write(path, json.dumps(payload, indent=1, default=str))


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model from /proc/cpuinfo."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        model = ""
    return model or platform.processor() or platform.machine()


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so wall-clock timings are real."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device) -> float:
    """Seconds one call of ``fn`` takes, synchronised on both sides."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def interleaved(fns: dict, repeats: int, device) -> dict[str, float]:
    """Median seconds of each function; every repeat calls each once, the order rotating by one."""
    names = list(fns)
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(timed(fns[name], device))
    return {name: statistics.median(v) for name, v in times.items()}
