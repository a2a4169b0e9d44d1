"""Trend charts as server-rendered SVG (pygal): no JavaScript in the chart, no CDN, works offline.

Two sizes: `wide` (760 px, shown scaled down on desktops) and `narrow` (360 px, for phones: drawn at the size it is
shown, so its labels stay readable instead of a wide chart shrunk to half).
"""

from __future__ import annotations

import re
from typing import Any

import pygal
from pygal.style import Style

from app.domain.states import Period

SIZES: dict[str, dict[str, Any]] = {
    "wide": {"width": 760, "height": 300, "labels": 8, "font": 11},
    "narrow": {"width": 360, "height": 340, "labels": 4, "font": 13},
}


def _style(font: int) -> Style:
    return Style(
        background="transparent",
        plot_background="transparent",
        foreground="#1f2933",
        foreground_strong="#1f2933",
        foreground_subtle="#52606d",
        colors=("#2f855a", "#c53030", "#2b6cb0"),
        font_family="system-ui, -apple-system, 'Segoe UI', sans-serif",
        label_font_size=font,
        major_label_font_size=font,
        legend_font_size=font + 1,
        title_font_size=14,
    )


LABEL_FORMAT: dict[str, str] = {Period.DAY: "%H:%M", Period.WEEK: "%a %Hh", Period.MONTH: "%d %b"}


def _labels(series: list[dict[str, Any]], period: str) -> list[str]:
    from datetime import datetime

    fmt = LABEL_FORMAT[period]
    return [datetime.strptime(point["start"], "%Y-%m-%dT%H:%M:%S.%fZ").strftime(fmt) for point in series]


_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL)


def _without_scripts(svg: str) -> str:
    """pygal still writes its inline config script with js=[]; a chart shown as an image needs none."""
    return _SCRIPT.sub("", svg)


def _base(chart_class: Any, title: str, labels: list[str], size: str) -> Any:
    layout = SIZES[size]
    chart = chart_class(
        style=_style(layout["font"]),
        js=[],
        width=layout["width"],
        height=layout["height"],
        title=title,
        show_legend=True,
        legend_at_bottom=True,
        x_label_rotation=40,
        show_minor_x_labels=False,
        truncate_label=-1,
        explicit_size=True,
        disable_xml_declaration=True,
        print_values=False,
        margin=16,
    )
    chart.x_labels = labels
    chart.x_labels_major_every = max(1, len(labels) // layout["labels"])
    return chart


def outcomes_chart(trend: dict[str, Any], size: str = "wide") -> str:
    """Completed and failed jobs per bucket, stacked."""
    series = trend["series"]
    title = f"{trend['queueName']}: jobs finished ({trend['period']})"
    chart = _base(pygal.StackedBar, title, _labels(series, trend["period"]), size)
    highest = max((point["successful"] + point["failed"] for point in series), default=0)
    step = max(1, -(-highest // 5))
    chart.y_labels = list(range(0, highest + step, step))  # whole jobs: never 0.1 of a job
    chart.add("completed", [point["successful"] for point in series])
    chart.add("failed", [point["failed"] for point in series])
    return _without_scripts(chart.render(is_unicode=True))


def processing_time_chart(trend: dict[str, Any], size: str = "wide") -> str:
    """Average processing time per bucket, in milliseconds."""
    series = trend["series"]
    what = "avg time, ms" if size == "narrow" else "average processing time, ms"
    chart = _base(
        pygal.Line, f"{trend['queueName']}: {what} ({trend['period']})", _labels(series, trend["period"]), size
    )
    chart.add("avg ms", [point["avgProcessingTime"] for point in series], allow_interruptions=True)
    return _without_scripts(chart.render(is_unicode=True))


def _clock(points: list[dict[str, Any]], field: str) -> list[str]:
    from datetime import datetime  # noqa: PLC0415

    return [datetime.strptime(point[field], "%Y-%m-%dT%H:%M:%S.%fZ").strftime("%H:%M") for point in points]


def worker_hourly_chart(name: str, hourly: list[dict[str, Any]], size: str = "wide") -> str:
    """One worker's ended attempts per hour over the last 24 h (worker_history): succeeded and failed, stacked."""
    chart = _base(pygal.StackedBar, f"{name}: attempts per hour (24h)", _clock(hourly, "start"), size)
    highest = max((point["processed"] for point in hourly), default=0)
    step = max(1, -(-highest // 5))
    chart.y_labels = list(range(0, highest + step, step))
    chart.add("succeeded", [point["processed"] - point["failed"] for point in hourly])
    chart.add("failed", [point["failed"] for point in hourly])
    return _without_scripts(chart.render(is_unicode=True))


def worker_memory_chart(name: str, memory: list[dict[str, Any]], size: str = "wide") -> str:
    """One worker's RSS (worker + work horse) sampled once a minute over the last hour."""
    chart = _base(pygal.Line, f"{name}: memory, MB (last hour)", _clock(memory, "at"), size)
    chart.add("RSS MB", [point["memory_usage_mb"] for point in memory], allow_interruptions=True)
    return _without_scripts(chart.render(is_unicode=True))
