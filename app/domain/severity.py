"""Stuck-job severity bands: low [t0, t1), medium [t1, t2), high [t2, t3), critical >= t3 (minutes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.domain.states import Severity
from config import Config

SEVERITIES: tuple[str, ...] = tuple(severity.value for severity in Severity)


@dataclass(frozen=True)
class StuckThresholds:
    """The start of each band in minutes (fractions down to a second), shortest first: one per Severity. Built
    once from STUCK_THRESHOLDS_MINUTES when the app starts (`from_config`) and passed to whatever bands runs."""

    minutes: tuple[float, ...]

    def __post_init__(self) -> None:
        minutes = tuple(self.minutes)
        object.__setattr__(self, "minutes", minutes)
        increasing = all(later > earlier for earlier, later in zip(minutes, minutes[1:], strict=False))
        if len(minutes) != len(Severity) or not increasing or minutes[0] < 0:
            raise ValueError(f"stuck thresholds need {len(Severity)} increasing minutes, not {minutes!r}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> StuckThresholds:
        return cls(tuple(config["STUCK_THRESHOLDS_MINUTES"]))

    @property
    def bands(self) -> tuple[tuple[Severity, float], ...]:
        """(severity, minutes its band starts at), shortest first."""
        return tuple(zip(Severity, self.minutes, strict=True))

    @property
    def stuck_after_ms(self) -> int:
        """How long a run lasts before it is stuck (the low band's start)."""
        return round(self.minutes[0] * 60_000)

    def severity_of(self, running_ms: float) -> Severity | None:
        """The band of a run that has lasted `running_ms`, or None when it is not stuck yet."""
        band = None
        for severity, minutes in self.bands:
            if running_ms >= minutes * 60_000:
                band = severity
        return band

    def is_stuck(self, running_ms: float) -> bool:
        return running_ms >= self.minutes[0] * 60_000


DEFAULT_STUCK_THRESHOLDS = StuckThresholds(tuple(Config.STUCK_THRESHOLDS_MINUTES))
