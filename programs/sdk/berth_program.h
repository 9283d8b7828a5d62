/* berth_program: a small C helper for writing berth programs.
 *
 * A berth program is an executable that reads frames from stdin and writes
 * frames to stdout (docs/protocol.md). This helper speaks that protocol so a
 * program only supplies three callbacks: boot (from a snapshot or empty),
 * event (compute, add effects, say whether the state changed) and snapshot
 * (serialize the state). It needs nothing but a C11 libc with POSIX read,
 * writev and errno: copy berth_program.h and berth_program.c into any
 * project.
 *
 *     static int on_event(void *ctx, const struct bp_event *ev,
 *                         struct bp_out *out)
 *     {
 *         bp_reply(out, 200, "text/plain", "hi\n", 3);
 *         return BP_UNCHANGED;
 *     }
 *     int main(void)
 *     {
 *         struct bp_program p = {.event = on_event};
 *         return bp_run(&p);
 *     }
 *
 * A program can also ask to be woken later: bp_alarm sets the ship's one
 * alarm (a later call replaces it, 0 cancels it), and when its time comes the
 * host delivers a TIMER event with ev->alarm_ns set, waking the ship if it
 * sleeps. The delivery clears the alarm; to be woken again, call bp_alarm
 * while handling the TIMER.
 *
 * A program can make ships: bp_spawn asks for a child ship, and the host
 * answers with a CHILD event (ev->child set) once the child exists, could not
 * be made, or later is destroyed; bp_release and bp_destroy end children (or,
 * bp_destroy with no id, the ship itself), and bp_idle lets the ship sleep
 * as soon as its effects have left.
 *
 * Ships talk with messages: bp_send sends one to another ship, which gets a
 * MESSAGE event (ev->message set) and answers it with bp_reply as it would
 * an HTTP request; the sender then gets a RECEIPT event (ev->receipt set)
 * with the same tag, saying whether the message was delivered, with the
 * answer, refused by the target's host (its access list: see the access
 * list of struct bp_spawn) or failed.
 *
 * Ships keep WebSockets: a client opening one on the ship's path is a
 * WEBSOCKET event (ev->websocket set, what BP_WS_OPEN), which the program
 * accepts with bp_reply(out, 101, ...) and refuses with any other reply; each
 * message from the client is a WEBSOCKET event too (BP_WS_TEXT or
 * BP_WS_BINARY), and so is its end (BP_WS_CLOSED). Any event may send to the
 * ship's open connections with bp_ws_send and close them with bp_ws_close.
 * Connections survive the ship's sleep, not a restart of the host: a program
 * that keeps them in its state drops those of an older host run (bp_ws_run)
 * on the first OPEN of a newer one.
 *
 * A program must be deterministic: its state may depend only on the events
 * it is given (their number, time_ns and entropy included), never on the
 * clock, the environment or randomness of its own, because the host rebuilds
 * it by replaying logged events.
 *
 * The helper checks every frame from the host as carefully as the host checks
 * the program's: a frame that is too long, truncated, of an unexpected type or
 * whose lengths do not add up ends bp_run with status 1 and a line on stderr.
 * Everything here is single-threaded. */
#ifndef BERTH_PROGRAM_H
#define BERTH_PROGRAM_H

#include <stddef.h>
#include <stdint.h>

/* The largest frame len either side may send; the host enforces the same. */
#define BP_MAX_FRAME (64u * 1024 * 1024)

/* The values an event callback returns. */
enum bp_result {
    BP_UNCHANGED = 0, /* a read: the host does not log the event */
    BP_CHANGED = 1,   /* the host logs the event before any effect leaves */
    BP_REJECT = 2,    /* refused (see bp_reject); the state must be as before */
};

