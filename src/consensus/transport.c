#include "consensus/transport.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"

#define TRANSPORT__MAGIC "berthp01"
#define TRANSPORT__REQ_HEADER 40   /* magic 8, cluster 16, kind, len, id */
#define TRANSPORT__REPLY_HEADER 16 /* magic 8, status, len */
#define TRANSPORT__ADDRESS_MAX 255
/* A connection must finish its header and body within this. */
#define TRANSPORT__HANDSHAKE_MS 5000
/* Connections still in their handshake, at most; more are closed at once,
 * so that a flood of silent sockets cannot take every descriptor. */
#define TRANSPORT__MAX_HANDSHAKES 256

/* Keeping connections for the next call. A dialer keeps a connection whose
 * call was answered for TRANSPORT__IDLE_MS, at most TRANSPORT__MAX_IDLE of
 * them; the listener waits for a next call longer, TRANSPORT__KEEP_MS, so
 * that it is the dialer that closes an idle connection, never the listener
 * under a call being sent. A connect and its handshake cost both hosts more
 * than a forwarded request does. */
#define TRANSPORT__IDLE_MS 2000
#define TRANSPORT__MAX_IDLE 64
#define TRANSPORT__KEEP_MS 30000
#define TRANSPORT__MAX_KEPT 512

/* What a connection is doing. */
enum transport__role {
    TRANSPORT__INBOUND = 1, /* accepted; reading a request */
    TRANSPORT__CALL,        /* accepted call waiting for transport_reply */
    TRANSPORT__DIAL_RAFT,   /* dialed for libraft; reading the reply */
    TRANSPORT__DIAL_CALL,   /* dialed for transport_request */
    TRANSPORT__IDLE,        /* dialed; answered; waiting for the next call */
};

struct transport_call {
    struct transport *t;
    uv_tcp_t *tcp; /* from raft_malloc: it may be handed to libraft */
    uv_timer_t timer;
    uv_connect_t connect;
    enum transport__role role;
    uint8_t header[TRANSPORT__REQ_HEADER];
    size_t header_need; /* bytes of header expected */
    size_t got;         /* bytes of header, then body, read so far */
    uint8_t *body;
    size_t body_len;
    bool in_body;
    bool counted; /* counted in the transport's handshakes */
    bool kept;    /* accepted, answered, and kept for a next call */
    bool done;    /* the outcome was delivered; only closing is left */
    bool broken;  /* the dialer sent more, or closed, during its call */
    int handles;  /* open handles (tcp, timer) of this connection */
    unsigned kind;
    uint64_t sender;
    /* Dialing: the request to send and whom to tell. */
    struct buf out;
    struct raft_uv_connect *raft_req;
    char *address; /* whom a call was dialed to: the key of the idle pool */
    transport_reply_cb cb;
    void *cb_arg;
    struct transport_call *prev, *next;
};

struct transport {
    uv_loop_t *loop;
    struct raft_uv_transport *raft;
    char *bind;
    uv_tcp_t listener;
    bool listening;
    bool raft_closed;
    bool listen_failed;
    bool closing;
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb raft_close_cb;
    transport_call_fn handler;
    transport_note_fn note;
    void *arg;
    uint8_t cluster[TRANSPORT_CLUSTER_SIZE];
    uint64_t id;
    uint64_t refused;
    unsigned handshakes;
    unsigned idle;                /* dialed connections kept idle */
    uint64_t dials;               /* connections dialed, since start */
    unsigned kept;                /* accepted connections kept */
    struct transport_call *conns; /* every live connection */
    uint8_t *scratch; /* TRANSPORT__SCRATCH bytes for whole reads, or NULL */
    int handles;      /* the listener, when open */
    transport_close_cb close_cb;
    void *close_arg;
};

static void transport__maybe_closed(struct transport *t);

static void transport__link(struct transport *t, struct transport_call *c)
{
    c->prev = NULL;
    c->next = t->conns;
    if (t->conns != NULL) {
        t->conns->prev = c;
    }
    t->conns = c;
}

static void transport__unlink(struct transport *t, struct transport_call *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        t->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
}

int transport_parse_address(const char *address, struct sockaddr_storage *addr)
{
    char host[64];
    const char *colon = strrchr(address, ':');
    if (colon == NULL || colon == address || colon[1] == '\0') {
        return BERTH_EINVAL;
    }
    size_t hl = (size_t)(colon - address);
    const char *h = address;
    if (address[0] == '[') {
        if (hl < 2 || address[hl - 1] != ']') {
            return BERTH_EINVAL;
        }
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
    if (*end != '\0' || port <= 0 || port > 65535) {
        return BERTH_EINVAL;
    }
    memset(addr, 0, sizeof *addr);
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)addr) == 0) {
        return 0;
    }
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)addr) == 0) {
        return 0;
    }
    return BERTH_EINVAL;
}

