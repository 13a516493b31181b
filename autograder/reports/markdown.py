"""Markdown with LaTeX to self-contained HTML (math as MathML: no script, no network)."""

from __future__ import annotations

import html

import latex2mathml.converter
from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin


def _math(latex: str, display: bool) -> str:
    try:
        return latex2mathml.converter.convert(latex, display="block" if display else "inline")
    except Exception:  # noqa: BLE001 - an unsupported macro is shown as source, never fails the page
        return f"<code class=\"latex\">{html.escape(latex)}</code>"


_MD = MarkdownIt("commonmark", {"html": False}).enable("table").use(
    dollarmath_plugin, double_inline=True, renderer=lambda s, opts: _math(s, bool(opts.get("display_mode")))
)


def render_markdown(text: str) -> str:
    """HTML for ``text``; raw HTML in the input is escaped, not rendered."""
    return _MD.render(text)
