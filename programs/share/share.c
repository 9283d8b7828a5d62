/* share: share your home address with a friend, and only with that friend.
 * The worked example of children and messages (docs/protocol.md,
 * "Children" and "Messages").
 *
 * The owner keeps an address. To share it, it spawns a child of this same
 * program in share mode whose access list names the friend, so that the
 * host lets the friend's messages reach the child and refuses everyone
 * else's, and sends the child the address. The friend reads it with a
 * message; the owner stops sharing by destroying the child. The owner never
 * gives the friend anything but the child's id.
 *
 * Owner (a ship made with no arguments):
 *   PUT    /address     body = the address (at most 1024 bytes); keeps it
 *                       and sends it again to every share; 200
 *   GET    /address     200 with the address, or 404 before the first PUT
 *   POST   /share       body = the friend's ship id; spawns a linked child
 *                       running this program with the arguments --share and
 *                       the owner's id, whose access list is the friend and
 *                       the owner (a list replaces the rule that ships of
 *                       the account may send, so the owner lists itself);
 *                       202 with {"tag":N}
 *   GET    /share       200 with the shares as a JSON array of
 *                       {"tag":N,"friend":...,"id":...,"status":...}, where
 *                       status is spawning, sending (the address is on its
 *                       way), shared, refused, failed or ended
 *   DELETE /share/<id>  202 after asking the host to destroy that child
 *
 * Share mode (arguments --share OWNER):
 *   every HTTP request is answered 403: only messages read a share
 *   MESSAGE "set ADDRESS" from the owner keeps the address; 200
 *   MESSAGE "get address" (or "get") answers 200 with the address, or 404
 *   before the owner's first set. The host has checked that the sender is
 *   on the access list, so whoever asks is the friend or the owner.
 *   other messages are answered 400, and a set from anyone else 403
 *
 * The events that drive a share, in the owner: POST /share (SPAWN), the
 * CHILD event SPAWNED (SEND "set ADDRESS" to the child, with the share's
 * tag), the RECEIPT of that message (shared, or refused), and the CHILD
 * event DESTROYED after DELETE /share/<id> (ended).
 *
 * The state is the mode, the address and, in the owner, at most SHARE_MAX
 * shares. The snapshot is "SH1\n", u16 address length, address, u8 number
 * of shares, then (u32 tag, u8 status, u8 friend length, friend, u8 id
 * length, id) for each. The owner's id comes from BERTH_SHIP, which the host
 * sets and never changes, so a replay sees the same one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth_program.h"

#define ADDRESS_MAX 1024
#define SHARE_MAX 64

enum status { SPAWNING, SENDING, SHARED, REFUSED, FAILED, ENDED };
static const char *const status_names[] = {"spawning", "sending", "shared",
                                           "refused",  "failed",  "ended"};

struct share {
    uint32_t tag; /* of the SPAWN, and of every SEND to the child */
    uint8_t status;
    char friend_id[BP_ID_MAX + 1];
    char id[BP_ID_MAX + 1]; /* the child's, once SPAWNED */
};

struct state {
    const char *me;    /* this ship's id */
    const char *owner; /* in share mode, the owner's id; else NULL */
    char address[ADDRESS_MAX];
    size_t address_len;
    struct share shares[SHARE_MAX];
    size_t n_shares;
};

static void reply_text(struct bp_out *out, int status, const char *text)
{
    bp_reply(out, status, "text/plain", text, strlen(text));
}

/* A ship id as the host writes them: lower-case letters and digits. */
static int valid_id(const uint8_t *p, size_t n)
{
    if (n == 0 || n > BP_ID_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9'))) {
            return 0;
        }
    }
    return 1;
}

static struct share *find_share(struct state *st, uint32_t tag)
{
    for (size_t i = 0; i < st->n_shares; i++) {
        if (st->shares[i].tag == tag) {
            return &st->shares[i];
        }
    }
    return NULL;
}

/* Send an address to a share's child; the RECEIPT says when it has it.
 * Callers send before they change the state, so that a failure can reject
 * the event with the state as it was. */
