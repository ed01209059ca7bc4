"""Server-rendered SVG charts of a report (no scripts, no external assets): the trend of the last 12 periods,
the on-time rate by department and the satisfaction rate by unit."""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH = 720
_FONT = 'font-family="sans-serif" font-size="12"'


def _svg(height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}">'
        f'<title>{escape(title)}</title><rect width="100%" height="100%" fill="#fff"/>'
        f'<text x="10" y="20" {_FONT} font-weight="bold">{escape(title)}</text>' + "".join(body) + "</svg>"
    )


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def bars(title: str, items: list[tuple[str, float | None]]) -> str:
    """Horizontal bars of rates (0..1); a missing rate shows as a dash."""
    row, left, right = 22, 200, WIDTH - 70
    body: list[str] = []
    for i, (label, value) in enumerate(items):
        y = 34 + i * row
        w = 0 if value is None else round((right - left) * max(0.0, min(1.0, value)))
        body.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" {_FONT}>{escape(label[:16])}</text>')
        body.append(f'<rect x="{left}" y="{y + 3}" width="{w}" height="{row - 6}" fill="#3b73b9"/>')
        body.append(f'<text x="{left + w + 4}" y="{y + 14}" {_FONT}>{_pct(value)}</text>')
    if not items:
        body.append(f'<text x="10" y="50" {_FONT}>无数据</text>')
    return _svg(44 + max(1, len(items)) * row, title, body)


def trend(title: str, points: list[tuple[str, float | None, float | None]]) -> str:
    """Two lines over the periods: on-time rate (blue) and satisfaction rate (orange), 0..100 %."""
    height, top, bottom, left, right = 260, 40, 210, 50, WIDTH - 20
    step = (right - left) / max(1, len(points) - 1)
    body = [
        f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#999"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#999"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" {_FONT}>100%</text>',
        f'<text x="{left - 6}" y="{bottom + 4}" text-anchor="end" {_FONT}>0%</text>',
    ]
    for series, colour, name in ((1, "#3b73b9", "按时办结率"), (2, "#e07b00", "满意率")):
        coords = []
        for i, point in enumerate(points):
            value = point[series]
            if value is None:
                continue
            x = left + i * step
            y = bottom - (bottom - top) * max(0.0, min(1.0, float(value)))
            coords.append(f"{x:.1f},{y:.1f}")
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>')
        if coords:
            body.append(f'<polyline points="{" ".join(coords)}" fill="none" stroke="{colour}" stroke-width="2"/>')
        legend_x = right - (220 if series == 1 else 100)
        body.append(f'<rect x="{legend_x}" y="10" width="10" height="10" fill="{colour}"/>')
        body.append(f'<text x="{legend_x + 14}" y="20" {_FONT}>{name}</text>')
    for i, point in enumerate(points):
        x = left + i * step
        body.append(
            f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" font-family="sans-serif" font-size="10">'
            f"{escape(str(point[0])[5:])}</text>"
        )
    return _svg(height, title, body)


def department_bars(report: dict[str, Any]) -> str:
    rows = [r for r in report["rows"] if r["breakdown"] == "department"]
    return bars("按部门按时办结率", [(r["name"], r["on_time_rate"]) for r in rows])


def unit_bars(report: dict[str, Any]) -> str:
    level = "street" if any(r["breakdown"] == "street" for r in report["rows"]) else "community"
    rows = [r for r in report["rows"] if r["breakdown"] == level]
    return bars("按单位满意率", [(r["name"], r["satisfaction_rate"]) for r in rows])


def trend_chart(period: str, history: list[dict[str, Any]]) -> str:
    title = "近12周趋势" if period == "weekly" else "近12个月趋势"
    return trend(title, [(h["start"], h["totals"]["on_time_rate"], h["totals"]["satisfaction_rate"]) for h in history])


def report_page(report: dict[str, Any], charts: list[str]) -> str:
    totals = report["totals"]
    figures = "".join(
        f"<tr><th>{escape(label)}</th><td>{escape(value)}</td></tr>"
        for label, value in (
            ("收件", str(totals["received"])),
            ("受理", str(totals["accepted"])),
            ("办结", str(totals["completed"])),
            ("按时办结率", _pct(totals["on_time_rate"])),
            ("期末超期", str(totals["overdue_open"])),
            ("满意率", _pct(totals["satisfaction_rate"])),
            ("网格跟踪覆盖率", _pct(totals["grid_coverage"])),
            ("免提交率", _pct(totals["prefill_rate"])),
        )
    )
    kind = "周报告" if report["period"] == "weekly" else "月报告"
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{kind} {escape(report['start'])}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:4px 10px;text-align:left}</style></head><body>"
        f"<h1>{escape(report.get('unit_name', ''))} {kind}</h1>"
        f"<p>{escape(report['start'])} 至 {escape(report['end'])}</p><table>{figures}</table>"
        + "".join(f"<div>{chart}</div>" for chart in charts)
        + "</body></html>"
    )


__all__ = ["bars", "department_bars", "report_page", "trend", "trend_chart", "unit_bars"]
