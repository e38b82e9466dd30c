import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import reciprocal_gym  # noqa: F401
from reciprocal_gym.envs import SelfTrainEnv, SelfTrainVectorEnv

ENV_ID = "Reciprocal-SelfTrain-v0"
SMALL = dict(dataset="wine", n_labeled=9, n_pool=60)


def _vec(num_envs=4, **kwargs):
    return gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)


def test_registered_with_both_entry_points():
    spec = gym.spec(ENV_ID)
    assert spec.entry_point.endswith(":SelfTrainEnv")
    assert spec.vector_entry_point.endswith(":SelfTrainVectorEnv")
    assert isinstance(gym.make(ENV_ID).unwrapped, SelfTrainEnv)
    assert isinstance(_vec().unwrapped, SelfTrainVectorEnv)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        dict(label_mode="hard", adaptation="add", k=3, dataset="iris"),
        dict(adaptation="amend", k=4, dataset="wine"),
        dict(adaptation="swap", k=2, buffer_size=6, dataset="wine"),
        dict(adaptation="expected", k=5, expected_rate=0.5, dataset="moons"),
        dict(reward="val_accuracy", dtype=torch.float32),
    ],
)
def test_gymnasium_check_env(kwargs):
    check_env(gym.make(ENV_ID, **kwargs).unwrapped, skip_render_check=True)


@pytest.mark.parametrize(
    "kwargs",
    [{}, dict(adaptation="amend", k=3, dataset="wine"), dict(adaptation="expected", k=5, dataset="moons")],
)
def test_sb3_check_env(kwargs):
    # SB3's checker steps ten random actions; in add mode these can hit used points, which the default
    # invalid_action="penalty" answers with a no-op and a penalty reward, as documented.
    sb3_check_env(gym.make(ENV_ID, **kwargs).unwrapped, warn=False)


def _lockstep(kwargs, num_envs, steps, seed=100, device="cpu", resets_after=None):
    """Run a vector env and num_envs single envs (seed + i) with the same actions; compare everything."""
    vec = _vec(num_envs, device=device, autoreset_mode="next_step", **kwargs)
    singles = [gym.make(ENV_ID, **kwargs) for _ in range(num_envs)]
    vobs, vinfo = vec.reset(seed=seed)
    sobs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    rngs = [np.random.default_rng(i) for i in range(num_envs)]
    expected = kwargs.get("adaptation") == "expected"
    k = kwargs.get("k", 1)
    ended = [False] * num_envs
    for t in range(steps):
        for i in range(num_envs):
            for key in sobs[i]:
                np.testing.assert_allclose(vobs[key][i].cpu().numpy(), sobs[i][key], atol=1e-6, rtol=1e-6,
                                           err_msg=f"learner {i}, step {t}, {key}")
        actions = []
        for i, env in enumerate(singles):
            allowed = np.flatnonzero(sobs[i]["action_mask"])
            if expected:
                law = rngs[i].random(len(allowed)).astype(np.float32)
                a = np.zeros(env.action_space.shape, np.float32)
                a[allowed] = law / law.sum()
            else:
                pick = rngs[i].choice(allowed, size=k, replace=False)
                a = int(pick[0]) if k == 1 else pick.astype(np.int64)
            actions.append(a)
        vobs, vrew, vterm, vtrunc, vinfo = vec.step(np.stack(actions))
        for i, env in enumerate(singles):
            if ended[i]:  # next-step autoreset in the vector env; the single env is reset by hand
                sobs[i], sinfo = env.reset()
                srew, sterm, strunc = 0.0, False, False
            else:
                sobs[i], srew, sterm, strunc, sinfo = env.step(actions[i])
            assert float(vrew[i]) == pytest.approx(srew, abs=1e-9)
            assert bool(vterm[i]) == sterm and bool(vtrunc[i]) == strunc
            for key in ("test_accuracy", "theta_change", "train_size", "pseudo_label_error", "val_log_likelihood"):
                assert float(vinfo[key][i]) == pytest.approx(sinfo[key], abs=1e-9), (key, i, t)
            ended[i] = sterm or strunc
    return vec


