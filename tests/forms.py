"""Submit a page's real HTML form the way a browser would (Django's test client has no
form support): every field the page renders, with the value it renders."""

from html.parser import HTMLParser
from typing import Any

__all__ = ["form_fields"]


class _FormParser(HTMLParser):
    def __init__(self, form_id: str | None) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._select_multiple = False
        self._select_values: list[str] = []
        self._select_first: str | None = None
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and (self.form_id is None or a.get("id") == self.form_id):
            self.inside = True
        if not self.inside:
            return
        if tag == "input" and a.get("name") and "disabled" not in a:
            kind = a.get("type", "text")
            if kind in {"submit", "button", "file", "image", "reset"}:
                return
            if kind in {"checkbox", "radio"} and "checked" not in a:
                return
            self.fields.append((a["name"], a.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select" and a.get("name"):
            self._select, self._select_multiple = a["name"], "multiple" in a
            self._select_values, self._select_first = [], None
        elif tag == "option" and self._select is not None:
            if self._select_first is None:
                self._select_first = a.get("value", "")
            if "selected" in a:
                self._select_values.append(a.get("value", ""))
        elif tag == "textarea" and a.get("name"):
            self._textarea, self._text = a["name"], []

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.inside:
            self.inside = False
        elif tag == "select" and self._select is not None:
            values = self._select_values
            if not values and not self._select_multiple and self._select_first is not None:
                values = [self._select_first]
            self.fields.extend((self._select, v) for v in values)
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.fields.append((self._textarea, "".join(self._text).lstrip("\n")))
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text.append(data)


def form_fields(html: str, form_id: str | None = None) -> dict[str, Any]:
    """The form's fields as test-client POST data (lists for repeated names)."""
    parser = _FormParser(form_id)
    parser.feed(html)
    data: dict[str, Any] = {}
    for name, value in parser.fields:
        if name in data:
            data[name] = (
                [*data[name], value] if isinstance(data[name], list) else [data[name], value]
            )
        else:
            data[name] = value
    return data
