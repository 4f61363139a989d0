#!/usr/bin/env python3
"""Scriptable HTTP/1.1 receiver for graph-bridge tests (Python 3 standard library only).

Start:  python3 http_receiver.py [--record PATH] [--port 0] [--tls-cert PEM --tls-key PEM]
        [--default-status 200] [--verbose]

It binds 127.0.0.1 (port 0 = any free port) and prints `PORT <n>` as its first stdout line,
then serves until SIGTERM/SIGINT. Keep-alive is on (HTTP/1.1); every request is answered on
the connection it came on unless a route says otherwise.

Recording: each request (control endpoints excepted) is kept in memory and, with --record,
appended to PATH as one JSON line *before* it is answered:
    {"seq": 1, "time": 1700000000.1, "connection": 3, "peer_port": 51234, "method": "POST",
     "path": "/hook?x=1", "headers": [["Host", "127.0.0.1:8080"], ...], "body_b64": "..."}
`connection` numbers TCP connections from 1, so a client's connection reuse is visible.
Every answer carries `X-Receiver-Connection: <n>` and `X-Receiver-Seq: <seq>`.

Routes (the path decides; query parameters refine; unknown paths get --default-status):
    /echo                     200, JSON {method, path, headers, body_b64, connection, peer_port, seq}
    /status/<code>            answers <code>
    /slow/<ms>                sleeps <ms> ms, then 200 "slept"
    /bytes/<n>                200 with n bytes, byte i = i % 251; ?chunked=1 sends it chunked
    /fail-first/<N>/<rest>    503 to the first N requests for this exact path, then answers as
                              /<rest> would (200 "ok" if <rest> is empty)
    /reset                    closes the connection with a TCP reset, no answer
    /close                    closes the connection cleanly (FIN), no answer
    /garbage                  writes bytes that are not HTTP, then closes
  Query parameters on any route:
    retryAfter=<v>            adds `Retry-After: <v>` (delta-seconds or an HTTP-date)
    header=<Name>:<Value>     adds a response header (repeatable)
    body=<text>               the response body (for /status and the default route)
    delay_ms=<ms>             sleeps before answering

Control endpoints (under /_control/, never recorded):
    GET  /_control/requests[?path=<prefix>]           JSON list of recorded requests
    GET  /_control/await?count=N[&path=<prefix>][&timeout_ms=10000]
                              blocks until N requests matching the prefix were recorded:
                              200 {"count": n}, or 504 when the timeout passes first
    POST /_control/script     body {"path": "/hook", "responses": [{"status": 500,
                              "headers": {"Retry-After": "1"}, "body": "text", "delay_ms": 0,
                              "action": "reset"|"close"|"garbage"}, ...]}: the next requests to
                              exactly that path (query ignored) take these answers in order,
                              then routing resumes
    POST /_control/clear      forgets recorded requests, scripts and fail-first counters
"""

