/* paintsd-gimp: the GIMP 2.10 plug-in of paintsd. Registers two PDB procedures, callable from the Filters menu (with a
 * dialog) and from Script-Fu or batch mode:
 *
 *   plug-in-paintsd-colorize-layers (run-mode, image, drawable = line art, hints layer ID or -1, reference layer ID or
 *                                 -1, prompt, engine, seed or -1, options: a JSON object of engine options or "")
 *                                -> the number of layers added and their IDs, top first
 *   plug-in-paintsd-colorize     (run-mode, image, drawable, hints, reference, prompt, engine, seed or -1, strength or
 *                                 -1: the engine's hint_strength)  -> the top layer added (the menu entry: its dialog
 *                                 sets every engine option)
 *   plug-in-paintsd-undo-preview (run-mode, image, drawable, steps "400,600,..." or "", count or 0, engine, seed or -1)
 *                                -> a layer group with one layer per step (the lowest step on top and shown, the
 *                                   others hidden below it), and the number of frames
 *
 * Pixels travel as raw 8-bit RGBA frames through the C client library (Bridges/c); results come back as new layers at
 * the selection's bounds, the whole operation one undo group. A colorize result's layers (top first: `color`, then
 * e.g. `flats`, hidden) go under the line art in that order, each named "color · sd anything-v5 seed 42"; above it,
 * each in Multiply mode, when the line art is opaque (drawn or scanned on white) and in Normal mode, so the lines
 * always show; the line art stays the active layer. The dialog is built from the daemon's hello: its engines, and the
 * chosen engine's options with their kinds, ranges, defaults and choices (models, ControlNets). Progress events drive
 * GIMP's progress bar. When the user cancels that progress, GIMP kills the plug-in: the daemon sees the client vanish
 * and cancels its job.
 */
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../c/paintsd_client.h"

#define COLORIZE_PROC "plug-in-paintsd-colorize"
#define LAYERS_PROC "plug-in-paintsd-colorize-layers"
#define DATA_KEY "plug-in-paintsd-colorize-v2"
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
    gdouble strength;          /* plug-in-paintsd-colorize's strength parameter, -1: none */
    gchar options[4096];       /* engine options, a JSON object ("" for none) */
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
    static const GimpParamDef colorize_return[] = {{GIMP_PDB_LAYER, "layer", "The top layer of the result: under the line art, or above it in Multiply mode when the line art is opaque"}};
    static const GimpParamDef layers_args[] = {
        {GIMP_PDB_INT32, "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1) }"},
        {GIMP_PDB_IMAGE, "image", "Input image"},
        {GIMP_PDB_DRAWABLE, "drawable", "The line art (sketch) layer"},
        {GIMP_PDB_INT32, "hints", "ID of the colour scribbles layer (alpha > 0 marks a hint), or -1"},
        {GIMP_PDB_INT32, "reference", "ID of a reference picture layer, or -1"},
        {GIMP_PDB_STRING, "prompt", "Prompt, for engines that read one (\"\" for none)"},
        {GIMP_PDB_STRING, "engine", "Engine name, \"\" for the daemon's default"},
        {GIMP_PDB_INT32, "seed", "Seed, or -1 for a random one"},
        {GIMP_PDB_STRING, "options", "Engine options as a JSON object, e.g. {\"model\": \"anything-v5\", \"hint_strength\": 0.6} (\"\" for none; `paintsctl hello --json` lists each engine's)"},
    };
    static const GimpParamDef layers_return[] = {
        {GIMP_PDB_INT32, "num-layers", "The number of layers added"},
        {GIMP_PDB_INT32ARRAY, "layers", "Their IDs, top first: under the line art in this order (the first directly under it), hidden where the daemon says so (the flats), or above it in Multiply mode when the line art is opaque"},
    };
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
                           "result's layers under the line art, in one undo step. Works on the selection's bounds when "
                           "there is a selection. The dialog offers the chosen engine's options as the daemon describes "
                           "them; from scripts, plug-in-paintsd-colorize-layers takes them as JSON.",
                           "paintsd developers", "paintsd developers", "2026", "_Colorize Layer...", "RGB*", GIMP_PLUGIN,
                           G_N_ELEMENTS(colorize_args), G_N_ELEMENTS(colorize_return), colorize_args, colorize_return);
    gimp_plugin_menu_register(COLORIZE_PROC, "<Image>/Filters/paintsd");
    gimp_install_procedure(LAYERS_PROC, "Colorize line art with paintsd, as layers, with engine options",
                           "Sends the line art, the colour scribbles and the reference to the paintsd daemon with engine "
                           "options (JSON) and adds every layer of the result under the line art, in one undo step. "
                           "Works on the selection's bounds when there is a selection.",
                           "paintsd developers", "paintsd developers", "2026", NULL, "RGB*", GIMP_PLUGIN,
                           G_N_ELEMENTS(layers_args), G_N_ELEMENTS(layers_return), layers_args, layers_return);
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

/* A layer named like "hints" or "colors" (the convention of the Krita plug-in too; not our own results, named
 * "paintsd ..." or "color · builtin seed 3"), or -1. */
