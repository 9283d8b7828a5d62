/* The HTTP server: llhttp parses, libuv moves bytes.
 *
 * A connection parses one request at a time. When a request is complete the
 * parser is paused (on_message_complete returns HPE_PAUSED), the handler is
 * called outside of llhttp, and the bytes after the request wait in the
 * connection's input buffer until http_reply() resumes parsing. A
 * connection whose socket closes while its request awaits a reply becomes a
 * "dead" connection: its memory stays until that reply, which is dropped.
 *
 * Memory. Reads go through one scratch buffer per thread; a connection
 * keeps an input buffer only while it holds bytes not yet parsed, so an
 * idle connection costs its struct and no buffer. A reply is written from
 * one buffer (head and body), or, with http_reply_take, from a small head
 * and the caller's own body, not copied.
 *
 * Deadlines. One timer per connection serves the earliest of: the header
 * deadline (set at a request's first byte, not moved by later bytes, so a
 * client that trickles its headers is cut off), the body's idle limit
 * (moved by every read), the body's deadline (set at the end of the
 * headers, moved by a second for every min_rate bytes received, so a
 * client that trickles its body is cut off too), the write stall limit
 * (moved when a reply is taken whole, or min_rate bytes a second of it
 * are), and the idle limit of a keep-alive connection. http__settle
 * recomputes all of them, the idle list, reading and the bytes counted,
 * after every change of a connection's state. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/forward.h"
#include "http/http.h"
#include "http/internal.h"
#include "http/tls.h"
#include "http/websocket.h"
#include "lib/err.h"
#include "lib/mem.h"

/* Reads land here first: the loop reads on one thread, each alloc callback
 * followed at once by its read callback, so one buffer serves every
 * connection, and only bytes left unparsed are copied out. */
#define HTTP__SCRATCH_SIZE (64 * 1024)
static _Thread_local uint8_t http__scratch[HTTP__SCRATCH_SIZE];

/* A connection that was refused or failed gets this long to take its
 * error answer before it is closed regardless. */
#define HTTP__LINGER_MS 1000

/* What a TLS connection is counted for in the budget beyond its buffers:
 * OpenSSL's state of one connection, its records' buffers and the
 * handshake's, an estimate (OpenSSL allocates them itself). */
#define HTTP__TLS_BYTES (32 * 1024)

struct http_conn;

/* A connection turned WebSocket (http_ws_accept): its frames' reader and
 * the bytes of a frame not yet whole; the in buffer is freed whenever it
 * is empty, so an idle WebSocket holds this struct and no buffer. */
struct http_ws {
    struct http_conn *conn;
    const struct http_ws_ops *ops; /* NULL once the owner let go */
    void *arg;
    struct buf in;
    struct ws_reader rd;
    unsigned ping_ms;
    bool paused;   /* the owner stopped reading */
    bool ping_out; /* a ping went out and no byte came since */
    bool raw;      /* a tunnel (http_tunnel_open): bytes, not frames */
};

/* Connections from one client address, for the per-address cap. */
struct http__peer {
    uint8_t addr[16]; /* IPv6, or IPv4 mapped into IPv6 */
    unsigned n;
    struct http__peer *next;
};

struct http_server {
    uv_loop_t *loop;
    struct http_server_config cfg;
    http_handler_cb cb;
    void *arg;
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } listener;
    bool listening;
    bool is_tcp;
    /* The TLS listener, beside the plain one (http_server_listen_tls). */
    uv_tcp_t tls_listener;
    bool tls_listening;
    struct http_tls *tls; /* not owned */
    bool closing;
    unsigned open_handles; /* listener + connections' handles */
    struct http_conn *conns;
    unsigned n_conns;
    unsigned n_ws; /* of them, WebSockets */
    /* Idle connections, longest idle first. */
    struct http_conn *idle_head, *idle_tail;
    unsigned n_idle;
    enum http_throttle throttle;
    struct http_conn *let_on;  /* read under HTTP_THROTTLE_ONE */
    struct http__peer **peers; /* hash buckets */
    unsigned n_buckets, n_peers;
    http_close_cb close_cb;
    void *close_arg;
};

struct http_conn {
    struct http_server *server;
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_stream_t stream;
    } h;
    uv_timer_t timer;
    int open_handles;
    /* The request parser while the connection speaks HTTP; NULL once it
     * is a WebSocket (ws), whose idle state is a few bytes. */
    struct http_parser *p;
    struct http_ws *ws;     /* NULL: HTTP */
    uint64_t ping_deadline; /* a WebSocket's next ping, or its pong's end */
    const struct http__transport *xport; /* plain or TLS */
    struct http_tls_conn *tls;           /* NULL: plain */
    /* The handshake's costly part on a worker thread, or NULL: while it
     * runs, the loop touches nothing of tls. */
    struct http__tls_work *work;
    bool free_after_work; /* freed while the worker ran: free when done */
    struct http_request *pending; /* handed to the handler, not answered */
    struct budget *budget;
    struct http__peer *peer; /* NULL: not counted per address */
    bool reading;
    bool closing;
    bool is_tcp;
    bool close_after_reply;
    bool finishing;    /* the last reply is on its way: nothing more is read */
    bool failed;       /* an error answer is on its way; nothing more is read */
    bool idle;         /* in the server's idle list */
    bool in_drive;     /* http__drive is on the stack */
    bool hs_started;   /* a byte of a TLS handshake has come */
    unsigned n_writes; /* writes not yet completed */
    uint64_t writes_done; /* writes completed, ever */
    /* The write stall check: progress since these were taken. */
    uint64_t check_done;
    size_t check_queued;
    /* Deadlines in loop milliseconds; 0: none. */
    uint64_t header_deadline, body_deadline, write_deadline, idle_deadline;
    uint64_t body_end;     /* the body's deadline, for its rate */
    uint64_t body_started; /* when the headers ended; 0: no body yet */
    uint64_t timer_due;    /* when the timer, if active, fires */
    uint64_t started_ms;   /* when the unfinished request began */
    uint64_t counted;      /* bytes counted in the budget, not draining */
    uint64_t pending_size;
    uint64_t pending_body; /* of pending_size: the body's, at handoff */
    struct http_conn *prev, *next;
    struct http_conn *idle_prev, *idle_next;
};

/* The handshake's costly part (the key exchange and the certificate's
 * signature), run on libuv's thread pool so that the loop goes on
 * meanwhile: with a ship's wake, started by the ClientHello's name. The
 * worker also sends the answer it made itself, on a duplicate of the
 * socket: the loop, busy with the wake, would send it only once the wake
 * lets go of it, and the client's share of the handshake (checking the
 * certificate, its own key exchange) would wait for the wake instead of
 * overlapping it. */
struct http__tls_work {
    uv_work_t req;
    struct http_conn *conn;
    struct http_tls_conn *tls;
    int fd; /* the socket's duplicate, or -1: the loop sends the answer */
    int rv;
    struct buf plain, out;
    char errmsg[ERRMSG_SIZE];
};

struct http__write {
    uv_write_t req;
    struct http_conn *conn;
    uint8_t *data;    /* the head, or head and body */
    void *mem;        /* the body's memory, taken from the caller, or NULL */
    uint64_t counted; /* bytes counted as draining */
    bool close;
};

/* How a connection's bytes cross its socket: as they are, or through
 * TLS (http/tls.h). Either way the parser, the deadlines, the caps and
 * the budget see the same plaintext, and writes leave through
 * http__write_raw. */
struct http__transport {
    /* Take n bytes read from the socket at data (the scratch buffer, or
     * the tail of c->p.in that http__alloc_cb gave): what they carry goes
     * into c->p.in. Returns 0, or a negative code once it has failed or
     * closed the connection. */
    int (*take)(struct http_conn *c, uint8_t *data, size_t n);
    /* Send the bytes of b (taken), then, if mem is not NULL, the len
     * bytes at body inside mem (taken; counted of its bytes are counted
     * already as draining); close once they are written. */
    int (*send)(struct http_conn *c, struct buf *b, void *mem, uint64_t counted,
                const void *body, size_t len, bool close);
};

/* --- Client addresses, for the per-address cap. --- */

static uint32_t http__hash(const uint8_t *addr)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < 16; i++) {
        h = (h ^ addr[i]) * 16777619u;
    }
    return h;
}

/* Grow the table of addresses to twice its size (64 buckets at first);
 * on failure the old table stays. */