/* --- Connections. --- */

static struct transport_call *transport__conn_new(struct transport *t,
                                                  enum transport__role role)
{
    struct transport_call *c = mem_calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->tcp = raft_malloc(sizeof *c->tcp);
    if (c->tcp == NULL) {
        mem_free(c);
        return NULL;
    }
    c->t = t;
    c->role = role;
    buf_init(&c->out);
    uv_tcp_init(t->loop, c->tcp);
    c->tcp->data = c;
    uv_timer_init(t->loop, &c->timer);
    c->timer.data = c;
    c->handles = 2;
    transport__link(t, c);
    if (role == TRANSPORT__INBOUND) {
        t->handshakes++;
        c->counted = true;
    }
    return c;
}

static void transport__conn_free(struct transport_call *c)
{
    struct transport *t = c->t;
    transport__unlink(t, c);
    mem_free(c->body);
    mem_free(c->address);
    buf_free(&c->out);
    mem_free(c);
    transport__maybe_closed(t);
}

static void transport__tcp_closed(uv_handle_t *h)
{
    struct transport_call *c = h->data;
    raft_free(h);
    if (--c->handles == 0) {
        transport__conn_free(c);
    }
}

static void transport__timer_closed(uv_handle_t *h)
{
    struct transport_call *c = h->data;
    if (--c->handles == 0) {
        transport__conn_free(c);
    }
}

/* Close what the connection still holds. The tcp handle is gone already
 * when it was handed to libraft. */
static void transport__conn_close(struct transport_call *c)
{
    struct transport *t = c->t;
    if (c->counted) {
        t->handshakes--;
        c->counted = false;
    }
    if (c->kept) {
        t->kept--;
        c->kept = false;
    }
    if (c->role == TRANSPORT__IDLE && !c->done) {
        t->idle--;
    }
    c->done = true;
    if (!uv_is_closing((uv_handle_t *)&c->timer)) {
        uv_close((uv_handle_t *)&c->timer, transport__timer_closed);
    }
    if (c->tcp != NULL && !uv_is_closing((uv_handle_t *)c->tcp)) {
        uv_close((uv_handle_t *)c->tcp, transport__tcp_closed);
    }
}

/* Give the stream to libraft: it closes and frees it from now on. */
static uv_stream_t *transport__hand_over(struct transport_call *c)
{
    uv_stream_t *s = (uv_stream_t *)c->tcp;
    uv_read_stop(s);
    s->data = NULL;
    c->tcp = NULL;
    c->handles--;
    return s;
}

static void transport__refuse(struct transport *t, const char *what,
                              const char *detail)
{
    t->refused++;
    /* Refusals can come in floods: say the first and then every 1000th. */
    if (t->note != NULL && (t->refused == 1 || t->refused % 1000 == 0)) {
        t->note(t->arg, "warn", what, detail);
    }
}

struct transport__write {
    uv_write_t req;
    struct transport_call *c; /* to close or keep after the write, or NULL */
    bool keep;
    uint8_t data[];
};

static void transport__keep(struct transport_call *c);

static void transport__write_cb(uv_write_t *req, int status)
{
    struct transport__write *w = (struct transport__write *)req;
    if (w->c != NULL) {
        if (w->keep && status == 0) {
            transport__keep(w->c);
        } else {
            transport__conn_close(w->c);
        }
    }
    mem_free(w);
}

/* Write a reply header and body on stream; then close c when c is not
 * NULL, or keep it for a next call when keep is true. Returns 0 or a
 * negative code. */
static int transport__write_reply(uv_stream_t *stream, unsigned status,
                                  const void *body, size_t len,
                                  struct transport_call *close_after, bool keep)
{
    struct transport__write *w =
        mem_alloc(sizeof *w + TRANSPORT__REPLY_HEADER + len);
    if (w == NULL) {
        return BERTH_ENOMEM;
    }
    memcpy(w->data, TRANSPORT__MAGIC, 8);
    put_le32(w->data + 8, status);
    put_le32(w->data + 12, (uint32_t)len);
    if (len > 0) {
        memcpy(w->data + TRANSPORT__REPLY_HEADER, body, len);
    }
    w->c = close_after;
    w->keep = keep;
    uv_buf_t b =
        uv_buf_init((char *)w->data, (unsigned)(TRANSPORT__REPLY_HEADER + len));
    if (uv_write(&w->req, stream, &b, 1, transport__write_cb) != 0) {
        mem_free(w);
        return BERTH_EIO;
    }
    return 0;
}

