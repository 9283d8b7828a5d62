/* The peer port: how hosts of one cluster reach each other.
 *
 * Every connection, for libraft or for calls, first opens an encrypted
 * channel (crypto/channel.h): a handshake in which each side proves it
 * knows the cluster secret (a MAC over both sides' fresh crypto_kx keys
 * and nonces) and from which each direction gets its own session key;
 * then every byte goes in sealed records (ChaCha20-Poly1305, numbered).
 * A peer that fails the proof, a record that fails to open (altered,
 * replayed, out of order) or bytes that are no channel close the
 * connection and are counted and noted (one line, then every 1000th); a
 * call sent on it fails with BERTH_EREJECTED when the peer does not know
 * the secret. Without the secret a host cannot join, read an entry or put
 * one in. transport_set_plaintext() turns the channel off, for measuring
 * what it costs only (bench/cluster.py, BERTH_PEER_PLAINTEXT=1).
 *
 * Inside the channel, every message has a header:
 *
 *   request: magic "berthp03" | cluster id (16) | kind u32 | body length u32
 *            | sender's raft id u64 | call u32 | body
 *   reply:   magic "berthp03" | status u32 | body length u32 | call u32
 *            | body
 *
 * All integers are little-endian. The cluster id is made once, when the
 * first host bootstraps, and every host of the cluster keeps it; a request
 * that names another cluster is refused with TRANSPORT_WRONG_CLUSTER, so a
 * host from one cluster never joins another's elections by mistake (two
 * clusters with one secret). A host that has no cluster yet sends zeros,
 * which is accepted for calls only.
 *
 * A connection's first request says what it is for. A RAFT request's body
 * is the sender's peer address; after an OK reply the connection carries
 * libraft's own messages, one way, from the dialer: libraft is given one
 * side of a socket pair, and the connection relays between it and the
 * channel (sealing what libraft writes, opening what comes for it). Any
 * other kind is a
 * call, and the connection carries calls from then on: the dialer keeps
 * one connection to each host it calls, sends every call on it without
 * waiting for the answers before, and the listener answers each when it
 * can, naming the call it answers (a number the dialer chose), so answers
 * come in any order. Until the first answer comes, the dialer sends nothing
 * more: should the peer turn out not to be of this cluster, or not a berth
 * host, the calls behind the first were never sent. Writes are coalesced:
 * one in flight a connection, and what is queued meanwhile goes in the
 * next. The dialer closes a connection idle for 2 s, the listener one idle
 * for 30 s, so that it is the dialer that closes first; a listener that
 * closes earlier (it stops) is noticed while it is idle.
 * Garbage (a bad magic, an oversized body, silence past a deadline during
 * the handshake and first message) is closed without a reply. */
#ifndef BERTH_CONSENSUS_TRANSPORT_H
#define BERTH_CONSENSUS_TRANSPORT_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define TRANSPORT_CLUSTER_SIZE 16
#define TRANSPORT_SECRET_SIZE 32
/* The largest body of a call, and of a forwarded request (which carries
 * an HTTP request or reply whole). */
#define TRANSPORT_MAX_BODY (64u * 1024)
#define TRANSPORT_MAX_FORWARD (16u * 1024 * 1024)

/* What a connection is for. */
enum transport_kind {
    TRANSPORT_RAFT = 1,      /* libraft's messages follow */
    TRANSPORT_JOIN = 2,      /* a new host asks to be added */
    TRANSPORT_PROBE = 3,     /* is this host up, and how far has it applied */
    TRANSPORT_FORWARD = 4,   /* a request for the leader to serve */
    TRANSPORT_SHIP_COPY = 5, /* a ship's stored data, to repair a copy */
    TRANSPORT_BEAT = 6,      /* a host's heartbeat: its liveness and load */
};

/* The status in a reply header. */
enum transport_status {
    TRANSPORT_OK = 0,
    TRANSPORT_WRONG_CLUSTER = 1, /* the request named another cluster */
    TRANSPORT_BAD_REQUEST = 2,   /* the request could not be understood */
    TRANSPORT_NOT_LEADER = 3,    /* ask the leader; body: its peer address */
    TRANSPORT_REFUSED = 4,       /* body: why, in words */
    TRANSPORT_UNAVAILABLE = 5,   /* try again later; body: why */
};

struct transport;

/* A call received on the peer port, waiting for its reply. */
struct transport_call;

/* Called for each call (kind other than RAFT) that arrived with a good
 * header. body is valid until transport_reply() is called on call, which
 * must happen exactly once, now or later, also after transport_close(). */
typedef void (*transport_call_fn)(void *arg, struct transport_call *call,
                                  unsigned kind, uint64_t sender,
                                  const uint8_t *body, size_t len);

/* Called for something worth a line in the host's log, such as a refused
 * connection; detail may be NULL. */
typedef void (*transport_note_fn)(void *arg, const char *level,
                                  const char *message, const char *detail);

/* Make a transport on loop that will listen on bind_address (IPv4 or [IPv6]
 * literal with a port, or NULL for none) once libraft asks it to. handler
 * serves calls and note reports; arg is passed to both. Fills raft with the
 * struct raft_uv_transport that libraft's uv backend uses; raft is owned by
 * the caller and must outlive the transport. *out is freed by
 * transport_close(). Returns 0 or a negative code with a message in
 * errmsg. */
int transport_init(struct transport **out, struct raft_uv_transport *raft,
                   uv_loop_t *loop, const char *bind_address,
                   transport_call_fn handler, transport_note_fn note, void *arg,
                   char *errmsg);

/* Called when a transport has closed. */
typedef void (*transport_close_cb)(void *arg);

