import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.logger import configure

import reciprocal_gym  # noqa: F401
from reciprocal_gym.wrappers import CriterionChoice, LinearScoring, TemperatureControl
from reciprocal_gym.wrappers.sb3 import SB3VecEnv, make_sb3_vec_env

SMALL = dict(dataset="wine", n_labeled=9, n_pool=40, max_steps=6)


def _learn(algo, venv, **kwargs):
    model = algo("MultiInputPolicy", venv, seed=0, **kwargs)
    model.set_logger(configure(None, []))
    return model.learn(120)


@pytest.mark.parametrize(
    "algo, wrappers, kwargs",
    [
        (PPO, [CriterionChoice], dict(n_steps=8, batch_size=32)),
        (PPO, [LinearScoring], dict(n_steps=8, batch_size=32)),
        (A2C, [TemperatureControl], dict(n_steps=4)),
        (DQN, [CriterionChoice], dict(learning_starts=16, buffer_size=500)),
        (PPO, [], dict(n_steps=8, batch_size=32)),
    ],
)
def test_sb3_algorithms_learn_on_the_adapter(algo, wrappers, kwargs):
    _learn(algo, make_sb3_vec_env("Reciprocal-SelfTrain-v0", 4, wrappers=wrappers, **SMALL), **kwargs)


def test_maskable_ppo_uses_the_batched_masks():
    # with invalid_action="raise" any unmasked choice would stop learn() with an error (k = 1: per-dimension masks
    # of MultiDiscrete cannot forbid repeating a point across dimensions, which the default penalty handles)
    venv = make_sb3_vec_env("Reciprocal-SelfTrain-v0", 4, invalid_action="raise", **SMALL)
    masks = venv.env_method("action_masks")
    assert len(masks) == 4 and masks[0].shape == (40,)
    assert make_sb3_vec_env("Reciprocal-SelfTrain-v0", 2, k=2, **SMALL).action_masks().shape == (2, 80)
    _learn(MaskablePPO, venv, n_steps=8, batch_size=32)
    bandit = make_sb3_vec_env("Reciprocal-Bandit-v0", 4, max_steps=5)
    _learn(PPO, bandit, n_steps=8, batch_size=32)


def test_vecenv_conventions_terminal_observation_and_seeding():
    venv = make_sb3_vec_env("Reciprocal-Bandit-v0", 3, n_arms=4, max_steps=2)
    venv.seed(7)
    obs = venv.reset()
    assert isinstance(obs["theta"], np.ndarray) and obs["theta"].shape == (3, 4)
    reference = gym.make("Reciprocal-Bandit-v0", n_arms=4, max_steps=2)
    ref_obs, _ = reference.reset(seed=8)  # learner 1 is seeded 7 + 1
    np.testing.assert_array_equal(obs["theta"][1], ref_obs["theta"])
    venv.step(np.array([0, 1, 2]))
    obs, rewards, dones, infos = venv.step(np.array([3, 3, 3]))
    ref_last, ref_reward, _, ref_trunc, _ = (reference.step(1), reference.step(3))[1]
    assert dones.all() and rewards.dtype == np.float32 and rewards[1] == ref_reward
    assert infos[1]["TimeLimit.truncated"] and ref_trunc
    np.testing.assert_array_equal(infos[1]["terminal_observation"]["counts"], ref_last["counts"])
    assert (obs["step"] == 0).all()  # already reset, as SB3 expects
    assert venv.get_attr("n_arms") == [4, 4, 4] and venv.env_is_wrapped(gym.vector.VectorWrapper) == [False] * 3


def test_adapter_refuses_same_step_autoreset_and_composes_with_gymnasium_wrappers():
    with pytest.raises(ValueError, match="disabled"):
        SB3VecEnv(gym.make_vec("Reciprocal-Bandit-v0", num_envs=2, vectorization_mode="vector_entry_point",
                               autoreset_mode="same_step"))
    from gymnasium.wrappers.vector import FilterObservation

    from reciprocal_gym.wrappers import KeepKeys

    keep = ["candidates", "scalars", "action_mask"]
    venv = make_sb3_vec_env("Reciprocal-SelfTrain-v0", 3, wrappers=[lambda e: FilterObservation(e, keep)], **SMALL)
    assert set(venv.observation_space.spaces) == set(keep)
    _learn(MaskablePPO, venv, n_steps=8, batch_size=24)
    # KeepKeys keeps tensors, so the action adapters (which read the observation) compose with it
    venv = make_sb3_vec_env("Reciprocal-SelfTrain-v0", 3, wrappers=[lambda e: KeepKeys(e, keep), CriterionChoice],
                            **SMALL)
    _learn(PPO, venv, n_steps=8, batch_size=24)
    with pytest.raises(ValueError, match="subset"):
        KeepKeys(gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=2, vectorization_mode="vector_entry_point"),
                 ["nope"])


def _pool(**kwargs):
    return gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=5, vectorization_mode="vector_entry_point",
                        invalid_action="raise", **dict(SMALL, **kwargs))


def test_criterion_choice_selects_by_the_chosen_criterion():
    env = CriterionChoice(_pool(), criteria=("confidence", "uncertainty"), rule="greedy")
    obs, _ = env.reset(seed=0)
    choice = torch.tensor([0, 1, 0, 1, 1])
    probs = obs["candidates"][..., :3]
    confident = probs.max(-1).values.argmax(-1)
    uncertain = obs["candidates"][..., -2].argmax(-1)
    expected = torch.where(choice == 0, confident, uncertain)
    env.step(choice)
    in_use = env.unwrapped.state.in_use
    assert in_use[torch.arange(5), expected].all() and in_use.sum() == 5
    with pytest.raises(ValueError, match="criterion index"):
        env.step(torch.tensor([0, 2, 0, 0, 0]))


def test_linear_scoring_and_temperature_control():
    env = LinearScoring(_pool(), tau=1e-6)
    obs, _ = env.reset(seed=0)
    w = torch.tensor([[0, 0, 0, 1.0, 0, -1.0]]).expand(5, -1)  # margin minus in-use: the largest margin
    env.step(w)
    expected = obs["candidates"][..., 3].argmax(-1)
    assert env.unwrapped.state.in_use[torch.arange(5), expected].all()
    assert env.single_action_space.shape == (6,)
    temp = TemperatureControl(_pool(), tau_min=0.01, tau_max=10.0)
    temp.reset(seed=0)
    temp.step(np.full((5, 1), -2.0, np.float32))
    with pytest.raises(ValueError, match="within"):
        temp.step(np.full((5, 1), 3.0, np.float32))
    expected_mode = LinearScoring(_pool(adaptation="expected", k=3))
    expected_mode.reset(seed=0)
    _, r, *_ = expected_mode.step(np.zeros((5, 6), np.float32))  # a uniform law over the pool
    assert torch.isfinite(r).all()
