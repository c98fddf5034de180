"""A local stand-in for a webhook receiver and Telegram's Bot API: a threaded ``http.server`` that records every
request, answers with the statuses it is told to (then 200), verifies the HMAC signature like a receiver would,
and keeps the message ids it has accepted (a receiver's dedupe)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    signature_ok: bool | None  # None: no secret configured / no signature header

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class StandIn:
    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret
        self.received: list[Received] = []
        self.accepted_ids: dict[str, int] = {}  # message id -> times it was accepted after dedupe (always 1)
        self.statuses: list[int] = []  # the next answers' statuses, then 200
        self.retry_after = 7  # what a 429 asks to wait (Telegram's body, no header)
        self.hold = threading.Event()  # set: requests wait for ``release`` (a channel that does not answer)
        self.release = threading.Event()
        self.waiting = threading.Event()  # a request is waiting on ``release``
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> StandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        if self.hold.is_set():
            self.waiting.set()
            self.release.wait(30)
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else 200
            signature = headers.get("X-Klinepipe-Signature")
            ok = None
            if self.secret is not None and signature is not None:
                expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(expected, signature)
            self.received.append(Received(path, headers, body, status, ok))
            message_id = headers.get("X-Klinepipe-Message-Id")
            if status == 200 and message_id is not None and message_id not in self.accepted_ids:
                self.accepted_ids[message_id] = 1  # a repeat of an id seen before is acknowledged, not kept again
        return status

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = standin._answer(self.path, dict(self.headers), body)
                doc = {"ok": status == 200, "result": {"message_id": len(standin.received)}}
                if status == 429:  # Telegram's shape: parameters.retry_after (seconds)
                    doc = {"ok": False, "error_code": 429, "parameters": {"retry_after": standin.retry_after}}
                answer = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):  # quiet
                pass

        return Handler
