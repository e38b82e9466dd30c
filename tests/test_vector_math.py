"""The compiled kernels' vectorizable exp / log1p (the env-level parity of the backends: test_backends.py)."""

import numpy as np

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
