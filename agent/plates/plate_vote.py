"""One vehicle's reads voted into one plate, with a confidence.

Each read of the vehicle's plate (one frame) is a format-resolved plate and its read
confidence (the geometric mean of its characters' probabilities). The vote takes the
plate with the largest summed confidence; its confidence is the mean confidence of the
reads that agree with it, times the share of all read confidence they hold (reads that
disagree lower it), times ``min(1, agreeing reads / min_reads)`` (a plate seen once is
worth less than one seen agreeing several times). The reads live only in memory, in the
pipeline's per-vehicle state, and are cleared when the vehicle is decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class VoteResult:
    plate: str
    confidence: float
    agreeing: int
    reads: int


@dataclass
class PlateVote:
    min_reads: int
    _weights: dict[str, float] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)
    reads: int = 0

    def add(self, plate: str, confidence: float) -> None:
        self._weights[plate] = self._weights.get(plate, 0.0) + confidence
        self._counts[plate] = self._counts.get(plate, 0) + 1
        self.reads += 1

    def result(self) -> VoteResult | None:
        if not self._weights:
            return None
        plate = max(self._weights, key=lambda p: (self._weights[p], self._counts[p]))
        weight, count = self._weights[plate], self._counts[plate]
        total = sum(self._weights.values())
        mean = weight / count
        confidence = mean * (weight / total) * min(1.0, count / self.min_reads)
        return VoteResult(plate, confidence, count, self.reads)

    def clear(self) -> None:
        self._weights.clear()
        self._counts.clear()
        self.reads = 0