/* Reads are sized to what is still expected, so that nothing past a
 * handshake is ever read here: after it, the bytes are libraft's. */
/* A message read whole, header and body in one read, goes through this
 * buffer: one read a message instead of two. Only where nothing but the
 * message can follow on the connection: a reply to a call, and a call on a
 * kept connection. The first message of an accepted connection may be a
 * raft handshake, after which the bytes are libraft's, so it is read
 * exactly, header then body. */
#define TRANSPORT__SCRATCH (64u * 1024)

static bool transport__whole(const struct transport_call *c)
{
    return !c->in_body && c->got == 0 &&
           (c->role == TRANSPORT__DIAL_CALL ||
            (c->role == TRANSPORT__INBOUND && c->kept));
}

static void transport__alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct transport_call *c = h->data;
    struct transport *t = c->t;
    (void)hint;
    if (c->role == TRANSPORT__CALL) {
        /* Anything read while a call is served breaks the protocol. */
        buf->base = (char *)c->header;
        buf->len = sizeof c->header;
        return;
    }
    if (transport__whole(c)) {
        if (t->scratch == NULL) {
            t->scratch = mem_alloc(TRANSPORT__SCRATCH);
        }
        if (t->scratch != NULL) {
            buf->base = (char *)t->scratch;
            buf->len = TRANSPORT__SCRATCH;
            return;
        }
    }
    if (!c->in_body) {
        buf->base = (char *)c->header + c->got;
        buf->len = c->header_need - c->got;
    } else {
        buf->base = (char *)c->body + c->got;
        buf->len = c->body_len - c->got;
    }
}

static void transport__inbound_done(struct transport_call *c);
static void transport__dial_done(struct transport_call *c);
static void transport__take(struct transport_call *c, const uint8_t *p,
                            size_t n);
static bool transport__advance(struct transport_call *c, size_t n);
static void transport__dial_fail(struct transport_call *c, int rv);
static void transport__timeout_cb(uv_timer_t *timer);

/* Get c ready to read a header of need bytes. */
static void transport__read_anew(struct transport_call *c, size_t need)
{
    mem_free(c->body);
    c->body = NULL;
    c->body_len = 0;
    c->got = 0;
    c->in_body = false;
    c->header_need = need;
}

static void transport__read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct transport_call *c = s->data;
    if (n == 0) {
        return;
    }
    if (c->role == TRANSPORT__CALL) {
        /* The dialer closed, or sent before its answer: the answer, when
         * it comes, closes the connection instead. */
        c->broken = true;
        uv_read_stop(s);
        return;
    }
    if (c->role == TRANSPORT__IDLE) {
        /* The listener went away, or says what nobody asked. */
        transport__conn_close(c);
        return;
    }
    if (c->kept && c->got == 0 && !c->in_body && n > 0) {
        /* A next call begins: it has the handshake's time to arrive. */
        uv_timer_start(&c->timer, transport__timeout_cb,
                       TRANSPORT__HANDSHAKE_MS, 0);
    }
    if (n < 0) {
        if (c->role == TRANSPORT__INBOUND) {
            transport__conn_close(c);
        } else {
            transport__dial_fail(c, BERTH_EIO);
        }
        return;
    }
    if (c->t->scratch != NULL && buf->base == (char *)c->t->scratch) {
        transport__take(c, c->t->scratch, (size_t)n);
        return;
    }
    transport__advance(c, (size_t)n);
}

/* A protocol error on c: close it, or fail its call. */
static void transport__malformed(struct transport_call *c)
{
    if (c->role == TRANSPORT__INBOUND) {
        transport__conn_close(c);
    } else {
        transport__dial_fail(c, BERTH_EMALFORMED);
    }
}

/* The length of the body that c's complete header announces. */
static size_t transport__body_len(const struct transport_call *c)
{
    bool in = c->role == TRANSPORT__INBOUND;
    return get_le32(c->header + (in ? 8 + TRANSPORT_CLUSTER_SIZE + 4 : 12));
}

/* Bytes of one message read whole into p: put them where the exact reads
 * would have, piece by piece. More bytes than the message is a peer that
 * broke the protocol. */
