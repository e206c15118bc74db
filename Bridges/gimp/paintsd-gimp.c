/* paintsd-gimp: the GIMP 2.10 plug-in of paintsd. Registers two PDB procedures, callable from the Filters menu (with a
 * dialog) and from Script-Fu or batch mode:
 *
 *   plug-in-paintsd-colorize     (run-mode, image, drawable = line art, hints layer ID or -1, reference layer ID or -1,
 *                                 prompt, engine, seed or -1, strength or -1)  -> the colorized layer
 *   plug-in-paintsd-undo-preview (run-mode, image, drawable, steps "400,600,..." or "", count or 0, engine, seed or -1)
 *                                -> a layer group with one layer per step (the lowest step on top and shown, the
 *                                   others hidden below it), and the number of frames
 *
 * Pixels travel as raw 8-bit RGBA frames through the C client library (Bridges/c); results come back as new layers at
 * the selection's bounds, the whole operation one undo group. The colorized layer goes under the line art, or above it
 * in Multiply mode when the line art is opaque (drawn or scanned on white), so the lines always show; the line art
 * stays the active layer. Progress events drive GIMP's progress bar. When the user cancels that progress, GIMP kills
 * the plug-in: the daemon sees the client vanish and cancels its job.
 */
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../c/paintsd_client.h"

#define COLORIZE_PROC "plug-in-paintsd-colorize"
#define UNDO_PROC "plug-in-paintsd-undo-preview"
#define PLUG_IN_BINARY "paintsd-gimp"
#define HELLO_TIMEOUT_MS 5000
#define JOB_TIMEOUT_MS (30 * 60 * 1000)

typedef struct {
    gint32 hints;
    gint32 reference;
    gchar prompt[512];
    gchar engine[64];
    gint32 seed;
    gdouble strength;
} ColorizeValues;

typedef struct {
    gchar steps[256];
    gint32 count;
    gchar engine[64];
    gint32 seed;
} UndoValues;

static void query(void);
static void run(const gchar *name, gint nparams, const GimpParam *param, gint *nreturn_vals, GimpParam **return_vals);

const GimpPlugInInfo PLUG_IN_INFO = {NULL, NULL, query, run};

MAIN()

static void query(void) {
    static const GimpParamDef colorize_args[] = {
        {GIMP_PDB_INT32, "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1) }"},
        {GIMP_PDB_IMAGE, "image", "Input image"},
        {GIMP_PDB_DRAWABLE, "drawable", "The line art (sketch) layer"},
        {GIMP_PDB_INT32, "hints", "ID of the colour scribbles layer (alpha > 0 marks a hint), or -1"},
        {GIMP_PDB_INT32, "reference", "ID of a reference picture layer, or -1"},
        {GIMP_PDB_STRING, "prompt", "Prompt, for engines that read one (\"\" for none)"},
        {GIMP_PDB_STRING, "engine", "Engine name, \"\" for the daemon's default"},
        {GIMP_PDB_INT32, "seed", "Seed, or -1 for a random one"},
        {GIMP_PDB_FLOAT, "strength", "How far the result may move from the flat colours (engines with a strength option), or -1"},
    };
    static const GimpParamDef colorize_return[] = {{GIMP_PDB_LAYER, "layer", "The colorized layer: under the line art, or above it in Multiply mode when the line art is opaque"}};
    static const GimpParamDef undo_args[] = {
        {GIMP_PDB_INT32, "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1) }"},
        {GIMP_PDB_IMAGE, "image", "Input image"},
        {GIMP_PDB_DRAWABLE, "drawable", "The finished picture"},
        {GIMP_PDB_STRING, "steps", "Operation steps, e.g. \"999,500\" (0 = finished, 999 = blank canvas); \"\" for the default keyframes"},
        {GIMP_PDB_INT32, "count", "Or this many evenly spaced steps (0: use steps)"},
        {GIMP_PDB_STRING, "engine", "Engine name, \"\" for the daemon's default"},
        {GIMP_PDB_INT32, "seed", "Seed, or -1 for a random one"},
    };
    static const GimpParamDef undo_return[] = {
        {GIMP_PDB_LAYER, "group", "A layer group holding one layer per step: the lowest step on top and shown, the others hidden below it"},
        {GIMP_PDB_INT32, "frames", "The number of frames"},
    };
    gimp_install_procedure(COLORIZE_PROC, "Colorize line art with paintsd",
                           "Sends the line art, the colour scribbles and the reference to the paintsd daemon and adds the "
                           "colorized layer under the line art. Works on the selection's bounds when there is a selection.",
                           "paintsd developers", "paintsd developers", "2026", "_Colorize Layer...", "RGB*", GIMP_PLUGIN,
                           G_N_ELEMENTS(colorize_args), G_N_ELEMENTS(colorize_return), colorize_args, colorize_return);
    gimp_plugin_menu_register(COLORIZE_PROC, "<Image>/Filters/paintsd");
    gimp_install_procedure(UNDO_PROC, "Undo-step previews with paintsd",
                           "Shows what the picture looked like that many operation steps earlier, as a layer group.",
                           "paintsd developers", "paintsd developers", "2026", "_Undo Preview...", "RGB*", GIMP_PLUGIN,
                           G_N_ELEMENTS(undo_args), G_N_ELEMENTS(undo_return), undo_args, undo_return);
    gimp_plugin_menu_register(UNDO_PROC, "<Image>/Filters/paintsd");
}

