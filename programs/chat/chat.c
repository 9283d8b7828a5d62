/* chat: the sample program of WebSockets, a chat room (docs/protocol.md,
 * "WebSockets").
 *
 *   WebSocket on /   joins the room: the OPEN is accepted with 101, and the
 *                    new member is sent the recent history, one message a
 *                    line as below, oldest first. On another path the OPEN
 *                    is refused with 404, and with 503 when the room has
 *                    CHAT_MEMBERS_MAX members.
 *   TEXT             from a member: appended to the history with the next
 *                    sequence number, and sent to every member, the sender
 *                    included, as one line of JSON:
 *                    {"seq":N,"from":"<conn in hex>","time_ns":T,"text":...}
 *                    A text over CHAT_TEXT_MAX bytes, or a BINARY message,
 *                    is not taken: the sender alone gets
 *                    {"error":{"code":...,"message":...}}. A message from a
 *                    connection that is not a member is rejected.
 *   CLOSED           the member leaves.
 *   GET /            200 with {"next":N,"members":M,"messages":[...]}: the
 *                    next sequence number, the number of members, and the
 *                    recent history as the same objects, oldest first.
 *
 * Other paths are 404 and other methods 405, with a JSON body
 * {"error":{"code":...,"message":...}}; other event kinds are rejected.
 *
 * Every message a client sees has a sequence number, and the sequence is
 * the order of the events in the ship's log, so that every member sees the
 * same messages in the same order; seeing one's own message come back is
 * its acknowledgement, as the host sends it only once its event is durable.
 * A member that sees a gap in the numbers (it joined late, or the room
 * moved on while it reconnected) reads the rest with GET /.
 *
 * Members are connection ids, which the state keeps across the ship's
 * sleeps (the host keeps the sockets). They do not outlive the host's run:
 * the first OPEN of a newer run drops every member of an older one, whose
 * connections went with that run's host (bp_ws_run).
 *
 * The state is the host run of the members, the next sequence number, the
 * members in the order they joined (at most CHAT_MEMBERS_MAX) and the last
 * CHAT_HISTORY messages. The snapshot is "CH1\n", u32 run, u64 next, u32
 * n_members, u64 conn for each, u32 n_messages, then (u64 seq, u64 time_ns,
 * u64 from, u32 text length, text) for each message, oldest first, so equal
 * states give equal snapshots. Times come from the events' time_ns, never
 * from the clock, so that a replay computes the same ones. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth_program.h"

/* The most members: the host's default limit of sockets a ship. */
#define CHAT_MEMBERS_MAX 1024

/* How many messages the room keeps, and the most bytes of one. */
#define CHAT_HISTORY 128
#define CHAT_TEXT_MAX 4096

static const char chat_magic[4] = {'C', 'H', '1', '\n'};

/* One message of the history; text is not NUL-terminated. */
struct message {
    uint64_t seq;
    uint64_t time_ns; /* the event's */
    uint64_t from;    /* the sender's connection */
    size_t len;
    char *text;
};

struct chat {
    uint32_t run;  /* the host run the members belong to */
    uint64_t next; /* the next message's sequence number, from 1 */
    uint64_t members[CHAT_MEMBERS_MAX]; /* in the order they joined */
    size_t n_members;
    struct message history[CHAT_HISTORY]; /* a ring, first the oldest */
    size_t first, n_history;
};

static void reply_error(struct bp_out *out, int status, const char *code,
                        const char *message)
{
    char body[256];
    /* code and message are constants of this file, with nothing to escape. */
    int n = snprintf(body, sizeof body,
                     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code,
                     message);
    bp_reply(out, status, "application/json", body, (size_t)n);
}

/* Send one member an error line, as reply_error's body. */
static int send_error(struct bp_out *out, uint64_t conn, const char *code,
                      const char *message)
{
    char line[256];
    int n = snprintf(line, sizeof line,
                     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code,
                     message);
    return bp_ws_send(out, conn, BP_WS_SEND_TEXT, line, (size_t)n);
}

