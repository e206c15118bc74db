#!/usr/bin/env bash
# The GIMP plug-in inside real GIMP 2.10 (batch mode, private profile) against a real paintsd. GIMP exits 0 even when a
# Script-Fu call fails, so every case is checked on the files it wrote and on GIMP's log.
# Usage: Tests/bridges/gimp.sh BIN_DIR. Prints a closing "gimp: N passed, N failed" line.
set -uo pipefail
bin=${1:-.build/debug}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/paintsd-gimp.XXXXXX)
trap 'rm -rf "$work"' EXIT
export GIMP2_DIRECTORY="$work/profile"
mkdir -p "$GIMP2_DIRECTORY"/{brushes,gradients,patterns,palettes,plug-ins,scripts}
make -s -C "$root/Bridges/gimp" install >"$work/build.log" 2>&1 || { cat "$work/build.log"; echo "gimp: 0 passed, 1 failed"; exit 1; }
art="$root/Examples/art"
check="$root/Tests/bridges/pngcheck.py"
passed=0 failed=0
result() {  # result NAME COMMAND...
    local name=$1; shift
    if "$@" >>"$work/checks.log" 2>&1; then passed=$((passed + 1)); echo "ok   gimp-$name"
    else failed=$((failed + 1)); echo "FAIL gimp-$name"; sed 's/^/     /' "$work/gimp.log" | tail -20; tail -3 "$work/checks.log"; fi
}
gimp_batch() {  # gimp_batch EXPR...: runs GIMP headless with each expression, then quits; log in $work/gimp.log
    local args=()
    for expr in "$@"; do args+=(-b "$expr"); done
    timeout 300 gimp -i -d -f "${args[@]}" -b '(gimp-quit 0)' >"$work/gimp.log" 2>&1
}
no_errors() { ! grep -q "execution error" "$work/gimp.log"; }

# 1-2. Colorize and undo preview against a real daemon.
"$root/scripts/with-daemon.sh" "$bin" bash -c "$(declare -f gimp_batch); work='$work'; gimp_batch \
    '(script-fu-paintsd-colorize-file \"$art/umbrella-lineart.png\" \"$art/umbrella-hints.png\" \"$work/colorized.png\" \"\" \"\" 3)' \
    '(script-fu-paintsd-undo-preview-file \"$art/blocks-colored.png\" \"999,500\" \"$work/undo\" \"\" 5)'"
result batch-ran-without-errors no_errors
result colorize-layer-size python3 "$check" size "$work/colorized.png" 512 512
result colorize-colours-in-regions python3 "$check" colors "$work/colorized.png" "$art/umbrella-colored.png" 0.9
result undo-frames-written python3 "$check" size "$work/undo-999.png" 512 448
result undo-frames-differ python3 "$check" differ "$work/undo-999.png" "$work/undo-500.png"

# 3. No daemon: a clear error in GIMP's log, and GIMP goes on with the next command.
PAINTSD_ENDPOINT="ipc://$work/no-daemon.sock" gimp_batch \
    "(script-fu-paintsd-colorize-file \"$art/umbrella-lineart.png\" \"\" \"$work/never.png\" \"\" \"\" -1)" \
    "(let ((image (car (gimp-file-load RUN-NONINTERACTIVE \"$art/blocks-lineart.png\" \"x\")))) (file-png-save-defaults RUN-NONINTERACTIVE image (car (gimp-image-get-active-layer image)) \"$work/after.png\" \"x\"))"
result no-daemon-clear-error grep -q "start one with \`paintsd\`" "$work/gimp.log"
result no-daemon-no-output test ! -e "$work/never.png"
result no-daemon-gimp-still-works python3 "$check" size "$work/after.png" 512 448
echo "gimp: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
