#!/usr/bin/env python3
"""Headless Chromium driven over its DevTools protocol, for the status page's browser test.

Usage: cdp_browser.py CHROMIUM PROFILE_DIR

Starts `CHROMIUM --headless --remote-debugging-port=0` (loopback only), opens one page, then
reads one JSON command per line on stdin and answers one JSON line on stdout, with the same "id":

    {"id": 1, "op": "navigate", "url": "http://127.0.0.1:PORT/"}     waits for the load event
    {"id": 2, "op": "eval", "expression": "...", "navigates": false}  the value (returnByValue);
                                                                      navigates: wait for the next load
    {"id": 3, "op": "wait", "expression": "...", "timeout": 15}       resolves once the expression
                                                                      is truthy, re-checked on every DOM
                                                                      change (a MutationObserver), no polling
    {"id": 4, "op": "screenshot", "path": "/tmp/x.png"}
    {"id": 5, "op": "errors"}                                         JavaScript exceptions and console errors so far
    {"id": 6, "op": "quit"}

Answers: {"id": N, "ok": true, "value": ...} or {"id": N, "ok": false, "error": "..."}.
Only the standard library: a minimal RFC 6455 WebSocket client over a loopback socket.
"""

import base64
import json
import os
import re
import select
import socket
import struct
import subprocess
import sys
import threading
import urllib.request


class WebSocket:
    def __init__(self, url):
        match = re.match(r"ws://([^:/]+):(\d+)(/.*)", url)
        host, port, path = match.group(1), int(match.group(2)), match.group(3)
        self.sock = socket.create_connection((host, port), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise RuntimeError("the browser closed the DevTools connection during the handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError("DevTools handshake refused: " + head.decode(errors="replace"))
        self.buffer = b""

    def send(self, text):
        payload = text.encode()
        header = bytearray([0x81])
        if len(payload) < 126:
            header.append(0x80 | len(payload))
        elif len(payload) < 65536:
            header.append(0x80 | 126)
            header += struct.pack(">H", len(payload))
        else:
            header.append(0x80 | 127)
            header += struct.pack(">Q", len(payload))
        mask = os.urandom(4)
        header += mask
        self.sock.sendall(bytes(header) + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError("the browser closed the DevTools connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def receive(self):
        message = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if second & 0x80 else None
            data = self._read(length)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            opcode = first & 0x0F
            if opcode == 0x8:
                raise RuntimeError("the browser closed the DevTools connection")
            if opcode == 0x9:  # ping
                continue
            message += data
            if first & 0x80:
                return message.decode()


class Page:
    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.events = []
        self.errors = []

    def call(self, method, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.receive())
            if message.get("id") == my_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error'].get('message')}")
                return message.get("result", {})
            self.note(message)

    def note(self, message):
        method = message.get("method")
        if method == "Runtime.exceptionThrown":
            details = message["params"]["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description") or details.get("text"))
        elif method == "Runtime.consoleAPICalled" and message["params"].get("type") == "error":
            self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in message["params"].get("args", [])))
        if method:
            self.events.append(method)

    def wait_for_event(self, name):
        while name not in self.events:
            self.note(json.loads(self.ws.receive()))
        self.events.remove(name)

    def evaluate(self, expression, await_promise=False):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(details.get("exception", {}).get("description") or details.get("text"))
        return result.get("result", {}).get("value")


WAIT = """new Promise((resolve, reject) => {
  const check = () => { try { const v = (%s); if (v) { resolve(v); return true; } } catch (e) {} return false; };
  if (check()) return;
  const observer = new MutationObserver(() => { if (check()) observer.disconnect(); });
  observer.observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
  setTimeout(() => { observer.disconnect(); reject(new Error('timed out after %d s waiting for: ' + %s)); }, %d);
})"""


def main():
    chromium, profile = sys.argv[1], sys.argv[2]
    browser = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", f"--user-data-dir={profile}",
         "--window-size=1280,1000", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        port = None
        lines = []
        while port is None:
            ready, _, _ = select.select([browser.stderr], [], [], 60)
            line = browser.stderr.readline().decode(errors="replace") if ready else ""
            if not line:
                raise RuntimeError("chromium printed no DevTools address: " + "".join(lines))
            lines.append(line)
            found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if found:
                port = int(found.group(1))
        # Chromium's stderr from here on is drained by a thread, so a chatty browser never blocks on it.
        threading.Thread(target=lambda: [None for _ in browser.stderr], daemon=True).start()
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30))
        target = next(t for t in targets if t.get("type") == "page")
        page = Page(WebSocket(target["webSocketDebuggerUrl"]))
        page.call("Page.enable")
        page.call("Runtime.enable")
        print(json.dumps({"id": 0, "ok": True, "value": "ready"}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            answer = {"id": command.get("id"), "ok": True}
            try:
                op = command["op"]
                if op == "navigate":
                    page.events.clear()
                    result = page.call("Page.navigate", url=command["url"])
                    if result.get("errorText"):
                        raise RuntimeError("navigation failed: " + result["errorText"])
                    page.wait_for_event("Page.loadEventFired")
                elif op == "eval":
                    page.events.clear()
                    answer["value"] = page.evaluate(command["expression"])
                    if command.get("navigates"):
                        page.wait_for_event("Page.loadEventFired")
                elif op == "wait":
                    timeout = int(command.get("timeout", 15))
                    source = command["expression"]
                    answer["value"] = page.evaluate(WAIT % (source, timeout, json.dumps(source), timeout * 1000), await_promise=True)
                elif op == "screenshot":
                    data = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
                    with open(command["path"], "wb") as file:
                        file.write(base64.b64decode(data))
                elif op == "errors":
                    answer["value"] = page.errors
                elif op == "quit":
                    print(json.dumps(answer), flush=True)
                    break
                else:
                    raise RuntimeError("unknown op " + op)
            except Exception as error:  # reported to the test, which fails with it
                answer = {"id": command.get("id"), "ok": False, "error": str(error)}
            print(json.dumps(answer), flush=True)
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()


if __name__ == "__main__":
    try:
        main()
    except Exception as error:
        print(json.dumps({"id": 0, "ok": False, "error": str(error)}), flush=True)
        sys.exit(1)
