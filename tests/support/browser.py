"""Headless Chromium for the dashboard's tests: load a page, read what it shows.

`chromium()` is Debian's `chromium` (a skip without it, with the command that installs it; a
failure under CI=true). `dump_dom` loads a URL and returns the DOM after the page's scripts ran
for `budget_ms` of virtual time (its polls included); `shown` reads the elements that carry an
id: their attributes and their text.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

from tests.support.servers import unavailable

INSTALL = "apt-get install -y chromium"


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        unavailable(f"headless Chromium is not installed: {INSTALL}")
    return path


def _run(args: list[str], timeout: float = 60) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        out = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def dump_dom(url: str, budget_ms: int = 2500) -> str:
    return _run([f"--virtual-time-budget={budget_ms}", "--dump-dom", url])


def screenshot(url: str, path: Path, width: int = 1280, height: int = 900, budget_ms: int = 2500) -> None:
    _run([f"--virtual-time-budget={budget_ms}", "--hide-scrollbars", f"--window-size={width},{height}",
          f"--screenshot={path}", url])  # fmt: skip


class _ById(HTMLParser):
    VOID = frozenset(
        {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, dict[str, str]] = {}
        self._open: list[tuple[str, str | None]] = []  # (tag, id) of the elements we are inside

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if "id" in values:
            self.found[values["id"]] = {**values, "text": ""}
        if tag not in self.VOID:
            self._open.append((tag, values.get("id")))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, element in self._open:
            if element is not None and element in self.found:
                self.found[element]["text"] += data


def shown(dom: str) -> dict[str, dict[str, str]]:
    """Elements with an id: their attributes and, under "text", the text they hold."""
    parser = _ById()
    parser.feed(dom)
    return parser.found