/* ---- pixels ------------------------------------------------------------------------------------------------------ */

typedef struct {
    gint x, y, width, height;   /* in image coordinates */
} Region;

/* The part of the drawable the work covers, in image coordinates: the selection's bounds within it, or all of it. */
static gboolean drawable_region(gint32 drawable, Region *r) {
    gint ox, oy;
    if (!gimp_drawable_mask_intersect(drawable, &r->x, &r->y, &r->width, &r->height)) return FALSE;
    gimp_drawable_offsets(drawable, &ox, &oy);
    r->x += ox;
    r->y += oy;
    return TRUE;
}

/* The drawable's pixels over an image-space region as R,G,B,A bytes (transparent where the drawable has none). */
static guchar *read_rgba(gint32 drawable, const Region *r) {
    gint ox, oy;
    gimp_drawable_offsets(drawable, &ox, &oy);
    guchar *pixels = g_malloc0((gsize)r->width * r->height * 4);
    GeglBuffer *buffer = gimp_drawable_get_buffer(drawable);
    gegl_buffer_get(buffer, GEGL_RECTANGLE(r->x - ox, r->y - oy, r->width, r->height), 1.0, babl_format("R'G'B'A u8"),
                    pixels, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    g_object_unref(buffer);
    return pixels;
}

/* A new RGBA layer holding `pixels` at the region, inserted into `parent` (-1: the image) at `position`. */
static gint32 add_layer(gint32 image, gint32 parent, gint position, const gchar *name, const Region *r,
                        const guchar *pixels) {
    gint32 layer = gimp_layer_new(image, name, r->width, r->height, GIMP_RGBA_IMAGE, 100, GIMP_LAYER_MODE_NORMAL);
    gimp_image_insert_layer(image, layer, parent, position);
    gimp_layer_set_offsets(layer, r->x, r->y);
    GeglBuffer *buffer = gimp_drawable_get_buffer(layer);
    gegl_buffer_set(buffer, GEGL_RECTANGLE(0, 0, r->width, r->height), 0, babl_format("R'G'B'A u8"), pixels,
                    GEGL_AUTO_ROWSTRIDE);
    g_object_unref(buffer);
    gimp_drawable_update(layer, 0, 0, r->width, r->height);
    return layer;
}

static json_object *rgba_reference(int frame, const Region *r) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "frame", json_object_new_int(frame));
    json_object_object_add(o, "encoding", json_object_new_string("rgba8"));
    json_object_object_add(o, "width", json_object_new_int(r->width));
    json_object_object_add(o, "height", json_object_new_int(r->height));
    return o;
}

/* ---- talking to the daemon ------------------------------------------------------------------------------------- */

