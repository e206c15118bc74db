#!/usr/bin/env bash
# The GIMP plug-in inside real GIMP 2.10 (batch mode, private profile) against a real paintsd. GIMP exits 0 even when a
# Script-Fu call fails, so every case is checked on the files it wrote and on GIMP's log.
# Usage: Tests/bridges/gimp.sh BIN_DIR. Prints a closing "gimp: N passed, N failed" line.
set -uo pipefail
bin=${1:-.build/debug}
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/scripts/checks.sh" gimp
check_context="$work/gimp.log"
export GIMP2_DIRECTORY="$work/profile"
mkdir -p "$GIMP2_DIRECTORY"/{brushes,gradients,patterns,palettes,plug-ins,scripts}
make -s -C "$root/Bridges/gimp" install >"$work/build.log" 2>&1 || { cat "$work/build.log"; echo "gimp: 0 passed, 1 failed"; exit 1; }
art="$root/Examples/art"
pngcheck="$root/Tests/bridges/pngcheck.py"
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
check batch-ran-without-errors no_errors
check colorize-layer-size python3 "$pngcheck" size "$work/colorized.png" 512 512
check colorize-colours-in-regions python3 "$pngcheck" colors "$work/colorized.png" "$art/umbrella-colored.png" 0.9
check undo-frames-written python3 "$pngcheck" size "$work/undo-999.png" 512 448
check undo-frames-differ python3 "$pngcheck" differ "$work/undo-999.png" "$work/undo-500.png"

# 3. No daemon: a clear error in GIMP's log, and GIMP goes on with the next command.
PAINTSD_ENDPOINT="ipc://$work/no-daemon.sock" gimp_batch \
    "(script-fu-paintsd-colorize-file \"$art/umbrella-lineart.png\" \"\" \"$work/never.png\" \"\" \"\" -1)" \
    "(let ((image (car (gimp-file-load RUN-NONINTERACTIVE \"$art/blocks-lineart.png\" \"x\")))) (file-png-save-defaults RUN-NONINTERACTIVE image (car (gimp-image-get-active-layer image)) \"$work/after.png\" \"x\"))"
check no-daemon-clear-error grep -q "start one with \`paintsd\`" "$work/gimp.log"
check no-daemon-no-output test ! -e "$work/never.png"
check no-daemon-gimp-still-works python3 "$pngcheck" size "$work/after.png" 512 448
finish
