#include "consensus/transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/channel.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"

#define TRANSPORT__MAGIC "berthp03"
/* magic 8, cluster 16, kind, len, sender 8, call */
#define TRANSPORT__REQ_HEADER 44
/* magic 8, status, len, call */
#define TRANSPORT__REPLY_HEADER 20
#define TRANSPORT__ADDRESS_MAX 255
/* A connection must finish its first message within this. */
#define TRANSPORT__HANDSHAKE_MS 5000
/* Connections still in their first message, at most; more are closed at
 * once, so that a flood of silent sockets cannot take every descriptor. */
#define TRANSPORT__MAX_HANDSHAKES 256

/* Keeping call connections. A dialer closes its connection to a host once
 * no call has gone or come on it for TRANSPORT__IDLE_MS; the listener waits
 * longer, TRANSPORT__KEEP_MS, so that it is the dialer that closes an idle
 * connection, never the listener under a call being sent. At most
 * TRANSPORT__MAX_KEPT accepted connections are kept; past that, one is
 * closed once its calls are answered. */
#define TRANSPORT__IDLE_MS 2000
#define TRANSPORT__KEEP_MS 30000
#define TRANSPORT__MAX_KEPT 512
/* How often a dialer looks for calls past their deadline. */
#define TRANSPORT__TICK_MS 50
/* Calls served at once on one connection, at most: past it the listener
 * stops reading that connection until some are answered, so a dialer that
 * sends without reading answers cannot pile them up without bound. */
#define TRANSPORT__MAX_CALLS 1024
/* Reads on call connections go through a buffer this big: many messages a
 * read. */
#define TRANSPORT__SCRATCH (64u * 1024)
/* A raft relay stops reading one side while more than this waits to be
 * written to the other. */
#define TRANSPORT__RELAY_HIGH (4u * 1024 * 1024)

/* What a connection is doing. */
enum transport__role {
    TRANSPORT__INBOUND = 1, /* accepted; reading its first message exactly */
    TRANSPORT__SERVE,       /* accepted call connection: calls in */
    TRANSPORT__DIAL_RAFT,   /* dialed for libraft; reading the reply */
    TRANSPORT__DIAL_CALLS,  /* dialed for transport_request: calls out */
    TRANSPORT__RELAY, /* raft's bytes, between libraft's pipe and the peer */
};

struct transport__conn;

/* A call received, waiting for transport_reply(). */
struct transport_call {
    struct transport__conn *conn; /* NULL once the transport answered it */
    uint32_t id;
    struct transport_call *prev, *next; /* in conn's calls */
    uint8_t body[];                     /* the call's body, NUL-terminated */
};

/* A call sent, waiting for its answer. */
struct transport__pending {
    uint32_t id;
    bool sent; /* its bytes were given to the connection to write */
    uint64_t deadline_ms;
    transport_reply_cb cb;
    void *arg;
    struct transport__pending *next;
};

struct transport__conn {
    struct transport *t;
    uv_tcp_t *tcp; /* from raft_malloc: it may be handed to libraft */
    uv_timer_t timer;
    uv_connect_t connect;
    uv_write_t write;
    enum transport__role role;
    /* The first message of a connection, read exactly: after a raft
     * handshake the bytes are libraft's. */
    uint8_t header[TRANSPORT_REQUEST_HEADER];
    size_t header_need; /* bytes of header expected */
    size_t got;         /* bytes of header, then body, read so far */
    uint8_t *body;
    size_t body_len;
    bool in_body;
    bool counted;     /* counted in the transport's handshakes */
    bool kept;        /* counted in the transport's kept connections */
    bool closed;      /* closing: nothing more is read, written or answered */
    bool connected;   /* a dial's connect completed */
    bool confirmed;   /* a dial's first answer came: more calls may go */
    bool writing;     /* a write of wbuf is in flight */
    bool paused;      /* reading stopped: TRANSPORT__MAX_CALLS being served */
    int handles;      /* open handles (tcp, timer) of this connection */
    uint64_t last_ms; /* when a call or answer last went or came */
    struct buf in;    /* the start of a message not yet whole */
    struct buf out;   /* bytes to write next */
    struct buf wbuf;  /* bytes being written */
    struct buf held;  /* calls waiting for the first answer */
    unsigned ncalls;  /* calls served, not yet answered */
    struct transport_call *calls; /* those calls */
    uint32_t next_id;
    struct transport__pending *pending, *pending_tail; /* oldest first */
    struct raft_uv_connect *raft_req;
    char *address; /* whom a call connection was dialed to */
    /* Encryption (NULL: the transport is plaintext): what is written goes
     * from out through the channel into wire, or straight into wire
     * during the handshake. */
    struct channel *ch;
    struct buf wire;
    /* A raft relay: this side of the socket pair whose other side libraft
     * reads and writes, and the plaintext going to it. */
    uv_pipe_t *pipe;
    uv_write_t pwrite;
    struct buf pout, pwbuf;
    bool pwriting;
    bool pipe_paused; /* reading libraft's side stopped: wire is full */
    bool tcp_paused;  /* reading the peer stopped: pout is full */
    struct transport__conn *prev, *next;
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
    uint8_t secret[CHANNEL_SECRET_SIZE];
    bool has_secret;
    bool plaintext;   /* no channel: for measuring what encryption costs */
    struct buf plain; /* a read's plaintext, out of the channel */
    uint64_t id;
    uint64_t refused;
    unsigned handshakes;
    uint64_t dials;                /* connections dialed, since start */
    unsigned kept;                 /* accepted call connections kept */
    struct transport__conn *conns; /* every live connection */
    uint8_t *scratch; /* TRANSPORT__SCRATCH bytes for reads, or NULL */
    int handles;      /* the listener, when open */
    transport_close_cb close_cb;
    void *close_arg;
};

static void transport__maybe_closed(struct transport *t);

static void transport__link(struct transport *t, struct transport__conn *c)
{
    c->prev = NULL;
    c->next = t->conns;
    if (t->conns != NULL) {
        t->conns->prev = c;
    }
    t->conns = c;
}

static void transport__unlink(struct transport *t, struct transport__conn *c)
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