static int send_address(const struct share *s, const char *address, size_t len,
                        struct bp_out *out)
{
    char msg[4 + ADDRESS_MAX];
    memcpy(msg, "set ", 4);
    memcpy(msg + 4, address, len);
    return bp_send(out, s->tag, s->id, msg, 4 + len);
}

/* Whether a share's child is there to be told of a new address. */
static int live(const struct share *s)
{
    return s->status == SENDING || s->status == SHARED;
}

/* Share mode: a MESSAGE from the owner or the friend. */
static int share_message(struct state *st, const struct bp_message *m,
                         struct bp_out *out)
{
    const char *p = (const char *)m->payload;
    size_t n = m->payload_len;
    if ((n == 3 && memcmp(p, "get", 3) == 0) ||
        (n == 11 && memcmp(p, "get address", 11) == 0)) {
        if (st->address_len == 0) {
            reply_text(out, 404, "no address yet\n");
        } else {
            bp_reply(out, 200, "text/plain", st->address, st->address_len);
        }
        return BP_UNCHANGED;
    }
    if (n >= 4 && memcmp(p, "set ", 4) == 0) {
        if (m->sender_len != strlen(st->owner) ||
            memcmp(m->sender, st->owner, m->sender_len) != 0) {
            reply_text(out, 403, "only the owner sets the address\n");
            return BP_UNCHANGED;
        }
        if (n - 4 > ADDRESS_MAX) {
            reply_text(out, 413, "the address is too long\n");
            return BP_UNCHANGED;
        }
        memcpy(st->address, p + 4, n - 4);
        st->address_len = n - 4;
        reply_text(out, 200, "ok\n");
        return BP_CHANGED;
    }
    reply_text(out, 400, "ask with 'get address'\n");
    return BP_UNCHANGED;
}

/* Owner: POST /share with the friend's id as the body. */
static int start_share(struct state *st, const struct bp_event *ev,
                       struct bp_out *out)
{
    const struct bp_http *h = ev->http;
    if (!valid_id(h->body, h->body_len)) {
        reply_text(out, 400, "the body is the friend's ship id\n");
        return BP_UNCHANGED;
    }
    if (st->n_shares == SHARE_MAX) {
        return bp_reject(out, "share keeps at most %d shares", SHARE_MAX);
    }
    struct share *s = &st->shares[st->n_shares];
    memset(s, 0, sizeof *s);
    s->tag = (uint32_t)ev->number;
    memcpy(s->friend_id, h->body, h->body_len);
    const char *args[] = {"--share", st->me};
    const char *access[] = {s->friend_id, st->me};
    struct bp_spawn sp = {.tag = s->tag,
                          .lifetime = BP_LIFETIME_LINKED,
                          .args = args,
                          .n_args = 2,
                          .access = access,
                          .n_access = 2};
    if (bp_spawn(out, &sp) != 0) {
        return bp_reject(out, "cannot spawn");
    }
    st->n_shares++;
    char text[32];
    snprintf(text, sizeof text, "{\"tag\":%lu}\n", (unsigned long)s->tag);
    bp_reply(out, 202, "application/json", text, strlen(text));
    return BP_CHANGED;
}

static void list_shares(const struct state *st, struct bp_out *out)
{
    struct bp_bytes b = {0};
    int rv = bp_bytes_append(&b, "[", 1);
    for (size_t i = 0; i < st->n_shares && rv == 0; i++) {
        const struct share *s = &st->shares[i];
        char item[256]; /* ids are letters and digits: nothing to escape */
        int n = snprintf(item, sizeof item,
                         "%s{\"tag\":%lu,\"friend\":\"%s\",\"id\":\"%s\","
                         "\"status\":\"%s\"}",
                         i > 0 ? "," : "", (unsigned long)s->tag, s->friend_id,
                         s->id, status_names[s->status]);
        rv = bp_bytes_append(&b, item, (size_t)n);
    }
    if (rv == 0 && bp_bytes_append(&b, "]\n", 2) == 0) {
        bp_reply(out, 200, "application/json", b.data, b.len);
    }
    bp_bytes_free(&b);
}

