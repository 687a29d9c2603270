"""The run's clock: how long each stage took, and whether a step may still start.

The time budget (``train.time_budget_s``) is a safety cap on the whole run, never what
decides the model on an ordinary run: a step starts only when its estimate, measured on
this machine from the steps before it, says it ends within the cap. What was skipped is
recorded so the run can say so.
"""

from __future__ import annotations

import sys
import time

try:
    import resource
except ImportError:  # Windows: no getrusage; peak memory is then not reported
    resource = None  # type: ignore[assignment]


class RunClock:
    """Stage timings and the deadline of one training run.

    Args:
        budget_seconds: the cap on the whole run, counted from construction.
    """

    def __init__(self, budget_seconds: float) -> None:
        self._now = time.perf_counter
        self.started = self._now()
        self._lap_started = self.started
        self.budget_seconds = budget_seconds
        self.stage_seconds: dict[str, float] = {}
        self.stage_peak_rss_mb: dict[str, float] = {}
        self.skipped: list[str] = []

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return self._now() - self.started

    @property
    def remaining(self) -> float:
        """Seconds left under the cap (negative once it is spent)."""
        return self.budget_seconds - self.elapsed

    def allows(self, estimate_seconds: float, reserve_seconds: float = 0.0) -> bool:
        """Whether a step estimated to take ``estimate_seconds`` ends within the cap.

        ``reserve_seconds`` is kept back for the steps that must still follow it.
        """
        return estimate_seconds + reserve_seconds <= self.remaining

    def skip(self, what: str) -> None:
        """Record a step the cap did not let start."""
        self.skipped.append(what)

    def lap(self, stage: str) -> float:
        """Close a stage: the seconds since the previous lap (or the start) count as ``stage``.

        A stage closed twice adds up. The process's peak memory so far is noted with it.
        Returns the seconds of this lap.
        """
        now = self._now()
        spent = now - self._lap_started
        self._lap_started = now
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + spent
        peak = peak_rss_mb()
        if peak is not None:
            self.stage_peak_rss_mb[stage] = peak
        return spent


def peak_rss_mb() -> float | None:
    """The highest resident memory of this process so far, in MiB (None where unknown)."""
    if resource is None:
        return None
    peak = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    # Linux counts KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
