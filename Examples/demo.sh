#!/usr/bin/env bash
# The demo behind `make demo`: starts a private paintsd, colorizes the sample line art from its colour scribbles,
# makes undo-step previews of the finished picture, and stops the daemon. Usage: demo.sh BIN_DIR OUT_DIR
set -euo pipefail
bin=${1:-.build/release}
out=${2:-out/demo}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
runtime=$(mktemp -d /tmp/paintsd-demo.XXXXXX)
"$bin/paintsd" --runtime-dir "$runtime" --log-level warning &
daemon=$!
trap 'kill $daemon 2>/dev/null || true; wait $daemon 2>/dev/null || true; rm -rf "$runtime"' EXIT
export PAINTSD_ENDPOINT="ipc://$runtime/paintsd.sock"
for _ in $(seq 100); do [ -S "$runtime/paintsd.sock" ] && break; sleep 0.05; done
PAINTSCTL="$bin/paintsctl" "$here/colorize.sh" "$here/art" "$out"
"$bin/paintsctl" shutdown >/dev/null
wait $daemon
trap - EXIT
rm -rf "$runtime"
echo
echo "Demo output in $out/:"
ls -1 "$out" | sed 's/^/  /'