/* Owner: the HTTP routes. */
static int owner_http(struct state *st, const struct bp_event *ev,
                      struct bp_out *out)
{
    const struct bp_http *h = ev->http;
    if (bp_http_match(h, "PUT", "/address")) {
        if (h->body_len > ADDRESS_MAX) {
            reply_text(out, 413, "the address is too long\n");
            return BP_UNCHANGED;
        }
        for (size_t i = 0; i < st->n_shares; i++) {
            if (live(&st->shares[i]) &&
                send_address(&st->shares[i], (const char *)h->body, h->body_len,
                             out) != 0) {
                return bp_reject(out, "cannot send");
            }
        }
        memcpy(st->address, h->body, h->body_len);
        st->address_len = h->body_len;
        for (size_t i = 0; i < st->n_shares; i++) {
            if (live(&st->shares[i])) {
                st->shares[i].status = SENDING;
            }
        }
        reply_text(out, 200, "ok\n");
        return BP_CHANGED;
    }
    if (bp_http_match(h, "GET", "/address")) {
        if (st->address_len == 0) {
            reply_text(out, 404, "no address yet\n");
        } else {
            bp_reply(out, 200, "text/plain", st->address, st->address_len);
        }
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, "POST", "/share")) {
        return start_share(st, ev, out);
    }
    if (bp_http_match(h, "GET", "/share")) {
        list_shares(st, out);
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, "DELETE", "/share/*")) {
        const char *id = h->target + strlen("/share/");
        size_t n = h->target_len - strlen("/share/");
        char child[BP_ID_MAX + 1];
        if (!valid_id((const uint8_t *)id, n)) {
            reply_text(out, 400, "no such share\n");
            return BP_UNCHANGED;
        }
        memcpy(child, id, n);
        child[n] = '\0';
        if (bp_destroy(out, child) != 0) {
            return bp_reject(out, "cannot destroy");
        }
        reply_text(out, 202, "ending\n");
        return BP_UNCHANGED; /* the CHILD event says when it has ended */
    }
    reply_text(out, 404, "share serves /address and /share\n");
    return BP_UNCHANGED;
}

/* Owner: the host's word on a child, or on a message to one. */
static int owner_news(struct state *st, const struct bp_event *ev,
                      struct bp_out *out)
{
    uint32_t tag = ev->child ? ev->child->tag : ev->receipt->tag;
    struct share *s = find_share(st, tag);
    if (s == NULL) {
        return bp_reject(out, "no share has tag %lu", (unsigned long)tag);
    }
    if (ev->receipt != NULL) {
        /* A later PUT /address may have sent again: the last one counts. */
        if (live(s)) {
            s->status = ev->receipt->outcome == BP_RECEIPT_DELIVERED &&
                                ev->receipt->status == 200
                            ? SHARED
                            : REFUSED;
        }
        return BP_CHANGED;
    }
    const struct bp_child *c = ev->child;
    if (c->what == BP_CHILD_SPAWNED) {
        struct share next = *s;
        memcpy(next.id, c->id, c->id_len); /* at most BP_ID_MAX bytes */
        next.id[c->id_len] = '\0';
        if (send_address(&next, st->address, st->address_len, out) != 0) {
            return bp_reject(out, "cannot send");
        }
        next.status = SENDING;
        *s = next;
    } else if (c->what == BP_CHILD_FAILED) {
        s->status = FAILED;
        bp_log(out, "share %lu failed: %.*s", (unsigned long)tag,
               (int)c->detail_len, c->detail);
    } else if (c->what == BP_CHILD_DESTROYED) {
        s->status = ENDED;
    }
    return BP_CHANGED;
}

static int on_event(void *ctx, const struct bp_event *ev, struct bp_out *out)
{
    struct state *st = ctx;
    if (st->owner != NULL) { /* share mode */
        if (ev->message != NULL) {
            return share_message(st, ev->message, out);
        }
        if (ev->http != NULL) {
            reply_text(out, 403, "a share answers only messages\n");
            return BP_UNCHANGED;
        }
        return bp_reject(out, "a share takes only messages");
    }
    if (ev->http != NULL) {
        return owner_http(st, ev, out);
    }
    if (ev->child != NULL || ev->receipt != NULL) {
        return owner_news(st, ev, out);
    }
    if (ev->message != NULL) {
        reply_text(out, 403, "the owner answers no messages\n");
        return BP_UNCHANGED;
    }
    return bp_reject(out, "share does not know event kind %u", ev->kind);
}

