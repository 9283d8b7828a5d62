/* The frame protocol between a host and a program.
 *
 * A program is any executable. The host starts it with its stdin and stdout
 * connected to pipes from and to the host and speaks frames on
 * them; the program's stderr is its log. Every frame is
 *
 *     u32 len | u8 type | body[len - 1]
 *
 * with len counting the type byte and the body, little-endian like every
 * integer in berth. A frame longer than the reader's limit is an error, and a
 * program that sends a malformed or oversized frame is killed.
 *
 * Host to program:
 *   BOOT      u16 id_len | id | u64 snapshot_event | snapshot bytes (rest)
 *             snapshot_event 0 means "no snapshot: start empty".
 *   EVENT     u64 number | u64 time_ns | u8 entropy[32] | u8 kind | payload
 *   SNAP_REQ  u64 number   (the number of the last event the program saw)
 *   STOP      (empty)      the program exits with status 0.
 *
 * Program to host:
 *   READY     u8 accepted  1: booted from the snapshot, 0: refused it (the
 *                          host then replays the log from its start).
 *   DONE      u64 number | u8 flags | u32 n_effects | effect*
 *             flags bit 0 (FRAME_DONE_CHANGED): the state changed, so the
 *             host must log the event before any effect leaves.
 *             flags bit 1 (FRAME_DONE_REUSE): the reply depends only on the
 *             state and the request, so the host may give it again to the
 *             same HTTP request until the state changes (core/reuse.h).
 *             effect = u8 kind | u32 len | bytes[len]
 *   REJECT    u64 number | reason (rest, UTF-8). The state did not change.
 *   SNAPSHOT  u64 number | bytes (rest)
 *
 * Event kinds and their payloads:
 *   HTTP      u16 method_len | method | u32 target_len | target |
 *             u16 n_headers | (u16 name_len | name | u32 value_len | value)* |
 *             body (rest). target is the path and query after /s/<ship>.
 *   POKE      opaque bytes from an operator (`berth ship send`).
 *   MESSAGE   u32 tag | u16 sender_len | sender | u8 public_key[32] |
 *             u64 number | u16 index | u8 signature[64] | payload (rest):
 *             a message from ship sender, the index-th effect of its event
 *             number, signed with its key (frame_message_signed)
 *   RECEIPT   u32 tag | u8 outcome | u16 status | u16 target_len | target |
 *             body (rest): what became of the SEND with tag: the target's
 *             reply (status, body), or why it was refused or failed
 *   LEASE     a leased child's id (rest): keep it? An HTTP_REPLY with a 2xx
 *             status renews the lease; any other answer lets the child go
 *   CHILD     u8 what | u32 tag | u16 id_len | id | detail (rest): a child
 *             was spawned, destroyed, or could not be spawned (then id is
 *             empty and detail says why); tag is its SPAWN's
 *   WEBSOCKET u64 conn | u8 what | data (rest): a WebSocket's life
 *             (docs/protocol.md, "WebSockets"). conn is the connection's
 *             id (never 0, never reused; its high 32 bits are the host's
 *             run); what is OPEN (data: the opening request, an HTTP
 *             payload with no body; an HTTP_REPLY 101 accepts), TEXT or
 *             BINARY (data: one whole message from the client; TEXT is
 *             UTF-8), or CLOSED (data: u16 code | reason).
 *   TIMER     u64 time_ns, exactly 8 bytes: the ALARM that came due. The
 *             delivery clears the alarm, and the host logs every TIMER,
 *             changed or not, so that an alarm never fires twice, even
 *             across a restart.
 *
 * Effect kinds and their bytes:
 *   HTTP_REPLY  u16 status | u16 ctype_len | content type | body (rest);
 *               the content type holds no control character but tab
 *   LOG         one line of UTF-8 text
 *   SPAWN       u32 tag | u8 lifetime | u64 lifetime_ms | u16 program_len |
 *               program | (u8 option | u32 len | bytes)* (rest): make a
 *               child ship once the event is durable; the parent hears of
 *               it in a CHILD event carrying tag (docs/protocol.md,
 *               "Children")
 *   SEND        u32 tag | u16 target_len | target | payload (rest): a
 *               message to another ship, delivered once the event is
 *               durable; a RECEIPT carrying tag says what became of it
 *   RELEASE     a child's id (rest): an ephemeral child is destroyed
 *   DESTROY     a child's id, or nothing for the ship itself (rest)
 *   IDLE        (empty) the ship may sleep now
 *   WS_SEND     u64 conn | u8 opcode | bytes (rest): a message to one of
 *               the ship's open WebSockets, opcode 1 (text: UTF-8) or 2
 *               (binary), written once the event is durable
 *   WS_CLOSE    u64 conn | u16 code | reason (rest, UTF-8, at most 123
 *               bytes): close one of them, once the event is durable
 *   ALARM       u64 time_ns, exactly 8 bytes: deliver a TIMER at that wall
 *               clock time (nanoseconds since the Unix epoch, the clock of
 *               an event's time_ns); 0 cancels. A ship has at most one
 *               alarm, so the last ALARM wins, within an event and across
 *               events. Like every effect it takes hold only once its event
 *               is durable, and an event with an ALARM is logged even
 *               without FRAME_DONE_CHANGED, because the alarm is part of the
 *               ship's durable state. A REJECT drops it with the rest. A
 *               sleeping ship is woken for its alarm, one that is already
 *               past fires at once, and one that came due while the host was
 *               down fires once when the host starts.
 *
 * Decoders never allocate: decoded structs point into the frame's bytes, which
 * the caller keeps alive while it uses them. */
