"""A bounded percentile sketch: O(1) per value, memory independent of how many.

Values fall into logarithmic buckets (bucket i holds (gamma^(i-1), gamma^i],
gamma = (1 + a) / (1 - a)), and a bucket answers with the value whose relative
error to anything in it is at most `a` (the DDSketch construction). A
percentile is the same definition as `metrics.percentile` — linear between the
order statistics at ranks floor and ceil of q/100 * (n - 1) — with each order
statistic replaced by its bucket's value, so it is within a relative `a`
(default 1%) of the exact figure. Values <= `floor` (default 1 µs) count as 0.
Buckets for 1 µs .. 1e6 s at 1%: at most about 1,400, whatever the count.
"""

from __future__ import annotations

import math


class Sketch:
    """Count, sum, min, max and percentiles of a stream of non-negative values."""

    __slots__ = ("accuracy", "_gamma", "_log_gamma", "_floor", "_buckets", "zeros", "count", "total",
                 "low", "high")

    def __init__(self, accuracy: float = 0.01, floor: float = 1e-6):
        self.accuracy = accuracy
        self._gamma = (1 + accuracy) / (1 - accuracy)
        self._log_gamma = math.log(self._gamma)
        self._floor = floor
        self._buckets: dict[int, int] = {}
        self.zeros = 0
        self.count = 0
        self.total = 0.0
        self.low = math.inf
        self.high = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.low = min(self.low, value)
        self.high = max(self.high, value)
        if value <= self._floor:
            self.zeros += 1
            return
        index = math.ceil(math.log(value) / self._log_gamma)
        self._buckets[index] = self._buckets.get(index, 0) + 1

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100), within `accuracy` relative; NaN if empty."""
        if not self.count:
            return math.nan
        pos = (self.count - 1) * q / 100.0
        low = math.floor(pos)
        a, b = self._values_at(low, min(low + 1, self.count - 1))
        return a + (b - a) * (pos - low)

    def _values_at(self, first: int, second: int) -> tuple[float, float]:
        """The bucket values of the order statistics at ranks `first` <= `second` (0-based)."""
        found: list[float] = []
        seen = self.zeros
        for rank in (first, second):
            if rank < self.zeros:
                found.append(0.0)
        if len(found) == 2:
            return found[0], found[1]
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            while len(found) < 2 and (first, second)[len(found)] < seen:
                found.append(self._bucket_value(index))
            if len(found) == 2:
                break
        return found[0], found[1]

    def _bucket_value(self, index: int) -> float:
        value = 2.0 * self._gamma ** index / (self._gamma + 1.0)
        return min(max(value, self.low), self.high)  # never outside what was seen