static struct transport__conn *transport__conn_new(struct transport *t,
                                                   enum transport__role role)
{
    struct transport__conn *c = mem_calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    if (!t->plaintext) {
        c->ch = mem_alloc(sizeof *c->ch);
        if (c->ch == NULL) {
            mem_free(c);
            return NULL;
        }
        channel_init(c->ch, t->secret, role != TRANSPORT__INBOUND);
    }
    c->tcp = raft_malloc(sizeof *c->tcp);
    if (c->tcp == NULL) {
        if (c->ch != NULL) {
            channel_wipe(c->ch);
            mem_free(c->ch);
        }
        mem_free(c);
        return NULL;
    }
    c->t = t;
    c->role = role;
    buf_init(&c->in);
    buf_init(&c->out);
    buf_init(&c->wbuf);
    buf_init(&c->held);
    buf_init(&c->wire);
    buf_init(&c->pout);
    buf_init(&c->pwbuf);
    uv_tcp_init(t->loop, c->tcp);
    c->tcp->data = c;
    uv_timer_init(t->loop, &c->timer);
    c->timer.data = c;
    c->handles = 2;
    c->next_id = 1;
    c->last_ms = uv_now(t->loop);
    transport__link(t, c);
    if (role == TRANSPORT__INBOUND) {
        t->handshakes++;
        c->counted = true;
    }
    return c;
}

/* Free c once its handles are closed and no call of it is left with the
 * handler. */
static void transport__conn_maybe_free(struct transport__conn *c)
{
    if (c->handles > 0 || c->ncalls > 0) {
        return;
    }
    struct transport *t = c->t;
    transport__unlink(t, c);
    mem_free(c->body);
    mem_free(c->address);
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->wbuf);
    buf_free(&c->held);
    buf_free(&c->wire);
    buf_free(&c->pout);
    buf_free(&c->pwbuf);
    if (c->ch != NULL) {
        channel_wipe(c->ch);
        mem_free(c->ch);
    }
    mem_free(c);
    transport__maybe_closed(t);
}

static void transport__tcp_closed(uv_handle_t *h)
{
    struct transport__conn *c = h->data;
    raft_free(h);
    c->handles--;
    transport__conn_maybe_free(c);
}

static void transport__pipe_closed(uv_handle_t *h)
{
    struct transport__conn *c = h->data;
    mem_free(h);
    c->handles--;
    transport__conn_maybe_free(c);
}

static void transport__timer_closed(uv_handle_t *h)
{
    struct transport__conn *c = h->data;
    c->handles--;
    transport__conn_maybe_free(c);
}

/* Close what the connection still holds; calls it sent and not answered
 * must have been failed already. The tcp handle is gone already when it
 * was handed to libraft. */
static void transport__conn_close(struct transport__conn *c)
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
    c->closed = true;
    if (!uv_is_closing((uv_handle_t *)&c->timer)) {
        uv_close((uv_handle_t *)&c->timer, transport__timer_closed);
    }
    if (c->tcp != NULL && !uv_is_closing((uv_handle_t *)c->tcp)) {
        uv_close((uv_handle_t *)c->tcp, transport__tcp_closed);
    }
    if (c->pipe != NULL && !uv_is_closing((uv_handle_t *)c->pipe)) {
        uv_close((uv_handle_t *)c->pipe, transport__pipe_closed);
    }
}

/* Give the stream to libraft: it closes and frees it from now on. */
static uv_stream_t *transport__hand_over(struct transport__conn *c)
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

/* --- Writing: one write in flight a connection. ---
 *
 * What is queued while a write is in flight goes out in one write when it
 * completes, which libuv reports at the start of the next loop iteration:
 * the first message of an iteration leaves at once, and the answers to a
 * batch of events released together, or the requests a follower passes on
 * from one iteration's reads, share a write. */

static void transport__fail_all(struct transport__conn *c, int rv);
static void transport__flush(struct transport__conn *c);

static void transport__raft_dial_fail(struct transport__conn *c, int rv);

/* Close c after a failed read or write, or a peer that broke the protocol:
 * a dialer's calls fail with rv. c is closed first, so that a callback that
 * calls again dials anew. */
static void transport__broken(struct transport__conn *c, int rv)
{
    if (c->closed) {
        return;
    }
    if (c->role == TRANSPORT__DIAL_RAFT) {
        transport__raft_dial_fail(c, rv);
        return;
    }
    transport__conn_close(c);
    if (c->role == TRANSPORT__DIAL_CALLS) {
        transport__fail_all(c, rv);
    }
}

static void transport__pipe_start(struct transport__conn *c);

static void transport__write_cb(uv_write_t *req, int status)
{
    struct transport__conn *c = req->data;
    c->writing = false;
    c->wbuf.len = 0;
    if (c->wbuf.cap > 4 * TRANSPORT__SCRATCH) {
        buf_free(&c->wbuf); /* a big message went: give it back */
    }
    if (status != 0) {
        transport__broken(c, BERTH_EIO);
        return;
    }
    if (c->closed) {
        transport__conn_maybe_free(c);
        return;
    }
    if (c->pipe_paused && c->wire.len < TRANSPORT__RELAY_HIGH) {
        c->pipe_paused = false;
        transport__pipe_start(c);
    }
    if (c->out.len > 0 || c->wire.len > 0) {
        transport__flush(c);
    } else if (c->role == TRANSPORT__SERVE && !c->kept && c->ncalls == 0) {
        transport__conn_close(c); /* one over TRANSPORT__MAX_KEPT */
    }
}

/* Write what is queued in c->out, unless a write is in flight. */
static void transport__flush(struct transport__conn *c)
{
    if (c->writing || c->closed || c->tcp == NULL) {
        return;
    }
    struct buf *src = &c->out;
    if (c->ch != NULL) {
        /* Sealed once the handshake is done; until then only its own
         * messages go. */
        if (channel_ready(c->ch) && c->out.len > 0) {
            if (channel_seal(c->ch, c->out.data, c->out.len, &c->wire) != 0) {
                transport__broken(c, BERTH_ENOMEM);
                return;
            }
            c->out.len = 0;
            if (c->out.cap > 4 * TRANSPORT__SCRATCH) {
                buf_free(&c->out);
            }
        }
        src = &c->wire;
    }
    if (src->len == 0) {
        return;
    }
    struct buf tmp = c->wbuf;
    c->wbuf = *src;
    *src = tmp;
    c->write.data = c;
    uv_buf_t b = uv_buf_init((char *)c->wbuf.data, (unsigned)c->wbuf.len);
    if (uv_write(&c->write, (uv_stream_t *)c->tcp, &b, 1,
                 transport__write_cb) != 0) {
        c->wbuf.len = 0;
        transport__broken(c, BERTH_EIO);
        return;
    }
    c->writing = true;
}

/* --- Messages. ---
 *
 * request: magic 8 | cluster 16 | kind u32 | len u32 | sender u64 | call u32
 * reply:   magic 8 | status u32 | len u32 | call u32 */

/* The largest body a message of kind may have. */
static size_t transport__max_body(unsigned kind)
{
    return kind == TRANSPORT_FORWARD ? TRANSPORT_MAX_FORWARD
                                     : TRANSPORT_MAX_BODY;
}

/* Finish decoding a message whose header (head bytes) is read into *m:
 * its body, if all n bytes of p hold it. */
