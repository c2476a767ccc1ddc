"""Model output shown as Markdown whose HTML is text: `<script>` is seen, never run.

Gradio sanitises HTML in Markdown (a `<script>` is dropped, an `onerror` stripped), which keeps
the page safe but hides what the model wrote. Raters judge the text itself, so outside code,
`<` and `&` become entities: every tag shows as typed and Markdown still renders. Inside code
spans and fenced blocks Markdown already shows text verbatim, so those are left alone. Gradio's
own sanitiser stays on behind this, in case a span is read differently by its Markdown parser.
"""

from __future__ import annotations

import re

# An opening fence (``` or ~~~, 3 or more, up to 3 spaces in); its block runs to a closing
# fence of the same character at least as long, or to the end (a fence still streaming).
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)
_BACKTICKS = re.compile(r"`+")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


def _escape_inline(text: str) -> str:
    """Escape outside code spans: a run of N backticks up to the next run of exactly N."""
    out, pos = [], 0
    while (opening := _BACKTICKS.search(text, pos)) is not None:
        ticks = opening.group()
        closing = None
        for candidate in _BACKTICKS.finditer(text, opening.end()):
            if candidate.group() == ticks:
                closing = candidate
                break
        if closing is None:  # an unmatched run is literal backticks
            out.append(_escape(text[pos : opening.end()]))
            pos = opening.end()
            continue
        out.append(_escape(text[pos : opening.start()]))
        out.append(text[opening.start() : closing.end()])
        pos = closing.end()
    out.append(_escape(text[pos:]))
    return "".join(out)


def safe_markdown(text: str) -> str:
    """`text` ready for a Markdown component: HTML shown as typed, code blocks untouched."""
    out, pos = [], 0
    while (fence := _FENCE.search(text, pos)) is not None:
        out.append(_escape_inline(text[pos : fence.start()]))
        marker = fence.group(1)
        closing = re.compile(rf"^ {{0,3}}{marker[0]}{{{len(marker)},}}[ \t]*$", re.MULTILINE)
        line_end = text.find("\n", fence.end())
        end_match = closing.search(text, line_end + 1) if line_end != -1 else None
        end = end_match.end() if end_match else len(text)
        out.append(text[fence.start() : end])
        pos = end
    out.append(_escape_inline(text[pos:]))
    return "".join(out)