static gint32 find_hints_layer(gint32 image, gint32 except) {
    gint count = 0;
    gint32 *layers = gimp_image_get_layers(image, &count), found = -1;
    for (gint i = 0; i < count && found < 0; i++) {
        gchar *original = gimp_item_get_name(layers[i]);
        gchar *name = g_ascii_strdown(original, -1);
        gboolean ours = g_str_has_prefix(name, "paintsd ") || (strstr(original, " \u00b7 ") && strstr(original, " seed "));
        if (layers[i] != except && !ours
            && (strstr(name, "hint") || strstr(name, "color") || strstr(name, "colour") || strstr(name, "scribble")))
            found = layers[i];
        g_free(name);
        g_free(original);
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

/* The engine entry `name` of hello's "engines", or NULL. */
static json_object *hello_engine(const paintsd_reply *hello, const gchar *name) {
    json_object *engines = paintsd_reply_result(hello, "engines"), *n;
    if (!name || !engines || !json_object_is_type(engines, json_type_array)) return NULL;
    for (size_t i = 0; i < json_object_array_length(engines); i++) {
        json_object *e = json_object_array_get_idx(engines, i);
        if (json_object_object_get_ex(e, "name", &n) && strcmp(json_object_get_string(n), name) == 0) return e;
    }
    return NULL;
}

/* The engine that runs `method` for `engine` ("" = the daemon's default). */
static const gchar *engine_for(const paintsd_reply *hello, const gchar *method, const gchar *engine) {
    json_object *defaults = paintsd_reply_result(hello, "defaults"), *name;
    if (*engine) return engine;
    return defaults && json_object_object_get_ex(defaults, method, &name) ? json_object_get_string(name) : NULL;
}

/* The option descriptions ({"name": {"type", "default", "minimum", "maximum", "enum", "description"}}) of `engine`
 * ("" = the default) for `method`, per the daemon's hello; NULL when it has none. */
static json_object *engine_options(const paintsd_reply *hello, const gchar *method, const gchar *engine) {
    json_object *e = hello_engine(hello, engine_for(hello, method, engine)), *caps, *m, *options;
    return e && json_object_object_get_ex(e, "capabilities", &caps) && json_object_object_get_ex(caps, method, &m)
        && json_object_object_get_ex(m, "options", &options) && json_object_is_type(options, json_type_object) ? options : NULL;
}

static gboolean engine_takes_option(const paintsd_reply *hello, const gchar *method, const gchar *engine, const gchar *option) {
    json_object *options = engine_options(hello, method, engine), *o;
    return options && json_object_object_get_ex(options, option, &o);
}

/* The dialog's engine options: one field per option of the chosen engine, built from what hello says of each
 * (type, default, minimum, maximum, enum) and of the engine's "assets" (a ControlNet's kind; one with a "problem" is
 * listed but cannot be picked). The options in FIRST_OPTIONS come first, in that order; the others under "More
 * options". Only what differs from the defaults is sent. */
static const gchar *const FIRST_OPTIONS[] = {"model", "controlnet", "hint_strength", "strength", "control_strength",
                                             "palette_lock", "reference_mode", "reference_strength", "steps", NULL};

typedef struct {
    const gchar *name;          /* borrowed from hello */
    json_object *description;   /* borrowed from hello */
    GtkWidget *widget;
    gboolean first;
} OptionField;

typedef struct {
    const paintsd_reply *hello;
    GtkWidget *engine;          /* a combo box: column 0 the label, column 1 the engine name ("" = default) */
    GtkWidget *options_box;     /* holds the option tables; rebuilt when the engine changes */
    GArray *fields;             /* OptionField */
    json_object *saved;         /* the options of the last run (for saved_engine), or NULL */
    gchar saved_engine[64];
} ColorizeDialog;

static gboolean is_first_option(const gchar *name) {
    for (gint i = 0; FIRST_OPTIONS[i]; i++)
        if (strcmp(FIRST_OPTIONS[i], name) == 0) return TRUE;
    return FALSE;
}

static gchar *option_label(const gchar *name) {
    if (strcmp(name, "controlnet") == 0) return g_strdup("ControlNet:");
    gchar *label = g_strdup_printf("%s:", name);
    for (gchar *c = label; *c; c++) if (*c == '_') *c = ' ';
    label[0] = g_ascii_toupper(label[0]);
    return label;
}

static const gchar *member_type(json_object *description) {
    json_object *type;
    return json_object_object_get_ex(description, "type", &type) ? json_object_get_string(type) : "";
}

static gboolean member_double(json_object *o, const gchar *key, gdouble *out) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
        return FALSE;
    *out = json_object_get_double(v);
    return TRUE;
}

/* The entry of an engine's "assets" named `value` (e.g. a ControlNet's {"name", "kind", "problem"?}), or NULL. */
static json_object *asset_entry(json_object *assets, const gchar *value) {
    if (!assets || !json_object_is_type(assets, json_type_object)) return NULL;
    json_object_object_foreach(assets, kind, entries) {
        (void)kind;
        if (!json_object_is_type(entries, json_type_array)) continue;
        for (size_t i = 0; i < json_object_array_length(entries); i++) {
            json_object *entry = json_object_array_get_idx(entries, i), *name;
            if (json_object_is_type(entry, json_type_object) && json_object_object_get_ex(entry, "name", &name)
                && strcmp(json_object_get_string(name), value) == 0)
                return entry;
        }
    }
    return NULL;
}

enum { CHOICE_LABEL, CHOICE_VALUE, CHOICE_SENSITIVE };

static GtkWidget *choice_combo(json_object *choices, const gchar *current, json_object *assets) {
    GtkListStore *store = gtk_list_store_new(3, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_BOOLEAN);
    GtkWidget *combo = gtk_combo_box_new_with_model(GTK_TREE_MODEL(store));
    g_object_unref(store);
    GtkCellRenderer *cell = gtk_cell_renderer_text_new();
    gtk_cell_layout_pack_start(GTK_CELL_LAYOUT(combo), cell, TRUE);
    gtk_cell_layout_set_attributes(GTK_CELL_LAYOUT(combo), cell, "text", CHOICE_LABEL, "sensitive", CHOICE_SENSITIVE, NULL);
    gint active = -1;
    gboolean listed = FALSE;
    for (size_t i = 0; i < json_object_array_length(choices); i++)
        if (current && strcmp(json_object_get_string(json_object_array_get_idx(choices, i)), current) == 0) listed = TRUE;
    for (gint i = listed || !current ? 0 : -1; i < (gint)json_object_array_length(choices); i++) {
        const gchar *value = i < 0 ? current : json_object_get_string(json_object_array_get_idx(choices, (size_t)i));
        json_object *entry = asset_entry(assets, value), *kind, *problem;
        gboolean usable = !(entry && json_object_object_get_ex(entry, "problem", &problem));
        GString *label = g_string_new(value);
        if (entry && json_object_object_get_ex(entry, "kind", &kind)) g_string_append_printf(label, " (%s)", json_object_get_string(kind));
        if (!usable) g_string_append(label, " - unusable");
        GtkTreeIter iter;
        gtk_list_store_append(store, &iter);
        gtk_list_store_set(store, &iter, CHOICE_LABEL, label->str, CHOICE_VALUE, value, CHOICE_SENSITIVE, usable, -1);
        g_string_free(label, TRUE);
        if (current && strcmp(value, current) == 0) active = gtk_tree_model_iter_n_children(GTK_TREE_MODEL(store), NULL) - 1;
    }
    gtk_combo_box_set_active(GTK_COMBO_BOX(combo), active < 0 ? 0 : active);
    return combo;
}

/* The value in a choice combo's row `index` (g_free it), its sensitivity in *usable. */
static gchar *choice_at(GtkWidget *combo, gint index, gboolean *usable) {
    GtkTreeIter iter;
    gchar *value = NULL;
    gboolean sensitive = FALSE;
    if (index >= 0 && gtk_tree_model_iter_nth_child(gtk_combo_box_get_model(GTK_COMBO_BOX(combo)), &iter, NULL, index))
        gtk_tree_model_get(gtk_combo_box_get_model(GTK_COMBO_BOX(combo)), &iter, CHOICE_VALUE, &value, CHOICE_SENSITIVE, &sensitive, -1);
    if (usable) *usable = sensitive;
    return value;
}

static GtkWidget *option_widget(json_object *description, json_object *value, json_object *assets) {
    const gchar *type = member_type(description);
    json_object *choices;
    if (strcmp(type, "boolean") == 0) {
        GtkWidget *check = gtk_check_button_new();
        gtk_toggle_button_set_active(GTK_TOGGLE_BUTTON(check), value && json_object_get_boolean(value));
        return check;
    }
    if (strcmp(type, "integer") == 0 || strcmp(type, "number") == 0) {
        gdouble low = -1e9, high = 1e9, v = value ? json_object_get_double(value) : 0;
        gboolean integer = strcmp(type, "integer") == 0;
        member_double(description, "minimum", &low);
        member_double(description, "maximum", &high);
        gdouble span = high - low;
        GtkWidget *spin = gtk_spin_button_new_with_range(low, high, integer ? 1 : span <= 2 ? 0.05 : span <= 50 ? 0.5 : 1);
        gtk_spin_button_set_digits(GTK_SPIN_BUTTON(spin), integer ? 0 : span <= 10 ? 2 : 1);
        gtk_spin_button_set_value(GTK_SPIN_BUTTON(spin), v);
        return spin;
    }
    if (json_object_object_get_ex(description, "enum", &choices) && json_object_is_type(choices, json_type_array))
        return choice_combo(choices, value ? json_object_get_string(value) : NULL, assets);
    GtkWidget *entry = gtk_entry_new();
    gtk_entry_set_text(GTK_ENTRY(entry), value && json_object_is_type(value, json_type_string) ? json_object_get_string(value) : "");
    return entry;
}

/* A field's value as JSON (a new reference). */
static json_object *field_value(const OptionField *f) {
    const gchar *type = member_type(f->description);
    if (GTK_IS_CHECK_BUTTON(f->widget)) return json_object_new_boolean(gtk_toggle_button_get_active(GTK_TOGGLE_BUTTON(f->widget)));
    if (GTK_IS_SPIN_BUTTON(f->widget)) {
        gdouble v = gtk_spin_button_get_value(GTK_SPIN_BUTTON(f->widget));
        if (strcmp(type, "integer") == 0) return json_object_new_int64((int64_t)(v < 0 ? v - 0.5 : v + 0.5));
        gint digits = (gint)gtk_spin_button_get_digits(GTK_SPIN_BUTTON(f->widget));
        gdouble scale = digits >= 2 ? 100 : 10;
        return json_object_new_double((v < 0 ? (gint64)(v * scale - 0.5) : (gint64)(v * scale + 0.5)) / scale);
    }
    if (GTK_IS_COMBO_BOX(f->widget)) {
        gchar *value = choice_at(f->widget, gtk_combo_box_get_active(GTK_COMBO_BOX(f->widget)), NULL);
        json_object *o = json_object_new_string(value ? value : "");
        g_free(value);
        return o;
    }
    return json_object_new_string(gtk_entry_get_text(GTK_ENTRY(f->widget)));
}

static gboolean same_value(json_object *a, json_object *b) {
    if (!a || !b) return FALSE;
    if (json_object_is_type(a, json_type_boolean) || json_object_is_type(b, json_type_boolean))
        return json_object_is_type(a, json_type_boolean) && json_object_is_type(b, json_type_boolean)
            && json_object_get_boolean(a) == json_object_get_boolean(b);
    gboolean number_a = json_object_is_type(a, json_type_int) || json_object_is_type(a, json_type_double);
    gboolean number_b = json_object_is_type(b, json_type_int) || json_object_is_type(b, json_type_double);
    if (number_a || number_b) {
        gdouble d = json_object_get_double(a) - json_object_get_double(b);
        return number_a && number_b && d < 1e-9 && d > -1e-9;
    }
    return strcmp(json_object_get_string(a), json_object_get_string(b)) == 0;
}

/* The options to send: the fields whose value is not the default, as a JSON object (a new reference). */
static json_object *dialog_options(ColorizeDialog *d) {
    json_object *out = json_object_new_object(), *def;
    for (guint i = 0; i < d->fields->len; i++) {
        OptionField *f = &g_array_index(d->fields, OptionField, i);
        json_object *value = field_value(f);
        if (json_object_object_get_ex(f->description, "default", &def) && same_value(value, def)) json_object_put(value);
        else json_object_object_add(out, f->name, value);
    }
    return out;
}

/* The engine name the dialog's engine list shows ("" for the default; g_free it). */
static gchar *dialog_engine(ColorizeDialog *d) {
    GtkTreeIter iter;
    gchar *name = NULL;
    if (gtk_combo_box_get_active_iter(GTK_COMBO_BOX(d->engine), &iter))
        gtk_tree_model_get(gtk_combo_box_get_model(GTK_COMBO_BOX(d->engine)), &iter, 1, &name, -1);
    return name ? name : g_strdup("");
}

static void attach_field(GtkWidget *table, guint row, const gchar *name, GtkWidget *widget, const gchar *tooltip) {
    gchar *label = option_label(name);
    gimp_table_attach_aligned(GTK_TABLE(table), 0, (gint)row, label, 0.0, 0.5, widget, 1, FALSE);
    if (tooltip) gtk_widget_set_tooltip_text(widget, tooltip);
    g_free(label);
}

/* (Re)builds the option fields for the engine the dialog shows. */
static void build_option_fields(ColorizeDialog *d) {
    GList *children = gtk_container_get_children(GTK_CONTAINER(d->options_box));
    for (GList *c = children; c; c = c->next) gtk_widget_destroy(GTK_WIDGET(c->data));
    g_list_free(children);
    g_array_set_size(d->fields, 0);
    gchar *engine = dialog_engine(d);
    json_object *options = engine_options(d->hello, "colorize", engine);
    json_object *entry = hello_engine(d->hello, engine_for(d->hello, "colorize", engine)), *assets = NULL;
    if (entry) json_object_object_get_ex(entry, "assets", &assets);
    gboolean use_saved = d->saved && strcmp(engine, d->saved_engine) == 0;
    g_free(engine);
    if (!options) return;
    /* The order: FIRST_OPTIONS, then the rest as hello lists them. */
    for (gint pass = 0; pass < 2; pass++) {
        if (pass == 0) {
            for (gint i = 0; FIRST_OPTIONS[i]; i++) {
                json_object *description;
                if (json_object_object_get_ex(options, FIRST_OPTIONS[i], &description)) {
                    OptionField f = {FIRST_OPTIONS[i], description, NULL, TRUE};
                    g_array_append_val(d->fields, f);
                }
            }
        } else {
            json_object_object_foreach(options, name, description) {
                if (!is_first_option(name)) {
                    OptionField f = {name, description, NULL, FALSE};
                    g_array_append_val(d->fields, f);
                }
            }
        }
    }
    guint firsts = 0, others = 0;
    for (guint i = 0; i < d->fields->len; i++) (g_array_index(d->fields, OptionField, i).first ? firsts++ : others++);
    GtkWidget *main_table = gtk_table_new(MAX(firsts, 1), 2, FALSE), *more_table = gtk_table_new(MAX(others, 1), 2, FALSE);
    for (GtkWidget **t = (GtkWidget *[]){main_table, more_table, NULL}; *t; t++) {
        gtk_table_set_row_spacings(GTK_TABLE(*t), 6);
        gtk_table_set_col_spacings(GTK_TABLE(*t), 6);
    }
    guint main_row = 0, more_row = 0;
    for (guint i = 0; i < d->fields->len; i++) {
        OptionField *f = &g_array_index(d->fields, OptionField, i);
        json_object *value = NULL, *tip = NULL;
        if (!(use_saved && json_object_object_get_ex(d->saved, f->name, &value)))
            json_object_object_get_ex(f->description, "default", &value);
        json_object_object_get_ex(f->description, "description", &tip);
        f->widget = option_widget(f->description, value, assets);
        attach_field(f->first ? main_table : more_table, f->first ? main_row++ : more_row++, f->name, f->widget,
                     tip ? json_object_get_string(tip) : NULL);
    }
    if (firsts) gtk_box_pack_start(GTK_BOX(d->options_box), main_table, FALSE, FALSE, 0);
    else gtk_widget_destroy(main_table);
    if (others) {
        GtkWidget *expander = gtk_expander_new_with_mnemonic("_More options");
        gtk_container_add(GTK_CONTAINER(expander), more_table);
        gtk_box_pack_start(GTK_BOX(d->options_box), expander, FALSE, FALSE, 0);
    } else {
        gtk_widget_destroy(more_table);
    }
    gtk_widget_show_all(d->options_box);
}

static void engine_changed(GtkComboBox *combo, gpointer data) {
    (void)combo;
    build_option_fields((ColorizeDialog *)data);
}

/* Sets a field from a JSON value (the dialog test hook); returns FALSE when the value does not fit it. */
static gboolean set_field(OptionField *f, json_object *value) {
    if (GTK_IS_CHECK_BUTTON(f->widget)) {
        gtk_toggle_button_set_active(GTK_TOGGLE_BUTTON(f->widget), json_object_get_boolean(value));
    } else if (GTK_IS_SPIN_BUTTON(f->widget)) {
        gtk_spin_button_set_value(GTK_SPIN_BUTTON(f->widget), json_object_get_double(value));
    } else if (GTK_IS_COMBO_BOX(f->widget)) {
        GtkTreeModel *model = gtk_combo_box_get_model(GTK_COMBO_BOX(f->widget));
        gint n = gtk_tree_model_iter_n_children(model, NULL);
        for (gint i = 0; i < n; i++) {
            gboolean usable;
            gchar *v = choice_at(f->widget, i, &usable);
            gboolean match = v && strcmp(v, json_object_get_string(value)) == 0;
            g_free(v);
            if (match && usable) { gtk_combo_box_set_active(GTK_COMBO_BOX(f->widget), i); return TRUE; }
            if (match) return FALSE;
        }
        return FALSE;
    } else {
        gtk_entry_set_text(GTK_ENTRY(f->widget), json_object_get_string(value));
    }
    return TRUE;
}

/* A test hook, used by Tests/bridges/gimp.sh only (the dialog cannot be clicked in a batch test): with
 * $PAINTSD_GIMP_DIALOG_TEST naming a file, the dialog is built as usual, then set from $PAINTSD_GIMP_DIALOG_SET (a
 * JSON object: "engine" picks the engine, other members set option fields), described into that file (its engines,
 * each field: name, section, kind, choices, which choices cannot be picked, range, value; the options it would send),
 * and answered with OK instead of waiting for a click. */
static void dialog_test_hook(ColorizeDialog *d, const gchar *path) {
    json_object *set = getenv("PAINTSD_GIMP_DIALOG_SET") ? json_tokener_parse(getenv("PAINTSD_GIMP_DIALOG_SET")) : NULL;
    json_object *engine_choice, *report = json_object_new_object(), *engines = json_object_new_array();
    GtkTreeModel *model = gtk_combo_box_get_model(GTK_COMBO_BOX(d->engine));
    gint n = gtk_tree_model_iter_n_children(model, NULL);
    for (gint i = 0; i < n; i++) {
        GtkTreeIter iter;
        gchar *name = NULL;
        gtk_tree_model_iter_nth_child(model, &iter, NULL, i);
        gtk_tree_model_get(model, &iter, 1, &name, -1);
        if (set && json_object_object_get_ex(set, "engine", &engine_choice) && strcmp(name, json_object_get_string(engine_choice)) == 0)
            gtk_combo_box_set_active(GTK_COMBO_BOX(d->engine), i);
        json_object_array_add(engines, json_object_new_string(name));
        g_free(name);
    }
    json_object_object_add(report, "engines", engines);
    json_object *refused = json_object_new_array();
    if (set) {
        json_object_object_foreach(set, key, value) {
            for (guint i = 0; i < d->fields->len; i++) {
                OptionField *f = &g_array_index(d->fields, OptionField, i);
                if (strcmp(f->name, key) == 0 && !set_field(f, value)) json_object_array_add(refused, json_object_new_string(key));
            }
        }
        json_object_put(set);
    }
    json_object_object_add(report, "refused", refused);
    json_object *fields = json_object_new_array();
    for (guint i = 0; i < d->fields->len; i++) {
        OptionField *f = &g_array_index(d->fields, OptionField, i);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(f->name));
        json_object_object_add(o, "section", json_object_new_string(f->first ? "main" : "more"));
        json_object_object_add(o, "kind", json_object_new_string(GTK_IS_CHECK_BUTTON(f->widget) ? "check"
            : GTK_IS_SPIN_BUTTON(f->widget) ? "spin" : GTK_IS_COMBO_BOX(f->widget) ? "combo" : "entry"));
        if (GTK_IS_COMBO_BOX(f->widget)) {
            json_object *choices = json_object_new_array(), *labels = json_object_new_array(), *off = json_object_new_array();
            GtkTreeModel *m = gtk_combo_box_get_model(GTK_COMBO_BOX(f->widget));
            gint count = gtk_tree_model_iter_n_children(m, NULL);
            for (gint k = 0; k < count; k++) {
                GtkTreeIter iter;
                gchar *label = NULL, *value = NULL;
                gboolean usable = FALSE;
                gtk_tree_model_iter_nth_child(m, &iter, NULL, k);
                gtk_tree_model_get(m, &iter, CHOICE_LABEL, &label, CHOICE_VALUE, &value, CHOICE_SENSITIVE, &usable, -1);
                json_object_array_add(choices, json_object_new_string(value));
                json_object_array_add(labels, json_object_new_string(label));
                if (!usable) json_object_array_add(off, json_object_new_string(value));
                g_free(label);
                g_free(value);
            }
            json_object_object_add(o, "choices", choices);
            json_object_object_add(o, "labels", labels);
            json_object_object_add(o, "unusable", off);
        }
        if (GTK_IS_SPIN_BUTTON(f->widget)) {
            gdouble low, high;
            gtk_spin_button_get_range(GTK_SPIN_BUTTON(f->widget), &low, &high);
            json_object_object_add(o, "minimum", json_object_new_double(low));
            json_object_object_add(o, "maximum", json_object_new_double(high));
        }
        json_object_object_add(o, "value", field_value(f));
        json_object_array_add(fields, o);
    }
    json_object_object_add(report, "fields", fields);
    json_object_object_add(report, "options", dialog_options(d));
    FILE *out = fopen(path, "w");
    if (out) {
        fputs(json_object_to_json_string_ext(report, JSON_C_TO_STRING_PLAIN), out);
        fclose(out);
    }
    json_object_put(report);
}

