/* WebSockets at the front door: the host's table of open connections.
 *
 * A client's upgrade on a ship's path becomes a WEBSOCKET OPEN event; the
 * program accepts it with a 101 reply, and the connection is open for the
 * ship once that event is released by the gate. From then on each whole
 * message from the client is a WEBSOCKET event (TEXT or BINARY), and the
 * program writes to its connections with WS_SEND and WS_CLOSE effects,
 * which the release writes to the sockets (never before their event is
 * durable). When the client goes, the ship hears CLOSED.
 *
 * The sockets live here, in the host, not in the program: a ship with
 * open sockets freezes and sleeps like any other, and its next message
 * wakes it like an HTTP request would; pings are answered by the HTTP
 * server (http/http.h) without the ship. A program that crashes loses the
 * event in flight, never a socket. A host that stops, or stops leading,
 * closes every socket (1001); a ship removed closes its own (1001), a
 * ship blocked or an account disabled theirs (1008).
 *
 * Each connection is a small entry (struct host_wsconn) in a hash table
 * keyed by its id: its ship, its account, the server's WebSocket, and the
 * count of its messages in flight (delivered to the ship, not yet
 * released): at ws_inflight the host stops reading the socket, and the
 * client's TCP window does the rest. Counts per ship and per account
 * (open and opening connections) sit in a second table. Ids are the
 * host's run (a random 32-bit number drawn at each start) in the high 32
 * bits and a counter in the low 32. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "daemon/host.h"
#include "http/websocket.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "proto/frame.h"

enum {
    WS__OPENING, /* OPEN delivered, not released */
    WS__OPEN,
};

struct host_wsconn {
    uint64_t id;
    uint64_t sid;
    uint64_t account;   /* UINT64_MAX: none known */
    struct http_ws *ws; /* NULL while opening */
    struct host_wsconn *next;
    struct host *host;
    uint32_t slot;
    uint16_t inflight; /* messages delivered, not released */
    uint8_t state;
    bool paused;
};

/* Open and opening connections of one ship (key: sid) or one account
 * (key: the account's id with the top bit set). */
struct host_wscount {
    uint64_t key;
    uint32_t n;
    struct host_wscount *next;
};

#define WS__ACCOUNT_BIT (1ULL << 63)

static uint32_t ws__hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

/* --- The tables. --- */

static struct host_wsconn *ws__find(struct host *h, uint64_t id)
{
    struct host_websockets *w = &h->ws;
    if (w->n_buckets == 0) {
        return NULL;
    }
    for (struct host_wsconn *e = w->conns[ws__hash(id) & (w->n_buckets - 1)];
         e != NULL; e = e->next) {
        if (e->id == id) {
            return e;
        }
    }
    return NULL;
}

/* Double the buckets of a table (64 at first); on failure it stays. */
static void ws__grow(void ***buckets, unsigned *n_buckets, size_t next_off,
                     size_t key_off)
{
    unsigned n = *n_buckets ? *n_buckets * 2 : 64;
    void **t = mem_calloc(n, sizeof *t);
    if (t == NULL) {
        return;
    }
    for (unsigned i = 0; i < *n_buckets; i++) {
        void *e = (*buckets)[i];
        while (e != NULL) {
            void **next = (void **)((char *)e + next_off);
            void *after = *next;
            uint64_t key;
            memcpy(&key, (char *)e + key_off, sizeof key);
            uint32_t k = ws__hash(key) & (n - 1);
            *next = t[k];
            t[k] = e;
            e = after;
        }
    }
    mem_free(*buckets);
    *buckets = t;
    *n_buckets = n;
}

/* Add delta to the count of key; 0 or BERTH_ENOMEM (only for delta > 0).
 * A count that falls to 0 goes. */
