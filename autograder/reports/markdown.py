"""Markdown with LaTeX to self-contained, inert HTML (math as MathML: no script, no network).

Student text is untrusted, so nothing it writes may run or load anything when a
TA opens the page:

* raw HTML is escaped, never rendered (markdown-it with ``html`` off);
* math goes through latex2mathml, whose own serialisation would unescape
  ``\\text{<script>…}`` back into markup: the MathML tree is rebuilt from a
  whitelist of presentation elements and plain-valued attributes (no
  ``href``, no ``style``) and serialised with every text escaped;
* an image is shown only when its source is an inline ``data:image/…`` URI
  (or what ``resolve_image`` turns a local path into); any other image is
  named, not fetched;
* a link keeps its text and shows its address as text: no ``href`` leaves
  the page.

Control characters, escape sequences and bidirectional overrides are shown
escaped (``escape.printable``; newlines, tabs and carriage returns kept).

Bounded, so that a short text cannot make a huge page (a reference link
defined once with a long address and used thousands of times did: 41 kB of
answer, 70 MB of HTML): a text is cut at ``MAX_TEXT_CHARS``; a shown address
at ``MAX_URL_CHARS``; a formula longer than ``MAX_FORMULA_CHARS``, and every
formula of a text with more than ``MAX_FORMULAS``, is shown as its source;
and a page over ``MAX_HTML_CHARS`` falls back to the escaped source text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from contextvars import ContextVar
from xml.etree.ElementTree import Element, tostring

import latex2mathml.converter
from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin

from autograder.escape import printable

#: ``resolve_image(src)`` → a ``data:`` URI to show, or None to name the image only.
ImageResolver = Callable[[str], "str | None"]

MATHML_NS = "http://www.w3.org/1998/Math/MathML"

_MATHML_TAGS = frozenset("""
    math mrow mi mn mo mtext ms mspace msub msup msubsup mfrac msqrt mroot mstyle merror
    mpadded mphantom mfenced menclose munder mover munderover mmultiscripts mprescripts none
    mtable mtr mtd mlabeledtr semantics
""".split())
_MATHML_ATTRIBUTES = frozenset("""
    display mathvariant stretchy fence separator separators open close lspace rspace accent
    accentunder movablelimits columnalign rowalign columnspacing rowspacing columnlines rowlines
    frame framespacing equalrows equalcolumns mathsize minsize maxsize largeop symmetric form
    linethickness displaystyle scriptlevel width height depth voffset notation mathcolor
    mathbackground align columnwidth rowspan columnspan bevelled numalign denomalign side
""".split())
#: Attribute values are lengths, colours, keywords and numbers: no ``url(…)``, no ``javascript:``.
_PLAIN_VALUE = re.compile(r"[\w#.%+\- ]*")
_DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]+")

MAX_TEXT_CHARS = 20_000
MAX_URL_CHARS = 200
MAX_FORMULA_CHARS = 2_000
MAX_FORMULAS = 200
MAX_HTML_CHARS = 512 * 1024
#: Whether the text being rendered may show its formulas as MathML (False: over the formula count).
_MATHML = ContextVar("mathml", default=True)


def _safe_mathml(node: Element) -> Element:
    """A copy of latex2mathml's tree keeping whitelisted elements and attributes, text unescaped once.

    latex2mathml stores entity references (``&#x02211;``) as text and
    unescapes its whole serialised output; here the entities become
    characters and ``tostring`` escapes every text properly.
    """
    tag = node.tag if node.tag in _MATHML_TAGS else "mrow"
    attributes = {
        name: html.unescape(value)
        for name, value in node.attrib.items()
        if name in _MATHML_ATTRIBUTES and _PLAIN_VALUE.fullmatch(html.unescape(value))
    }
    if tag == "math":
        attributes["xmlns"] = MATHML_NS
    out = Element(tag, attributes)
    out.text = html.unescape(node.text) if node.text else None
    for child in node:
        copy = _safe_mathml(child)
        copy.tail = html.unescape(child.tail) if child.tail else None
        out.append(copy)
    return out


def _math(latex: str, display: bool) -> str:
    if not _MATHML.get() or len(latex) > MAX_FORMULA_CHARS:
        return f"<code class=\"latex\">{html.escape(latex)}</code>"
    try:
        tree = latex2mathml.converter.Converter(display="block" if display else "inline").convert_to_element(latex)
        return tostring(_safe_mathml(tree), encoding="unicode")
    except Exception:  # noqa: BLE001 - an unsupported macro is shown as source, never fails the page
        return f"<code class=\"latex\">{html.escape(latex)}</code>"


def _image(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env)
    resolve = env.get("resolve_image")
    shown = src if _DATA_IMAGE.fullmatch(src) else (resolve(src) if resolve else None)
    if shown is not None and _DATA_IMAGE.fullmatch(shown):
        return f'<img src="{html.escape(shown)}" alt="{html.escape(alt)}">'
    where = "an inline image" if src.startswith("data:") else src
    return f'<span class="omitted">[image not shown: {html.escape(alt or "no description")} — {html.escape(where[:200])}]</span>'


def _link_open(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    env.setdefault("links", []).append((str(token.attrGet("href") or ""), token.markup == "autolink"))
    return '<span class="link">'


def _link_close(self, tokens, idx, options, env) -> str:
    href, autolink = env["links"].pop()
    return "</span>" if autolink else f'</span> <span class="url">&lt;{html.escape(href[:MAX_URL_CHARS])}&gt;</span>'


_MD = (
    MarkdownIt("commonmark", {"html": False})
    .enable("table")
    .use(dollarmath_plugin, double_inline=True, allow_labels=False,
         renderer=lambda s, opts: _math(s, bool(opts.get("display_mode"))))
)
_MD.add_render_rule("image", _image)
_MD.add_render_rule("link_open", _link_open)
_MD.add_render_rule("link_close", _link_close)


def _shift_headings(tokens: list, first: int) -> None:
    """A ``#`` heading becomes ``h<first>``, and each deeper one a level below it (at most ``h6``)."""
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1:]) + first - 1, 6)}"


def render_markdown(text: str, resolve_image: ImageResolver | None = None, first_heading: int = 1) -> str:
    """Inert HTML for ``text``: raw HTML escaped, math as sanitised MathML, nothing fetched or linked.

    ``resolve_image`` (for trusted text such as the model answers) may turn an
    image's source into a ``data:image/…;base64,`` URI to embed. ``first_heading``
    is the level of the text's ``#`` headings, so that a page can keep its own
    heading levels out of reach of the text (a student's ``### S-…`` is no code).
    """
    note = ""
    text = printable(text, keep="\n\r\t")  # no raw escape sequence or bidi override reaches the page
    if len(text) > MAX_TEXT_CHARS:
        text, note = text[:MAX_TEXT_CHARS], f'<p class="note">[cut: {len(text) - MAX_TEXT_CHARS} more characters]</p>'
    env = {"resolve_image": resolve_image}
    tokens = _MD.parse(text, env)
    _shift_headings(tokens, first_heading)
    formulas = sum(t.type.startswith("math") for token in tokens for t in (token, *(token.children or ())))
    flag = _MATHML.set(formulas <= MAX_FORMULAS)
    try:
        page = _MD.renderer.render(tokens, _MD.options, env)
    finally:
        _MATHML.reset(flag)
    if len(page) > MAX_HTML_CHARS:
        page = f'<pre class="source">{html.escape(text)}</pre><p class="note">[shown as source: too large rendered]</p>'
    return page + note
