#!/usr/bin/env bash
# The GIMP plug-in inside real GIMP 2.10 (batch mode, private profile) against a real paintsd. GIMP exits 0 even when a
# Script-Fu call fails, so every case is checked on the files it wrote and on GIMP's log.
# Usage: Tests/bridges/gimp.sh BIN_DIR. Prints a closing "gimp: N passed, N failed" line.
set -uo pipefail
bin=${1:-.build/debug}
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/scripts/checks.sh" gimp
check_context="$work/gimp.log"
# As a user installs it: `make install-gimp` into an empty home where GIMP never ran, then GIMP on that profile.
export HOME="$work/home"
mkdir -p "$HOME"
unset GIMP2_DIRECTORY XDG_CONFIG_HOME
profile="$HOME/.config/GIMP/2.10"
make -s -C "$root" install-gimp >"$work/build.log" 2>&1 || { cat "$work/build.log"; echo "gimp: 0 passed, 1 failed"; exit 1; }
art="$root/Examples/art"
pngcheck="$root/Tests/bridges/pngcheck.py"
gimp_batch() {  # gimp_batch EXPR...: runs GIMP headless with each expression, then quits; log in $work/gimp.log
    local args=()
    for expr in "$@"; do args+=(-b "$expr"); done
    timeout 300 gimp -i -d -f "${args[@]}" -b '(gimp-quit 0)' >"$work/gimp.log" 2>&1
}
no_errors() { ! grep -q "execution error" "$work/gimp.log"; }
# GIMP logs "Failed to save data ... but this folder does not exist" when its profile lacks its data folders.
no_save_failures() { ! grep -q "Failed to save" "$work/gimp.log"; }

# 0. The profile is GIMP's own, complete, with the plug-in in it; GIMP runs on it without complaint.
check install-plug-in-in-profile test -x "$profile/plug-ins/paintsd-gimp/paintsd-gimp"
check install-profile-complete test -d "$profile/gradients" -a -d "$profile/brushes" -a -d "$profile/tool-presets"
gimp_batch '(gimp-message "first run")'
check first-run-no-save-failures no_save_failures

# 1-2. Colorize and undo preview against a real daemon.
"$root/scripts/with-daemon.sh" "$bin" bash -c "$(declare -f gimp_batch); work='$work'; gimp_batch \
    '(script-fu-paintsd-colorize-file \"$art/umbrella-lineart.png\" \"$art/umbrella-hints.png\" \"$work/colorized.png\" \"\" \"\" 3)' \
    '(script-fu-paintsd-undo-preview-file \"$art/blocks-colored.png\" \"999,500\" \"$work/undo\" \"\" 5)'"
check batch-ran-without-errors no_errors
check batch-no-save-failures no_save_failures
check colorize-layer-size python3 "$pngcheck" size "$work/colorized.png" 512 512
check colorize-colours-in-regions python3 "$pngcheck" colors "$work/colorized.png" "$art/umbrella-colored.png" 0.9
check undo-frames-written python3 "$pngcheck" size "$work/undo-999.png" 512 448
check undo-frames-differ python3 "$pngcheck" differ "$work/undo-999.png" "$work/undo-500.png"

# 2b. After Colorize the line art is still the active layer; an undo preview group has the frame nearest the finished
# picture on top and shown, the others hidden below (the order the Krita plug-in uses too). Script-Fu cannot print,
# so the answers are written into the names of files saved from the layers.
"$root/scripts/with-daemon.sh" "$bin" bash -c "$(declare -f gimp_batch); work='$work'; gimp_batch \
    '(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE \"$art/umbrella-lineart.png\" \"x\"))) (sketch (car (gimp-image-get-active-layer image))) (hints (car (gimp-file-load-layer RUN-NONINTERACTIVE image \"$art/umbrella-hints.png\")))) (gimp-image-insert-layer image hints 0 -1) (gimp-item-set-name hints \"hints\") (gimp-image-set-active-layer image sketch) (plug-in-paintsd-colorize RUN-NONINTERACTIVE image sketch hints -1 \"\" \"\" 3 -1) (let ((active (car (gimp-image-get-active-layer image)))) (file-png-save-defaults RUN-NONINTERACTIVE image active (string-append \"$work/active-is-line-art-\" (if (= active sketch) \"yes\" \"no\") \".png\") \"x\")))' \
    '(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE \"$art/blocks-colored.png\" \"x\"))) (picture (car (gimp-image-get-active-layer image))) (group (car (plug-in-paintsd-undo-preview RUN-NONINTERACTIVE image picture \"999,500,950\" 0 \"\" 5))) (children (cadr (gimp-item-get-children group)))) (let loop ((i 0)) (if (< i (vector-length children)) (let ((child (vector-ref children i))) (file-png-save-defaults RUN-NONINTERACTIVE image child (string-append \"$work/frame-\" (number->string i) \"-\" (car (gimp-item-get-name child)) \"-visible-\" (number->string (car (gimp-item-get-visible child))) \".png\") \"x\") (loop (+ i 1))))))'"
check colorize-keeps-line-art-active test -e "$work/active-is-line-art-yes.png"
check undo-order-nearest-finished-on-top test -e "$work/frame-0-step 500-visible-1.png" -a -e "$work/frame-1-step 950-visible-0.png" \
    -a -e "$work/frame-2-step 999-visible-0.png"

# 3. No daemon: a clear error in GIMP's log, and GIMP goes on with the next command.
PAINTSD_ENDPOINT="ipc://$work/no-daemon.sock" gimp_batch \
    "(script-fu-paintsd-colorize-file \"$art/umbrella-lineart.png\" \"\" \"$work/never.png\" \"\" \"\" -1)" \
    "(let ((image (car (gimp-file-load RUN-NONINTERACTIVE \"$art/blocks-lineart.png\" \"x\")))) (file-png-save-defaults RUN-NONINTERACTIVE image (car (gimp-image-get-active-layer image)) \"$work/after.png\" \"x\"))"
check no-daemon-clear-error grep -q "start one with \`paintsd\`" "$work/gimp.log"
check no-daemon-no-output test ! -e "$work/never.png"
check no-daemon-gimp-still-works python3 "$pngcheck" size "$work/after.png" 512 448
finish
