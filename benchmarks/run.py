"""Run the benchmarks and write one JSON file per benchmark.

Each ``benchmarks/bench_<name>.py`` defines ``run(workdir: Path, quick: bool) -> dict``.
This harness adds the machine description, the wall time and the peak resident
memory of the process tree measured during that benchmark, and writes
``benchmarks/results/<name>.json``.

Usage::

    python -m benchmarks.run            # all benchmarks
    python -m benchmarks.run synth mock # some of them
    python -m benchmarks.run --quick    # reduced sizes (smoke run)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
WORK = HERE / "work"


def machine() -> dict:
    """Cores, memory and CPU model of this machine."""
    info = {"platform": platform.platform(), "python": sys.version.split()[0],
            "cores": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
        info["memory_gib"] = round(int(mem) / 2**20, 1)
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


class PeakRSS:
    """Sample the resident memory of this process and its children."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _rss_tree() -> int:
        total = 0
        me = os.getpid()
        for pid in [me] + _children(me):
            try:
                with open(f"/proc/{pid}/statm") as fh:
                    total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except OSError:
                pass
        return total

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss_tree())
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss_tree())


def _children(pid: int) -> list[int]:
    out = []
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for k in kids:
        out.append(int(k))
        out.extend(_children(int(k)))
    return out


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of "
                                             f"{', '.join(available())})")
    ap.add_argument("--quick", action="store_true", help="reduced sizes, smoke run")
    args = ap.parse_args(argv)
    names = args.names or available()
    RESULTS.mkdir(parents=True, exist_ok=True)
    status = 0
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        work = WORK / name
        work.mkdir(parents=True, exist_ok=True)
        print(f"[bench] {name} ...", flush=True)
        t0 = time.perf_counter()
        with PeakRSS() as mem:
            try:
                result = module.run(work, quick=args.quick)
                ok = True
            except Exception as exc:  # a failed benchmark is recorded, not hidden
                result = {"error": f"{type(exc).__name__}: {exc}"}
                ok = False
                status = 1
        record = {"benchmark": name, "ok": ok, "quick": args.quick,
                  "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "wall_s": round(time.perf_counter() - t0, 2),
                  "peak_rss_mib": round(mem.peak / 2**20, 1),
                  "peak_rss_self_mib": round(
                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "machine": machine(), "results": result}
        suffix = "-quick" if args.quick else ""
        out = RESULTS / f"{name}{suffix}.json"
        out.write_text(json.dumps(record, indent=2, default=float))
        print(f"[bench] {name}: {'ok' if ok else 'FAILED'} in {record['wall_s']} s "
              f"-> {out.relative_to(HERE.parent)}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