/* Connects and says hello; on failure writes why into err. The hello reply is returned in *hello (free it). */
static paintsd_client *connect_daemon(paintsd_reply **hello, gchar *err, gsize err_size) {
    paintsd_client *client = paintsd_connect(NULL, err, err_size);
    if (!client) return NULL;
    *hello = paintsd_call(client, "hello", NULL, HELLO_TIMEOUT_MS, err, err_size);
    if (!*hello) {
        paintsd_close(client);
        return NULL;
    }
    return client;
}

/* Whether `engine` ("" = the default for `method`) takes the engine option `option`, per the daemon's hello. */
static gboolean engine_takes_option(const paintsd_reply *hello, const gchar *method, const gchar *engine, const gchar *option) {
    json_object *engines = paintsd_reply_result(hello, "engines"), *defaults = paintsd_reply_result(hello, "defaults");
    json_object *name_object;
    const gchar *name = engine;
    if (!*engine && defaults && json_object_object_get_ex(defaults, method, &name_object)) name = json_object_get_string(name_object);
    if (!engines || !name) return FALSE;
    for (size_t i = 0; i < json_object_array_length(engines); i++) {
        json_object *e = json_object_array_get_idx(engines, i), *n, *caps, *m, *options, *o;
        if (!json_object_object_get_ex(e, "name", &n) || strcmp(json_object_get_string(n), name) != 0) continue;
        return json_object_object_get_ex(e, "capabilities", &caps) && json_object_object_get_ex(caps, method, &m)
            && json_object_object_get_ex(m, "options", &options) && json_object_object_get_ex(options, option, &o);
    }
    return FALSE;
}

/* Runs a job to its end, driving GIMP's progress bar; returns the result reply, or NULL with the reason in err. */
static paintsd_reply *run_job(paintsd_client *client, const gchar *method, json_object *params, const paintsd_frame *frames,
                              size_t frame_count, gchar *err, gsize err_size) {
    char id[PAINTSD_ID_SIZE];
    if (paintsd_send(client, method, params, 1, frames, frame_count, id) != 0) {
        g_snprintf(err, err_size, "cannot send to %s", paintsd_endpoint(client));
        return NULL;
    }
    gint64 deadline = g_get_monotonic_time() + (gint64)JOB_TIMEOUT_MS * 1000;
    while (g_get_monotonic_time() < deadline) {
        paintsd_reply *r = paintsd_receive(client, id, 200);
        if (!r) continue;
        if (strcmp(r->type, "result") == 0) return r;
        if (strcmp(r->type, "error") == 0) {
            g_snprintf(err, err_size, "paintsd: %s (%s)", paintsd_reply_error_message(r), paintsd_reply_error_code(r));
            paintsd_reply_free(r);
            return NULL;
        }
        json_object *progress, *fraction, *stage;
        if (strcmp(r->type, "progress") == 0 && json_object_object_get_ex(r->header, "progress", &progress)) {
            if (json_object_object_get_ex(progress, "stage", &stage))
                gimp_progress_set_text_printf("paintsd: %s", json_object_get_string(stage));
            if (json_object_object_get_ex(progress, "fraction", &fraction))
                gimp_progress_update(json_object_get_double(fraction));
        } else if (strcmp(r->type, "accepted") == 0) {
            gimp_progress_set_text_printf("paintsd: queued (%s)", r->job ? r->job : "");
        }
        paintsd_reply_free(r);
    }
    g_snprintf(err, err_size, "paintsd did not finish within %d minutes", JOB_TIMEOUT_MS / 60000);
    return NULL;
}

/* ---- colorize ---------------------------------------------------------------------------------------------------- */

/* A layer named like "hints" or "colors" (the convention of the Krita plug-in too; not our own "paintsd ..." results), or -1. */
static gint32 find_hints_layer(gint32 image, gint32 except) {
    gint count = 0;
    gint32 *layers = gimp_image_get_layers(image, &count), found = -1;
    for (gint i = 0; i < count && found < 0; i++) {
        gchar *name = g_ascii_strdown(gimp_item_get_name(layers[i]), -1);
        if (layers[i] != except && !g_str_has_prefix(name, "paintsd ")
            && (strstr(name, "hint") || strstr(name, "color") || strstr(name, "colour") || strstr(name, "scribble")))
            found = layers[i];
        g_free(name);
    }
    g_free(layers);
    return found;
}

