"""Leaderboard suites: JSON files naming tasks (an env id with its arguments) and agents.

A suite has ``name``, ``seeds`` (learners per (task, agent), seeded 0 .. seeds - 1 plus ``seed_offset``), ``tasks``
(each: ``name``, ``env``, ``kwargs``, ``steps``, the ``agents`` to run on it, optionally ``kind`` (checked against
the env's: ``pool`` | ``bandit`` | ``solver``) and ``metric``, one of those the env declares (pool envs:
``test_accuracy``, the default, or ``test_accuracy_gain``, the gain over each learner's labeled-only fit)) and
``agents`` (name -> spec). An agent spec is ``{"class": name, "params": {...}}`` with a reference agent class of
:mod:`agents` or ``"module:Class"`` for your own (constructed with ``params`` and a ``seed``; it must provide
``act(obs)`` on batched tensor observations), or ``{"sb3": "model.zip", "algo": "PPO", "keys": [...]}`` for a
saved Stable-Baselines3 model (``keys``: the observation entries it was trained on). Every task also runs the
``random`` agent, the zero of the normalized score.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

import agents as reference_agents
from reciprocal_gym.arguments import argument_specs
from reciprocal_gym.envs.scoring import scoring_of

BUILTIN = ("quick", "full")
SUITE_KEYS = ("name", "description", "seeds", "tasks", "agents")
TASK_KEYS = ("name", "kind", "env", "kwargs", "steps", "agents", "metric", "score", "probes")
SCORES = ("final", "auc")
"""What a task scores: the metric at the last step, or its mean over the steps (the area under the learning curve)."""


def kinds_of_envs() -> dict[str, str]:
    """The task kind of each env of the suite, as the env declares it (:mod:`reciprocal_gym.envs.scoring`)."""
    import reciprocal_gym

    return {env_id: scoring_of(env_id).kind for env_id in reciprocal_gym.ENV_IDS}
SET_BY_THE_RUNNER = ("num_envs", "device", "autoreset_mode", "max_steps")
MAX_STEPS = 1_000_000


class SuiteError(ValueError):
    """A suite with mistakes; ``problems`` lists every one of them in words."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"suite {source} has {len(problems)} problem(s); nothing was run:\n{lines}")


def load_suite(name_or_path: str) -> dict[str, Any]:
    """A built-in suite by name (``quick``, ``full``) or a suite JSON file, validated (:func:`validate`)."""
    if name_or_path in BUILTIN:
        text = resources.files("reciprocal_gym.leaderboard").joinpath(f"suites/{name_or_path}.json").read_text()
        source = f"{name_or_path!r}"
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ValueError(f"suite {name_or_path!r} is neither a built-in suite {BUILTIN} nor a JSON file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"suite file {path} cannot be read as UTF-8 text: {exc}") from exc
        source = str(path)
    try:
        suite = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"suite file {source} is not valid JSON: {exc.msg} at line {exc.lineno} column "
                         f"{exc.colno}") from exc
    validate(suite, source)
    return suite