/* Append a message to b as the JSON object every member sees. */
static int message_json(struct bp_bytes *b, uint64_t seq, uint64_t time_ns,
                        uint64_t from, const char *text, size_t len)
{
    char head[128];
    int n = snprintf(head, sizeof head,
                     "{\"seq\":%llu,\"from\":\"%016llx\",\"time_ns\":%llu,"
                     "\"text\":",
                     (unsigned long long)seq, (unsigned long long)from,
                     (unsigned long long)time_ns);
    if (bp_bytes_append(b, head, (size_t)n) != 0 ||
        bp_json_string(b, text, len) != 0) {
        return -1;
    }
    return bp_bytes_append(b, "}", 1);
}

static const struct message *history_at(const struct chat *c, size_t i)
{
    return &c->history[(c->first + i) % CHAT_HISTORY];
}

/* Return the index of conn among the members, or n_members. */
static size_t member_find(const struct chat *c, uint64_t conn)
{
    size_t i = 0;
    while (i < c->n_members && c->members[i] != conn) {
        i++;
    }
    return i;
}

static void member_remove(struct chat *c, size_t i)
{
    memmove(&c->members[i], &c->members[i + 1],
            (c->n_members - i - 1) * sizeof c->members[0]);
    c->n_members--;
}

/* Forget the whole history. */
static void history_clear(struct chat *c)
{
    for (size_t i = 0; i < c->n_history; i++) {
        free(c->history[(c->first + i) % CHAT_HISTORY].text);
    }
    c->first = c->n_history = 0;
}

/* Append a message whose text is already copied to the heap, dropping the
 * oldest when the history is full. */
static void history_push(struct chat *c, struct message m)
{
    if (c->n_history == CHAT_HISTORY) {
        free(c->history[c->first].text);
        c->first = (c->first + 1) % CHAT_HISTORY;
        c->n_history--;
    }
    c->history[(c->first + c->n_history) % CHAT_HISTORY] = m;
    c->n_history++;
}

/* A client asks to join. The members change only once nothing can fail,
 * so that a rejection leaves the state as it was. */
static int on_open(struct chat *c, const struct bp_websocket *w,
                   struct bp_out *out)
{
    if (!bp_http_match(&w->open, NULL, "/")) {
        reply_error(out, 404, "not_found", "the room is at /");
        return BP_UNCHANGED;
    }
    /* A new run of the host: the older run's sockets are gone with it. */
    int new_run = bp_ws_run(w->conn) != c->run;
    if (!new_run && member_find(c, w->conn) < c->n_members) {
        return bp_reject(out, "connection %016llx is a member already",
                         (unsigned long long)w->conn);
    }
    if (!new_run && c->n_members == CHAT_MEMBERS_MAX) {
        reply_error(out, 503, "room_full", "the room is full");
        return BP_UNCHANGED;
    }
    /* The 101 first: the sends that follow reach the socket once open. */
    int rv = bp_reply(out, 101, NULL, NULL, 0);
    struct bp_bytes b = {0};
    for (size_t i = 0; i < c->n_history && rv == 0; i++) {
        const struct message *m = history_at(c, i);
        b.len = 0;
        rv = message_json(&b, m->seq, m->time_ns, m->from, m->text, m->len);
        if (rv == 0) {
            rv = bp_ws_send(out, w->conn, BP_WS_SEND_TEXT, b.data, b.len);
        }
    }
    bp_bytes_free(&b);
    if (rv != 0) {
        return bp_reject(out, "the history does not fit in one answer");
    }
    if (new_run) {
        c->run = bp_ws_run(w->conn);
        c->n_members = 0;
    }
    c->members[c->n_members++] = w->conn;
    return BP_CHANGED;
}

/* A member says something: every member gets it, the sender included. The
 * sends are added before the state changes, so that a failure can reject
 * the event with the state as it was. */
