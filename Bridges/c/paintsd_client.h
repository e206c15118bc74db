/* paintsd_client: a small C client of the paintsd daemon (JSON over ZeroMQ, Protocol/PROTOCOL.md).
 *
 * One DEALER socket; requests carry an id, and every reply names the request it answers, so one client can wait on
 * any of its requests. Depends on libzmq and json-c. Inside GIMP, json-glib exports json_object_get_type,
 * json_object_equal and json_object_iter_next too: this library never calls them, and neither should its users.
 *
 *     paintsd_client *c = paintsd_connect(NULL, err, sizeof err);       // NULL: $PAINTSD_ENDPOINT or the default
 *     char id[PAINTSD_ID_SIZE];
 *     paintsd_frame frames[] = {{png, png_size}};
 *     paintsd_send(c, "colorize", params, 1, frames, 1, id);           // params: {"sketch": {"frame": 1, ...}}
 *     for (;;) {
 *         paintsd_reply *r = paintsd_receive(c, id, 100);               // NULL: nothing within 100 ms
 *         ...  r->type is "accepted", "progress", "result" or "error"
 *     }
 */
#ifndef PAINTSD_CLIENT_H
#define PAINTSD_CLIENT_H

#include <stddef.h>
#include <json-c/json.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PAINTSD_ID_SIZE 33

typedef struct paintsd_client paintsd_client;

/* A binary frame to send (borrowed). */
typedef struct {
    const void *data;
    size_t size;
} paintsd_frame;

/* A reply: its parsed header and the binary frames after it (frames[0] is the header's own bytes). */
typedef struct {
    json_object *header;
    const char *type;      /* "accepted", "progress", "result", "error" */
    const char *id;        /* the request id it answers */
    const char *job;       /* the daemon's job id, or NULL */
    size_t frame_count;
    unsigned char **frames;
    size_t *frame_sizes;
} paintsd_reply;

/* The endpoint a client uses by default: $PAINTSD_ENDPOINT, else ipc://$XDG_RUNTIME_DIR/paintsd/paintsd.sock
 * (/tmp/paintsd-UID/paintsd.sock without XDG_RUNTIME_DIR). Writes it into buf. */
const char *paintsd_default_endpoint(char *buf, size_t size);

/* Connects (NULL endpoint: the default). On failure returns NULL with a message in err; a missing ipc socket file
 * is reported as "no paintsd at ...; start one with `paintsd`". The socket sends ZeroMQ heartbeats, so the daemon
 * cancels the jobs of a client that was killed (GIMP kills plug-ins whose progress is cancelled). */
paintsd_client *paintsd_connect(const char *endpoint, char *err, size_t err_size);
void paintsd_close(paintsd_client *client);
const char *paintsd_endpoint(const paintsd_client *client);

/* Sends a request; params is borrowed (may be NULL). Writes the request id into id_out. Returns 0, or -1 with errno. */
int paintsd_send(paintsd_client *client, const char *method, json_object *params, int stream,
                 const paintsd_frame *frames, size_t frame_count, char id_out[PAINTSD_ID_SIZE]);

/* The next reply to request `id` (replies to other requests are dropped), waiting up to timeout_ms (-1: forever).
 * NULL on timeout. Free with paintsd_reply_free. */
paintsd_reply *paintsd_receive(paintsd_client *client, const char *id, int timeout_ms);
void paintsd_reply_free(paintsd_reply *reply);

/* A member of the reply's "result" object, or NULL. */
json_object *paintsd_reply_result(const paintsd_reply *reply, const char *key);
/* An error reply's code and message ("" when absent). */
const char *paintsd_reply_error_code(const paintsd_reply *reply);
const char *paintsd_reply_error_message(const paintsd_reply *reply);
/* The frame an image reference ({"frame": n, ...}) points at, with its size; NULL when out of range. */
const unsigned char *paintsd_reply_image(const paintsd_reply *reply, json_object *reference, size_t *size);

/* One layer of a colorize result; everything borrowed from the reply (valid until paintsd_reply_free). */
typedef struct {
    const char *name;            /* "color", "flats", ... */
    int visible;                 /* 0: the app adds it hidden (e.g. the flats) */
    json_object *image;          /* its image reference: "frame", "encoding" ("png" or "rgba8"), "width", "height" */
    const unsigned char *data;   /* the bytes of that frame: PNG, or raw R,G,B,A rows for rgba8; NULL when missing */
    size_t size;
} paintsd_layer;

/* The layers of a colorize result, top first: the order they go under the line art. Fills up to `max` entries of
 * `out` (out may be NULL when max is 0) and returns how many layers the result has. A result without "layers" (from a
 * daemon older than layered results) counts as one visible layer named "color": its "image". */
size_t paintsd_reply_layers(const paintsd_reply *reply, paintsd_layer *out, size_t max);

/* A method answered by one reply (hello, ping, engines.list, jobs.*): returns the reply (type "result" or
 * "error"), or NULL with a message in err when none came within timeout_ms (for hello/ping: the daemon is not running). */
paintsd_reply *paintsd_call(paintsd_client *client, const char *method, json_object *params, int timeout_ms,
                            char *err, size_t err_size);

/* Asks the daemon to cancel a job. Returns 0 when the daemon answered. */
int paintsd_cancel(paintsd_client *client, const char *job, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
