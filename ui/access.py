"""Who is using the page: their API key, the name they rate under, and what the key may do.

Every tab calls the gateway through `Access.client(key)` with the rater's own key, so the
gateway's auth decides; the page only hides controls a user key could not use anyway.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import gradio as gr
import openai

from ui.client import GatewayClient, GatewayError

ROLE_NOTES = {
    "admin": "admin key: every control is available",
    "user": "user key: chat, rate and vote (adapter changes and exports need an admin key)",
    "invalid": "⚠ this API key is unknown or revoked",
    "unknown": "⚠ could not check this key against the gateway",
}


def error_text(exc: Exception) -> str:
    """The gateway's own words for what went wrong, whichever client raised it."""
    if isinstance(exc, openai.AuthenticationError):
        return "this gateway requires an API key: enter yours under “Access” at the top"
    if isinstance(exc, openai.APIStatusError):
        try:
            return exc.response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            return str(exc)
    if isinstance(exc, GatewayError) and exc.status == 401:
        return f"{exc} (enter your API key under “Access” at the top)"
    return str(exc)


@dataclass
class Access:
    """The page-wide inputs every tab passes to its callbacks."""

    api_base: str
    api_key: gr.Textbox
    rater: gr.Textbox

    def client(self, api_key: str | None) -> GatewayClient:
        """One client per key (a key that is empty means the keyless local mode)."""
        return _client(self.api_base, (api_key or "").strip() or "local")

    def role(self, api_key: str | None) -> str:
        try:
            return self.client(api_key).role()
        except Exception:
            return "unknown"


@functools.lru_cache(maxsize=64)
def _client(api_base: str, api_key: str) -> GatewayClient:
    return GatewayClient(api_base, api_key=api_key)


def rater_name(rater: str | None) -> str | None:
    """The name judgements are stored under; none given: the gateway uses the API key."""
    return (rater or "").strip() or None


def build_access(api_base: str) -> Access:
    with gr.Accordion("Access", open=False, elem_id="access"):
        with gr.Row():
            api_key = gr.Textbox(
                label="API key",
                type="password",
                placeholder="only when the gateway requires keys",
                elem_id="api-key",
            )
            rater = gr.Textbox(
                label="Your name (stored with your ratings and votes)",
                placeholder="e.g. alice (with an API key: leave empty, the key names you)",
                elem_id="rater",
            )
    return Access(api_base, api_key, rater)