static void http__peers_grow(struct http_server *s)
{
    unsigned n = s->n_buckets ? s->n_buckets * 2 : 64;
    struct http__peer **t = mem_calloc(n, sizeof *t);
    if (t == NULL) {
        return;
    }
    for (unsigned i = 0; i < s->n_buckets; i++) {
        struct http__peer *p = s->peers[i];
        while (p != NULL) {
            struct http__peer *next = p->next;
            uint32_t k = http__hash(p->addr) & (n - 1);
            p->next = t[k];
            t[k] = p;
            p = next;
        }
    }
    mem_free(s->peers);
    s->peers = t;
    s->n_buckets = n;
}

/* Return the entry of addr, adding one with no connection if there is
 * none; NULL when out of memory. */
static struct http__peer *http__peer_get(struct http_server *s,
                                         const uint8_t *addr)
{
    if (s->n_buckets > 0) {
        uint32_t k = http__hash(addr) & (s->n_buckets - 1);
        for (struct http__peer *p = s->peers[k]; p != NULL; p = p->next) {
            if (memcmp(p->addr, addr, sizeof p->addr) == 0) {
                return p;
            }
        }
    }
    if (s->n_peers >= s->n_buckets) {
        http__peers_grow(s);
        if (s->n_buckets == 0) {
            return NULL;
        }
    }
    struct http__peer *p = mem_calloc(1, sizeof *p);
    if (p == NULL) {
        return NULL;
    }
    memcpy(p->addr, addr, sizeof p->addr);
    uint32_t k = http__hash(addr) & (s->n_buckets - 1);
    p->next = s->peers[k];
    s->peers[k] = p;
    s->n_peers++;
    return p;
}

/* One connection fewer from p's address; the entry goes with the last. */
static void http__peer_put(struct http_server *s, struct http__peer *p)
{
    if (--p->n > 0) {
        return;
    }
    struct http__peer **at =
        &s->peers[http__hash(p->addr) & (s->n_buckets - 1)];
    while (*at != p) {
        at = &(*at)->next;
    }
    *at = p->next;
    s->n_peers--;
    mem_free(p);
}

/* Set addr to the client's address, IPv4 mapped into IPv6; 0 or -1. */
static int http__peer_addr(struct http_conn *c, uint8_t *addr)
{
    struct sockaddr_storage sa;
    int len = sizeof sa;
    if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&sa, &len) != 0) {
        return -1;
    }
    memset(addr, 0, 16);
    if (sa.ss_family == AF_INET) {
        addr[10] = addr[11] = 0xff;
        memcpy(addr + 12, &((struct sockaddr_in *)&sa)->sin_addr, 4);
        return 0;
    }
    if (sa.ss_family == AF_INET6) {
        memcpy(addr, &((struct sockaddr_in6 *)&sa)->sin6_addr, 16);
        return 0;
    }
    return -1;
}

/* --- Connections. --- */

static void http__conn_unlink(struct http_conn *c)
{
    struct http_server *s = c->server;
    if (c->prev || s->conns == c) {
        s->n_conns--;
    }
    if (c->prev) {
        c->prev->next = c->next;
    } else if (s->conns == c) {
        s->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
}

static void http__idle_remove(struct http_conn *c)
{
    struct http_server *s = c->server;
    if (!c->idle) {
        return;
    }
    if (c->idle_prev) {
        c->idle_prev->idle_next = c->idle_next;
    } else {
        s->idle_head = c->idle_next;
    }
    if (c->idle_next) {
        c->idle_next->idle_prev = c->idle_prev;
    } else {
        s->idle_tail = c->idle_prev;
    }
    c->idle_prev = c->idle_next = NULL;
    c->idle = false;
    c->idle_deadline = 0;
    s->n_idle--;
}

static void http__idle_add(struct http_conn *c, uint64_t now)
{
    struct http_server *s = c->server;
    c->idle_prev = s->idle_tail;
    c->idle_next = NULL;
    if (s->idle_tail) {
        s->idle_tail->idle_next = c;
    } else {
        s->idle_head = c;
    }
    s->idle_tail = c;
    c->idle = true;
    c->idle_deadline = now + s->cfg.idle_timeout_ms;
    s->n_idle++;
}

static void http__server_maybe_closed(struct http_server *s)
{
    if (s->closing && s->open_handles == 0) {
        http_close_cb cb = s->close_cb;
        void *arg = s->close_arg;
        mem_free(s->peers);
        mem_free(s);
        if (cb) {
            cb(NULL, arg);
        }
    }
}

/* The buffer a connection's received bytes go to. */
static struct buf *http__in(struct http_conn *c)
{
    return c->ws != NULL ? &c->ws->in : &c->p->in;
}

static void http__ws_free(struct http_ws *ws)
{
    if (ws != NULL) {
        buf_free(&ws->in);
        ws_reader_free(&ws->rd);
        mem_free(ws);
    }
}

/* Tell a WebSocket's owner that it is gone, once. */
static void http__ws_report(struct http_ws *ws, uint16_t code,
                            const char *reason, size_t len)
{
    const struct http_ws_ops *ops = ws->ops;
    if (ops != NULL) {
        ws->ops = NULL;
        ops->closed(ws, ws->arg, code, reason, len);
    }
}

static void http__conn_free(struct http_conn *c)
{
    if (c->work != NULL) {
        /* The worker has its TLS state: freed once it is done. */
        c->free_after_work = true;
        return;
    }
    budget_sub(c->budget, c->counted, false);
    if (c->p != NULL) {
        http_parser_free(c->p);
        mem_free(c->p);
    }
    http__ws_free(c->ws);
    http_tls_conn_free(c->tls);
    mem_free(c);
}

static void http__conn_handle_closed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    struct http_server *s = c->server;
    c->open_handles--;
    s->open_handles--;
    if (c->open_handles == 0) {
        /* A WebSocket's owner hears of its end here, in a callback of its
         * own, never inside one of its calls into the server. */
        if (c->ws != NULL) {
            http__ws_report(c->ws, WS_CLOSE_ABNORMAL, "", 0);
        }
        /* With a request still out, the connection lives on until its
         * reply; the server no longer knows it. */
        c->server = NULL;
        if (c->pending == NULL) {
            http__conn_free(c);
        }
    }
    http__server_maybe_closed(s);
}

static void http__conn_close(struct http_conn *c)
{
    if (c->closing) {
        return;
    }
    struct http_server *s = c->server;
    http__idle_remove(c);
    c->closing = true;
    c->reading = false;
    if (s->let_on == c) {
        s->let_on = NULL;
    }
    if (c->peer != NULL) {
        http__peer_put(s, c->peer);
        c->peer = NULL;
    }
    http__conn_unlink(c);
    if (c->ws != NULL) {
        s->n_ws -= c->ws->raw ? 0 : 1;
    }
    uv_close((uv_handle_t *)&c->h.stream, http__conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, http__conn_handle_closed);
}

/* --- Bytes held, reading, deadlines. --- */

static uint64_t http__request_size(const struct http_request *r,
                                   size_t header_bytes)
{
    return sizeof *r + r->body.cap + header_bytes;
}

/* Bring the bytes this connection counts in the budget up to date. */
static void http__account(struct http_conn *c)
{
    const struct http_parser *p = c->p;
    uint64_t n = c->pending_size + (c->tls != NULL ? HTTP__TLS_BYTES : 0);
    if (c->ws != NULL) {
        n += c->ws->in.cap + c->ws->rd.msg.cap;
    } else {
        n += p->in.cap + p->target.cap + p->field.cap + p->value.cap;
    }
    if (p != NULL && p->req != NULL) {
        /* A body of known length has its whole buffer already, but only
         * the part received is touched (and costs memory); counting the
         * rest would let a client that declares a length and sends
         * nothing hold the host back. */
        n += sizeof *p->req + p->header_bytes + p->req->body.len;
    }
    if (n > c->counted) {
        budget_add(c->budget, n - c->counted, false);
    } else {
        budget_sub(c->budget, c->counted - n, false);
    }
    c->counted = n;
}

static bool http__wants_read(const struct http_conn *c)
{
    const struct http_server *s = c->server;
    if (c->closing || c->failed || c->finishing || c->work != NULL) {
        return false;
    }
    if (s->throttle == HTTP_THROTTLE_ALL ||
        (s->throttle == HTTP_THROTTLE_ONE && s->let_on != c)) {
        return false;
    }
    if (c->ws != NULL) {
        /* A frame is refused from its head when it is over the limit, so
         * what is buffered stays under a message and a read. */
        return !c->ws->paused;
    }
    if (c->pending != NULL) {
        /* Pipelined bytes wait; limit them so a client cannot make us
         * buffer without bound while a request is served. */
        return s->throttle == HTTP_THROTTLE_OFF &&
               c->p->in.len <= s->cfg.max_body + s->cfg.max_header;
    }
    return true;
}

