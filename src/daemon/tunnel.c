/* WebSockets through a host that does not lead: a TCP tunnel to the
 * leader's front door.
 *
 * Only the leader runs ships, so a WebSocket must end there. A host that
 * does not lead takes the client's opening handshake, opens a TCP
 * connection to the leader's front door (the leader's peer address's IP,
 * and the front-door port its heartbeats tell, core/beat.h), sends it the
 * handshake as it came, and from then on relays bytes both ways, as they
 * are, until either side closes: the leader answers the handshake (101,
 * or a refusal) and speaks WebSocket through the tunnel as to any client.
 * A client over TLS is relayed in plaintext: the tunnel starts after this
 * host has decrypted it.
 *
 * When the leader goes, its end closes and so does the client's: the
 * client connects again, to any host. Bytes from the client wait while
 * more than TUNNEL__HIGH of them are on their way to the leader (the
 * client's TCP window does the rest); bytes from the leader are written
 * to the client as they come, under the server's write deadline. */
#include <string.h>

#include "consensus/log.h"
#include "consensus/transport.h"
#include "daemon/host.h"
#include "lib/err.h"
#include "lib/mem.h"

#define TUNNEL__HIGH (1024 * 1024)
#define TUNNEL__LOW (256 * 1024)

struct tunnel {
    struct host *host;
    uv_tcp_t up; /* to the leader */
    uv_connect_t connect;
    struct http_ws *down; /* the client; NULL once gone */
    struct buf head;      /* the handshake, sent first */
    size_t queued;        /* bytes written up, not yet taken */
    bool up_open;         /* connected */
    bool up_closed;       /* closing or closed */
    bool freed_up;        /* the handle's close callback ran */
    bool paused;
};

struct tunnel__write {
    uv_write_t req;
    struct tunnel *t;
    size_t n;
    uint8_t data[];
};

static void tunnel__maybe_free(struct tunnel *t)
{
    if (t->freed_up && t->down == NULL) {
        buf_free(&t->head);
        mem_free(t);
    }
}

static void tunnel__up_closed(uv_handle_t *hd)
{
    struct tunnel *t = hd->data;
    t->freed_up = true;
    tunnel__maybe_free(t);
}

/* Close the leader's end; the client's follows once what came is
 * written. */
static void tunnel__close(struct tunnel *t)
{
    if (t->down != NULL) {
        struct http_ws *down = t->down;
        t->down = NULL;
        http_tunnel_close(down);
    }
    if (!t->up_closed) {
        t->up_closed = true;
        uv_close((uv_handle_t *)&t->up, tunnel__up_closed);
    }
}

static void tunnel__write_cb(uv_write_t *req, int status)
{
    struct tunnel__write *w = req->data;
    struct tunnel *t = w->t;
    t->queued -= w->n;
    mem_free(w);
    if (status != 0) {
        if (!t->up_closed) {
            tunnel__close(t);
        }
        return;
    }
    if (t->paused && t->queued < TUNNEL__LOW && t->down != NULL) {
        t->paused = false;
        http_ws_pause(t->down, false);
    }
}

/* Write n bytes at p to the leader (copied). */
static int tunnel__up_write(struct tunnel *t, const void *p, size_t n)
{
    struct tunnel__write *w = mem_alloc(sizeof *w + n);
    if (w == NULL) {
        return BERTH_ENOMEM;
    }
    memcpy(w->data, p, n);
    w->t = t;
    w->n = n;
    w->req.data = w;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&t->up, &b, 1, tunnel__write_cb) !=
        0) {
        mem_free(w);
        return BERTH_EIO;
    }
    t->queued += n;
    return 0;
}

static void tunnel__on_client(struct http_ws *ws, void *arg, int opcode,
                              const uint8_t *data, size_t len)
{
    struct tunnel *t = arg;
    if (t->up_closed || tunnel__up_write(t, data, len) != 0) {
        tunnel__close(t);
        return;
    }
    if (t->queued > TUNNEL__HIGH && !t->paused) {
        t->paused = true;
        http_ws_pause(ws, true);
    }
}

static void tunnel__on_client_gone(struct http_ws *ws, void *arg, uint16_t code,
                                   const char *reason, size_t len)
{
    struct tunnel *t = arg;
    t->down = NULL;
    if (!t->up_closed) {
        t->up_closed = true;
        uv_close((uv_handle_t *)&t->up, tunnel__up_closed);
    }
}

