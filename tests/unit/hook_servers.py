"""Webhook receivers for tests: real HTTP servers on 127.0.0.1, each on its own threads.

``HookServer`` records every POST and answers through a function; ``DripServer`` reads the
request and then sends its response one byte at a time, forever (until stopped), the way a
slow or hostile receiver can hold a sender that only has per-read timeouts.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Hit:
    """One POST as the receiver got it."""

    headers: dict[str, str]
    body: bytes
    at_s: float  # time.monotonic() when it arrived
    status: int = 0  # what the server answered

    @property
    def document(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def event_id(self) -> str:
        return str(self.document["id"])


Answer = Callable[[Hit], int]  # the status code for a hit


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a sender that gave up and hung up is expected in these tests


class HookServer:
    """Records every POST; ``answer`` picks the status (204 by default)."""

    def __init__(self, answer: Answer = lambda hit: 204, port: int = 0) -> None:
        self.answer = answer
        self.hits: list[Hit] = []
        self.arrived = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hit = Hit({k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                status = hit.status = outer.answer(hit)
                with outer.arrived:
                    outer.hits.append(hit)
                    outer.arrived.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Quiet(("127.0.0.1", port), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?token=hunter2"

    def event_ids(self, status: int | None = None) -> list[str]:
        """Event ids in the order they arrived (only those answered ``status``, if given)."""
        with self.arrived:
            return [hit.event_id for hit in self.hits if status in (None, hit.status)]

    def wait_for(self, count: int, timeout_s: float) -> bool:
        """True once ``count`` hits arrived; False after ``timeout_s`` real seconds."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.hits) >= count, timeout_s)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class DripServer:
    """Accepts, reads the request head, then sends ``HTTP/1.1 200 OK...`` one byte every
    ``every_s`` until :meth:`close`; counts the connections it had and how long each lasted."""

    def __init__(self, every_s: float = 0.1) -> None:
        self._every_s = every_s
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.connections = 0
        self.durations_s: list[float] = []  # of the connections the sender ended
        self._lock = threading.Lock()
        self._clock = time.monotonic
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/hook"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        began = self._clock()
        response = b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"a" * 100_000
        with conn:
            conn.settimeout(1.0)
            try:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                for byte in response:
                    if self._stop.wait(self._every_s):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:  # the sender hung up: record how long it stayed
                with self._lock:
                    self.durations_s.append(self._clock() - began)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
