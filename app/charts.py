"""Trend charts as server-rendered SVG (pygal): no JavaScript in the chart, no CDN, works offline."""

from __future__ import annotations

import re
from typing import Any

import pygal
from pygal.style import Style

STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#1f2933",
    foreground_strong="#1f2933",
    foreground_subtle="#52606d",
    colors=("#2f855a", "#c53030", "#2b6cb0"),
    font_family="system-ui, -apple-system, 'Segoe UI', sans-serif",
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=12,
    title_font_size=14,
)

LABEL_FORMAT = {"24h": "%H:%M", "7d": "%a %Hh", "30d": "%d %b"}


def _labels(series: list[dict[str, Any]], period: str) -> list[str]:
    from datetime import datetime  # noqa: PLC0415

    fmt = LABEL_FORMAT[period]
    return [datetime.strptime(point["start"], "%Y-%m-%dT%H:%M:%S.%fZ").strftime(fmt) for point in series]


_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL)


def _without_scripts(svg: str) -> str:
    """pygal still writes its inline config script with js=[]; a chart shown as an image needs none."""
    return _SCRIPT.sub("", svg)


def _base(chart_class: Any, title: str, labels: list[str]) -> Any:
    chart = chart_class(
        style=STYLE,
        js=[],
        width=760,
        height=300,
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
    chart.x_labels_major_every = max(1, len(labels) // 8)
    return chart


def outcomes_chart(trend: dict[str, Any]) -> str:
    """Completed and failed jobs per bucket, stacked."""
    series = trend["series"]
    chart = _base(
        pygal.StackedBar, f"{trend['queueName']}: jobs finished ({trend['period']})", _labels(series, trend["period"])
    )
    chart.add("completed", [point["successful"] for point in series])
    chart.add("failed", [point["failed"] for point in series])
    return _without_scripts(chart.render(is_unicode=True))


def processing_time_chart(trend: dict[str, Any]) -> str:
    """Average processing time per bucket, in milliseconds."""
    series = trend["series"]
    chart = _base(
        pygal.Line,
        f"{trend['queueName']}: average processing time, ms ({trend['period']})",
        _labels(series, trend["period"]),
    )
    chart.add("avg ms", [point["avgProcessingTime"] for point in series], allow_interruptions=True)
    return _without_scripts(chart.render(is_unicode=True))