/* A label/field table filling a dialog's content area. */
static GtkWidget *dialog_table(GtkWidget *dialog, guint rows) {
    GtkWidget *table = gtk_table_new(rows, 2, FALSE);
    gtk_table_set_row_spacings(GTK_TABLE(table), 6);
    gtk_table_set_col_spacings(GTK_TABLE(table), 6);
    gtk_container_set_border_width(GTK_CONTAINER(table), 12);
    gtk_box_pack_start(GTK_BOX(gtk_dialog_get_content_area(GTK_DIALOG(dialog))), table, TRUE, TRUE, 0);
    return table;
}

static gboolean colorize_dialog(gint32 image, gint32 drawable, ColorizeValues *v) {
    gimp_ui_init(PLUG_IN_BINARY, FALSE);
    GtkWidget *dialog = gimp_dialog_new("Colorize Layer (paintsd)", PLUG_IN_BINARY, NULL, 0, gimp_standard_help_func,
                                        COLORIZE_PROC, "_Cancel", GTK_RESPONSE_CANCEL, "_OK", GTK_RESPONSE_OK, NULL);
    GtkWidget *table = dialog_table(dialog, 6);

    GtkWidget *hints = gimp_layer_combo_box_new(NULL, NULL);
    gimp_int_combo_box_prepend(GIMP_INT_COMBO_BOX(hints), GIMP_INT_STORE_VALUE, -1, GIMP_INT_STORE_LABEL, "(none)", -1);
    if (v->hints < 0) v->hints = find_hints_layer(image, drawable);
    gimp_int_combo_box_set_active(GIMP_INT_COMBO_BOX(hints), v->hints);
    GtkWidget *reference = gimp_layer_combo_box_new(NULL, NULL);
    gimp_int_combo_box_prepend(GIMP_INT_COMBO_BOX(reference), GIMP_INT_STORE_VALUE, -1, GIMP_INT_STORE_LABEL, "(none)", -1);
    gimp_int_combo_box_set_active(GIMP_INT_COMBO_BOX(reference), v->reference);
    GtkWidget *prompt = gtk_entry_new(), *engine = gtk_entry_new();
    gtk_entry_set_text(GTK_ENTRY(prompt), v->prompt);
    gtk_entry_set_text(GTK_ENTRY(engine), v->engine);
    GtkWidget *seed = gtk_spin_button_new_with_range(-1, G_MAXINT32, 1);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(seed), v->seed);
    GtkWidget *strength = gtk_spin_button_new_with_range(-1, 1, 0.05);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(strength), v->strength);
    gimp_table_attach_aligned(GTK_TABLE(table), 0, 0, "_Hints layer:", 0.0, 0.5, hints, 1, FALSE);
    gimp_table_attach_aligned(GTK_TABLE(table), 0, 1, "_Reference layer:", 0.0, 0.5, reference, 1, FALSE);
    gimp_table_attach_aligned(GTK_TABLE(table), 0, 2, "_Prompt:", 0.0, 0.5, prompt, 1, FALSE);
    gimp_table_attach_aligned(GTK_TABLE(table), 0, 3, "_Engine (empty: default):", 0.0, 0.5, engine, 1, FALSE);
    gimp_table_attach_aligned(GTK_TABLE(table), 0, 4, "_Seed (-1: random):", 0.0, 0.5, seed, 1, FALSE);
    gimp_table_attach_aligned(GTK_TABLE(table), 0, 5, "S_trength (-1: default):", 0.0, 0.5, strength, 1, FALSE);
    gtk_widget_show_all(dialog);
    gboolean ok = gimp_dialog_run(GIMP_DIALOG(dialog)) == GTK_RESPONSE_OK;
    if (ok) {
        gimp_int_combo_box_get_active(GIMP_INT_COMBO_BOX(hints), &v->hints);
        gimp_int_combo_box_get_active(GIMP_INT_COMBO_BOX(reference), &v->reference);
        g_strlcpy(v->prompt, gtk_entry_get_text(GTK_ENTRY(prompt)), sizeof v->prompt);
        g_strlcpy(v->engine, gtk_entry_get_text(GTK_ENTRY(engine)), sizeof v->engine);
        v->seed = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(seed));
        v->strength = gtk_spin_button_get_value(GTK_SPIN_BUTTON(strength));
    }
    gtk_widget_destroy(dialog);
    return ok;
}

