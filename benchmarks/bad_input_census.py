"""Census of bad inputs: how each class of bad input is answered, on this revision or an older one.

    python benchmarks/bad_input_census.py --emit cases.pkl          # the cases, generated from this revision's specs
    python benchmarks/bad_input_census.py --evaluate cases.pkl      # answer them with the reciprocal_gym on sys.path

The cases are plain data (env ids, keyword arguments, seeds, actions, suites) and are answered through the public
API only, so the same file can be evaluated by an older checkout (``PYTHONPATH=old_checkout``). Each answer is
``clear`` (a ValueError / TypeError / Gymnasium error whose message names the argument), ``unclear`` (another
exception, or a message that does not name it) or ``silent`` (accepted).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import pickle
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

ENV_IDS = ("Reciprocal-SelfTrain-v0", "Reciprocal-ActiveLearn-v0", "Reciprocal-Bandit-v0",
           "Reciprocal-ContextualBandit-v0", "Reciprocal-SolverRelax-v0")


def _bad_values(spec) -> list:
    from reciprocal_gym.arguments import Choice, Flag, Integer, Mapping, Maybe, Real

    if isinstance(spec, Maybe):
        return [v for v in _bad_values(spec.inner) if v is not None]
    wrong = ["1", [1], None]
    if isinstance(spec, Integer):
        values = [spec.low - 1, float(spec.low) + 0.5, True] + ([spec.high + 1] if spec.high is not None else [])
    elif isinstance(spec, Real):
        values = [math.nan, math.inf]
        if spec.low is not None:
            values.append(spec.low if spec.open_low else spec.low - max(1.0, abs(spec.low)))
        if spec.high is not None:
            values.append(spec.high if spec.open_high else spec.high * 10 + 1)
    elif isinstance(spec, Choice):
        values = ["bogus", 3]
    elif isinstance(spec, Flag):
        values = ["yes", 2]
    elif isinstance(spec, Mapping):
        values = ["x", {1: 2}]
    else:
        values = []
    return [v for v in values + wrong if not spec.allows(v)]


def emit() -> list[tuple[str, str, tuple]]:
    """(class, argument name, call) for every case."""
    import gymnasium as gym

    import reciprocal_gym  # noqa: F401
    from agents import LinUCBAgent, SelectionAgent, ThompsonAgent
    from reciprocal_gym.arguments import argument_specs
    from reciprocal_gym.wrappers.diagnostics import ARGUMENTS

    cases = []
    for env_id in ENV_IDS:
        module, _, name = gym.spec(env_id).vector_entry_point.partition(":")
        config = getattr(__import__(module, fromlist=[name]), name).config_class
        for arg, spec in argument_specs(config).items():
            cases += [("settings", arg, ("make", env_id, {arg: v})) for v in _bad_values(spec)]
    for cls in (SelectionAgent, ThompsonAgent, LinUCBAgent):
        for arg, spec in cls.ARGUMENTS.items():
            cases += [("settings", arg, ("agent", cls.__name__, {arg: v})) for v in _bad_values(spec)]
    for arg, spec in ARGUMENTS.items():
        cases += [("settings", arg, ("diagnostics", {"distance": "theta", arg: v})) for v in _bad_values(spec)
                  if arg != "distance"]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = np.arange(60) % 2
    small = dict(n_labeled=6, n_pool=20)
    for env_id, extra in (("Reciprocal-SelfTrain-v0", small), ("Reciprocal-ContextualBandit-v0", {})):
        cases += [
            ("data", "y", ("make", env_id, dict(extra, X=X, y=rng.normal(size=60)))),
            ("data", "y", ("make", env_id, dict(extra, X=X, y=np.array([1, "a"] * 30, dtype=object)))),
            ("data", "y", ("make", env_id, dict(extra, X=X, y=np.arange(60)))),
            ("data", "X", ("make", env_id, dict(extra, X=X + 1j, y=y))),
            ("data", "X", ("make", env_id, dict(extra, X=X * 1e200, y=y))),
            ("data", "X", ("make", env_id, dict(extra, X=np.full((60, 2), "a"), y=y))),
        ]
    parts = {"labeled": (X[:10], y[:10]), "pool": (X[10:40], y[10:40]), "val": (X[40:50], y[40:50])}
    cases.append(("data", "split", ("make", "Reciprocal-SelfTrain-v0", {"split": dict(parts, test=(X[:10], y[:10]))})))
    cases.append(("data", "X", ("make", "Reciprocal-ContextualBandit-v0", dict(source="linear", X=X, y=y))))
    cases.append(("data", "n_arms", ("make", "Reciprocal-ContextualBandit-v0", dict(dataset="wine", n_arms=3))))
    for env_id in ENV_IDS:
        for single in (True, False):
            # 2**63 - 2 is a valid seed for one learner, not for a batch of 4 (seeded 2**63 - 2 .. 2**63 + 1)
            for seed in (-1, 2**63, 2**64, 1.5, "7") + (() if single else (2**63 - 2,)):
                cases.append(("seeds", "seed", ("reset", env_id, single, seed)))
            for action in (None, "a", np.array([object()]), np.array([1 + 2j]), [[0], [1, 2]]):
                cases.append(("actions", "action", ("step", env_id, single, action)))
            for valid in (np.array([1], dtype=">i8"), np.array([1], dtype=np.uint64)):
                cases.append(("actions (valid, any dtype)", "action", ("step-valid", env_id, single, valid)))
        cases.append(("actions", "action_masks", ("masks", env_id)))
    return cases


SMALL_KWARGS = {"Reciprocal-SelfTrain-v0": dict(dataset="iris", n_labeled=6, n_pool=20),
                "Reciprocal-ActiveLearn-v0": dict(dataset="iris", n_labeled=6, n_pool=20),
                "Reciprocal-SolverRelax-v0": dict(grid=4)}


def _answer(name: str, call: tuple) -> str:
    import gymnasium as gym

    import agents
    import reciprocal_gym  # noqa: F401
    from reciprocal_gym.wrappers import ConvergenceDiagnostics

    kind = call[0]
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            if kind == "make":
                gym.make(call[1], **call[2]).reset(seed=0)
            elif kind == "agent":
                getattr(agents, call[1])(**call[2])
            elif kind == "diagnostics":
                ConvergenceDiagnostics(gym.make_vec("Reciprocal-Bandit-v0", num_envs=2,
                                                    vectorization_mode="vector_entry_point"), **call[1])
            elif kind in ("reset", "step", "step-valid"):
                env_id, single = call[1], call[2]
                kwargs = SMALL_KWARGS.get(env_id, {})
                env = gym.make(env_id, **kwargs) if single else gym.make_vec(
                    env_id, num_envs=4 if kind == "reset" else 1, vectorization_mode="vector_entry_point", **kwargs)
                if kind == "reset":
                    env.reset(seed=call[3])
                else:
                    env.reset(seed=0)
                    action = call[3]
                    if single and isinstance(action, np.ndarray) and action.shape == (1,):
                        action = action[0] if action.dtype.kind in "iu" else action
                    env.step(action)
                    if kind == "step-valid":
                        return "accepted"
            elif kind == "masks":
                from sb3_contrib.common.maskable.utils import get_action_masks

                env = gym.make(call[1], **SMALL_KWARGS.get(call[1], {}))
                env.reset(seed=0)
                get_action_masks(env)
                return "accepted"
    except (ValueError, TypeError, gym.error.Error, AttributeError) as exc:
        if kind in ("step-valid", "masks"):
            return "refused"
        clear = isinstance(exc, (ValueError, TypeError, gym.error.Error)) and name in str(exc)
        return "clear" if clear else "unclear"
    except Exception:  # noqa: BLE001
        return "refused" if kind in ("step-valid", "masks") else "unclear"
    return "silent"


def evaluate(cases: list) -> dict[str, Counter]:
    table: dict[str, Counter] = {}
    for cls, name, call in cases:
        table.setdefault(cls, Counter())[_answer(name, call)] += 1
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emit", type=Path)
    parser.add_argument("--evaluate", type=Path)
    args = parser.parse_args()
    if args.emit:
        args.emit.write_bytes(pickle.dumps(emit()))
        print(f"wrote {args.emit}")
    if args.evaluate:
        with tempfile.TemporaryDirectory():
            table = evaluate(pickle.loads(args.evaluate.read_bytes()))
        print(json.dumps({k: dict(v) for k, v in table.items()}, indent=1))
        print(f"total: {dict(sum(table.values(), Counter()))}", file=sys.stderr)


if __name__ == "__main__":
    main()