static int transport__body(const uint8_t *p, size_t n, size_t head, size_t max,
                           struct transport_message *m, size_t *used)
{
    m->body = NULL;
    if (m->len > max) {
        return BERTH_ETOOBIG;
    }
    if (n - head < m->len) {
        return BERTH_EPARTIAL;
    }
    m->body = p + head;
    *used = head + m->len;
    return 0;
}

int transport_decode_request(const uint8_t *p, size_t n,
                             struct transport_message *m, size_t *used)
{
    if (n >= 8 && memcmp(p, TRANSPORT__MAGIC, 8) != 0) {
        return BERTH_EMALFORMED;
    }
    if (n < TRANSPORT_REQUEST_HEADER) {
        return BERTH_EPARTIAL;
    }
    memset(m, 0, sizeof *m);
    memcpy(m->cluster, p + 8, TRANSPORT_CLUSTER_SIZE);
    m->kind = get_le32(p + 8 + TRANSPORT_CLUSTER_SIZE);
    m->len = get_le32(p + 8 + TRANSPORT_CLUSTER_SIZE + 4);
    m->sender = get_le64(p + 8 + TRANSPORT_CLUSTER_SIZE + 8);
    m->call = get_le32(p + 8 + TRANSPORT_CLUSTER_SIZE + 16);
    return transport__body(p, n, TRANSPORT_REQUEST_HEADER,
                           transport__max_body(m->kind), m, used);
}

int transport_decode_reply(const uint8_t *p, size_t n,
                           struct transport_message *m, size_t *used)
{
    if (n >= 8 && memcmp(p, TRANSPORT__MAGIC, 8) != 0) {
        return BERTH_EMALFORMED;
    }
    if (n < TRANSPORT_REPLY_HEADER) {
        return BERTH_EPARTIAL;
    }
    memset(m, 0, sizeof *m);
    m->status = get_le32(p + 8);
    m->len = get_le32(p + 12);
    m->call = get_le32(p + 16);
    return transport__body(p, n, TRANSPORT_REPLY_HEADER, TRANSPORT_MAX_FORWARD,
                           m, used);
}

int transport_encode_request(struct buf *out, const struct transport_message *m)
{
    int rv = buf_reserve(out, TRANSPORT_REQUEST_HEADER + m->len);
    if (rv != 0) {
        return rv;
    }
    uint8_t *p = out->data + out->len;
    memcpy(p, TRANSPORT__MAGIC, 8);
    memcpy(p + 8, m->cluster, TRANSPORT_CLUSTER_SIZE);
    put_le32(p + 8 + TRANSPORT_CLUSTER_SIZE, m->kind);
    put_le32(p + 8 + TRANSPORT_CLUSTER_SIZE + 4, (uint32_t)m->len);
    put_le64(p + 8 + TRANSPORT_CLUSTER_SIZE + 8, m->sender);
    put_le32(p + 8 + TRANSPORT_CLUSTER_SIZE + 16, m->call);
    if (m->len > 0) {
        memcpy(p + TRANSPORT_REQUEST_HEADER, m->body, m->len);
    }
    out->len += TRANSPORT_REQUEST_HEADER + m->len;
    return 0;
}

int transport_encode_reply(struct buf *out, const struct transport_message *m)
{
    int rv = buf_reserve(out, TRANSPORT_REPLY_HEADER + m->len);
    if (rv != 0) {
        return rv;
    }
    uint8_t *p = out->data + out->len;
    memcpy(p, TRANSPORT__MAGIC, 8);
    put_le32(p + 8, m->status);
    put_le32(p + 12, (uint32_t)m->len);
    put_le32(p + 16, m->call);
    if (m->len > 0) {
        memcpy(p + TRANSPORT_REPLY_HEADER, m->body, m->len);
    }
    out->len += TRANSPORT_REPLY_HEADER + m->len;
    return 0;
}

bool transport_check_handshake(const struct transport_message *m)
{
    return m->kind == TRANSPORT_RAFT && m->sender != 0 && m->len > 0 &&
           m->len <= TRANSPORT_ADDRESS_MAX && m->body != NULL &&
           memchr(m->body, '\0', m->len) == NULL;
}

static int transport__put_reply(struct buf *out, uint32_t call, unsigned status,
                                const void *body, size_t len)
{
    struct transport_message m = {
        .status = status, .call = call, .body = body, .len = len};
    return transport_encode_reply(out, &m);
}

static int transport__put_request(struct transport *t, struct buf *out,
                                  uint32_t call, unsigned kind,
                                  const void *body, size_t len)
{
    struct transport_message m = {
        .kind = kind, .sender = t->id, .call = call, .body = body, .len = len};
    memcpy(m.cluster, t->cluster, TRANSPORT_CLUSTER_SIZE);
    return transport_encode_request(out, &m);
}

/* --- Reading. ---
 *
 * The first message of an accepted connection is read exactly, header then
 * body: after a raft handshake the bytes are libraft's. Everything else, a
 * call connection on either side, is read through the transport's scratch
 * buffer, as many whole messages a read as have arrived; the start of a
 * message cut by the end of a read waits in c->in. */

static void transport__alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct transport__conn *c = h->data;
    struct transport *t = c->t;
    (void)hint;
    if (c->ch != NULL || c->role == TRANSPORT__SERVE ||
        c->role == TRANSPORT__DIAL_CALLS) {
        if (t->scratch == NULL) {
            t->scratch = mem_alloc(TRANSPORT__SCRATCH);
        }
        buf->base = (char *)t->scratch;
        buf->len = t->scratch != NULL ? TRANSPORT__SCRATCH : 0;
        return;
    }
    if (!c->in_body) {
        buf->base = (char *)c->header + c->got;
        buf->len = c->header_need - c->got;
    } else {
        buf->base = (char *)c->body + c->got;
        buf->len = c->body_len - c->got;
    }
}

static void transport__inbound_done(struct transport__conn *c);
static void transport__raft_dial_done(struct transport__conn *c);
static void transport__serve(struct transport__conn *c,
                             const struct transport_message *m);
static void transport__answer(struct transport__conn *c,
                              const struct transport_message *m);
static void transport__timeout_cb(uv_timer_t *timer);

static bool transport__zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

/* Whether a request's cluster id is acceptable for kind: this cluster's,
 * or none (a host not yet joined) for anything but raft. */
static bool transport__cluster_ok(const struct transport *t,
                                  const uint8_t *cluster, unsigned kind)
{
    bool ours = memcmp(cluster, t->cluster, TRANSPORT_CLUSTER_SIZE) == 0 &&
                !transport__zero(t->cluster, TRANSPORT_CLUSTER_SIZE);
    bool anonymous = transport__zero(cluster, TRANSPORT_CLUSTER_SIZE);
    return ours || (anonymous && kind != TRANSPORT_RAFT);
}

