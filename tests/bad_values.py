"""Hypothesis strategies for values an argument's declared :class:`~reciprocal_gym.arguments.Spec` refuses.

The bad values are generated from the declaration (below the lower bound, above the upper one, NaN and inf, the
wrong type, a non-integral float for an int, a string that is no choice ...), so every declared setting of every
env, wrapper and agent is covered without a hand-kept list.
"""

from __future__ import annotations

import math

from hypothesis import strategies as st

from reciprocal_gym.arguments import Choice, Flag, Integer, Mapping, Maybe, Real, Spec

WRONG_TYPES = st.sampled_from(["1", "", [1], (0.5,), {"a": 1}, b"x", 1 + 2j])


def bad_values(spec: Spec) -> st.SearchStrategy:
    """Values ``spec`` must refuse (each one checked against ``spec.allows`` so the strategy cannot lie)."""
    if isinstance(spec, Maybe):
        return bad_values(spec.inner).filter(lambda v: v is not None)
    options: list[st.SearchStrategy] = [WRONG_TYPES, st.none()]
    if isinstance(spec, Integer):
        options += [st.integers(max_value=spec.low - 1), st.booleans(),
                    st.floats(allow_nan=True, allow_infinity=True)]  # any float, integral ones too: not an int
        if spec.high is not None:
            options.append(st.integers(min_value=spec.high + 1))
    elif isinstance(spec, Real):
        options += [st.sampled_from([math.nan, math.inf, -math.inf]), st.booleans()]
        if spec.low is not None:
            options.append(st.floats(max_value=spec.low, exclude_max=not spec.open_low, allow_nan=False,
                                     allow_infinity=False))
        if spec.high is not None:
            options.append(st.floats(min_value=spec.high, exclude_min=not spec.open_high, allow_nan=False,
                                     allow_infinity=False))
    elif isinstance(spec, Choice):
        options += [st.text(max_size=12), st.integers(), st.sampled_from([o.upper() + " " for o in spec.options])]
    elif isinstance(spec, Flag):
        options += [st.integers(), st.text(max_size=5), st.floats()]
    elif isinstance(spec, Mapping):
        options = [st.text(max_size=5), st.lists(st.integers(), max_size=3),
                   st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=2)]
    return st.one_of(options).filter(lambda v: not spec.allows(v))


def allowed_extremes(spec: Real) -> list[float]:
    """The ends of a real setting's allowed range (just inside an open end)."""
    values = []
    for bound, is_open, inward in ((spec.low, spec.open_low, math.inf), (spec.high, spec.open_high, -math.inf)):
        if bound is not None:
            values.append(math.nextafter(bound, inward) if is_open else bound)
    return values
