"""A fake Telegram Bot API server for tests: real HTTP on 127.0.0.1, the Bot API's wire format,
so python-telegram-bot's real `Bot` talks to it through `base_url`. Never used outside tests.

    from tests.fakes.telegram_api import FakeTelegramAPI, TOKEN

    with FakeTelegramAPI() as tg:                       # starts on a free port; stops on exit
        monkeypatch.setenv("SIMPUL_TELEGRAM_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("SIMPUL_TELEGRAM_BASE_URL", tg.base_url)
        ...                                             # hub code sends; then:
        tg.sent_messages()                              # accepted: [SentMessage(chat_id=555001, text=...)]
        tg.texts_to(555001)                             # ["Laporan ...", ...]
        tg.wait_for("sendMessage", count=1, timeout=5)  # block until the worker sent it

Routes: /bot<token>/{getMe, sendMessage, getFile, getUpdates, setWebhook, deleteWebhook} and
/file/bot<token>/<file_path>. A wrong token is 401, an unknown method 404, as Telegram does.

- `calls(method=None)` -> every request as `Call(method, params)` (params JSON-decoded where the
  Bot API sends JSON: chat_id, offset, allowed_updates, ...; text stays a string).
- `fail(method, status=429, retry_after=7, times=1)` -> the next `times` calls of `method` fail:
  429 carries `parameters.retry_after`; 403 "bot was blocked by the user"; 400 "chat not found";
  500 "Internal Server Error"; `delay_s=` holds the answer first (status=200 with delay_s only
  delays a normal answer: provokes client time-outs).
- `add_file(file_id, content, file_path=None)` -> getFile/download serve it.
- `push_update(update_dict, ...)` -> returned by getUpdates (honours offset; long-polls up to
  `timeout`, at most `max_poll_s`).
"""
from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