static gboolean colorize_dialog(gint32 image, gint32 drawable, const paintsd_reply *hello, ColorizeValues *v) {
    gimp_ui_init(PLUG_IN_BINARY, FALSE);
    GtkWidget *dialog = gimp_dialog_new("Colorize Layer (paintsd)", PLUG_IN_BINARY, NULL, 0, gimp_standard_help_func,
                                        COLORIZE_PROC, "_Cancel", GTK_RESPONSE_CANCEL, "_OK", GTK_RESPONSE_OK, NULL);
    GtkWidget *table = dialog_table(dialog, 5);

    GtkWidget *hints = gimp_layer_combo_box_new(NULL, NULL);
    gimp_int_combo_box_prepend(GIMP_INT_COMBO_BOX(hints), GIMP_INT_STORE_VALUE, -1, GIMP_INT_STORE_LABEL, "(none)", -1);
    if (v->hints < 0) v->hints = find_hints_layer(image, drawable);
    gimp_int_combo_box_set_active(GIMP_INT_COMBO_BOX(hints), v->hints);
    GtkWidget *reference = gimp_layer_combo_box_new(NULL, NULL);
    gimp_int_combo_box_prepend(GIMP_INT_COMBO_BOX(reference), GIMP_INT_STORE_VALUE, -1, GIMP_INT_STORE_LABEL, "(none)", -1);
    gimp_int_combo_box_set_active(GIMP_INT_COMBO_BOX(reference), v->reference);
    GtkWidget *prompt = gtk_entry_new();
    gtk_entry_set_text(GTK_ENTRY(prompt), v->prompt);
    GtkWidget *seed = gtk_spin_button_new_with_range(-1, G_MAXINT32, 1);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(seed), v->seed);

    /* The engines that colorize, from hello: "(default: NAME)" first. */
    ColorizeDialog d = {hello, NULL, NULL, g_array_new(FALSE, TRUE, sizeof(OptionField)), NULL, ""};
    GtkListStore *store = gtk_list_store_new(2, G_TYPE_STRING, G_TYPE_STRING);
    GtkTreeIter iter;
    const gchar *default_engine = engine_for(hello, "colorize", "");
    gchar *label = g_strdup_printf("(default: %s)", default_engine ? default_engine : "?");
    gtk_list_store_append(store, &iter);
    gtk_list_store_set(store, &iter, 0, label, 1, "", -1);
    g_free(label);
    gint active = 0, row = 0;
    json_object *engines = paintsd_reply_result(hello, "engines");
    for (size_t i = 0; engines && i < json_object_array_length(engines); i++) {
        json_object *e = json_object_array_get_idx(engines, i), *name, *status, *caps, *m;
        if (!json_object_object_get_ex(e, "name", &name) || !json_object_object_get_ex(e, "capabilities", &caps)
            || !json_object_object_get_ex(caps, "colorize", &m))
            continue;
        label = g_strdup_printf("%s (%s)", json_object_get_string(name),
                                json_object_object_get_ex(e, "status", &status) ? json_object_get_string(status) : "?");
        gtk_list_store_append(store, &iter);
        gtk_list_store_set(store, &iter, 0, label, 1, json_object_get_string(name), -1);
        g_free(label);
        row++;
        if (strcmp(v->engine, json_object_get_string(name)) == 0) active = row;
    }
    d.engine = gtk_combo_box_new_with_model(GTK_TREE_MODEL(store));
    g_object_unref(store);
    GtkCellRenderer *cell = gtk_cell_renderer_text_new();
    gtk_cell_layout_pack_start(GTK_CELL_LAYOUT(d.engine), cell, TRUE);
    gtk_cell_layout_set_attributes(GTK_CELL_LAYOUT(d.engine), cell, "text", 0, NULL);
    gtk_combo_box_set_active(GTK_COMBO_BOX(d.engine), active);
    /* The options of the last run, for the engine they were for. */
    if (*v->options) {
        d.saved = json_tokener_parse(v->options);
        g_strlcpy(d.saved_engine, v->engine, sizeof d.saved_engine);
    }

    gimp_table_attach_aligned(GTK_TABLE(table), 0, 0, "_Hints layer:", 0.0, 0.5, hints, 1, FALSE);
    gimp_table_attach_aligned(GTK_TABLE(table), 0, 1, "_Reference layer:", 0.0, 0.5, reference, 1, FALSE);
    gimp_table_attach_aligned(GTK_TABLE(table), 0, 2, "_Prompt:", 0.0, 0.5, prompt, 1, FALSE);
    gimp_table_attach_aligned(GTK_TABLE(table), 0, 3, "_Engine:", 0.0, 0.5, d.engine, 1, FALSE);
    gimp_table_attach_aligned(GTK_TABLE(table), 0, 4, "_Seed (-1: random):", 0.0, 0.5, seed, 1, FALSE);
    d.options_box = gtk_vbox_new(FALSE, 6);
    gtk_container_set_border_width(GTK_CONTAINER(d.options_box), 12);
    gtk_box_pack_start(GTK_BOX(gtk_dialog_get_content_area(GTK_DIALOG(dialog))), d.options_box, FALSE, FALSE, 0);
    build_option_fields(&d);
    g_signal_connect(d.engine, "changed", G_CALLBACK(engine_changed), &d);
    gtk_widget_show_all(dialog);
    const gchar *test = getenv("PAINTSD_GIMP_DIALOG_TEST");
    gboolean ok;
    if (test && *test) {
        dialog_test_hook(&d, test);
        ok = TRUE;
    } else {
        ok = gimp_dialog_run(GIMP_DIALOG(dialog)) == GTK_RESPONSE_OK;
    }
    if (ok) {
        gimp_int_combo_box_get_active(GIMP_INT_COMBO_BOX(hints), &v->hints);
        gimp_int_combo_box_get_active(GIMP_INT_COMBO_BOX(reference), &v->reference);
        g_strlcpy(v->prompt, gtk_entry_get_text(GTK_ENTRY(prompt)), sizeof v->prompt);
        gchar *engine = dialog_engine(&d);
        g_strlcpy(v->engine, engine, sizeof v->engine);
        g_free(engine);
        v->seed = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(seed));
        v->strength = -1;
        json_object *options = dialog_options(&d);
        g_strlcpy(v->options, json_object_to_json_string_ext(options, JSON_C_TO_STRING_PLAIN), sizeof v->options);
        json_object_put(options);
    }
    if (d.saved) json_object_put(d.saved);
    g_signal_handlers_disconnect_by_func(d.engine, G_CALLBACK(engine_changed), &d);
    gtk_widget_destroy(dialog);
    g_array_free(d.fields, TRUE);
    return ok;
}