#ifndef BERTH_PROTO_FRAME_H
#define BERTH_PROTO_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/* Bytes before the body: the length and the type. */
#define FRAME_HEADER_SIZE 5

/* The default upper bound on len, for both directions. */
#define FRAME_MAX_DEFAULT (64u * 1024 * 1024)

/* Bytes of fresh entropy in every event. */
#define FRAME_ENTROPY_SIZE 32

enum frame_type {
    FRAME_BOOT = 0x01,
    FRAME_EVENT = 0x02,
    FRAME_SNAP_REQ = 0x03,
    FRAME_STOP = 0x04,
    FRAME_READY = 0x81,
    FRAME_DONE = 0x82,
    FRAME_REJECT = 0x83,
    FRAME_SNAPSHOT = 0x84,
};

enum frame_event_kind {
    FRAME_EVENT_HTTP = 1,
    FRAME_EVENT_POKE = 2,
    FRAME_EVENT_TIMER = 3,
    FRAME_EVENT_MESSAGE = 4,
    FRAME_EVENT_CHILD = 5,
    FRAME_EVENT_RECEIPT = 6,
    FRAME_EVENT_LEASE = 7,
    FRAME_EVENT_WEBSOCKET = 8,
};

/* What a WEBSOCKET event says of its connection. */
enum frame_ws_what {
    FRAME_WS_OPEN = 1,
    FRAME_WS_TEXT = 2,
    FRAME_WS_BINARY = 3,
    FRAME_WS_CLOSED = 4,
};

enum frame_effect_kind {
    FRAME_EFFECT_HTTP_REPLY = 1,
    FRAME_EFFECT_LOG = 2,
    FRAME_EFFECT_ALARM = 3,
    FRAME_EFFECT_SPAWN = 4,
    FRAME_EFFECT_SEND = 5,
    FRAME_EFFECT_RELEASE = 6,
    FRAME_EFFECT_DESTROY = 7,
    FRAME_EFFECT_IDLE = 8,
    FRAME_EFFECT_WS_SEND = 9,
    FRAME_EFFECT_WS_CLOSE = 10,
};

