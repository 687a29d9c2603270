"""Reading a web UI page as a test sees it: texts, attributes, labels, links, cells, forms."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

_VOID = frozenset({"input", "br", "meta", "link", "img", "hr", "area", "source", "wbr"})


class Page(HTMLParser):
    """Texts and attributes by element id, labels, links, cells, forms and controls of a page."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: dict[str, str] = {}  # element id -> its text
        self.attrs: dict[str, dict[str, str]] = {}  # element id -> its attributes
        self.labels: dict[str, str] = {}  # control id -> label text
        self.links: list[tuple[str, str]] = []  # (text, href) of each link
        self.cells: dict[str, str] = {}  # data-feature -> text
        self.forms: list[dict[str, str]] = []  # action and hidden fields of each POST form
        self.controls: dict[str, dict[str, Any]] = {}  # by name, the version selector's aside
        self.by_id: dict[str, dict[str, Any]] = {}  # every control with an id
        self._stack: list[tuple[str, dict[str, str], list[str]]] = []
        self._select: dict[str, Any] | None = None
        self._form = ""
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if "id" in found:
            self.attrs[found["id"]] = found
        if tag == "form":
            self._form = found.get("class", "")
            if found.get("method") == "post":
                self.forms.append({"action": found.get("action", "")})
        if tag == "input" and self.forms and found.get("type") == "hidden" and "name" in found:
            self.forms[-1][found["name"]] = found.get("value", "")
        control: dict[str, Any] | None = None
        if tag == "input" and "name" in found:
            control = {"tag": tag, **found}
        if tag == "select":
            control = self._select = {"tag": tag, **found, "options": []}
        if control is not None:
            self.by_id[found.get("id", "")] = control
            # The version selector is a form of its own, beside the predict form.
            if self._form != "predict-version":
                self.controls[found.get("name", "")] = control
        if tag not in _VOID:
            self._stack.append((tag, found, []))

    def handle_data(self, data: str) -> None:
        for _tag, _attrs, parts in self._stack:
            parts.append(data)

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            name, attrs, parts = self._stack.pop()
            text = " ".join("".join(parts).split())
            if "id" in attrs:
                self.texts[attrs["id"]] = text
            if name == "label" and "for" in attrs:
                self.labels[attrs["for"]] = text
            if name == "a":
                self.links.append((text, attrs.get("href", "")))
            if "data-feature" in attrs:
                self.cells[attrs["data-feature"]] = text
            if name == "option" and self._select is not None:
                value = attrs.get("value", text)
                self._select["options"].append((value, text, "selected" in attrs))
            if name == "select":
                self._select = None
            if name == tag:
                break

    def value(self, name: str) -> str:
        """The value a control would post."""
        control = self.controls[name]
        if control["tag"] == "select":
            chosen = [value for value, _text, selected in control["options"] if selected]
            return chosen[0] if chosen else control["options"][0][0]
        return str(control.get("value", ""))

    def form(self) -> dict[str, str]:
        """Every control's value, as the predict form posts them."""
        return {name: self.value(name) for name in self.controls if name}

    def features(self) -> dict[str, str]:
        """The feature controls' values, by feature name."""
        return {
            name.removeprefix("feature:"): self.value(name)
            for name in self.controls
            if name.startswith("feature:")
        }
