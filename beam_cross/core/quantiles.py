"""``QuantileSketch``: mergeable approximate quantiles in NumPy, the algorithm of Beam's
``ApproximateQuantilesCombineFn`` (Manku-Rajagopalan-Lindsay's "New Algorithm", unweighted) with its
buffers held as sorted float64 arrays instead of Python lists.

Sized as Beam sizes it (``ApproximateQuantilesCombineFn.create``): ``b`` buffers of ``k`` values, the
least ``b`` with ``(b - 2) * 2**(b - 2) >= epsilon * max_num_elements``, less one, and
``k = ceil(max_num_elements / 2**(b - 1))``; so the same bound holds: for fewer than
``max_num_elements`` values, each quantile is a value whose rank is within ``epsilon * N`` of the
exact one. Memory is ``b * k`` floats whatever ``N`` (about 260,000 for ``epsilon=0.001``).

>>> sketch = QuantileSketch(epsilon=0.01)
>>> for start in range(0, 100_000, 10_000):
...     _ = sketch.add(np.arange(start, start + 10_000, dtype=np.float64))
>>> quartiles = sketch.quantiles(5)  # min, 3 quartiles, max
>>> quartiles[0], quartiles[-1]
(0.0, 99999.0)
>>> from beam_cross.core.learning import rank_error
>>> rank_error(np.arange(100_000), quartiles[1:-1], 4) <= 0.01  # exact: 24999, 49999, 74999
True
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["QuantileSketch"]

MAX_NUM_ELEMENTS = 10**9  # Beam's default


def sizes(epsilon: float, max_num_elements: int = MAX_NUM_ELEMENTS) -> tuple[int, int]:
    """``(num_buffers, buffer_size)`` as ``ApproximateQuantilesCombineFn.create`` computes them."""
    b = 2
    while (b - 2) * (1 << (b - 2)) < epsilon * max_num_elements:
        b += 1
    b -= 1
    return b, max(2, int(math.ceil(max_num_elements / float(1 << (b - 1)))))


class QuantileSketch:
    """A mergeable summary of numbers (NaN must be left out by the caller)."""

    def __init__(self, epsilon: float = 1e-3, max_num_elements: int = MAX_NUM_ELEMENTS):
        self.num_buffers, self.buffer_size = sizes(epsilon, max_num_elements)
        self.buffers: list[tuple[int, int, np.ndarray]] = []  # (level, weight, sorted values)
        self.unbuffered: list[np.ndarray] = []
        self._unbuffered_size = 0
        self._jitter = 0
        self.min = math.inf
        self.max = -math.inf

    def add(self, values) -> QuantileSketch:
        values = np.asarray(values, np.float64).reshape(-1)
        if not len(values):
            return self
        self.min, self.max = min(self.min, float(values.min())), max(self.max, float(values.max()))
        self.unbuffered.append(values)
        self._unbuffered_size += len(values)
        if self._unbuffered_size >= self.buffer_size:
            flat = np.concatenate(self.unbuffered)
            full = len(flat) // self.buffer_size * self.buffer_size
            for start in range(0, full, self.buffer_size):
                self.buffers.append((0, 1, np.sort(flat[start:start + self.buffer_size])))
            rest = flat[full:]
            self.unbuffered, self._unbuffered_size = ([rest] if len(rest) else []), len(rest)
            self._collapse_if_needed()
        return self

    def merge(self, others) -> QuantileSketch:
        for other in others:
            if other.buffers or other.unbuffered:
                self.min, self.max = min(self.min, other.min), max(self.max, other.max)
            self.buffers.extend(other.buffers)
            for values in other.unbuffered:
                self.add(values)
        self._collapse_if_needed()
        return self

    def _offset(self, weight: int) -> float:
        """Beam's offset: an even weight rounds up and down in turn, so as not to bias."""
        if weight % 2 == 1:
            return (weight + 1) / 2
        self._jitter = 2 - self._jitter
        return (weight + self._jitter) / 2

    def _collapse_if_needed(self):
        while len(self.buffers) > self.num_buffers:
            self.buffers.sort(key=lambda buffer: buffer[0])
            second = self.buffers[1][0]
            count = 2
            while count < len(self.buffers) and self.buffers[count][0] <= second:
                count += 1
            taken, self.buffers = self.buffers[:count], self.buffers[count:]
            level = max(buffer[0] for buffer in taken) + 1
            weight = sum(buffer[1] for buffer in taken)
            picked = _pick(taken, self.buffer_size, weight, self._offset(weight))
            self.buffers.append((level, weight, picked))

    def quantiles(self, num_quantiles: int) -> list[float]:
        """``[min, num_quantiles - 2 evenly spaced quantiles, max]``, as Beam's ``extract_output``; [] when empty."""
        buffers = list(self.buffers)
        if self._unbuffered_size:
            buffers.append((0, 1, np.sort(np.concatenate(self.unbuffered))))
        if not buffers:
            return []
        total = sum(len(values) * weight for _, weight, values in buffers)
        step, offset = total / (num_quantiles - 1), (total - 1) / (num_quantiles - 1)
        inner = _pick(buffers, num_quantiles - 2, step, offset)
        return [self.min, *inner.tolist(), self.max]


def _pick(buffers, count: int, step: float, offset: float) -> np.ndarray:
    """The elements at weighted positions ``j * step + offset`` (``0 <= j < count``) of the sorted union
    of the buffers, each value repeated as often as its buffer's weight (Beam's ``_interpolate``)."""
    values = np.concatenate([b[2] for b in buffers])
    weights = np.concatenate([np.full(len(b[2]), b[1], np.float64) for b in buffers])
    order = np.argsort(values, kind="stable")
    values, cumulative = values[order], np.cumsum(weights[order])
    targets = np.arange(count) * step + offset
    at = np.searchsorted(cumulative, targets, side="right")  # the first element whose weight passes the target
    return values[np.minimum(at, len(values) - 1)]
