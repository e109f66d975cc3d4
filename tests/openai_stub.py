"""A scripted OpenAI-compatible server on 127.0.0.1 for the tests of the Cooking Agent and the judge.

Both talk to it through the real ``openai`` client, so requests, retries and errors go
through the same code as against a real server.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    """Answers POST /v1/chat/completions from ``script``; the last entry repeats.

    Entries: ``("content", text)`` a 200 reply whose message is ``text``;
    ``("status", code, body, headers)`` an error reply; ``("sleep", seconds)`` a reply
    that comes too late for the client's timeout.
    """

    def __init__(self) -> None:
        self.script: list[tuple] = []
        self.requests: list[dict[str, Any]] = []  # {"path", "headers", "body"} of every request
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.requests.append(
                        {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                    )
                    entry = fake.script.pop(0) if len(fake.script) > 1 else fake.script[0]
                if self.path != "/v1/chat/completions":
                    return self._reply(404, {"error": {"message": f"no route {self.path}"}})
                if entry[0] == "sleep":
                    time.sleep(entry[1])
                    entry = ("content", "{}")
                if entry[0] == "content":
                    return self._reply(200, completion(body["model"], entry[1]))
                _, code, error_body, headers = entry
                return self._reply(code, error_body, headers)

            def _reply(self, code: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            def log_message(self, *args: Any) -> None:  # keep the test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(model: str, content: str) -> dict:
    """A minimal chat.completion response body."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
