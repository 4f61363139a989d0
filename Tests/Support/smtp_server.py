#!/usr/bin/python3
"""Scriptable SMTP server for graph-bridge tests, on aiosmtpd (Debian: python3-aiosmtpd).

Start:  /usr/bin/python3 smtp_server.py --record PATH [--starttls CERT KEY | --implicit-tls CERT KEY]
        [--no-starttls] [--auth USER:PASS] [--reply STAGE:CODE[:TEXT]] [--reply-times N]
        [--drop-in-data]

It binds 127.0.0.1 on a free port and prints `PORT <n>` as its first stdout line, then serves
until killed. Every event below is appended to PATH as one JSON line and flushed *before* the
server answers the command, so a client that got its reply can read the record at once.

    {"kind": "mail", "address": "a@b", "tls": false, "authenticated": false}
        a MAIL FROM command, as it arrived (before any scripted reply)
    {"kind": "message", "seq": 1, "mail_from": "a@b", "rcpt_tos": ["c@d"], "tls": true,
     "authenticated": true, "auth_user": "user", "data_b64": "...", "parsed": {...}}
        a message the server accepted; data_b64 is the DATA content after dot-unstuffing, with
        the final CRLF.CRLF removed. "parsed" is what Python's email package (policy.default)
        reads from it:
          {"headers": [[name, decoded value], ...], "raw_headers": [[name, raw value], ...],
           "content_type": "multipart/alternative", "defects": ["..."],
           "parts": [{"content_type": "text/plain", "charset": "utf-8", "cte":
                      "quoted-printable", "content": "decoded text"}, ...],
           "max_line_length": 76, "bare_lf": false}
          (max_line_length counts bytes per line without CRLF; bare_lf says whether some LF
          came without a CR before it)

Options:
    --starttls CERT KEY     offer STARTTLS and require it before MAIL (require_starttls)
    --implicit-tls CERT KEY TLS from the first byte (smtps)
    --no-starttls           never offer STARTTLS (even when --starttls is given)
    --auth USER:PASS        offer AUTH PLAIN and LOGIN and require it before MAIL; only after
                            STARTTLS with --starttls, at once otherwise (also in clear)
    --reply STAGE:CODE[:TEXT]
                            answer STAGE (rcpt or data) with CODE (e.g. rcpt:450, data:554)
    --reply-times N         only the first N times, then accept (default: always)
    --drop-in-data          after DATA's 354 and the first line of content, close the
                            connection without a reply (nothing is recorded)
    --silent                accept connections and never say anything (client timeouts)
"""

import argparse
import asyncio
import base64
import email
import email.policy
import json
import os
import ssl
import sys
import threading

try:
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
except ImportError:
    sys.stderr.write("smtp_server.py needs aiosmtpd: apt-get install python3-aiosmtpd (and run it with /usr/bin/python3)\n")
    sys.exit(3)


class Recorder:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.seq = 0

    def write(self, record):
        with self.lock:
            if record.get("kind") == "message":
                self.seq += 1
                record["seq"] = self.seq
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
                handle.flush()
                os.fsync(handle.fileno())


def parse_message(data):
    message = email.message_from_bytes(data, policy=email.policy.default)
    parsed = {
        "headers": [[name, str(value)] for name, value in message.items()],
        "raw_headers": [],
        "content_type": message.get_content_type(),
        "defects": [repr(d) for d in message.defects],
        "parts": [],
    }
    compat = email.message_from_bytes(data, policy=email.policy.compat32)
    parsed["raw_headers"] = [[name, value] for name, value in compat.items()]
    parts = list(message.iter_parts()) if message.is_multipart() else [message]
    for part in parts:
        entry = {
            "content_type": part.get_content_type(),
            "charset": part.get_content_charset(),
            "cte": part.get("Content-Transfer-Encoding"),
            "defects": [repr(d) for d in part.defects],
        }
        payload = part.get_payload(decode=True)
        entry["content"] = payload.decode(part.get_content_charset() or "ascii") if payload is not None else None
        parsed["parts"].append(entry)
    lines = data.split(b"\r\n")
    parsed["max_line_length"] = max(len(line) for line in lines) if lines else 0
    parsed["bare_lf"] = any(b"\n" in line for line in lines)
    return parsed