/* The lifetimes of a spawned ship (docs/protocol.md, "Children"). */
enum frame_lifetime {
    FRAME_LIFETIME_ROOT = 1,      /* stays until destroyed */
    FRAME_LIFETIME_LINKED = 2,    /* destroyed with its parent */
    FRAME_LIFETIME_EPHEMERAL = 3, /* also destroyed when the parent drops it */
    FRAME_LIFETIME_RESETTING = 4, /* its state empties after lifetime_ms idle */
    FRAME_LIFETIME_LEASED = 5,    /* kept while its parent renews the lease */
};

/* The least lifetime_ms of a lifetime that takes a time. */
#define FRAME_LIFETIME_MIN_MS 1000

/* Whether a child of lifetime is destroyed with its parent (linked,
 * ephemeral, leased); a root or resetting child stays, without one. */
bool frame_lifetime_bound(uint8_t lifetime);

/* The options of a SPAWN effect. */
enum frame_spawn_option {
    FRAME_SPAWN_ARG = 1,     /* one argument of the child's program */
    FRAME_SPAWN_ENV = 2,     /* one KEY=VALUE of its environment */
    FRAME_SPAWN_ACCESS = 3,  /* one ship id allowed to send to the child */
    FRAME_SPAWN_SANDBOX = 4, /* u8 flags | u64 memory | u32 cpu | u32 events
                              * [| u32 pids] */
    FRAME_SPAWN_SEND_TO = 5, /* one ship id the child may send to */
    FRAME_SPAWN_BUDGET = 6,  /* u64 ships | u64 bytes | u64 cpu_ms an hour */
};

/* Bytes of the SANDBOX and BUDGET options of a SPAWN; a SANDBOX may also
 * carry a pids cap (FRAME_SPAWN_SANDBOX_PIDS_SIZE). */
#define FRAME_SPAWN_SANDBOX_SIZE (1 + 8 + 4 + 4)
#define FRAME_SPAWN_SANDBOX_PIDS_SIZE (FRAME_SPAWN_SANDBOX_SIZE + 4)
#define FRAME_SPAWN_BUDGET_SIZE (8 * 3)

/* What became of a message, as its RECEIPT says. */
enum frame_receipt_outcome {
    FRAME_RECEIPT_DELIVERED = 1, /* the target's program took it */
    FRAME_RECEIPT_REFUSED = 2,   /* its host refused it: access list, proof */
    FRAME_RECEIPT_FAILED = 3,    /* no such ship, or its program rejected it */
};

/* The most bytes of a message's payload. */
#define FRAME_MESSAGE_MAX (1024 * 1024)

/* Bytes of a ship's public key and of a signature (ed25519). */
#define FRAME_KEY_SIZE 32
#define FRAME_SIGNATURE_SIZE 64

/* What a CHILD event says. */
enum frame_child_what {
    FRAME_CHILD_SPAWNED = 1,
    FRAME_CHILD_DESTROYED = 2,
    FRAME_CHILD_FAILED = 3,
};

/* The most bytes of a ship id in SPAWN, RELEASE, DESTROY and CHILD. */
#define FRAME_ID_MAX 63

/* Bytes of an ALARM effect and of a TIMER payload: one u64 time. */
#define FRAME_ALARM_SIZE 8

#define FRAME_DONE_CHANGED 0x01
#define FRAME_DONE_REUSE 0x02

/* One frame split from a byte stream; body points into the stream. */
struct frame {
    uint8_t type;
    const uint8_t *body;
    size_t body_len;
};

/* Split the first frame off p[0..len). Returns 0 and sets *consumed to the
 * frame's full size, BERTH_EPARTIAL when more bytes are needed, or
 * BERTH_ETOOBIG when the declared length exceeds max (or is zero:
 * BERTH_EMALFORMED). */
int frame_split(const uint8_t *p, size_t len, size_t max, struct frame *f,
                size_t *consumed);

struct frame_boot {
    const char *id;
    size_t id_len;
    uint64_t snapshot_event;
    const uint8_t *snapshot;
    size_t snapshot_len;
};

