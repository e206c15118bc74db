; paintsd Script-Fu procedures: the paintsd plug-in (plug-in-paintsd-colorize, plug-in-paintsd-colorize-layers,
; plug-in-paintsd-undo-preview) on files, for scripts and batch mode, e.g.
;   gimp -i -b '(script-fu-paintsd-colorize-file "lineart.png" "hints.png" "out.png" "" "" -1)' -b '(gimp-quit 0)'
;   gimp -i -b '(script-fu-paintsd-colorize-layers-file "lineart.png" "hints.png" "out" "a girl" "sd" -1
;               "{\"model\": \"anything-v5\", \"hint_strength\": 0.6}")' -b '(gimp-quit 0)'
; Engine options go as one JSON object string (`paintsctl hello --json` lists each engine's options and their values).

(define (paintsd-load-rgb file)
  ; The image of FILE, converted to RGB (the plug-in works on RGB images).
  (let ((image (car (gimp-file-load RUN-NONINTERACTIVE file file))))
    (if (not (= (car (gimp-image-base-type image)) RGB)) (gimp-image-convert-rgb image))
    image))

(define (paintsd-add-hints image hints-file)
  ; HINTS-FILE as a layer named "hints" on top of IMAGE, its ID; -1 when HINTS-FILE is "".
  (if (equal? hints-file "")
      -1
      (let ((layer (car (gimp-file-load-layer RUN-NONINTERACTIVE image hints-file))))
        (gimp-image-insert-layer image layer 0 -1)
        (gimp-item-set-name layer "hints")
        layer)))

(define (script-fu-paintsd-colorize-file sketch-file hints-file out-file prompt engine seed)
  ; Colorizes the line art of SKETCH-FILE with the scribbles of HINTS-FILE ("" for none) and saves the colorized layer
  ; as OUT-FILE (PNG). Returns the layer's width and height.
  (let* ((image (paintsd-load-rgb sketch-file))
         (sketch (car (gimp-image-get-active-layer image)))
         (hints (paintsd-add-hints image hints-file))
         (result (car (plug-in-paintsd-colorize RUN-NONINTERACTIVE image sketch hints -1 prompt engine seed -1)))
         (size (list (car (gimp-drawable-width result)) (car (gimp-drawable-height result)))))
    (file-png-save-defaults RUN-NONINTERACTIVE image result out-file out-file)
    (gimp-image-delete image)
    size))

(define (paintsd-first-word text)
  ; TEXT up to its first space: the daemon's layer name in a result layer's name ("flats · sd model seed 42").
  (let loop ((i 0))
    (if (or (= i (string-length text)) (char=? (string-ref text i) #\space))
        (substring text 0 i)
        (loop (+ i 1)))))

(define (script-fu-paintsd-colorize-layers-file sketch-file hints-file out-prefix prompt engine seed options)
  ; Colorizes the line art of SKETCH-FILE with the scribbles of HINTS-FILE ("" for none) and the engine OPTIONS (a JSON
  ; object, "" for none), and saves every layer of the result, top first, as OUT-PREFIX-N-NAME.png (N from 0, NAME the
  ; daemon's: color, flats...). Returns the number of layers.
  (let* ((image (paintsd-load-rgb sketch-file))
         (sketch (car (gimp-image-get-active-layer image)))
         (hints (paintsd-add-hints image hints-file))
         (result (plug-in-paintsd-colorize-layers RUN-NONINTERACTIVE image sketch hints -1 prompt engine seed options))
         (count (car result))
         (layers (cadr result)))
    (let loop ((i 0))
      (if (< i count)
          (let* ((layer (vector-ref layers i))
                 (file (string-append out-prefix "-" (number->string i) "-"
                                      (paintsd-first-word (car (gimp-item-get-name layer))) ".png")))
            (file-png-save-defaults RUN-NONINTERACTIVE image layer file file)
            (loop (+ i 1)))))
    (gimp-image-delete image)
    count))

(define (script-fu-paintsd-undo-preview-file in-file steps out-prefix engine seed)
  ; Undo-step previews of the picture in IN-FILE at STEPS ("999,500"; "" for the default keyframes), each saved as
  ; OUT-PREFIX-STEP.png. Returns the number of frames.
  (let* ((image (paintsd-load-rgb in-file))
         (layer (car (gimp-image-get-active-layer image)))
         (result (plug-in-paintsd-undo-preview RUN-NONINTERACTIVE image layer steps 0 engine seed))
         (children (cadr (gimp-item-get-children (car result))))
         (count (vector-length children)))
    (let loop ((i 0))
      (if (< i count)
          (let* ((child (vector-ref children i))
                 (name (car (gimp-item-get-name child)))
                 (file (string-append out-prefix "-" (substring name 5 (string-length name)) ".png")))
            (file-png-save-defaults RUN-NONINTERACTIVE image child file file)
            (loop (+ i 1)))))
    (gimp-image-delete image)
    count))

(script-fu-register "script-fu-paintsd-colorize-file"
  "paintsd: colorize files" "Colorizes line art from files with the paintsd daemon and saves the colorized layer."
  "paintsd developers" "paintsd developers" "2026" ""
  SF-FILENAME "Line art" ""
  SF-FILENAME "Colour scribbles (empty: none)" ""
  SF-FILENAME "Output PNG" ""
  SF-STRING "Prompt" ""
  SF-STRING "Engine (empty: default)" ""
  SF-VALUE "Seed (-1: random)" "-1")

(script-fu-register "script-fu-paintsd-colorize-layers-file"
  "paintsd: colorize files as layers" "Colorizes line art from files with the paintsd daemon and saves every layer of the result."
  "paintsd developers" "paintsd developers" "2026" ""
  SF-FILENAME "Line art" ""
  SF-FILENAME "Colour scribbles (empty: none)" ""
  SF-STRING "Output prefix" ""
  SF-STRING "Prompt" ""
  SF-STRING "Engine (empty: default)" ""
  SF-VALUE "Seed (-1: random)" "-1"
  SF-STRING "Engine options (JSON object)" "")

(script-fu-register "script-fu-paintsd-undo-preview-file"
  "paintsd: undo preview of a file" "Saves undo-step previews of a picture made by the paintsd daemon."
  "paintsd developers" "paintsd developers" "2026" ""
  SF-FILENAME "Picture" ""
  SF-STRING "Steps (empty: default keyframes)" ""
  SF-STRING "Output prefix" ""
  SF-STRING "Engine (empty: default)" ""
  SF-VALUE "Seed (-1: random)" "-1")
