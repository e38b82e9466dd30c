"""Counter-based random numbers: the draws of learner b depend only on its key and a counter, never on the batch.

Environments that draw randomness while stepping (bandit rewards, oracle noise, arriving candidates) cannot share
one torch generator across the batch and still give learner i of a batch the trajectory of a single env seeded with
``seed + i``. Instead each learner gets a 32-bit key at reset (from its own seeded numpy generator) and every draw
is a hash of (key, stream, counter): the same for every batch size, on CPU and CUDA.

The hash is ``lowbias32`` (xor-shift / multiply with Chris Wellons' hash-prospector constants) on 32-bit words held
in int32 tensors: multiplication wraps modulo 2**32 and right shifts are made logical by masking, so the bits equal
those of the unsigned reference (a test checks this against numpy's uint32 arithmetic). Uniforms have 24 bits of
resolution: ``(m + 0.5) / 2**24`` for an integer m, strictly inside (0, 1).
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from torch import Tensor

_C1 = 0x7FEB352D
_C2 = 0x846CA68B - 2**32  # the same 32-bit word as a signed int32
_GOLDEN = 0x9E3779B9 - 2**32


def _shift(x: Tensor, s: int) -> Tensor:
    """Logical right shift of 32-bit words held in int32."""
    return (x >> s) & ((1 << (32 - s)) - 1)


def hash32(x: Tensor) -> Tensor:
    """The lowbias32 hash of int32 words (read as unsigned); returns int32 words."""
    x = x ^ _shift(x, 16)
    x = x * _C1
    x = x ^ _shift(x, 15)
    x = x * _C2
    return x ^ _shift(x, 16)


def as_word(values: Tensor | np.ndarray | int) -> Tensor:
    """Unsigned 32-bit integers (int64 or Python ints in [0, 2**32)) as int32 words with the same bits."""
    t = torch.as_tensor(values, dtype=torch.int64)
    return torch.where(t >= 2**31, t - 2**32, t).to(torch.int32)


def draw_key(rng: np.random.Generator) -> int:
    """A fresh 32-bit key (as a signed int32 value) from a learner's numpy generator."""
    return int(rng.integers(-(2**31), 2**31, dtype=np.int64))


def stream_key(key: Tensor, stream: int) -> Tensor:
    """The key of one stream of draws (``stream`` separates independent uses within an env); compute once."""
    return hash32(key ^ hash32(torch.full_like(key, stream) + _GOLDEN))


def draw_stream_keys(rngs: list[np.random.Generator], streams: list[int], device: torch.device) -> Tensor:
    """(L, len(streams)) int32 stream keys for L learners: from each learner's generator one fresh key per stream,
    drawn in order, each made the key of its stream (:func:`stream_key`)."""
    raw = torch.as_tensor([[draw_key(rng) for _ in streams] for rng in rngs], dtype=torch.int32, device=device)
    return torch.stack([stream_key(raw[:, i], s) for i, s in enumerate(streams)], dim=1)


def uniform(skey: Tensor, counter: Tensor | int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Uniforms in (0, 1) for stream keys ``skey`` (int32) and int ``counter`` values (broadcast together)."""
    if not isinstance(counter, Tensor):
        counter = torch.tensor(counter, dtype=torch.int32, device=skey.device)
    bits = _shift(hash32(skey ^ counter.to(torch.int32)), 8)
    return (bits.to(dtype) + 0.5) * (1.0 / 2**24)


_MASK32 = np.uint64(0xFFFFFFFF)


@numba.njit(cache=True, nogil=True)
def uniform_one(skey: int, counter: int) -> np.float32:
    """:func:`uniform` for one (stream key, counter) pair, float32, in compiled code: the same bits."""
    x = (np.uint64(np.int64(skey) ^ np.int64(counter))) & _MASK32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(_C1)) & _MASK32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(_C2 + 2**32)) & _MASK32
    x ^= x >> np.uint64(16)
    return (np.float32(x >> np.uint64(8)) + np.float32(0.5)) * np.float32(1.0 / 2**24)


def normal(skey: Tensor, counter: Tensor | int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normals by the inverse CDF of :func:`uniform` (so the tails end near 5.3 standard deviations)."""
    return torch.special.ndtri(uniform(skey, counter, torch.float64)).to(dtype)


class UniformBlocks:
    """Serves :func:`uniform` draws one counter at a time, computed ``block`` counters ahead in one batch.

    ``next(skey, counter)`` returns ``uniform(skey, counter)`` provided every learner's counter has advanced by
    exactly one since the previous call; call :meth:`invalidate` whenever that breaks (a reset). The values are the
    same as drawing one at a time, only cheaper per step."""

    def __init__(self, block: int = 64) -> None:
        self.block = block
        self._values: Tensor | None = None
        self._offset = 0

    def invalidate(self) -> None:
        self._values = None

    def next(self, skey: Tensor, counter: Tensor, dtype: torch.dtype) -> Tensor:
        if self._values is None or self._offset >= self.block or self._values.dtype != dtype:
            ahead = torch.arange(self.block, dtype=torch.int32, device=skey.device)
            self._values = uniform(skey.unsqueeze(1), counter.to(torch.int32).unsqueeze(1) + ahead, dtype)
            self._offset = 0
        value = self._values[:, self._offset]
        self._offset += 1
        return value