static void http__alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b);
static int http__write_raw(struct http_conn *c, struct buf *b, void *mem,
                           uint64_t counted, const void *body, size_t len,
                           bool close);
static void http__read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b);

static void http__update_reading(struct http_conn *c)
{
    bool want = http__wants_read(c);
    if (want && !c->reading) {
        c->reading =
            uv_read_start(&c->h.stream, http__alloc_cb, http__read_cb) == 0;
    } else if (!want && c->reading) {
        uv_read_stop(&c->h.stream);
        c->reading = false;
    }
}

static void http__timer_cb(uv_timer_t *t);
static void http__ws_drive(struct http_conn *c);
static int http__ws_frame(struct http_conn *c, uint8_t opcode, const void *p,
                          size_t n, bool close);

/* Run the timer until the earliest deadline. */
static void http__arm(struct http_conn *c)
{
    if (c->closing) {
        return;
    }
    const uint64_t d[] = {c->header_deadline, c->body_deadline,
                          c->body_end,        c->write_deadline,
                          c->idle_deadline,   c->ping_deadline};
    uint64_t next = 0;
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        if (d[i] != 0 && (next == 0 || d[i] < next)) {
            next = d[i];
        }
    }
    /* Lazily: a timer due no later than the earliest deadline is left as
     * it is, since a fire before any deadline only arms it again; so a
     * request, which moves the deadlines later, costs no timer operation.
     * A deadline earlier than the armed one starts it anew. */
    if (next == 0 ||
        (uv_is_active((uv_handle_t *)&c->timer) && c->timer_due <= next)) {
        return;
    }
    uint64_t now = uv_now(c->timer.loop);
    uv_timer_start(&c->timer, http__timer_cb, next > now ? next - now : 0, 0);
    c->timer_due = next;
}

/* Return the deadline of the body being received: body_timeout_ms from
 * the end of the headers, and a second more for every min_rate bytes
 * of it received. */
static uint64_t http__body_end(const struct http_conn *c)
{
    const struct http_server_config *cfg = &c->server->cfg;
    uint64_t got = c->p->req != NULL ? c->p->req->body.len : 0;
    return c->body_started + cfg->body_timeout_ms + got * 1000 / cfg->min_rate;
}

/* Recompute everything that follows from the connection's state: its
 * deadlines, its place among the idle, whether it reads, and the bytes it
 * counts. got_bytes: a read just brought bytes. */
static void http__settle(struct http_conn *c, bool got_bytes)
{
    if (c->closing) {
        return;
    }
    struct http_server *s = c->server;
    uint64_t now = uv_now(s->loop);
    unsigned idle_ms = s->cfg.idle_timeout_ms;
    if (c->ws != NULL && !c->failed) {
        http__idle_remove(c);
        if (c->ws->raw) {
            /* A tunnel's liveness is the far end's to judge. */
        } else if (got_bytes || c->ping_deadline == 0) {
            c->ws->ping_out = false;
            c->ping_deadline = now + c->ws->ping_ms;
        }
        if (c->n_writes == 0) {
            c->write_deadline = 0;
        } else if (c->write_deadline == 0) {
            c->write_deadline = now + idle_ms;
            c->check_done = c->writes_done;
            c->check_queued = uv_stream_get_write_queue_size(&c->h.stream);
        }
    } else if (!c->failed) {
        /* A TLS handshake begun is the first request's headers begun: it
         * has their deadline. */
        bool started = c->pending == NULL &&
                       (http_parser_started(c->p) ||
                        (c->tls != NULL && c->hs_started &&
                         (c->work != NULL || !http_tls_conn_ready(c->tls))));
        bool body = started && http_parser_headers_done(c->p);
        c->header_deadline = !started || body ? 0
                             : c->header_deadline
                                 ? c->header_deadline
                                 : now + s->cfg.header_timeout_ms;
        c->body_deadline = !body ? 0
                           : got_bytes || c->body_deadline == 0
                               ? now + idle_ms
                               : c->body_deadline;
        if (!body) {
            c->body_started = 0;
        } else if (c->body_started == 0) {
            c->body_started = now;
        }
        c->body_end = !body ? 0 : http__body_end(c);
        if (!started) {
            c->started_ms = 0;
        } else if (c->started_ms == 0) {
            c->started_ms = now + 1;
        }
        if (c->n_writes == 0) {
            c->write_deadline = 0;
        } else if (c->write_deadline == 0) {
            c->write_deadline = now + idle_ms;
            c->check_done = c->writes_done;
            c->check_queued = uv_stream_get_write_queue_size(&c->h.stream);
        }
        bool idle = !started && c->pending == NULL && c->n_writes == 0 &&
                    c->p->in.len == 0 && !c->finishing;
        if (!idle) {
            http__idle_remove(c);
        } else if (!c->idle) {
            http__idle_add(c, now);
            if (s->cfg.max_idle != 0 && s->n_idle > s->cfg.max_idle) {
                http__conn_close(s->idle_head);
            }
        }
    }
    if (c->closing) {
        return;
    }
    http__update_reading(c);
    http__account(c);
    http__arm(c);
}

/* --- Writing. --- */

static void http__write_cb(uv_write_t *req, int status)
{
    struct http__write *w = req->data;
    struct http_conn *c = w->conn;
    mem_free(w->data);
    mem_free(w->mem);
    budget_sub(c->budget, w->counted, true);
    bool close = w->close || status != 0;
    mem_free(w);
    c->n_writes--;
    c->writes_done++;
    if (close) {
        http__conn_close(c);
        return;
    }
    http__settle(c, false);
}

/* Write the bytes of b (taken), then, if mem is not NULL, the len bytes at
 * body inside mem (taken; counted of its bytes are counted already as
 * draining), to the socket as they are. */
static int http__write_raw(struct http_conn *c, struct buf *b, void *mem,
                           uint64_t counted, const void *body, size_t len,
                           bool close)
{
    uv_buf_t ub[2] = {uv_buf_init((char *)b->data, (unsigned)b->len),
                      uv_buf_init((char *)body, (unsigned)len)};
    unsigned nb = mem != NULL ? 2 : 1;
    if (c->n_writes == 0) {
        /* A reply that the socket takes at once needs no request: queued,
         * libuv would also register the connection with epoll again when
         * the write completes, one system call a reply for nothing. */
        size_t total = b->len + (mem != NULL ? len : 0);
        int n = uv_try_write(&c->h.stream, ub, nb);
        if (n >= 0 && (size_t)n == total) {
            buf_free(b);
            mem_free(mem);
            budget_sub(c->budget, counted, true);
            c->writes_done++;
            if (close) {
                http__conn_close(c);
            }
            return 0;
        }
        /* The rest is queued; an error is left to the queued write to
         * report. */
        size_t done = n > 0 ? (size_t)n : 0;
        if (done >= ub[0].len) {
            done -= ub[0].len;
            ub[0] = ub[1];
            nb = 1;
        }
        ub[0].base += done;
        ub[0].len -= done;
    }
    struct http__write *w = mem_alloc(sizeof *w);
    if (w == NULL) {
        buf_free(b);
        mem_free(mem);
        budget_sub(c->budget, counted, true);
        http__conn_close(c);
        return BERTH_ENOMEM;
    }
    w->conn = c;
    w->data = b->data;
    w->mem = mem;
    w->counted = counted + b->cap;
    w->close = close;
    w->req.data = w;
    budget_add(c->budget, b->cap, true);
    buf_init(b);
    int rv = uv_write(&w->req, &c->h.stream, ub, nb, http__write_cb);
    if (rv != 0) {
        budget_sub(c->budget, w->counted, true);
        mem_free(w->data);
        mem_free(w->mem);
        mem_free(w);
        http__conn_close(c);
        return BERTH_EIO;
    }
    c->n_writes++;
    return 0;
}

