"""Checkpoints are the env's explicit state: a resumed run in a new process is bit-identical to the uninterrupted
one, and a checkpoint that does not fit the env (or was damaged or crafted) is refused with the field named."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import reciprocal_gym  # noqa: F401
from reciprocal_gym.envs.checkpoint import CheckpointError, checksum, field_spec

CASES = [
    ("Reciprocal-SelfTrain-v0", {"dataset": "breast_cancer", "n_pool": 40}),  # binary float64: compiled passes
    ("Reciprocal-SelfTrain-v0", {"dataset": "iris", "n_labeled": 6, "n_pool": 30, "adaptation": "swap", "k": 2,
                                 "buffer_size": 4}),
    ("Reciprocal-SelfTrain-v0", {"dataset": "wine", "n_labeled": 9, "n_pool": 30, "adaptation": "expected", "k": 3,
                                 "dtype": "float32"}),
    ("Reciprocal-ActiveLearn-v0", {"dataset": "breast_cancer", "n_pool": 40, "label_noise": 0.2}),
    ("Reciprocal-ActiveLearn-v0", {"dataset": "iris", "n_labeled": 6, "n_pool": 30, "adaptation": "swap",
                                   "buffer_size": 4, "evict": "chosen"}),
    ("Reciprocal-StreamActiveLearn-v0", {"dataset": "iris", "n_labeled": 6, "n_pool": 30}),
    ("Reciprocal-Bandit-v0", {}),  # float32 Bernoulli: the compiled step
    ("Reciprocal-Bandit-v0", {"reward_dist": "gaussian", "history": "window", "window": 3, "dtype": "float64"}),
    ("Reciprocal-ContextualBandit-v0", {}),
    ("Reciprocal-ContextualBandit-v0", {"source": "linear", "history": "window", "window": 3}),
    ("Reciprocal-SolverRelax-v0", {"grid": 3}),
]
IDS = [f"{env_id.split('-')[1]}-{i}" for i, (env_id, _) in enumerate(CASES)]

# shared by the test and the resuming process: the actions of step t are a function of t and the env's masks
PLAY = r'''
import hashlib
import numpy as np, torch, gymnasium as gym, reciprocal_gym

def act(env, t):
    rng = np.random.default_rng(1000 + t)
    space, B = env.single_action_space, env.num_envs
    if isinstance(space, gym.spaces.Box):
        return torch.as_tensor(0.01 + 0.98 * rng.random((B,) + space.shape), dtype=torch.float32)
    return env.sample_actions(rng)

def feed(h, value):
    if isinstance(value, dict):
        for key in sorted(value):
            h.update(key.encode())
            feed(h, value[key])
    elif isinstance(value, torch.Tensor):
        h.update(str(value.dtype).encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    else:
        h.update(repr(value).encode())

def play(env, start, steps):
    h = hashlib.sha256()
    for t in range(start, start + steps):
        for part in env.step(act(env, t)):
            feed(h, part)
    return h.hexdigest()
'''
exec(PLAY)  # defines act, feed, play here too

RESUME = PLAY + r'''
import json, sys
env_id, kwargs, path, start, steps = json.loads(sys.argv[1])
env = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", **kwargs)
env.unwrapped.load_state(path)  # a fresh env, never reset
print(play(env.unwrapped, start, steps))
print(env.unwrapped.get_state()["header"]["checksum"])
'''


def _vec(env_id, num_envs=3, **kwargs):
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs).unwrapped


@pytest.mark.parametrize(("env_id", "kwargs"), CASES, ids=IDS)
def test_resuming_in_a_new_process_is_bit_identical_to_the_uninterrupted_run(env_id, kwargs, tmp_path):
    kwargs = {**kwargs, "max_steps": 5}  # the resumed part crosses autoresets
    env = _vec(env_id, **kwargs)
    env.reset(seed=11)
    for t in range(3):
        env.step(act(env, t))  # noqa: F821 - defined by exec(PLAY)
    path = tmp_path / "run.ckpt"
    env.save_state(path)
    expected = play(env, 3, 9)  # noqa: F821
    final = env.get_state()["header"]["checksum"]
    run = subprocess.run([sys.executable, "-c", RESUME, json.dumps([env_id, kwargs, str(path), 3, 9])],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [expected, final]
    # and in this process, loading into the env that ran on
    env.load_state(path)
    assert play(env, 3, 9) == expected  # noqa: F821


def _saved(tmp_path, env_id="Reciprocal-SelfTrain-v0", num_envs=3, **kwargs):
    env = _vec(env_id, num_envs=num_envs, **kwargs)
    env.reset(seed=0)
    env.step(act(env, 0))  # noqa: F821
    path = tmp_path / f"{env_id}-{num_envs}.ckpt"
    env.save_state(path)
    return env, path


@pytest.mark.parametrize(("saved", "target", "message"), [
    (("Reciprocal-SelfTrain-v0", 3, {}), ("Reciprocal-ActiveLearn-v0", 3, {}),
     "env_id is 'Reciprocal-SelfTrain-v0' but this env has 'Reciprocal-ActiveLearn-v0'"),
    (("Reciprocal-SelfTrain-v0", 3, {"n_pool": 60}), ("Reciprocal-SelfTrain-v0", 3, {"n_pool": 80}),
     "config field 'n_pool' is 60 but this env has 80"),
    (("Reciprocal-Bandit-v0", 4, {}), ("Reciprocal-Bandit-v0", 8, {}), "num_envs is 4 but this env has 8"),
    (("Reciprocal-Bandit-v0", 64, {}), ("Reciprocal-Bandit-v0", 2, {}), "num_envs is 64 but this env has 2"),
    (("Reciprocal-SelfTrain-v0", 3, {"dtype": torch.float32}), ("Reciprocal-SelfTrain-v0", 3, {}),
     "dtype is 'torch.float32' but this env has 'torch.float64'"),
    (("Reciprocal-ActiveLearn-v0", 3, {"label_noise": 0.1}), ("Reciprocal-ActiveLearn-v0", 3, {}),
     "config field 'label_noise' is 0.1 but this env has 0.0"),
    (("Reciprocal-SelfTrain-v0", 3, {"X": np.eye(40)[:, :3] + np.arange(40)[:, None] % 3,
                                     "y": np.arange(40) % 2}),
     ("Reciprocal-SelfTrain-v0", 3, {"X": np.eye(40)[:, :3] + np.arange(40)[:, None] % 5,
                                     "y": np.arange(40) % 2}),
     "config field 'X' is array"),
])
def test_a_checkpoint_of_another_env_is_refused_naming_what_differs(saved, target, message, tmp_path):
    env_id, num_envs, kwargs = saved
    _, path = _saved(tmp_path, env_id, num_envs, **kwargs)
    other_id, other_n, other_kwargs = target
    other = _vec(other_id, num_envs=other_n, **other_kwargs)
    other.reset(seed=5)
    before = other.get_state()["header"]["checksum"]
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        other.load_state(path)
    assert other.get_state()["header"]["checksum"] == before  # left as it was


def test_a_damaged_file_is_refused(tmp_path):
    env, path = _saved(tmp_path, n_pool=60)
    data = bytearray(path.read_bytes())
    for offset in range(len(data) // 3, len(data) - 64, len(data) // 7):
        damaged = bytearray(data)
        damaged[offset : offset + 64] = bytes(64)
        bad = tmp_path / f"damaged-{offset}.ckpt"
        bad.write_bytes(bytes(damaged))
        with pytest.raises(CheckpointError):
            env.load_state(bad)
    env.load_state(path)  # the intact file still loads


class _Payload:
    def __reduce__(self):
        import os

        return os.system, (f"touch {_Payload.marker}",)


def test_a_crafted_file_runs_no_code(tmp_path):
    _Payload.marker = tmp_path / "ran"
    env, path = _saved(tmp_path)
    crafted = tmp_path / "crafted.ckpt"
    torch.save({"header": _Payload(), "tensors": {}}, crafted)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        env.load_state(crafted)
    assert not _Payload.marker.exists()


def test_an_edited_field_with_a_recomputed_checksum_is_still_checked(tmp_path):
    env, path = _saved(tmp_path, n_pool=40)
    checkpoint = torch.load(path, weights_only=True)
    rows = checkpoint["tensors"]["state.rows.pool"]
    rows[0, 0] = 10_000  # past the dataset's end: a compiled kernel would read out of bounds
    checkpoint["header"]["checksum"] = checksum(checkpoint["tensors"])
    with pytest.raises(CheckpointError, match=r"'state.rows.pool' has values in \[.*, 10000\]"):
        env.set_state(checkpoint)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["tensors"]["state.reciprocal.theta"][1, 0] = float("nan")
    checkpoint["header"]["checksum"] = checksum(checkpoint["tensors"])
    with pytest.raises(CheckpointError, match="'state.reciprocal.theta' holds NaN"):
        env.set_state(checkpoint)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["tensors"]["state.mean"] = checkpoint["tensors"]["state.mean"].float()
    checkpoint["header"]["fields"] = field_spec(checkpoint["tensors"])
    checkpoint["header"]["checksum"] = checksum(checkpoint["tensors"])
    with pytest.raises(CheckpointError, match="'state.mean' has dtype torch.float32 but this env's has torch.float64"):
        env.set_state(checkpoint)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["tensors"]["state.reciprocal.theta"][1, 0] += 1.0  # edited without a new checksum
    with pytest.raises(CheckpointError, match="checksum"):
        env.set_state(checkpoint)
    with pytest.raises(CheckpointError, match="'header' and 'tensors'"):
        env.set_state({"theta": torch.zeros(3)})


def test_the_header_says_where_the_checkpoint_comes_from(tmp_path):
    env, path = _saved(tmp_path, "Reciprocal-Bandit-v0", 4, n_arms=5)
    header = torch.load(path, weights_only=True)["header"]
    assert header["env_id"] == "Reciprocal-Bandit-v0" and header["num_envs"] == 4
    assert header["dtype"] == "torch.float32" and header["device"] == "cpu"
    assert header["package_version"] == reciprocal_gym.__version__ and header["format"] == 1
    assert header["config"]["n_arms"] == "5" and len(header["config_hash"]) == 16
    assert header["fields"]["state.means"] == ["float32", [4, 5]]
    digest = hashlib.sha256()
    assert len(header["checksum"]) == len(digest.hexdigest())


def test_single_envs_save_and_load_too(tmp_path):
    env = gym.make("Reciprocal-SelfTrain-v0", n_pool=40)
    env.reset(seed=2)
    env.step(3)
    path = tmp_path / "single.ckpt"
    env.unwrapped.save_state(path)
    first = [env.step(a)[1] for a in (5, 6, 7)]
    fresh = gym.make("Reciprocal-SelfTrain-v0", n_pool=40)
    fresh.unwrapped.load_state(path)
    assert [fresh.unwrapped.step(a)[1] for a in (5, 6, 7)] == first
    vector = _vec("Reciprocal-SelfTrain-v0", num_envs=1, n_pool=40)  # next_step autoreset, not the single env's
    with pytest.raises(CheckpointError, match="autoreset_mode is 'disabled' but this env has 'next_step'"):
        vector.load_state(path)