static int ws__count_add(struct host *h, uint64_t key, int delta)
{
    struct host_websockets *w = &h->ws;
    if (delta > 0 && w->n_counts >= w->n_count_buckets) {
        ws__grow((void ***)&w->counts, &w->n_count_buckets,
                 offsetof(struct host_wscount, next),
                 offsetof(struct host_wscount, key));
    }
    if (w->n_count_buckets == 0) {
        return BERTH_ENOMEM;
    }
    struct host_wscount **at =
        &w->counts[ws__hash(key) & (w->n_count_buckets - 1)];
    while (*at != NULL && (*at)->key != key) {
        at = &(*at)->next;
    }
    if (*at == NULL) {
        if (delta <= 0) {
            return 0;
        }
        struct host_wscount *c = mem_calloc(1, sizeof *c);
        if (c == NULL) {
            return BERTH_ENOMEM;
        }
        c->key = key;
        *at = c;
        w->n_counts++;
    }
    struct host_wscount *c = *at;
    c->n = delta < 0 && c->n < (uint32_t)-delta ? 0 : c->n + (uint32_t)delta;
    if (c->n == 0) {
        *at = c->next;
        mem_free(c);
        w->n_counts--;
    }
    return 0;
}

static uint32_t ws__count(struct host *h, uint64_t key)
{
    struct host_websockets *w = &h->ws;
    if (w->n_count_buckets == 0) {
        return 0;
    }
    for (struct host_wscount *c =
             w->counts[ws__hash(key) & (w->n_count_buckets - 1)];
         c != NULL; c = c->next) {
        if (c->key == key) {
            return c->n;
        }
    }
    return 0;
}

/* Take e out of the tables and free it; its socket is the caller's to
 * close (or gone). */
static void ws__remove(struct host *h, struct host_wsconn *e)
{
    struct host_websockets *w = &h->ws;
    struct host_wsconn **at = &w->conns[ws__hash(e->id) & (w->n_buckets - 1)];
    while (*at != e) {
        at = &(*at)->next;
    }
    *at = e->next;
    w->n--;
    if (e->state == WS__OPEN) {
        w->open--;
    }
    ws__count_add(h, e->sid, -1);
    if (e->account != UINT64_MAX) {
        ws__count_add(h, e->account | WS__ACCOUNT_BIT, -1);
    }
    mem_free(e);
}

/* --- Events to the ship. --- */

/* A CLOSED for a ship, made inside a release and delivered after it
 * (the fleet's release takes no new job for its ship). */
struct host_wsclosed {
    struct host_wsclosed *next;
    uint64_t id, sid;
    uint32_t slot;
};

/* Deliver a WEBSOCKET event of what, with the len bytes at data, for
 * connection id to the ship sid in slot, if the host still serves it;
 * origin and req as for host_ship_deliver. Returns 0, or a negative code
 * (req is answered). */
static int ws__deliver_to(struct host *h, uint64_t id, uint64_t sid,
                          uint32_t slot, uint8_t what, const void *data,
                          size_t len, enum host_job_origin origin,
                          struct http_request *req)
{
    struct registry_ship *r =
        slot < h->reg.n_slots ? registry_get(&h->reg, slot) : NULL;
    if (!h->leading || h->stopping || r == NULL || r->sid != sid) {
        if (req != NULL) {
            host_reply_error(req, 503, "unavailable",
                             "the ship is not served here now");
        }
        return BERTH_ESHUTDOWN;
    }
    struct buf payload;
    buf_init(&payload);
    struct frame_websocket fw = {
        .conn = id, .what = what, .data = data, .len = len};
    struct host_ship *s = NULL;
    if (buf_reserve_exact(&payload, 9 + len) != 0 ||
        frame_encode_websocket(&payload, &fw) != 0 ||
        (s = host_ship_live(h, slot)) == NULL) {
        buf_free(&payload);
        if (req != NULL) {
            host_reply_error(req, 503, "unavailable", "out of memory");
        }
        return BERTH_ENOMEM;
    }
    host_ship_deliver(s, origin, req, FRAME_EVENT_WEBSOCKET, &payload);
    return 0;
}

static int ws__deliver(struct host *h, struct host_wsconn *e, uint8_t what,
                       const void *data, size_t len,
                       enum host_job_origin origin, struct http_request *req)
{
    return ws__deliver_to(h, e->id, e->sid, e->slot, what, data, len, origin,
                          req);
}

