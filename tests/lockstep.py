"""Shared check: a vector env's learner i follows the single env seeded seed + i under the same actions."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np


def run_lockstep(
    env_id: str,
    kwargs: dict,
    num_envs: int,
    steps: int,
    choose: Callable[[np.random.Generator, dict, gym.Env], object],
    info_keys: tuple[str, ...],
    seed: int = 100,
    device: str = "cpu",
    atol: float = 1e-6,
) -> None:
    """Step a next-step-autoreset vector env and ``num_envs`` single envs with the same actions; compare all."""
    vec = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", device=device,
                       autoreset_mode="next_step", **kwargs)
    singles = [gym.make(env_id, **kwargs) for _ in range(num_envs)]
    vobs, _ = vec.reset(seed=seed)
    sobs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    rngs = [np.random.default_rng(i) for i in range(num_envs)]
    ended = [False] * num_envs
    for t in range(steps):
        for i in range(num_envs):
            for key in sobs[i]:
                np.testing.assert_allclose(vobs[key][i].cpu().numpy(), sobs[i][key], atol=atol, rtol=1e-6,
                                           err_msg=f"learner {i}, step {t}, observation {key}")
        actions = [choose(rngs[i], sobs[i], env) for i, env in enumerate(singles)]
        vobs, vrew, vterm, vtrunc, vinfo = vec.step(np.stack(actions))
        for i, env in enumerate(singles):
            if ended[i]:  # next-step autoreset in the vector env; the single env is reset by hand
                sobs[i], sinfo = env.reset()
                srew, sterm, strunc = 0.0, False, False
            else:
                sobs[i], srew, sterm, strunc, sinfo = env.step(actions[i])
            # Values are compared like the observations (atol + rtol * |single|): on a GPU the vector env's
            # float32 sums round in another order than the CPU single env's, by a unit in the last place.
            np.testing.assert_allclose(float(vrew[i]), srew, atol=atol, rtol=1e-6,
                                       err_msg=f"learner {i}, step {t}, reward")
            assert bool(vterm[i]) == sterm and bool(vtrunc[i]) == strunc, (i, t)
            for key in info_keys:
                np.testing.assert_allclose(float(vinfo[key][i]), float(sinfo[key]), atol=atol, rtol=1e-6,
                                           err_msg=f"learner {i}, step {t}, info {key}")
            ended[i] = sterm or strunc