/* The kinds of event; other values may come from newer hosts. */
enum bp_event_kind {
    BP_EVENT_HTTP = 1,  /* a request to /s/<ship>/...; ev->http is set */
    BP_EVENT_POKE = 2,  /* bytes from an operator (`berth ship send`) */
    BP_EVENT_TIMER = 3, /* the alarm (bp_alarm) came due; ev->alarm_ns is set */
    BP_EVENT_MESSAGE = 4, /* from another ship (bp_send); ev->message is set */
    BP_EVENT_CHILD =
        5, /* what became of a child (bp_spawn); ev->child is set */
    BP_EVENT_RECEIPT =
        6, /* what became of a message (bp_send); ev->receipt is set */
    BP_EVENT_WEBSOCKET =
        8, /* a WebSocket opened, spoke or closed; ev->websocket is set */
};

/* When a child ship made with bp_spawn is destroyed. */
enum bp_lifetime {
    BP_LIFETIME_ROOT = 1,      /* only by a DESTROY or the operator */
    BP_LIFETIME_LINKED = 2,    /* also with its parent */
    BP_LIFETIME_EPHEMERAL = 3, /* also when the parent drops it (bp_release) */
};

/* What a CHILD event says of a child; other values may come from newer
 * hosts. */
enum bp_child_what {
    BP_CHILD_SPAWNED = 1,   /* the child exists; id is set */
    BP_CHILD_DESTROYED = 2, /* the child is gone; detail says who did it */
    BP_CHILD_FAILED = 3,    /* the spawn made nothing; detail says why */
};

/* What a RECEIPT event says of a message; other values may come from newer
 * hosts. */
enum bp_outcome {
    BP_RECEIPT_DELIVERED = 1, /* the target answered; status and body are its
                                 reply's (204 and nothing without one) */
    BP_RECEIPT_REFUSED = 2,   /* the target's host refused it (its access list,
                                 the signature); body says why */
    BP_RECEIPT_FAILED = 3,    /* no such ship (status 0), or the target's
                                 program rejected it or failed on it (422, 502,
                                 504); body says why */
};

/* What a WEBSOCKET event says of its connection; other values may come from
 * newer hosts. */
enum bp_ws_what {
    BP_WS_OPEN = 1,   /* a client asks to open it; open is the request */
    BP_WS_TEXT = 2,   /* one whole text message (UTF-8) in data */
    BP_WS_BINARY = 3, /* one whole binary message in data */
    BP_WS_CLOSED = 4, /* it is gone; code and the reason in data say why */
};

/* The opcodes of bp_ws_send. */
enum bp_ws_opcode {
    BP_WS_SEND_TEXT = 1,   /* the bytes must be UTF-8 */
    BP_WS_SEND_BINARY = 2, /* any bytes */
};

/* The most bytes of a close reason, both ways (a close frame holds 125 bytes,
 * two of them the code). */
#define BP_WS_REASON_MAX 123

/* The most bytes of a ship id, in bp_release, bp_destroy, bp_send, a spawn's
 * access list and the events. */
#define BP_ID_MAX 63

/* The most bytes of a message's payload (bp_send, ev->message). */
#define BP_MESSAGE_MAX (1024u * 1024)

/* A growable byte array; zero-initialize it, and free it with
 * bp_bytes_free unless bp_run owns it (the snapshot callback's out). */