/* Append the string s to b, which has room for it. */
static void http__put(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

/* Format a response head into b, followed by the copy_len bytes at copy
 * (NULL: none); length is the body's full length. */
static int http__format(struct buf *b, int status, const char *ctype,
                        const void *copy, size_t copy_len, size_t length,
                        const char *extra, bool close)
{
    /* Put together by hand: snprintf was a tenth of a reply's user time. */
    if (status < 100 || status > 999) {
        return BERTH_EINVAL;
    }
    char num[24];
    char *d = num + sizeof num;
    size_t v = length;
    do {
        *--d = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    const char code[4] = {(char)('0' + status / 100),
                          (char)('0' + status / 10 % 10),
                          (char)('0' + status % 10), ' '};
    const char *text = http_status_text(status);
    size_t more = (ctype ? strlen(ctype) : 0) + (extra ? strlen(extra) : 0);
    if (more > 384) {
        return BERTH_EINVAL; /* a head stays under 512 bytes */
    }
    int rv = buf_reserve(b, 128 + strlen(text) + more + copy_len);
    if (rv != 0) {
        return rv;
    }
    buf_append(b, "HTTP/1.1 ", 9);
    buf_append(b, code, sizeof code);
    http__put(b, text);
    http__put(b, "\r\nContent-Length: ");
    buf_append(b, d, (size_t)(num + sizeof num - d));
    http__put(b, "\r\n");
    if (ctype != NULL) {
        http__put(b, "Content-Type: ");
        http__put(b, ctype);
        http__put(b, "\r\n");
    }
    if (close) {
        http__put(b, "Connection: close\r\n");
    }
    if (extra != NULL) {
        http__put(b, extra);
    }
    http__put(b, "\r\n");
    buf_append(b, copy, copy_len);
    return 0;
}

/* The error code of an answer the server gives by itself. */
static const char *http__code(int status)
{
    switch (status) {
    case 400:
        return "invalid";
    case 408:
        return "timeout";
    case 429:
        return "too_many_connections";
    case 503:
        return "busy";
    default:
        return "too_big";
    }
}

/* Answer a request that failed (or a connection that is refused) and
 * close: nothing more is read, and the answer gets a moment to leave. */
static void http__fail(struct http_conn *c, int status, const char *message)
{
    struct buf b;
    buf_init(&b);
    char body[256];
    int n = snprintf(body, sizeof body,
                     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n",
                     http__code(status), message);
    c->failed = true;
    http__idle_remove(c);
    c->header_deadline = c->body_deadline = c->body_end = 0;
    c->write_deadline = uv_now(c->timer.loop) + HTTP__LINGER_MS;
    http__update_reading(c);
    if (http__format(&b, status, "application/json", body, (size_t)n, (size_t)n,
                     NULL, true) != 0) {
        buf_free(&b);
        http__conn_close(c);
        return;
    }
    c->xport->send(c, &b, NULL, 0, NULL, 0, true);
    if (!c->closing) {
        http__account(c);
        http__arm(c);
    }
}

static void http__timer_cb(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    uint64_t now = uv_now(t->loop);
    if (c->closing) {
        return;
    }
    if (c->failed) {
        if (now >= c->write_deadline) {
            http__conn_close(c);
        } else {
            http__arm(c);
        }
        return;
    }
    if (c->ws != NULL && !c->finishing && c->ws->in.len > 0 && !c->ws->paused) {
        /* Frames that came with the handshake, or while reading was
         * paused (see http__ws_soon). */
        http__ws_drive(c);
        if (c->closing) {
            return;
        }
        http__settle(c, false);
    }
    if (c->ws != NULL && !c->reading) {
        /* Not read, so not heard: a client held back by its owner or by
         * the budget is not silent. */
        c->ws->ping_out = false;
        if (c->ping_deadline != 0) {
            c->ping_deadline = now + c->ws->ping_ms;
        }
    }
    if (c->ws != NULL && c->ping_deadline != 0 && now >= c->ping_deadline) {
        if (c->ws->ping_out) {
            /* Silent through a whole ping: gone. */
            http__conn_close(c);
            return;
        }
        c->ws->ping_out = true;
        c->ping_deadline = now + c->ws->ping_ms;
        http__ws_frame(c, WS_OP_PING, NULL, 0, false);
        if (c->closing) {
            return;
        }
    }
    if (c->header_deadline != 0 && now >= c->header_deadline) {
        http__fail(c, 408, "the request headers took too long");
        return;
    }
    if (c->body_end != 0 && now >= c->body_end) {
        http__fail(c, 408, "the request body took too long");
        return;
    }
    if ((c->body_deadline != 0 && now >= c->body_deadline) ||
        (c->idle_deadline != 0 && now >= c->idle_deadline)) {
        http__conn_close(c);
        return;
    }
    if (c->write_deadline != 0 && now >= c->write_deadline) {
        /* A client that reads nothing of its reply for this long, or a
         * trickle of it, is gone or is holding the host's memory on
         * purpose. */
        const struct http_server_config *cfg = &c->server->cfg;
        uint64_t need = (uint64_t)cfg->min_rate * cfg->idle_timeout_ms / 1000;
        size_t queued = uv_stream_get_write_queue_size(&c->h.stream);
        if (c->writes_done == c->check_done &&
            queued + need > c->check_queued) {
            http__conn_close(c);
            return;
        }
        c->check_done = c->writes_done;
        c->check_queued = queued;
        c->write_deadline = now + cfg->idle_timeout_ms;
    }
    http__arm(c);
}

/* --- Transports. --- */

static int http__plain_take(struct http_conn *c, uint8_t *data, size_t n)
{
    if (data == http__scratch) {
        if (buf_append(http__in(c), data, n) != 0) {
            http__conn_close(c);
            return BERTH_ENOMEM;
        }
        return 0;
    }
    http__in(c)->len += n;
    return 0;
}

static const struct http__transport http__plain = {
    .take = http__plain_take,
    .send = http__write_raw,
};

/* A TLS connection that cannot go on: what TLS has to say (an alert; out
 * is taken) gets a moment to leave, and nothing more is read. */
static void http__tls_fail(struct http_conn *c, struct buf *out)
{
    c->failed = true;
    http__idle_remove(c);
    c->header_deadline = c->body_deadline = c->body_end = 0;
    c->write_deadline = uv_now(c->timer.loop) + HTTP__LINGER_MS;
    http__update_reading(c);
    if (out->len == 0) {
        buf_free(out);
        http__conn_close(c);
        return;
    }
    http__write_raw(c, out, NULL, 0, NULL, 0, true);
}

static void http__drive(struct http_conn *c);

static void http__tls_work_cb(uv_work_t *req)
{
    struct http__tls_work *w = req->data;
    w->rv = http_tls_conn_take(w->tls, NULL, 0, &w->plain, &w->out, w->errmsg);
    if (w->fd < 0) {
        return;
    }
    /* Nothing else writes to the socket meanwhile: the loop had no write
     * queued when it handed the handshake over, and queues none until
     * the worker is done (http__tls_send). What the socket does not take
     * at once, and an alert, are left to the loop. */
    size_t sent = 0;
    while (w->rv == 0 && sent < w->out.len) {
        ssize_t n = send(w->fd, w->out.data + sent, w->out.len - sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        sent += (size_t)n;
    }
    if (sent > 0) {
        memmove(w->out.data, w->out.data + sent, w->out.len - sent);
        w->out.len -= sent;
    }
    /* The loop may have closed its own descriptor meanwhile: the socket
     * goes once this one goes too. */
    close(w->fd);
    w->fd = -1;
}

static void http__tls_after_cb(uv_work_t *req, int status)
{
    struct http__tls_work *w = req->data;
    struct http_conn *c = w->conn;
    c->work = NULL;
    int rv = w->rv;
    if (c->free_after_work || c->closing) {
        buf_free(&w->plain);
        buf_free(&w->out);
        mem_free(w);
        if (c->free_after_work) {
            http__conn_free(c);
        }
        return;
    }
    if (rv == 0 && w->plain.len > 0 &&
        buf_append(http__in(c), w->plain.data, w->plain.len) != 0) {
        rv = BERTH_ENOMEM;
    }
    buf_free(&w->plain);
    if (rv != 0) {
        http__tls_fail(c, &w->out);
    } else if (w->out.len > 0) {
        http__write_raw(c, &w->out, NULL, 0, NULL, 0, false);
    } else {
        buf_free(&w->out);
    }
    mem_free(w);
    if (c->closing) {
        return;
    }
    if (rv == 0 && c->pending == NULL) {
        http__drive(c);
    }
    if (c->closing) {
        return;
    }
    if (c->failed) {
        http__account(c);
        http__arm(c);
        return;
    }
    http__settle(c, true);
}

/* Run the rest of a paused handshake on the thread pool; 0, or a
 * negative code when it cannot be queued (the caller runs it itself). */
static int http__tls_offload(struct http_conn *c)
{
    struct http__tls_work *w = mem_calloc(1, sizeof *w);
    if (w == NULL) {
        return BERTH_ENOMEM;
    }
    w->conn = c;
    w->tls = c->tls;
    w->req.data = w;
    buf_init(&w->plain);
    buf_init(&w->out);
    /* The worker sends the answer itself only when no write of the loop's
     * is still queued before it; close-on-exec, as programs are started
     * meanwhile. */
    uv_os_fd_t fd;
    w->fd = -1;
    if (c->n_writes == 0 && uv_fileno((uv_handle_t *)&c->h.stream, &fd) == 0) {
        w->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    }
    if (uv_queue_work(c->server->loop, &w->req, http__tls_work_cb,
                      http__tls_after_cb) != 0) {
        if (w->fd >= 0) {
            close(w->fd);
        }
        mem_free(w);
        return BERTH_EIO;
    }
    c->work = w;
    http__update_reading(c);
    return 0;
}

static int http__tls_take(struct http_conn *c, uint8_t *data, size_t n)
{
    char errmsg[ERRMSG_SIZE];
    struct buf out;
    buf_init(&out);
    c->hs_started = true;
    int rv = http_tls_conn_take(c->tls, data, n, http__in(c), &out, errmsg);
    if (rv != 0) {
        http__tls_fail(c, &out);
        return rv;
    }
    /* The handshake's next flight, or session tickets. */
    if (out.len == 0) {
        buf_free(&out);
    } else if ((rv = http__write_raw(c, &out, NULL, 0, NULL, 0, false)) != 0) {
        return rv;
    }
    /* The name is taken before the worker has c->tls. */
    char name[256];
    const char *got = http_tls_conn_new_name(c->tls);
    snprintf(name, sizeof name, "%s", got != NULL ? got : "");
    const struct http_server_config *cfg = &c->server->cfg;
    /* The hop to a worker and back costs the host more CPU than it saves
     * (0.15 to 0.2 ms a handshake here, in context switches), unless the
     * loop has the name's wake to do meanwhile. */
    bool wakes = got != NULL && cfg->on_server_name != NULL &&
                 (cfg->server_name_wakes == NULL ||
                  cfg->server_name_wakes(name, cfg->hook_arg));
    if (http_tls_conn_paused(c->tls) && (!wakes || http__tls_offload(c) != 0)) {
        /* No worker: the handshake goes on here. */
        rv = http__tls_take(c, NULL, 0);
        if (rv != 0) {
            return rv;
        }
    }
    /* What the name starts (a ship's wake) runs on the loop while the
     * worker makes the handshake's answer. */
    if (got != NULL && cfg->on_server_name != NULL) {
        cfg->on_server_name(name, cfg->hook_arg);
    }
    return 0;
}

static int http__tls_send(struct http_conn *c, struct buf *b, void *mem,
                          uint64_t counted, const void *body, size_t len,
                          bool close)
{
    if (c->work != NULL) {
        /* Mid-handshake, on the worker: nothing can be sealed. */
        buf_free(b);
        mem_free(mem);
        budget_sub(c->budget, counted, true);
        http__conn_close(c);
        return BERTH_ESHUTDOWN;
    }
    uv_buf_t ub[2] = {uv_buf_init((char *)b->data, (unsigned)b->len),
                      uv_buf_init((char *)body, (unsigned)len)};
    struct buf sealed;
    buf_init(&sealed);
    int rv =
        http_tls_conn_seal(c->tls, ub, mem != NULL ? 2 : 1, close, &sealed);
    buf_free(b);
    mem_free(mem);
    budget_sub(c->budget, counted, true);
    if (rv != 0) {
        /* Before the handshake is done (a refusal, a timeout) there is no
         * way to say anything: the connection just closes. */
        buf_free(&sealed);
        http__conn_close(c);
        return rv;
    }
    return http__write_raw(c, &sealed, NULL, 0, NULL, 0, close);
}

static const struct http__transport http__tls = {
    .take = http__tls_take,
    .send = http__tls_send,
};

/* --- Reading and parsing. --- */

static void http__alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct http_conn *c = h->data;
    struct buf *in = http__in(c);
    /* TLS bytes are copied into OpenSSL's read BIO at once. */
    if (in->len == 0 || c->tls != NULL) {
        b->base = (char *)http__scratch;
        b->len = sizeof http__scratch;
        return;
    }
    if (buf_reserve(in, 64 * 1024) != 0) {
        b->base = NULL;
        b->len = 0;
        return;
    }
    b->base = (char *)in->data + in->len;
    b->len = in->cap - in->len;
}

static void http__drive_loop(struct http_conn *c);
static void http__ws_drive(struct http_conn *c);

/* Parse what is buffered; dispatch complete requests one at a time. */
static void http__drive(struct http_conn *c)
{
    if (c->ws != NULL) {
        http__ws_drive(c);
        return;
    }
    /* A handler that replies at once re-enters through http_reply; the loop
     * below then simply goes on, so pipelined requests cost no stack. */
    if (c->in_drive) {
        return;
    }
    c->in_drive = true;
    http__drive_loop(c);
    c->in_drive = false;
}

static void http__drive_loop(struct http_conn *c)
{
    /* A handler may have turned the connection into a tunnel. */
    while (!c->closing && !c->failed && c->pending == NULL && !c->finishing &&
           c->ws == NULL) {
        struct http_request *req = NULL;
        int status = 0;
        const char *why = NULL;
        int rv = http_parser_feed(c->p, &req, &status, &why);
        if (rv == HTTP_PARSE_ERROR) {
            http__fail(c, status, why);
            return;
        }
        if (rv == HTTP_PARSE_CONTINUE_100) {
            struct buf b;
            buf_init(&b);
            if (buf_append(&b, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0) {
                c->xport->send(c, &b, NULL, 0, NULL, 0, false);
            }
            continue;
        }
        if (rv == HTTP_PARSE_MORE) {
            return;
        }
        /* A complete request: stop reading until it is answered. */
        c->pending = req;
        c->pending_size = http__request_size(req, c->p->header_bytes);
        c->pending_body = req->body.cap;
        /* A refused WebSocket leaves nothing to talk about; an accepted
         * one no longer speaks HTTP. */
        c->close_after_reply =
            !c->p->keep_alive || ws_upgrade_kind(req) != WS_UPGRADE_NONE;
        req->conn_ = c;
        http__settle(c, false);
        c->server->cb(req, c->server->arg);
    }
}

static void http__read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct http_conn *c = st->data;
    if (n < 0) {
        /* EOF, an error, or no memory for the bytes. A request in progress
         * cannot complete; one awaiting its reply keeps its memory until
         * then. */
        http__conn_close(c);
        return;
    }
    if (n == 0) {
        return;
    }
    if (c->xport->take(c, (uint8_t *)b->base, (size_t)n) != 0) {
        if (!c->closing) {
            http__account(c);
            http__arm(c);
        }
        return;
    }
    if (c->pending == NULL) {
        http__drive(c);
    }
    if (c->closing) {
        return;
    }
    if (http__in(c)->len == 0) {
        buf_free(http__in(c));
    }
    http__settle(c, true);
}

/* Accept a connection from listener; tls: the TLS listener's. */
static void http__accept(struct http_server *s, uv_stream_t *listener, bool tls)
{
    struct http_conn *c = mem_calloc(1, sizeof *c);
    if (c == NULL) {
        return;
    }
    c->server = s;
    c->budget = s->cfg.budget;
    c->is_tcp = tls || s->is_tcp;
    c->xport = tls ? &http__tls : &http__plain;
    if (c->is_tcp) {
        uv_tcp_init(s->loop, &c->h.tcp);
    } else {
        uv_pipe_init(s->loop, &c->h.pipe, 0);
    }
    uv_timer_init(s->loop, &c->timer);
    c->h.stream.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    s->open_handles += 2;
    c->next = s->conns;
    if (s->conns) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->n_conns++;
    c->p = mem_alloc(sizeof *c->p);
    if (c->p == NULL ||
        http_parser_init(c->p, s->cfg.max_body, s->cfg.max_header) != 0 ||
        uv_accept(listener, &c->h.stream) != 0 ||
        (tls && http_tls_conn_new(&c->tls, s->tls) != 0)) {
        http__conn_close(c);
        return;
    }
    c->p->on_headers = s->cfg.on_headers;
    c->p->hook_arg = s->cfg.hook_arg;
    uint8_t addr[16];
    if (c->is_tcp) {
        uv_tcp_nodelay(&c->h.tcp, 1);
        if (s->cfg.max_per_addr != 0 && http__peer_addr(c, addr) == 0) {
            struct http__peer *p = http__peer_get(s, addr);
            if (p != NULL && p->n >= s->cfg.max_per_addr) {
                http__fail(c, 429, "too many connections from this address");
                return;
            }
            if (p != NULL) {
                p->n++;
                c->peer = p;
            }
        }
    }
    unsigned max =
        s->cfg.max_conns ? s->cfg.max_conns(s->cfg.max_conns_arg) : 0;
    if (max != 0 && s->n_conns > max && http_server_close_idle(s, 1) == 0) {
        http__fail(c, 503, "no room for another connection; try again");
        return;
    }
    http__settle(c, false);
}

static void http__connection_cb(uv_stream_t *listener, int status)
{
    struct http_server *s = listener->data;
    if (status == 0 && !s->closing) {
        http__accept(s, listener, false);
    }
}

static void http__tls_connection_cb(uv_stream_t *listener, int status)
{
    struct http_server *s = listener->data;
    if (status == 0 && !s->closing) {
        http__accept(s, listener, true);
    }
}

int http_server_new(struct http_server **out, uv_loop_t *loop,
                    const struct http_server_config *cfg, http_handler_cb cb,
                    void *arg)
{
    struct http_server *s = mem_calloc(1, sizeof *s);
    if (s == NULL) {
        return BERTH_ENOMEM;
    }
    s->loop = loop;
    s->cfg = *cfg;
    if (s->cfg.max_body == 0) {
        s->cfg.max_body = 8u * 1024 * 1024;
    }
    if (s->cfg.max_header == 0) {
        s->cfg.max_header = 64 * 1024;
    }
    if (s->cfg.idle_timeout_ms == 0) {
        s->cfg.idle_timeout_ms = 60000;
    }
    if (s->cfg.header_timeout_ms == 0) {
        s->cfg.header_timeout_ms = 10000;
    }
    if (s->cfg.body_timeout_ms == 0) {
        s->cfg.body_timeout_ms = 20000;
    }
    if (s->cfg.min_rate == 0) {
        s->cfg.min_rate = 4096;
    }
    s->cb = cb;
    s->arg = arg;
    *out = s;
    return 0;
}

static void http__listener_closed(uv_handle_t *h)
{
    struct http_server *s = h->data;
    s->open_handles--;
    http__server_maybe_closed(s);
}

int http_parse_hostport(const char *hostport, struct sockaddr_storage *sa)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || colon == hostport) {
        return BERTH_EINVAL;
    }
    size_t hl = (size_t)(colon - hostport);
    const char *h = hostport;
    if (hostport[0] == '[' && colon[-1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= sizeof host) {
        return BERTH_EINVAL;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || colon[1] == '\0' || port < 0 || port > 65535) {
        return BERTH_EINVAL;
    }
    if (strcmp(host, "localhost") == 0) {
        snprintf(host, sizeof host, "127.0.0.1");
    }
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)sa) == 0 ||
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)sa) == 0) {
        return 0;
    }
    return BERTH_EINVAL;
}