struct frame_event {
    uint64_t number;
    uint64_t time_ns;
    uint8_t entropy[FRAME_ENTROPY_SIZE];
    uint8_t kind;
    const uint8_t *payload;
    size_t payload_len;
};

/* The fixed part of a DONE frame; effects are walked with frame_effects_next.
 */
struct frame_done {
    uint64_t number;
    uint8_t flags;
    uint32_t n_effects;
    const uint8_t *effects; /* n_effects encoded effects */
    size_t effects_len;
};

struct frame_effect {
    uint8_t kind;
    const uint8_t *data;
    size_t len;
};

struct frame_reject {
    uint64_t number;
    const char *reason;
    size_t reason_len;
};

struct frame_snapshot {
    uint64_t number;
    const uint8_t *data;
    size_t len;
};

struct frame_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* A decoded HTTP event payload; headers are walked with
 * frame_http_next_header. */
struct frame_http_request {
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    uint16_t n_headers;
    const uint8_t *headers; /* n_headers encoded headers */
    size_t headers_len;
    const uint8_t *body;
    size_t body_len;
};

struct frame_http_reply {
    uint16_t status;
    const char *content_type;
    size_t content_type_len;
    const uint8_t *body;
    size_t body_len;
};

/* Encoders append one whole frame (header included) to out and return 0,
 * BERTH_ENOMEM, or BERTH_ETOOBIG when a length does not fit its field; on
 * failure out is left as it was. */
int frame_encode_boot(struct buf *out, const struct frame_boot *b);
int frame_encode_event(struct buf *out, const struct frame_event *e);
int frame_encode_snap_req(struct buf *out, uint64_t number);
int frame_encode_stop(struct buf *out);
int frame_encode_ready(struct buf *out, bool accepted);
int frame_encode_reject(struct buf *out, uint64_t number, const char *reason,
                        size_t reason_len);
int frame_encode_snapshot(struct buf *out, uint64_t number, const void *data,
                          size_t len);

/* Begin a DONE frame; add effects with frame_done_add_effect, then finish it
 * with frame_done_end. The three together append one frame to out. */
int frame_done_begin(struct buf *out, uint64_t number, uint8_t flags,
                     size_t *mark);
int frame_done_add_effect(struct buf *out, size_t mark, uint8_t kind,
                          const void *data, size_t len);
void frame_done_end(struct buf *out, size_t mark);

/* Append an encoded HTTP payload or HTTP_REPLY effect body (not a frame);
 * return 0, BERTH_ENOMEM or BERTH_ETOOBIG, leaving out as it was on failure. */
int frame_encode_http_request(struct buf *out,
                              const struct frame_http_request *r,
                              const struct frame_header *headers);
int frame_encode_http_reply(struct buf *out, const struct frame_http_reply *r);

/* A WEBSOCKET event's payload: data points into the payload. */
struct frame_websocket {
    uint64_t conn;
    uint8_t what; /* enum frame_ws_what */
    const uint8_t *data;
    size_t len;
};

/* Append a WEBSOCKET payload; 0 or BERTH_ENOMEM (out as it was). */
int frame_encode_websocket(struct buf *out, const struct frame_websocket *w);

/* Decode a WEBSOCKET payload: a conn not 0 and a known what; 0 or
 * BERTH_EMALFORMED. */
int frame_decode_websocket(const uint8_t *p, size_t len,
                           struct frame_websocket *w);

/* A WS_SEND effect: data points into the effect's bytes. */
struct frame_ws_send {
    uint64_t conn;
    uint8_t opcode; /* 1 text, 2 binary */
    const uint8_t *data;
    size_t len;
};

/* Decode a WS_SEND effect: a conn not 0, opcode 1 or 2, a text valid
 * UTF-8; 0 or BERTH_EMALFORMED. */
int frame_decode_ws_send(const uint8_t *p, size_t len, struct frame_ws_send *s);