/* A protocol error on c: close it. */
static void transport__malformed(struct transport__conn *c)
{
    if (c->role == TRANSPORT__INBOUND || c->role == TRANSPORT__SERVE) {
        transport__refuse(c->t, "peer port: not a berth peer",
                          "a malformed message");
    }
    transport__broken(c, BERTH_EMALFORMED);
}

/* Take the whole messages at the start of p (n bytes) on a call
 * connection; returns how many bytes they took. Stops when c closes. */
static size_t transport__messages(struct transport__conn *c, const uint8_t *p,
                                  size_t n)
{
    bool serve = c->role == TRANSPORT__SERVE;
    size_t used = 0;
    while (!c->closed && used < n) {
        struct transport_message m;
        size_t took;
        int rv = serve ? transport_decode_request(p + used, n - used, &m, &took)
                       : transport_decode_reply(p + used, n - used, &m, &took);
        if (rv == BERTH_EPARTIAL) {
            break;
        }
        if (rv != 0) {
            transport__malformed(c);
            return n;
        }
        used += took;
        if (serve) {
            transport__serve(c, &m);
        } else {
            transport__answer(c, &m);
        }
    }
    return used;
}

/* n bytes read into the scratch buffer on a call connection. */
static void transport__take(struct transport__conn *c, const uint8_t *p,
                            size_t n)
{
    c->last_ms = uv_now(c->t->loop);
    if (c->in.len == 0) {
        size_t used = transport__messages(c, p, n);
        if (!c->closed && used < n && buf_append(&c->in, p + used, n - used)) {
            transport__broken(c, BERTH_ENOMEM);
        }
        return;
    }
    if (buf_append(&c->in, p, n) != 0) {
        transport__broken(c, BERTH_ENOMEM);
        return;
    }
    size_t used = transport__messages(c, c->in.data, c->in.len);
    if (c->closed) {
        return;
    }
    memmove(c->in.data, c->in.data + used, c->in.len - used);
    c->in.len -= used;
    if (c->in.len == 0 && c->in.cap > 4 * TRANSPORT__SCRATCH) {
        buf_free(&c->in); /* a big message came: give it back */
    }
}

/* n more bytes of c's first message are in place: go on with it. */
static void transport__advance(struct transport__conn *c, size_t n)
{
    bool in = c->role == TRANSPORT__INBOUND;
    c->got += n;
    if (!c->in_body) {
        if (c->got < c->header_need) {
            return;
        }
        /* The header alone: the body is read into a buffer of its own. */
        struct transport_message m = {.len = 0};
        size_t used;
        int rv = in ? transport_decode_request(c->header, c->got, &m, &used)
                    : transport_decode_reply(c->header, c->got, &m, &used);
        if (rv == BERTH_EMALFORMED) {
            if (in) {
                transport__refuse(c->t, "peer port: not a berth peer",
                                  "bad magic");
            }
            transport__broken(c, BERTH_EMALFORMED);
            return;
        }
        /* A raft dial's reply has no body: it gets a call's limit. */
        size_t len = m.len;
        if (rv == BERTH_ETOOBIG || (!in && len > TRANSPORT_MAX_BODY)) {
            if (in) {
                transport__refuse(c->t, "peer port: request too big", NULL);
            }
            transport__broken(c, BERTH_EMALFORMED);
            return;
        }
        c->in_body = true;
        c->got = 0;
        c->body_len = len;
        c->body = mem_alloc(len + 1); /* +1: a NUL after an address */
        if (c->body == NULL) {
            transport__broken(c, BERTH_ENOMEM);
            return;
        }
    }
    if (c->got < c->body_len) {
        return;
    }
    c->body[c->body_len] = '\0';
    if (in) {
        transport__inbound_done(c);
    } else {
        transport__raft_dial_done(c);
    }
}

static void transport__pipe_send(struct transport__conn *c, const uint8_t *p,
                                 size_t n);

/* n bytes of plaintext for c, out of its channel: to the first message,
 * the calls or answers, or libraft, as c's role says. */
static void transport__plain(struct transport__conn *c, const uint8_t *p,
                             size_t n)
{
    while (n > 0 && !c->closed) {
        switch (c->role) {
        case TRANSPORT__SERVE:
        case TRANSPORT__DIAL_CALLS:
            transport__take(c, p, n);
            return;
        case TRANSPORT__RELAY:
            transport__pipe_send(c, p, n);
            return;
        case TRANSPORT__INBOUND:
        case TRANSPORT__DIAL_RAFT:
            break;
        }
        uint8_t *dst = c->in_body ? c->body + c->got : c->header + c->got;
        size_t room =
            c->in_body ? c->body_len - c->got : c->header_need - c->got;
        size_t k = room < n ? room : n;
        if (k == 0) {
            transport__malformed(c);
            return;
        }
        memcpy(dst, p, k);
        p += k;
        n -= k;
        transport__advance(c, k);
    }
}

/* n bytes read on an encrypted connection: through the channel. */
static void transport__open(struct transport__conn *c, const uint8_t *p,
                            size_t n)
{
    struct transport *t = c->t;
    bool in = c->role == TRANSPORT__INBOUND || c->role == TRANSPORT__SERVE;
    t->plain.len = 0;
    int rv = channel_feed(c->ch, p, n, &c->wire, &t->plain);
    if (rv != 0) {
        const char *why =
            rv == BERTH_EREJECTED
                ? (in ? "peer port: refused a host without the cluster secret"
                      : "a peer does not know the cluster secret: refused it")
            : rv == BERTH_ECORRUPT
                ? "peer connection: a message failed to open (altered, "
                  "replayed or out of order): closed"
            : in ? "peer port: not a berth peer"
                 : "a peer is not a berth peer of this version";
        if (rv == BERTH_EREJECTED && c->wire.len > 0 && !c->writing) {
            /* The dialer's own proof, so that the listener can say why it
             * closes; written now, as the connection closes at once. */
            uv_buf_t b =
                uv_buf_init((char *)c->wire.data, (unsigned)c->wire.len);
            uv_try_write((uv_stream_t *)c->tcp, &b, 1);
        }
        if (in) {
            transport__refuse(t, why, NULL);
        } else if (t->note != NULL) {
            t->note(t->arg, "warn", why, c->address);
        }
        transport__broken(c, rv == BERTH_EREJECTED ? BERTH_EREJECTED
                             : rv == BERTH_ENOMEM  ? BERTH_ENOMEM
                                                   : BERTH_EMALFORMED);
        return;
    }
    if (c->wire.len > 0 || (channel_ready(c->ch) && c->out.len > 0)) {
        transport__flush(c);
    }
    if (t->plain.len > 0) {
        transport__plain(c, t->plain.data, t->plain.len);
    }
    if (t->plain.cap > 4 * TRANSPORT__SCRATCH) {
        buf_free(&t->plain);
    }
}