import argparse
import base64
import itertools
import json
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class State:
    """Everything shared between handler threads, behind one condition variable."""

    def __init__(self, record_path, default_status):
        self.cond = threading.Condition()
        self.records = []
        self.scripts = {}
        self.fail_counts = {}
        self.seq = itertools.count(1)
        self.connections = itertools.count(1)
        self.default_status = default_status
        self.record_file = open(record_path, "a", encoding="utf-8") if record_path else None

    def record(self, entry):
        with self.cond:
            entry["seq"] = next(self.seq)
            self.records.append(entry)
            if self.record_file:
                self.record_file.write(json.dumps(entry) + "\n")
                self.record_file.flush()
            self.cond.notify_all()
        return entry["seq"]

    def matching(self, prefix):
        return [r for r in self.records if r["path"].startswith(prefix)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "http-receiver"
    timeout = 300  # idle keep-alive connections are dropped after this many seconds
    state: State = None
    verbose = False

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            # Handshake here, in this connection's thread, not in the accept loop.
            self.request.settimeout(self.timeout)
            self.request.do_handshake()
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.state.cond:
            self.connection_id = next(self.state.connections)

    def __getattr__(self, name):
        # Any method (GET, POST, PATCH, PROPFIND, ...) goes to one dispatcher.
        if name.startswith("do_"):
            return self.dispatch
        raise AttributeError(name)

    def log_message(self, format, *args):
        if self.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), format % args))

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, BrokenPipeError, socket.timeout, ssl.SSLError, OSError):
            self.close_connection = True

    # -- request reading ---------------------------------------------------------------

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # -- dispatch ----------------------------------------------------------------------

    def dispatch(self):
        body = self.read_body()
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        if url.path.startswith("/_control/"):
            return self.control(url.path, query, body)

        entry = {
            "time": time.time(),
            "connection": self.connection_id,
            "peer_port": self.client_address[1],
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_b64": base64.b64encode(body).decode("ascii"),
        }
        seq = self.state.record(entry)
        entry = dict(entry, seq=seq)

        with self.state.cond:
            queue = self.state.scripts.get(url.path)
            scripted = queue.pop(0) if queue else None
        if scripted is not None:
            return self.scripted(scripted, seq)

        delay = query.get("delay_ms", [None])[0]
        if delay:
            time.sleep(int(delay) / 1000)
        self.route(url.path, query, entry, seq)

    def route(self, path, query, entry, seq):
        parts = [p for p in path.split("/") if p]
        head = parts[0] if parts else ""
        extra = self.query_headers(query)
        text = query.get("body", [None])[0]

        if head == "echo":
            echo = {k: entry[k] for k in ("method", "path", "headers", "body_b64", "connection", "peer_port", "seq")}
            return self.answer(200, json.dumps(echo).encode(), seq, extra, "application/json")
        if head == "status" and len(parts) >= 2:
            return self.answer(int(parts[1]), (text or "").encode(), seq, extra)
        if head == "slow" and len(parts) >= 2:
            time.sleep(int(parts[1]) / 1000)
            return self.answer(200, b"slept", seq, extra)
        if head == "bytes" and len(parts) >= 2:
            data = bytes(i % 251 for i in range(int(parts[1])))
            return self.answer(200, data, seq, extra, chunked=query.get("chunked", ["0"])[0] == "1")
        if head == "fail-first" and len(parts) >= 2:
            with self.state.cond:
                seen = self.state.fail_counts.get(path, 0)
                self.state.fail_counts[path] = seen + 1
            if seen < int(parts[1]):
                return self.answer(503, b"failing on purpose", seq, extra)
            return self.route("/" + "/".join(parts[2:]), query, entry, seq)
        if head in ("reset", "close", "garbage"):
            return self.abort(head)
        return self.answer(self.state.default_status, (text if text is not None else "ok\n").encode(), seq, extra)

    def scripted(self, spec, seq):
        if spec.get("delay_ms"):
            time.sleep(spec["delay_ms"] / 1000)
        if spec.get("action"):
            return self.abort(spec["action"])
        headers = spec.get("headers") or {}
        pairs = list(headers.items()) if isinstance(headers, dict) else [tuple(h) for h in headers]
        if "body_b64" in spec:
            body = base64.b64decode(spec["body_b64"])
        else:
            body = spec.get("body", "").encode()
        self.answer(int(spec.get("status", 200)), body, seq, pairs)

    # -- control -----------------------------------------------------------------------

    def control(self, path, query, body):
        prefix = query.get("path", [""])[0]
        if path == "/_control/requests":
            with self.state.cond:
                found = self.state.matching(prefix)
            return self.answer(200, json.dumps(found).encode(), None, [], "application/json")
        if path == "/_control/await":
            count = int(query.get("count", ["1"])[0])
            deadline = time.monotonic() + int(query.get("timeout_ms", ["10000"])[0]) / 1000
            with self.state.cond:
                while len(self.state.matching(prefix)) < count:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self.state.cond.wait(left)
                seen = len(self.state.matching(prefix))
            status = 200 if seen >= count else 504
            return self.answer(status, json.dumps({"count": seen}).encode(), None, [], "application/json")
        if path == "/_control/script" and self.command == "POST":
            spec = json.loads(body or b"{}")
            with self.state.cond:
                self.state.scripts.setdefault(spec["path"], []).extend(spec.get("responses", []))
            return self.answer(200, b"{}", None, [], "application/json")
        if path == "/_control/clear" and self.command == "POST":
            with self.state.cond:
                self.state.records.clear()
                self.state.scripts.clear()
                self.state.fail_counts.clear()
            return self.answer(200, b"{}", None, [], "application/json")
        return self.answer(404, b"unknown control endpoint", None, [])

    # -- answering ---------------------------------------------------------------------

    @staticmethod
    def query_headers(query):
        pairs = []
        for value in query.get("retryAfter", []):
            pairs.append(("Retry-After", value))
        for item in query.get("header", []):
            name, _, value = item.partition(":")
            pairs.append((name.strip(), value.strip()))
        return pairs

    def answer(self, status, body, seq, headers, content_type="text/plain", chunked=False):
        lines = ["HTTP/1.1 %d %s" % (status, self.responses.get(status, ("Status",))[0])]
        lines.append("Server: " + self.server_version)
        lines.append("X-Receiver-Connection: %d" % self.connection_id)
        if seq is not None:
            lines.append("X-Receiver-Seq: %d" % seq)
        if not any(name.lower() == "content-type" for name, _ in headers):
            lines.append("Content-Type: " + content_type)
        lines.extend("%s: %s" % (name, value) for name, value in headers)
        send_body = self.command != "HEAD" and not (100 <= status < 200 or status in (204, 304))
        if chunked:
            lines.append("Transfer-Encoding: chunked")
            payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 4096]), body[i:i + 4096])
                               for i in range(0, len(body), 4096)) + b"0\r\n\r\n"
        else:
            lines.append("Content-Length: %d" % len(body))
            payload = body
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        # One write: a separate small body write would meet Nagle and delayed ACKs on loopback.
        self.wfile.write(head + payload if send_body else head)
        self.log_request(status, len(body))

    def abort(self, how):
        self.close_connection = True
        try:
            if how == "garbage":
                self.wfile.write(b"SSH-2.0-not-http\r\n\x00\x01\x02 this is not HTTP\r\n")
            elif how == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if Handler.verbose:
            super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", help="append one JSON line per request to this file")
    parser.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain)")
    parser.add_argument("--tls-key", help="private key for --tls-cert")
    parser.add_argument("--default-status", type=int, default=200)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    Handler.state = State(args.record, args.default_status)
    Handler.verbose = args.verbose
    server = Server((args.host, args.port), Handler)
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)

    # A parent may start us with signals blocked (Foundation's Process spawning from a dispatch
    # thread does): unblock them so SIGTERM and SIGINT work.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == "__main__":
    main()
