#!/usr/bin/env bash
# Runs a command beside a private paintsd: starts BIN_DIR/paintsd on a fresh runtime directory, exports
# PAINTSD_ENDPOINT, runs the command, then stops the daemon. Usage: with-daemon.sh BIN_DIR COMMAND [ARG...]
set -uo pipefail
bin=$1; shift
runtime=$(mktemp -d /tmp/paintsd-run.XXXXXX)
"$bin/paintsd" --runtime-dir "$runtime" --log-level warning >/dev/null &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -rf "$runtime"' EXIT
export PAINTSD_ENDPOINT="ipc://$runtime/paintsd.sock"
for _ in $(seq 200); do [ -S "$runtime/paintsd.sock" ] && break; sleep 0.05; done
[ -S "$runtime/paintsd.sock" ] || { echo "paintsd did not start" >&2; exit 3; }
"$@"
