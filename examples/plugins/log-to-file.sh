#!/bin/sh
# graph-bridge exec plugin in POSIX sh: appends every event to a file, one JSON line each.
#
#   sinks:
#     archive:
#       type: exec
#       command: [./plugins/log-to-file.sh, /var/log/graph-bridge/events.jsonl]
#
# Protocol (docs/plugins.md): one event per line on stdin, one answer per event on stdout.
# The bridge writes every event line as {"id":"<id>",...: the id comes first and is a
# lowercase UUID, so plain parameter expansion finds it; no jq needed.
# Events are delivered at least once: a redelivered id that this process already wrote is
# answered "ok" without writing it again (remembered until the plugin restarts).

out=${1:-${LOG_FILE:-events.jsonl}}
seen=" "

answer() { # id status [error]
    if [ -n "$3" ]; then
        printf '{"id":"%s","status":"%s","error":"%s"}\n' "$1" "$2" "$3"
    else
        printf '{"id":"%s","status":"%s"}\n' "$1" "$2"
    fi
}

echo "log-to-file: appending events to $out" >&2

while IFS= read -r line; do
    case $line in
        '{"id":"'*) ;;
        *) echo "log-to-file: ignoring a line that is not an event" >&2; continue ;;
    esac
    id=${line#'{"id":"'}
    id=${id%%'"'*}
    case $seen in
        *" $id "*) answer "$id" ok; continue ;;
    esac
    if printf '%s\n' "$line" >>"$out"; then
        answer "$id" ok
        # Remember recent ids; start over past ~1 MB so memory stays small.
        [ ${#seen} -gt 1000000 ] && seen=" "
        seen="$seen$id "
    else
        answer "$id" retry "cannot append to $out"
    fi
done
# stdin closed: the bridge is stopping. Exit 0.