/* End every call in flight (their callbacks see BERTH_ESHUTDOWN), answer
 * every call being served with TRANSPORT_UNAVAILABLE (transport_reply() on
 * them then only frees them), close every connection, free t, then call
 * cb. Must be called after libraft has closed the raft side (or when
 * libraft never started). */
void transport_close(struct transport *t, transport_close_cb cb, void *arg);

/* Set the cluster id sent in requests and required of raft connections. */
void transport_set_cluster(struct transport *t,
                           const uint8_t cluster[TRANSPORT_CLUSTER_SIZE]);

/* Set the raft id sent in requests. */
void transport_set_id(struct transport *t, uint64_t id);

/* Set the cluster secret (TRANSPORT_SECRET_SIZE bytes, copied; wiped when
 * the transport is freed) that every connection's handshake proves. Until
 * it is set, an encrypted transport dials nothing and accepts nothing. */
void transport_set_secret(struct transport *t,
                          const uint8_t secret[TRANSPORT_SECRET_SIZE]);

/* Turn encryption off (plaintext true) or on (the default) for connections
 * made from now on. Off is for measuring what encryption costs, on hosts
 * that all have it off: the two do not speak to each other. */
void transport_set_plaintext(struct transport *t, bool plaintext);

/* Answer call with status and body (copied; may be NULL when len is 0).
 * call is freed by this function. */
void transport_reply(struct transport_call *call, unsigned status,
                     const void *body, size_t len);

/* Called once with the outcome of transport_request(): status is a
 * transport_status, or a negative code when no reply came
 * (BERTH_ENOCONNECT: it was never sent, as no connection was made or the
 * call before it on a new connection failed; BERTH_EIO: the connection failed
 * after; BERTH_ETIMEOUT; BERTH_EMALFORMED: not a
 * berth peer). body is
 * valid during the call only. */
typedef void (*transport_reply_cb)(void *arg, int status, const uint8_t *body,
                                   size_t len);

/* Send a call of kind with body (copied) to the peer at address, on the
 * connection to it, dialed when there is none, and wait at most timeout_ms
 * for its reply (checked every 50 ms); cb runs exactly once, later, unless
 * this returns an error. BERTH_EIO may come for a call the listener never
 * read (it closed the connection as the call went out). Works before
 * libraft has started and after it closed the transport's listener (calls in
 * flight then end with BERTH_ESHUTDOWN). */
int transport_request(struct transport *t, const char *address, unsigned kind,
                      const void *body, size_t len, unsigned timeout_ms,
                      transport_reply_cb cb, void *arg);

/* Return whether the peer port could not be bound when libraft asked for
 * it; the reason is in the raft transport's errmsg. */
bool transport_listen_failed(const struct transport *t);

/* Count of connections dialed since start, for libraft and for calls. */
uint64_t transport_dials(const struct transport *t);

/* Count of connections refused for naming another cluster or being
 * garbage, since start. */
uint64_t transport_refused(const struct transport *t);

/* Check that this host can listen on address ("host:port", as
 * transport_init's bind_address), as libraft will ask once the log starts,
 * by binding a socket there and closing it. Returns 0, BERTH_EINVAL for an
 * address that does not parse, or BERTH_EBUSY; either error with a message
 * in errmsg. */
int transport_check_listen(const char *address, char *errmsg);

/* Parse "host:port" (IPv4, or [IPv6]) into addr; returns 0 or
 * BERTH_EINVAL. */
int transport_parse_address(const char *address, struct sockaddr_storage *addr);

/* --- The messages' bytes, apart from any connection. --- */

struct buf;

/* The header of a request, and of a reply, in bytes. */
#define TRANSPORT_REQUEST_HEADER 44
#define TRANSPORT_REPLY_HEADER 20

/* The largest peer address a RAFT request's body may hold. */
#define TRANSPORT_ADDRESS_MAX 255

/* One message of the peer port: a request (cluster, kind, sender) or a
 * reply (status), the call it belongs to and its body. A decoded message's
 * body points into the bytes it was decoded from and owns nothing. */
struct transport_message {
    uint8_t cluster[TRANSPORT_CLUSTER_SIZE]; /* requests only */
    unsigned kind;                           /* requests only */
    uint64_t sender;                         /* requests only */
    unsigned status;                         /* replies only */
    uint32_t call;
    const uint8_t *body;
    size_t len;
};

/* Decode the request at the start of the n bytes at p. Returns 0 with *m
 * filled and *used the bytes the request takes; BERTH_EPARTIAL when more
 * bytes are needed (once the header is whole and good, *m holds it, with a
 * NULL body); BERTH_EMALFORMED for a bad magic; BERTH_ETOOBIG for a body
 * longer than its kind allows. Reads only p[0..n). */
int transport_decode_request(const uint8_t *p, size_t n,
                             struct transport_message *m, size_t *used);

/* Decode the reply at the start of the n bytes at p, as
 * transport_decode_request() does a request; a reply's body may be up to
 * TRANSPORT_MAX_FORWARD bytes. */
int transport_decode_reply(const uint8_t *p, size_t n,
                           struct transport_message *m, size_t *used);

/* Append the request m (its cluster, kind, sender, call and body) to out,
 * which the caller frees with buf_free(). Returns 0 or BERTH_ENOMEM. */
int transport_encode_request(struct buf *out,
                             const struct transport_message *m);

/* Append the reply m (its status, call and body) to out, which the caller
 * frees with buf_free(). Returns 0 or BERTH_ENOMEM. */
int transport_encode_reply(struct buf *out, const struct transport_message *m);

/* Return whether the request m may open a raft connection, cluster aside:
 * a RAFT request from a non-zero sender whose body is its peer address, 1
 * to TRANSPORT_ADDRESS_MAX bytes with no NUL. */
bool transport_check_handshake(const struct transport_message *m);

#endif