static gint32 colorize(gint32 image, gint32 drawable, const ColorizeValues *v, gchar *err, gsize err_size) {
    Region region, whole;
    if (!drawable_region(drawable, &region)) {
        g_snprintf(err, err_size, "the selection does not touch the layer");
        return -1;
    }
    paintsd_reply *hello = NULL;
    paintsd_client *client = connect_daemon(&hello, err, err_size);
    if (!client) return -1;
    gimp_progress_init("paintsd: colorizing");
    paintsd_frame frames[3];
    guchar *pixels[3] = {NULL, NULL, NULL};
    size_t n = 0;
    json_object *params = json_object_new_object();
    pixels[n] = read_rgba(drawable, &region);
    frames[n] = (paintsd_frame){pixels[n], (size_t)region.width * region.height * 4};
    json_object_object_add(params, "sketch", rgba_reference((int)++n, &region));
    /* Line art on an opaque background would hide a layer under it: then the colours go above it, multiplied. */
    gboolean sketch_opaque = TRUE;
    for (size_t i = 3; sketch_opaque && i < frames[0].size; i += 4) sketch_opaque = pixels[0][i] == 255;
    if (v->hints >= 0 && gimp_item_is_drawable(v->hints)) {
        pixels[n] = read_rgba(v->hints, &region);
        frames[n] = (paintsd_frame){pixels[n], (size_t)region.width * region.height * 4};
        json_object_object_add(params, "hints", rgba_reference((int)++n, &region));
    }
    if (v->reference >= 0 && gimp_item_is_drawable(v->reference) && drawable_region(v->reference, &whole)) {
        pixels[n] = read_rgba(v->reference, &whole);
        frames[n] = (paintsd_frame){pixels[n], (size_t)whole.width * whole.height * 4};
        json_object_object_add(params, "reference", rgba_reference((int)++n, &whole));
    }
    if (*v->prompt) json_object_object_add(params, "prompt", json_object_new_string(v->prompt));
    if (*v->engine) json_object_object_add(params, "engine", json_object_new_string(v->engine));
    if (v->seed >= 0) json_object_object_add(params, "seed", json_object_new_int(v->seed));
    json_object *options = json_object_new_object();
    if (v->strength >= 0 && engine_takes_option(hello, "colorize", v->engine, "strength"))
        json_object_object_add(options, "strength", json_object_new_double(v->strength));
    json_object_object_add(params, "options", options);
    json_object_object_add(params, "output", json_object_new_string("rgba8"));

    paintsd_reply *result = run_job(client, "colorize", params, frames, n, err, err_size);
    json_object_put(params);
    for (size_t i = 0; i < n; i++) g_free(pixels[i]);
    gint32 layer = -1;
    if (result) {
        size_t size = 0;
        const unsigned char *data = paintsd_reply_image(result, paintsd_reply_result(result, "image"), &size);
        json_object *engine = paintsd_reply_result(result, "engine"), *seed = paintsd_reply_result(result, "seed");
        if (!data || size != (size_t)region.width * region.height * 4) {
            g_snprintf(err, err_size, "paintsd returned no layer of %dx%d", region.width, region.height);
        } else {
            gchar *name = g_strdup_printf("paintsd colorize (%s, seed %lld)", engine ? json_object_get_string(engine) : "?",
                                          seed ? (long long)json_object_get_int64(seed) : -1LL);
            gimp_image_undo_group_start(image);
            gint position = gimp_image_get_item_position(image, drawable);
            layer = add_layer(image, gimp_item_get_parent(drawable), sketch_opaque ? position : position + 1, name, &region, data);
            if (sketch_opaque) gimp_layer_set_mode(layer, GIMP_LAYER_MODE_MULTIPLY);
            /* Inserting made the new layer the active one: the artist goes on with the line art (as in Krita). */
            if (gimp_item_is_layer(drawable)) gimp_image_set_active_layer(image, drawable);
            gimp_image_undo_group_end(image);
            g_free(name);
        }
        paintsd_reply_free(result);
    }
    gimp_progress_end();
    paintsd_reply_free(hello);
    paintsd_close(client);
    return layer;
}