/* Bind tcp (uninitialized) to hostport and listen on it with cb: the plain
 * and the TLS listeners alike. Once the address parses, *listening is set
 * and the handle counts as open, so that closing the server closes it even
 * when the bind failed. */
static int http__listen_hostport(struct http_server *s, uv_tcp_t *tcp,
                                 bool *listening, const char *hostport,
                                 uv_connection_cb cb, char *errmsg)
{
    struct sockaddr_storage sa;
    if (http_parse_hostport(hostport, &sa) != 0) {
        err_printf(errmsg,
                   "%s is not HOST:PORT with a numeric host and a port up "
                   "to 65535",
                   hostport);
        return BERTH_EINVAL;
    }
    *listening = true;
    uv_tcp_init(s->loop, tcp);
    tcp->data = s;
    s->open_handles++;
    int rv = uv_tcp_bind(tcp, (struct sockaddr *)&sa, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)tcp, 4096, cb);
    }
    if (rv != 0) {
        err_printf(errmsg, "cannot listen on %s: %s", hostport,
                   uv_strerror(rv));
        return BERTH_EIO;
    }
    return 0;
}

int http_server_listen_tcp(struct http_server *s, const char *hostport,
                           char *errmsg)
{
    if (s->listening) {
        err_printf(errmsg, "already listening");
        return BERTH_EINVAL;
    }
    s->is_tcp = true;
    return http__listen_hostport(s, &s->listener.tcp, &s->listening, hostport,
                                 http__connection_cb, errmsg);
}

