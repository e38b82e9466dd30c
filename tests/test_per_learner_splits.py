"""Explicit splits per learner (a list of splits, or row ids into the dataset) and optional validation rows."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer

from reciprocal_gym import selection_context

X, Y = load_breast_cancer(return_X_y=True)
B = 3


def _vec(num_envs=B, **kwargs):
    return gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                        **kwargs)


def _rows(seed=0, with_val=True):
    rng = np.random.default_rng(seed)
    order = np.stack([rng.permutation(len(Y))[:160] for _ in range(B)])
    rows = {"labeled": order[:, :16], "pool": order[:, 16:76], "test": order[:, 100:160]}
    if with_val:
        rows["val"] = order[:, 76:100]
    return rows


def _run(env, steps=4):
    obs, _ = env.reset(seed=7)
    out = []
    for t in range(steps):
        action = torch.as_tensor(np.nonzero(obs["action_mask"].numpy())[1].reshape(env.num_envs, -1)[:, t])
        obs, reward, _, _, info = env.step(action)
        out.append((env.unwrapped.state.theta.clone(), reward.clone(), info["test_accuracy"].clone()))
    return out


@pytest.mark.parametrize("form", ["split_rows", "split_list"])
def test_each_learner_follows_its_own_split_like_an_env_of_that_split_alone(form):
    rows = _rows()
    if form == "split_rows":
        together = _vec(X=X, y=Y, split_rows=rows)
        alone = [_vec(num_envs=1, X=X, y=Y, split_rows={k: v[b] for k, v in rows.items()}) for b in range(B)]
    else:
        splits = [{k: (X[v[b]], Y[v[b]]) for k, v in rows.items()} for b in range(B)]
        together = _vec(split=splits)
        alone = [_vec(num_envs=1, split=splits[b]) for b in range(B)]
    ctx = None
    batch = _run(together)
    ctx = selection_context(together)
    for b in range(B):
        np.testing.assert_array_equal(ctx.pool_X[b].numpy(), X[rows["pool"][b]])
        np.testing.assert_array_equal(ctx.X[ctx.labeled_rows[b]].numpy(), X[rows["labeled"][b]])
        if form == "split_rows":  # row ids index the dataset as given
            np.testing.assert_array_equal(ctx.pool_rows[b].numpy(), rows["pool"][b])
        single = _run(alone[b])
        for (theta, reward, accuracy), (theta1, reward1, accuracy1) in zip(batch, single, strict=True):
            torch.testing.assert_close(theta[b], theta1[0], rtol=0, atol=1e-10)
            torch.testing.assert_close(reward[b], reward1[0], rtol=0, atol=1e-10)
            assert accuracy[b] == accuracy1[0]


def test_shared_row_ids_give_every_learner_the_same_split():
    rows = {k: v[0] for k, v in _rows().items()}
    env = _vec(X=X, y=Y, split_rows=rows)
    env.reset(seed=0)
    ctx = selection_context(env)
    assert all(torch.equal(ctx.pool_rows[b], ctx.pool_rows[0]) for b in range(B))


def test_without_validation_rows_no_validation_metric_appears_and_val_rewards_are_refused():
    rows = _rows(with_val=False)
    with pytest.raises(ValueError, match=r"reward='val_loglik' needs validation rows .*n_val=0.*'stability'"):
        _vec(X=X, y=Y, split_rows=rows)
    with pytest.raises(ValueError, match=r"reward='val_accuracy' needs validation rows"):
        _vec(n_val=0, reward="val_accuracy")
    for env in (_vec(X=X, y=Y, split_rows=rows, reward="stability"), _vec(n_val=0, reward="stability"),
                _vec(n_val=0, reward="stability", dataset="wine"),
                _vec(n_val=0, reward="stability", backend="torch")):
        obs, info = env.reset(seed=0)
        for _ in range(3):
            assert not any(key.startswith(("val_", "_val_")) for key in info)
            assert all(bool(torch.isfinite(v.double()).all()) for v in obs.values())
            assert all(bool(torch.isfinite(v.double()).all()) for v in info.values() if isinstance(v, torch.Tensor))
            obs, reward, _, _, info = env.step(torch.zeros(B, dtype=torch.int64) + 5)
            assert bool(torch.isfinite(reward).all())
    single = gym.make("Reciprocal-SelfTrain-v0", n_val=0, reward="stability")
    _, info = single.reset(seed=0)
    assert "val_accuracy" not in info and "test_accuracy" in info


def test_a_run_without_validation_rows_checkpoints(tmp_path):
    env = _vec(n_val=0, reward="stability")
    env.reset(seed=0)
    env.step(torch.tensor([1, 2, 3]))
    env.unwrapped.save_state(tmp_path / "c.pt")
    other = _vec(n_val=0, reward="stability")
    other.unwrapped.load_state(tmp_path / "c.pt")
    assert torch.equal(other.unwrapped.state.theta, env.unwrapped.state.theta)


@pytest.mark.parametrize("kwargs, message", [
    (dict(split_rows={"labeled": [0, 1], "pool": [2, 3]}), "keys .*'labeled', 'pool', 'test'"),
    (dict(split_rows={"labeled": [0, 1], "pool": [1, 3], "test": [4]}), "learner 0 has a row id twice"),
    (dict(split_rows={"labeled": [0, 1], "pool": [2, 3], "test": [10_000]}), r"outside 0\.\.568"),
    (dict(split_rows={"labeled": [0.0, 1.0], "pool": [2, 3], "test": [4]}), "integer row ids"),
    (dict(split_rows={"labeled": np.zeros((2, 2), int), "pool": [2, 3], "test": [4]}), r"shape \(n,\) or \(3, n\)"),
    (dict(split_rows={"labeled": [0, 1], "pool": [], "test": [4]}), "'pool'.* is empty"),
])
def test_bad_split_rows_are_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _vec(X=X, y=Y, reward="stability", **kwargs)


def test_bad_split_lists_are_refused_clearly():
    rows = _rows()
    splits = [{k: (X[v[b]], Y[v[b]]) for k, v in rows.items()} for b in range(B)]
    with pytest.raises(ValueError, match="2 splits for num_envs=3"):
        _vec(split=splits[:2])
    uneven = [dict(s) for s in splits]
    uneven[1]["pool"] = (uneven[1]["pool"][0][:-1], uneven[1]["pool"][1][:-1])
    with pytest.raises(ValueError, match="same part sizes"):
        _vec(split=uneven)
    leaky = [dict(s) for s in splits]
    leaky[2]["test"] = leaky[2]["labeled"]
    with pytest.raises(ValueError, match=r"split\[2\]\['test'\] also appear in split\[2\]\['labeled'\]"):
        _vec(split=leaky)
    with pytest.raises(ValueError, match="not both"):
        _vec(split=splits, split_rows=rows)
    with pytest.raises(ValueError, match=r"split=\[\] is not allowed"):
        _vec(split=[])