/* A result layer's name: "color · sd anything-v5 seed 42" (layer, engine, the model when info names one, seed). */
static gchar *result_layer_name(const paintsd_reply *result, const gchar *layer) {
    json_object *engine = paintsd_reply_result(result, "engine"), *seed = paintsd_reply_result(result, "seed");
    json_object *info = paintsd_reply_result(result, "info"), *model = NULL;
    gboolean has_model = info && json_object_object_get_ex(info, "model", &model) && json_object_is_type(model, json_type_string)
        && *json_object_get_string(model);
    return g_strdup_printf("%s \u00b7 %s%s%s seed %lld", layer, engine ? json_object_get_string(engine) : "?",
                           has_model ? " " : "", has_model ? json_object_get_string(model) : "",
                           seed ? (long long)json_object_get_int64(seed) : -1LL);
}

#define MAX_LAYERS 16

/* Colorizes: sends the line art (and hints, reference) to the daemon and places the result's layers. Returns how many
 * layers were added (their IDs, top first, in layer_ids), or 0 with the reason in err. `strength` (the older
 * procedure's parameter, -1 for none) goes as the engine's hint_strength, or strength, whichever it takes. */
static gint colorize(paintsd_client *client, const paintsd_reply *hello, gint32 image, gint32 drawable,
                     const ColorizeValues *v, gint32 *layer_ids, gchar *err, gsize err_size) {
    Region region, whole;
    if (!drawable_region(drawable, &region)) {
        g_snprintf(err, err_size, "the selection does not touch the layer");
        return 0;
    }
    json_object *options = *v->options ? json_tokener_parse(v->options) : json_object_new_object();
    if (!options || !json_object_is_type(options, json_type_object)) {
        g_snprintf(err, err_size, "options: not a JSON object: %s", v->options);
        if (options) json_object_put(options);
        return 0;
    }
    if (v->strength >= 0) {
        const gchar *name = engine_takes_option(hello, "colorize", v->engine, "hint_strength") ? "hint_strength"
            : engine_takes_option(hello, "colorize", v->engine, "strength") ? "strength" : NULL;
        json_object *given;
        if (name && !json_object_object_get_ex(options, name, &given))
            json_object_object_add(options, name, json_object_new_double(v->strength));
    }
    gimp_progress_init("paintsd: colorizing");
    paintsd_frame frames[3];
    guchar *pixels[3] = {NULL, NULL, NULL};
    size_t n = 0;
    json_object *params = json_object_new_object();
    pixels[n] = read_rgba(drawable, &region);
    frames[n] = (paintsd_frame){pixels[n], (size_t)region.width * region.height * 4};
    json_object_object_add(params, "sketch", rgba_reference((int)++n, &region));
    /* Line art on an opaque background would hide a layer under it: then the colours go above it, multiplied. Line
     * art the artist set to another mode (Multiply, Darken...) lets what is under it show. */
    GimpLayerMode mode = gimp_item_is_layer(drawable) ? gimp_layer_get_mode(drawable) : GIMP_LAYER_MODE_NORMAL;
    gboolean sketch_opaque = mode == GIMP_LAYER_MODE_NORMAL || mode == GIMP_LAYER_MODE_NORMAL_LEGACY;
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
    json_object_object_add(params, "options", options);
    json_object_object_add(params, "output", json_object_new_string("rgba8"));

    paintsd_reply *result = run_job(client, "colorize", params, frames, n, err, err_size);
    json_object_put(params);
    for (size_t i = 0; i < n; i++) g_free(pixels[i]);
    gint added = 0;
    if (result) {
        /* The result's layers, top first (an older daemon's result without "layers": its one image). */
        paintsd_layer layers[MAX_LAYERS];
        size_t count = paintsd_reply_layers(result, layers, MAX_LAYERS);
        size_t expected = (size_t)region.width * region.height * 4;
        gboolean fits = count > 0 && count <= MAX_LAYERS;
        for (size_t i = 0; fits && i < count; i++) fits = layers[i].data && layers[i].size == expected;
        if (!fits) {
            g_snprintf(err, err_size, "paintsd returned no layers of %dx%d", region.width, region.height);
        } else {
            /* Every layer in one undo step, in the order given: under the line art (the first directly under it),
             * or above it, each in Multiply mode, when the line art is opaque. */
            gimp_image_undo_group_start(image);
            gint position = gimp_image_get_item_position(image, drawable);
            gint32 parent = gimp_item_get_parent(drawable);
            for (size_t i = 0; i < count; i++) {
                gchar *name = result_layer_name(result, layers[i].name);
                gint32 layer = add_layer(image, parent, position + (sketch_opaque ? 0 : 1) + (gint)i, name, &region,
                                         layers[i].data);
                if (sketch_opaque) gimp_layer_set_mode(layer, GIMP_LAYER_MODE_MULTIPLY);
                gimp_item_set_visible(layer, layers[i].visible);
                layer_ids[added++] = layer;
                g_free(name);
            }
            /* Inserting made the new layer the active one: the artist goes on with the line art (as in Krita). */
            if (gimp_item_is_layer(drawable)) gimp_image_set_active_layer(image, drawable);
            gimp_image_undo_group_end(image);
        }
        paintsd_reply_free(result);
    }
    gimp_progress_end();
    return added;
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
    } else if (strcmp(name, COLORIZE_PROC) == 0 || strcmp(name, LAYERS_PROC) == 0) {
        gboolean layered = strcmp(name, LAYERS_PROC) == 0;
        static ColorizeValues v;
        static gint32 ids[MAX_LAYERS];
        v = (ColorizeValues){-1, -1, "", "", -1, -1, ""};
        if (mode == GIMP_RUN_NONINTERACTIVE) {
            if (nparams != 9) status = GIMP_PDB_CALLING_ERROR;
            else {
                v.hints = param[3].data.d_int32;
                v.reference = param[4].data.d_int32;
                g_strlcpy(v.prompt, param[5].data.d_string ? param[5].data.d_string : "", sizeof v.prompt);
                g_strlcpy(v.engine, param[6].data.d_string ? param[6].data.d_string : "", sizeof v.engine);
                v.seed = param[7].data.d_int32;
                if (layered) g_strlcpy(v.options, param[8].data.d_string ? param[8].data.d_string : "", sizeof v.options);
                else v.strength = param[8].data.d_float;
            }
        } else if (gimp_get_data_size(DATA_KEY) == sizeof v) {
            gimp_get_data(DATA_KEY, &v);
        }
        /* The daemon first: the dialog is built from its hello. */
        paintsd_reply *hello = NULL;
        paintsd_client *client = status == GIMP_PDB_SUCCESS ? connect_daemon(&hello, err, sizeof err) : NULL;
        if (status == GIMP_PDB_SUCCESS && !client) status = GIMP_PDB_EXECUTION_ERROR;
        if (status == GIMP_PDB_SUCCESS && mode == GIMP_RUN_INTERACTIVE && !colorize_dialog(image, drawable, hello, &v))
            status = GIMP_PDB_CANCEL;
        if (status == GIMP_PDB_SUCCESS) {
            gint added = colorize(client, hello, image, drawable, &v, ids, err, sizeof err);
            if (added == 0) status = GIMP_PDB_EXECUTION_ERROR;
            else {
                if (mode == GIMP_RUN_INTERACTIVE) gimp_set_data(DATA_KEY, &v, sizeof v);
                if (layered) {
                    *nreturn_vals = 3;
                    values[1].type = GIMP_PDB_INT32;
                    values[1].data.d_int32 = added;
                    values[2].type = GIMP_PDB_INT32ARRAY;
                    values[2].data.d_int32array = ids;
                } else {
                    *nreturn_vals = 2;
                    values[1].type = GIMP_PDB_LAYER;
                    values[1].data.d_layer = ids[0];
                }
            }
        }
        paintsd_reply_free(hello);
        if (client) paintsd_close(client);
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

    if (status == GIMP_PDB_EXECUTION_ERROR && strcmp(name, LAYERS_PROC) == 0) {
        /* GIMP 2.10 reads an error string in the place of the first declared return value: here an INT32 whose value
           then sizes the INT32ARRAY after it, and a string's bits there made GIMP write an array of negative length
           to the caller and hang. So this procedure says why on the console (or in a dialog) and returns its status only. */
        g_message("%s", err);
        *nreturn_vals = 1;
    } else if (status == GIMP_PDB_EXECUTION_ERROR) {
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
