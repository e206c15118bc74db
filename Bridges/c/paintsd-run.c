/* paintsd-run: a command-line example of the C client library. Sends one job with PNG files as frames 1..n, prints
 * its progress, and writes the result's images (the first frame reference found in the result) to OUT.
 *
 *     paintsd-run [--layers DIR] METHOD 'PARAMS_JSON' OUT.png IN.png [IN.png...]
 *     paintsd-run colorize '{"sketch": {"frame": 1, "encoding": "png"}}' out.png lineart.png
 *
 * With --layers DIR, a colorize result's layers (paintsd_reply_layers) are also written, each as DIR/NAME.png (NAME.rgba
 * for raw rgba8 frames), and listed top first as "layer NAME visible|hidden".
 *
 * Exit status: 0 done, 1 error reply, 3 no daemon. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paintsd_client.h"

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc(n > 0 ? (size_t)n : 1);
    *size = fread(data, 1, (size_t)n, f);
    fclose(f);
    return data;
}

/* The first {"frame": n, ...} object in the result, depth first. */
static json_object *first_image(json_object *o) {
    json_object *frame;
    if (json_object_is_type(o, json_type_object)) {
        if (json_object_object_get_ex(o, "frame", &frame)) return o;
        json_object_object_foreach(o, key, value) {
            (void)key;
            json_object *found = first_image(value);
            if (found) return found;
        }
    } else if (json_object_is_type(o, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(o); i++) {
            json_object *found = first_image(json_object_array_get_idx(o, i));
            if (found) return found;
        }
    }
    return NULL;
}

/* Writes each layer of a result into `dir`; returns 0 when all were written. */
static int write_layers(const paintsd_reply *r, const char *dir) {
    paintsd_layer layers[16];
    size_t count = paintsd_reply_layers(r, layers, 16);
    if (count > 16) count = 16;
    int status = count ? 0 : 1;
    for (size_t i = 0; i < count; i++) {
        json_object *encoding;
        int raw = layers[i].image && json_object_object_get_ex(layers[i].image, "encoding", &encoding)
            && strcmp(json_object_get_string(encoding), "rgba8") == 0;
        char path[4096];
        /* A name is the daemon's ("color", "flats"); anything but letters, digits, '-' and '_' becomes '_'. */
        char name[128];
        size_t n = 0;
        for (const char *c = layers[i].name; *c && n + 1 < sizeof name; c++)
            name[n++] = ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_') ? *c : '_';
        name[n] = 0;
        snprintf(path, sizeof path, "%s/%s.%s", dir, name, raw ? "rgba" : "png");
        FILE *out = layers[i].data ? fopen(path, "wb") : NULL;
        if (out) {
            fwrite(layers[i].data, 1, layers[i].size, out);
            fclose(out);
            printf("layer %s %s\n", layers[i].name, layers[i].visible ? "visible" : "hidden");
        } else {
            fprintf(stderr, "cannot write layer %s to %s\n", layers[i].name, path);
            status = 1;
        }
    }
    return status;
}

int main(int argc, char **argv) {
    const char *layers_dir = NULL;
    if (argc > 2 && strcmp(argv[1], "--layers") == 0) {
        layers_dir = argv[2];
        argv[2] = argv[0];
        argv += 2;
        argc -= 2;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: %s [--layers DIR] METHOD PARAMS_JSON OUT [IN...]\n", argv[0]);
        return 2;
    }
    char err[512];
    paintsd_client *client = paintsd_connect(NULL, err, sizeof err);
    if (!client) { fprintf(stderr, "%s\n", err); return 3; }
    json_object *params = json_tokener_parse(argv[2]);
    if (!params) { fprintf(stderr, "PARAMS_JSON is not JSON\n"); return 2; }
    size_t count = (size_t)(argc - 4);
    paintsd_frame *frames = calloc(count + 1, sizeof *frames);
    for (size_t i = 0; i < count; i++) {
        frames[i].data = read_file(argv[4 + i], &frames[i].size);
        if (!frames[i].data) { fprintf(stderr, "cannot read %s\n", argv[4 + i]); return 2; }
    }
    char id[PAINTSD_ID_SIZE];
    paintsd_send(client, argv[1], params, 1, frames, count, id);
    int status = 1;
    for (;;) {
        paintsd_reply *r = paintsd_receive(client, id, 60000);
        if (!r) { fprintf(stderr, "no reply within 60 s\n"); break; }
        if (strcmp(r->type, "progress") == 0) {
            json_object *p, *f;
            if (json_object_object_get_ex(r->header, "progress", &p) && json_object_object_get_ex(p, "fraction", &f))
                printf("progress %.0f%%\n", 100 * json_object_get_double(f));
            fflush(stdout);
        } else if (strcmp(r->type, "accepted") == 0) {
            printf("accepted %s\n", r->job ? r->job : "");
            fflush(stdout);
        } else if (strcmp(r->type, "error") == 0) {
            fprintf(stderr, "paintsd: %s (%s)\n", paintsd_reply_error_message(r), paintsd_reply_error_code(r));
            paintsd_reply_free(r);
            break;
        } else {
            json_object *result;
            size_t size = 0;
            const unsigned char *image = json_object_object_get_ex(r->header, "result", &result)
                ? paintsd_reply_image(r, first_image(result), &size) : NULL;
            FILE *out = image ? fopen(argv[3], "wb") : NULL;
            if (out) {
                fwrite(image, 1, size, out);
                fclose(out);
                printf("wrote %s\n", argv[3]);
            }
            status = out ? 0 : 1;
            if (status == 0 && layers_dir) status = write_layers(r, layers_dir);
            paintsd_reply_free(r);
            break;
        }
        paintsd_reply_free(r);
    }
    json_object_put(params);
    paintsd_close(client);
    return status;
}
