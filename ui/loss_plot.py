"""A training job's curves as one SVG: loss by step on the left axis, accuracy on the right.

Drawn by hand like the leaderboard's plot (ui/rating_plot.py): each series is a `<g>` that
names its metric and point count, which the page's tests read back.

Not a `gr.LinePlot`: tried in chromium with Gradio 6.31, fed the way this plot is fed (empty
until the first step, then one update per poll), it drew the lines but no legend entries, so
train loss, eval loss and accuracy could not be told apart; a series of one point (eval loss
after its first evaluation) was not drawn at all; an empty frame before the data left the lines
undrawn; and an update that set its caption left the whole plot undrawn. It also has one y axis,
where a loss and a share read better on two.
"""

from __future__ import annotations

import html

from ui.rating_plot import nice_ticks

SERIES = (  # (metric key, legend, colour, right axis: a share from 0 to 1)
    ("loss", "train loss", "#2563eb", False),
    ("eval_loss", "eval loss", "#ea580c", False),
    ("rewards/accuracies", "reward accuracy", "#16a34a", True),
    ("accuracy", "accuracy", "#16a34a", True),  # the reward model's
)
WIDTH, HEIGHT = 900, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 64, 40, 44


def _points(metrics: list[dict], key: str) -> list[tuple[float, float]]:
    return [
        (float(row["step"]), float(row[key]))
        for row in metrics
        if isinstance(row.get(key), int | float) and isinstance(row.get("step"), int | float)
    ]


def curves_svg(metrics: list[dict], total_steps: float) -> str | None:
    """Train loss, eval loss (left axis) and reward accuracy (right axis, 0-1) by step, the
    x axis up to `total_steps`; None while no row has any of them."""
    series = [
        (key, label, color, right, _points(metrics, key)) for key, label, color, right in SERIES
    ]
    series = [s for s in series if s[4]]
    if not series:
        return None
    steps = [x for *_, points in series for x, _ in points]
    x_high = max(max(steps), total_steps, 1.0)
    losses = [y for *_, right, points in series if not right for _, y in points] or [0.0, 1.0]
    low, high = min(losses), max(losses)
    pad = max((high - low) * 0.1, 0.02)
    low, high = (max(low - pad, 0.0) if low >= 0 else low - pad), high + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(step: float) -> float:
        return LEFT + step / x_high * plot_w

    def y(value: float, right: bool) -> float:
        share = value if right else (value - low) / (high - low)
        return TOP + (1 - share) * plot_h

    base = HEIGHT - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        'role="img" aria-label="Training loss by step" id="train-plot-svg" '
        'style="font-family: ui-sans-serif, system-ui, sans-serif; font-size: 13px">'
    ]
    for tick in nice_ticks(low, high):
        ty = y(tick, False)
        parts.append(
            f'<line x1="{LEFT}" y1="{ty:.1f}" x2="{WIDTH - RIGHT}" y2="{ty:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{LEFT - 8}" y="{ty + 4:.1f}" text-anchor="end" fill="#6b7280">'
            f"{tick:.3g}</text>"
        )
    for tick in (t for t in nice_ticks(0, x_high) if float(t).is_integer()):
        tx = x(tick)
        parts.append(
            f'<line x1="{tx:.1f}" y1="{base}" x2="{tx:.1f}" y2="{base + 5}" stroke="#9ca3af"/>'
            f'<text x="{tx:.1f}" y="{base + 19}" text-anchor="middle" fill="#6b7280">'
            f"{tick:g}</text>"
        )
    parts.append(
        f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" stroke="#9ca3af"/>'
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle" '
        'fill="#374151">step</text>'
        f'<text transform="translate(16 {TOP + plot_h / 2:.0f}) rotate(-90)" '
        'text-anchor="middle" fill="#374151">loss</text>'
    )
    if any(right for *_, right, _ in series):
        for share in (0, 0.5, 1):
            parts.append(
                f'<text x="{WIDTH - RIGHT + 8}" y="{y(share, True) + 4:.1f}" fill="#16a34a">'
                f"{share:.0%}</text>"
            )
    legend_x = LEFT
    for key, label, color, right, points in series:
        last = points[-1][1]
        shown = f"{last:.0%}" if right else f"{last:.3f}"
        dash = ' stroke-dasharray="6 4"' if key == "eval_loss" else ""
        coords = " ".join(f"{x(px):.1f},{y(py, right):.1f}" for px, py in points)
        dots = "".join(
            f'<circle cx="{x(px):.1f}" cy="{y(py, right):.1f}" r="{4 if len(points) < 40 else 2}" '
            f'fill="{color}"><title>step {px:g}: {html.escape(label)} {py:.4g}</title></circle>'
            for px, py in points
        )
        parts.append(
            f'<g class="train-series" data-series="{html.escape(key)}" '
            f'data-points="{len(points)}">'
            f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"{dash}/>'
            f"{dots}</g>"
            f'<line x1="{legend_x}" y1="16" x2="{legend_x + 22}" y2="16" stroke="{color}" '
            f'stroke-width="3"{dash}/>'
            f'<text x="{legend_x + 28}" y="20" fill="#111827">{html.escape(label)} '
            f'<tspan fill="#6b7280">{shown}</tspan></text>'
        )
        legend_x += 60 + 8 * (len(label) + len(shown))
    parts.append("</svg>")
    return "".join(parts)
