"""Bad input of every class gets a clear error at the call that received it; allowed extremes never give NaN.

Classes (generated, not listed): every declared setting of every env, wrapper and agent (from its Spec); data
(regression targets, complex / text / huge features, mixed labels, overlapping split parts, ignored arrays); seeds
(negative, past 2**63, not ints); actions (None, text, objects, complex, ragged, wrong dtype; valid values in any
numeric representation are accepted). A clear error is a ValueError (or Gymnasium's ResetNeeded) whose message
names the argument.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from bad_values import allowed_extremes, bad_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import reciprocal_gym
from agents import LinUCBAgent, SelectionAgent, ThompsonAgent
from reciprocal_gym.arguments import MAX_SEED, Real, argument_specs
from reciprocal_gym.data.datasets import MAX_FEATURE
from reciprocal_gym.wrappers import ConvergenceDiagnostics
from reciprocal_gym.wrappers.diagnostics import ARGUMENTS as DIAGNOSTICS_ARGUMENTS

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
SMALL = settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _config_class(env_id: str) -> type:
    module, _, name = gym.spec(env_id).vector_entry_point.partition(":")
    return getattr(__import__(module, fromlist=[name]), name).config_class


DECLARED = [(env_id, name, spec) for env_id in reciprocal_gym.ENV_IDS
            for name, spec in argument_specs(_config_class(env_id)).items()]


def _finite(tree) -> bool:
    if isinstance(tree, dict):
        return all(_finite(v) for v in tree.values())
    if isinstance(tree, torch.Tensor) and tree.is_floating_point():
        return bool(torch.isfinite(tree).all())
    if isinstance(tree, (np.ndarray, float)):
        return bool(np.isfinite(tree).all())
    return True


def _assert_names(exc: Exception, *names: str) -> None:
    assert any(name in str(exc) for name in names), f"the error does not name {names}: {exc}"


def test_every_config_field_that_takes_a_number_or_a_choice_is_declared():
    """A setting added without a Spec would escape the generated checks below."""
    for env_id in reciprocal_gym.ENV_IDS:
        cls = _config_class(env_id)
        declared = set(argument_specs(cls))
        free = {f for f in cls.__dataclass_fields__} - declared
        # arrays and the dtype are checked by the config itself (real_array, resolve_dtype)
        assert free <= {"X", "y", "split", "split_rows", "means", "omegas", "dtype"}, (env_id, free)


@SETTINGS
@given(data=st.data(), which=st.sampled_from(DECLARED))
def test_a_bad_setting_is_refused_with_its_name(data, which):
    env_id, name, spec = which
    value = data.draw(bad_values(spec), label=name)
    with pytest.raises(ValueError) as caught:
        _config_class(env_id)(**{name: value})
    _assert_names(caught.value, name)


@SMALL
@given(which=st.sampled_from(DECLARED[:8] + DECLARED[-8:]), data=st.data())
def test_gym_make_refuses_bad_settings_before_building_anything(which, data):
    env_id, name, spec = which
    value = data.draw(bad_values(spec), label=name)
    with pytest.raises(ValueError) as caught:
        gym.make(env_id, **{name: value})
    _assert_names(caught.value, name)


EXTREME_RUNS = {
    "Reciprocal-Bandit-v0": dict(max_steps=20, reward_dist="gaussian"),
    "Reciprocal-ContextualBandit-v0": dict(max_steps=20, source="linear"),
    "Reciprocal-SolverRelax-v0": dict(max_steps=4, grid=4, max_iter=60, report_best=True),
    "Reciprocal-SelfTrain-v0": dict(max_steps=4, dataset="iris", n_labeled=6, n_pool=20),
    "Reciprocal-ActiveLearn-v0": dict(max_steps=4, dataset="iris", n_labeled=6, n_pool=20, budget=10),
    "Reciprocal-StreamActiveLearn-v0": dict(max_steps=4, dataset="iris", n_labeled=6, n_pool=20, budget=10),
}
REAL_SETTINGS = [(env_id, name, spec) for env_id, name, spec in DECLARED
                 if isinstance(spec, Real) and name not in ("tol", "expected_rate")] + [
    ("Reciprocal-SelfTrain-v0", "expected_rate", argument_specs(_config_class("Reciprocal-SelfTrain-v0"))[
        "expected_rate"])]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("env_id, name, spec", REAL_SETTINGS, ids=[f"{e[11:-3]}-{n}" for e, n, _ in REAL_SETTINGS])
def test_allowed_extreme_settings_give_finite_outputs(env_id, name, spec, dtype):
    """The ends of every real setting's allowed range, in float32 and float64: no NaN or inf leaves the env."""
    for value in allowed_extremes(spec):
        kwargs = dict(EXTREME_RUNS[env_id], dtype=dtype, **{name: value})
        if name == "expected_rate":
            kwargs["adaptation"] = "expected"
        env = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", **kwargs)
        obs, info = env.reset(seed=0)
        assert _finite(obs) and _finite(info), (name, value)
        env.action_space.seed(0)
        for _ in range(3):
            if "action_mask" in obs and kwargs.get("adaptation") != "expected":
                action = obs["action_mask"].double().multinomial(1).squeeze(1)
            else:
                action = torch.as_tensor(env.action_space.sample())
            obs, reward, _, _, info = env.step(action)
            assert _finite(obs) and _finite(reward) and _finite(info), (name, value)