def test_vector_equals_single_envs_seeded_seed_plus_i():
    """The foundation issue's check: 64 learners, each equal to a single env seeded seed + i."""
    _lockstep(dict(dataset="breast_cancer", n_pool=120), num_envs=64, steps=6)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(SMALL, label_mode="hard", k=2, adaptation="swap", buffer_size=4),
        dict(SMALL, adaptation="amend", k=3),
        dict(SMALL, adaptation="expected", k=4, expected_rate=0.5),
        dict(SMALL, max_steps=3),  # crosses an autoreset
    ],
)
def test_vector_equals_single_all_modes(kwargs, device):
    _lockstep(kwargs, num_envs=6, steps=7, device=device)


def test_tensors_stay_on_the_device(device):
    vec = _vec(3, device=device, **SMALL)
    obs, info = vec.reset(seed=0)
    obs, rew, term, trunc, info = vec.step(torch.tensor([0, 1, 2], device=device))
    for value in [*obs.values(), rew, term, trunc, info["test_accuracy"]]:
        assert value.device.type == torch.device(device).type


def test_next_step_autoreset_and_termination_when_pool_is_exhausted():
    vec = _vec(2, dataset="iris", n_labeled=6, n_pool=4, k=2, max_steps=50)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, _ = vec.reset(seed=3)
    obs, r, term, trunc, info = vec.step(torch.tensor([[0, 1], [0, 1]]))
    assert not term.any()
    obs, r, term, trunc, info = vec.step(torch.tensor([[2, 3], [2, 3]]))
    assert term.all() and not trunc.any()  # fewer than k = 2 points left
    assert obs["action_mask"].sum().item() == 0
    obs, r, term, trunc, info = vec.step(torch.tensor([[0, 0], [0, 0]]))  # ignored: the learners restart
    assert torch.all(r == 0) and not term.any()
    assert obs["action_mask"].sum().item() == 8 and torch.all(obs["scalars"][:, 0] == 0)


def test_same_step_autoreset_reports_the_final_observation():
    vec = _vec(2, autoreset_mode="same_step", max_steps=2, **SMALL)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    vec.reset(seed=0)
    vec.step(torch.tensor([0, 1]))
    obs, r, term, trunc, info = vec.step(torch.tensor([2, 3]))
    assert trunc.all()
    assert info["_final_obs"].all() and info["final_obs"]["scalars"][0, 0] == 2
    assert torch.all(obs["scalars"][:, 0] == 0)  # already reset
    assert "test_accuracy" in info["final_info"]


def test_disabled_autoreset_needs_a_partial_reset():
    vec = _vec(3, autoreset_mode="disabled", max_steps=1, **SMALL)
    obs, _ = vec.reset(seed=0)
    vec.step(torch.tensor([0, 0, 0]))
    with pytest.raises(gym.error.ResetNeeded, match="reset_mask"):
        vec.step(torch.tensor([1, 1, 1]))
    vec.reset(options={"reset_mask": np.array([True, True, True])})
    vec.step(torch.tensor([1, 1, 1]))


def test_partial_reset_touches_only_the_masked_learners():
    vec = _vec(3, **SMALL)
    obs, _ = vec.reset(seed=0)
    obs, *_ = vec.step(torch.tensor([5, 6, 7]))
    before = {k: v.clone() for k, v in obs.items()}
    obs, info = vec.reset(options={"reset_mask": torch.tensor([False, True, False])})
    for key in before:
        torch.testing.assert_close(obs[key][[0, 2]], before[key][[0, 2]])
    assert obs["scalars"][1, 0] == 0 and obs["action_mask"][1].all()
    assert info["_test_accuracy"].tolist() == [False, True, False]
    with pytest.raises(ValueError, match="reset_mask"):
        vec.reset(options={"reset_mask": np.array([1, 0, 1])})


def test_same_seed_same_trajectory_and_reset_without_seed_moves_on():
    def run(seed):
        env = gym.make(ENV_ID, **SMALL)
        obs, _ = env.reset(seed=seed)
        out = [obs["theta"]]
        for a in (3, 9, 27):
            obs, *_ = env.step(a)
            out.append(obs["theta"])
        second, _ = env.reset()
        return np.stack(out), second["theta"]
    a, a_next = run(5)
    b, b_next = run(5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a_next, b_next)
    assert not np.array_equal(a[0], a_next)