/* ---- undo preview ------------------------------------------------------------------------------------------------ */

/* The step of frame i of a result's "frames" (entries without one sort last). */
static gint frame_step(json_object *frames, size_t i) {
    json_object *step;
    return json_object_object_get_ex(json_object_array_get_idx(frames, i), "step", &step) ? json_object_get_int(step) : G_MAXINT;
}

static gboolean undo_dialog(UndoValues *v) {
    gimp_ui_init(PLUG_IN_BINARY, FALSE);
    GtkWidget *dialog = gimp_dialog_new("Undo Preview (paintsd)", PLUG_IN_BINARY, NULL, 0, gimp_standard_help_func,
                                        UNDO_PROC, "_Cancel", GTK_RESPONSE_CANCEL, "_OK", GTK_RESPONSE_OK, NULL);
    GtkWidget *table = dialog_table(dialog, 4);
    GtkWidget *steps = gtk_entry_new(), *engine = gtk_entry_new();
    gtk_entry_set_text(GTK_ENTRY(steps), v->steps);
    gtk_entry_set_text(GTK_ENTRY(engine), v->engine);
    GtkWidget *count = gtk_spin_button_new_with_range(0, 64, 1);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(count), v->count);
    GtkWidget *seed = gtk_spin_button_new_with_range(-1, G_MAXINT32, 1);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(seed), v->seed);
    gimp_table_attach_aligned(GTK_TABLE(table), 0, 0, "_Steps (empty: 400..999 keyframes):", 0.0, 0.5, steps, 1, FALSE);
    gimp_table_attach_aligned(GTK_TABLE(table), 0, 1, "Or _count:", 0.0, 0.5, count, 1, FALSE);
    gimp_table_attach_aligned(GTK_TABLE(table), 0, 2, "_Engine (empty: default):", 0.0, 0.5, engine, 1, FALSE);
    gimp_table_attach_aligned(GTK_TABLE(table), 0, 3, "_Seed (-1: random):", 0.0, 0.5, seed, 1, FALSE);
    gtk_widget_show_all(dialog);
    gboolean ok = gimp_dialog_run(GIMP_DIALOG(dialog)) == GTK_RESPONSE_OK;
    if (ok) {
        g_strlcpy(v->steps, gtk_entry_get_text(GTK_ENTRY(steps)), sizeof v->steps);
        g_strlcpy(v->engine, gtk_entry_get_text(GTK_ENTRY(engine)), sizeof v->engine);
        v->count = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(count));
        v->seed = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(seed));
    }
    gtk_widget_destroy(dialog);
    return ok;
}