struct bp_bytes {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* Append n bytes of p to b; returns 0, or -1 when out of memory. */
int bp_bytes_append(struct bp_bytes *b, const void *p, size_t n);

/* Append the n bytes at s to b as a JSON string, quotes included. UTF-8
 * passes through; a byte that is not part of a valid UTF-8 sequence, or a
 * control character, is written as the code point of the same value
 * (\u00XX), so the output is valid JSON whatever the bytes. Returns 0, or
 * -1 when out of memory. */
int bp_json_string(struct bp_bytes *b, const char *s, size_t n);

/* Free the array's memory and leave it empty and reusable. */
void bp_bytes_free(struct bp_bytes *b);

/* One request header; the strings point into the event and are not
 * NUL-terminated. */
struct bp_header {
    const char *name; /* lower case, as the host sends it */
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* A decoded HTTP request; strings point into the event and are not
 * NUL-terminated. */
struct bp_http {
    const char *method;
    size_t method_len;
    const char *target; /* path and query after /s/<ship>, e.g. "/k/x?y=1" */
    size_t target_len;
    unsigned n_headers;
    const struct bp_header *headers;
    const uint8_t *body;
    size_t body_len;
};

/* A decoded CHILD event; the strings point into the event and are not
 * NUL-terminated. */
struct bp_child {
    uint8_t what;       /* enum bp_child_what */
    uint32_t tag;       /* the tag of the bp_spawn that made the child */
    const char *id;     /* the child's id; empty when the spawn failed */
    size_t id_len;      /* at most BP_ID_MAX */
    const char *detail; /* who destroyed it or why it failed, UTF-8 */
    size_t detail_len;
};

/* A decoded MESSAGE event; the pointers point into the event. The host has
 * checked the signature and that the sender's id is its key's, so sender
 * may be trusted. */
struct bp_message {
    uint32_t tag;           /* the sender's bp_send tag */
    const char *sender;     /* the sender's id, 1 to BP_ID_MAX bytes */
    size_t sender_len;      /* not NUL-terminated */
    uint8_t public_key[32]; /* the sender's ed25519 public key */
    uint64_t number;        /* the sender's event that sent it */
    uint16_t index;         /* which effect of that event: with sender and
                               number, the message's id */
    uint8_t signature[64];  /* by that key (docs/protocol.md, "Messages") */
    const uint8_t *payload; /* at most BP_MESSAGE_MAX bytes */
    size_t payload_len;
};

/* A decoded RECEIPT event; the pointers point into the event. */
struct bp_receipt {
    uint32_t tag;        /* the tag of the bp_send it answers */
    uint8_t outcome;     /* enum bp_outcome */
    uint16_t status;     /* the target's reply status; 0 when refused or when
                            there is no such ship */
    const char *target;  /* the target's id, at most BP_ID_MAX bytes */
    size_t target_len;   /* not NUL-terminated */
    const uint8_t *body; /* the reply's body, or why it was refused or failed */
    size_t body_len;
};

/* A decoded WEBSOCKET event; the pointers point into the event. */
struct bp_websocket {
    uint64_t conn;       /* the connection, never 0 and never reused; its
                            high 32 bits are the host's run (bp_ws_run) */
    int what;            /* enum bp_ws_what */
    struct bp_http open; /* when what is BP_WS_OPEN, the request to open it
                            (its path, headers and an empty body); else all
                            zero */
    const uint8_t *data; /* the message (TEXT, BINARY), the close reason
                            (CLOSED, UTF-8, at most BP_WS_REASON_MAX bytes),
                            or what follows what for newer values; NULL for
                            OPEN */
    size_t len;          /* bytes at data */
    uint16_t code;       /* when CLOSED, the close code: 1005 when the client
                            gave none, 1006 when the connection dropped */
};

/* One event; it and everything it points to are valid only during the
 * event callback. */
struct bp_event {
    uint64_t number;     /* the event's number in the ship's log */
    uint64_t time_ns;    /* the host's wall clock when the event arrived */
    uint8_t entropy[32]; /* fresh random bytes, the same on every replay */
    uint8_t kind;        /* enum bp_event_kind */
    const uint8_t *payload;
    size_t payload_len;
    const struct bp_http *http; /* decoded payload when kind is HTTP, or NULL */
    uint64_t alarm_ns; /* when kind is TIMER, the time of the alarm; else 0 */
    const struct bp_child *child;     /* decoded payload when kind is CHILD */
    const struct bp_message *message; /* decoded payload when MESSAGE */
    const struct bp_receipt *receipt; /* decoded payload when RECEIPT */
    const struct bp_websocket *websocket; /* decoded payload when WEBSOCKET;
                                             http stays NULL even for OPEN */
};

/* Where an event's effects are collected; only bp_run makes one, and it is
 * valid only during the event callback. */
struct bp_out;

/* Add an HTTP reply effect with a status from 100 to 599; content_type may
 * be NULL. Returns 0, or -1 when the status is out of range, memory runs out
 * or the answer would not fit in one frame (the effect is then not added). */
int bp_reply(struct bp_out *out, int status, const char *content_type,
             const void *body, size_t len);

/* Add a log line effect, printf-style; line breaks become spaces so that it
 * stays one line. Returns 0 or -1 as bp_reply does. */
int bp_log(struct bp_out *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Add an alarm effect: the host delivers a TIMER event at time_ns (wall
 * clock nanoseconds since the Unix epoch, like ev->time_ns; a time already
 * past fires at once), or cancels the alarm when time_ns is 0. A ship has one
 * alarm, so the last call wins; it takes hold once the event is logged, which
 * the host does for any event with an alarm, even one that returns
 * BP_UNCHANGED. Returns 0 or -1 as bp_reply does. */
int bp_alarm(struct bp_out *out, uint64_t time_ns);

/* A child ship to make: what bp_spawn sends. Zero-initialize it and set what
 * the child needs. */
struct bp_spawn {
    uint32_t tag;            /* comes back in the child's CHILD events */
    int lifetime;            /* enum bp_lifetime */
    const char *program;     /* an absolute path; NULL or "": this program */
    const char *const *args; /* n_args arguments of the child's program */
    size_t n_args;
    const char *const *env; /* n_env KEY=VALUE strings of its environment */
    size_t n_env;
    /* n_access ship ids (1 to BP_ID_MAX bytes each) allowed to send messages
     * to the child; with none, the ships of its account may. A list replaces
     * that rule: a parent that will message the child lists itself (its id
     * is BERTH_SHIP in the environment). */
    const char *const *access;
    size_t n_access;
};

/* Add a spawn effect: once the event is logged (the host logs any event
 * with a spawn, even one that returns BP_UNCHANGED), the host makes a child
 * ship running s->program with s's arguments, environment and access list,
 * and answers with a CHILD event carrying s->tag: SPAWNED with the child's
 * id, or FAILED with the reason (an unknown lifetime, a relative program, a
 * limit). Returns 0, or -1 when the lifetime does not fit in a byte, the
 * program is over 65535 bytes, an access id is empty or over BP_ID_MAX
 * bytes, memory runs out or the effect would not fit in one frame (it is
 * then not added). */
int bp_spawn(struct bp_out *out, const struct bp_spawn *s);

/* Add a release effect: the ephemeral child id (NUL-terminated, 1 to
 * BP_ID_MAX bytes) is destroyed once the event is logged; for a ship that is
 * not an ephemeral child of this one, the host only writes a log line.
 * Returns 0, or -1 when id is NULL, empty or too long, or as bp_reply
 * does. */
int bp_release(struct bp_out *out, const char *id);

/* Add a destroy effect: once the event is logged, the child id
 * (NUL-terminated, at most BP_ID_MAX bytes) is destroyed with its linked and
 * ephemeral descendants, or, when id is NULL or "", the ship itself (after
 * this event's reply has left). Returns 0, or -1 when id is too long, or as
 * bp_reply does. */
int bp_destroy(struct bp_out *out, const char *id);

/* Add a send effect: once the event is logged (the host logs any event
 * with a send, even one that returns BP_UNCHANGED), the host delivers
 * payload to the ship target (its id or name, NUL-terminated, 1 to
 * BP_ID_MAX bytes) as a MESSAGE event, exactly once, and answers with a
 * RECEIPT event carrying tag. Returns 0, or -1 when target is NULL, empty
 * or too long, len is over BP_MESSAGE_MAX, or as bp_reply does. */
int bp_send(struct bp_out *out, uint32_t tag, const char *target,
            const void *payload, size_t len);

/* Add an idle effect: the program has nothing more to do for now, so the
 * host puts the ship to sleep once this event's effects have left and no
 * other event waits. Returns 0 or -1 as bp_reply does. */
int bp_idle(struct bp_out *out);

/* Add a WebSocket send effect: once the event is durable, the host sends
 * the n bytes at p to the ship's open connection conn as one message, text
 * (opcode BP_WS_SEND_TEXT, which must be UTF-8) or binary
 * (BP_WS_SEND_BINARY). Effects leave in order, so the sends of one event
 * reach a connection in the order they were added, after the 101 that opens
 * it when they answer its OPEN. A connection that is closed or not the
 * ship's by then drops the message (the host counts it). Returns 0, or -1
 * when conn is 0, the opcode is another, a text is not UTF-8, or as bp_reply
 * does. */
int bp_ws_send(struct bp_out *out, uint64_t conn, int opcode, const void *p,
               size_t n);

/* Add a WebSocket close effect: once the event is durable, the host closes
 * conn with code and reason (NUL-terminated UTF-8 of at most
 * BP_WS_REASON_MAX bytes; NULL is none). The code must be one the host lets
 * a program put in a close frame: 1000 to 1003, 1007 to 1011, or 3000 to
 * 4999. Returns 0, or -1 when conn is 0, the code or the reason is not
 * allowed, or as bp_reply does. */
int bp_ws_close(struct bp_out *out, uint64_t conn, uint16_t code,
                const char *reason);

/* Return the host run a connection belongs to, its high 32 bits: the
 * connections of an older run than a new OPEN's were lost with that run's
 * host and will get no CLOSED event. */
uint32_t bp_ws_run(uint64_t conn);

/* Say that this event's reply depends only on the state and the request
 * (its method, target, headers and body), not on the event's number, time
 * or entropy. The host may then give the same reply to the same request
 * again, without sending it, until an event changes the state; an event that
 * changes the state, or that is rejected, is not affected. A GET that reads
 * the state is the usual case. */
void bp_reuse(struct bp_out *out);

/* Set the reason of a rejection (cut at 1023 bytes) and return BP_REJECT, so
 * that an event callback can `return bp_reject(out, "...")`; the event is
 * rejected whatever the callback returns, and effects added are dropped. */
int bp_reject(struct bp_out *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Return 1 when the request has this method (NULL matches any) and its path
 * (the target without its query) equals path, or, when path ends in '*',
 * starts with what comes before the '*' (so "/k/" followed by '*' matches
 * "/k/" and "/k/a"); return 0 otherwise, also when h is NULL. */
int bp_http_match(const struct bp_http *h, const char *method,
                  const char *path);

/* Return the value of the first header named name (lower case) and set
 * *len, or return NULL when the request has none. */
const char *bp_http_header(const struct bp_http *h, const char *name,
                           size_t *len);

/* A program: its callbacks and the pointer they are given. */
struct bp_program {
    /* Called once, first. snapshot is NULL (and len 0) when the ship has no
     * snapshot; otherwise it holds the len bytes a snapshot callback made,
     * possibly in an older version of the program. Return 0 to accept it,
     * non-zero to refuse it: the state must then be empty, and the host
     * replays the whole log instead. May be NULL: snapshots are then
     * refused. */
    int (*boot)(void *ctx, const uint8_t *snapshot, size_t len);
    /* Called for each event; returns an enum bp_result. Any other value ends
     * bp_run with status 1. Required. */
    int (*event)(void *ctx, const struct bp_event *ev, struct bp_out *out);
    /* Serialize the state by appending to out, which is empty on entry and
     * owned by bp_run. Return 0, or non-zero on failure, which ends bp_run
     * with status 1. May be NULL: snapshots are then empty. */
    int (*snapshot)(void *ctx, struct bp_bytes *out);
    void *ctx;
};

/* Serve the host on stdin and stdout until STOP or the end of stdin. Returns
 * the process exit status: 0 after STOP or a clean end of input, 1 on a
 * protocol, callback or I/O error (reported on stderr). */
int bp_run(const struct bp_program *p);

#endif
