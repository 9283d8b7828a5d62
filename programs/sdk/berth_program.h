/* berth_program: a small C helper for writing berth programs.
 *
 * A berth program is an executable that reads frames from stdin and writes
 * frames to stdout (docs/protocol.md). This helper speaks that protocol so a
 * program only supplies three callbacks: boot (from a snapshot or empty),
 * event (compute, add effects, say whether the state changed) and snapshot
 * (serialize the state). It needs nothing but libc: copy berth_program.h and
 * berth_program.c into any project.
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
 * A program must be deterministic: its state may depend only on the events
 * it is given (their number, time_ns and entropy included), never on the
 * clock, the environment or randomness of its own, because the host rebuilds
 * it by replaying logged events. */
#ifndef BERTH_PROGRAM_H
#define BERTH_PROGRAM_H

#include <stddef.h>
#include <stdint.h>

/* The largest frame either side may send (the host enforces the same). */
#define BP_MAX_FRAME (64u * 1024 * 1024)

/* What the event callback returns. */
enum bp_result {
    BP_UNCHANGED = 0, /* a read: the host does not log the event */
    BP_CHANGED = 1,   /* the host logs the event before any effect leaves */
    BP_REJECT = 2,    /* refused (see bp_reject); the state must be as before */
};

enum bp_event_kind {
    BP_EVENT_HTTP = 1, /* a request to /s/<ship>/...; ev->http is set */
    BP_EVENT_POKE = 2, /* bytes from an operator (`berth ship send`) */
};

/* A growable byte array, owned by whoever initialized it. */
struct bp_bytes {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* Append n bytes; returns 0, or -1 when out of memory. */
int bp_bytes_append(struct bp_bytes *b, const void *p, size_t n);

/* Free the array's memory and empty it. */
void bp_bytes_free(struct bp_bytes *b);

struct bp_header {
    const char *name; /* lower case, not NUL-terminated */
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* An HTTP request; strings point into the event and are not
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

/* One event, valid only during the callback. */
struct bp_event {
    uint64_t number;     /* the event's number in the ship's log */
    uint64_t time_ns;    /* the host's wall clock when the event arrived */
    uint8_t entropy[32]; /* fresh random bytes, the same on every replay */
    uint8_t kind;        /* enum bp_event_kind */
    const uint8_t *payload;
    size_t payload_len;
    const struct bp_http *http; /* decoded payload when kind is HTTP */
};

/* Where an event's effects are collected. */
struct bp_out;

/* Add an HTTP reply effect; content_type may be NULL. Returns 0 or -1. */
int bp_reply(struct bp_out *out, int status, const char *content_type,
             const void *body, size_t len);

/* Add a log line effect, printf-style. Returns 0 or -1. */
int bp_log(struct bp_out *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Set the reason of a rejection and return BP_REJECT, so that an event
 * callback can `return bp_reject(out, "...")`. Effects added before are
 * dropped. */
int bp_reject(struct bp_out *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Return whether the request has this method and its path (without query)
 * equals path, or starts with it when path ends in '/'. */
int bp_http_match(const struct bp_http *h, const char *method,
                  const char *path);

struct bp_program {
    /* Called once, first. snapshot is NULL with len 0 when the ship has none.
     * Return 0 to accept it, non-zero to refuse (then the host replays the
     * whole log instead, and the state must be left empty). May be NULL:
     * snapshots are then refused. */
    int (*boot)(void *ctx, const uint8_t *snapshot, size_t len);
    /* Called for each event; returns an enum bp_result. Required. */
    int (*event)(void *ctx, const struct bp_event *ev, struct bp_out *out);
    /* Serialize the state into out (empty on entry); 0, or non-zero on
     * failure, which ends the program. May be NULL: snapshots are empty. */
    int (*snapshot)(void *ctx, struct bp_bytes *out);
    void *ctx;
};

/* Serve the host on stdin and stdout until STOP or end of input. Returns the
 * process exit status: 0 after STOP or EOF, 1 on a protocol or I/O error
 * (reported on stderr). */
int bp_run(const struct bp_program *p);

#endif