int http_server_listen_tls(struct http_server *s, const char *hostport,
                           struct http_tls *tls, char *errmsg)
{
    if (s->tls_listening) {
        err_printf(errmsg, "already listening for TLS");
        return BERTH_EINVAL;
    }
    s->tls = tls;
    return http__listen_hostport(s, &s->tls_listener, &s->tls_listening,
                                 hostport, http__tls_connection_cb, errmsg);
}

/* Listen on fd, a bound TCP socket (passed by a service manager), with
 * tcp; *listening is set once tcp is a handle to close. */
static int http__listen_fd(struct http_server *s, uv_tcp_t *tcp,
                           bool *listening, int fd, uv_connection_cb cb,
                           char *errmsg)
{
    uv_tcp_init(s->loop, tcp);
    tcp->data = s;
    *listening = true;
    s->open_handles++;
    int rv = uv_tcp_open(tcp, fd);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)tcp, 4096, cb);
    }
    if (rv != 0) {
        err_printf(errmsg, "cannot listen on descriptor %d: %s", fd,
                   uv_strerror(rv));
        return BERTH_EIO;
    }
    return 0;
}

int http_server_listen_fd(struct http_server *s, int fd, char *errmsg)
{
    if (s->listening) {
        err_printf(errmsg, "already listening");
        return BERTH_EINVAL;
    }
    s->is_tcp = true;
    return http__listen_fd(s, &s->listener.tcp, &s->listening, fd,
                           http__connection_cb, errmsg);
}

int http_server_listen_tls_fd(struct http_server *s, int fd,
                              struct http_tls *tls, char *errmsg)
{
    if (s->tls_listening) {
        err_printf(errmsg, "already listening for TLS");
        return BERTH_EINVAL;
    }
    s->tls = tls;
    return http__listen_fd(s, &s->tls_listener, &s->tls_listening, fd,
                           http__tls_connection_cb, errmsg);
}

int http_server_listen_unix(struct http_server *s, const char *path,
                            char *errmsg)
{
    if (s->listening) {
        err_printf(errmsg, "already listening");
        return BERTH_EINVAL;
    }
    /* A socket file left by a killed host would make bind fail. */
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);
    }
    uv_pipe_init(s->loop, &s->listener.pipe, 0);
    s->listener.pipe.data = s;
    s->is_tcp = false;
    s->listening = true;
    s->open_handles++;
    int rv = uv_pipe_bind(&s->listener.pipe, path);
    if (rv == 0) {
        chmod(path, 0600);
        rv = uv_listen((uv_stream_t *)&s->listener.pipe, 4096,
                       http__connection_cb);
    }
    if (rv != 0) {
        err_printf(errmsg, "cannot listen on %s: %s", path, uv_strerror(rv));
        return BERTH_EIO;
    }
    return 0;
}

unsigned http_server_connections(const struct http_server *s)
{
    return s->n_conns;
}

unsigned http_server_idle_connections(const struct http_server *s)
{
    return s->n_idle;
}

unsigned http_server_close_idle(struct http_server *s, unsigned n)
{
    unsigned closed = 0;
    while (closed < n && s->idle_head != NULL) {
        http__conn_close(s->idle_head);
        closed++;
    }
    return closed;
}

/* Return the connection to read under HTTP_THROTTLE_ONE: the one whose
 * unfinished request began first or, with none, the longest idle, whose
 * next request may be what the host waits for. */
static struct http_conn *http__let_on(struct http_server *s)
{
    struct http_conn *l = s->let_on;
    if (l != NULL && !l->failed && !l->finishing && l->pending == NULL &&
        l->ws == NULL && http_parser_started(l->p)) {
        return l;
    }
    l = NULL;
    for (struct http_conn *c = s->conns; c != NULL; c = c->next) {
        if (!c->failed && !c->finishing && c->pending == NULL &&
            c->started_ms != 0 &&
            (l == NULL || c->started_ms < l->started_ms)) {
            l = c;
        }
    }
    return l != NULL ? l : s->idle_head;
}

void http_server_throttle(struct http_server *s, enum http_throttle t)
{
    struct http_conn *was = s->let_on;
    s->let_on = t == HTTP_THROTTLE_ONE ? http__let_on(s) : NULL;
    if (t == s->throttle && was == s->let_on) {
        return;
    }
    s->throttle = t;
    for (struct http_conn *c = s->conns; c != NULL; c = c->next) {
        http__update_reading(c);
    }
}

