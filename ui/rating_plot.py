"""Ratings with their 95 % intervals as an inline SVG (no plotting library is installed).

One row per model, best first: a bar for the interval, a dot for the rating, a dashed line at
the base model's 1000. Names are escaped: they are text in the picture, never markup.
"""

from __future__ import annotations

import html
import math

STATUS_COLORS = {
    "base": "#6b7280",
    "live": "#16a34a",
    "candidate": "#ea580c",
    "retired": "#a8a29e",
}
ROW = 34
LEFT, RIGHT, TOP, BOTTOM = 210, 40, 34, 56
WIDTH = 900


def nice_ticks(low: float, high: float) -> list[float]:
    span = high - low
    step = 10 ** math.floor(math.log10(span / 4)) if span > 0 else 1
    for factor in (1, 2, 5, 10):
        if span / (step * factor) <= 6:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) // step) + 1)]


def rating_svg(rows: list[dict], anchor: float = 1000.0) -> str:
    """An `<svg>` of `rows` (leaderboard rows: model, status, rating, ci_low, ci_high)."""
    if not rows:
        return (
            '<div class="fw-empty" id="rating-plot-empty">No arena votes yet: '
            "vote in the Arena tab and the ratings appear here.</div>"
        )
    values = [anchor, *(v for r in rows for v in (r["ci_low"], r["rating"], r["ci_high"]))]
    low, high = min(values), max(values)
    pad = max((high - low) * 0.08, 10)
    low, high = low - pad, high + pad
    height = TOP + ROW * len(rows) + BOTTOM
    plot_w = WIDTH - LEFT - RIGHT

    def x(value: float) -> float:
        return LEFT + (value - low) / (high - low) * plot_w

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-label="Ratings with 95% intervals" id="rating-plot-svg" '
        'style="font-family: ui-sans-serif, system-ui, sans-serif; font-size: 13px">'
    ]
    axis_y = TOP + ROW * len(rows)
    for tick in nice_ticks(low, high):
        tx = x(tick)
        parts.append(
            f'<line x1="{tx:.1f}" y1="{TOP - 8}" x2="{tx:.1f}" y2="{axis_y}" stroke="#e5e7eb"/>'
            f'<text x="{tx:.1f}" y="{axis_y + 18}" text-anchor="middle" fill="#6b7280">'
            f"{tick:g}</text>"
        )
    ax = x(anchor)
    parts.append(
        f'<line x1="{ax:.1f}" y1="{TOP - 8}" x2="{ax:.1f}" y2="{axis_y}" stroke="#9ca3af" '
        'stroke-dasharray="4 4"/>'
        f'<text x="{ax:.1f}" y="{TOP - 12}" text-anchor="middle" fill="#6b7280">base = '
        f"{anchor:g}</text>"
    )
    for i, row in enumerate(rows):
        cy = TOP + ROW * i + ROW / 2
        color = STATUS_COLORS.get(row.get("status", ""), "#2563eb")
        name = html.escape(str(row["model"]))
        label = name if len(name) <= 28 else name[:27] + "…"
        x1, x2, xr = x(row["ci_low"]), x(row["ci_high"]), x(row["rating"])
        parts.append(
            f'<text x="{LEFT - 12}" y="{cy + 4:.1f}" text-anchor="end" fill="#111827">'
            f"{label}</text>"
            f'<line x1="{x1:.1f}" y1="{cy:.1f}" x2="{x2:.1f}" y2="{cy:.1f}" stroke="{color}" '
            'stroke-width="3" stroke-linecap="round"/>'
            f'<line x1="{x1:.1f}" y1="{cy - 7:.1f}" x2="{x1:.1f}" y2="{cy + 7:.1f}" '
            f'stroke="{color}" stroke-width="2"/>'
            f'<line x1="{x2:.1f}" y1="{cy - 7:.1f}" x2="{x2:.1f}" y2="{cy + 7:.1f}" '
            f'stroke="{color}" stroke-width="2"/>'
            f'<circle cx="{xr:.1f}" cy="{cy:.1f}" r="6" fill="{color}"><title>{name}: '
            f"{row['rating']:.0f} ({row['ci_low']:.0f}–{row['ci_high']:.0f})</title></circle>"
        )
    legend_x = LEFT
    for status, color in STATUS_COLORS.items():
        parts.append(
            f'<circle cx="{legend_x}" cy="{height - 8}" r="5" fill="{color}"/>'
            f'<text x="{legend_x + 9}" y="{height - 4}" fill="#374151">{status}</text>'
        )
        legend_x += 30 + 8 * len(status)
    parts.append("</svg>")
    return "".join(parts)
