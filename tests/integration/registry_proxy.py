"""A fault-injecting HTTP proxy in front of the REAL schema registry
(Apicurio Registry's Confluent-compatible API, started by
scripts/registry-local; see conftest.py's `registry` fixture).

Every request is forwarded to the registry unchanged and its answer
returned unchanged, except for what a real registry cannot be made to do
on demand:
  - `down = True`: 503 to every request (a registry that is failing);
  - `lookups_down = True`: 503 to GET /schemas/ids/... only (registration
    still works), to test how dmpflow waits for writer schemas;
  - `tls=(certfile, keyfile)`: HTTPS in front of the plain-HTTP registry;
  - `basic_auth=(user, password)`: 401 to requests without those
    credentials;
  - `start=False`: nothing listens on `url` until start() (connection
    refused, as from a registry that is not up yet).
It records (method, path, status) of each request in `requests`, so tests
can see what dmpflow asked for (e.g. each writer schema fetched once).
dmpflow is given the proxy's URL; the tests' own clients use the registry
directly."""

from __future__ import annotations

import base64
import json
import ssl
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from support import free_port


class RegistryProxy:
    def __init__(self, upstream: str, tls: tuple[str, str] | None = None,
                 basic_auth: tuple[str, str] | None = None, start: bool = True) -> None:
        self.upstream = upstream.rstrip("/")
        self.tls = tls
        self.basic_auth = basic_auth
        self.down = False
        self.lookups_down = False
        self.requests: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.server: ThreadingHTTPServer | None = None
        if start:
            self.start()

    def _answer(self, method: str, path: str, headers, body: bytes | None) -> tuple[int, str, bytes]:
        if self.down or (self.lookups_down and path.startswith("/schemas/ids/")):
            return 503, "application/json", json.dumps(
                {"error_code": 50301, "message": "unavailable (injected by registry_proxy.py)"}).encode()
        req = urllib.request.Request(self.upstream + path, data=body, method=method)
        for h in ("Content-Type", "Accept"):
            if headers.get(h):
                req.add_header(h, headers[h])
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.headers.get("Content-Type", "application/json"), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type", "application/json"), e.read()

    def start(self) -> None:
        proxy = self
        want_auth = ("Basic " + base64.b64encode(":".join(self.basic_auth).encode()).decode()
                     if self.basic_auth else None)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                if want_auth and self.headers.get("Authorization") != want_auth:
                    status, ctype, data = 401, "application/json", json.dumps(
                        {"error_code": 401, "message": "Unauthorized"}).encode()
                else:
                    status, ctype, data = proxy._answer(self.command, self.path, self.headers, body)
                with proxy.lock:
                    proxy.requests.append((self.command, self.path, status))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fetched_ids(self) -> list[int]:
        """The schema ids dmpflow fetched successfully, in order."""
        with self.lock:
            return [int(p.rsplit("/", 1)[1]) for m, p, st in self.requests
                    if m == "GET" and st == 200 and p.startswith("/schemas/ids/")]

    def close(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
