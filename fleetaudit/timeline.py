"""Where a run's time goes, kept as the run goes (results.json's `timings`).

An audit that is slower than nmap plus an ssh loop must say why from its own record:
which nmap process ran when and for how long, when each collection round began and
ended across the fleet, how long the final round and the judging took. Rounds are
per host (thousands of them): they are kept as one span per round number, with how
many hosts went through it and the median and slowest host.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fleetaudit.models import PhaseTiming

__all__ = ["Timeline"]


class Timeline:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.origin = clock()
        self._spans: list[PhaseTiming] = []
        self._rounds: dict[tuple[str, str], list[tuple[float, float]]] = {}

    def now(self) -> float:
        return self.clock()

    def span(self, phase: str, name: str, start: float, end: float,
             hosts: int | None = None) -> None:
        """One whole-run span; `start` and `end` are clock readings."""
        self._spans.append(PhaseTiming(phase=phase, name=name, start=self._at(start),
                                       end=self._at(end), hosts=hosts))

    def host_span(self, phase: str, name: str, start: float, end: float) -> None:
        """One host's part of a phase every host goes through (a collection round)."""
        self._rounds.setdefault((phase, name), []).append((start, end))

    @contextmanager
    def phase(self, phase: str, name: str, hosts: int | None = None) -> Iterator[None]:
        start = self.clock()
        try:
            yield
        finally:
            self.span(phase, name, start, self.clock(), hosts)

    def timings(self) -> list[PhaseTiming]:
        """Every span so far, host phases summed up, in the order they began."""
        rounds = []
        for (phase, name), spans in self._rounds.items():
            took = [end - start for start, end in spans]
            rounds.append(PhaseTiming(
                phase=phase, name=name, start=self._at(min(s for s, _ in spans)),
                end=self._at(max(e for _, e in spans)), hosts=len(spans),
                median=round(statistics.median(took), 3), slowest=round(max(took), 3)))
        return sorted(self._spans + rounds, key=lambda t: (t.start, t.end))

    def _at(self, reading: float) -> float:
        return round(reading - self.origin, 3)
