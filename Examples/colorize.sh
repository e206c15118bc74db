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
# Stable Diffusion with a line-art ControlNet holding the lines (the sd engine), when a model is installed: the layers a
# painting app places under the line art (color, flats) and the one picture, in umbrella-sd/. Without the files, one
# line on what to install and where.
hello=$("$ctl" hello)
sd=$(grep "^  engine sd " <<<"$hello" || true)
lineart=$(sed -n 's/^    controlnet \([^:]*\): \(lineart\|lineart_anime\|scribble\)$/\1/p' <<<"$hello" | head -n 1)
case "$sd" in
    "") ;;
    *"[unavailable]"*)
        models=$(sed -n 's/.* in \(\/[^)]*\))$/\1/p' <<<"$sd")
        echo "sd: skipped: colouring with Stable Diffusion needs an SD1.5 checkpoint (.safetensors) in ${models:-the models directory}" \
            "and a line-art ControlNet (control_v11p_sd15_lineart.safetensors) in ${models:-the models directory}/controlnet/;" \
            "README.md, 'Colorize Layer with Stable Diffusion', says which files and where" ;;
    *)
        if [ -z "$lineart" ]; then
            echo "sd: no line-art ControlNet installed, so the model will redraw the lines: put control_v11p_sd15_lineart.safetensors" \
                "in the models directory's controlnet/ folder"
        fi
        echo "sd: colouring the umbrella at 512 px, 20 steps (minutes on a 2-core CPU)"
        "$ctl" colorize --engine sd --sketch "$art/umbrella-lineart.png" --hints "$art/umbrella-hints.png" \
            --prompt "an umbrella in the rain, watercolor, best quality" --negative-prompt "lowres, blurry" \
            --out-dir "$out/umbrella-sd" --seed 1 ;;
esac
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