static void transport__take(struct transport_call *c, const uint8_t *p,
                            size_t n)
{
    while (n > 0) {
        uint8_t *dst = c->in_body ? c->body + c->got : c->header + c->got;
        size_t room =
            c->in_body ? c->body_len - c->got : c->header_need - c->got;
        size_t take = n < room ? n : room;
        memcpy(dst, p, take);
        p += take;
        n -= take;
        if (!c->in_body && take == room && n > transport__body_len(c)) {
            transport__malformed(c);
            return;
        }
        if (!transport__advance(c, take)) {
            return;
        }
    }
}

/* n more bytes of c's message are in place: go on with it. Returns whether
 * c is still reading the same message. */
static bool transport__advance(struct transport_call *c, size_t n)
{
    c->got += n;
    if (!c->in_body) {
        if (c->got < c->header_need) {
            return true;
        }
        if (memcmp(c->header, TRANSPORT__MAGIC, 8) != 0) {
            if (c->role == TRANSPORT__INBOUND) {
                transport__refuse(c->t, "peer port: not a berth peer",
                                  "bad magic");
                transport__conn_close(c);
            } else {
                transport__dial_fail(c, BERTH_EMALFORMED);
            }
            return false;
        }
        bool in = c->role == TRANSPORT__INBOUND;
        size_t len = transport__body_len(c);
        unsigned kind =
            in ? get_le32(c->header + 8 + TRANSPORT_CLUSTER_SIZE) : c->kind;
        if (len > (kind == TRANSPORT_FORWARD ? TRANSPORT_MAX_FORWARD
                                             : TRANSPORT_MAX_BODY)) {
            if (c->role == TRANSPORT__INBOUND) {
                transport__refuse(c->t, "peer port: request too big", NULL);
                transport__conn_close(c);
            } else {
                transport__dial_fail(c, BERTH_EMALFORMED);
            }
            return false;
        }
        c->in_body = true;
        c->got = 0;
        c->body_len = len;
        c->body = mem_alloc(len + 1); /* +1: a NUL after an address */
        if (c->body == NULL) {
            if (c->role == TRANSPORT__INBOUND) {
                transport__conn_close(c);
            } else {
                transport__dial_fail(c, BERTH_ENOMEM);
            }
            return false;
        }
    }
    if (c->got < c->body_len) {
        return true;
    }
    c->body[c->body_len] = '\0';
    /* Reading goes on: a dialed call's connection, to notice a listener
     * that closes it while idle; an accepted one while its call is served
     * (TRANSPORT__CALL, where any byte breaks it) and for the next call.
     * Stopping and starting again cost two epoll_ctl calls a call. A raft
     * connection stops when handed over. */
    if (c->role == TRANSPORT__INBOUND) {
        transport__inbound_done(c);
    } else {
        transport__dial_done(c);
    }
    return false;
}

static void transport__timeout_cb(uv_timer_t *timer)
{
    struct transport_call *c = timer->data;
    if (c->role == TRANSPORT__IDLE ||
        (c->kept && c->role == TRANSPORT__INBOUND && c->got == 0 &&
         !c->in_body)) {
        transport__conn_close(c); /* idle long enough */
    } else if (c->role == TRANSPORT__INBOUND) {
        transport__refuse(c->t, "peer port: handshake timed out", NULL);
        transport__conn_close(c);
    } else if (c->role != TRANSPORT__CALL) {
        transport__dial_fail(c, BERTH_ETIMEOUT);
    }
}

/* --- Accepting. --- */

static bool transport__zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

static void transport__inbound_done(struct transport_call *c)
{
    struct transport *t = c->t;
    const uint8_t *cluster = c->header + 8;
    c->kind = get_le32(c->header + 8 + TRANSPORT_CLUSTER_SIZE);
    c->sender = get_le64(c->header + 8 + TRANSPORT_CLUSTER_SIZE + 8);
    uv_timer_stop(&c->timer);
    if (c->counted) {
        t->handshakes--;
        c->counted = false;
    }
    c->role = TRANSPORT__CALL;

    bool ours = memcmp(cluster, t->cluster, TRANSPORT_CLUSTER_SIZE) == 0 &&
                !transport__zero(t->cluster, TRANSPORT_CLUSTER_SIZE);
    bool anonymous = transport__zero(cluster, TRANSPORT_CLUSTER_SIZE);
    if (!ours && !(anonymous && c->kind != TRANSPORT_RAFT)) {
        char hex[2 * TRANSPORT_CLUSTER_SIZE + 1];
        for (int i = 0; i < TRANSPORT_CLUSTER_SIZE; i++) {
            snprintf(hex + 2 * i, 3, "%02x", cluster[i]);
        }
        transport__refuse(t, "peer port: refused a host of another cluster",
                          hex);
        c->done = true;
        if (transport__write_reply((uv_stream_t *)c->tcp,
                                   TRANSPORT_WRONG_CLUSTER, NULL, 0, c,
                                   false) != 0) {
            transport__conn_close(c);
        }
        return;
    }
    if (c->kind == TRANSPORT_RAFT) {
        if (!t->listening || c->body_len == 0 ||
            c->body_len > TRANSPORT__ADDRESS_MAX ||
            strlen((char *)c->body) != c->body_len || c->sender == 0) {
            transport__conn_close(c);
            return;
        }
        uv_stream_t *s = (uv_stream_t *)c->tcp;
        if (transport__write_reply(s, TRANSPORT_OK, NULL, 0, NULL, false) !=
            0) {
            transport__conn_close(c);
            return;
        }
        s = transport__hand_over(c);
        c->done = true;
        t->accept_cb(t->raft, c->sender, (const char *)c->body, s);
        transport__conn_close(c);
        return;
    }
    t->handler(t->arg, c, c->kind, c->sender, c->body, c->body_len);
}

