"""exp and log1p written so that the compiler vectorizes them (numba has no vector math library on pip builds).

numba compiles ``math.exp`` and ``math.log1p`` to one scalar libm call per element, about 14 ns for the pair here,
against a few ns for the polynomial forms below, which LLVM turns into SIMD code. They cover the ranges the pool
envs need, in float64, to 1 unit in the last place (exp) and 2 (log1p); tests check that against numpy.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_INV_LN2 = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two: k * _LN2_HI is exact for |k| < 2**20
_LN2_LO = 1.90821492927058770002e-10
_ROUND = 6755399441055744.0  # 1.5 * 2**52: x + _ROUND rounds x to an integer, kept in the low mantissa bits
_ROUND_BITS = int(np.float64(_ROUND).view(np.int64))
_EXP_MIN = 708.0  # exp(-708) is still a normal number
_FACT = np.array([1.0 / math.factorial(k) for k in range(14)])

# Only 'contract' (fused multiply-add): reassociation would fold (x + _ROUND) - _ROUND back into x.
_FAST = {"contract"}


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def exp_neg_abs(z, out, work):
    """out[i] = exp(-|z[i]|) for i < len(out): 0 where |z[i]| > 708 (below the normal range), NaN where z[i] is
    NaN. ``work`` is a float64 buffer at least as long as ``out``; z may be longer."""
    n = out.shape[0]
    bits = work.view(np.int64)
    for i in range(n):
        x = -min(abs(z[i]), _EXP_MIN)
        t = x * _INV_LN2 + _ROUND
        k = t - _ROUND  # x / ln 2 rounded to an integer, in [-1022, 0]
        r = (x - k * _LN2_HI) - k * _LN2_LO  # |r| <= ln(2) / 2
        q = _FACT[13]
        for j in range(12, -1, -1):  # Horner; a fixed trip count, unrolled by the compiler
            q = q * r + _FACT[j]
        out[i] = q
        work[i] = t
    for i in range(n):  # 2**k: the integer k moved into the exponent field
        bits[i] = (bits[i] - _ROUND_BITS + 1023) << 52
    for i in range(n):
        u = abs(z[i])
        out[i] = out[i] * work[i] if u <= _EXP_MIN else (0.0 if u > _EXP_MIN else u)


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def log1p_unit(e, out):
    """out[i] = log1p(e[i]) for 0 <= e[i] <= 1 and i < len(out): 2 atanh(t) with t = e / (2 + e) <= 1/3, by its
    series (18 terms reach 1e-17 at t = 1/3)."""
    for i in range(out.shape[0]):
        t = e[i] / (2.0 + e[i])
        s = t * t
        q = 1.0 / 37.0
        for k in range(17, 0, -1):  # Horner over 1 / (2k + 1), k = 17 .. 1
            q = q * s + 1.0 / (2 * k + 1)
        out[i] = 2.0 * t + (2.0 * t) * s * q
