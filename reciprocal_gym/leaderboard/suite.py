"""Leaderboard suites: JSON files naming tasks (an env id with its arguments) and agents.

A suite has ``name``, ``seeds`` (learners per (task, agent), seeded 0 .. seeds - 1 plus ``seed_offset``),
``tasks`` (each: ``name``, ``kind`` = ``pool`` | ``bandit`` | ``solver``, ``env``, ``kwargs``, ``steps``, and the
``agents`` to run on it) and ``agents`` (name -> spec). An agent spec is ``{"class": name, "params": {...}}`` with
a reference agent class of :mod:`agents` or ``"module:Class"`` for your own (constructed with ``params`` and a
``seed``; it must provide ``act(obs)`` on batched tensor observations), or ``{"sb3": "model.zip", "algo": "PPO",
"keys": [...]}`` for a saved Stable-Baselines3 model (``keys``: the observation entries it was trained on).
Every task also runs the ``random`` agent, the zero of the normalized score.
"""

from __future__ import annotations

import importlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import agents as reference_agents

KINDS = ("pool", "bandit", "solver")
BUILTIN = ("quick", "full")


def load_suite(name_or_path: str) -> dict[str, Any]:
    """A built-in suite by name (``quick``, ``full``) or a suite JSON file, validated."""
    if name_or_path in BUILTIN:
        text = resources.files("reciprocal_gym.leaderboard").joinpath(f"suites/{name_or_path}.json").read_text()
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ValueError(f"suite {name_or_path!r} is neither a built-in suite {BUILTIN} nor a JSON file")
        text = path.read_text()
    suite = json.loads(text)
    validate(suite)
    return suite


def validate(suite: dict[str, Any]) -> None:
    for key in ("name", "seeds", "tasks", "agents"):
        if key not in suite:
            raise ValueError(f"a suite needs the key {key!r}")
    if not isinstance(suite["seeds"], int) or suite["seeds"] < 2:
        raise ValueError(f"seeds={suite['seeds']!r}: a suite needs an int >= 2 (intervals need several seeds)")
    names = set()
    for task in suite["tasks"]:
        for key in ("name", "kind", "env", "steps", "agents"):
            if key not in task:
                raise ValueError(f"task {task.get('name', task)!r} needs the key {key!r}")
        if task["kind"] not in KINDS:
            raise ValueError(f"task {task['name']!r}: kind={task['kind']!r} is not one of {KINDS}")
        if task["name"] in names:
            raise ValueError(f"task name {task['name']!r} appears twice")
        names.add(task["name"])
        unknown = [a for a in task["agents"] if a not in suite["agents"]]
        if unknown:
            raise ValueError(f"task {task['name']!r} names agents {unknown} that the suite does not define")
    if "random" not in suite["agents"]:
        raise ValueError("a suite must define the 'random' agent (the zero of the normalized score)")


def build_agent(spec: dict[str, Any], seed: int, env: Any) -> Any:
    """An agent for the batched ``env`` from its suite spec, seeded."""
    if "sb3" in spec:
        from agents.learned import SB3Agent

        return SB3Agent(spec["sb3"], algo=spec.get("algo", "PPO"), keys=spec.get("keys"))
    name = spec["class"]
    params = dict(spec.get("params", {}))
    if ":" in name:
        module, cls_name = name.split(":", 1)
        cls = getattr(importlib.import_module(module), cls_name)
    else:
        if not hasattr(reference_agents, name):
            raise ValueError(f"agent class {name!r} is not in agents; use 'module:Class' for your own")
        cls = getattr(reference_agents, name)
    if isinstance(cls, type) and issubclass(cls, reference_agents.SelectionAgent) and name == "SelectionAgent":
        base = env.unwrapped
        expected = getattr(getattr(base, "config", None), "adaptation", None) == "expected"
        params.setdefault("k", 1 if expected else int(getattr(base, "k", 1)))
        params.setdefault("law", expected)
    return cls(seed=seed, **params)