void transport_reply(struct transport_call *c, unsigned status,
                     const void *body, size_t len)
{
    if (c->done) {
        return;
    }
    c->done = true;
    struct transport *t = c->t;
    bool keep = !t->closing && (c->kept || t->kept < TRANSPORT__MAX_KEPT);
    if (c->broken || c->tcp == NULL || uv_is_closing((uv_handle_t *)c->tcp) ||
        transport__write_reply((uv_stream_t *)c->tcp, status, body, len, c,
                               keep) != 0) {
        transport__conn_close(c);
    }
}

/* The reply is out: wait for the dialer's next call on this connection. */
static void transport__keep(struct transport_call *c)
{
    struct transport *t = c->t;
    if (t->closing || c->tcp == NULL || uv_is_closing((uv_handle_t *)c->tcp)) {
        transport__conn_close(c);
        return;
    }
    if (!c->kept) {
        c->kept = true;
        t->kept++;
    }
    c->role = TRANSPORT__INBOUND;
    c->done = false;
    transport__read_anew(c, TRANSPORT__REQ_HEADER);
    uv_timer_start(&c->timer, transport__timeout_cb, TRANSPORT__KEEP_MS, 0);
    uv_read_start((uv_stream_t *)c->tcp, transport__alloc_cb,
                  transport__read_cb);
}

static void transport__connection_cb(uv_stream_t *server, int status)
{
    struct transport *t = server->data;
    if (status != 0) {
        return;
    }
    struct transport_call *c = transport__conn_new(t, TRANSPORT__INBOUND);
    if (c == NULL) {
        /* Take the connection off the backlog and drop it. */
        uv_tcp_t tmp;
        uv_tcp_init(t->loop, &tmp);
        uv_accept(server, (uv_stream_t *)&tmp);
        uv_close((uv_handle_t *)&tmp, NULL);
        return;
    }
    if (uv_accept(server, (uv_stream_t *)c->tcp) != 0 ||
        t->handshakes > TRANSPORT__MAX_HANDSHAKES) {
        transport__conn_close(c);
        return;
    }
    /* Replies and raft's messages are small and each is waited for: Nagle
     * would hold one back until the last is acknowledged, which a delayed
     * ACK puts off by up to 40 ms. */
    uv_tcp_nodelay(c->tcp, 1);
    c->header_need = TRANSPORT__REQ_HEADER;
    uv_timer_start(&c->timer, transport__timeout_cb, TRANSPORT__HANDSHAKE_MS,
                   0);
    uv_read_start((uv_stream_t *)c->tcp, transport__alloc_cb,
                  transport__read_cb);
}

/* --- Dialing. --- */

static int transport__request_bytes(struct transport *t, struct buf *out,
                                    unsigned kind, const void *body, size_t len)
{
    int rv = buf_append(out, TRANSPORT__MAGIC, 8);
    rv = rv ? rv : buf_append(out, t->cluster, TRANSPORT_CLUSTER_SIZE);
    rv = rv ? rv : buf_put_u32(out, kind);
    rv = rv ? rv : buf_put_u32(out, (uint32_t)len);
    rv = rv ? rv : buf_put_u64(out, t->id);
    rv = rv ? rv : (len > 0 ? buf_append(out, body, len) : 0);
    return rv;
}

static void transport__dial_written(uv_write_t *req, int status)
{
    struct transport_call *c = req->data;
    mem_free(req);
    if (status != 0 && !c->done) {
        transport__dial_fail(c, BERTH_EIO);
    }
}