def test_info_and_observation_contents():
    env = gym.make(ENV_ID, **SMALL, report_gamma=True, label_mode="hard")
    obs, info = env.reset(seed=1)
    C = 3
    assert obs["candidates"].shape == (60, C + 3) and obs["theta"].shape == (C * 14,)
    np.testing.assert_allclose(obs["candidates"][:, :C].sum(1), 1.0, atol=1e-6)
    assert info["train_size"] == 9 and info["pseudo_label_error"] == 0.0 and info["theta_change"] == 0.0
    obs, r, term, trunc, info = env.step(4)
    assert info["train_size"] == 10 and obs["candidates"][4, -1] == 1.0 and obs["action_mask"][4] == 0
    assert info["pseudo_label_error"] in (0.0, 1.0)  # one hard pseudo-label: right or wrong
    assert info["gamma"] == pytest.approx(0.01)  # multinomial: gamma = lam exactly
    assert info["theta_change"] > 0 and info["fit_converged"]


def test_reward_is_the_change_in_validation_log_likelihood():
    env = gym.make(ENV_ID, **SMALL)
    _, info0 = env.reset(seed=2)
    _, r, *_, info1 = env.step(0)
    assert r == pytest.approx(info1["val_log_likelihood"] - info0["val_log_likelihood"], abs=1e-12)
    env = gym.make(ENV_ID, **SMALL, reward="stability")
    env.reset(seed=2)
    _, r, *_, info = env.step(0)
    assert r == pytest.approx(-info["theta_change"])


def test_invalid_action_penalty_and_raise():
    env = gym.make(ENV_ID, **SMALL, invalid_action_penalty=-2.0)
    obs, _ = env.reset(seed=0)
    obs, r, *_, info = env.step(7)
    theta = obs["theta"].copy()
    obs, r, *_, info = env.step(7)  # already in use
    assert r == -2.0 and info["invalid_action"] and info["train_size"] == 10
    np.testing.assert_array_equal(obs["theta"], theta)
    assert obs["scalars"][0] == 2  # the step counts toward max_steps
    strict = gym.make(ENV_ID, **SMALL, invalid_action="raise")
    strict.reset(seed=0)
    strict.step(7)
    with pytest.raises(ValueError, match="already in use"):
        strict.step(7)
    multi = gym.make(ENV_ID, **SMALL, k=2, invalid_action="raise")
    multi.reset(seed=0)
    with pytest.raises(ValueError, match="repeated"):
        multi.step(np.array([3, 3]))


def test_action_masks_for_maskable_algorithms():
    env = gym.make(ENV_ID, **SMALL)
    env.reset(seed=0)
    env.step(5)
    mask = env.unwrapped.action_masks()
    assert mask.dtype == bool and mask.shape == (60,) and not mask[5] and mask.sum() == 59
    env2 = gym.make(ENV_ID, **SMALL, k=3)
    env2.reset(seed=0)
    assert env2.unwrapped.action_masks().shape == (180,)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dataset="mnist"), "dataset='mnist'"),
        (dict(label_mode="fuzzy"), "label_mode='fuzzy'"),
        (dict(adaptation="greedy"), "adaptation='greedy'"),
        (dict(reward="accuracy"), "reward='accuracy'"),
        (dict(n_labeled=0), "n_labeled=0"),
        (dict(n_pool=-5), "n_pool=-5"),
        (dict(dataset="iris", n_pool=500), "n_pool=500 is too large"),
        (dict(lam=-0.1), "lam=-0.1"),
        (dict(k=0), "k=0"),
        (dict(max_steps=0), "max_steps=0"),
        (dict(k=500, dataset="iris"), "k=500"),
        (dict(X=np.array([[0.0, np.nan]] * 40), y=np.arange(40) % 2), "NaN or inf"),
        (dict(X=np.zeros((40, 2)), y=np.zeros(39)), "same length"),
        (dict(X=np.zeros((40, 2))), "X and y must be given together"),
        (dict(adaptation="swap", buffer_size=500), "buffer_size=500"),
        (dict(buffer_size=5), "buffer_size is only used"),
        (dict(invalid_action="ignore"), "invalid_action='ignore'"),
        (dict(dtype="float16"), "dtype"),
        (dict(expected_rate=0.0, adaptation="expected"), "expected_rate"),
        (dict(num_envs=0), "num_envs"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        if "num_envs" in kwargs:
            SelfTrainVectorEnv(**kwargs)
        else:
            gym.make(ENV_ID, **kwargs)


def test_bad_device_and_autoreset_mode():
    with pytest.raises(ValueError, match="autoreset_mode"):
        _vec(2, autoreset_mode="sometimes")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            _vec(2, device="cuda")


@pytest.mark.parametrize(
    "kwargs, action, match",
    [
        ({}, 10_000, r"in \[0, 60\)"),
        ({}, -1, r"in \[0, 60\)"),
        ({}, np.array([1, 2]), "shape"),
        ({}, 1.5, "integer"),
        (dict(k=2), np.array([1, 2, 3]), "shape"),
        (dict(adaptation="expected"), np.full(60, np.nan, np.float32), "finite"),
        (dict(adaptation="expected"), np.full(60, -0.1, np.float32), r"\[0, 1\]"),
        (dict(adaptation="expected"), np.zeros(60, np.float32), "positive sum"),
        (dict(adaptation="expected"), 3, "shape"),
    ],
)
def test_bad_actions_raise_and_leave_the_state_alone(kwargs, action, match):
    env = gym.make(ENV_ID, **SMALL, **kwargs).unwrapped
    obs, _ = env.reset(seed=0)
    theta = env.vector_env.state.theta.clone()
    with pytest.raises(ValueError, match=match):
        env.step(action)
    assert torch.equal(env.vector_env.state.theta, theta)
    assert int(env.vector_env.state.step[0]) == 0


def test_vector_bad_action_shape_names_the_batch():
    vec = _vec(4, **SMALL)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        vec.step(torch.tensor([1, 2]))


def test_float32_engine_runs_and_observations_are_float32():
    env = gym.make(ENV_ID, **SMALL, dtype=torch.float32)
    obs, info = env.reset(seed=0)
    for a in range(5):
        obs, r, *_ , info = env.step(a)
        assert info["fit_converged"] and np.isfinite(r)
    assert obs["candidates"].dtype == np.float32 and obs["theta"].dtype == np.float32


def test_user_arrays_and_explicit_split():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] > 0).astype(int)
    env = gym.make(ENV_ID, dataset=None, X=X, y=y, n_labeled=10, n_pool=50)
    obs, info = env.reset(seed=0)
    assert obs["theta"].shape == (4,) and info["test_accuracy"] > 0.8
    parts = {"labeled": (X[:10], y[:10]), "pool": (X[10:60], y[10:60]), "val": (X[60:90], y[60:90]),
             "test": (X[90:], y[90:])}
    e1 = _vec(2, split=parts)
    obs, _ = e1.reset(seed=0)
    torch.testing.assert_close(obs["theta"][0], obs["theta"][1])  # one split shared by every learner