static gint32 undo_preview(gint32 image, gint32 drawable, const UndoValues *v, gint *frame_count, gchar *err, gsize err_size) {
    Region region;
    *frame_count = 0;
    if (!drawable_region(drawable, &region)) {
        g_snprintf(err, err_size, "the selection does not touch the layer");
        return -1;
    }
    json_object *params = json_object_new_object();
    json_object_object_add(params, "image", rgba_reference(1, &region));
    if (v->count > 0) {
        json_object_object_add(params, "count", json_object_new_int(v->count));
    } else if (*v->steps) {
        json_object *steps = json_object_new_array();
        gchar **parts = g_strsplit_set(v->steps, ", ;", -1);
        for (gchar **p = parts; *p; p++) {
            gchar *end;
            if (!**p) continue;
            gint64 step = g_ascii_strtoll(*p, &end, 10);
            if (*end || step < 0 || step > 999) {
                g_snprintf(err, err_size, "steps: \"%s\" is not an integer in 0..999", *p);
                g_strfreev(parts);
                json_object_put(steps);
                json_object_put(params);
                return -1;
            }
            json_object_array_add(steps, json_object_new_int((int)step));
        }
        g_strfreev(parts);
        json_object_object_add(params, "steps", steps);
    }
    if (*v->engine) json_object_object_add(params, "engine", json_object_new_string(v->engine));
    if (v->seed >= 0) json_object_object_add(params, "seed", json_object_new_int(v->seed));
    json_object_object_add(params, "output", json_object_new_string("rgba8"));

    paintsd_reply *hello = NULL;
    paintsd_client *client = connect_daemon(&hello, err, err_size);
    if (!client) {
        json_object_put(params);
        return -1;
    }
    gimp_progress_init("paintsd: undo preview");
    guchar *pixels = read_rgba(drawable, &region);
    paintsd_frame frame = {pixels, (size_t)region.width * region.height * 4};
    paintsd_reply *result = run_job(client, "undo.preview", params, &frame, 1, err, err_size);
    json_object_put(params);
    g_free(pixels);
    gint32 group = -1;
    json_object *frames = result ? paintsd_reply_result(result, "frames") : NULL;
    if (frames) {
        json_object *engine = paintsd_reply_result(result, "engine"), *seed = paintsd_reply_result(result, "seed");
        gchar *name = g_strdup_printf("paintsd undo preview (%s, seed %lld)", engine ? json_object_get_string(engine) : "?",
                                      seed ? (long long)json_object_get_int64(seed) : -1LL);
        gimp_image_undo_group_start(image);
        group = gimp_layer_group_new(image);
        gimp_item_set_name(group, name);
        gimp_image_insert_layer(image, group, gimp_item_get_parent(drawable), gimp_image_get_item_position(image, drawable));
        /* One order in GIMP and Krita: the frame nearest the finished picture (the lowest step) on top and the only
         * one shown, the others hidden below it, down to the highest step (the start of the drawing). */
        size_t n = json_object_array_length(frames), *order = g_new(size_t, n);
        for (size_t i = 0; i < n; i++) {
            size_t j = i;
            for (; j > 0 && frame_step(frames, order[j - 1]) > frame_step(frames, i); j--) order[j] = order[j - 1];
            order[j] = i;
        }
        for (size_t k = 0; k < n; k++) {
            json_object *entry = json_object_array_get_idx(frames, order[k]), *step, *reference;
            size_t size = 0;
            const unsigned char *data = json_object_object_get_ex(entry, "image", &reference)
                ? paintsd_reply_image(result, reference, &size) : NULL;
            if (!data || size != (size_t)region.width * region.height * 4 || !json_object_object_get_ex(entry, "step", &step)) continue;
            gchar *layer_name = g_strdup_printf("step %d", json_object_get_int(step));
            gint32 layer = add_layer(image, group, *frame_count, layer_name, &region, data);
            gimp_item_set_visible(layer, *frame_count == 0);
            g_free(layer_name);
            (*frame_count)++;
        }
        g_free(order);
        gimp_image_undo_group_end(image);
        g_free(name);
    }
    paintsd_reply_free(result);
    gimp_progress_end();
    paintsd_reply_free(hello);
    paintsd_close(client);
    return group;
}

/* ---- entry ------------------------------------------------------------------------------------------------------- */