static void transport__read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct transport__conn *c = s->data;
    if (n == 0 || c->closed) {
        return;
    }
    if (n < 0) {
        /* The peer closed, or the read failed. Calls served on a call
         * connection are still answered, into nothing. */
        transport__broken(c, BERTH_EIO);
        return;
    }
    if (c->ch != NULL) {
        transport__open(c, (const uint8_t *)buf->base, (size_t)n);
        return;
    }
    if (c->role == TRANSPORT__SERVE || c->role == TRANSPORT__DIAL_CALLS) {
        transport__take(c, (const uint8_t *)buf->base, (size_t)n);
        return;
    }
    transport__advance(c, (size_t)n);
}

static void transport__start_reading(struct transport__conn *c)
{
    uv_read_start((uv_stream_t *)c->tcp, transport__alloc_cb,
                  transport__read_cb);
}

/* --- Relaying raft's bytes. ---
 *
 * libraft reads and writes a stream of its own; on an encrypted transport
 * it gets one side of a socket pair, and the connection seals what it
 * writes there and opens what comes for it. */

static void transport__pipe_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct transport__conn *c = h->data;
    struct transport *t = c->t;
    (void)hint;
    if (t->scratch == NULL) {
        t->scratch = mem_alloc(TRANSPORT__SCRATCH);
    }
    buf->base = (char *)t->scratch;
    buf->len = t->scratch != NULL ? TRANSPORT__SCRATCH : 0;
}

/* libraft wrote n bytes: seal them for the peer. */
static void transport__pipe_read_cb(uv_stream_t *s, ssize_t n,
                                    const uv_buf_t *buf)
{
    struct transport__conn *c = s->data;
    if (n == 0 || c->closed) {
        return;
    }
    if (n < 0) {
        transport__broken(c, BERTH_EIO); /* libraft closed its side */
        return;
    }
    if (channel_seal(c->ch, (const uint8_t *)buf->base, (size_t)n, &c->wire) !=
        0) {
        transport__broken(c, BERTH_ENOMEM);
        return;
    }
    transport__flush(c);
    if (c->wire.len >= TRANSPORT__RELAY_HIGH && !c->pipe_paused) {
        c->pipe_paused = true;
        uv_read_stop((uv_stream_t *)c->pipe);
    }
}

static void transport__pipe_start(struct transport__conn *c)
{
    uv_read_start((uv_stream_t *)c->pipe, transport__pipe_alloc_cb,
                  transport__pipe_read_cb);
}

static void transport__pipe_flush(struct transport__conn *c);

static void transport__pipe_write_cb(uv_write_t *req, int status)
{
    struct transport__conn *c = req->data;
    c->pwriting = false;
    c->pwbuf.len = 0;
    if (status != 0) {
        transport__broken(c, BERTH_EIO);
    }
    if (c->closed) {
        transport__conn_maybe_free(c);
        return;
    }
    transport__pipe_flush(c);
    if (c->tcp_paused && c->pout.len < TRANSPORT__RELAY_HIGH) {
        c->tcp_paused = false;
        transport__start_reading(c);
    }
}

static void transport__pipe_flush(struct transport__conn *c)
{
    if (c->pwriting || c->closed || c->pout.len == 0) {
        return;
    }
    struct buf tmp = c->pwbuf;
    c->pwbuf = c->pout;
    c->pout = tmp;
    c->pwrite.data = c;
    uv_buf_t b = uv_buf_init((char *)c->pwbuf.data, (unsigned)c->pwbuf.len);
    if (uv_write(&c->pwrite, (uv_stream_t *)c->pipe, &b, 1,
                 transport__pipe_write_cb) != 0) {
        c->pwbuf.len = 0;
        transport__broken(c, BERTH_EIO);
        return;
    }
    c->pwriting = true;
}

/* Plaintext from the peer for libraft. */
static void transport__pipe_send(struct transport__conn *c, const uint8_t *p,
                                 size_t n)
{
    if (buf_append(&c->pout, p, n) != 0) {
        transport__broken(c, BERTH_ENOMEM);
        return;
    }
    transport__pipe_flush(c);
    if (c->pout.len >= TRANSPORT__RELAY_HIGH && !c->tcp_paused) {
        c->tcp_paused = true;
        uv_read_stop((uv_stream_t *)c->tcp);
    }
}

/* Make c a relay, and *out the stream to give libraft (it frees it). */
static int transport__relay(struct transport__conn *c, uv_stream_t **out)
{
    uv_os_sock_t fds[2];
    if (uv_socketpair(SOCK_STREAM, 0, fds, 0, 0) != 0) {
        return BERTH_EIO;
    }
    uv_pipe_t *ours = mem_alloc(sizeof *ours);
    uv_pipe_t *theirs = raft_malloc(sizeof *theirs);
    if (ours == NULL || theirs == NULL) {
        mem_free(ours);
        raft_free(theirs);
        close(fds[0]);
        close(fds[1]);
        return BERTH_ENOMEM;
    }
    uv_pipe_init(c->t->loop, ours, 0);
    uv_pipe_init(c->t->loop, theirs, 0);
    ours->data = c;
    c->pipe = ours;
    c->handles++;
    if (uv_pipe_open(ours, fds[0]) != 0 || uv_pipe_open(theirs, fds[1]) != 0) {
        uv_close((uv_handle_t *)theirs, (uv_close_cb)raft_free);
        return BERTH_EIO;
    }
    c->role = TRANSPORT__RELAY;
    transport__pipe_start(c);
    *out = (uv_stream_t *)theirs;
    return 0;
}

/* --- Accepting. --- */

static void transport__reply_and_close(struct transport__conn *c, uint32_t call,
                                       unsigned status)
{
    if (transport__put_reply(&c->out, call, status, NULL, 0) != 0) {
        transport__conn_close(c);
        return;
    }
    transport__flush(c);
    /* Read no more; close once the reply is out (a call connection that is
     * not kept closes when its last answer is written). */
    uv_read_stop((uv_stream_t *)c->tcp);
    c->role = TRANSPORT__SERVE;
    if (!c->writing) {
        transport__conn_close(c);
    }
}

struct transport__raft_ok {
    uv_write_t req;
    uint8_t data[TRANSPORT_REPLY_HEADER];
};

static void transport__raft_ok_cb(uv_write_t *req, int status)
{
    (void)status;
    mem_free(req);
}