class Handler:
    def __init__(self, recorder, reply_stage, reply, reply_times, implicit_tls):
        self.recorder = recorder
        self.implicit_tls = implicit_tls
        self.reply_stage = reply_stage
        self.reply = reply
        self.reply_times = reply_times

    def in_tls(self, session):
        # aiosmtpd sets session.ssl after STARTTLS only; an smtps listener is TLS throughout.
        return self.implicit_tls or session.ssl is not None

    def scripted(self, stage):
        if self.reply_stage != stage:
            return None
        if self.reply_times is not None:
            if self.reply_times <= 0:
                return None
            self.reply_times -= 1
        return self.reply

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.recorder.write({
            "kind": "mail", "address": address, "tls": self.in_tls(session),
            "authenticated": bool(session.authenticated),
        })
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        scripted = self.scripted("rcpt")
        if scripted:
            return scripted
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        scripted = self.scripted("data")
        if scripted:
            return scripted
        data = envelope.original_content
        record = {
            "kind": "message",
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "tls": self.in_tls(session),
            "authenticated": bool(session.authenticated),
            "auth_user": session.auth_data if isinstance(session.auth_data, str) else None,
            "data_b64": base64.b64encode(data).decode("ascii"),
        }
        try:
            record["parsed"] = parse_message(data)
        except Exception as error:  # the test sees the parse failure instead of a hang
            record["parsed"] = {"error": repr(error)}
        self.recorder.write(record)
        return "250 2.0.0 OK: queued as TEST%d" % self.recorder.seq


class Authenticator:
    def __init__(self, user, password):
        self.user = user
        self.password = password

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if user == self.user and password == self.password:
                return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)


def make_context(cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", required=True)
    parser.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--implicit-tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--no-starttls", action="store_true")
    parser.add_argument("--auth")
    parser.add_argument("--reply")
    parser.add_argument("--reply-times", type=int)
    parser.add_argument("--drop-in-data", action="store_true")
    parser.add_argument("--silent", action="store_true")
    args = parser.parse_args()

    reply_stage = reply = None
    if args.reply:
        pieces = args.reply.split(":", 2)
        reply_stage = pieces[0].lower()
        if reply_stage not in ("rcpt", "data") or len(pieces) < 2:
            parser.error("--reply takes rcpt:CODE or data:CODE")
        reply = "%s %s" % (pieces[1], pieces[2] if len(pieces) > 2 else "Scripted reply from the test server")

    recorder = Recorder(args.record)
    starttls = make_context(*args.starttls) if args.starttls and not args.no_starttls else None
    implicit = make_context(*args.implicit_tls) if args.implicit_tls else None
    handler = Handler(recorder, reply_stage, reply, args.reply_times, implicit is not None)
    authenticator = None
    if args.auth:
        user, _, password = args.auth.partition(":")
        authenticator = Authenticator(user, password)
    drop_in_data = args.drop_in_data

    class ScriptedSMTP(SMTP):
        async def smtp_DATA(self, arg):
            if drop_in_data and self.envelope.rcpt_tos:
                await self.push("354 End data with <CR><LF>.<CR><LF>")
                await self._reader.readuntil(b"\r\n")
                self.transport.close()
                return
            return await super().smtp_DATA(arg)

    class Silent(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport  # kept open, never written to

    def factory():
        if args.silent:
            return Silent()
        return ScriptedSMTP(
            handler,
            hostname="graph-bridge-test.local",
            tls_context=starttls,
            require_starttls=starttls is not None,
            authenticator=authenticator,
            auth_required=authenticator is not None,
            # aiosmtpd knows only STARTTLS as TLS: on an smtps listener it must not insist.
            auth_require_tls=starttls is not None,
            timeout=30,
        )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(factory, host="127.0.0.1", port=0, ssl=implicit))
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write("PORT %d\n" % port)
    sys.stdout.flush()
    loop.run_forever()


if __name__ == "__main__":
    main()