static int on_text(struct chat *c, const struct bp_event *ev,
                   const struct bp_websocket *w, struct bp_out *out)
{
    if (w->len > CHAT_TEXT_MAX) {
        send_error(out, w->conn, "too_long",
                   "a message has at most 4096 bytes");
        return BP_UNCHANGED;
    }
    struct message m = {.seq = c->next,
                        .time_ns = ev->time_ns,
                        .from = w->conn,
                        .len = w->len,
                        .text = malloc(w->len ? w->len : 1)};
    struct bp_bytes b = {0};
    int rv = m.text == NULL ? -1
                            : message_json(&b, m.seq, m.time_ns, m.from,
                                           (const char *)w->data, w->len);
    for (size_t i = 0; i < c->n_members && rv == 0; i++) {
        rv = bp_ws_send(out, c->members[i], BP_WS_SEND_TEXT, b.data, b.len);
    }
    bp_bytes_free(&b);
    if (rv != 0) {
        free(m.text);
        return bp_reject(out, "out of memory for message %llu",
                         (unsigned long long)m.seq);
    }
    memcpy(m.text, w->data, w->len);
    history_push(c, m);
    c->next++;
    return BP_CHANGED;
}

static int on_websocket(struct chat *c, const struct bp_event *ev,
                        struct bp_out *out)
{
    const struct bp_websocket *w = ev->websocket;
    if (w->what == BP_WS_OPEN) {
        return on_open(c, w, out);
    }
    size_t i = member_find(c, w->conn);
    if (w->what == BP_WS_CLOSED) {
        if (i == c->n_members) {
            return BP_UNCHANGED; /* refused, or of an older run */
        }
        member_remove(c, i);
        return BP_CHANGED;
    }
    if (i == c->n_members) {
        return bp_reject(out, "connection %016llx is not a member",
                         (unsigned long long)w->conn);
    }
    if (w->what == BP_WS_TEXT) {
        return on_text(c, ev, w, out);
    }
    if (w->what == BP_WS_BINARY) {
        send_error(out, w->conn, "binary", "the room takes text messages");
        return BP_UNCHANGED;
    }
    return bp_reject(out, "chat does not know websocket event %d", w->what);
}

/* Reply with the room's history as JSON. */
static void reply_history(const struct chat *c, struct bp_out *out)
{
    struct bp_bytes b = {0};
    char head[96];
    int n = snprintf(head, sizeof head,
                     "{\"next\":%llu,\"members\":%zu,\"messages\":[",
                     (unsigned long long)c->next, c->n_members);
    int rv = bp_bytes_append(&b, head, (size_t)n);
    for (size_t i = 0; i < c->n_history && rv == 0; i++) {
        const struct message *m = history_at(c, i);
        if (i > 0) {
            rv = bp_bytes_append(&b, ",", 1);
        }
        if (rv == 0) {
            rv = message_json(&b, m->seq, m->time_ns, m->from, m->text, m->len);
        }
    }
    if (rv == 0) {
        rv = bp_bytes_append(&b, "]}\n", 3);
    }
    if (rv == 0) {
        rv = bp_reply(out, 200, "application/json", b.data, b.len);
    }
    if (rv != 0) {
        reply_error(out, 500, "too_large", "the history does not fit");
    }
    bp_bytes_free(&b);
}

static int on_http(struct chat *c, const struct bp_event *ev,
                   struct bp_out *out)
{
    if (!bp_http_match(ev->http, NULL, "/")) {
        reply_error(out, 404, "not_found", "the room is at /");
    } else if (!bp_http_match(ev->http, "GET", "/")) {
        reply_error(out, 405, "method_not_allowed", "GET / or a WebSocket");
    } else {
        reply_history(c, out);
        bp_reuse(out);
    }
    return BP_UNCHANGED;
}