/* A WS_CLOSE effect: reason points into the effect's bytes. */
struct frame_ws_close {
    uint64_t conn;
    uint16_t code;
    const char *reason;
    size_t reason_len;
};

/* Decode a WS_CLOSE effect: a conn not 0, a code a close frame may carry
 * (1000-1003, 1007-1011, 3000-4999), a reason of at most 123 bytes of
 * UTF-8; 0 or BERTH_EMALFORMED. */
int frame_decode_ws_close(const uint8_t *p, size_t len,
                          struct frame_ws_close *c);

/* Decoders check the frame type and every length; they return 0 or
 * BERTH_EMALFORMED and leave pointers into the frame's bytes. */
int frame_decode_boot(const struct frame *f, struct frame_boot *b);
int frame_decode_event(const struct frame *f, struct frame_event *e);
int frame_decode_snap_req(const struct frame *f, uint64_t *number);
int frame_decode_ready(const struct frame *f, bool *accepted);
int frame_decode_done(const struct frame *f, struct frame_done *d);
int frame_decode_reject(const struct frame *f, struct frame_reject *r);
int frame_decode_snapshot(const struct frame *f, struct frame_snapshot *s);

/* Walk the effects of a decoded DONE frame. *off starts at 0. Returns 0 and
 * fills e, 1 when there are no more, or BERTH_EMALFORMED. */
int frame_effects_next(const struct frame_done *d, size_t *off,
                       struct frame_effect *e);

/* Decode an HTTP event payload p[0..len), checking every header's lengths;
 * returns 0 or BERTH_EMALFORMED. */
int frame_decode_http_request(const uint8_t *p, size_t len,
                              struct frame_http_request *r);
/* Walk headers of a decoded request: 0 and h filled, 1 at the end, or
 * BERTH_EMALFORMED. *off starts at 0. */
int frame_http_next_header(const struct frame_http_request *r, size_t *off,
                           struct frame_header *h);
/* Decode the bytes of an HTTP_REPLY effect; returns 0 or BERTH_EMALFORMED. */
int frame_decode_http_reply(const uint8_t *p, size_t len,
                            struct frame_http_reply *r);

/* Append the bytes of an ALARM effect for time_ns (0 cancels the alarm);
 * returns 0 or BERTH_ENOMEM, leaving out as it was on failure. */
int frame_encode_alarm(struct buf *out, uint64_t time_ns);
/* Decode the bytes of an ALARM effect, which must be exactly
 * FRAME_ALARM_SIZE long; returns 0 or BERTH_EMALFORMED. */
int frame_decode_alarm(const uint8_t *p, size_t len, uint64_t *time_ns);
/* Append the payload of a TIMER event for the alarm at time_ns; returns 0 or
 * BERTH_ENOMEM, leaving out as it was on failure. */
int frame_encode_timer(struct buf *out, uint64_t time_ns);
/* Decode a TIMER event payload, which must be exactly FRAME_ALARM_SIZE long;
 * returns 0 or BERTH_EMALFORMED. */
int frame_decode_timer(const uint8_t *p, size_t len, uint64_t *time_ns);

/* A decoded SPAWN effect; options are walked with frame_spawn_next_option. */
struct frame_spawn {
    uint32_t tag;
    uint8_t lifetime; /* enum frame_lifetime */
    uint64_t lifetime_ms;
    const char *program; /* empty: the parent's program */
    size_t program_len;
    const uint8_t *options;
    size_t options_len;
};

/* Decode the bytes of a SPAWN effect, checking every option's length;
 * returns 0 or BERTH_EMALFORMED. An unknown lifetime or option kind decodes:
 * the host refuses it with a reason. */
int frame_decode_spawn(const uint8_t *p, size_t len, struct frame_spawn *s);
/* Walk the options of a decoded SPAWN: 0 and *kind, *data, *len filled, 1 at
 * the end, or BERTH_EMALFORMED. *off starts at 0. */
int frame_spawn_next_option(const struct frame_spawn *s, size_t *off,
                            uint8_t *kind, const uint8_t **data, size_t *len);
