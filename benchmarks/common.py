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
    return dict(
        date=str(datetime.date.today()),
        device=device.type,
        device_name=device_name(device),
        **package_versions("torch", "diffusers", "transformers", "cooklab"),
        threads=torch.get_num_threads(),
    )


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


def profile_ops(fn, device, rows: int = 12) -> list[dict]:
    """The ``rows`` entries that take the most self time in one call of ``fn``.

    Measured with torch.profiler (CPU, and CUDA on a GPU).

    Each entry: name (an op, or a ``stage:`` range that ``staged`` put around a pipeline method), calls, and the
    self and total milliseconds on the CPU and on the device (device ones only on CUDA). Sorted by self device time
    on CUDA, by self CPU time otherwise: where a gap between two paths lies.
    """
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sync(device)
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    entries = []
    for e in prof.key_averages():
        entry = dict(name=e.key, calls=e.count, self_cpu_ms=e.self_cpu_time_total / 1e3, cpu_ms=e.cpu_time_total / 1e3)
        if cuda:
            entry |= dict(self_device_ms=e.self_device_time_total / 1e3, device_ms=e.device_time_total / 1e3)
        entries.append(entry)
    key = "self_device_ms" if cuda else "self_cpu_ms"
    stages = [e for e in entries if e["name"].startswith("stage:")]
    ops = sorted((e for e in entries if not e["name"].startswith("stage:")), key=lambda e: -e[key])[:rows]
    return sorted(stages, key=lambda e: -e["cpu_ms"]) + ops


def staged(obj, methods) -> None:
    """Wrap each named method of ``obj`` in a ``torch.profiler.record_function("stage:<name>")`` range.

    Only this object's methods are wrapped, not its class's.
    """
    import functools

    from torch.profiler import record_function

    for name in methods:
        method = getattr(obj, name)

        @functools.wraps(method)
        def wrapper(*args, _method=method, _name=name, **kwargs):
            with record_function(f"stage:{_name}"):
                return _method(*args, **kwargs)

        setattr(obj, name, wrapper)


def print_profile(title: str, entries: list[dict]) -> None:
    """A profile from ``profile_ops`` as a markdown table."""
    device = "self_device_ms" in (entries[0] if entries else {})
    print(f"\nprofile: {title}\n")
    print("| name | calls | self CPU ms | CPU ms |" + (" self device ms | device ms |" if device else ""))
    print("|---|---|---|---|" + ("---|---|" if device else ""))
    for e in entries:
        cells = f"| {e['name'][:60]} | {e['calls']} | {e['self_cpu_ms']:.2f} | {e['cpu_ms']:.2f} |"
        print(cells + (f" {e['self_device_ms']:.2f} | {e['device_ms']:.2f} |" if device else ""))
