"""A server-drawn SVG line chart of a rate over time against dated targets (pure).

No JavaScript and no chart library: the page stays light on a phone and the
chart prints.  The SVG scales with its container (``viewBox``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape

WIDTH, HEIGHT = 640, 240
# The margins hold the axis labels at a phone's larger axis font (console.css):
# "100%" left of the plot, and half a month's label beyond its first and last point.
LEFT, RIGHT, TOP, BOTTOM = 60, 44, 12, 28


@dataclass(frozen=True, slots=True)
class Point:
    at: datetime
    rate: float | None  # None: nobody rostered then
    label: str | None = None  # shown under the point (default: its date)


def _x(at: datetime, start: datetime, end: datetime) -> float:
    span = (end - start).total_seconds() or 1.0
    return LEFT + (at - start).total_seconds() / span * (WIDTH - LEFT - RIGHT)


def _y(rate: float) -> float:
    return TOP + (1.0 - max(0.0, min(1.0, rate))) * (HEIGHT - TOP - BOTTOM)


def rate_chart(points: list[Point], targets: list[Point], *, title: str, rate_label: str, target_label: str) -> str:
    """SVG markup: the rate as a line with dots, each target as a dashed step
    from its date on (a target in force until the next one)."""
    if not points:
        return ""
    start, end = points[0].at, points[-1].at
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _y(share)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{share * 100:.0f}%</text>')
    for point in points:  # centred under their points, so the first and last overlap no neighbour
        x = _x(point.at, start, end)
        parts.append(
            f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
            f"{escape(point.label or f'{point.at:%Y-%m-%d}')}</text>"
        )
    in_force = [t for t in targets if t.rate is not None and t.at <= end]
    for index, target in enumerate(in_force):
        x1 = _x(max(target.at, start), start, end)
        x2 = _x(in_force[index + 1].at, start, end) if index + 1 < len(in_force) else WIDTH - RIGHT
        y = _y(target.rate or 0.0)
        parts.append(
            f'<line class="target" x1="{x1:.1f}" y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}">'
            f"<title>{escape(target_label)} {target.rate * 100:.0f}%</title></line>"  # type: ignore[operator]
        )
    known = [p for p in points if p.rate is not None]
    if known:
        path = " ".join(f"{_x(p.at, start, end):.1f},{_y(p.rate):.1f}" for p in known)  # type: ignore[arg-type]
        parts.append(f'<polyline class="rate" points="{path}"/>')
        for p in known:
            parts.append(
                f'<circle class="rate" cx="{_x(p.at, start, end):.1f}" cy="{_y(p.rate):.1f}" r="3.5">'  # type: ignore[arg-type]
                f"<title>{escape(p.label or f'{p.at:%Y-%m-%d}')} {escape(rate_label)} {p.rate * 100:.1f}%</title></circle>"  # type: ignore[operator]
            )
    parts.append("</svg>")
    return "".join(parts)