/* Write the request in c->out on c's connection. */
static int transport__send_out(struct transport_call *c)
{
    uv_write_t *w = mem_alloc(sizeof *w);
    if (w == NULL) {
        return BERTH_ENOMEM;
    }
    w->data = c;
    uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
    if (uv_write(w, (uv_stream_t *)c->tcp, &b, 1, transport__dial_written) !=
        0) {
        mem_free(w);
        return BERTH_EIO;
    }
    return 0;
}

static void transport__connect_cb(uv_connect_t *req, int status)
{
    struct transport_call *c = req->data;
    if (c->done) {
        return;
    }
    if (status != 0) {
        /* Nothing was sent: the caller may try elsewhere. */
        transport__dial_fail(c, BERTH_ENOCONNECT);
        return;
    }
    uv_tcp_nodelay(c->tcp, 1); /* as on the accepting side */
    int rv = transport__send_out(c);
    if (rv != 0) {
        transport__dial_fail(c, rv);
        return;
    }
    c->header_need = TRANSPORT__REPLY_HEADER;
    uv_read_start((uv_stream_t *)c->tcp, transport__alloc_cb,
                  transport__read_cb);
}

static void transport__dial_fail(struct transport_call *c, int rv)
{
    if (c->done) {
        return;
    }
    c->done = true;
    if (c->role == TRANSPORT__DIAL_RAFT) {
        struct raft_uv_connect *req = c->raft_req;
        transport__conn_close(c);
        req->cb(req, NULL,
                rv == BERTH_ESHUTDOWN ? RAFT_CANCELED : RAFT_NOCONNECTION);
    } else {
        transport__conn_close(c);
        c->cb(c->cb_arg, rv, NULL, 0);
    }
}

static void transport__dial_done(struct transport_call *c)
{
    unsigned status = get_le32(c->header + 8);
    if (c->role == TRANSPORT__DIAL_RAFT) {
        if (status != TRANSPORT_OK || c->body_len != 0) {
            if (status == TRANSPORT_WRONG_CLUSTER && c->t->note != NULL) {
                c->t->note(c->t->arg, "warn",
                           "a peer refused this host: it belongs to another "
                           "cluster",
                           NULL);
            }
            transport__dial_fail(c, BERTH_EIO);
            return;
        }
        c->done = true;
        struct raft_uv_connect *req = c->raft_req;
        uv_stream_t *s = transport__hand_over(c);
        transport__conn_close(c);
        req->cb(req, s, 0);
        return;
    }
    c->done = true;
    uv_timer_stop(&c->timer);
    c->cb(c->cb_arg, (int)status, c->body, c->body_len);
    struct transport *t = c->t;
    if (t->closing || t->idle >= TRANSPORT__MAX_IDLE || c->tcp == NULL ||
        uv_is_closing((uv_handle_t *)c->tcp)) {
        transport__conn_close(c);
        return;
    }
    /* Keep it for the next call to the same address. Reading goes on, so
     * that a listener that closes it is noticed while it is idle. */
    c->role = TRANSPORT__IDLE;
    c->done = false;
    t->idle++;
    transport__read_anew(c, TRANSPORT__REPLY_HEADER);
    uv_timer_start(&c->timer, transport__timeout_cb, TRANSPORT__IDLE_MS, 0);
    uv_read_start((uv_stream_t *)c->tcp, transport__alloc_cb,
                  transport__read_cb);
}

/* Send a call on an idle connection to address, if there is one. Returns
 * 0 when the call went out, BERTH_ENOTFOUND when no connection could take
 * it. */
static int transport__reuse(struct transport *t, const char *address,
                            unsigned kind, const void *body, size_t len,
                            unsigned timeout_ms, transport_reply_cb cb,
                            void *arg)
{
    struct transport_call *c = t->conns;
    while (c != NULL && !(c->role == TRANSPORT__IDLE && !c->done &&
                          strcmp(c->address, address) == 0)) {
        c = c->next;
    }
    if (c == NULL) {
        return BERTH_ENOTFOUND;
    }
    c->out.len = 0; /* the last call's bytes were all read */
    if (transport__request_bytes(t, &c->out, kind, body, len) != 0) {
        return BERTH_ENOMEM;
    }
    t->idle--;
    c->role = TRANSPORT__DIAL_CALL;
    c->kind = kind;
    c->cb = cb;
    c->cb_arg = arg;
    if (transport__send_out(c) != 0) {
        /* The call goes out on a new connection instead. */
        transport__conn_close(c);
        return BERTH_ENOTFOUND;
    }
    uv_timer_start(&c->timer, transport__timeout_cb, timeout_ms, 0);
    return 0;
}

