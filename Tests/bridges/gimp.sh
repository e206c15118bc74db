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
    '(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE \"$art/umbrella-lineart.png\" \"x\"))) (sketch (car (gimp-image-get-active-layer image))) (hints (car (gimp-file-load-layer RUN-NONINTERACTIVE image \"$art/umbrella-hints.png\")))) (gimp-image-insert-layer image hints 0 -1) (gimp-item-set-name hints \"hints\") (gimp-image-set-active-layer image sketch) (let ((layer (car (plug-in-paintsd-colorize RUN-NONINTERACTIVE image sketch hints -1 \"\" \"\" 3 -1))) (active (car (gimp-image-get-active-layer image)))) (file-png-save-defaults RUN-NONINTERACTIVE image active (string-append \"$work/active-is-line-art-\" (if (= active sketch) \"yes\" \"no\") \".png\") \"x\") (file-png-save-defaults RUN-NONINTERACTIVE image layer (string-append \"$work/builtin-\" (car (gimp-item-get-name layer)) \"-above-\" (number->string (- (car (gimp-image-get-item-position image sketch)) (car (gimp-image-get-item-position image layer)))) \"-\" (if (= (car (gimp-layer-get-mode layer)) LAYER-MODE-MULTIPLY) \"multiply\" \"normal\") \".png\") \"x\")))' \
    '(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE \"$art/blocks-colored.png\" \"x\"))) (picture (car (gimp-image-get-active-layer image))) (group (car (plug-in-paintsd-undo-preview RUN-NONINTERACTIVE image picture \"999,500,950\" 0 \"\" 5))) (children (cadr (gimp-item-get-children group)))) (let loop ((i 0)) (if (< i (vector-length children)) (let ((child (vector-ref children i))) (file-png-save-defaults RUN-NONINTERACTIVE image child (string-append \"$work/frame-\" (number->string i) \"-\" (car (gimp-item-get-name child)) \"-visible-\" (number->string (car (gimp-item-get-visible child))) \".png\") \"x\") (loop (+ i 1))))))'"
check colorize-keeps-line-art-active test -e "$work/active-is-line-art-yes.png"
# The builtin engine's result is one layer, `color`, named with the engine and seed; the sample line art is opaque,
# so it goes right above it in Multiply mode.
check colorize-builtin-layer-named-above-multiply test -e "$work/builtin-color · builtin seed 3-above-1-multiply.png"
check undo-order-nearest-finished-on-top test -e "$work/frame-0-step 500-visible-1.png" -a -e "$work/frame-1-step 950-visible-0.png" \
    -a -e "$work/frame-2-step 999-visible-0.png"

# 2c. A layered result, as the sd engine gives it (`color` shown over `flats` hidden), from a stand-in daemon with a
# canned result (Tests/bridges/fake_daemon.py: there are no sd models here), whose hello describes the sd engine's
# options (enums, assets) and which logs what it is sent. Each image: a white Background and the line art, "lines",
# above it; GIMP's layer stack is then written out top to bottom as files named with each layer's name, visibility
# and mode ("stack-N-NAME-visible-V-MODE.png"), which the checks below look for.
fake="$work/fake.sock"
/usr/bin/python3 "$root/Tests/bridges/fake_daemon.py" "ipc://$fake" "$work/fake.jsonl" &
fake_pid=$!
for _ in $(seq 200); do [ -S "$fake" ] && break; sleep 0.05; done
scheme_defs='(define (paintsd-test-image opaque-lines) (let* ((image (car (gimp-image-new 64 48 RGB))) (background (car (gimp-layer-new image 64 48 RGBA-IMAGE "Background" 100 LAYER-MODE-NORMAL))) (lines (car (gimp-layer-new image 64 48 RGBA-IMAGE "lines" 100 LAYER-MODE-NORMAL)))) (gimp-image-insert-layer image background 0 0) (gimp-context-set-background (list 255 255 255)) (gimp-drawable-fill background FILL-BACKGROUND) (gimp-image-insert-layer image lines 0 0) (gimp-drawable-fill lines (if opaque-lines FILL-BACKGROUND FILL-TRANSPARENT)) (list image lines))) (define (paintsd-save-stack image prefix) (let* ((layers (cadr (gimp-image-get-layers image))) (count (vector-length layers))) (let loop ((i 0)) (if (< i count) (let ((layer (vector-ref layers i))) (file-png-save-defaults RUN-NONINTERACTIVE image layer (string-append prefix "-" (number->string i) "-" (car (gimp-item-get-name layer)) "-visible-" (number->string (car (gimp-item-get-visible layer))) "-" (if (= (car (gimp-layer-get-mode layer)) LAYER-MODE-MULTIPLY) "multiply" "normal") ".png") "x") (loop (+ i 1)))))))'
PAINTSD_ENDPOINT="ipc://$fake" gimp_batch \
    "(begin $scheme_defs (let* ((made (paintsd-test-image #f)) (image (car made)) (lines (cadr made)) (result (plug-in-paintsd-colorize-layers RUN-NONINTERACTIVE image lines -1 -1 \"\" \"sd\" 7 \"{\\\"model\\\": \\\"counterfeit-v3\\\", \\\"steps\\\": 8}\")) (ids (cadr result))) (paintsd-save-stack image \"$work/under\") (file-png-save-defaults RUN-NONINTERACTIVE image lines (string-append \"$work/under-returned-\" (number->string (car result)) \"-\" (if (and (= (vector-ref ids 0) (vector-ref (cadr (gimp-image-get-layers image)) 1)) (= (vector-ref ids 1) (vector-ref (cadr (gimp-image-get-layers image)) 2))) \"top-first\" \"other\") \"-active-\" (if (= (car (gimp-image-get-active-layer image)) lines) \"lines\" \"other\") \".png\") \"x\")))" \
    "(begin $scheme_defs (let* ((made (paintsd-test-image #t)) (image (car made)) (lines (cadr made))) (plug-in-paintsd-colorize-layers RUN-NONINTERACTIVE image lines -1 -1 \"\" \"sd\" 8 \"\") (paintsd-save-stack image \"$work/over\")))" \
    "(begin $scheme_defs (let* ((made (paintsd-test-image #t)) (image (car made)) (lines (cadr made)) (layer (car (plug-in-paintsd-colorize RUN-NONINTERACTIVE image lines -1 -1 \"\" \"sd\" 9 0.4)))) (file-png-save-defaults RUN-NONINTERACTIVE image layer (string-append \"$work/legacy-\" (car (gimp-item-get-name layer)) \".png\") \"x\")))"
