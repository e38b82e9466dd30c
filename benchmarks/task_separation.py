"""Do a suite's tasks separate its agents? Per task: every agent's normalized score over the seeds (as the leaderboard
scores it, ``final`` or ``auc``), a bootstrap 95 % interval of its mean, and the pairs of agents whose intervals do not
overlap. A task where no pair separates cannot rank its agents. Run from the repository root::

    python benchmarks/task_separation.py --suite full --kind pool [--tasks NAME ...] [--seeds 32] [--out sep.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tqdm import tqdm

from reciprocal_gym.leaderboard.separation import task_separation
from reciprocal_gym.leaderboard.suite import kinds_of_envs, load_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="full")
    parser.add_argument("--kind", help="only tasks of this kind (pool, bandit, solver)")
    parser.add_argument("--tasks", nargs="+", help="only these tasks")
    parser.add_argument("--seeds", type=int, help="override the suite's seeds")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    suite = load_suite(args.suite)
    kind_of = kinds_of_envs()
    tasks = [t for t in suite["tasks"] if (args.kind is None or kind_of[t["env"]] == args.kind)
             and (args.tasks is None or t["name"] in args.tasks)]
    seeds = args.seeds or suite["seeds"]
    out = []
    start = time.time()
    for task in tqdm(tasks, desc="tasks"):
        res = task_separation(task, suite, seeds)
        out.append(res)
        tqdm.write(f"\n{task['name']} ({task.get('score', 'final')}, {task.get('metric', 'default metric')}): "
                   f"{len(res['separated_pairs'])} separated pair(s)")
        for agent, (mean, low, high) in sorted(res["agents"].items(), key=lambda kv: -kv[1][0]):
            tqdm.write(f"  {agent:<24}{mean:>8.3f}  [{low:7.3f}, {high:7.3f}]")
    unseparated = [r["task"] for r in out if not r["separated_pairs"]]
    print(f"\n{len(out) - len(unseparated)} of {len(out)} tasks separate at least one pair of agents "
          f"({time.time() - start:.0f} s); not separating: {unseparated}")
    if args.out:
        args.out.write_text(json.dumps({"suite": args.suite, "seeds": seeds, "tasks": out}, indent=1))


if __name__ == "__main__":
    main()