static int transport__dial(struct transport *t, struct transport_call **out,
                           enum transport__role role, const char *address,
                           unsigned kind, const void *body, size_t len,
                           unsigned timeout_ms)
{
    struct sockaddr_storage addr;
    if (transport_parse_address(address, &addr) != 0) {
        return BERTH_EINVAL;
    }
    if (t->closing) {
        return BERTH_ESHUTDOWN;
    }
    struct transport_call *c = transport__conn_new(t, role);
    if (c == NULL) {
        return BERTH_ENOMEM;
    }
    int rv = transport__request_bytes(t, &c->out, kind, body, len);
    if (rv != 0) {
        c->done = true;
        transport__conn_close(c);
        return rv;
    }
    c->kind = kind;
    c->connect.data = c;
    t->dials++;
    if (uv_tcp_connect(&c->connect, c->tcp, (struct sockaddr *)&addr,
                       transport__connect_cb) != 0) {
        c->done = true;
        transport__conn_close(c);
        return BERTH_EIO;
    }
    uv_timer_start(&c->timer, transport__timeout_cb, timeout_ms, 0);
    *out = c;
    return 0;
}

int transport_request(struct transport *t, const char *address, unsigned kind,
                      const void *body, size_t len, unsigned timeout_ms,
                      transport_reply_cb cb, void *arg)
{
    if (t->closing) {
        return BERTH_ESHUTDOWN;
    }
    int rv = transport__reuse(t, address, kind, body, len, timeout_ms, cb, arg);
    if (rv != BERTH_ENOTFOUND) {
        return rv;
    }
    char *key = mem_strdup(address);
    if (key == NULL) {
        return BERTH_ENOMEM;
    }
    struct transport_call *c;
    rv = transport__dial(t, &c, TRANSPORT__DIAL_CALL, address, kind, body, len,
                         timeout_ms);
    if (rv != 0) {
        mem_free(key);
        return rv;
    }
    c->address = key;
    c->cb = cb;
    c->cb_arg = arg;
    return 0;
}

/* --- The table libraft calls. --- */

static int transport__raft_init(struct raft_uv_transport *rt, raft_id id,
                                const char *address)
{
    struct transport *t = rt->impl;
    (void)address;
    t->id = id;
    return 0;
}

static int transport__raft_listen(struct raft_uv_transport *rt,
                                  raft_uv_accept_cb cb)
{
    struct transport *t = rt->impl;
    struct sockaddr_storage addr;
    t->accept_cb = cb;
    if (t->bind == NULL) {
        return 0;
    }
    if (transport_parse_address(t->bind, &addr) != 0) {
        snprintf(rt->errmsg, sizeof rt->errmsg, "bad peer address %s", t->bind);
        return RAFT_INVALID;
    }
    uv_tcp_init(t->loop, &t->listener);
    t->listener.data = t;
    t->handles++;
    int rv = uv_tcp_bind(&t->listener, (struct sockaddr *)&addr, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&t->listener, 128,
                       transport__connection_cb);
    }
    if (rv != 0) {
        snprintf(rt->errmsg, sizeof rt->errmsg, "cannot listen on %s: %s",
                 t->bind, uv_strerror(rv));
        t->listen_failed = true;
        return RAFT_IOERR;
    }
    t->listening = true;
    return 0;
}

static int transport__raft_connect(struct raft_uv_transport *rt,
                                   struct raft_uv_connect *req, raft_id id,
                                   const char *address, raft_uv_connect_cb cb)
{
    struct transport *t = rt->impl;
    struct transport_call *c;
    (void)id;
    req->cb = cb;
    const char *self = t->bind != NULL ? t->bind : "";
    int rv =
        transport__dial(t, &c, TRANSPORT__DIAL_RAFT, address, TRANSPORT_RAFT,
                        self, strlen(self), TRANSPORT__HANDSHAKE_MS);
    if (rv != 0) {
        return rv == BERTH_ENOMEM ? RAFT_NOMEM : RAFT_NOCONNECTION;
    }
    c->raft_req = req;
    return 0;
}

static void transport__listener_closed(uv_handle_t *h)
{
    struct transport *t = h->data;
    t->handles--;
    transport__maybe_closed(t);
}