/* Append a string of up to 255 bytes with its length in one byte. */
static int put_str8(struct bp_bytes *b, const char *s)
{
    uint8_t n = (uint8_t)strlen(s);
    return bp_bytes_append(b, &n, 1) || bp_bytes_append(b, s, n);
}

static int on_snapshot(void *ctx, struct bp_bytes *b)
{
    const struct state *st = ctx;
    uint8_t head[4 + 2];
    memcpy(head, "SH1\n", 4);
    head[4] = (uint8_t)st->address_len;
    head[5] = (uint8_t)(st->address_len >> 8);
    uint8_t n = (uint8_t)st->n_shares;
    int rv = bp_bytes_append(b, head, sizeof head) ||
             bp_bytes_append(b, st->address, st->address_len) ||
             bp_bytes_append(b, &n, 1);
    for (size_t i = 0; i < st->n_shares && rv == 0; i++) {
        const struct share *s = &st->shares[i];
        uint8_t fixed[5] = {(uint8_t)s->tag, (uint8_t)(s->tag >> 8),
                            (uint8_t)(s->tag >> 16), (uint8_t)(s->tag >> 24),
                            s->status};
        rv = bp_bytes_append(b, fixed, sizeof fixed) ||
             put_str8(b, s->friend_id) || put_str8(b, s->id);
    }
    return rv;
}

/* Read a string written by put_str8 into out (BP_ID_MAX + 1 bytes). */
static int get_str8(const uint8_t *p, size_t len, size_t *off, char *out)
{
    if (*off >= len || p[*off] > BP_ID_MAX || len - *off - 1 < p[*off]) {
        return -1;
    }
    size_t n = p[(*off)++];
    memcpy(out, p + *off, n);
    out[n] = '\0';
    *off += n;
    return 0;
}

/* Load what on_snapshot made into st; -1 for anything else. */
static int load(struct state *st, const uint8_t *p, size_t len)
{
    if (len < 6 || memcmp(p, "SH1\n", 4) != 0) {
        return -1;
    }
    size_t off = 6;
    st->address_len = (size_t)(p[4] | p[5] << 8);
    if (st->address_len > ADDRESS_MAX || len - off < st->address_len + 1) {
        return -1;
    }
    memcpy(st->address, p + off, st->address_len);
    off += st->address_len;
    st->n_shares = p[off++];
    if (st->n_shares > SHARE_MAX) {
        return -1;
    }
    for (size_t i = 0; i < st->n_shares; i++) {
        struct share *s = &st->shares[i];
        if (len - off < 5) {
            return -1;
        }
        s->tag = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 |
                 (uint32_t)p[off + 2] << 16 | (uint32_t)p[off + 3] << 24;
        s->status = p[off + 4];
        off += 5;
        if (s->status > ENDED || get_str8(p, len, &off, s->friend_id) != 0 ||
            get_str8(p, len, &off, s->id) != 0) {
            return -1;
        }
    }
    return off == len ? 0 : -1;
}

/* Boot from a snapshot, or refuse it and stay empty. */
static int on_boot(void *ctx, const uint8_t *p, size_t len)
{
    struct state *st = ctx;
    if (p != NULL && load(st, p, len) != 0) {
        st->address_len = 0;
        st->n_shares = 0;
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct state st;
    const char *me = getenv("BERTH_SHIP");
    st.me = me != NULL ? me : "";
    if (argc == 3 && strcmp(argv[1], "--share") == 0) {
        st.owner = argv[2];
    } else if (argc != 1) {
        fprintf(stderr, "usage: share [--share OWNER]\n");
        return 1;
    }
    struct bp_program p = {on_boot, on_event, on_snapshot, &st};
    return bp_run(&p);
}
