"""The Leaderboard tab: Bradley–Terry ratings from arena votes, with 95 % intervals.

Refreshed when the tab is opened, after every arena vote, and by its button.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ui.access import Access, error_text
from ui.rating_plot import rating_svg

HEADERS = ["Rank", "Model", "Status", "Rating", "95 % CI", "Battles", "Win rate"]


@dataclass
class LeaderboardTab:
    refresh: tuple  # (fn, inputs, outputs)


def leaderboard_rows(rows: list[dict]) -> list[list]:
    return [
        [
            r["rank"],
            r["model"],
            r["status"],
            round(r["rating"]),
            f"{r['ci_low']:.0f} – {r['ci_high']:.0f}",
            r["battles"],
            f"{r['win_rate']:.0%}",
        ]
        for r in rows
    ]


def build_leaderboard_tab(access: Access) -> LeaderboardTab:
    def refresh(api_key):
        try:
            board = access.client(api_key).leaderboard()
        except Exception as exc:
            return gr.update(), gr.update(), f"⚠ {error_text(exc)}"
        rows = board["data"]
        summary = (
            f"**{board['battles']}** voted battles · {len(rows)} models · ratings on the "
            "base model's scale (base = 1000), intervals from bootstrap resampling"
        )
        return rating_svg(rows), leaderboard_rows(rows), summary

    with gr.Row(equal_height=True):
        summary = gr.Markdown(elem_id="leaderboard-summary")
        button = gr.Button(
            "↻ Refresh", elem_id="leaderboard-refresh", size="sm", scale=0, min_width=110
        )
    plot = gr.HTML(rating_svg([]), elem_id="leaderboard-plot", js_on_load=None)
    table = gr.Dataframe(
        headers=HEADERS,
        datatype=["number", "str", "str", "number", "str", "number", "str"],
        interactive=False,
        elem_id="leaderboard-table",
        wrap=True,
    )
    outputs = [plot, table, summary]
    button.click(refresh, [access.api_key], outputs)
    return LeaderboardTab(refresh=(refresh, [access.api_key], outputs))