cp "$work/gimp.log" "$work/gimp-layers.log"
check layers-batch-no-errors no_errors
# Under transparent line art: color, then flats (hidden), right under it, Normal mode; the IDs come back top first.
check layers-under-line-art-in-order test -e "$work/under-0-lines-visible-1-normal.png" \
    -a -e "$work/under-1-color · sd counterfeit-v3 seed 7-visible-1-normal.png" \
    -a -e "$work/under-2-flats · sd counterfeit-v3 seed 7-visible-0-normal.png" -a -e "$work/under-3-Background-visible-1-normal.png"
check layers-returned-top-first-line-art-active test -e "$work/under-returned-2-top-first-active-lines.png"
check layers-color-pixels python3 "$pngcheck" pixel "$work/under-1-color · sd counterfeit-v3 seed 7-visible-1-normal.png" 0 0 200 40 30 255
check layers-color-transparent-right python3 "$pngcheck" pixel "$work/under-1-color · sd counterfeit-v3 seed 7-visible-1-normal.png" 63 47 0 0 0 0
check layers-flats-pixels python3 "$pngcheck" pixel "$work/under-2-flats · sd counterfeit-v3 seed 7-visible-0-normal.png" 63 47 30 60 220 255
# Over opaque line art: both above it, each in Multiply mode, in the same order.
check layers-above-opaque-line-art-multiply test -e "$work/over-0-color · sd anything-v5 seed 8-visible-1-multiply.png" \
    -a -e "$work/over-1-flats · sd anything-v5 seed 8-visible-0-multiply.png" -a -e "$work/over-2-lines-visible-1-normal.png"
# The options JSON went as the request's options; the older procedure's strength as the engine's hint_strength.
sent_options() {  # sent_options SEED|last JSON: the colorize request with that seed (or the last) had exactly those options
    /usr/bin/python3 - "$work/fake.jsonl" "$1" "$2" <<'PY'
import json, sys
requests = [json.loads(line) for line in open(sys.argv[1]) if '"colorize"' in line]
sent = [r["params"] for r in requests if sys.argv[2] == "last" or r["params"].get("seed") == int(sys.argv[2])]
print(sent)
sys.exit(0 if sent and sent[-1].get("options") == json.loads(sys.argv[3]) and sent[-1].get("engine") == "sd" else 1)
PY
}
check layers-options-sent sent_options 7 '{"model": "counterfeit-v3", "steps": 8}'
check legacy-strength-sent-as-hint-strength sent_options 9 '{"hint_strength": 0.4}'
check legacy-returns-top-layer test -e "$work/legacy-color · sd anything-v5 seed 9.png"
# Options that are not a JSON object: an error that says so, and nothing sent.
PAINTSD_ENDPOINT="ipc://$fake" gimp_batch \
    "(begin $scheme_defs (let* ((made (paintsd-test-image #f))) (plug-in-paintsd-colorize-layers RUN-NONINTERACTIVE (car made) (cadr made) -1 -1 \"\" \"sd\" 11 \"[1]\")))"