TOKEN = "123456789:AAFakeTokenForSimpulTestsOnly_abcdefghij"
BOT_ID = 123456789
_RAW_KEYS = {"text", "caption", "url", "secret_token", "file_id", "parse_mode"}
_ERRORS = {
    400: "Bad Request: chat not found",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class SentMessage:
    chat_id: int | str
    text: str


@dataclass
class _Failure:
    status: int
    retry_after: int | None
    description: str | None
    delay_s: float
    times: int


def _decode(key: str, value: str) -> Any:
    if key in _RAW_KEYS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


class FakeTelegramAPI:
    """See the module docstring. Thread-safe; one instance per test."""

    def __init__(self, token: str = TOKEN, username: str = "simpul_test_bot", max_poll_s: float = 2.0):
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.username = username
        self.max_poll_s = max_poll_s
        self.webhook: dict[str, Any] | None = None
        self._calls: list[Call] = []
        self._updates: list[dict[str, Any]] = []
        self._files: dict[str, tuple[str, bytes]] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._message_id = 0
        self._sent: list[SentMessage] = []
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> "FakeTelegramAPI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def setup(self) -> None:
                super().setup()  # no Nagle: headers and body go out at once, no 40 ms stalls
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-telegram", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            with self._cond:
                self._cond.notify_all()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeTelegramAPI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The server root: give it to settings.telegram_base_url."""
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- test controls -----------------------------------------------------------------------
    def fail(self, method: str, status: int = 500, *, retry_after: int | None = None, times: int = 1,
             description: str | None = None, delay_s: float = 0.0) -> None:
        if status == 429 and retry_after is None:
            retry_after = 7
        with self._cond:
            self._failures.setdefault(method, []).append(_Failure(status, retry_after, description, delay_s, times))

    def add_file(self, file_id: str, content: bytes, file_path: str | None = None) -> str:
        path = file_path or f"photos/{file_id}.jpg"
        with self._cond:
            self._files[file_id] = (path, content)
        return path

    def push_update(self, *updates: dict[str, Any]) -> None:
        with self._cond:
            self._updates.extend(updates)
            self._cond.notify_all()

    def calls(self, method: str | None = None) -> list[Call]:
        with self._cond:
            return [c for c in self._calls if method is None or c.method == method]

    def sent_messages(self) -> list[SentMessage]:
        """Messages the fake accepted (failed sendMessage calls are only in `calls`)."""
        with self._cond:
            return list(self._sent)

    def texts_to(self, chat_id: int | str) -> list[str]:
        return [m.text for m in self.sent_messages() if str(m.chat_id) == str(chat_id)]

    def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        """Block until at least `count` calls of `method` arrived; AssertionError on time-out."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [c for c in self._calls if c.method == method]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"fake Telegram got {len(got)} {method} call(s), expected {count}")
                self._cond.wait(left)

    # -- the Bot API -------------------------------------------------------------------------
    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(req.path)
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        path = unquote(parts.path)
        if path.startswith("/file/bot"):
            token, _, file_path = path[len("/file/bot"):].partition("/")
            if token != self.token:
                return self._reply(req, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            for fpath, content in list(self._files.values()):
                if fpath == file_path:
                    return self._send(req, 200, content, "application/octet-stream")
            return self._reply(req, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
        if not path.startswith("/bot"):
            return self._reply(req, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
        token, _, method = path[len("/bot"):].partition("/")
        if token != self.token:
            return self._reply(req, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        params = self._params(req, parts.query, body)
        with self._cond:
            self._calls.append(Call(method, params))
            self._cond.notify_all()
            failure = self._take_failure(method)
        if failure is not None and failure.delay_s:
            time.sleep(failure.delay_s)  # the client may have given up by now
        if failure is not None and failure.status != 200:
            desc = failure.description or _ERRORS.get(failure.status, "Error").format(
                retry_after=failure.retry_after)
            answer: dict[str, Any] = {"ok": False, "error_code": failure.status, "description": desc}
            if failure.status == 429:
                answer["parameters"] = {"retry_after": failure.retry_after}
            return self._reply(req, failure.status, answer)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return self._reply(req, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
        status, result = handler(params)
        if status != 200:
            return self._reply(req, status, {"ok": False, "error_code": status, "description": result})
        return self._reply(req, 200, {"ok": True, "result": result})

    def _take_failure(self, method: str) -> _Failure | None:
        queue = self._failures.get(method) or []
        if not queue:
            return None
        f = queue[0]
        f.times -= 1
        if f.times <= 0:
            queue.pop(0)
        return f

    @staticmethod
    def _params(req: BaseHTTPRequestHandler, query: str, body: bytes) -> dict[str, Any]:
        pairs = parse_qsl(query, keep_blank_values=True)
        ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/json" and body:
            data = json.loads(body)
            return {**{k: _decode(k, v) for k, v in pairs}, **data}
        if ctype == "application/x-www-form-urlencoded":
            pairs += parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        elif ctype == "multipart/form-data":
            raise NotImplementedError("file uploads are not faked")
        return {k: _decode(k, v) for k, v in pairs}

    @staticmethod
    def _send(req: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str) -> None:
        req.send_response(status)
        req.send_header("Content-Type", ctype)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        try:
            req.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass

    def _reply(self, req: BaseHTTPRequestHandler, status: int, data: dict[str, Any]) -> None:
        self._send(req, status, json.dumps(data).encode(), "application/json")

    def _api_getMe(self, params: dict[str, Any]) -> tuple[int, Any]:
        return 200, {"id": self.bot_id, "is_bot": True, "first_name": "Simpul Trenggalek",
                     "username": self.username, "can_join_groups": False,
                     "can_read_all_group_messages": False, "supports_inline_queries": False}

    def _api_sendMessage(self, params: dict[str, Any]) -> tuple[int, Any]:
        if "chat_id" not in params or not params.get("text"):
            return 400, "Bad Request: message text is empty" if "chat_id" in params else "Bad Request: chat_id is empty"
        with self._cond:
            self._message_id += 1
            mid = self._message_id
            self._sent.append(SentMessage(params["chat_id"], params["text"]))
        return 200, {"message_id": mid, "date": int(time.time()),
                     "chat": {"id": params["chat_id"], "type": "private"},
                     "from": {"id": self.bot_id, "is_bot": True, "first_name": "Simpul Trenggalek"},
                     "text": params["text"]}

    def _api_getFile(self, params: dict[str, Any]) -> tuple[int, Any]:
        fid = params.get("file_id")
        with self._cond:
            found = self._files.get(fid)
        if found is None:
            return 400, "Bad Request: invalid file_id"
        path, content = found
        return 200, {"file_id": fid, "file_unique_id": f"u{abs(hash(fid)) % 10**8}", "file_size": len(content),
                     "file_path": path}

    def _api_getUpdates(self, params: dict[str, Any]) -> tuple[int, Any]:
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), self.max_poll_s)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if offset:  # confirming: everything below offset is forgotten, as Telegram does
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                if self._updates or time.monotonic() >= deadline or self._server is None:
                    return 200, list(self._updates[:100])
                self._cond.wait(max(0.0, deadline - time.monotonic()))

    def _api_setWebhook(self, params: dict[str, Any]) -> tuple[int, Any]:
        url = params.get("url", "")
        if url and not url.startswith("https://"):
            return 400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
        self.webhook = dict(params) if url else None
        return 200, True

    def _api_deleteWebhook(self, params: dict[str, Any]) -> tuple[int, Any]:
        self.webhook = None
        return 200, True