def _near(word: str, options: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(suite: Any, source: str = "<dict>") -> None:
    """Check a whole suite before anything runs; raise :class:`SuiteError` listing every problem found.

    Checked: the keys of the suite, its tasks and agents (typos are named with the nearest valid key); ``seeds``
    (an int >= 2); each task's ``name`` (unique), ``env`` (a registered id), ``kind`` (the env's kind), ``steps``
    (an int in [1, 1e6]), ``score`` (``"final"`` or ``"auc"``), ``probes`` (text), ``kwargs`` (every key an argument
    of the env, every value allowed: the env's config is built from them) and ``agents`` (defined by the suite);
    each agent's class (a reference agent or an importable ``module:Class``) and ``params`` (the class's parameters,
    values checked by building the agent), or an SB3 model file."""
    if not isinstance(suite, dict):
        raise SuiteError(source, [f"a suite is a JSON object with keys {SUITE_KEYS}, got {type(suite).__name__}"])
    problems: list[str] = []
    for key in suite:
        if key not in SUITE_KEYS:
            problems.append(f"unknown key {key!r}{_near(key, SUITE_KEYS)}; a suite has {SUITE_KEYS}")
    for key in ("name", "seeds", "tasks", "agents"):
        if key not in suite:
            problems.append(f"the key {key!r} is missing")
    if "name" in suite and not isinstance(suite["name"], str):
        problems.append(f"name={suite['name']!r} must be a string")
    if "seeds" in suite and not (_is_int(suite["seeds"]) and 2 <= suite["seeds"] <= 100_000):
        problems.append(f"seeds={suite['seeds']!r} must be an int in [2, 100000] (intervals need several seeds)")
    agents = suite.get("agents")
    if not isinstance(agents, dict):
        if "agents" in suite:
            problems.append("agents must be an object mapping agent names to agent specs")
        agents = {}
    elif "random" not in agents:
        problems.append("the suite must define the agent 'random' (the zero of the normalized score)")
    for name, spec in agents.items():
        problems += [f"agent {name!r}: {p}" for p in _agent_problems(spec)]
    tasks = suite.get("tasks")
    if not isinstance(tasks, list) or (not tasks and "tasks" in suite):
        if "tasks" in suite:
            problems.append("tasks must be a non-empty list of task objects")
        tasks = []
    names: set[str] = set()
    for i, task in enumerate(tasks):
        label = f"task {i + 1}" + (f" {task['name']!r}" if isinstance(task, dict) and "name" in task else "")
        problems += [f"{label}: {p}" for p in _task_problems(task, agents, names)]
    if problems:
        raise SuiteError(source, problems)


def _task_problems(task: Any, agents: dict[str, Any], names: set[str]) -> list[str]:
    import gymnasium as gym

    import reciprocal_gym  # noqa: F401  (registers the envs)

    if not isinstance(task, dict):
        return [f"a task is an object with keys {TASK_KEYS}, got {type(task).__name__}"]
    problems = [f"unknown key {key!r}{_near(key, TASK_KEYS)}; a task has {TASK_KEYS}" for key in task
                if key not in TASK_KEYS]
    problems += [f"the key {key!r} is missing" for key in ("name", "env", "steps", "agents")
                 if key not in task]
    name = task.get("name")
    if "name" in task:
        if not isinstance(name, str):
            problems.append(f"name={name!r} must be a string")
        elif name in names:
            problems.append(f"the task name {name!r} appears twice")
        else:
            names.add(name)
    if "steps" in task and not (_is_int(task["steps"]) and 1 <= task["steps"] <= MAX_STEPS):
        problems.append(f"steps={task['steps']!r} must be an int in [1, {MAX_STEPS}]")
    env_id = task.get("env")
    kind_of = kinds_of_envs()
    if "env" in task:
        if not isinstance(env_id, str) or env_id not in kind_of:
            problems.append(f"env={env_id!r} is not an environment of the suite{_near(env_id, kind_of)}; "
                            f"choose one of {tuple(kind_of)}")
            env_id = None
    kind, kinds = task.get("kind"), tuple(dict.fromkeys(kind_of.values()))
    if "kind" in task and kind not in kinds:
        problems.append(f"kind={kind!r} is not one of {kinds}")
    elif env_id is not None and "kind" in task and kind != kind_of[env_id]:
        problems.append(f"kind={kind!r} does not fit env {env_id!r}, whose kind is {kind_of[env_id]!r}")
    if "metric" in task and env_id is not None and task["metric"] not in scoring_of(env_id).metrics:
        problems.append(f"metric={task['metric']!r} is not allowed; tasks on {env_id} take one of "
                        f"{scoring_of(env_id).metrics}")
    if "score" in task and task["score"] not in SCORES:
        problems.append(f"score={task['score']!r} is not allowed; choose one of {SCORES}")
    if "probes" in task and not isinstance(task["probes"], str):
        problems.append(f"probes={task['probes']!r} must be a string (what the task probes)")
    kwargs = task.get("kwargs", {})
    if not isinstance(kwargs, dict):
        problems.append(f"kwargs must be an object of env arguments, got {type(kwargs).__name__}")
    elif env_id is not None:
        problems += _kwargs_problems(env_id, kwargs, gym)
    listed = task.get("agents", [])
    if not isinstance(listed, list) or not all(isinstance(a, str) for a in listed):
        problems.append("agents must be a list of agent names")
    else:
        problems += [f"names the agent {a!r}, which the suite does not define{_near(a, agents)}" for a in listed
                     if a not in agents]
    return problems


def _kwargs_problems(env_id: str, kwargs: dict[str, Any], gym: Any) -> list[str]:
    """Check a task's kwargs against the env's config: known keys, allowed values (the config is built)."""
    cls = gym.spec(env_id).vector_entry_point
    module, _, attr = cls.partition(":")
    config_class = getattr(importlib.import_module(module), attr).config_class
    allowed = [f.name for f in fields(config_class)]
    problems = []
    for key in kwargs:
        if key in SET_BY_THE_RUNNER:
            problems.append(f"kwargs {key!r} is set by the leaderboard (max_steps from steps); remove it")
        elif key not in allowed:
            problems.append(f"kwargs {key!r} is not an argument of {env_id}{_near(key, allowed)}")
    specs = argument_specs(config_class)
    for key, value in kwargs.items():  # every value on its own, so that all bad values are reported at once
        if key in specs and not specs[key].allows(value):
            try:
                specs[key].check(key, value)
            except ValueError as exc:
                problems.append(f"kwargs: {exc}")
    if problems:
        return problems
    try:
        config = config_class(**kwargs)
    except (ValueError, TypeError) as exc:
        return [f"kwargs: {exc}"]
    return [f"kwargs must set {name}={json.dumps(value)}: {why}"
            for name, (value, why) in scoring_of(env_id).required.items() if getattr(config, name) != value]


def _agent_class(name: Any) -> type:
    if not isinstance(name, str) or not name:
        raise ValueError(f"class={name!r} must be a reference agent's name or 'module:Class'")
    if ":" in name:
        module, cls_name = name.split(":", 1)
        try:
            cls = getattr(importlib.import_module(module), cls_name)
        except ImportError as exc:
            raise ValueError(f"class {name!r}: module {module!r} cannot be imported ({exc})") from exc
        except AttributeError as exc:
            raise ValueError(f"class {name!r}: module {module!r} has no {cls_name!r}") from exc
        return cls
    names = [n for n in reference_agents.__all__ if n.endswith("Agent") and n != "Agent"]
    if name not in names:
        raise ValueError(f"class {name!r} is not a reference agent{_near(name, names)}; choose one of "
                         f"{tuple(names)} or give 'module:Class' for your own")
    return getattr(reference_agents, name)


def _agent_problems(spec: Any) -> list[str]:
    if not isinstance(spec, dict):
        return [f"an agent spec is an object {{'class': ..., 'params': {{...}}}} or {{'sb3': path}}, got "
                f"{type(spec).__name__}"]
    if "sb3" in spec:
        unknown = [k for k in spec if k not in ("sb3", "algo", "keys")]
        problems = [f"unknown key {k!r} of an SB3 agent (allowed: 'sb3', 'algo', 'keys')" for k in unknown]
        if not isinstance(spec["sb3"], str) or not Path(spec["sb3"]).is_file():
            problems.append(f"sb3={spec['sb3']!r} is not a saved model file")
        return problems
    problems = [f"unknown key {k!r}{_near(k, ('class', 'params'))}; an agent has 'class' and 'params'"
                for k in spec if k not in ("class", "params")]
    if "class" not in spec:
        return problems + ["the key 'class' is missing"]
    try:
        cls = _agent_class(spec["class"])
    except ValueError as exc:
        return problems + [str(exc)]
    params = spec.get("params", {})
    if not isinstance(params, dict):
        return problems + [f"params must be an object of the class's arguments, got {type(params).__name__}"]
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return problems
    accepts_any = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    known = [n for n in signature.parameters if n != "seed"]
    unknown = [k for k in params if k not in known and not accepts_any]
    problems += [f"params {k!r} is not a parameter of {spec['class']}{_near(k, known)}; it takes {tuple(known)}"
                 for k in unknown]
    if "seed" in params:
        problems.append("params 'seed' is set by the leaderboard (seed_offset); remove it")
    for key, value in params.items():  # every declared value on its own: all bad values reported at once
        declared = getattr(cls, "ARGUMENTS", {}).get(key)
        if declared is not None and not declared.allows(value):
            try:
                declared.check(key, value)
            except ValueError as exc:
                problems.append(f"params: {exc}")
    if not problems and ":" not in spec["class"]:  # reference agents are cheap to build: the rest is checked
        try:
            cls(**params)
        except (ValueError, TypeError) as exc:
            problems.append(f"params: {exc}")
    return problems


def build_agent(spec: dict[str, Any], seed: int, env: Any) -> Any:
    """An agent for the batched ``env`` from its suite spec, seeded."""
    if "sb3" in spec:
        from agents.learned import SB3Agent

        return SB3Agent(spec["sb3"], algo=spec.get("algo", "PPO"), keys=spec.get("keys"))
    name = spec["class"]
    params = dict(spec.get("params", {}))
    cls = _agent_class(name)
    if isinstance(cls, type) and issubclass(cls, reference_agents.SelectionAgent) and name == "SelectionAgent":
        base = env.unwrapped
        expected = getattr(getattr(base, "config", None), "adaptation", None) == "expected"
        params.setdefault("k", 1 if expected else int(getattr(base, "k", 1)))
        params.setdefault("law", expected)
    return cls(seed=seed, **params)
