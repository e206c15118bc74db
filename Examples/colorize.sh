#!/usr/bin/env bash
# Shell example: drive a running paintsd with paintsctl. Usage: colorize.sh ART_DIR OUT_DIR
# Needs a daemon (start one with `paintsd`); honours $PAINTSD_ENDPOINT and $PAINTSCTL.
set -euo pipefail
ctl=${PAINTSCTL:-paintsctl}
art=${1:-Examples/art}
out=${2:-out/examples}
mkdir -p "$out"
"$ctl" hello
for name in umbrella blocks; do
    # The flat-colour layer (goes under the line art in a painting app) and a preview with the lines drawn over it.
    "$ctl" colorize --sketch "$art/$name-lineart.png" --hints "$art/$name-hints.png" --out "$out/$name-flat.png" --seed 1
    "$ctl" colorize --sketch "$art/$name-lineart.png" --hints "$art/$name-hints.png" --out "$out/$name-colorized.png" \
        --option composite_lines=true --seed 1
done
# No scribbles, colours taken from a reference picture's palette.
"$ctl" colorize --sketch "$art/blocks-lineart.png" --reference "$art/umbrella-colored.png" \
    --out "$out/blocks-from-reference.png" --option composite_lines=true
# Undo-step previews of a finished picture: the keyframes Paints-UNDO's app shows (the default), run by the paints-undo
# engine when its model is installed, else by the built-in simulator (the reply names which); then the same as a
# timelapse from a blank canvas to the finished picture.
"$ctl" undo --image "$art/umbrella-colored.png" --out-dir "$out/umbrella-undo"
"$ctl" undo --image "$art/umbrella-colored.png" --sequence --out-dir "$out/umbrella-timelapse"
# Prompt tags of a picture, with the optional wd-tagger engine; without its model, one line on what it would add.
tagger=$("$ctl" hello | grep "^  engine wd-tagger " || true)
case "$tagger" in
    *"[unavailable]"*)
        models=$(sed -n 's/.* in \(\/[^)]*\))$/\1/p' <<<"$tagger")
        echo "tag: skipped: a WD v3 tagger (optional) would print the picture's Danbooru tags and prompt paints-undo;" \
            "put wd-vit-tagger-v3/ (config.json, model.safetensors, selected_tags.csv) in ${models:-the models directory}" ;;
    "") ;;
    *) "$ctl" tag --image "$art/umbrella-colored.png" ;;
esac
"$ctl" jobs