/* Return the port a TCP listener is bound to, or 0. */
static int http__tcp_port(uv_tcp_t *t)
{
    struct sockaddr_storage sa;
    int len = sizeof sa;
    if (uv_tcp_getsockname(t, (struct sockaddr *)&sa, &len) != 0) {
        return 0;
    }
    if (sa.ss_family == AF_INET) {
        return ntohs(((struct sockaddr_in *)&sa)->sin_port);
    }
    return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
}

int http_server_port(struct http_server *s)
{
    return s->listening && s->is_tcp ? http__tcp_port(&s->listener.tcp) : 0;
}

int http_server_tls_port(struct http_server *s)
{
    return s->tls_listening ? http__tcp_port(&s->tls_listener) : 0;
}

void http_server_stop_listening(struct http_server *s)
{
    if (s->listening) {
        s->listening = false;
        uv_close((uv_handle_t *)&s->listener, http__listener_closed);
    }
    if (s->tls_listening) {
        s->tls_listening = false;
        uv_close((uv_handle_t *)&s->tls_listener, http__listener_closed);
    }
}

void http_server_close(struct http_server *s, http_close_cb cb, void *arg)
{
    s->closing = true;
    s->close_cb = cb;
    s->close_arg = arg;
    http_server_stop_listening(s);
    while (s->conns != NULL) {
        http__conn_close(s->conns);
    }
    if (s->open_handles == 0) {
        /* Nothing was ever opened; finish on the spot. */
        s->open_handles = 0;
        http__server_maybe_closed(s);
    }
}

/* --- WebSockets. --- */

/* Read the frames buffered from the timer's callback, soon, rather than
 * inside the owner's call: ops are only ever called from the loop's own
 * callbacks. */
static void http__ws_soon(struct http_conn *c)
{
    if (c->closing || c->ws->in.len == 0) {
        return;
    }
    uv_timer_start(&c->timer, http__timer_cb, 0, 0);
    c->timer_due = uv_now(c->timer.loop);
}

/* Send one unfragmented frame; close: then close the connection. */
static int http__ws_frame(struct http_conn *c, uint8_t opcode, const void *p,
                          size_t n, bool close)
{
    struct buf b;
    buf_init(&b);
    uint8_t head[WS_HEAD_MAX];
    size_t hl = ws_head_encode(head, true, opcode, n);
    if (buf_reserve_exact(&b, hl + n) != 0) {
        http__conn_close(c);
        return BERTH_ENOMEM;
    }
    buf_append(&b, head, hl);
    buf_append(&b, p, n);
    return c->xport->send(c, &b, NULL, 0, NULL, 0, close);
}

/* Send a close frame with code and reason (len bytes), then close. */
static void http__ws_close_frame(struct http_conn *c, uint16_t code,
                                 const char *reason, size_t len)
{
    uint8_t p[WS_CONTROL_MAX];
    size_t n = 0;
    if (code != WS_CLOSE_NO_STATUS && code != WS_CLOSE_ABNORMAL) {
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        n = 2 + (len > WS_REASON_MAX ? WS_REASON_MAX : len);
        memcpy(p + 2, reason, n - 2);
    }
    /* Nothing more is read; what was sent before leaves first. */
    c->finishing = true;
    http__update_reading(c);
    http__ws_frame(c, WS_OP_CLOSE, p, n, true);
}

/* Read the frames buffered, one at a time, while the owner takes them. */
static void http__ws_drive(struct http_conn *c)
{
    if (c->in_drive) {
        return;
    }
    c->in_drive = true;
    struct http_ws *ws = c->ws;
    if (ws->raw) {
        if (!ws->paused && ws->in.len > 0) {
            /* Taken out first: the owner may pause or close meanwhile. */
            struct buf in = ws->in;
            buf_init(&ws->in);
            if (ws->ops != NULL) {
                ws->ops->message(ws, ws->arg, 0, in.data, in.len);
            }
            buf_free(&in);
        }
        c->in_drive = false;
        return;
    }
    while (!c->closing && !c->finishing && !ws->paused && ws->in.len > 0) {
        struct ws_item it;
        size_t used;
        int rv = ws_read(&ws->rd, ws->in.data, ws->in.len, &used, &it);
        if (rv == WS_READ_MORE) {
            break;
        }
        if (rv == WS_READ_ERROR) {
            http__ws_report(ws, it.code, it.why, strlen(it.why));
            http__ws_close_frame(c, it.code, it.why, strlen(it.why));
            break;
        }
        if (rv == WS_READ_ITEM) {
            switch (it.opcode) {
            case WS_OP_TEXT:
            case WS_OP_BINARY:
                if (ws->ops != NULL) {
                    ws->ops->message(ws, ws->arg, it.opcode, it.data, it.len);
                }
                break;
            case WS_OP_PING:
                http__ws_frame(c, WS_OP_PONG, it.data, it.len, false);
                break;
            case WS_OP_CLOSE:
                http__ws_report(ws, it.code, (const char *)it.data, it.len);
                http__ws_close_frame(c, it.code, (const char *)it.data, it.len);
                break;
            default: /* a pong: the bytes said enough */
                break;
            }
        }
        if (c->closing) {
            break;
        }
        memmove(ws->in.data, ws->in.data + used, ws->in.len - used);
        ws->in.len -= used;
    }
    if (!c->closing && ws->in.len == 0) {
        buf_free(&ws->in);
    }
    c->in_drive = false;
}

/* Take req's connection from it for a WebSocket or a tunnel, freeing req:
 * the connection, or NULL when it is closing (then freed, or left to its
 * handles). */
static struct http_conn *http__conn_take(struct http_request *req)
{
    struct http_conn *c = req->conn_;
    c->pending = NULL;
    c->pending_size = 0;
    c->pending_body = 0;
    http_request_free(req);
    if (c->closing) {
        if (c->open_handles == 0) {
            http__conn_free(c);
        } else {
            http__account(c);
        }
        return NULL;
    }
    return c;
}

/* Make c ws's: the bytes read after the request are ws's first, and the
 * HTTP parser and the request's deadlines go. */
static void http__conn_hand_over(struct http_conn *c, struct http_ws *ws)
{
    ws->in = c->p->in;
    buf_init(&c->p->in);
    http_parser_free(c->p);
    mem_free(c->p);
    c->p = NULL;
    c->ws = ws;
    c->close_after_reply = false;
    c->header_deadline = c->body_deadline = c->body_end = 0;
    c->started_ms = 0;
    if (c->server->let_on == c) {
        c->server->let_on = NULL;
    }
}

