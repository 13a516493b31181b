"""A parsed HTML page for tests that read what a report renders: its start tags with their attributes, and its text."""

from __future__ import annotations

from html.parser import HTMLParser


class Page(HTMLParser):
    """Start tags in document order as ``(tag, attributes)``, and the text pieces, of the HTML fed to it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def tag_names(self) -> set[str]:
        return {tag for tag, _ in self.tags}

    @property
    def attr_names(self) -> set[str]:
        return {name for _, attrs in self.tags for name in attrs}


def parse_html(html: str) -> Page:
    """``html`` parsed to the end."""
    page = Page()
    page.feed(html)
    page.close()
    return page
