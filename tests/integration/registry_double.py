"""A TEST DOUBLE of a Confluent-compatible schema registry: the few REST
endpoints dmpflow and confluent_kafka's Avro serializer use, in memory.

Why a double: the issue asks for Karapace from PyPI, else Apicurio Registry
from Maven Central. Karapace is not published on PyPI (`pip install
karapace`: no matching distribution), and Apicurio Registry publishes no
runnable application artifact on Maven Central (io.apicurio:
apicurio-registry-app is not there; it ships as container images, and this
machine has no container engine). See README.md.

Endpoints: POST /subjects/{s}/versions (register; the same schema text gets
the same id), POST /subjects/{s} (look up), GET /schemas/ids/{id},
GET /subjects/{s}/versions/latest. `down = True` answers 503 to everything;
`lookups_down = True` answers 503 to GET /schemas/ids/... only (registration
still works), to test how dmpflow waits for the registry.

Options: `tls=(certfile, keyfile)` serves HTTPS; `basic_auth=(user, password)`
answers 401 to requests without those credentials."""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


class RegistryDouble:
    def __init__(self, tls: tuple[str, str] | None = None,
                 basic_auth: tuple[str, str] | None = None) -> None:
        self.schemas: dict[int, str] = {}
        self.ids_by_text: dict[str, int] = {}
        self.subjects: dict[str, list[int]] = {}
        self.down = False
        self.lookups_down = False
        self.requests: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                path = urlparse(self.path).path
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}") if n else {}
                if basic_auth and self.headers.get("Authorization") != want_auth:
                    status, answer = 401, {"error_code": 401, "message": "Unauthorized"}
                else:
                    status, answer = double._route(method, path, body)
                with double.lock:
                    double.requests.append((method, path, status))
                self._send(status, answer)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        want_auth = ("Basic " + base64.b64encode(":".join(basic_auth).encode()).decode()
                     if basic_auth else None)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _route(self, method: str, path: str, body: dict) -> tuple[int, dict]:
        if self.down or (self.lookups_down and path.startswith("/schemas/ids/")):
            return 503, {"error_code": 50301, "message": "down (test double)"}
        with self.lock:
            if m := re.fullmatch(r"/schemas/ids/(\d+)", path):
                sid = int(m.group(1))
                if sid not in self.schemas:
                    return 404, {"error_code": 40403, "message": f"Schema {sid} not found"}
                return 200, {"schema": self.schemas[sid]}
            if (m := re.fullmatch(r"/subjects/([^/]+)/versions", path)) and method == "POST":
                text = body["schema"]
                key = json.dumps(json.loads(text), sort_keys=True)
                sid = self.ids_by_text.setdefault(key, len(self.ids_by_text) + 1)
                self.schemas[sid] = text
                versions = self.subjects.setdefault(unquote(m.group(1)), [])
                if sid not in versions:
                    versions.append(sid)
                return 200, {"id": sid}
            if (m := re.fullmatch(r"/subjects/([^/]+)", path)) and method == "POST":
                key = json.dumps(json.loads(body["schema"]), sort_keys=True)
                subject = unquote(m.group(1))
                sid = self.ids_by_text.get(key)
                if sid is None or sid not in self.subjects.get(subject, []):
                    return 404, {"error_code": 40403, "message": "Schema not found"}
                return 200, {"subject": subject, "id": sid, "schema": self.schemas[sid],
                             "version": self.subjects[subject].index(sid) + 1}
            if (m := re.fullmatch(r"/subjects/([^/]+)/versions/latest", path)):
                versions = self.subjects.get(unquote(m.group(1)))
                if not versions:
                    return 404, {"error_code": 40401, "message": "Subject not found"}
                sid = versions[-1]
                return 200, {"subject": unquote(m.group(1)), "id": sid, "version": len(versions),
                             "schema": self.schemas[sid]}
        return 404, {"error_code": 404, "message": f"no route {method} {path} (test double)"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