static void ws__closed_cb(uv_timer_t *t)
{
    struct host *h = t->data;
    while (h->ws.closed != NULL) {
        struct host_wsclosed *c = h->ws.closed;
        h->ws.closed = c->next;
        ws__deliver_to(h, c->id, c->sid, c->slot, FRAME_WS_CLOSED, "\xee\x03",
                       2, HOST_JOB_WS, NULL);
        mem_free(c);
    }
}

/* Tell e's ship, soon, that e dropped (1006). */
static void ws__closed_later(struct host *h, const struct host_wsconn *e)
{
    struct host_wsclosed *c = mem_alloc(sizeof *c);
    if (c == NULL) {
        return; /* the ship keeps a conn that sends go nowhere to */
    }
    c->id = e->id;
    c->sid = e->sid;
    c->slot = e->slot;
    c->next = h->ws.closed;
    h->ws.closed = c;
    uv_timer_start(&h->ws.closed_timer, ws__closed_cb, 0, 0);
}

static void ws__on_message(struct http_ws *ws, void *arg, int opcode,
                           const uint8_t *data, size_t len)
{
    struct host_wsconn *e = arg;
    struct host *h = e->host;
    uint8_t what = opcode == WS_OP_TEXT ? FRAME_WS_TEXT : FRAME_WS_BINARY;
    h->ws.messages_in++;
    /* Counted first: a job that fails at once is released inside the
     * delivery. */
    e->inflight++;
    if (ws__deliver(h, e, what, data, len, HOST_JOB_WS, NULL) != 0) {
        http_ws_close(ws, WS_CLOSE_GOING_AWAY, "the ship is not served here");
        ws__remove(h, e);
        return;
    }
    if (e->inflight >= h->cfg.ws_inflight && !e->paused) {
        /* The client waits in TCP until the ship catches up. */
        e->paused = true;
        http_ws_pause(ws, true);
    }
}

static void ws__on_closed(struct http_ws *ws, void *arg, uint16_t code,
                          const char *reason, size_t len)
{
    struct host_wsconn *e = arg;
    struct host *h = e->host;
    uint8_t p[2 + WS_REASON_MAX];
    if (len > WS_REASON_MAX) {
        len = WS_REASON_MAX;
    }
    put_le16(p, code);
    memcpy(p + 2, reason, len);
    e->ws = NULL;
    ws__deliver(h, e, FRAME_WS_CLOSED, p, 2 + len, HOST_JOB_WS, NULL);
    ws__remove(h, e);
}

static const struct http_ws_ops ws__ops = {
    .message = ws__on_message,
    .closed = ws__on_closed,
};

/* --- The front door's part. --- */

void host_ws_init(struct host *h)
{
    memset(&h->ws, 0, sizeof h->ws);
    do {
        randombytes_buf(&h->ws.run, sizeof h->ws.run);
    } while (h->ws.run == 0);
}

void host_ws_start(struct host *h)
{
    uv_timer_init(&h->loop, &h->ws.closed_timer);
    h->ws.closed_timer.data = h;
    h->ws.started = true;
}

void host_ws_free(struct host *h)
{
    struct host_websockets *w = &h->ws;
    if (w->started) {
        uv_timer_stop(&w->closed_timer);
    }
    while (w->closed != NULL) {
        struct host_wsclosed *c = w->closed;
        w->closed = c->next;
        mem_free(c);
    }
    for (unsigned i = 0; i < w->n_buckets; i++) {
        while (w->conns[i] != NULL) {
            struct host_wsconn *e = w->conns[i];
            w->conns[i] = e->next;
            mem_free(e);
        }
    }
    for (unsigned i = 0; i < w->n_count_buckets; i++) {
        while (w->counts[i] != NULL) {
            struct host_wscount *c = w->counts[i];
            w->counts[i] = c->next;
            mem_free(c);
        }
    }
    mem_free(w->conns);
    mem_free(w->counts);
    w->conns = NULL;
    w->counts = NULL;
    w->n_buckets = w->n_count_buckets = w->n = w->n_counts = 0;
}