static void transport__inbound_done(struct transport__conn *c)
{
    struct transport *t = c->t;
    struct transport_message m = {.len = 0};
    size_t used;
    /* The header was checked as it came; the body is in c->body. */
    transport_decode_request(c->header, TRANSPORT_REQUEST_HEADER, &m, &used);
    m.body = c->body;
    const uint8_t *cluster = m.cluster;
    unsigned kind = m.kind;
    uint64_t sender = m.sender;
    uint32_t call = m.call;
    uv_timer_stop(&c->timer);
    if (c->counted) {
        t->handshakes--;
        c->counted = false;
    }
    if (!transport__cluster_ok(t, cluster, kind)) {
        char hex[2 * TRANSPORT_CLUSTER_SIZE + 1];
        for (int i = 0; i < TRANSPORT_CLUSTER_SIZE; i++) {
            snprintf(hex + 2 * i, 3, "%02x", cluster[i]);
        }
        transport__refuse(t, "peer port: refused a host of another cluster",
                          hex);
        transport__reply_and_close(c, call, TRANSPORT_WRONG_CLUSTER);
        return;
    }
    if (kind == TRANSPORT_RAFT) {
        if (!t->listening || !transport_check_handshake(&m)) {
            transport__conn_close(c);
            return;
        }
        if (c->ch != NULL) {
            /* Sealed like the rest; libraft gets its side of a relay. */
            uv_stream_t *s;
            if (transport__put_reply(&c->out, call, TRANSPORT_OK, NULL, 0) !=
                    0 ||
                transport__relay(c, &s) != 0) {
                transport__conn_close(c);
                return;
            }
            transport__flush(c);
            t->accept_cb(t->raft, sender, (const char *)c->body, s);
            return;
        }
        /* The reply goes on a write of its own: libraft owns the stream
         * once it is handed over, and the write outlives c. */
        struct transport__raft_ok *w = mem_alloc(sizeof *w);
        if (w == NULL) {
            transport__conn_close(c);
            return;
        }
        /* A buffer over w->data: the reply header fits, nothing grows. */
        struct buf b = {.data = w->data, .cap = sizeof w->data};
        transport__put_reply(&b, call, TRANSPORT_OK, NULL, 0);
        uv_buf_t ub = uv_buf_init((char *)w->data, sizeof w->data);
        if (uv_write(&w->req, (uv_stream_t *)c->tcp, &ub, 1,
                     transport__raft_ok_cb) != 0) {
            mem_free(w);
            transport__conn_close(c);
            return;
        }
        uv_stream_t *s = transport__hand_over(c);
        t->accept_cb(t->raft, sender, (const char *)c->body, s);
        transport__conn_close(c);
        return;
    }
    /* A call connection: this call and those after it. */
    c->role = TRANSPORT__SERVE;
    if (t->kept < TRANSPORT__MAX_KEPT) {
        c->kept = true;
        t->kept++;
    }
    uv_timer_start(&c->timer, transport__timeout_cb, TRANSPORT__KEEP_MS,
                   TRANSPORT__KEEP_MS);
    transport__serve(c, &m);
    mem_free(c->body);
    c->body = NULL;
}

/* One call on a call connection: hand it to the handler. */
static void transport__serve(struct transport__conn *c,
                             const struct transport_message *m)
{
    struct transport *t = c->t;
    unsigned kind = m->kind;
    uint64_t sender = m->sender;
    uint32_t id = m->call;
    const uint8_t *body = m->body;
    size_t len = m->len;
    if (!transport__cluster_ok(t, m->cluster, kind) || kind == TRANSPORT_RAFT) {
        transport__malformed(c);
        return;
    }
    struct transport_call *call = mem_alloc(sizeof *call + len + 1);
    if (call == NULL) {
        /* Say so rather than leave the dialer waiting. */
        static const char oom[] = "out of memory";
        if (transport__put_reply(&c->out, id, TRANSPORT_UNAVAILABLE, oom,
                                 sizeof oom - 1) == 0) {
            transport__flush(c);
        }
        return;
    }
    call->conn = c;
    call->id = id;
    memcpy(call->body, body, len);
    call->body[len] = '\0';
    call->prev = NULL;
    call->next = c->calls;
    if (c->calls != NULL) {
        c->calls->prev = call;
    }
    c->calls = call;
    c->ncalls++;
    if (c->ncalls >= TRANSPORT__MAX_CALLS && !c->paused) {
        c->paused = true;
        uv_read_stop((uv_stream_t *)c->tcp);
    }
    t->handler(t->arg, call, kind, sender, call->body, len);
}

void transport_reply(struct transport_call *call, unsigned status,
                     const void *body, size_t len)
{
    struct transport__conn *c = call->conn;
    if (c == NULL) {
        /* The transport answered it when it closed. */
        mem_free(call);
        return;
    }
    if (call->prev != NULL) {
        call->prev->next = call->next;
    } else {
        c->calls = call->next;
    }
    if (call->next != NULL) {
        call->next->prev = call->prev;
    }
    c->ncalls--;
    if (!c->closed) {
        c->last_ms = uv_now(c->t->loop);
        if (transport__put_reply(&c->out, call->id, status, body, len) != 0) {
            transport__conn_close(c);
        } else {
            transport__flush(c);
        }
    }
    mem_free(call);
    if (c->closed) {
        transport__conn_maybe_free(c);
        return;
    }
    if (c->paused && c->ncalls < TRANSPORT__MAX_CALLS / 2) {
        c->paused = false;
        transport__start_reading(c);
    }
}

static void transport__connection_cb(uv_stream_t *server, int status)
{
    struct transport *t = server->data;
    if (status != 0) {
        return;
    }
    struct transport__conn *c = transport__conn_new(t, TRANSPORT__INBOUND);
    if (c == NULL) {
        /* Take the connection off the backlog and drop it. */
        uv_tcp_t tmp;
        uv_tcp_init(t->loop, &tmp);
        uv_accept(server, (uv_stream_t *)&tmp);
        uv_close((uv_handle_t *)&tmp, NULL);
        return;
    }
    if (uv_accept(server, (uv_stream_t *)c->tcp) != 0 ||
        t->handshakes > TRANSPORT__MAX_HANDSHAKES ||
        (!t->plaintext && !t->has_secret)) {
        transport__conn_close(c);
        return;
    }
    /* Replies and raft's messages are small and each is waited for: Nagle
     * would hold one back until the last is acknowledged, which a delayed
     * ACK puts off by up to 40 ms. */
    uv_tcp_nodelay(c->tcp, 1);
    c->header_need = TRANSPORT_REQUEST_HEADER;
    uv_timer_start(&c->timer, transport__timeout_cb, TRANSPORT__HANDSHAKE_MS,
                   0);
    transport__start_reading(c);
}

/* --- Dialing. --- */

/* Fail every call c sent and holds; rv for those whose bytes may have
 * reached the peer, BERTH_ENOCONNECT for those that cannot have. */