/* Append the fixed part of a SPAWN effect (options follow with
 * frame_encode_spawn_option); 0, BERTH_ENOMEM or BERTH_ETOOBIG. */
int frame_encode_spawn(struct buf *out, const struct frame_spawn *s);
/* Append one option of a SPAWN effect; 0, BERTH_ENOMEM or BERTH_ETOOBIG. */
int frame_encode_spawn_option(struct buf *out, uint8_t kind, const void *data,
                              size_t len);

/* A decoded CHILD event payload. */
struct frame_child {
    uint8_t what; /* enum frame_child_what */
    uint32_t tag;
    const char *id;
    size_t id_len;
    const char *detail;
    size_t detail_len;
};

/* Append a CHILD event payload; 0, BERTH_ENOMEM or BERTH_ETOOBIG. The caller
 * keeps c's strings. */
int frame_encode_child(struct buf *out, const struct frame_child *c);
/* Decode a CHILD event payload; 0 or BERTH_EMALFORMED. */
int frame_decode_child(const uint8_t *p, size_t len, struct frame_child *c);

/* A decoded SEND effect. */
struct frame_send {
    uint32_t tag;
    const char *target; /* a ship's id or name */
    size_t target_len;
    const uint8_t *payload;
    size_t payload_len;
};

/* Append a SEND effect's bytes; 0, BERTH_ENOMEM or BERTH_ETOOBIG. */
int frame_encode_send(struct buf *out, const struct frame_send *s);
/* Decode a SEND effect: the target 1 to FRAME_ID_MAX bytes, the payload at
 * most FRAME_MESSAGE_MAX; 0 or BERTH_EMALFORMED. */
int frame_decode_send(const uint8_t *p, size_t len, struct frame_send *s);

/* A decoded MESSAGE event payload. */
struct frame_message {
    uint32_t tag;
    const char *sender; /* the sender's id */
    size_t sender_len;
    uint8_t public_key[FRAME_KEY_SIZE];
    uint64_t number; /* the sender's event that sent it */
    uint16_t index;  /* which of that event's effects */
    uint8_t signature[FRAME_SIGNATURE_SIZE];
    const uint8_t *payload;
    size_t payload_len;
};

/* Append a MESSAGE event payload; 0, BERTH_ENOMEM or BERTH_ETOOBIG. */
int frame_encode_message(struct buf *out, const struct frame_message *m);
/* Decode a MESSAGE event payload; 0 or BERTH_EMALFORMED. */
int frame_decode_message(const uint8_t *p, size_t len, struct frame_message *m);
/* Append to out the bytes a message's signature covers: a label, the
 * sender, target (the receiving ship's id), tag, number, index and
 * payload, each length-prefixed; 0 or BERTH_ENOMEM. */
int frame_message_signed(struct buf *out, const struct frame_message *m,
                         const char *target, size_t target_len);

/* A decoded RECEIPT event payload. */
struct frame_receipt {
    uint32_t tag;
    uint8_t outcome; /* enum frame_receipt_outcome */
    uint16_t status; /* the target's reply status; 0 for none */
    const char *target;
    size_t target_len;
    const uint8_t *body; /* the reply's body, or why it was refused */
    size_t body_len;
};

/* Append a RECEIPT event payload; 0, BERTH_ENOMEM or BERTH_ETOOBIG. */
int frame_encode_receipt(struct buf *out, const struct frame_receipt *r);
/* Decode a RECEIPT event payload; 0 or BERTH_EMALFORMED. */
int frame_decode_receipt(const uint8_t *p, size_t len, struct frame_receipt *r);

/* Check the bytes of a RELEASE or DESTROY effect, a ship id of at most
 * FRAME_ID_MAX bytes (empty allowed for DESTROY: the ship itself); returns 0
 * or BERTH_EMALFORMED. */
int frame_decode_ship_ref(const uint8_t *p, size_t len);

#endif