void host_ws_open(struct host *h, uint32_t slot, struct http_request *req,
                  const struct buf *http_payload)
{
    struct host_websockets *w = &h->ws;
    uint64_t sid = registry_get(&h->reg, slot)->sid;
    uint64_t account;
    if (store_ship_account(h->store, sid, &account) != 0 || account == 0) {
        account = UINT64_MAX; /* the operator's ships: no account's limit */
    }
    if (ws__count(h, sid) >= h->cfg.ws_per_ship) {
        w->refused++;
        host_reply_error(req, 429, "too_many_websockets",
                         "the ship has %u WebSockets open, its most",
                         h->cfg.ws_per_ship);
        return;
    }
    if (account != UINT64_MAX &&
        ws__count(h, account | WS__ACCOUNT_BIT) >= h->cfg.ws_per_account) {
        w->refused++;
        host_reply_error(req, 429, "too_many_websockets",
                         "the account has %u WebSockets open, its most",
                         h->cfg.ws_per_account);
        return;
    }
    if (w->n >= w->n_buckets) {
        ws__grow((void ***)&w->conns, &w->n_buckets,
                 offsetof(struct host_wsconn, next),
                 offsetof(struct host_wsconn, id));
    }
    struct host_wsconn *e = mem_calloc(1, sizeof *e);
    if (e == NULL || w->n_buckets == 0 || ws__count_add(h, sid, 1) != 0) {
        mem_free(e);
        host_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    if (account != UINT64_MAX &&
        ws__count_add(h, account | WS__ACCOUNT_BIT, 1) != 0) {
        ws__count_add(h, sid, -1);
        mem_free(e);
        host_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    if (++w->next == 0) {
        w->next = 1; /* conn is never 0 */
    }
    e->id = (uint64_t)w->run << 32 | w->next;
    e->sid = sid;
    e->slot = slot;
    e->account = account;
    e->host = h;
    e->state = WS__OPENING;
    uint32_t k = ws__hash(e->id) & (w->n_buckets - 1);
    e->next = w->conns[k];
    w->conns[k] = e;
    w->n++;
    if (ws__deliver(h, e, FRAME_WS_OPEN, http_payload->data, http_payload->len,
                    HOST_JOB_FRONT, req) != 0) {
        ws__remove(h, e);
    }
}

/* Write the WebSocket effects of j (released, not failed). */
static void ws__effects(struct host *h, const struct fleet_job *j)
{
    struct cursor c;
    cursor_init(&c, j->ws_fx.data, j->ws_fx.len);
    while (cursor_left(&c) > 0) {
        uint8_t kind = cursor_u8(&c);
        uint32_t len = cursor_u32(&c);
        const uint8_t *p = cursor_bytes(&c, len);
        if (c.err != 0) {
            return;
        }
        struct frame_ws_send sd;
        struct frame_ws_close cl;
        uint64_t conn = 0;
        if (kind == FRAME_EFFECT_WS_SEND) {
            if (frame_decode_ws_send(p, len, &sd) != 0) {
                continue;
            }
            conn = sd.conn;
        } else if (frame_decode_ws_close(p, len, &cl) == 0) {
            conn = cl.conn;
        } else {
            continue;
        }
        struct host_wsconn *e = ws__find(h, conn);
        if (e == NULL || e->state != WS__OPEN || e->sid != j->ship->sid) {
            /* Closed, of another run, or another ship's. */
            h->ws.dropped++;
            continue;
        }
        if (kind == FRAME_EFFECT_WS_SEND) {
            if (http_ws_send(e->ws, sd.opcode, sd.data, sd.len) == 0) {
                h->ws.messages_out++;
            } else {
                h->ws.dropped++;
            }
        } else {
            char reason[WS_REASON_MAX + 1];
            memcpy(reason, cl.reason, cl.reason_len);
            reason[cl.reason_len] = '\0';
            http_ws_close(e->ws, cl.code, reason);
            ws__remove(h, e);
        }
    }
}

void host_ws_released(struct host *h, struct fleet_job *j)
{
    bool failed = j->refused || j->error_code[0] != '\0';
    struct host_wsconn *e = ws__find(h, j->ws_conn);
    if (e != NULL && e->sid != j->ship->sid) {
        e = NULL;
    }
    bool open = j->kind == FRAME_EVENT_WEBSOCKET && j->ws_what == FRAME_WS_OPEN;
    if (open && (e == NULL || e->state != WS__OPENING)) {
        /* Its connection is gone already (the host stopped serving the
         * ship meanwhile): a 101 cannot be given as a plain reply. */
        if (!failed && j->status == 101 && j->req != NULL) {
            struct http_request *req = j->req;
            j->req = NULL;
            host_reply_error(req, 503, "unavailable",
                             "the host no longer serves the ship");
        }
    } else if (open) {
        struct http_request *req = j->req;
        if (failed || j->status != 101 || req == NULL || !h->leading ||
            h->stopping) {
            /* Refused: the reply (or the error) goes out as HTTP. */
            ws__remove(h, e);
            if (!failed && j->status == 101 && req != NULL) {
                j->req = NULL;
                host_reply_error(req, 503, "unavailable",
                                 "the host no longer serves the ship");
            }
        } else {
            j->req = NULL;
            struct http_ws_config cfg = {.max_message = h->cfg.ws_max_message,
                                         .ping_ms = h->cfg.ws_ping_ms};
            struct http_ws *ws;
            if (http_ws_accept(req, &ws__ops, e, &cfg, NULL, &ws) == 0) {
                e->ws = ws;
                e->state = WS__OPEN;
                h->ws.open++;
                h->ws.opened++;
            } else {
                /* The client went before its 101: the ship hears of it. */
                ws__closed_later(h, e);
                ws__remove(h, e);
            }
        }
    } else if (j->origin == FLEET_JOB_WS && e != NULL &&
               (j->ws_what == FRAME_WS_TEXT || j->ws_what == FRAME_WS_BINARY) &&
               e->inflight > 0) {
        e->inflight--;
        if (e->paused && e->inflight < h->cfg.ws_inflight &&
            e->state == WS__OPEN) {
            e->paused = false;
            http_ws_pause(e->ws, false);
        }
    }
    if (!failed && j->ws_fx.len > 0) {
        ws__effects(h, j);
    }
}

/* Close every open connection for which pick says yes (every one when
 * pick is NULL) with code and reason; the ships are not told. */
static void ws__close_where(struct host *h, uint16_t code, const char *reason,
                            bool (*pick)(struct host *, struct host_wsconn *,
                                         uint64_t),
                            uint64_t arg)
{
    struct host_websockets *w = &h->ws;
    for (unsigned i = 0; i < w->n_buckets; i++) {
        struct host_wsconn *e = w->conns[i];
        while (e != NULL) {
            struct host_wsconn *next = e->next;
            if (e->state == WS__OPEN && (pick == NULL || pick(h, e, arg))) {
                http_ws_close(e->ws, code, reason);
                ws__remove(h, e);
            }
            e = next;
        }
    }
}

static bool ws__of_ship(struct host *h, struct host_wsconn *e, uint64_t sid)
{
    return e->sid == sid;
}

static bool ws__disabled(struct host *h, struct host_wsconn *e, uint64_t arg)
{
    return e->account != UINT64_MAX && host_account_disabled(h, e->account);
}

void host_ws_close_all(struct host *h, const char *reason)
{
    ws__close_where(h, WS_CLOSE_GOING_AWAY, reason, NULL, 0);
}

void host_ws_close_ship(struct host *h, uint64_t sid, uint16_t code,
                        const char *reason)
{
    ws__close_where(h, code, reason, ws__of_ship, sid);
}

void host_ws_close_disabled(struct host *h)
{
    if (h->n_disabled > 0) {
        ws__close_where(h, WS_CLOSE_POLICY, "the account is disabled",
                        ws__disabled, 0);
    }
}