bad_options_rc=$?
# GIMP returns from the failed call and quits, rather than hanging until the timeout (124) on a broken reply.
check layers-bad-options-gimp-quits test "$bad_options_rc" -ne 124
check layers-bad-options-no-critical bash -c "! grep -q CRITICAL '$work/gimp.log'"
check layers-bad-options-said grep -q "options: not a JSON object" "$work/gimp.log"
check layers-bad-options-not-sent bash -c "! grep -q '\"seed\": 11' '$work/fake.jsonl'"
# The Script-Fu file procedure: every layer saved, top first, named by the daemon's layer names.
PAINTSD_ENDPOINT="ipc://$fake" gimp_batch \
    "(script-fu-paintsd-colorize-layers-file \"$art/umbrella-lineart.png\" \"$art/umbrella-hints.png\" \"$work/files\" \"\" \"sd\" 12 \"{\\\"palette_lock\\\": 0.8}\")"
check layers-file-procedure test -e "$work/files-0-color.png" -a -e "$work/files-1-flats.png"
check layers-file-procedure-options sent_options 12 '{"palette_lock": 0.8}'

# 2d. The Colorize dialog, built from the stand-in daemon's hello, on a virtual display. A test hook of the plug-in
# ($PAINTSD_GIMP_DIALOG_TEST) writes what the dialog shows and answers OK in place of a click, after setting fields
# from $PAINTSD_GIMP_DIALOG_SET; the ControlNet with a problem cannot be picked.
PAINTSD_ENDPOINT="ipc://$fake" PAINTSD_GIMP_DIALOG_TEST="$work/dialog.json" \
    PAINTSD_GIMP_DIALOG_SET='{"engine": "sd", "model": "counterfeit-v3", "controlnet": "mystery", "hint_strength": 0.5, "steps": 8, "guess_mode": true}' \
    timeout 300 xvfb-run -a gimp -i -d -f \
    -b "(begin $scheme_defs (let* ((made (paintsd-test-image #f)) (image (car made)) (lines (cadr made))) (gimp-image-set-active-layer image lines) (plug-in-paintsd-colorize RUN-INTERACTIVE image lines -1 -1 \"\" \"\" 13 -1) (paintsd-save-stack image \"$work/dialog\")))" \
    -b '(gimp-quit 0)' >"$work/gimp.log" 2>&1
dialog_shows() {
    /usr/bin/python3 - "$work/dialog.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
fields = {f["name"]: f for f in d["fields"]}
print(json.dumps(d, indent=1))
main = [f["name"] for f in d["fields"] if f["section"] == "main"]
assert d["engines"] == ["", "builtin", "sd"], d["engines"]
assert main == ["model", "controlnet", "hint_strength", "control_strength", "palette_lock", "steps"], main
assert sorted(f["name"] for f in d["fields"] if f["section"] == "more") == [
    "control_end", "control_start", "guess_mode", "guidance", "sampler", "size"]
assert fields["model"]["kind"] == "combo" and fields["model"]["choices"] == ["anything-v5", "counterfeit-v3"]
assert "control_v11p_sd15s2_lineart_anime (lineart_anime)" in fields["controlnet"]["labels"]
assert fields["controlnet"]["unusable"] == ["mystery"] and d["refused"] == ["controlnet"]
assert fields["controlnet"]["value"] == "auto"
assert (fields["hint_strength"]["kind"], fields["hint_strength"]["minimum"], fields["hint_strength"]["maximum"]) == ("spin", 0.05, 1)
assert (fields["steps"]["minimum"], fields["steps"]["maximum"]) == (1, 100)
assert fields["guess_mode"]["kind"] == "check" and fields["sampler"]["kind"] == "combo"
assert d["options"] == {"model": "counterfeit-v3", "hint_strength": 0.5, "steps": 8, "guess_mode": True}, d["options"]
PY
}
check dialog-built-from-hello dialog_shows
# The dialog's seed is its own (-1: the daemon's choice, 1234 for the stand-in), not the call's.
check dialog-options-sent sent_options last '{"model": "counterfeit-v3", "hint_strength": 0.5, "steps": 8, "guess_mode": true}'
check dialog-layers-placed test -e "$work/dialog-1-color · sd counterfeit-v3 seed 1234-visible-1-normal.png" \
    -a -e "$work/dialog-2-flats · sd counterfeit-v3 seed 1234-visible-0-normal.png"
kill $fake_pid; wait $fake_pid 2>/dev/null

# 3. No daemon: a clear error in GIMP's log, and GIMP goes on with the next command.
PAINTSD_ENDPOINT="ipc://$work/no-daemon.sock" gimp_batch \
    "(script-fu-paintsd-colorize-file \"$art/umbrella-lineart.png\" \"\" \"$work/never.png\" \"\" \"\" -1)" \
    "(let ((image (car (gimp-file-load RUN-NONINTERACTIVE \"$art/blocks-lineart.png\" \"x\")))) (file-png-save-defaults RUN-NONINTERACTIVE image (car (gimp-image-get-active-layer image)) \"$work/after.png\" \"x\"))"
check no-daemon-clear-error grep -q "start one with \`paintsd\`" "$work/gimp.log"
check no-daemon-no-output test ! -e "$work/never.png"
check no-daemon-gimp-still-works python3 "$pngcheck" size "$work/after.png" 512 448
finish