static void run(const gchar *name, gint nparams, const GimpParam *param, gint *nreturn_vals, GimpParam **return_vals) {
    static GimpParam values[3];
    static gchar err[1024];
    GimpRunMode mode = (GimpRunMode)param[0].data.d_int32;
    gint32 image = param[1].data.d_image, drawable = param[2].data.d_drawable;
    GimpPDBStatusType status = GIMP_PDB_SUCCESS;
    err[0] = 0;
    *nreturn_vals = 1;
    gegl_init(NULL, NULL);
    *return_vals = values;
    values[0].type = GIMP_PDB_STATUS;

    if (gimp_image_base_type(image) != GIMP_RGB) {
        g_snprintf(err, sizeof err, "paintsd works on RGB images: convert with Image > Mode > RGB first");
        status = GIMP_PDB_EXECUTION_ERROR;
    } else if (strcmp(name, COLORIZE_PROC) == 0) {
        ColorizeValues v = {-1, -1, "", "", -1, -1};
        if (mode == GIMP_RUN_NONINTERACTIVE) {
            if (nparams != 9) status = GIMP_PDB_CALLING_ERROR;
            else {
                v.hints = param[3].data.d_int32;
                v.reference = param[4].data.d_int32;
                g_strlcpy(v.prompt, param[5].data.d_string ? param[5].data.d_string : "", sizeof v.prompt);
                g_strlcpy(v.engine, param[6].data.d_string ? param[6].data.d_string : "", sizeof v.engine);
                v.seed = param[7].data.d_int32;
                v.strength = param[8].data.d_float;
            }
        } else {
            gimp_get_data(COLORIZE_PROC, &v);
            if (mode == GIMP_RUN_INTERACTIVE && !colorize_dialog(image, drawable, &v)) status = GIMP_PDB_CANCEL;
        }
        if (status == GIMP_PDB_SUCCESS) {
            gint32 layer = colorize(image, drawable, &v, err, sizeof err);
            if (layer < 0) status = GIMP_PDB_EXECUTION_ERROR;
            else {
                if (mode == GIMP_RUN_INTERACTIVE) gimp_set_data(COLORIZE_PROC, &v, sizeof v);
                *nreturn_vals = 2;
                values[1].type = GIMP_PDB_LAYER;
                values[1].data.d_layer = layer;
            }
        }
    } else if (strcmp(name, UNDO_PROC) == 0) {
        UndoValues v = {"", 0, "", -1};
        if (mode == GIMP_RUN_NONINTERACTIVE) {
            if (nparams != 7) status = GIMP_PDB_CALLING_ERROR;
            else {
                g_strlcpy(v.steps, param[3].data.d_string ? param[3].data.d_string : "", sizeof v.steps);
                v.count = param[4].data.d_int32;
                g_strlcpy(v.engine, param[5].data.d_string ? param[5].data.d_string : "", sizeof v.engine);
                v.seed = param[6].data.d_int32;
            }
        } else {
            gimp_get_data(UNDO_PROC, &v);
            if (mode == GIMP_RUN_INTERACTIVE && !undo_dialog(&v)) status = GIMP_PDB_CANCEL;
        }
        if (status == GIMP_PDB_SUCCESS) {
            gint frames = 0;
            gint32 group = undo_preview(image, drawable, &v, &frames, err, sizeof err);
            if (group < 0) status = GIMP_PDB_EXECUTION_ERROR;
            else {
                if (mode == GIMP_RUN_INTERACTIVE) gimp_set_data(UNDO_PROC, &v, sizeof v);
                *nreturn_vals = 3;
                values[1].type = GIMP_PDB_LAYER;
                values[1].data.d_layer = group;
                values[2].type = GIMP_PDB_INT32;
                values[2].data.d_int32 = frames;
            }
        }
    } else {
        status = GIMP_PDB_CALLING_ERROR;
    }

    if (status == GIMP_PDB_EXECUTION_ERROR) {
        if (mode == GIMP_RUN_INTERACTIVE) g_message("%s", err);
        *nreturn_vals = 2;
        values[1].type = GIMP_PDB_STRING;
        values[1].data.d_string = err;
    } else if (status == GIMP_PDB_SUCCESS && mode == GIMP_RUN_INTERACTIVE) {
        gimp_displays_flush();
    }
    if (status != GIMP_PDB_SUCCESS && *nreturn_vals > 2) *nreturn_vals = 2;
    if (status != GIMP_PDB_SUCCESS && status != GIMP_PDB_EXECUTION_ERROR) *nreturn_vals = 1;
    values[0].data.d_status = status;
}