static int on_event(void *ctx, const struct bp_event *ev, struct bp_out *out)
{
    struct chat *c = ctx;
    if (ev->kind == BP_EVENT_WEBSOCKET) {
        return on_websocket(c, ev, out);
    }
    if (ev->kind == BP_EVENT_HTTP) {
        return on_http(c, ev, out);
    }
    return bp_reject(out, "chat does not know event kind %u", ev->kind);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

/* Load a snapshot into the empty state; returns 0, or -1 when it is cut
 * short, too long, or holds what chat never writes (too many members or
 * messages, a text too long, sequence numbers that are not the ones before
 * next, in order). The state is left empty on failure. */
static int load(struct chat *c, const uint8_t *s, size_t len)
{
    size_t off = sizeof chat_magic + 4 + 8 + 4;
    if (len < off || memcmp(s, chat_magic, sizeof chat_magic) != 0) {
        return -1;
    }
    c->run = get32(s + 4);
    c->next = get64(s + 8);
    uint32_t n = get32(s + 16);
    if (n > CHAT_MEMBERS_MAX || (len - off) / 8 < n) {
        return -1;
    }
    for (uint32_t i = 0; i < n; i++, off += 8) {
        c->members[i] = get64(s + off);
    }
    c->n_members = n;
    if (len - off < 4) {
        return -1;
    }
    n = get32(s + off);
    off += 4;
    if (n > CHAT_HISTORY || c->next < 1 || c->next - 1 < n) {
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (len - off < 28) {
            return -1;
        }
        struct message m = {.seq = get64(s + off),
                            .time_ns = get64(s + off + 8),
                            .from = get64(s + off + 16),
                            .len = get32(s + off + 24)};
        off += 28;
        if (m.seq != c->next - n + i || m.len > CHAT_TEXT_MAX ||
            len - off < m.len) {
            return -1;
        }
        m.text = malloc(m.len ? m.len : 1);
        if (m.text == NULL) {
            return -1;
        }
        memcpy(m.text, s + off, m.len);
        off += m.len;
        history_push(c, m);
    }
    return off == len ? 0 : -1;
}

static int on_boot(void *ctx, const uint8_t *snap, size_t len)
{
    struct chat *c = ctx;
    c->next = 1;
    if (snap == NULL) {
        return 0;
    }
    if (load(c, snap, len) != 0) {
        /* Refused: the host replays the whole log into an empty room. */
        history_clear(c);
        memset(c, 0, sizeof *c);
        c->next = 1;
        return -1;
    }
    return 0;
}

static int on_snapshot(void *ctx, struct bp_bytes *out)
{
    const struct chat *c = ctx;
    uint8_t b[28];
    put32(b, c->run);
    put64(b + 4, c->next);
    put32(b + 12, (uint32_t)c->n_members);
    if (bp_bytes_append(out, chat_magic, sizeof chat_magic) != 0 ||
        bp_bytes_append(out, b, 16) != 0) {
        return -1;
    }
    for (size_t i = 0; i < c->n_members; i++) {
        put64(b, c->members[i]);
        if (bp_bytes_append(out, b, 8) != 0) {
            return -1;
        }
    }
    put32(b, (uint32_t)c->n_history);
    if (bp_bytes_append(out, b, 4) != 0) {
        return -1;
    }
    for (size_t i = 0; i < c->n_history; i++) {
        const struct message *m = history_at(c, i);
        put64(b, m->seq);
        put64(b + 8, m->time_ns);
        put64(b + 16, m->from);
        put32(b + 24, (uint32_t)m->len);
        if (bp_bytes_append(out, b, 28) != 0 ||
            bp_bytes_append(out, m->text, m->len) != 0) {
            return -1;
        }
    }
    return 0;
}

int main(void)
{
    static struct chat chat;
    struct bp_program p = {
        .boot = on_boot,
        .event = on_event,
        .snapshot = on_snapshot,
        .ctx = &chat,
    };
    int status = bp_run(&p);
    history_clear(&chat);
    return status;
}
