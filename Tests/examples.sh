#!/usr/bin/env bash
# Runs the example scripts (shell with paintsctl, Python with pyzmq) against a real paintsd and checks their files.
# Usage: Tests/examples.sh BIN_DIR (starts a private daemon unless PAINTSD_ENDPOINT is set). Prints a closing "N passed, N failed" line.
set -uo pipefail
bin=${1:-.build/debug}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${PAINTSD_ENDPOINT:-}" ]; then exec "$root/scripts/with-daemon.sh" "$bin" "$0" "$bin"; fi
check_prefix=""
source "$root/scripts/checks.sh" examples
png_ok() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; }
check shell-example env PAINTSCTL="$bin/paintsctl" "$root/Examples/colorize.sh" "$root/Examples/art" "$work/out"
for f in umbrella-flat umbrella-colorized blocks-flat blocks-colorized blocks-from-reference umbrella-undo/step-999; do
    check "file-$f" png_ok "$work/out/$f.png"
done
check python-example /usr/bin/python3 "$root/Examples/colorize.py" "$root/Examples/art/umbrella-lineart.png" \
    "$root/Examples/art/umbrella-hints.png" "$work/py.png"
check python-output png_ok "$work/py.png"
check python-no-daemon sh -c "/usr/bin/python3 '$root/Examples/colorize.py' a b c ipc://$work/none.sock 2>&1 | grep -q 'start one'"
finish
