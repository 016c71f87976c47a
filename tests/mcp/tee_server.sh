#!/bin/sh
# tee_server.sh LOG COMMAND...: runs the MCP stdio server COMMAND with every line the client sends
# it appended to LOG on the way, so a test can see what dagent sent (notifications/cancelled).
log="$1"
shift
tee -a "$log" | "$@"
