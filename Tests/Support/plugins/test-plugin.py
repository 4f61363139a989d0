#!/usr/bin/env python3
"""A scriptable exec plugin for the ExecSink tests: each event's data.subject says what to do.

Subjects (words separated by spaces):
    ok                  answer ok
    retry TEXT          answer retry with error TEXT
    drop TEXT           answer drop with error TEXT
    hang                never answer this event
    hold [STATUS [TEXT]] answer nothing yet; `release N` answers every held event with its
                        STATUS (default ok) and TEXT, newest first (out of order), once N are
                        held, then answers itself ok
    crash CODE          exit with CODE at once, answering nothing
    report WHAT         answer retry with error = cwd | env:NAME | fds | signals | count:ID
                        (count:ID = how many times an event with that id arrived)
    stderr TEXT         write TEXT on stderr, then answer ok
    flood LINES BYTES   write LINES lines of BYTES bytes on stderr plus one line of 1 MiB,
                        then answer ok
    garbage             write a non-JSON line and an answer for an unknown id, then answer ok
    badstatus           answer status "maybe"
Options:
    --exit-after N      exit with status 3 after reading N events (without answering the Nth)
    --ignore-eof        keep running after stdin closes (until a signal)
    --trap-term         on SIGTERM write "got SIGTERM" on stderr and exit 0
    --ignore-term       ignore SIGTERM
Writes "test-plugin ready" on stderr once it reads stdin.
"""

import json
import os
import signal
import sys
import time

args = sys.argv[1:]
exit_after = int(args[args.index("--exit-after") + 1]) if "--exit-after" in args else None
if "--trap-term" in args:
    def on_term(signum, frame):
        sys.stderr.write("got SIGTERM\n")
        sys.stderr.flush()
        os._exit(0)
    signal.signal(signal.SIGTERM, on_term)
if "--ignore-term" in args:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

out = sys.stdout
held = []
release = None  # (event id, how many held events it waits for)
seen = {}


def answer(event_id, status, error=None):
    reply = {"id": event_id, "status": status}
    if error is not None:
        reply["error"] = error
    out.write(json.dumps(reply) + "\n")
    out.flush()


def report(what, event_id):
    if what == "cwd":
        return os.getcwd()
    if what.startswith("env:"):
        return os.environ.get(what[4:], "<unset>")
    if what == "fds":
        return ",".join(sorted(os.listdir("/proc/self/fd"), key=int))
    if what == "signals":
        fields = {}
        with open("/proc/self/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        return "blocked={} ignored={}".format(fields["SigBlk"], fields["SigIgn"])
    if what.startswith("count:"):
        return str(seen.get(what[6:], 0))
    return "?"


sys.stderr.write("test-plugin ready\n")
sys.stderr.flush()
count = 0
while True:
    line = sys.stdin.readline()
    if not line:
        break
    event = json.loads(line)
    event_id = event["id"]
    seen[event_id] = seen.get(event_id, 0) + 1
    count += 1
    if exit_after is not None and count >= exit_after:
        sys.exit(3)
    words = (event.get("data") or {}).get("subject", "ok").split(" ", 1)
    command, rest = words[0], (words[1] if len(words) > 1 else "")
    if command == "ok":
        answer(event_id, "ok")
    elif command == "retry":
        answer(event_id, "retry", rest)
    elif command == "drop":
        answer(event_id, "drop", rest)
    elif command == "hang":
        pass
    elif command == "hold":
        parts = rest.split(" ", 1)
        held.append((event_id, parts[0] or "ok", parts[1] if len(parts) > 1 else None))
    elif command == "release":
        release = (event_id, int(rest or "0"))
    elif command == "crash":
        sys.exit(int(rest or "1"))
    elif command == "report":
        answer(event_id, "retry", report(rest, event_id))
    elif command == "stderr":
        sys.stderr.write(rest + "\n")
        sys.stderr.flush()
        answer(event_id, "ok")
    elif command == "flood":
        lines, size = (int(part) for part in rest.split())
        chunk = ("x" * (size - 1) + "\n") * lines
        sys.stderr.write(chunk)
        sys.stderr.write("y" * (1 << 20) + "\n")
        sys.stderr.flush()
        answer(event_id, "ok")
    elif command == "garbage":
        out.write("this is not json\n")
        out.write(json.dumps({"id": "no-such-event", "status": "ok"}) + "\n")
        answer(event_id, "ok")
    elif command == "badstatus":
        out.write(json.dumps({"id": event_id, "status": "maybe"}) + "\n")
        out.flush()
    else:
        answer(event_id, "drop", "unknown test command " + command)
    if release is not None and len(held) >= release[1]:
        for held_id, status, text in reversed(held):
            answer(held_id, status, text)
        held = []
        answer(release[0], "ok")
        release = None

if "--ignore-eof" in args:
    while True:
        time.sleep(0.05)
