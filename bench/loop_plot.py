"""The closed-loop benchmark's picture: held-out win rate against base, round by round (SVG)."""

from __future__ import annotations

import html

COLORS = ["#2563eb", "#16a34a", "#ea580c", "#9333ea", "#6b7280"]
WIDTH, HEIGHT = 640, 360
LEFT, RIGHT, TOP, BOTTOM = 56, 170, 30, 46


def win_rate_svg(series: dict[str, list[float]], title: str) -> str:
    """`series`: name -> win rate after round 0 (the base itself: 0.5), 1, 2, …"""
    rounds = max((len(v) for v in series.values()), default=1) - 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(r: float) -> float:
        return LEFT + (r / max(rounds, 1)) * plot_w

    def y(rate: float) -> float:
        return TOP + (1 - rate) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" style="font-family: sans-serif; font-size: 12px; background: white">',
        f'<text x="{LEFT}" y="18" font-weight="bold">{html.escape(title)}</text>',
    ]
    for tick in (0, 0.25, 0.5, 0.75, 0.9, 1.0):
        dash = ' stroke-dasharray="5 4"' if tick in (0.5, 0.9) else ""
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'stroke="{"#9ca3af" if dash else "#e5e7eb"}"{dash}/>'
            f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.0%}</text>'
        )
    parts.append(f'<text x="{LEFT + 4}" y="{y(0.5) - 4:.1f}" fill="#6b7280">base</text>')
    for r in range(rounds + 1):
        parts.append(
            f'<text x="{x(r):.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">'
            f"{'base' if r == 0 else f'round {r}'}</text>"
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
        "held-out win rate against base (ties count half)</text>"
    )
    for i, (name, rates) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        points = " ".join(f"{x(r):.1f},{y(v):.1f}" for r, v in enumerate(rates))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>')
        for r, v in enumerate(rates):
            parts.append(f'<circle cx="{x(r):.1f}" cy="{y(v):.1f}" r="4" fill="{color}"/>')
        ly = TOP + 16 + i * 20
        parts.append(
            f'<rect x="{WIDTH - RIGHT + 14}" y="{ly - 9}" width="12" height="12" fill="{color}"/>'
            f'<text x="{WIDTH - RIGHT + 32}" y="{ly + 1}">{html.escape(name)} '
            f"({rates[-1]:.0%})</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)
