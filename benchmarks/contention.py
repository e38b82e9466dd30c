"""How the suite behaves on a busy machine: a workload timed quiet, then with competing busy processes that this
script starts itself, side by side (wall time and the workload's own CPU time).

A fair share of 2 cores with two busy processes would make a CPU-bound workload about 2x slower in wall time at
the same CPU time; spinning thread teams show up as CPU time that grows with the load. Workloads (each run in a
fresh subprocess): ``quick`` (the quick leaderboard suite into a temporary database), ``selftrain`` /
``activelearn`` (the throughput benchmarks at B = 1024, env side only), or any shell command with ``--command``.

    python benchmarks/contention.py [--workload quick] [--busy 2] [--repeats 1] [--env OMP_NUM_THREADS=1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {
    "quick": "reciprocal-gym leaderboard run --suite quick --db {tmp}/lb.sqlite",
    "selftrain": f"{sys.executable} {ROOT}/benchmarks/throughput_selftrain.py --batch 1024 --steps 10 --rounds 2",
    "activelearn": f"{sys.executable} {ROOT}/benchmarks/throughput_activelearn.py --batch 1024 --steps 10 --rounds 2",
}


def timed(command: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(command.format(tmp=tmp), shell=True, check=True, env=env, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="quick")
    parser.add_argument("--command", default=None, help="a shell command to time instead of a named workload")
    parser.add_argument("--busy", type=int, default=2, help="competing busy processes during the loaded runs")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--env", nargs="*", default=[], help="NAME=VALUE settings for the workload's environment")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    # a SIGTERM (e.g. from `timeout`) unwinds normally, so the busy processes and the workload are stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    command = args.command or WORKLOADS[args.workload]
    env = {**os.environ, **dict(item.split("=", 1) for item in args.env)}
    rows = {"quiet": [], "loaded": []}
    for _ in range(args.repeats):
        rows["quiet"].append(timed(command, env))
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
        try:
            time.sleep(0.5)
            rows["loaded"].append(timed(command, env))
        finally:
            for process in busy:
                process.kill()
                process.wait()
    quiet = [min(x) for x in zip(*rows["quiet"], strict=True)]
    loaded = [min(x) for x in zip(*rows["loaded"], strict=True)]
    result = {"command": command, "busy": args.busy, "cpus": os.cpu_count(), "env": args.env,
              "quiet_wall_s": quiet[0], "quiet_cpu_s": quiet[1], "loaded_wall_s": loaded[0], "loaded_cpu_s": loaded[1],
              "wall_ratio": loaded[0] / quiet[0], "cpu_ratio": loaded[1] / quiet[1]}
    print(f"{command}\n{os.cpu_count()} CPUs, {args.busy} busy processes, best of {args.repeats}; env {args.env}")
    print(f"quiet : wall {quiet[0]:7.1f} s   CPU {quiet[1]:7.1f} s")
    print(f"loaded: wall {loaded[0]:7.1f} s   CPU {loaded[1]:7.1f} s   "
          f"(wall x{result['wall_ratio']:.2f}, CPU x{result['cpu_ratio']:.2f}; fair share: wall about "
          f"x{(os.cpu_count() + args.busy) / os.cpu_count():.1f}, CPU x1.0)")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
