/* The front door: /s/<ship id or name>/<rest> becomes an HTTP event for that
 * ship, and the ship's reply effect becomes the response. With --domain D,
 * a request whose Host is <ship>.D goes to that ship whole, its target as
 * it came (http/hostname.h); the bare domain, and a Host not under D, are
 * routed by path as before.
 *
 * A request's ship starts waking before the request is whole: once its
 * headers are in while its body still comes (host_front_headers), and,
 * over TLS, once the ClientHello names it (host_front_server_name), so
 * that the wake overlaps the body's arrival or the handshake; the server
 * asks first whether the name would wake anything
 * (host_front_server_name_wakes), as only then is the handshake worth
 * moving off the loop. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/host.h"
#include "http/hostname.h"
#include "http/websocket.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "proto/frame.h"

/* Every 503 is worth a retry: the host is starting, busy, or leadership
 * is moving. */
static const char *front__extra(int status)
{
    return status == 503 ? "Retry-After: 1\r\n" : NULL;
}

void host_install_json_heap(void)
{
    json_set_alloc_funcs(mem_alloc, mem_free);
}

void host_reply_json(struct http_request *req, int status, json_t *body)
{
    const char *extra = front__extra(status);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL) {
        static const char oom[] = "{\"error\":{\"code\":\"internal\","
                                  "\"message\":\"out of memory\"}}\n";
        http_reply(req, 500, "application/json", oom, sizeof oom - 1, NULL);
        return;
    }
    /* A trailing newline keeps terminal output and line-based tools happy. */
    struct buf b;
    buf_init(&b);
    if (buf_append(&b, text, strlen(text)) == 0 && buf_put_u8(&b, '\n') == 0) {
        http_reply(req, status, "application/json", b.data, b.len, extra);
    } else {
        http_reply(req, status, "application/json", text, strlen(text), extra);
    }
    buf_free(&b);
    mem_free(text);
}

void host_reply_error(struct http_request *req, int status, const char *code,
                      const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_object();
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(code));
    json_t *m = json_string(msg);
    json_object_set_new(e, "message", m ? m : json_string("(not UTF-8)"));
    json_object_set_new(o, "error", e);
    host_reply_json(req, status, o);
}

/* Split "/s/<ship>/<rest>" into the ship's name and the target that the
 * program sees ("/" when rest is empty). Returns 0 or BERTH_ENOTFOUND. */
static int front__route(const char *target, char *ship, size_t ship_size,
                        const char **rest)
{
    if (strncmp(target, "/s/", 3) != 0) {
        return BERTH_ENOTFOUND;
    }
    const char *name = target + 3;
    size_t n = strcspn(name, "/?");
    if (n == 0 || n >= ship_size) {
        return BERTH_ENOTFOUND;
    }
    memcpy(ship, name, n);
    ship[n] = '\0';
    *rest = name + n;
    return 0;
}

static int front__payload(struct buf *out, const struct http_request *req,
                          const char *rest)
{
    struct frame_header headers[HTTP_MAX_HEADERS];
    char root[512];
    const char *target = rest;
    if (*rest != '/') {
        /* "/s/ann?x=1" reaches the program as "/?x=1". */
        snprintf(root, sizeof root, "/%s", rest);
        target = root;
    }
    /* Sized once: a large body is not copied into a buffer twice its
     * size. */
    size_t size = 8 + strlen(req->method) + strlen(target) + req->body.len;
    for (unsigned i = 0; i < req->n_headers; i++) {
        headers[i].name = req->headers[i].name;
        headers[i].name_len = strlen(req->headers[i].name);
        headers[i].value = req->headers[i].value;
        headers[i].value_len = strlen(req->headers[i].value);
        size += 6 + headers[i].name_len + headers[i].value_len;
    }
    if (buf_reserve_exact(out, size) != 0) {
        return BERTH_ENOMEM;
    }
    struct frame_http_request r = {
        .method = req->method,
        .method_len = strlen(req->method),
        .target = target,
        .target_len = strlen(target),
        .n_headers = (uint16_t)req->n_headers,
        .body = req->body.data,
        .body_len = req->body.len,
    };
    return frame_encode_http_request(out, &r, headers);
}

/* Which ship req is for: by its Host under the domain, else by its path.
 * Returns 0 with the ship's name or id in name and the target its program
 * sees in *rest; BERTH_ENOTFOUND when the path names no ship; or
 * BERTH_EINVAL when the Host is under the domain but names no ship (name
 * then holds the Host). */
static int front__resolve(const struct host *h, const struct http_request *req,
                          char *name, size_t size, const char **rest)
{
    const char *host = http_request_header(req, "host");
    if (h->cfg.domain != NULL && host != NULL) {
        switch (hostname_label(host, h->cfg.domain, name, size)) {
        case HOSTNAME_LABEL:
            *rest = req->target;
            return 0;
        case HOSTNAME_DEEP:
            snprintf(name, size, "%s", host);
            return BERTH_EINVAL;
        default:
            break;
        }
    }
    return front__route(req->target, name, size, rest);
}

/* Return the slot of the ship called name if a request to it would be
 * served here now: the host leads, and the ship exists, is not hidden and
 * is neither blocked nor disabled; else REGISTRY_NONE. */
