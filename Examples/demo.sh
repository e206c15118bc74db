#!/usr/bin/env bash
# The demo behind `make demo`: with a private paintsd, colorizes the sample line art from its colour scribbles and
# makes undo-step previews of the finished picture. Usage: demo.sh BIN_DIR OUT_DIR
set -euo pipefail
bin=${1:-.build/release}
out=${2:-out/demo}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
PAINTSCTL="$bin/paintsctl" "$root/scripts/with-daemon.sh" "$bin" "$root/Examples/colorize.sh" "$root/Examples/art" "$out"
echo
echo "Demo output in $out/:"
ls -1 "$out" | sed 's/^/  /'
