"""The ``reciprocal-gym`` command: ``leaderboard run``, ``leaderboard show`` and ``bench``.

    reciprocal-gym leaderboard run --suite quick            # run (or --resume) a suite into results/leaderboard.sqlite
    reciprocal-gym leaderboard show --markdown board.md --json board.json --html board.html
    reciprocal-gym bench --num-envs 1 64 1024               # env steps per second of every environment
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_DB = Path("results/leaderboard.sqlite")


def _leaderboard_run(args: argparse.Namespace) -> int:
    from reciprocal_gym.leaderboard.run import preflight, run_suite
    from reciprocal_gym.leaderboard.store import Store
    from reciprocal_gym.leaderboard.suite import load_suite

    suite = load_suite(args.suite)
    if args.seeds is not None:
        if not 2 <= args.seeds <= 100_000:
            raise ValueError(f"--seeds {args.seeds} is not allowed; it must be an int in [2, 100000]")
        suite["seeds"] = args.seeds
    preflight(suite, args.device, args.seed_offset)  # every task and agent tried once before the store is touched
    store = Store(args.db)
    start = time.perf_counter()
    try:
        run_id = run_suite(suite, store, resume=args.resume, device=args.device, seed_offset=args.seed_offset,
                           backend=args.backend, address=args.address, check=False)
        info, results = store.run_info(run_id), store.results(run_id)
    finally:
        store.close()
    return _publish(args, info, results,
                    f"\nsuite {suite['name']}: run {run_id} in {args.db} ({time.perf_counter() - start:.0f} s)\n")


def _publish(args: argparse.Namespace, info: dict, results: list, header: str) -> int:
    """Print the ranked tables and write the exports asked for."""
    from reciprocal_gym.leaderboard import report

    rows = report.tables(info, results)
    print(header)
    if report.status(info):
        print(report.status(info) + "\n")
    print(report.text_tables(rows))
    for path, text in ((args.markdown, lambda: report.markdown(info, rows)), (args.json, lambda: report.as_json(
            info, rows)), (args.html, lambda: report.html_page(info, rows, results))):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text())
            print(f"wrote {path}")
    return 0


def _leaderboard_show(args: argparse.Namespace) -> int:
    from reciprocal_gym.leaderboard.store import Store

    store = Store(args.db, readonly=True)
    try:
        run_id = args.run if args.run is not None else store.latest_run(args.suite)
        if run_id is None:
            raise SystemExit(f"{args.db} holds no run" + (f" of suite {args.suite!r}" if args.suite else ""))
        info, results = store.run_info(run_id), store.results(run_id)
    finally:
        store.close()
    return _publish(args, info, results, f"suite {info['suite']}: run {run_id}\n")


def _bench(args: argparse.Namespace) -> int:
    import gymnasium as gym
    import numpy as np
    import torch

    import reciprocal_gym
    from reciprocal_gym.envs.scoring import scoring_of

    print(f"env steps per second (learner-steps/s), device {args.device}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads)")
    print(f"{'env':<34}" + "".join(f"{'B=' + str(b):>14}" for b in args.num_envs))
    for env_id in reciprocal_gym.ENV_IDS:
        cells = []
        for b in args.num_envs:
            env = gym.make_vec(env_id, num_envs=b, vectorization_mode="vector_entry_point", device=args.device,
                               **scoring_of(env_id).long_run)
            env.reset(seed=0)
            rng = np.random.default_rng(0)
            steps, seconds = args.steps, 0.0
            for _ in range(steps):
                action = env.unwrapped.sample_actions(rng)  # valid actions, drawn outside the timing
                begin = time.perf_counter()
                env.step(action)
                seconds += time.perf_counter() - begin
            cells.append(b * steps / seconds)
        print(f"{env_id:<34}" + "".join(f"{c:>14,.0f}" for c in cells), flush=True)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reciprocal-gym", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--torch-threads", default="1", metavar="N|keep",
                   help="torch threads for the whole command (default 1: torch's thread teams spin while they wait, "
                        "which costs a lot on a busy machine and buys nothing here; the compiled kernels still use "
                        "every CPU); 'keep' leaves torch's setting")
    sub = p.add_subparsers(dest="command", required=True)
    board = sub.add_parser("leaderboard", help="run or show a leaderboard suite")
    board_sub = board.add_subparsers(dest="action", required=True)
    for name, help_text in (("run", "run a suite (resumable) and print the ranked table"),
                            ("show", "print (and export) the table of a stored run")):
        q = board_sub.add_parser(name, help=help_text)
        q.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"results store (default {DEFAULT_DB})")
        q.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
        q.add_argument("--json", type=Path, help="also write the table as JSON here")
        q.add_argument("--html", type=Path, help="also write a self-contained HTML page with plots here")
        if name == "run":
            q.add_argument("--suite", default="quick", help="quick, full, or a suite JSON file")
            q.add_argument("--resume", action="store_true", help="continue the latest run of this suite")
            q.add_argument("--seeds", type=int, help="override the suite's number of seeds")
            q.add_argument("--seed-offset", type=int, default=0, help="learners are seeded offset + i")
            q.add_argument("--device", default="cpu")
            q.add_argument("--backend", default="local", choices=("local", "ray"),
                           help="ray: send the (task, agent) units to Ray workers (pip install 'reciprocal-gym[ray]')")
            q.add_argument("--address", help="an existing Ray cluster (default: a local instance)")
            q.set_defaults(func=_leaderboard_run)
        else:
            q.add_argument("--suite", help="the latest run of this suite (default: the latest run)")
            q.add_argument("--run", type=int, help="a run id")
            q.set_defaults(func=_leaderboard_show)
    bench = sub.add_parser("bench", help="steps per second of every environment")
    bench.add_argument("--num-envs", type=int, nargs="+", default=[1, 64, 1024])
    bench.add_argument("--steps", type=int, default=20)
    bench.add_argument("--device", default="cpu")
    bench.set_defaults(func=_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    threads = args.torch_threads
    if threads != "keep" and not (threads.isdigit() and int(threads) >= 1):
        p.error(f"--torch-threads={threads!r} is not allowed; give a number >= 1 or 'keep'")
    from reciprocal_gym.utils.threads import torch_threads

    try:
        with torch_threads(None if threads == "keep" else int(threads)):
            return args.func(args)
    except ValueError as exc:  # input mistakes: a suite, a setting, the database (StoreError, SuiteError)
        print(f"reciprocal-gym: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reciprocal-gym: interrupted; finished units are stored (continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
