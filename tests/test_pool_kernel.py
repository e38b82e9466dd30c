"""The compiled CPU prediction pass of the pool envs against the torch path, and its vectorizable exp / log1p."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import reciprocal_gym  # noqa: F401
from reciprocal_gym.envs.pool import PoolVectorEnv
from reciprocal_gym.utils.vector_math import exp_neg_abs, log1p_unit


def test_exp_and_log1p_to_a_few_units_in_the_last_place():
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(0, 5, 20000), rng.normal(0, 200, 20000), np.linspace(-720, 720, 20001),
                        [0.0, -0.0, 708.0, -708.0, 1e-300, 5e-324]])
    e, work = np.empty_like(z), np.empty_like(z)
    exp_neg_abs(z, e, work)
    reference = np.exp(-np.abs(z))
    normal = np.abs(z) <= 708.0
    assert np.max(np.abs(e[normal] - reference[normal]) / np.spacing(reference[normal])) <= 1.0
    assert np.all(e[~normal] == 0.0)  # below the normal range: 0, not a subnormal
    out = np.empty_like(e)
    log1p_unit(e, out)
    reference = np.log1p(e)
    positive = reference > 0
    assert np.max(np.abs(out[positive] - reference[positive]) / np.spacing(reference[positive])) <= 2.0
    assert np.all(out[~positive] == 0.0)


def test_nan_and_infinite_logits():
    z = np.array([np.nan, np.inf, -np.inf, 1.0])
    e, work = np.empty(4), np.empty(4)
    exp_neg_abs(z, e, work)
    assert np.isnan(e[0]) and e[1] == 0.0 and e[2] == 0.0 and e[3] == np.exp(-1.0)


def _run(env_id, compiled, steps=6, **kwargs):
    PoolVectorEnv._compiled_passes = compiled
    try:
        envs = gym.make_vec(env_id, num_envs=6, vectorization_mode="vector_entry_point", n_pool=60, max_steps=40,
                            autoreset_mode="next_step", **kwargs)
        obs, info = envs.reset(seed=3)
        rng = np.random.default_rng(0)
        trace = [(obs, info, envs.unwrapped._pool_probs)]
        k = kwargs.get("k", 1)
        for t in range(steps):
            masks = obs["action_mask"].bool().numpy()
            actions = np.stack([rng.choice(np.flatnonzero(m), size=k, replace=False) for m in masks])
            if t == 2:  # a rejected action for learner 0 (a repeated or an in-use index): a partial update
                actions[0] = actions[0, 0] if k > 1 else np.flatnonzero(~masks[0])[0]
            actions = actions if k > 1 else actions[:, 0]
            obs, reward, term, trunc, info = envs.step(actions)
            trace.append((obs, {**info, "reward": reward}, envs.unwrapped._pool_probs))
        return trace
    finally:
        PoolVectorEnv._compiled_passes = True


@pytest.mark.parametrize("env_id, kwargs", [
    ("Reciprocal-SelfTrain-v0", dict(label_mode="soft")),
    ("Reciprocal-SelfTrain-v0", dict(label_mode="hard", adaptation="amend", k=2)),
    ("Reciprocal-ActiveLearn-v0", dict(budget=30)),
])
def test_compiled_pass_agrees_with_torch_ops(env_id, kwargs):
    compiled, reference = _run(env_id, True, **kwargs), _run(env_id, False, **kwargs)
    for (obs, info, probs), (obs_ref, info_ref, probs_ref) in zip(compiled, reference, strict=True):
        torch.testing.assert_close(probs, probs_ref, atol=1e-13, rtol=0)
        for key in obs_ref:
            # candidate features are float32: the entropy from the logit (compiled) and from the float32
            # probabilities (torch) differ in the last bits
            torch.testing.assert_close(obs[key], obs_ref[key], atol=1e-6, rtol=1e-6, msg=key)
        for key in ("val_log_likelihood", "val_accuracy", "test_accuracy", "reward", "theta_change",
                    "pseudo_label_error", "train_size"):
            if key in info_ref:
                torch.testing.assert_close(info[key], info_ref[key], atol=1e-12, rtol=0, msg=key)
    assert bool(compiled[3][1]["invalid_action"][0]) and not bool(compiled[3][1]["invalid_action"][1:].any())
    assert compiled[-1][0]["candidates"].dtype == torch.float32
    assert torch.isfinite(compiled[-1][0]["candidates"]).all()


def test_compiled_gather_of_training_sets_equals_torch_ops():
    envs = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=5, vectorization_mode="vector_entry_point", n_pool=40,
                        label_mode="soft", autoreset_mode="disabled")
    envs.reset(seed=0)
    vec = envs.unwrapped
    for t in range(4):  # learner 0 takes an already used point at step 2 (rejected): counts differ, padding
        actions = np.array([t, 10 + t, 20 + t, 30 + t, 5 + t])
        actions[0] = 0 if t == 2 else actions[0]
        envs.step(actions)
    every = torch.arange(5)
    X, w, Q = vec._training_atoms(every)
    mass, wrong = vec._label_stats[2:]
    PoolVectorEnv._compiled_passes = False
    try:
        X_ref, w_ref, Q_ref = vec._training_atoms(every)
    finally:
        PoolVectorEnv._compiled_passes = True
    assert torch.equal(X.rows, X_ref.rows) and torch.equal(w, w_ref) and torch.equal(Q, Q_ref)
    state, y = vec.state, vec.state.labels["pool"]
    torch.testing.assert_close(mass, state.weight.sum(1))
    torch.testing.assert_close(wrong, (state.weight * (1 - state.label.gather(2, y.unsqueeze(-1)).squeeze(-1))).sum(1))
    assert float(wrong.sum()) > 0  # soft pseudo-labels: some mass on the wrong class
    assert float(w[0, -1]) == 0.0 and bool((w[1:, -1] == 1.0).all())  # learner 0 is padded