static void transport__raft_close(struct raft_uv_transport *rt,
                                  raft_uv_transport_close_cb cb)
{
    struct transport *t = rt->impl;
    t->raft_close_cb = cb;
    t->listening = false;
    /* Dials for libraft end as canceled; handshakes in progress end. */
    for (struct transport_call *c = t->conns; c != NULL; c = c->next) {
        if (c->role == TRANSPORT__DIAL_RAFT && !c->done) {
            transport__dial_fail(c, BERTH_ESHUTDOWN);
        } else if (c->role == TRANSPORT__INBOUND && !c->done) {
            transport__conn_close(c);
        }
    }
    if (t->handles > 0 && !uv_is_closing((uv_handle_t *)&t->listener)) {
        uv_close((uv_handle_t *)&t->listener, transport__listener_closed);
    }
    transport__maybe_closed(t);
}

/* libraft's close completes once no raft connection is half made and the
 * listener is closed; transport_close completes once nothing is left. */
static void transport__maybe_closed(struct transport *t)
{
    if (t->raft_close_cb != NULL && t->handles == 0) {
        bool raft_left = false;
        for (struct transport_call *c = t->conns; c != NULL; c = c->next) {
            if (c->role == TRANSPORT__DIAL_RAFT ||
                c->role == TRANSPORT__INBOUND) {
                raft_left = true;
            }
        }
        if (!raft_left) {
            raft_uv_transport_close_cb cb = t->raft_close_cb;
            t->raft_close_cb = NULL;
            t->raft_closed = true;
            cb(t->raft);
        }
    }
    if (t->closing && t->conns == NULL && t->handles == 0 &&
        t->raft_close_cb == NULL) {
        transport_close_cb cb = t->close_cb;
        void *arg = t->close_arg;
        mem_free(t->bind);
        mem_free(t->scratch);
        mem_free(t);
        if (cb != NULL) {
            cb(arg);
        }
    }
}

int transport_init(struct transport **out, struct raft_uv_transport *raft,
                   uv_loop_t *loop, const char *bind_address,
                   transport_call_fn handler, transport_note_fn note, void *arg,
                   char *errmsg)
{
    struct sockaddr_storage addr;
    if (bind_address != NULL &&
        transport_parse_address(bind_address, &addr) != 0) {
        err_printf(errmsg,
                   "peer address %s is not an IP address and port "
                   "(such as 10.0.0.1:7001 or [::1]:7001)",
                   bind_address);
        return BERTH_EINVAL;
    }
    struct transport *t = mem_calloc(1, sizeof *t);
    if (t == NULL) {
        err_printf(errmsg, "out of memory");
        return BERTH_ENOMEM;
    }
    if (bind_address != NULL) {
        t->bind = mem_strdup(bind_address);
        if (t->bind == NULL) {
            mem_free(t);
            err_printf(errmsg, "out of memory");
            return BERTH_ENOMEM;
        }
    }
    t->loop = loop;
    t->raft = raft;
    t->handler = handler;
    t->note = note;
    t->arg = arg;
    memset(raft, 0, sizeof *raft);
    raft->version = 1;
    raft->impl = t;
    raft->init = transport__raft_init;
    raft->listen = transport__raft_listen;
    raft->connect = transport__raft_connect;
    raft->close = transport__raft_close;
    *out = t;
    return 0;
}

void transport_set_cluster(struct transport *t,
                           const uint8_t cluster[TRANSPORT_CLUSTER_SIZE])
{
    memcpy(t->cluster, cluster, TRANSPORT_CLUSTER_SIZE);
}

void transport_set_id(struct transport *t, uint64_t id)
{
    t->id = id;
}

bool transport_listen_failed(const struct transport *t)
{
    return t->listen_failed;
}

uint64_t transport_dials(const struct transport *t)
{
    return t->dials;
}

uint64_t transport_refused(const struct transport *t)
{
    return t->refused;
}

void transport_close(struct transport *t, transport_close_cb cb, void *arg)
{
    t->closing = true;
    t->close_cb = cb;
    t->close_arg = arg;
    struct transport_call *next;
    for (struct transport_call *c = t->conns; c != NULL; c = next) {
        next = c->next;
        if (c->role == TRANSPORT__DIAL_CALL && !c->done) {
            transport__dial_fail(c, BERTH_ESHUTDOWN);
        } else if (c->role == TRANSPORT__CALL && !c->done) {
            transport_reply(c, TRANSPORT_UNAVAILABLE, "closing", 7);
        } else if (!c->done) {
            transport__conn_close(c);
        }
    }
    if (t->handles > 0 && !uv_is_closing((uv_handle_t *)&t->listener)) {
        uv_close((uv_handle_t *)&t->listener, transport__listener_closed);
    }
    transport__maybe_closed(t);
}
