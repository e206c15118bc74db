/* paintsd_client: a small C client of the paintsd daemon; see paintsd_client.h. */
#include "paintsd_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

struct paintsd_client {
    void *context;
    void *socket;
    char endpoint[512];
};

const char *paintsd_default_endpoint(char *buf, size_t size) {
    const char *env = getenv("PAINTSD_ENDPOINT");
    const char *runtime = getenv("XDG_RUNTIME_DIR");
    if (env && *env) snprintf(buf, size, "%s", env);
    else if (runtime && *runtime) snprintf(buf, size, "ipc://%s/paintsd/paintsd.sock", runtime);
    else snprintf(buf, size, "ipc:///tmp/paintsd-%u/paintsd.sock", (unsigned)getuid());
    return buf;
}

paintsd_client *paintsd_connect(const char *endpoint, char *err, size_t err_size) {
    paintsd_client *c = calloc(1, sizeof *c);
    if (!c) { snprintf(err, err_size, "out of memory"); return NULL; }
    if (endpoint && *endpoint) snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    else paintsd_default_endpoint(c->endpoint, sizeof c->endpoint);
    if (strncmp(c->endpoint, "ipc://", 6) == 0 && c->endpoint[6] != '@') {
        struct stat st;
        if (stat(c->endpoint + 6, &st) != 0) {
            snprintf(err, err_size, "no paintsd at %s; start one with `paintsd`", c->endpoint);
            free(c);
            return NULL;
        }
    }
    c->context = zmq_ctx_new();
    c->socket = c->context ? zmq_socket(c->context, ZMQ_DEALER) : NULL;
    int linger = 0, ivl = 2000, ttl = 6000, timeout = 6000, ipv6 = 1;
    if (c->socket) {
        zmq_setsockopt(c->socket, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(c->socket, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
        zmq_setsockopt(c->socket, ZMQ_HEARTBEAT_TTL, &ttl, sizeof ttl);
        zmq_setsockopt(c->socket, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout);
        zmq_setsockopt(c->socket, ZMQ_IPV6, &ipv6, sizeof ipv6);  /* reaches tcp://[::1]:PORT too */
    }
    if (!c->socket || zmq_connect(c->socket, c->endpoint) != 0) {
        snprintf(err, err_size, "cannot connect to %s: %s", c->endpoint, zmq_strerror(zmq_errno()));
        paintsd_close(c);
        return NULL;
    }
    return c;
}

void paintsd_close(paintsd_client *c) {
    if (!c) return;
    if (c->socket) zmq_close(c->socket);
    if (c->context) zmq_ctx_term(c->context);
    free(c);
}

const char *paintsd_endpoint(const paintsd_client *c) { return c->endpoint; }

static void make_id(char out[PAINTSD_ID_SIZE]) {
    static unsigned counter;
    FILE *f = fopen("/dev/urandom", "rb");
    unsigned char bytes[12] = {0};
    if (f) {
        if (fread(bytes, 1, sizeof bytes, f) != sizeof bytes) memset(bytes, 0, sizeof bytes);
        fclose(f);
    }
    snprintf(out, PAINTSD_ID_SIZE, "c%08x", ++counter);
    for (size_t i = 0; i < sizeof bytes; i++) snprintf(out + 9 + 2 * i, PAINTSD_ID_SIZE - 9 - 2 * i, "%02x", bytes[i]);
}

int paintsd_send(paintsd_client *c, const char *method, json_object *params, int stream, const paintsd_frame *frames,
                 size_t frame_count, char id_out[PAINTSD_ID_SIZE]) {
    make_id(id_out);
    json_object *header = json_object_new_object();
    json_object_object_add(header, "protocol", json_object_new_int(1));
    json_object_object_add(header, "id", json_object_new_string(id_out));
    json_object_object_add(header, "method", json_object_new_string(method));
    json_object_object_add(header, "params", params ? json_object_get(params) : json_object_new_object());
    if (stream) json_object_object_add(header, "stream", json_object_new_boolean(1));
    const char *text = json_object_to_json_string_ext(header, JSON_C_TO_STRING_PLAIN);
    int rc = zmq_send(c->socket, text, strlen(text), frame_count ? ZMQ_SNDMORE : 0) < 0 ? -1 : 0;
    json_object_put(header);
    for (size_t i = 0; rc == 0 && i < frame_count; i++) {
        if (zmq_send(c->socket, frames[i].data, frames[i].size, i + 1 < frame_count ? ZMQ_SNDMORE : 0) < 0) rc = -1;
    }
    return rc;
}

void paintsd_reply_free(paintsd_reply *r) {
    if (!r) return;
    if (r->header) json_object_put(r->header);
    for (size_t i = 0; i < r->frame_count; i++) free(r->frames[i]);
    free(r->frames);
    free(r->frame_sizes);
    free(r);
}

static const char *member_string(json_object *o, const char *key) {
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Reads one whole multipart message (already known to be waiting). */
static paintsd_reply *read_message(paintsd_client *c) {
    paintsd_reply *r = calloc(1, sizeof *r);
    size_t capacity = 0;
    int more = 1;
    while (more) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, c->socket, 0) < 0) { zmq_msg_close(&msg); paintsd_reply_free(r); return NULL; }
        if (r->frame_count == capacity) {
            capacity = capacity ? capacity * 2 : 4;
            r->frames = realloc(r->frames, capacity * sizeof *r->frames);
            r->frame_sizes = realloc(r->frame_sizes, capacity * sizeof *r->frame_sizes);
        }
        size_t size = zmq_msg_size(&msg);
        unsigned char *copy = malloc(size + 1);
        memcpy(copy, zmq_msg_data(&msg), size);
        copy[size] = 0;
        r->frames[r->frame_count] = copy;
        r->frame_sizes[r->frame_count++] = size;
        more = zmq_msg_more(&msg);
        zmq_msg_close(&msg);
    }
    r->header = json_tokener_parse((const char *)r->frames[0]);
    if (!r->header || !json_object_is_type(r->header, json_type_object)) { paintsd_reply_free(r); return NULL; }
    r->type = member_string(r->header, "type");
    r->id = member_string(r->header, "id");
    r->job = member_string(r->header, "job");
    return r;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

paintsd_reply *paintsd_receive(paintsd_client *c, const char *id, int timeout_ms) {
    long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        long long left = deadline < 0 ? -1 : deadline - now_ms();
        if (deadline >= 0 && left < 0) left = 0;
        zmq_pollitem_t item = {c->socket, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&item, 1, (long)left);
        if (n < 0 && zmq_errno() == EINTR) continue;
        if (n <= 0) return NULL;
        paintsd_reply *r = read_message(c);
        if (r && r->id && strcmp(r->id, id) == 0) return r;
        paintsd_reply_free(r);      /* another request's reply, or garbage */
        if (deadline >= 0 && now_ms() >= deadline) return NULL;
    }
}

