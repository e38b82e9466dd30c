"""Set-valued selection (``adaptation="subset"``) and curriculum labeling on top of it."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from agents import CURRICULUM_SETTINGS, CurriculumAgent
from reciprocal_gym import selection_context
from reciprocal_gym.utils.vector_checker import check_vector_env


def _vec(num_envs=2, **kwargs):
    kwargs = {"dataset": "breast_cancer", "n_labeled": 10, "n_pool": 60, "adaptation": "subset", **kwargs}
    return gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                        **kwargs)


def test_the_pseudo_labeled_part_becomes_the_chosen_set_with_the_models_labels():
    env = _vec(label_mode="hard")
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(3):
        predicted = obs["log_probs"].argmax(-1)
        chosen = torch.as_tensor(rng.random((2, 60)) < 0.3)
        obs, _, _, _, info = env.step(chosen.to(torch.int8))
        state = env.unwrapped.state
        assert torch.equal(state.in_use, chosen) and torch.equal(state.weight > 0, chosen)
        assert torch.equal(state.label.argmax(-1)[chosen], predicted[chosen])
        assert torch.equal(info["train_size"], 10 + chosen.sum(1).to(info["train_size"].dtype))
    # the empty set: the labeled-only fit again
    env.step(torch.zeros(2, 60, dtype=torch.bool))
    torch.testing.assert_close(env.unwrapped.state.theta, env.unwrapped.state.baseline_theta, rtol=0, atol=1e-7)


def test_subset_actions_are_checked_and_the_env_passes_the_checkers():
    env = _vec()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 60\)"):
        env.step(torch.zeros(2, 59, dtype=torch.int8))
    with pytest.raises(ValueError, match="0 or 1"):
        env.step(torch.full((2, 60), 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="integer or bool"):
        env.step(torch.zeros(2, 60))
    with pytest.raises(ValueError, match="k=3 is not used with adaptation='subset'"):
        _vec(k=3)
    assert env.unwrapped.action_masks().shape == (2, 120)
    assert isinstance(env.unwrapped.single_action_space, gym.spaces.MultiBinary)
    check_vector_env(_vec())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # infinite theta bounds
        check_env(gym.make("Reciprocal-SelfTrain-v0", adaptation="subset", n_pool=50).unwrapped, skip_render_check=True)


def test_curriculum_agent_takes_a_growing_top_share_by_confidence():
    env = _vec(num_envs=3, **CURRICULUM_SETTINGS)
    obs, _ = env.reset(seed=1)
    agent = CurriculumAgent(stride=0.25)
    for t in range(1, 6):
        confidence = obs["log_probs"].max(-1).values
        action = agent.act(obs).bool()
        count = math.ceil(min(1.0, 0.25 * t) * 60)
        assert bool((action.sum(1) == count).all())
        for b in range(3):  # every chosen point is at least as confident as every other
            if count < 60:
                assert float(confidence[b][action[b]].min()) >= float(confidence[b][~action[b]].max())
        obs, *_ = env.step(action.to(torch.int8))
    with pytest.raises(ValueError, match="stride"):
        CurriculumAgent(stride=0.0)


def test_curriculum_labeling_equals_a_hand_written_scikit_learn_loop():
    """Curriculum labeling with scikit-learn's conventions in the env equals the paper's loop written with
    scikit-learn: each round a fresh LogisticRegression on the labeled rows plus the pseudo-labeled ones, then the
    top 20 %, 40 %, ... of the pool by confidence pseudo-labeled with its predictions."""
    X, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(2).permutation(len(y))
    parts = dict(zip(("labeled", "pool", "val", "test"), np.split(order, [20, 100, 120]), strict=True))
    split = {k: (X[v], y[v]) for k, v in parts.items()}
    C = 0.01
    env = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=1, vectorization_mode="vector_entry_point", split=split,
                       standardize="none", penalty="sum", lam=1 / C, penalize_intercept=False, tol=1e-10,
                       **CURRICULUM_SETTINGS)
    obs, _ = env.reset(seed=0)
    agent = CurriculumAgent()
    X_l, y_l, X_p = split["labeled"][0], split["labeled"][1], split["pool"][0]
    chosen = np.zeros(len(X_p), dtype=bool)
    pseudo = np.zeros(len(X_p), dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in range(1, 6):
            fit_X, fit_y = np.vstack([X_l, X_p[chosen]]), np.concatenate([y_l, pseudo[chosen]])
            model = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-10, max_iter=1000).fit(fit_X, fit_y)
            confidence = model.predict_proba(X_p).max(1)
            top = np.argsort(-confidence, kind="stable")[: math.ceil(min(1.0, 0.2 * t) * len(X_p) - 1e-9)]
            chosen = np.zeros(len(X_p), dtype=bool)
            chosen[top] = True
            pseudo = model.predict(X_p)
            action = agent.act(obs)
            np.testing.assert_array_equal(action[0].bool().numpy(), chosen)
            obs, *_ = env.step(action)
            np.testing.assert_array_equal(env.unwrapped.state.in_use[0].numpy(), chosen)
            ctx = selection_context(env)
            assert torch.equal(ctx.train_labels[0, 20:].argmax(-1)[torch.as_tensor(chosen)],
                               torch.as_tensor(pseudo[chosen]))