static void transport__fail_all(struct transport__conn *c, int rv)
{
    while (c->pending != NULL) {
        struct transport__pending *p = c->pending;
        c->pending = p->next;
        if (c->pending == NULL) {
            c->pending_tail = NULL;
        }
        bool maybe_sent = c->connected && p->sent;
        p->cb(p->arg,
              maybe_sent || rv == BERTH_ESHUTDOWN ? rv : BERTH_ENOCONNECT, NULL,
              0);
        mem_free(p);
    }
    c->held.len = 0;
}

/* An answer on a call connection: to the call it names, if it still
 * waits. */
static void transport__answer(struct transport__conn *c,
                              const struct transport_message *m)
{
    unsigned status = m->status;
    uint32_t id = m->call;
    const uint8_t *body = m->body;
    size_t len = m->len;
    struct transport__pending *prev = NULL, *p = c->pending;
    while (p != NULL && p->id != id) {
        prev = p;
        p = p->next;
    }
    if (p != NULL) {
        if (prev != NULL) {
            prev->next = p->next;
        } else {
            c->pending = p->next;
        }
        if (c->pending_tail == p) {
            c->pending_tail = prev;
        }
    }
    if (!c->confirmed && status == TRANSPORT_WRONG_CLUSTER) {
        /* The listener closes the connection: the calls held behind the
         * first were never sent. */
        transport__broken(c, BERTH_EIO);
    } else if (!c->confirmed) {
        /* The peer answers: the calls held back go out. */
        c->confirmed = true;
        for (struct transport__pending *q = c->pending; q != NULL;
             q = q->next) {
            q->sent = true;
        }
        if (buf_append(&c->out, c->held.data, c->held.len) != 0) {
            transport__broken(c, BERTH_ENOMEM);
        }
        buf_free(&c->held);
        transport__flush(c);
    }
    if (p != NULL) {
        p->cb(p->arg, (int)status, body, len);
        mem_free(p);
    }
}

static void transport__connect_cb(uv_connect_t *req, int status)
{
    struct transport__conn *c = req->data;
    if (c->closed) {
        return;
    }
    if (status != 0) {
        /* Nothing was sent: the caller may try elsewhere. */
        transport__broken(c, BERTH_ENOCONNECT);
        return;
    }
    c->connected = true;
    uv_tcp_nodelay(c->tcp, 1); /* as on the accepting side */
    if (c->ch != NULL && channel_start(c->ch, &c->wire) != 0) {
        transport__broken(c, BERTH_ENOMEM);
        return;
    }
    transport__flush(c);
    if (c->role == TRANSPORT__DIAL_RAFT) {
        c->header_need = TRANSPORT_REPLY_HEADER;
    }
    transport__start_reading(c);
}

static void transport__raft_dial_fail(struct transport__conn *c, int rv)
{
    struct raft_uv_connect *req = c->raft_req;
    c->raft_req = NULL;
    transport__conn_close(c);
    if (req != NULL) {
        req->cb(req, NULL,
                rv == BERTH_ESHUTDOWN ? RAFT_CANCELED : RAFT_NOCONNECTION);
    }
}

static void transport__raft_dial_done(struct transport__conn *c)
{
    unsigned status = get_le32(c->header + 8);
    if (status != TRANSPORT_OK || c->body_len != 0) {
        if (status == TRANSPORT_WRONG_CLUSTER && c->t->note != NULL) {
            c->t->note(c->t->arg, "warn",
                       "a peer refused this host: it belongs to another "
                       "cluster",
                       NULL);
        }
        transport__raft_dial_fail(c, BERTH_EIO);
        return;
    }
    struct raft_uv_connect *req = c->raft_req;
    c->raft_req = NULL;
    if (c->ch != NULL) {
        uv_stream_t *s;
        uv_timer_stop(&c->timer);
        if (transport__relay(c, &s) != 0) {
            transport__conn_close(c);
            req->cb(req, NULL, RAFT_NOCONNECTION);
            return;
        }
        req->cb(req, s, 0);
        return;
    }
    uv_stream_t *s = transport__hand_over(c);
    transport__conn_close(c);
    req->cb(req, s, 0);
}

static void transport__timeout_cb(uv_timer_t *timer)
{
    struct transport__conn *c = timer->data;
    uint64_t now = uv_now(c->t->loop);
    switch (c->role) {
    case TRANSPORT__INBOUND:
        transport__refuse(c->t, "peer port: handshake timed out", NULL);
        transport__conn_close(c);
        return;
    case TRANSPORT__SERVE:
        if (c->ncalls == 0 && now - c->last_ms >= TRANSPORT__KEEP_MS) {
            transport__conn_close(c); /* idle long enough */
        }
        return;
    case TRANSPORT__DIAL_RAFT:
        transport__raft_dial_fail(c, BERTH_ETIMEOUT);
        return;
    case TRANSPORT__RELAY:
        return;
    case TRANSPORT__DIAL_CALLS:
        break;
    }
    /* Calls past their deadline fail; their answers, should they come, are
     * dropped. They are taken off first: a callback may call again. */
    struct transport__pending *expired = NULL, **pp = &c->pending;
    c->pending_tail = NULL;
    while (*pp != NULL) {
        struct transport__pending *p = *pp;
        if (now >= p->deadline_ms) {
            *pp = p->next;
            p->next = expired;
            expired = p;
            continue;
        }
        c->pending_tail = p;
        pp = &p->next;
    }
    if (c->pending == NULL &&
        (!c->confirmed || now - c->last_ms >= TRANSPORT__IDLE_MS)) {
        /* Idle long enough, or its first call went unanswered. */
        transport__conn_close(c);
    }
    while (expired != NULL) {
        struct transport__pending *p = expired;
        expired = p->next;
        p->cb(p->arg, BERTH_ETIMEOUT, NULL, 0);
        mem_free(p);
    }
}

/* Dial address for role, with the first bytes to send in c->out. */
static int transport__dial(struct transport *t, struct transport__conn **out,
                           enum transport__role role, const char *address)
{
    struct sockaddr_storage addr;
    if (transport_parse_address(address, &addr) != 0) {
        return BERTH_EINVAL;
    }
    if (t->closing) {
        return BERTH_ESHUTDOWN;
    }
    if (!t->plaintext && !t->has_secret) {
        return BERTH_EINVAL; /* no cluster secret: nothing to prove */
    }
    struct transport__conn *c = transport__conn_new(t, role);
    if (c == NULL) {
        return BERTH_ENOMEM;
    }
    c->connect.data = c;
    t->dials++;
    if (uv_tcp_connect(&c->connect, c->tcp, (struct sockaddr *)&addr,
                       transport__connect_cb) != 0) {
        transport__conn_close(c);
        return BERTH_EIO;
    }
    *out = c;
    return 0;
}