static const struct http_ws_ops tunnel__ops = {
    .message = tunnel__on_client,
    .closed = tunnel__on_client_gone,
};

static void tunnel__alloc_cb(uv_handle_t *hd, size_t hint, uv_buf_t *b)
{
    static uint8_t scratch[64 * 1024];
    b->base = (char *)scratch;
    b->len = sizeof scratch;
}

static void tunnel__read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct tunnel *t = st->data;
    if (n < 0) {
        tunnel__close(t);
        return;
    }
    if (n > 0 && (t->down == NULL ||
                  http_tunnel_write(t->down, b->base, (size_t)n) != 0)) {
        tunnel__close(t);
    }
}

static void tunnel__connect_cb(uv_connect_t *req, int status)
{
    struct tunnel *t = req->data;
    if (t->up_closed) {
        return;
    }
    if (status != 0 || t->down == NULL) {
        if (t->down != NULL) {
            static const char busy[] =
                "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                "Content-Type: application/json\r\nContent-Length: 75\r\n"
                "Connection: close\r\n\r\n"
                "{\"error\":{\"code\":\"leader_changed\",\"message\":\"cannot "
                "reach the leader\"}}";
            http_tunnel_write(t->down, busy, sizeof busy - 1);
        }
        tunnel__close(t);
        return;
    }
    t->up_open = true;
    uv_tcp_nodelay(&t->up, 1);
    if (tunnel__up_write(t, t->head.data, t->head.len) != 0 ||
        uv_read_start((uv_stream_t *)&t->up, tunnel__alloc_cb,
                      tunnel__read_cb) != 0) {
        tunnel__close(t);
        return;
    }
    buf_free(&t->head);
    t->paused = false;
    http_ws_pause(t->down, false);
}

/* The request's head as it came: request line, headers, blank line. */
static int tunnel__head(struct buf *b, const struct http_request *req)
{
    int rv = buf_append(b, req->method, strlen(req->method));
    rv = rv ? rv : buf_put_u8(b, ' ');
    rv = rv ? rv : buf_append(b, req->target, strlen(req->target));
    rv = rv ? rv : buf_append(b, " HTTP/1.1\r\n", 11);
    for (unsigned i = 0; i < req->n_headers && rv == 0; i++) {
        const struct http_header *hd = &req->headers[i];
        rv = buf_append(b, hd->name, strlen(hd->name));
        rv = rv ? rv : buf_append(b, ": ", 2);
        rv = rv ? rv : buf_append(b, hd->value, strlen(hd->value));
        rv = rv ? rv : buf_append(b, "\r\n", 2);
    }
    return rv ? rv : buf_append(b, "\r\n", 2);
}

void host_tunnel(struct host *h, struct http_request *req)
{
    uint64_t leader = log_leader(h->log);
    const struct host_beat *beat = leader != 0 && leader != log_id(h->log)
                                       ? host_beat_of(h, leader)
                                       : NULL;
    char peer[300];
    struct sockaddr_storage sa;
    if (beat == NULL || beat->said.front_port == 0 ||
        log_peer_address(h->log, leader, peer, sizeof peer) != 0 ||
        transport_parse_address(peer, &sa) != 0) {
        host_reply_error(req, 503, "leader_changed",
                         "no leader whose front door is known; retry");
        return;
    }
    if (sa.ss_family == AF_INET) {
        ((struct sockaddr_in *)&sa)->sin_port = htons(beat->said.front_port);
    } else {
        ((struct sockaddr_in6 *)&sa)->sin6_port = htons(beat->said.front_port);
    }
    struct tunnel *t = mem_calloc(1, sizeof *t);
    if (t == NULL || tunnel__head(&t->head, req) != 0) {
        if (t != NULL) {
            buf_free(&t->head);
        }
        mem_free(t);
        host_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    t->host = h;
    uv_tcp_init(&h->loop, &t->up);
    t->up.data = t;
    t->connect.data = t;
    if (http_tunnel_open(req, &tunnel__ops, t, &t->down) != 0) {
        t->down = NULL;
        t->up_closed = true;
        uv_close((uv_handle_t *)&t->up, tunnel__up_closed);
        return;
    }
    /* The client's bytes wait for the leader's end. */
    t->paused = true;
    http_ws_pause(t->down, true);
    if (uv_tcp_connect(&t->connect, &t->up, (struct sockaddr *)&sa,
                       tunnel__connect_cb) != 0) {
        tunnel__close(t);
    }
}