json_object *paintsd_reply_result(const paintsd_reply *r, const char *key) {
    json_object *result, *v;
    if (!json_object_object_get_ex(r->header, "result", &result)) return NULL;
    return json_object_object_get_ex(result, key, &v) ? v : NULL;
}

static const char *error_member(const paintsd_reply *r, const char *key) {
    json_object *e;
    const char *s = json_object_object_get_ex(r->header, "error", &e) ? member_string(e, key) : NULL;
    return s ? s : "";
}

const char *paintsd_reply_error_code(const paintsd_reply *r) { return error_member(r, "code"); }
const char *paintsd_reply_error_message(const paintsd_reply *r) { return error_member(r, "message"); }

const unsigned char *paintsd_reply_image(const paintsd_reply *r, json_object *reference, size_t *size) {
    json_object *frame;
    if (!reference || !json_object_object_get_ex(reference, "frame", &frame)) return NULL;
    int index = json_object_get_int(frame);
    if (index <= 0 || (size_t)index >= r->frame_count) return NULL;
    *size = r->frame_sizes[index];
    return r->frames[index];
}

static void fill_layer(const paintsd_reply *r, paintsd_layer *layer, const char *name, int visible, json_object *image) {
    layer->name = name;
    layer->visible = visible;
    layer->image = image;
    layer->size = 0;
    layer->data = paintsd_reply_image(r, image, &layer->size);
}

size_t paintsd_reply_layers(const paintsd_reply *r, paintsd_layer *out, size_t max) {
    json_object *layers = paintsd_reply_result(r, "layers");
    if (!layers || !json_object_is_type(layers, json_type_array)) {
        json_object *image = paintsd_reply_result(r, "image");
        if (!image) return 0;
        if (max > 0) fill_layer(r, &out[0], "color", 1, image);
        return 1;
    }
    size_t count = json_object_array_length(layers);
    for (size_t i = 0; i < count && i < max; i++) {
        json_object *entry = json_object_array_get_idx(layers, i), *visible, *image = NULL;
        const char *name = member_string(entry, "name");
        json_object_object_get_ex(entry, "image", &image);
        fill_layer(r, &out[i], name ? name : "layer",
                   !json_object_object_get_ex(entry, "visible", &visible) || json_object_get_boolean(visible), image);
    }
    return count;
}

paintsd_reply *paintsd_call(paintsd_client *c, const char *method, json_object *params, int timeout_ms, char *err,
                            size_t err_size) {
    char id[PAINTSD_ID_SIZE];
    if (paintsd_send(c, method, params, 0, NULL, 0, id) != 0) {
        snprintf(err, err_size, "cannot send to %s: %s", c->endpoint, zmq_strerror(zmq_errno()));
        return NULL;
    }
    paintsd_reply *r = paintsd_receive(c, id, timeout_ms);
    if (!r) {
        if (strcmp(method, "hello") == 0 || strcmp(method, "ping") == 0)
            snprintf(err, err_size, "no paintsd answers at %s; start one with `paintsd`", c->endpoint);
        else
            snprintf(err, err_size, "no reply to %s within %d ms", method, timeout_ms);
    }
    return r;
}

int paintsd_cancel(paintsd_client *c, const char *job, int timeout_ms) {
    char err[256];
    json_object *params = json_object_new_object();
    json_object_object_add(params, "job", json_object_new_string(job));
    paintsd_reply *r = paintsd_call(c, "jobs.cancel", params, timeout_ms, err, sizeof err);
    json_object_put(params);
    int rc = r ? 0 : -1;
    paintsd_reply_free(r);
    return rc;
}