static uint32_t front__servable(struct host *h, const char *name)
{
    if (!host_serving(h) || !h->leading || h->stopping) {
        return REGISTRY_NONE;
    }
    uint32_t slot = host_ship_lookup(h, name);
    if (slot == REGISTRY_NONE) {
        return REGISTRY_NONE;
    }
    uint32_t flags = registry_get(&h->reg, slot)->flags;
    if ((flags & (REGISTRY_HIDDEN | REGISTRY_BLOCKED)) ||
        host_ship_disabled(h, slot)) {
        return REGISTRY_NONE;
    }
    return slot;
}

/* Start waking the ship called name, if a request to it would be served. */
static void front__prewake(struct host *h, const char *name)
{
    uint32_t slot = front__servable(h, name);
    if (slot == REGISTRY_NONE) {
        return;
    }
    struct host_ship *s = host_ship_live(h, slot);
    if (s != NULL) {
        host_ship_prewake(s);
    }
}

void host_front_headers(const struct http_request *req, void *arg)
{
    struct host *h = arg;
    char name[STORE_ID_MAX + STORE_NAME_MAX + 2];
    const char *rest;
    if (front__resolve(h, req, name, sizeof name, &rest) == 0) {
        front__prewake(h, name);
    }
}

void host_front_server_name(const char *server_name, void *arg)
{
    struct host *h = arg;
    char name[STORE_ID_MAX + STORE_NAME_MAX + 2];
    if (h->cfg.domain != NULL &&
        hostname_label(server_name, h->cfg.domain, name, sizeof name) ==
            HOSTNAME_LABEL) {
        front__prewake(h, name);
    }
}

bool host_front_server_name_wakes(const char *server_name, void *arg)
{
    struct host *h = arg;
    char name[STORE_ID_MAX + STORE_NAME_MAX + 2];
    if (h->cfg.domain == NULL ||
        hostname_label(server_name, h->cfg.domain, name, sizeof name) !=
            HOSTNAME_LABEL) {
        return false;
    }
    uint32_t slot = front__servable(h, name);
    if (slot == REGISTRY_NONE) {
        return false;
    }
    const struct host_ship *s = registry_get(&h->reg, slot)->live;
    return s == NULL ||
           (s->core.state != SHIP_AWAKE && s->core.state != SHIP_WAKING);
}

void host_front_handle(struct http_request *req, void *arg)
{
    struct host *h = arg;
    char name[STORE_ID_MAX + STORE_NAME_MAX + 2];
    const char *rest;

    int routed = front__resolve(h, req, name, sizeof name, &rest);
    if (routed == BERTH_EINVAL) {
        host_reply_error(req, 404, "not_found", "no ship at %s", name);
        return;
    }
    if (routed != 0 && strcmp(req->target, "/healthz") == 0) {
        if (host_serving(h)) {
            http_reply(req, 200, "text/plain", "ok\n", 3, NULL);
        } else {
            host_reply_error(req, 503, "starting", "host is starting");
        }
        return;
    }
    if (routed != 0) {
        host_reply_error(req, 404, "not_found",
                         "no such path; ships are under /s/<ship>/");
        return;
    }
    if (!h->leading || h->stopping) {
        /* A stopping leader starts nothing it would have to fail: the
         * request goes to the leader it hands over to. A WebSocket needs
         * a connection of its own to it. */
        if (ws_upgrade_kind(req) == WS_UPGRADE_OK &&
            !http_request_detached(req)) {
            host_tunnel(h, req);
        } else {
            host_forward(h, req, HTTP_FORWARD_FRONT);
        }
        return;
    }
    uint32_t slot = host_ship_lookup(h, name);
    if (slot == REGISTRY_NONE ||
        (registry_get(&h->reg, slot)->flags & REGISTRY_HIDDEN)) {
        /* A hidden ship is reached by messages only, and the front door
         * does not say that it exists. */
        host_reply_error(req, 404, "not_found", "no ship named %s", name);
        return;
    }
    if (host_ship_disabled(h, slot)) {
        host_reply_error(req, 403, "account_disabled",
                         "ship %s belongs to a disabled account", name);
        return;
    }
    if (registry_get(&h->reg, slot)->flags & REGISTRY_BLOCKED) {
        host_reply_error(req, 403, "ship_blocked",
                         "ship %s is blocked by the operator", name);
        return;
    }
    enum ws_upgrade up = ws_upgrade_kind(req);
    if (up == WS_UPGRADE_BAD) {
        host_reply_error(req, 400, "bad_websocket",
                         "not a valid WebSocket opening handshake");
        return;
    }
    if (up == WS_UPGRADE_VERSION) {
        static const char body[] =
            "{\"error\":{\"code\":\"websocket_version\",\"message\":"
            "\"only WebSocket version 13 is served\"}}\n";
        http_reply(req, 426, "application/json", body, sizeof body - 1,
                   "Sec-WebSocket-Version: 13\r\n");
        return;
    }
    struct buf payload;
    buf_init(&payload);
    if (front__payload(&payload, req, rest) != 0) {
        buf_free(&payload);
        host_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    if (up == WS_UPGRADE_OK) {
        if (http_request_detached(req)) {
            /* A WebSocket needs the client's own connection. */
            buf_free(&payload);
            host_reply_error(req, 503, "unavailable",
                             "a WebSocket must reach the leader");
            return;
        }
        host_ws_open(h, slot, req, &payload);
        buf_free(&payload);
        return;
    }
    /* The payload has the body; holding both would count it twice. */
    http_request_drop_body(req);
    struct host_ship *s = host_ship_live(h, slot);
    if (s == NULL) {
        buf_free(&payload);
        host_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    host_ship_deliver(s, HOST_JOB_FRONT, req, FRAME_EVENT_HTTP, &payload);
}
