"""Webhook receivers for the soak, on 127.0.0.1: one path per soak tenant.

``steady`` answers 204 at once. ``outage`` answers 503 while ``down`` is set (a receiver being
redeployed). ``slow`` drip-feeds its answer one byte every half second while ``slow`` is set,
never finishing within the sender's attempt deadline (a receiver stuck on a slow disk); then it
answers at once. Every event delivered with a 2xx is recorded by tenant and event id.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TENANTS = ("steady", "outage", "slow")
DRIP_S = 0.5  # one byte of the answer per this many seconds while slow
DRIP_BYTES = 60  # at most this many bytes dripped, then the connection is dropped


class Receivers:
    def __init__(self) -> None:
        self.down = threading.Event()
        self.slow = threading.Event()
        self.delivered: dict[str, set[str]] = defaultdict(set)
        self.refused: dict[str, int] = defaultdict(int)
        self.dripped = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Receivers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, tenant: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/{tenant}"

    def delivered_ids(self) -> set[str]:
        with self._lock:
            return set().union(*self.delivered.values()) if self.delivered else set()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receivers = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                tenant = self.path.strip("/")
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if tenant == "outage" and receivers.down.is_set():
                    with receivers._lock:
                        receivers.refused[tenant] += 1
                    self.send_response(503)
                    self.end_headers()
                    return
                if tenant == "slow" and receivers.slow.is_set():
                    with receivers._lock:
                        receivers.dripped += 1
                    answer = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
                    self.close_connection = True
                    try:
                        for byte in answer[:DRIP_BYTES]:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(DRIP_S)  # the drip itself, not synchronisation
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the sender gave up at its attempt deadline, as it should
                    return
                event_id = json.loads(body)["id"]
                with receivers._lock:
                    receivers.delivered[tenant].add(event_id)
                self.send_response(204)
                self.end_headers()

        return Handler