def test_env_reproduces_a_scikit_learn_self_training_loop():
    """Hard-label add-only self-training done by hand with scikit-learn gives the env's parameters."""
    from sklearn.linear_model import LogisticRegression

    from reciprocal_gym.data import load_dataset, make_split, resolve_sizes

    lam, seed, picks = 0.05, 11, [4, 17, 2, 33, 8]
    env = gym.make(ENV_ID, dataset="breast_cancer", n_labeled=12, n_pool=100, label_mode="hard", lam=lam)
    env.reset(seed=seed)
    ds = load_dataset("breast_cancer")
    split = make_split(ds, resolve_sizes(ds.n_samples, 12, 100), np.random.default_rng([seed, 0]))
    X = split.features(ds.X, "labeled")
    y = split.y["labeled"]
    pool = split.features(ds.X, "pool")
    model = LogisticRegression(C=1 / (lam * len(y)), fit_intercept=False, tol=1e-12, max_iter=10_000).fit(X, y)
    for j in picks:
        obs, *_ = env.step(j)
        X, y = np.vstack([X, pool[j : j + 1]]), np.append(y, model.predict(pool[j : j + 1]))
        model = LogisticRegression(C=1 / (lam * len(y)), fit_intercept=False, tol=1e-12, max_iter=10_000).fit(X, y)
        np.testing.assert_allclose(env.unwrapped.vector_env.state.theta[0].numpy(), model.coef_.ravel(), atol=1e-4)


def test_gymnasium_vector_wrappers_compose():
    from gymnasium.wrappers.vector import ArrayConversion, RecordEpisodeStatistics

    envs = RecordEpisodeStatistics(ArrayConversion(_vec(3, max_steps=2, **SMALL), env_xp=torch, target_xp=np))
    obs, info = envs.reset(seed=0)
    assert isinstance(obs["candidates"], np.ndarray) and isinstance(info["test_accuracy"], np.ndarray)
    envs.step(np.array([0, 1, 2]))
    obs, reward, terminated, truncated, info = envs.step(np.array([3, 4, 5]))
    assert isinstance(reward, np.ndarray) and truncated.all()
    np.testing.assert_array_equal(info["episode"]["l"], [2, 2, 2])