# ----- data ---------------------------------------------------------------------------------------------------------
def _features(n=60, d=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def _labels_missing(k):
    y = np.array([0, 1] * 30, dtype=object)
    y[k] = None
    return y


BAD_DATA = st.one_of(
    # a regression target: floats that are not integral
    st.tuples(st.just("y"), hnp.arrays(np.float64, 60, elements=st.floats(-1e6, 1e6).filter(
        lambda v: v != round(v)), unique=True).map(lambda y: (_features(), y))),
    # complex features, with a non-zero imaginary part somewhere
    st.tuples(st.just("X"), st.floats(1e-3, 1e3).map(lambda im: (_features() + 1j * im, np.arange(60) % 2))),
    # features past the standardization's range
    st.tuples(st.just("X"), st.floats(MAX_FEATURE * 1.01, 1e300).map(
        lambda big: (np.vstack([_features(59), [[big, 0.0, 0.0]]]), np.arange(60) % 2))),
    # text features
    st.tuples(st.just("X"), st.text(min_size=1, max_size=3).map(lambda t: (np.full((60, 2), t), np.arange(60) % 2))),
    # labels that mix ints and strings
    st.tuples(st.just("y"), st.integers(1, 59).map(
        lambda k: (_features(), np.array([1] * k + ["b"] * (60 - k), dtype=object)))),
    # labels with a missing value
    st.tuples(st.just("y"), st.integers(0, 59).map(lambda k: (_features(), _labels_missing(k)))),
)


@SETTINGS
@given(case=BAD_DATA, env_id=st.sampled_from(["Reciprocal-SelfTrain-v0", "Reciprocal-ContextualBandit-v0"]))
def test_bad_data_arrays_are_refused_with_their_name(case, env_id):
    name, (X, y) = case
    kwargs = dict(n_labeled=6, n_pool=20) if "SelfTrain" in env_id else {}
    with pytest.raises(ValueError) as caught:
        gym.make(env_id, X=X, y=y, **kwargs)
    _assert_names(caught.value, name)


def _split(seed=0):
    X = _features(80, 3, seed)
    y = (X[:, 0] > 0).astype(int)
    cut = {"labeled": slice(0, 10), "pool": slice(10, 50), "val": slice(50, 65), "test": slice(65, 80)}
    return {k: (X[s], y[s]) for k, s in cut.items()}


@SETTINGS
@given(source=st.sampled_from(["labeled", "pool", "val", "test"]), target=st.sampled_from(["labeled", "pool",
                                                                                          "val", "test"]),
       rows=st.lists(st.integers(0, 9), min_size=1, max_size=5, unique=True))
def test_overlapping_split_parts_are_refused(source, target, rows):
    if source == target:
        return
    parts = _split()
    Xs, ys = parts[source]
    Xt, yt = parts[target]
    parts[target] = (np.vstack([Xt, Xs[rows]]), np.concatenate([yt, ys[rows]]))  # rows leak from source into target
    with pytest.raises(ValueError, match="overlap") as caught:
        gym.make("Reciprocal-SelfTrain-v0", split=parts)
    _assert_names(caught.value, f"split[{source!r}]", f"split[{target!r}]")


def test_arrays_an_env_would_ignore_are_refused():
    with pytest.raises(ValueError, match="X, y would be ignored"):
        gym.make("Reciprocal-ContextualBandit-v0", source="linear", X=_features(), y=np.arange(60) % 2)
    with pytest.raises(ValueError, match="n_arms would be ignored"):
        gym.make("Reciprocal-ContextualBandit-v0", dataset="wine", n_arms=3)
    with pytest.raises(ValueError, match="dtype=torch.float32 needs features"):
        gym.make("Reciprocal-SelfTrain-v0", X=_features() * 1e20, y=np.arange(60) % 2, dtype=torch.float32,
                 n_labeled=6, n_pool=20)
    with pytest.raises(ValueError, match="dataset_kwargs"):
        gym.make("Reciprocal-SelfTrain-v0", dataset="moons", dataset_kwargs={"noize": 0.1})


def test_good_data_of_every_label_kind_is_accepted():
    X = _features()
    for y in (np.arange(60) % 2, (np.arange(60) % 2).astype(float), np.array(["a", "b"] * 30),
              np.array(["a", "b"] * 30, dtype=object), np.arange(60) % 2 == 0):
        env = gym.make("Reciprocal-SelfTrain-v0", X=X, y=y, n_labeled=6, n_pool=20)
        obs, _ = env.reset(seed=0)
        assert _finite(obs)


# ----- seeds --------------------------------------------------------------------------------------------------------
BAD_SEEDS = st.one_of(st.integers(max_value=-1), st.integers(min_value=MAX_SEED - 2, max_value=2**80),
                      st.floats(allow_nan=True), st.text(max_size=4), st.booleans())


@SETTINGS
@given(seed=BAD_SEEDS, env_id=st.sampled_from(reciprocal_gym.ENV_IDS), single=st.booleans())
def test_bad_seeds_are_refused_with_their_name(seed, env_id, single):
    kwargs = dict(EXTREME_RUNS[env_id])
    env = gym.make(env_id, **kwargs) if single else gym.make_vec(env_id, num_envs=4,
                                                                 vectorization_mode="vector_entry_point", **kwargs)
    if single and isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED:
        env.reset(seed=seed)  # a single env takes any seed below 2**63
        return
    with pytest.raises(ValueError) as caught:
        env.reset(seed=seed)
    _assert_names(caught.value, "seed")


def test_the_largest_seeds_work_and_lists_are_checked_entry_by_entry():
    env = gym.make_vec("Reciprocal-Bandit-v0", num_envs=4, vectorization_mode="vector_entry_point")
    env.reset(seed=MAX_SEED - 3)  # learners seeded up to 2**63 - 1
    with pytest.raises(ValueError, match="seed="):
        env.reset(seed=MAX_SEED - 2)
    with pytest.raises(ValueError, match=r"seed\[2\]"):
        env.reset(seed=[0, 1, -5, 3])
    with pytest.raises(ValueError, match="one per learner"):
        env.reset(seed=[0, 1])


# ----- actions ------------------------------------------------------------------------------------------------------
BAD_ACTIONS = st.one_of(st.none(), st.text(max_size=4), st.just([[0], [1, 2]]), st.just(np.array([object()])),
                        st.just(torch.zeros(1, dtype=torch.int64, device="meta")),
                        st.complex_numbers(allow_nan=False, min_magnitude=1).map(lambda z: np.array([z])))


@SETTINGS
@given(action=BAD_ACTIONS, env_id=st.sampled_from(reciprocal_gym.ENV_IDS), single=st.booleans())
def test_actions_that_are_not_numbers_are_refused(action, env_id, single):
    kwargs = EXTREME_RUNS[env_id]
    env = gym.make(env_id, **kwargs) if single else gym.make_vec(env_id, num_envs=1,
                                                                 vectorization_mode="vector_entry_point", **kwargs)
    env.reset(seed=0)
    with pytest.raises(ValueError) as caught:
        env.step(action)
    _assert_names(caught.value, "action")


REPRESENTATIONS = [
    lambda a: a,
    lambda a: a.astype(">i8"),  # big-endian
    lambda a: a.astype(np.uint64),
    lambda a: a.astype(np.uint8),
    lambda a: a.astype(np.int16),
    lambda a: torch.as_tensor(a),
    lambda a: a.tolist(),
]


@pytest.mark.parametrize("represent", REPRESENTATIONS, ids=["int64", ">i8", "uint64", "uint8", "int16", "tensor",
                                                            "list"])
@pytest.mark.parametrize("env_id", reciprocal_gym.ENV_IDS)
def test_valid_actions_in_any_integer_representation_step_alike(env_id, represent):
    kwargs = EXTREME_RUNS[env_id]
    a, b = (gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", **kwargs) for _ in range(2))
    a.reset(seed=1)
    b.reset(seed=1)
    action = np.array([0, 1, 2], dtype=np.int64) % a.single_action_space.n  # the stream takes 0 and 1
    out_a, out_b = a.step(action), b.step(represent(action))
    for key in out_a[0]:
        assert torch.equal(out_a[0][key], out_b[0][key]), key
    assert torch.equal(out_a[1], out_b[1])


def test_single_env_after_its_episode_ends_says_reset():
    env = gym.make("Reciprocal-Bandit-v0", max_steps=1)
    env.reset(seed=0)
    env.step(0)
    with pytest.raises(gym.error.ResetNeeded, match=r"call reset\(\)") as caught:
        env.step(0)
    assert "reset_mask" not in str(caught.value)


@pytest.mark.parametrize("env_id", ["Reciprocal-Bandit-v0", "Reciprocal-ContextualBandit-v0",
                                    "Reciprocal-SolverRelax-v0"])
def test_action_masks_of_envs_without_forbidden_actions_allow_everything(env_id):
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.logger import configure

    env = gym.make(env_id, **EXTREME_RUNS[env_id])
    env.reset(seed=0)
    mask = env.unwrapped.action_masks()
    assert mask.dtype == bool and mask.shape == (env.action_space.n,) and mask.all()
    model = MaskablePPO("MultiInputPolicy", env, n_steps=16, batch_size=16, seed=0)
    model.set_logger(configure(None, []))
    model.learn(32)  # sb3-contrib probes action_masks() on every step


def test_box_action_envs_have_no_masks():
    env = gym.make("Reciprocal-Bandit-v0", adaptation="expected")
    env.reset(seed=0)
    with pytest.raises(AttributeError, match="action masks exist only"):
        env.unwrapped.action_masks()


# ----- wrappers and agents ------------------------------------------------------------------------------------------
AGENT_ARGUMENTS = ([(SelectionAgent, n, s) for n, s in SelectionAgent.ARGUMENTS.items()]
                   + [(ThompsonAgent, n, s) for n, s in ThompsonAgent.ARGUMENTS.items()]
                   + [(LinUCBAgent, n, s) for n, s in LinUCBAgent.ARGUMENTS.items()])


@SETTINGS
@given(which=st.sampled_from(AGENT_ARGUMENTS), data=st.data())
def test_bad_agent_arguments_are_refused_with_their_name(which, data):
    cls, name, spec = which
    value = data.draw(bad_values(spec), label=name)
    with pytest.raises(ValueError) as caught:
        cls(**{name: value})
    _assert_names(caught.value, name)


@SMALL
@given(seed=BAD_SEEDS.filter(lambda s: not (isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED)))
def test_bad_agent_seeds_are_refused(seed):
    with pytest.raises(ValueError, match="seed"):
        SelectionAgent(seed=seed)


@SETTINGS
@given(which=st.sampled_from(sorted(DIAGNOSTICS_ARGUMENTS.items())), data=st.data())
def test_bad_diagnostics_arguments_are_refused_with_their_name(which, data):
    name, spec = which
    value = data.draw(bad_values(spec), label=name)
    env = gym.make_vec("Reciprocal-Bandit-v0", num_envs=2, vectorization_mode="vector_entry_point")
    with pytest.raises(ValueError) as caught:
        ConvergenceDiagnostics(env, **{"distance": "theta", name: value})
    _assert_names(caught.value, name)


@pytest.mark.parametrize("tau", [1e-8, 1e-3, 1.0, 1e8])
@pytest.mark.parametrize("rule", ["softmax", "sparsemax"])
def test_selection_laws_are_finite_at_every_allowed_temperature(rule, tau):
    scores = torch.tensor([[0.0, 1e-9, 3.0, 3.0, -1e6], [5.0, 5.0, 5.0, 5.0, 5.0]], dtype=torch.float64)
    mask = torch.ones_like(scores, dtype=torch.bool)
    law = SelectionAgent(rule=rule, tau=tau).law_from_scores(scores, mask)
    assert bool(torch.isfinite(law).all()) and torch.allclose(law.sum(1), torch.ones(2, dtype=torch.float64))
    if tau == 1e-8:  # the two tied best points share the mass
        assert math.isclose(float(law[0, 2]), 0.5) and math.isclose(float(law[0, 3]), 0.5)


def test_a_criterion_giving_nan_scores_is_an_error_not_a_nan_action():
    env = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=2, vectorization_mode="vector_entry_point",
                       dataset="iris", n_labeled=6, n_pool=20)
    obs, _ = env.reset(seed=0)
    agent = SelectionAgent(criterion=lambda o: torch.full(o["action_mask"].shape, math.nan), rule="softmax")
    with pytest.raises(ValueError, match="NaN scores"):
        agent.act(obs)


@SMALL
@given(which=st.sampled_from(["tau_min", "tau_max", "tau"]), data=st.data())
def test_bad_temperatures_of_the_action_adapters_are_refused(which, data):
    from reciprocal_gym.wrappers import LinearScoring, TemperatureControl

    value = data.draw(bad_values(SelectionAgent.ARGUMENTS["tau"]), label=which)
    env = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=2, vectorization_mode="vector_entry_point",
                       dataset="iris", n_labeled=6, n_pool=20)
    with pytest.raises(ValueError) as caught:
        (LinearScoring if which == "tau" else TemperatureControl)(env, **{which: value})
    _assert_names(caught.value, which)
