"""Stuck-job severity bands: low [t0, t1), medium [t1, t2), high [t2, t3), critical >= t3 (minutes)."""

from __future__ import annotations

from app.domain.states import Severity
from config import Config

DEFAULT_THRESHOLDS_MINUTES: tuple[float, ...] = tuple(Config.STUCK_THRESHOLDS_MINUTES)
SEVERITIES: tuple[str, ...] = tuple(severity.value for severity in Severity)


def severity_for(running_ms: int, thresholds_minutes: tuple[float, ...] = DEFAULT_THRESHOLDS_MINUTES) -> str | None:
    """The band of a run that has lasted `running_ms`, or None when it is not stuck yet."""
    band = None
    for severity, minutes in zip(SEVERITIES, thresholds_minutes, strict=True):
        if running_ms >= minutes * 60_000:
            band = severity
    return band


def is_stuck(running_ms: int, thresholds_minutes: tuple[float, ...] = DEFAULT_THRESHOLDS_MINUTES) -> bool:
    return running_ms >= thresholds_minutes[0] * 60_000
