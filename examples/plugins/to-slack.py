#!/usr/bin/env python3
"""graph-bridge exec plugin: posts each event to a Slack incoming webhook.

    sinks:
      slack:
        type: exec
        command: [./plugins/to-slack.py]
        environment: { SLACK_WEBHOOK_URL: "${SLACK_WEBHOOK_URL}" }
        timeout: 30s

Protocol (docs/plugins.md): one event per line on stdin; one answer per event on stdout,
{"id": ..., "status": "ok" | "retry" | "drop", "error": ...}. Slack answering 2xx is "ok";
408, 429, 5xx and network errors are "retry"; any other 4xx (a bad URL, a revoked hook) is
"drop". The bridge delivers at least once, so an id already posted is answered "ok" without
posting it again. Standard library only; Python 3.8 or later.
"""

import json
import os
import sys
import urllib.error
import urllib.request
from collections import OrderedDict

WEBHOOK_URL = os.environ.get("SLACK_WEBHOOK_URL", "")
TIMEOUT_SECONDS = float(os.environ.get("SLACK_TIMEOUT_SECONDS", "10"))
REMEMBERED_IDS = 10000


def log(message):
    """stderr goes to the bridge's log, one line per line."""
    print(message, file=sys.stderr, flush=True)


def answer(event_id, status, error=None):
    reply = {"id": event_id, "status": status}
    if error:
        reply["error"] = error
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()  # the bridge waits for this line: never leave it in a buffer


def slack_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message_text(event):
    data = event.get("data") or {}
    sender = (data.get("from") or {}).get("emailAddress") or {}
    who = sender.get("name") or sender.get("address")
    subject = data.get("subject")
    if subject is not None:
        text = "New mail from {}: {}".format(who or "someone", subject)
    elif event.get("lifecycleEvent"):
        text = "Subscription {}: {}".format(event["subscription"]["name"], event["lifecycleEvent"])
    else:
        text = "{} {} ({})".format(
            event["subscription"]["name"], event.get("changeType", "change"), event.get("resource", "?")
        )
    text = slack_escape(text)
    link = data.get("webLink")
    if link:
        text += " <{}|open>".format(slack_escape(link))
    return text


def post(event):
    """Returns (status, error) for the answer."""
    body = json.dumps({"text": message_text(event)}).encode("utf-8")
    request = urllib.request.Request(
        WEBHOOK_URL, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            response.read()
        return "ok", None
    except urllib.error.HTTPError as error:
        reason = "Slack answered {} {}".format(error.code, error.reason)
        if error.code in (408, 429) or error.code >= 500:
            return "retry", reason
        return "drop", reason
    except (urllib.error.URLError, OSError) as error:
        return "retry", "cannot reach Slack: {}".format(getattr(error, "reason", error))


def main():
    if not WEBHOOK_URL:
        log("SLACK_WEBHOOK_URL is not set; set it under the sink's environment:")
        return 2
    posted = OrderedDict()  # ids already posted, oldest first
    for line in sys.stdin:  # ends when the bridge closes stdin: then exit
        try:
            event = json.loads(line)
            event_id = event["id"]
        except (ValueError, KeyError, TypeError):
            log("ignoring a line that is not an event")
            continue
        if event_id in posted:
            answer(event_id, "ok")  # a redelivery: Slack has it already
            continue
        try:
            status, error = post(event)
        except Exception as error:  # a bug here must not kill the plugin: retry, and say why
            status, error = "retry", "plugin error: {!r}".format(error)
        if status == "ok":
            posted[event_id] = True
            if len(posted) > REMEMBERED_IDS:
                posted.popitem(last=False)
        else:
            log("event {}: {}: {}".format(event_id, status, error))
        answer(event_id, status, error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
