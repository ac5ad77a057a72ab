"""The dashboard's HTTP server: the page, its static files and the progress API.

`GET /` the page (static/index.html, with the current progress embedded so that it shows data
before its first poll); `GET /static/NAME` the page's script, style and the vendored uPlot;
`GET /api/v1/progress` one JSON object, `LiveState.progress()` (docs/dashboard.md lists its
fields). Anything else is 404 (and any method but GET and HEAD 501, as http.server answers). Served on a daemon thread for as
long as the command lasts; it reads events' state only and changes nothing.
"""

from __future__ import annotations

import json
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from migrator.engine.live_state import LiveState
from migrator.errors import TerminalError
from migrator.redact import redact_tree

PROGRESS_PATH = "/api/v1/progress"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".LICENSE": "text/plain"}
_INITIAL = "<!--initial-progress-->"


def _static(name: str) -> bytes | None:
    """A file of the package's static/ directory (package data), or None when there is none."""
    if "/" in name or name.startswith("."):
        return None
    path = resources.files(__package__).joinpath("static", name)
    return path.read_bytes() if path.is_file() else None


def _content_type(name: str) -> str:
    suffix = name[name.rfind(".") :] if "." in name else ""
    return _TYPES.get(suffix, "application/octet-stream") + "; charset=utf-8"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, *, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == PROGRESS_PATH:
            body = json.dumps(self.server.progress()).encode()
            self._send(HTTPStatus.OK, "application/json", body, head)
        elif path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, _content_type(".html"), self._page(), head)
        elif path.startswith("/static/") and (data := _static(path.removeprefix("/static/"))) is not None:
            self._send(HTTPStatus.OK, _content_type(path), data, head)
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n", head)

    def _page(self) -> bytes:
        page = (_static("index.html") or b"").decode()
        # `</` cannot close the script element from inside the embedded JSON.
        initial = json.dumps(self.server.progress()).replace("</", "<\\/")
        return page.replace(_INITIAL, initial).encode()

    def _send(self, status: HTTPStatus, content_type: str, body: bytes, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: stderr belongs to the command's own output (and its log lines)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: LiveState, secrets: tuple[str, ...]) -> None:
        self.state = state
        self.secrets = secrets
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def progress(self) -> Any:
        """The state as the API hands it out: redacted as log lines are (a driver's message may
        echo a password), the plan's passwords masked as literals too."""
        return redact_tree(self.state.progress(), self.secrets)


class DashboardServer:
    """Serves `state` at http://ADDR:PORT/ on a daemon thread until `close()`."""

    def __init__(
        self, state: LiveState, port: int, addr: str = "127.0.0.1", secrets: tuple[str, ...] = ()
    ) -> None:
        try:
            self._server = _Server((addr, port), state, secrets)
        except OSError as exc:
            raise TerminalError(
                f"cannot serve the dashboard on {addr}:{port}: {exc.strerror or exc}",
                hint="choose a free port with --http-port, or stop what listens there",
            ) from None
        self.addr = addr
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="dashboard", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> DashboardServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