/* The call connection to address, dialing one when there is none. */
static int transport__calls_to(struct transport *t, const char *address,
                               struct transport__conn **out)
{
    for (struct transport__conn *c = t->conns; c != NULL; c = c->next) {
        if (c->role == TRANSPORT__DIAL_CALLS && !c->closed &&
            strcmp(c->address, address) == 0) {
            *out = c;
            return 0;
        }
    }
    char *key = mem_strdup(address);
    if (key == NULL) {
        return BERTH_ENOMEM;
    }
    struct transport__conn *c;
    int rv = transport__dial(t, &c, TRANSPORT__DIAL_CALLS, address);
    if (rv != 0) {
        mem_free(key);
        return rv;
    }
    c->address = key;
    uv_timer_start(&c->timer, transport__timeout_cb, TRANSPORT__TICK_MS,
                   TRANSPORT__TICK_MS);
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
    struct transport__conn *c;
    int rv = transport__calls_to(t, address, &c);
    if (rv != 0) {
        return rv;
    }
    struct transport__pending *p = mem_alloc(sizeof *p);
    if (p == NULL) {
        return BERTH_ENOMEM;
    }
    /* Until the peer has answered once, only the first call goes: should it
     * turn out not to be a peer of this cluster, the others were never
     * sent. */
    bool first = c->pending == NULL && !c->confirmed && c->held.len == 0 &&
                 c->out.len == 0 && !c->writing;
    bool go = c->confirmed || first;
    uint32_t id = c->next_id++;
    rv =
        transport__put_request(t, go ? &c->out : &c->held, id, kind, body, len);
    if (rv != 0) {
        mem_free(p);
        if (c->pending == NULL && c->out.len == 0 && !c->writing) {
            transport__conn_close(c);
        }
        return rv;
    }
    p->id = id;
    p->sent = go;
    p->deadline_ms = uv_now(t->loop) + timeout_ms;
    p->cb = cb;
    p->arg = arg;
    p->next = NULL;
    if (c->pending_tail != NULL) {
        c->pending_tail->next = p;
    } else {
        c->pending = p;
    }
    c->pending_tail = p;
    c->last_ms = uv_now(t->loop);
    if (c->connected) {
        transport__flush(c);
    }
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

int transport_check_listen(const char *address, char *errmsg)
{
    struct sockaddr_storage addr;
    if (transport_parse_address(address, &addr) != 0) {
        err_printf(errmsg, "bad peer address %s", address);
        return BERTH_EINVAL;
    }
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err_printf(errmsg, "cannot listen on %s: %s", address,
                   uv_strerror(uv_translate_sys_error(errno)));
        return BERTH_EBUSY;
    }
    /* As libuv binds: a port whose last connections wait in TIME_WAIT is
     * free, one another socket listens on is not. */
    int on = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    socklen_t len = addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                               : sizeof(struct sockaddr_in);
    int rv = 0;
    if (bind(fd, (struct sockaddr *)&addr, len) != 0) {
        err_printf(errmsg, "cannot listen on %s: %s", address,
                   uv_strerror(uv_translate_sys_error(errno)));
        rv = BERTH_EBUSY;
    }
    close(fd);
    return rv;
}

static int transport__raft_connect(struct raft_uv_transport *rt,
                                   struct raft_uv_connect *req, raft_id id,
                                   const char *address, raft_uv_connect_cb cb)
{
    struct transport *t = rt->impl;
    struct transport__conn *c;
    (void)id;
    req->cb = cb;
    int rv = transport__dial(t, &c, TRANSPORT__DIAL_RAFT, address);
    if (rv != 0) {
        return rv == BERTH_ENOMEM ? RAFT_NOMEM : RAFT_NOCONNECTION;
    }
    /* The handshake: this host's peer address, sent once connected. */
    const char *self = t->bind != NULL ? t->bind : "";
    if (transport__put_request(t, &c->out, 0, TRANSPORT_RAFT, self,
                               strlen(self)) != 0) {
        transport__conn_close(c);
        return RAFT_NOMEM;
    }
    c->raft_req = req;
    uv_timer_start(&c->timer, transport__timeout_cb, TRANSPORT__HANDSHAKE_MS,
                   0);
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
    for (struct transport__conn *c = t->conns; c != NULL; c = c->next) {
        if (c->role == TRANSPORT__DIAL_RAFT && !c->closed) {
            transport__raft_dial_fail(c, BERTH_ESHUTDOWN);
        } else if (c->role == TRANSPORT__INBOUND && !c->closed) {
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
        for (struct transport__conn *c = t->conns; c != NULL; c = c->next) {
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
        buf_free(&t->plain);
        sodium_memzero(t->secret, sizeof t->secret);
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

void transport_set_secret(struct transport *t,
                          const uint8_t secret[TRANSPORT_SECRET_SIZE])
{
    memcpy(t->secret, secret, sizeof t->secret);
    t->has_secret = true;
}

void transport_set_plaintext(struct transport *t, bool plaintext)
{
    t->plaintext = plaintext;
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

/* Answer the calls c serves with why, as the transport closes: the
 * handler's transport_reply() on them only frees them then. */
static void transport__answer_all(struct transport__conn *c)
{
    static const char why[] = "closing";
    while (c->calls != NULL) {
        struct transport_call *call = c->calls;
        c->calls = call->next;
        call->conn = NULL;
        if (transport__put_reply(&c->out, call->id, TRANSPORT_UNAVAILABLE, why,
                                 sizeof why - 1) != 0) {
            transport__conn_close(c);
        }
    }
    c->ncalls = 0;
    transport__flush(c);
}

void transport_close(struct transport *t, transport_close_cb cb, void *arg)
{
    t->closing = true;
    t->close_cb = cb;
    t->close_arg = arg;
    struct transport__conn *next;
    for (struct transport__conn *c = t->conns; c != NULL; c = next) {
        next = c->next;
        if (c->closed) {
            continue;
        }
        if (c->role == TRANSPORT__DIAL_CALLS) {
            transport__broken(c, BERTH_ESHUTDOWN);
        } else if (c->role == TRANSPORT__SERVE) {
            /* Answer what is served, and close once that is written. */
            uv_read_stop((uv_stream_t *)c->tcp);
            transport__answer_all(c);
            if (c->kept) {
                t->kept--;
                c->kept = false;
            }
            if (!c->writing) {
                transport__conn_close(c);
            }
        } else if (c->role != TRANSPORT__DIAL_RAFT) {
            transport__conn_close(c);
        }
    }
    if (t->handles > 0 && !uv_is_closing((uv_handle_t *)&t->listener)) {
        uv_close((uv_handle_t *)&t->listener, transport__listener_closed);
    }
    transport__maybe_closed(t);
}