int http_ws_accept(struct http_request *req, const struct http_ws_ops *ops,
                   void *arg, const struct http_ws_config *cfg,
                   const char *extra_headers, struct http_ws **out)
{
    const char *key = http_request_header(req, "sec-websocket-key");
    char accept[WS_ACCEPT_LEN + 1];
    if (req->detached_ != NULL || key == NULL ||
        ws_accept_key(key, accept) != 0) {
        http_reply(req, 400, "text/plain", "not a WebSocket handshake\n", 26,
                   NULL);
        return BERTH_EINVAL;
    }
    struct http_conn *c = http__conn_take(req);
    if (c == NULL) {
        return BERTH_ESHUTDOWN;
    }
    struct http_ws *ws = mem_calloc(1, sizeof *ws);
    struct buf b;
    buf_init(&b);
    size_t extra = extra_headers != NULL ? strlen(extra_headers) : 0;
    if (ws == NULL || extra > 384 || buf_reserve(&b, 160 + extra) != 0) {
        mem_free(ws);
        http__conn_close(c);
        return BERTH_ENOMEM;
    }
    http__put(&b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: ");
    http__put(&b, accept);
    http__put(&b, "\r\n");
    if (extra_headers != NULL) {
        http__put(&b, extra_headers);
    }
    http__put(&b, "\r\n");
    ws->conn = c;
    ws->ops = NULL; /* set once the 101 is on its way: see below */
    ws->arg = arg;
    ws->ping_ms = cfg->ping_ms ? cfg->ping_ms : 30000;
    ws_reader_init(&ws->rd, cfg->max_message);
    http__conn_hand_over(c, ws);
    c->server->n_ws++;
    /* With no ops yet, a failed write closes the connection without a
     * word to the owner, who learns it from the return value. */
    int rv = c->xport->send(c, &b, NULL, 0, NULL, 0, false);
    if (rv != 0 || c->closing) {
        return BERTH_ESHUTDOWN;
    }
    ws->ops = ops;
    *out = ws;
    http__settle(c, true);
    http__ws_soon(c);
    return 0;
}

int http_tunnel_open(struct http_request *req, const struct http_ws_ops *ops,
                     void *arg, struct http_ws **out)
{
    if (req->detached_ != NULL) {
        http_reply(req, 400, "text/plain", "no connection to pass on\n", 25,
                   NULL);
        return BERTH_EINVAL;
    }
    struct http_conn *c = http__conn_take(req);
    if (c == NULL) {
        return BERTH_ESHUTDOWN;
    }
    struct http_ws *ws = mem_calloc(1, sizeof *ws);
    if (ws == NULL) {
        http__conn_close(c);
        return BERTH_ENOMEM;
    }
    ws->conn = c;
    ws->ops = ops;
    ws->arg = arg;
    ws->raw = true;
    ws_reader_init(&ws->rd, 0);
    http__conn_hand_over(c, ws);
    *out = ws;
    http__settle(c, false);
    return 0;
}

int http_tunnel_write(struct http_ws *ws, const void *p, size_t n)
{
    struct http_conn *c = ws->conn;
    if (c->closing || c->finishing) {
        return BERTH_ESHUTDOWN;
    }
    struct buf b;
    buf_init(&b);
    if (buf_append(&b, p, n) != 0) {
        http__conn_close(c);
        return BERTH_ENOMEM;
    }
    int rv = c->xport->send(c, &b, NULL, 0, NULL, 0, false);
    if (rv == 0 && !c->closing) {
        http__settle(c, false);
    }
    return rv;
}

void http_tunnel_close(struct http_ws *ws)
{
    struct http_conn *c = ws->conn;
    ws->ops = NULL;
    if (c->closing || c->finishing) {
        return;
    }
    c->finishing = true;
    http__update_reading(c);
    struct buf b;
    buf_init(&b);
    c->xport->send(c, &b, NULL, 0, NULL, 0, true);
}

int http_ws_send(struct http_ws *ws, int opcode, const void *p, size_t n)
{
    struct http_conn *c = ws->conn;
    if (c->closing || c->finishing) {
        return BERTH_ESHUTDOWN;
    }
    int rv = http__ws_frame(c, (uint8_t)opcode, p, n, false);
    if (rv == 0 && !c->closing) {
        http__settle(c, false);
    }
    return rv;
}

void http_ws_close(struct http_ws *ws, uint16_t code, const char *reason)
{
    struct http_conn *c = ws->conn;
    ws->ops = NULL;
    if (c->closing || c->finishing) {
        return;
    }
    http__ws_close_frame(c, code, reason, strlen(reason));
}

void http_ws_pause(struct http_ws *ws, bool paused)
{
    struct http_conn *c = ws->conn;
    if (ws->paused == paused || c->closing) {
        ws->paused = paused;
        return;
    }
    ws->paused = paused;
    http__settle(c, false);
    if (!paused) {
        http__ws_soon(c);
    }
}

unsigned http_server_websockets(const struct http_server *s)
{
    return s->n_ws;
}

/* --- Detached requests. --- */

/* What a detached request has instead of a connection: where its answer
 * goes, and the bytes it counts in a budget. */
struct http__detached {
    struct budget *budget;
    uint64_t counted; /* bytes counted, not draining */
    uint64_t body;    /* of counted: the body's, until it is dropped */
    http_answer_cb cb;
    void *arg;
};

int http_request_new_detached(struct http_request **out,
                              const struct http_forward_request *f,
                              struct budget *budget, http_answer_cb cb,
                              void *arg)
{
    struct http_request *req = mem_calloc(1, sizeof *req);
    struct http__detached *d = mem_calloc(1, sizeof *d);
    if (req == NULL || d == NULL) {
        goto err_after_alloc;
    }
    uint64_t header_bytes = f->method_len + f->target_len;
    req->method = mem_strndup(f->method, f->method_len);
    req->target = mem_strndup(f->target, f->target_len);
    if (req->method == NULL || req->target == NULL) {
        goto err_after_alloc;
    }
    for (unsigned i = 0; i < f->n_headers && i < HTTP_MAX_HEADERS; i++) {
        const struct http_forward_header *hd = &f->headers[i];
        struct http_header *to = &req->headers[i];
        to->name = mem_strndup(hd->name, hd->name_len);
        to->value = mem_strndup(hd->value, hd->value_len);
        req->n_headers = i + 1;
        if (to->name == NULL || to->value == NULL) {
            goto err_after_alloc;
        }
        header_bytes += hd->name_len + hd->value_len;
    }
    if (f->body_len > 0 &&
        (buf_reserve_exact(&req->body, f->body_len) != 0 ||
         buf_append(&req->body, f->body, f->body_len) != 0)) {
        goto err_after_alloc;
    }
    d->budget = budget;
    d->body = req->body.cap;
    d->counted = http__request_size(req, header_bytes);
    d->cb = cb;
    d->arg = arg;
    budget_add(budget, d->counted, false);
    req->detached_ = d;
    *out = req;
    return 0;

err_after_alloc:
    http_request_free(req);
    mem_free(d);
    return BERTH_ENOMEM;
}

int http_request_peer(const struct http_request *req, uint8_t *addr)
{
    struct http_conn *c = req->conn_;
    if (req->detached_ != NULL || c == NULL || !c->is_tcp || c->closing) {
        return BERTH_EINVAL;
    }
    return http__peer_addr(c, addr) == 0 ? 0 : BERTH_EINVAL;
}

bool http_request_detached(const struct http_request *req)
{
    return req->detached_ != NULL;
}

/* Hand a detached request's answer to its callback, then free the
 * request, and mem (taken, with counted of its bytes counted as
 * draining), as writing them to a client would. */
static int http__answer_detached(struct http_request *req, int status,
                                 const char *content_type, void *mem,
                                 uint64_t counted, const void *body, size_t len,
                                 const char *extra)
{
    struct http__detached *d = req->detached_;
    /* Called before anything is freed: body may point into req or mem. */
    d->cb(d->arg, status, content_type, body, len, extra);
    budget_sub(d->budget, d->counted, false);
    budget_sub(d->budget, counted, true);
    http_request_free(req);
    mem_free(mem);
    mem_free(d);
    return 0;
}

/* --- Answers. --- */

/* Answer req: the head, then the body, copied (mem NULL) or written from
 * mem (taken, with counted of its bytes counted as draining). */
static int http__answer(struct http_request *req, int status,
                        const char *content_type, void *mem, uint64_t counted,
                        const void *body, size_t len, const char *extra)
{
    if (req->detached_ != NULL) {
        return http__answer_detached(req, status, content_type, mem, counted,
                                     body, len, extra);
    }
    struct http_conn *c = req->conn_;
    c->pending = NULL;
    c->pending_size = 0;
    c->pending_body = 0;
    if (c->closing) {
        http_request_free(req);
        mem_free(mem);
        budget_sub(c->budget, counted, true);
        if (c->open_handles == 0) {
            http__conn_free(c);
        } else {
            http__account(c);
        }
        return BERTH_ESHUTDOWN;
    }
    struct buf b;
    buf_init(&b);
    bool close = c->close_after_reply;
    /* Format before freeing req: body may point into it. */
    int rv = http__format(&b, status, content_type, mem ? NULL : body,
                          mem ? 0 : len, len, extra, close);
    http_request_free(req);
    if (rv != 0) {
        buf_free(&b);
        mem_free(mem);
        budget_sub(c->budget, counted, true);
        http__conn_close(c);
        return rv;
    }
    c->finishing = close;
    rv = c->xport->send(c, &b, mem, counted, body, mem ? len : 0, close);
    if (rv != 0) {
        return rv;
    }
    /* Serve what the client pipelined meanwhile. */
    http__drive(c);
    http__settle(c, false);
    return 0;
}

int http_reply(struct http_request *req, int status, const char *content_type,
               const void *body, size_t len, const char *extra_headers)
{
    return http__answer(req, status, content_type, NULL, 0, body, len,
                        extra_headers);
}

int http_reply_take(struct http_request *req, int status,
                    const char *content_type, void *mem, uint64_t counted,
                    const void *body, size_t len, const char *extra_headers)
{
    return http__answer(req, status, content_type, mem, counted, body, len,
                        extra_headers);
}

void http_request_drop_body(struct http_request *req)
{
    if (req->detached_ != NULL) {
        struct http__detached *d = req->detached_;
        buf_free(&req->body);
        budget_sub(d->budget, d->body, false);
        d->counted -= d->body;
        d->body = 0;
        return;
    }
    struct http_conn *c = req->conn_;
    buf_free(&req->body);
    c->pending_size -= c->pending_body;
    c->pending_body = 0;
    http__account(c);
}

const char *http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 507:
        return "Insufficient Storage";
    default:
        return "Unknown";
    }
}
