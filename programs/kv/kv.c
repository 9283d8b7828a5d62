/* kv: the sample berth program, a key/value store with an alarm, children
 * and messages.
 *
 *   PUT    /k/<key>   body = value; 201 when new, 200 when replaced
 *   GET    /k/<key>   200 with the value, or 404
 *   DELETE /k/<key>   200, or 404
 *   GET    /k         200 with the keys as a JSON array of strings, sorted
 *   PUT    /alarm     body = milliseconds, in decimal digits only; sets the
 *                     ship's alarm that long after the event's time_ns,
 *                     replacing any, and replies 200 with the alarm's time
 *                     in nanoseconds since the Unix epoch, as text
 *   GET    /alarm     200 with {"alarm_ns":N,"fired":K}: the pending alarm's
 *                     time, 0 when none, and how many alarms have fired
 *   DELETE /alarm     200 after cancelling the alarm, or 404 when none is set
 *   POST   /children  body = root, linked or ephemeral (empty: linked),
 *                     then, optionally, a space and allow=ID,ID,... (1 to 16
 *                     ship ids: the child's access list, who may send it
 *                     messages; alone, the body "allow=..." is linked);
 *                     spawns a child running kv itself, with the event's
 *                     number (its low 32 bits) as the spawn's tag, records it
 *                     as pending and replies 202 with {"tag":N}; another
 *                     body, a tag already recorded or a full table is
 *                     rejected
 *   GET    /children  200 with the children as a JSON array of
 *                     {"tag":N,"id":...,"lifetime":...,"status":...,
 *                     "detail":...}, by tag; status is pending, spawned,
 *                     destroyed or failed, detail who destroyed it or why
 *                     the spawn failed
 *   DELETE /children/<id>          202 after asking the host to destroy that
 *                                  child (the CHILD event says when it is)
 *   POST   /children/<id>/release  202 after releasing that ephemeral child
 *   POST   /send/<target>  body = the payload (at most 1 MiB); sends it as
 *                     a message to the ship target (its id or name, one
 *                     percent-decoded path segment) with the event's number
 *                     (its low 32 bits) as the tag, records it as pending and
 *                     replies 202 with {"tag":N}; a tag already recorded or a
 *                     full table is rejected
 *   GET    /sent      200 with the sent messages as a JSON array of
 *                     {"tag":N,"target":...,"outcome":...,"status":S,
 *                     "body":...}, by tag; outcome is pending, delivered,
 *                     refused or failed, status and body the receipt's (the
 *                     target's reply, or why it was refused or failed; 0 and
 *                     "" while pending), target as sent until the receipt
 *                     names the target's id
 *   GET    /sent/<tag>     200 with that one object, or 404
 *   DELETE /sent/<tag>     200 after forgetting it (a receipt that comes
 *                          later is rejected), or 404
 *   DELETE /self      202 after asking the host to destroy this ship
 *   POST   /idle      204 after telling the host the ship may sleep now
 *
 * A query string is ignored; other paths are 404 and other methods 405, with
 * a JSON body {"error":{"code":...,"message":...}}; a bad key or alarm body
 * is 400. Keys are percent-decoded path segments of 1 to 256 bytes. POKE
 * events take "put KEY VALUE" and "del KEY"; anything else is rejected. A
 * TIMER event, the alarm coming due, counts one more fired alarm and clears
 * the pending one, as its delivery cleared the host's (unless the TIMER is
 * for an older alarm that a later PUT /alarm replaced: that one stays). A
 * CHILD event updates the child its tag names (one kv never spawned is
 * rejected, which the host only logs). A MESSAGE event from another ship
 * takes "get KEY", answered 200 with the value or 404, and "put KEY VALUE",
 * answered as PUT /k/<key> is (201 when new, 200 when replaced, 507 when
 * full; the only message that changes the state); anything else is
 * answered 400. Keys are taken as they are, as in a POKE; the answer
 * becomes the sender's receipt. A RECEIPT event fills in the sent message
 * its tag names, keeping up to 4 KiB of its body; one for a tag kv has no
 * record of, or a second one for a tag, is rejected, which the host only
 * logs. Alarm writes, spawns, TIMER and CHILD
 * events add one LOG line each; key writes add none. Alarm times come from
 * the event's time_ns, never from the clock, so that a replay computes the
 * same ones.
 *
 * The state is the alarm, the fired count, the children by tag (at most
 * KV_CHILDREN_MAX, destroyed and failed ones included), the sent messages
 * by tag (at most KV_SENT_MAX, until deleted) and an array of pointers to
 * pairs sorted by key: lookups are a binary search, and a write moves at
 * most n pointers, which stays in the tens of microseconds at 1e5 keys. The
 * snapshot is "KV4\n", u64 alarm_ns, u64 fired, u32 n_children, then (u32
 * tag, u8 lifetime, u8 status, u8 id length, id, u16 detail length, detail)
 * for each child in tag order, u32 n_sent, then (u32 tag, u8 outcome (0
 * pending), u16 status, u8 target length, target, u16 body length, body)
 * for each sent message in tag order, then (u32 key length, key, u32 value
 * length, value) for each pair in key order, so equal states give equal
 * snapshots. Older snapshots still load: "KV3\n" (before messages: no
 * n_sent and no sent messages), "KV2\n" (before children: alarm_ns, fired
 * and the pairs) with no children either, and "KV1\n" (before alarms: the
 * pairs) with no alarm and none fired either. A snapshot must fit in one
 * frame, so writes that would make it too large are refused with 507, and
 * spawns and sends rejected; every child and sent message counts at its
 * largest, as its id, detail and body come later. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth_program.h"

#define KV_KEY_MAX 256

/* The most children kv keeps, and the most bytes of a child's detail it
 * keeps (the rest is cut). */
#define KV_CHILDREN_MAX 1024
#define KV_DETAIL_MAX 256

/* The most sent messages kv keeps, the most bytes of a receipt's body it
 * keeps (the rest is cut), and the most ids in a child's access list. */
#define KV_SENT_MAX 1024
#define KV_SENT_BODY_MAX 4096
#define KV_ACCESS_MAX 16

static const char kv_magic[4] = {'K', 'V', '4', '\n'};

/* The magics of the formats before messages, before children and before
 * alarms, which boot still accepts. */
static const char kv_magic_v3[4] = {'K', 'V', '3', '\n'};
static const char kv_magic_v2[4] = {'K', 'V', '2', '\n'};
static const char kv_magic_v1[4] = {'K', 'V', '1', '\n'};

/* Bytes of a snapshot before its children: the magic, alarm_ns, fired and
 * n_children, and n_sent after them. */
#define KV_HEAD_SIZE (sizeof kv_magic + 8 + 8 + 4 + 4)

/* Bytes of a child in the snapshot at the most: tag, lifetime, status, id
 * length, id, detail length, detail. */
#define KV_CHILD_SIZE_MAX (4 + 1 + 1 + 1 + BP_ID_MAX + 2 + KV_DETAIL_MAX)

/* Bytes of a sent message in the snapshot at the most: tag, outcome,
 * status, target length, target, body length, body. */
#define KV_SENT_SIZE_MAX (4 + 1 + 2 + 1 + BP_ID_MAX + 2 + KV_SENT_BODY_MAX)

/* The snapshot's bytes must fit in a SNAPSHOT frame: len, type, number. */
#define KV_SNAPSHOT_MAX (BP_MAX_FRAME - 1 - 8)

struct pair {
    uint8_t *value;
    size_t value_len;
    size_t key_len;
    char key[]; /* key_len bytes, not NUL-terminated */
};

/* What kv knows of a child; the values are the snapshot's. */
enum child_status {
    CHILD_PENDING = 0, /* spawned, no CHILD event yet */
    CHILD_SPAWNED = 1,
    CHILD_DESTROYED = 2,
    CHILD_FAILED = 3,
};

/* One child, from its spawn on; id and detail are not NUL-terminated. */
struct child {
    uint32_t tag;     /* the SPAWN's, the spawning event's number */
    uint8_t lifetime; /* enum bp_lifetime */
    uint8_t status;   /* enum child_status */
    uint8_t id_len;
    uint16_t detail_len;
    char id[BP_ID_MAX];
    char detail[KV_DETAIL_MAX];
};

/* One message kv sent, from its SEND on; outcome 0 is pending, the others
 * are enum bp_outcome's. target and body are not NUL-terminated. */
struct sent {
    uint32_t tag; /* the SEND's, the sending event's number */
    uint8_t outcome;
    uint8_t target_len;
    uint16_t status;
    uint16_t body_len;
    char target[BP_ID_MAX]; /* as sent, then the id the receipt names */
    uint8_t body[KV_SENT_BODY_MAX];
};

struct kv {
    struct pair **pairs; /* sorted by key, bytewise */
    size_t n, cap;
    struct child *children; /* sorted by tag */
    size_t n_children, children_cap;
    struct sent *sent; /* sorted by tag */
    size_t n_sent, sent_cap;
    size_t snapshot_size; /* bytes the snapshot of this state takes at most */
    uint64_t alarm_ns;    /* the pending alarm's time, 0 when none */
    uint64_t fired;       /* how many alarms have fired (TIMER events) */
};

static int cmp_key(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c != 0 ? c : (al > bl) - (al < bl);
}

/* Return the index of key, or of where it would go; *found says which. */
static size_t kv_find(const struct kv *kv, const char *key, size_t len,
                      int *found)
{
    size_t lo = 0, hi = kv->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct pair *p = kv->pairs[mid];
        int c = cmp_key(p->key, p->key_len, key, len);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = 0;
    return lo;
}

/* Bytes one pair adds to the snapshot. */
static size_t pair_size(size_t klen, size_t vlen)
{
    return 4 + klen + 4 + vlen;
}

/* Return whether setting key to vlen bytes keeps the snapshot within one
 * frame. */
static int kv_fits(const struct kv *kv, const char *key, size_t klen,
                   size_t vlen)
{
    int found;
    size_t i = kv_find(kv, key, klen, &found);
    size_t now = kv->snapshot_size;
    if (found) {
        now -= kv->pairs[i]->value_len;
    }
    /* A KV1 or KV2 snapshot at the very limit loads a few bytes over it as
     * KV3: then nothing grows, and the subtractions below must not wrap. */
    if (now > KV_SNAPSHOT_MAX) {
        return 0;
    }
    if (found) {
        return vlen <= KV_SNAPSHOT_MAX - now;
    }
    return vlen <= KV_SNAPSHOT_MAX &&
           pair_size(klen, vlen) <= KV_SNAPSHOT_MAX - now;
}

/* Set key to value; returns 1 if it was new, 0 if replaced, -1 when out of
 * memory (the state is then unchanged). */
static int kv_put(struct kv *kv, const char *key, size_t klen,
                  const uint8_t *value, size_t vlen)
{
    int found;
    size_t i = kv_find(kv, key, klen, &found);
    uint8_t *v = malloc(vlen ? vlen : 1);
    if (v == NULL) {
        return -1;
    }
    memcpy(v, value, vlen);
    if (found) {
        struct pair *p = kv->pairs[i];
        kv->snapshot_size += vlen;
        kv->snapshot_size -= p->value_len;
        free(p->value);
        p->value = v;
        p->value_len = vlen;
        return 0;
    }
    if (kv->n == kv->cap) {
        size_t cap = kv->cap ? kv->cap * 2 : 64;
        struct pair **pairs = realloc(kv->pairs, cap * sizeof *pairs);
        if (pairs == NULL) {
            free(v);
            return -1;
        }
        kv->pairs = pairs;
        kv->cap = cap;
    }
    struct pair *p = malloc(sizeof *p + klen);
    if (p == NULL) {
        free(v);
        return -1;
    }
    memcpy(p->key, key, klen);
    p->key_len = klen;
    p->value = v;
    p->value_len = vlen;
    memmove(&kv->pairs[i + 1], &kv->pairs[i], (kv->n - i) * sizeof *kv->pairs);
    kv->pairs[i] = p;
    kv->n++;
    kv->snapshot_size += pair_size(klen, vlen);
    return 1;
}

/* Remove key; returns 1 if it was there, 0 if not. */
static int kv_del(struct kv *kv, const char *key, size_t klen)
{
    int found;
    size_t i = kv_find(kv, key, klen, &found);
    if (!found) {
        return 0;
    }
    struct pair *p = kv->pairs[i];
    kv->snapshot_size -= pair_size(p->key_len, p->value_len);
    free(p->value);
    free(p);
    memmove(&kv->pairs[i], &kv->pairs[i + 1],
            (kv->n - i - 1) * sizeof *kv->pairs);
    kv->n--;
    return 1;
}

static void kv_clear(struct kv *kv)
{
    for (size_t i = 0; i < kv->n; i++) {
        free(kv->pairs[i]->value);
        free(kv->pairs[i]);
    }
    kv->n = 0;
    kv->n_children = 0;
    kv->n_sent = 0;
    kv->snapshot_size = KV_HEAD_SIZE;
    kv->alarm_ns = 0;
    kv->fired = 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Percent-decode the path segment p[0..n) into out (KV_KEY_MAX bytes).
 * Returns the key's length, 0 when the segment is empty, or -1 when its
 * escapes are bad or the key is too long. */
static long decode_key(const char *p, size_t n, char *out)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '%') {
            if (n - i < 3 || hexval(p[i + 1]) < 0 || hexval(p[i + 2]) < 0) {
                return -1;
            }
            c = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
            i += 2;
        }
        if (len == KV_KEY_MAX) {
            return -1;
        }
        out[len++] = c;
    }
    return (long)len;
}

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

/* Close the JSON array in b and reply 200 with it, or 500 with message when
 * rv says building it failed or it does not fit in a reply; frees b. */
static void reply_list(struct bp_out *out, struct bp_bytes *b, int rv,
                       const char *message)
{
    if (rv == 0) {
        rv = bp_bytes_append(b, "]\n", 2);
    }
    if (rv == 0) {
        rv = bp_reply(out, 200, "application/json", b->data, b->len);
    }
    if (rv != 0) {
        reply_error(out, 500, "too_large", message);
    }
    bp_bytes_free(b);
}

/* Reply with the keys as a JSON array of strings. */
static void list_keys(const struct kv *kv, struct bp_out *out)
{
    struct bp_bytes b = {0};
    int rv = bp_bytes_append(&b, "[", 1);
    for (size_t i = 0; i < kv->n && rv == 0; i++) {
        if (i > 0) {
            rv = bp_bytes_append(&b, ",", 1);
        }
        if (rv == 0) {
            rv = bp_json_string(&b, kv->pairs[i]->key, kv->pairs[i]->key_len);
        }
    }
    reply_list(out, &b, rv, "the key list does not fit");
}

/* Set a key from an HTTP PUT or a POKE; returns the event's result. Writes
 * are not logged: the host writes every LOG effect to its log, and a line a
 * write was a megabyte a second of log at the cluster bench's rate. */
static int do_put(struct kv *kv, const char *key, size_t klen,
                  const uint8_t *value, size_t vlen, struct bp_out *out)
{
    if (!kv_fits(kv, key, klen, vlen)) {
        reply_error(out, 507, "too_large",
                    "the store would not fit in one snapshot");
        return BP_UNCHANGED;
    }
    int r = kv_put(kv, key, klen, value, vlen);
    if (r < 0) {
        return bp_reject(out, "out of memory");
    }
    bp_reply(out, r ? 201 : 200, "text/plain", r ? "created\n" : "ok\n",
             r ? 8 : 3);
    return BP_CHANGED;
}

/* Remove a key from an HTTP DELETE or a POKE; returns the event's result,
 * with a 404 reply when the key is absent. */
static int do_del(struct kv *kv, const char *key, size_t klen,
                  struct bp_out *out)
{
    if (!kv_del(kv, key, klen)) {
        reply_error(out, 404, "not_found", "no such key");
        return BP_UNCHANGED;
    }
    bp_reply(out, 200, "text/plain", "deleted\n", 8);
    return BP_CHANGED;
}

/* Parse an alarm body, milliseconds in decimal digits, into the time that
 * long after now_ns. Returns 0 and sets *at, -1 when the body is not digits,
 * or -2 when the time would not fit in a u64 (past the year 2554). */
static int parse_alarm(const uint8_t *body, size_t len, uint64_t now_ns,
                       uint64_t *at)
{
    uint64_t ms = 0;
    if (len == 0) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (body[i] < '0' || body[i] > '9') {
            return -1;
        }
        unsigned d = (unsigned)(body[i] - '0');
        if (ms > (UINT64_MAX - d) / 10) {
            return -2;
        }
        ms = ms * 10 + d;
    }
    if (ms > (UINT64_MAX - now_ns) / 1000000) {
        return -2;
    }
    *at = now_ns + ms * 1000000;
    if (*at == 0) {
        /* 0 would cancel; 1 is just as far in the past and fires at once. */
        *at = 1;
    }
    return 0;
}

/* The /alarm routes. now_ns is the event's time_ns: the only clock a
 * deterministic program may read. The ALARM effect is added before the state
 * changes, so that when it cannot be, the event is rejected with the state
 * as it was and kv never believes in an alarm the host does not have. */
static int on_alarm(struct kv *kv, const struct bp_http *h, uint64_t now_ns,
                    struct bp_out *out)
{
    char text[64];
    int n;
    if (bp_http_match(h, "GET", "/alarm")) {
        n = snprintf(text, sizeof text, "{\"alarm_ns\":%llu,\"fired\":%llu}\n",
                     (unsigned long long)kv->alarm_ns,
                     (unsigned long long)kv->fired);
        bp_reply(out, 200, "application/json", text, (size_t)n);
        bp_reuse(out);
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, "PUT", "/alarm")) {
        uint64_t at;
        int rv = parse_alarm(h->body, h->body_len, now_ns, &at);
        if (rv != 0) {
            reply_error(out, 400, "invalid",
                        rv == -1 ? "the body is a number of milliseconds, "
                                   "in decimal digits"
                                 : "the alarm would be past the year 2554");
            return BP_UNCHANGED;
        }
        if (bp_alarm(out, at) != 0) {
            return bp_reject(out, "out of memory");
        }
        kv->alarm_ns = at;
        n = snprintf(text, sizeof text, "%llu\n", (unsigned long long)at);
        bp_reply(out, 200, "text/plain", text, (size_t)n);
        bp_log(out, "alarm at %llu", (unsigned long long)at);
        return BP_CHANGED;
    }
    if (bp_http_match(h, "DELETE", "/alarm")) {
        if (kv->alarm_ns == 0) {
            reply_error(out, 404, "not_found", "no alarm is set");
            return BP_UNCHANGED;
        }
        if (bp_alarm(out, 0) != 0) {
            return bp_reject(out, "out of memory");
        }
        kv->alarm_ns = 0;
        bp_reply(out, 200, "text/plain", "deleted\n", 8);
        bp_log(out, "alarm cancelled");
        return BP_CHANGED;
    }
    reply_error(out, 405, "method_not_allowed", "use GET, PUT or DELETE");
    return BP_UNCHANGED;
}

/* The tag of the i-th record of a table of records of size bytes, each
 * starting with its u32 tag (struct child, struct sent). */
static uint32_t tag_at(const void *table, size_t size, size_t i)
{
    uint32_t tag;
    memcpy(&tag, (const char *)table + i * size, sizeof tag);
    return tag;
}

/* Return the index of the record with this tag in a table of n sorted by
 * tag, or of where it would go; *found says which. Tags are event numbers,
 * so a new one nearly always goes last, where the scan starts. */
static size_t tag_find(const void *table, size_t n, size_t size, uint32_t tag,
                       int *found)
{
    size_t i = n;
    while (i > 0 && tag_at(table, size, i - 1) > tag) {
        i--;
    }
    *found = i > 0 && tag_at(table, size, i - 1) == tag;
    return *found ? i - 1 : i;
}

/* Make room for one more record of size bytes in *table, which holds n of
 * *cap; returns 0, or -1 when out of memory. The records do not change
 * either way. */
static int tag_reserve(void **table, size_t n, size_t *cap, size_t size)
{
    if (n < *cap) {
        return 0;
    }
    size_t c = *cap ? *cap * 2 : 16;
    void *t = realloc(*table, c * size);
    if (t == NULL) {
        return -1;
    }
    *table = t;
    *cap = c;
    return 0;
}

static size_t child_find(const struct kv *kv, uint32_t tag, int *found)
{
    return tag_find(kv->children, kv->n_children, sizeof *kv->children, tag,
                    found);
}

static int child_reserve(struct kv *kv)
{
    void *t = kv->children;
    int rv = tag_reserve(&t, kv->n_children, &kv->children_cap,
                         sizeof *kv->children);
    kv->children = t;
    return rv;
}

/* Insert a pending child at index i (from child_find), after child_reserve
 * made room, and return it. */
static struct child *child_insert(struct kv *kv, size_t i, uint32_t tag,
                                  uint8_t lifetime)
{
    struct child *c = &kv->children[i];
    memmove(c + 1, c, (kv->n_children - i) * sizeof *c);
    memset(c, 0, sizeof *c);
    c->tag = tag;
    c->lifetime = lifetime;
    c->status = CHILD_PENDING;
    kv->n_children++;
    kv->snapshot_size += KV_CHILD_SIZE_MAX;
    return c;
}

/* The word for a lifetime in POST /children and GET /children. */
static const char *lifetime_name(uint8_t lifetime)
{
    switch (lifetime) {
    case BP_LIFETIME_ROOT:
        return "root";
    case BP_LIFETIME_LINKED:
        return "linked";
    case BP_LIFETIME_EPHEMERAL:
        return "ephemeral";
    }
    return "unknown";
}

/* The word for a child's status in GET /children and the log. */
static const char *status_name(uint8_t status)
{
    static const char *const names[] = {"pending", "spawned", "destroyed",
                                        "failed"};
    return status < sizeof names / sizeof names[0] ? names[status] : "unknown";
}

/* Return the lifetime a POST /children body names (empty: linked), or 0. */
static uint8_t parse_lifetime(const uint8_t *body, size_t len)
{
    for (uint8_t l = BP_LIFETIME_ROOT; l <= BP_LIFETIME_EPHEMERAL; l++) {
        const char *name = lifetime_name(l);
        if (len == strlen(name) && memcmp(body, name, len) == 0) {
            return l;
        }
    }
    return len == 0 ? BP_LIFETIME_LINKED : 0;
}

/* The ids of a child's access list, NUL-terminated. */
struct access {
    char ids[KV_ACCESS_MAX][BP_ID_MAX + 1];
    const char *list[KV_ACCESS_MAX];
    size_t n;
};

/* Parse "allow=ID,ID..." (p[0..n)) into a: 1 to KV_ACCESS_MAX ids of 1 to
 * BP_ID_MAX bytes with no NUL; returns 0, or -1 when it is not that. */
static int parse_access(const uint8_t *p, size_t n, struct access *a)
{
    static const char allow[] = "allow=";
    size_t al = strlen(allow);
    if (n < al || memcmp(p, allow, al) != 0) {
        return -1;
    }
    p += al;
    n -= al;
    a->n = 0;
    for (;;) {
        const uint8_t *comma = memchr(p, ',', n);
        size_t len = comma ? (size_t)(comma - p) : n;
        if (len == 0 || len > BP_ID_MAX || memchr(p, '\0', len) != NULL ||
            a->n == KV_ACCESS_MAX) {
            return -1;
        }
        memcpy(a->ids[a->n], p, len);
        a->ids[a->n][len] = '\0';
        a->list[a->n] = a->ids[a->n];
        a->n++;
        if (comma == NULL) {
            return 0;
        }
        n -= len + 1;
        p = comma + 1;
    }
}

/* Parse a POST /children body, "[LIFETIME][ allow=ID,ID...]" (the access
 * list alone needs no space before it), into the lifetime it names (empty:
 * linked) and a; returns the lifetime, or 0 when the body is not that. */
static uint8_t parse_spawn_body(const uint8_t *body, size_t len,
                                struct access *a)
{
    const uint8_t *sp = memchr(body, ' ', len);
    size_t word = sp ? (size_t)(sp - body) : len;
    a->n = 0;
    if (sp == NULL && parse_access(body, len, a) == 0) {
        return BP_LIFETIME_LINKED;
    }
    if (sp != NULL && parse_access(sp + 1, len - word - 1, a) != 0) {
        return 0;
    }
    return parse_lifetime(body, word);
}

/* POST /children: spawn a child running kv itself. Room is made and the
 * SPAWN added before the state changes, so that a failure rejects the event
 * with the state as it was. */
static int do_spawn(struct kv *kv, const struct bp_event *ev,
                    struct bp_out *out)
{
    const struct bp_http *h = ev->http;
    struct access access;
    uint8_t lifetime = parse_spawn_body(h->body, h->body_len, &access);
    if (lifetime == 0) {
        return bp_reject(out, "the body is root, linked or ephemeral, then "
                              "allow=ID,... if the child has an access list");
    }
    /* The low 32 bits of the number: only 2^32 events later can a tag come
     * again, and then it is refused while the first is recorded. */
    uint32_t tag = (uint32_t)ev->number;
    int found;
    size_t i = child_find(kv, tag, &found);
    if (found) {
        return bp_reject(out, "tag %lu is already a child's",
                         (unsigned long)tag);
    }
    if (kv->n_children == KV_CHILDREN_MAX) {
        return bp_reject(out, "kv keeps at most %d children", KV_CHILDREN_MAX);
    }
    if (kv->snapshot_size > KV_SNAPSHOT_MAX - KV_CHILD_SIZE_MAX) {
        return bp_reject(out, "the store would not fit in one snapshot");
    }
    struct bp_spawn s = {.tag = tag,
                         .lifetime = lifetime,
                         .access = access.list,
                         .n_access = access.n};
    if (child_reserve(kv) != 0 || bp_spawn(out, &s) != 0) {
        return bp_reject(out, "out of memory");
    }
    child_insert(kv, i, tag, lifetime);
    char text[32];
    int n = snprintf(text, sizeof text, "{\"tag\":%lu}\n", (unsigned long)tag);
    bp_reply(out, 202, "application/json", text, (size_t)n);
    bp_log(out, "child %lu spawned (%s)", (unsigned long)tag,
           lifetime_name(lifetime));
    return BP_CHANGED;
}

/* Reply with the children as a JSON array of objects, by tag. */
static void list_children(const struct kv *kv, struct bp_out *out)
{
    struct bp_bytes b = {0};
    int rv = bp_bytes_append(&b, "[", 1);
    for (size_t i = 0; i < kv->n_children && rv == 0; i++) {
        const struct child *c = &kv->children[i];
        char head[64];
        int n = snprintf(head, sizeof head,
                         "%s{\"tag\":%lu,\"id\":", i > 0 ? "," : "",
                         (unsigned long)c->tag);
        rv = bp_bytes_append(&b, head, (size_t)n);
        if (rv == 0) {
            rv = bp_json_string(&b, c->id, c->id_len);
        }
        if (rv == 0) {
            n = snprintf(head, sizeof head,
                         ",\"lifetime\":\"%s\",\"status\":\"%s\",\"detail\":",
                         lifetime_name(c->lifetime), status_name(c->status));
            rv = bp_bytes_append(&b, head, (size_t)n);
        }
        if (rv == 0) {
            rv = bp_json_string(&b, c->detail, c->detail_len);
        }
        if (rv == 0) {
            rv = bp_bytes_append(&b, "}", 1);
        }
    }
    reply_list(out, &b, rv, "the child list does not fit");
}

/* DELETE /children/<id>, POST /children/<id>/release and DELETE /self: ask
 * the host to end a ship (id "": this one). kv's state does not change: the
 * CHILD event that follows says when the child is gone. */
static int do_end(const char *id, int release, struct bp_out *out)
{
    int rv = release ? bp_release(out, id) : bp_destroy(out, id);
    if (rv != 0) {
        return bp_reject(out, "out of memory");
    }
    bp_reply(out, 202, "text/plain", "accepted\n", 9);
    return BP_UNCHANGED;
}

/* The /children routes. */
static int on_children(struct kv *kv, const struct bp_event *ev,
                       struct bp_out *out)
{
    const struct bp_http *h = ev->http;
    if (bp_http_match(h, NULL, "/children")) {
        if (bp_http_match(h, "GET", "/children")) {
            list_children(kv, out);
            bp_reuse(out);
            return BP_UNCHANGED;
        }
        if (bp_http_match(h, "POST", "/children")) {
            return do_spawn(kv, ev, out);
        }
        reply_error(out, 405, "method_not_allowed", "use GET or POST");
        return BP_UNCHANGED;
    }
    /* /children/<id> or /children/<id>/release: the id is one path
     * segment, percent-decoded. */
    const char *seg = h->target + strlen("/children/");
    const char *q = memchr(h->target, '?', h->target_len);
    const char *end = q ? q : h->target + h->target_len;
    const char *slash = memchr(seg, '/', (size_t)(end - seg));
    size_t seg_len = (size_t)((slash ? slash : end) - seg);
    int release = 0;
    if (slash != NULL) {
        static const char tail[] = "/release";
        if ((size_t)(end - slash) != strlen(tail) ||
            memcmp(slash, tail, strlen(tail)) != 0) {
            reply_error(out, 404, "not_found",
                        "kv serves /children/<id> and /children/<id>/release");
            return BP_UNCHANGED;
        }
        release = 1;
    }
    char id[KV_KEY_MAX + 1];
    long id_len = decode_key(seg, seg_len, id);
    if (id_len <= 0 || id_len > BP_ID_MAX ||
        memchr(id, '\0', (size_t)id_len) != NULL) {
        reply_error(out, 400, "invalid",
                    "a ship id is 1 to 63 bytes, percent-encoded");
        return BP_UNCHANGED;
    }
    id[id_len] = '\0';
    if (release ? !bp_http_match(h, "POST", "/children/*")
                : !bp_http_match(h, "DELETE", "/children/*")) {
        reply_error(out, 405, "method_not_allowed",
                    release ? "use POST" : "use DELETE");
        return BP_UNCHANGED;
    }
    return do_end(id, release, out);
}

/* CHILD: the host's word on a child kv spawned, found by its tag. */
static int on_child(struct kv *kv, const struct bp_event *ev,
                    struct bp_out *out)
{
    const struct bp_child *ch = ev->child;
    uint8_t status;
    if (ch->what == BP_CHILD_SPAWNED) {
        status = CHILD_SPAWNED;
    } else if (ch->what == BP_CHILD_DESTROYED) {
        status = CHILD_DESTROYED;
    } else if (ch->what == BP_CHILD_FAILED) {
        status = CHILD_FAILED;
    } else {
        return bp_reject(out, "kv does not know CHILD what %u", ch->what);
    }
    int found;
    size_t i = child_find(kv, ch->tag, &found);
    if (!found) {
        return bp_reject(out, "kv spawned no child with tag %lu",
                         (unsigned long)ch->tag);
    }
    struct child *c = &kv->children[i];
    c->status = status;
    /* A DESTROYED names the child again; a FAILED has no id to keep. */
    if (ch->id_len > 0) {
        memcpy(c->id, ch->id, ch->id_len);
        c->id_len = (uint8_t)ch->id_len;
    }
    c->detail_len = (uint16_t)(ch->detail_len < KV_DETAIL_MAX ? ch->detail_len
                                                              : KV_DETAIL_MAX);
    memcpy(c->detail, ch->detail, c->detail_len);
    bp_log(out, "child %lu %s", (unsigned long)c->tag, status_name(status));
    return BP_CHANGED;
}

static size_t sent_find(const struct kv *kv, uint32_t tag, int *found)
{
    return tag_find(kv->sent, kv->n_sent, sizeof *kv->sent, tag, found);
}

/* The word for a sent message's outcome in GET /sent. */
static const char *outcome_name(uint8_t outcome)
{
    static const char *const names[] = {"pending", "delivered", "refused",
                                        "failed"};
    return outcome < sizeof names / sizeof names[0] ? names[outcome]
                                                    : "unknown";
}

/* Append one sent message to b as a JSON object. */
static int sent_json(struct bp_bytes *b, const struct sent *m)
{
    char head[64];
    int n = snprintf(head, sizeof head,
                     "{\"tag\":%lu,\"target\":", (unsigned long)m->tag);
    int rv = bp_bytes_append(b, head, (size_t)n);
    if (rv == 0) {
        rv = bp_json_string(b, m->target, m->target_len);
    }
    if (rv == 0) {
        n = snprintf(head, sizeof head,
                     ",\"outcome\":\"%s\",\"status\":%u,\"body\":",
                     outcome_name(m->outcome), (unsigned)m->status);
        rv = bp_bytes_append(b, head, (size_t)n);
    }
    if (rv == 0) {
        rv = bp_json_string(b, (const char *)m->body, m->body_len);
    }
    return rv == 0 ? bp_bytes_append(b, "}", 1) : rv;
}

/* Reply with the sent messages as a JSON array of objects, by tag. */
static void list_sent(const struct kv *kv, struct bp_out *out)
{
    struct bp_bytes b = {0};
    int rv = bp_bytes_append(&b, "[", 1);
    for (size_t i = 0; i < kv->n_sent && rv == 0; i++) {
        if (i > 0) {
            rv = bp_bytes_append(&b, ",", 1);
        }
        if (rv == 0) {
            rv = sent_json(&b, &kv->sent[i]);
        }
    }
    reply_list(out, &b, rv, "the sent list does not fit");
}

/* POST /send/<target>: send the body to the ship target (one path
 * segment, percent-decoded) with the event's number as the tag, and record
 * it as pending. As for a spawn, every check comes before the state
 * changes. */
static int do_send(struct kv *kv, const struct bp_event *ev, const char *seg,
                   size_t seg_len, struct bp_out *out)
{
    const struct bp_http *h = ev->http;
    char target[KV_KEY_MAX + 1];
    long tl = decode_key(seg, seg_len, target);
    if (tl <= 0 || tl > BP_ID_MAX || memchr(target, '\0', (size_t)tl)) {
        reply_error(out, 400, "invalid",
                    "a target is a ship's id or name of 1 to 63 bytes");
        return BP_UNCHANGED;
    }
    target[tl] = '\0';
    if (h->body_len > BP_MESSAGE_MAX) {
        reply_error(out, 413, "too_large", "a message is at most 1 MiB");
        return BP_UNCHANGED;
    }
    uint32_t tag = (uint32_t)ev->number; /* as for a spawn's tag */
    int found;
    size_t i = sent_find(kv, tag, &found);
    if (found) {
        return bp_reject(out, "tag %lu is already a message's",
                         (unsigned long)tag);
    }
    if (kv->n_sent == KV_SENT_MAX) {
        return bp_reject(out, "kv keeps at most %d sent messages", KV_SENT_MAX);
    }
    if (kv->snapshot_size > KV_SNAPSHOT_MAX - KV_SENT_SIZE_MAX) {
        return bp_reject(out, "the store would not fit in one snapshot");
    }
    void *t = kv->sent;
    int rv = tag_reserve(&t, kv->n_sent, &kv->sent_cap, sizeof *kv->sent);
    kv->sent = t;
    if (rv != 0 || bp_send(out, tag, target, h->body, h->body_len) != 0) {
        return bp_reject(out, "out of memory");
    }
    struct sent *m = &kv->sent[i];
    memmove(m + 1, m, (kv->n_sent - i) * sizeof *m);
    memset(m, 0, offsetof(struct sent, body));
    m->tag = tag;
    m->target_len = (uint8_t)tl;
    memcpy(m->target, target, (size_t)tl);
    kv->n_sent++;
    kv->snapshot_size += KV_SENT_SIZE_MAX;
    char text[32];
    int n = snprintf(text, sizeof text, "{\"tag\":%lu}\n", (unsigned long)tag);
    bp_reply(out, 202, "application/json", text, (size_t)n);
    return BP_CHANGED;
}

/* The /send/<target>, /sent and /sent/<tag> routes. */
static int on_sent(struct kv *kv, const struct bp_event *ev, struct bp_out *out)
{
    const struct bp_http *h = ev->http;
    const char *q = memchr(h->target, '?', h->target_len);
    const char *end = q ? q : h->target + h->target_len;
    if (bp_http_match(h, NULL, "/send/*")) {
        const char *seg = h->target + strlen("/send/");
        if (!bp_http_match(h, "POST", "/send/*")) {
            reply_error(out, 405, "method_not_allowed", "use POST");
            return BP_UNCHANGED;
        }
        return do_send(kv, ev, seg, (size_t)(end - seg), out);
    }
    if (bp_http_match(h, NULL, "/sent")) {
        if (!bp_http_match(h, "GET", "/sent")) {
            reply_error(out, 405, "method_not_allowed", "/sent takes GET");
            return BP_UNCHANGED;
        }
        list_sent(kv, out);
        bp_reuse(out);
        return BP_UNCHANGED;
    }
    /* /sent/<tag>: decimal digits. */
    const char *p = h->target + strlen("/sent/");
    unsigned long long tag = 0;
    int digits = 0;
    for (; p < end && *p >= '0' && *p <= '9' && tag <= UINT32_MAX; p++) {
        tag = tag * 10 + (unsigned)(*p - '0');
        digits++;
    }
    if (digits == 0 || p != end || tag > UINT32_MAX) {
        reply_error(out, 404, "not_found", "kv serves /sent/<tag>");
        return BP_UNCHANGED;
    }
    int found;
    size_t i = sent_find(kv, (uint32_t)tag, &found);
    if (bp_http_match(h, "GET", "/sent/*")) {
        struct bp_bytes b = {0};
        if (!found) {
            reply_error(out, 404, "not_found", "no message with that tag");
        } else if (sent_json(&b, &kv->sent[i]) != 0 ||
                   bp_bytes_append(&b, "\n", 1) != 0 ||
                   bp_reply(out, 200, "application/json", b.data, b.len) != 0) {
            reply_error(out, 500, "too_large", "the message does not fit");
        }
        bp_bytes_free(&b);
        bp_reuse(out);
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, "DELETE", "/sent/*")) {
        if (!found) {
            reply_error(out, 404, "not_found", "no message with that tag");
            return BP_UNCHANGED;
        }
        memmove(&kv->sent[i], &kv->sent[i + 1],
                (kv->n_sent - i - 1) * sizeof *kv->sent);
        kv->n_sent--;
        kv->snapshot_size -= KV_SENT_SIZE_MAX;
        bp_reply(out, 200, "text/plain", "deleted\n", 8);
        return BP_CHANGED;
    }
    reply_error(out, 405, "method_not_allowed", "use GET or DELETE");
    return BP_UNCHANGED;
}

/* RECEIPT: what became of a message kv sent, found by its tag. A second
 * receipt for a tag is rejected, which the host only logs: it promises
 * one. */
static int on_receipt(struct kv *kv, const struct bp_event *ev,
                      struct bp_out *out)
{
    const struct bp_receipt *r = ev->receipt;
    if (r->outcome < BP_RECEIPT_DELIVERED || r->outcome > BP_RECEIPT_FAILED) {
        return bp_reject(out, "kv does not know receipt outcome %u",
                         r->outcome);
    }
    int found;
    size_t i = sent_find(kv, r->tag, &found);
    if (!found) {
        return bp_reject(out, "kv sent no message with tag %lu",
                         (unsigned long)r->tag);
    }
    struct sent *m = &kv->sent[i];
    if (m->outcome != 0) {
        return bp_reject(out, "tag %lu already has its receipt",
                         (unsigned long)r->tag);
    }
    m->outcome = r->outcome;
    m->status = r->status;
    if (r->target_len > 0) {
        memcpy(m->target, r->target, r->target_len);
        m->target_len = (uint8_t)r->target_len;
    }
    m->body_len = (uint16_t)(r->body_len < KV_SENT_BODY_MAX ? r->body_len
                                                            : KV_SENT_BODY_MAX);
    memcpy(m->body, r->body, m->body_len);
    return BP_CHANGED;
}

/* Reply with the value of key, or 404. */
static void reply_value(const struct kv *kv, const char *key, size_t klen,
                        struct bp_out *out)
{
    int found;
    size_t i = kv_find(kv, key, klen, &found);
    if (!found) {
        reply_error(out, 404, "not_found", "no such key");
    } else if (bp_reply(out, 200, "application/octet-stream",
                        kv->pairs[i]->value, kv->pairs[i]->value_len) != 0) {
        reply_error(out, 500, "too_large", "the value does not fit");
    }
}

/* Split "put KEY VALUE" (p[0..n)) into the key and the value, the rest
 * after one space, possibly empty; returns 0, or -1 when it is not that
 * with a key of 1 to KV_KEY_MAX bytes. */
static int parse_put(const char *p, size_t n, const char **k, size_t *klen,
                     const uint8_t **v, size_t *vlen)
{
    if (n <= 4 || memcmp(p, "put ", 4) != 0) {
        return -1;
    }
    *k = p + 4;
    const char *sp = memchr(*k, ' ', n - 4);
    if (sp == NULL || sp == *k || (size_t)(sp - *k) > KV_KEY_MAX) {
        return -1;
    }
    *klen = (size_t)(sp - *k);
    *v = (const uint8_t *)sp + 1;
    *vlen = n - (size_t)(sp + 1 - p);
    return 0;
}

/* MESSAGE: "get KEY" or "put KEY VALUE" from another ship, answered as GET
 * and PUT /k/<key> are; the host makes the reply the sender's receipt. */
static int on_message(struct kv *kv, const struct bp_event *ev,
                      struct bp_out *out)
{
    const char *p = (const char *)ev->message->payload;
    size_t n = ev->message->payload_len;
    const char *k;
    size_t klen, vlen;
    const uint8_t *v;
    if (n > 4 && memcmp(p, "get ", 4) == 0 && n - 4 <= KV_KEY_MAX) {
        reply_value(kv, p + 4, n - 4, out);
        return BP_UNCHANGED;
    }
    if (parse_put(p, n, &k, &klen, &v, &vlen) == 0) {
        return do_put(kv, k, klen, v, vlen, out);
    }
    reply_error(out, 400, "invalid",
                "a message is 'get KEY' or 'put KEY VALUE'");
    return BP_UNCHANGED;
}

static int on_http(struct kv *kv, const struct bp_event *ev, struct bp_out *out)
{
    const struct bp_http *h = ev->http;
    if (bp_http_match(h, NULL, "/alarm")) {
        return on_alarm(kv, h, ev->time_ns, out);
    }
    if (bp_http_match(h, NULL, "/children") ||
        bp_http_match(h, NULL, "/children/*")) {
        return on_children(kv, ev, out);
    }
    if (bp_http_match(h, NULL, "/send/*") || bp_http_match(h, NULL, "/sent") ||
        bp_http_match(h, NULL, "/sent/*")) {
        return on_sent(kv, ev, out);
    }
    if (bp_http_match(h, NULL, "/self")) {
        if (!bp_http_match(h, "DELETE", "/self")) {
            reply_error(out, 405, "method_not_allowed", "/self takes DELETE");
            return BP_UNCHANGED;
        }
        return do_end(NULL, 0, out);
    }
    if (bp_http_match(h, NULL, "/idle")) {
        if (!bp_http_match(h, "POST", "/idle")) {
            reply_error(out, 405, "method_not_allowed", "/idle takes POST");
            return BP_UNCHANGED;
        }
        if (bp_idle(out) != 0) {
            return bp_reject(out, "out of memory");
        }
        bp_reply(out, 204, NULL, NULL, 0);
        return BP_UNCHANGED;
    }
    const char *q = memchr(h->target, '?', h->target_len);
    size_t path_len = q ? (size_t)(q - h->target) : h->target_len;
    if (bp_http_match(h, NULL, "/k") || bp_http_match(h, NULL, "/k/")) {
        if (!bp_http_match(h, "GET", "/k") && !bp_http_match(h, "GET", "/k/")) {
            reply_error(out, 405, "method_not_allowed", "/k takes GET");
            return BP_UNCHANGED;
        }
        list_keys(kv, out);
        bp_reuse(out);
        return BP_UNCHANGED;
    }
    if (!bp_http_match(h, NULL, "/k/*") ||
        memchr(h->target + 3, '/', path_len - 3) != NULL) {
        reply_error(out, 404, "not_found",
                    "kv serves /k, /k/<key>, /alarm, /children, /send, "
                    "/sent, /self and /idle");
        return BP_UNCHANGED;
    }
    char key[KV_KEY_MAX];
    long klen = decode_key(h->target + 3, path_len - 3, key);
    if (klen <= 0) {
        reply_error(out, 400, "invalid",
                    "a key is 1 to 256 bytes, percent-encoded");
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, "GET", "/k/*")) {
        reply_value(kv, key, (size_t)klen, out);
        bp_reuse(out); /* a read: the same key gives the same reply */
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, "PUT", "/k/*")) {
        return do_put(kv, key, (size_t)klen, h->body, h->body_len, out);
    }
    if (bp_http_match(h, "DELETE", "/k/*")) {
        return do_del(kv, key, (size_t)klen, out);
    }
    reply_error(out, 405, "method_not_allowed", "use GET, PUT or DELETE");
    return BP_UNCHANGED;
}

/* POKE: "put KEY VALUE" (VALUE is the rest, possibly empty) or "del KEY";
 * keys are taken as they are, without percent-decoding. */
static int on_poke(struct kv *kv, const struct bp_event *ev, struct bp_out *out)
{
    const char *p = (const char *)ev->payload;
    size_t n = ev->payload_len;
    const char *k;
    size_t klen, vlen;
    const uint8_t *v;
    if (n > 4 && memcmp(p, "put ", 4) == 0) {
        if (parse_put(p, n, &k, &klen, &v, &vlen) != 0) {
            return bp_reject(out, "usage: put KEY VALUE (KEY of 1 to %d bytes)",
                             KV_KEY_MAX);
        }
        int r = do_put(kv, k, klen, v, vlen, out);
        return r == BP_UNCHANGED ? bp_reject(out, "the store is full") : r;
    }
    if (n > 4 && memcmp(p, "del ", 4) == 0 && n - 4 <= KV_KEY_MAX) {
        if (do_del(kv, p + 4, n - 4, out) != BP_CHANGED) {
            return bp_reject(out, "no such key");
        }
        return BP_CHANGED;
    }
    return bp_reject(out, "unknown command; use 'put KEY VALUE' or 'del KEY'");
}

/* TIMER: an alarm came due, and its delivery cleared the host's copy, so kv
 * clears its own. A TIMER for another time is one that was already on its
 * way when a later PUT /alarm replaced its alarm: the host keeps the later
 * one, and so does kv. The count changes either way. */
static int on_timer(struct kv *kv, const struct bp_event *ev,
                    struct bp_out *out)
{
    if (ev->alarm_ns == kv->alarm_ns) {
        kv->alarm_ns = 0;
    }
    kv->fired++;
    bp_log(out, "alarm fired");
    return BP_CHANGED;
}

static int on_event(void *ctx, const struct bp_event *ev, struct bp_out *out)
{
    struct kv *kv = ctx;
    if (ev->kind == BP_EVENT_HTTP) {
        return on_http(kv, ev, out);
    }
    if (ev->kind == BP_EVENT_POKE) {
        return on_poke(kv, ev, out);
    }
    if (ev->kind == BP_EVENT_TIMER) {
        return on_timer(kv, ev, out);
    }
    if (ev->kind == BP_EVENT_CHILD) {
        return on_child(kv, ev, out);
    }
    if (ev->kind == BP_EVENT_MESSAGE) {
        return on_message(kv, ev, out);
    }
    if (ev->kind == BP_EVENT_RECEIPT) {
        return on_receipt(kv, ev, out);
    }
    return bp_reject(out, "kv does not know event kind %u", ev->kind);
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

/* Load n_children children of a KV3 snapshot from snap[*off..len) into the
 * empty table, moving *off past them; returns 0, or -1 when one is cut
 * short, holds a value kv never writes or is out of tag order. */
static int load_children(struct kv *kv, const uint8_t *snap, size_t len,
                         size_t *off, uint32_t n_children)
{
    if (n_children > KV_CHILDREN_MAX) {
        return -1;
    }
    for (uint32_t k = 0; k < n_children; k++) {
        const uint8_t *p = snap + *off;
        if (len - *off < 7) {
            return -1;
        }
        uint32_t tag = get32(p);
        uint8_t lifetime = p[4], status = p[5], id_len = p[6];
        if (lifetime < BP_LIFETIME_ROOT || lifetime > BP_LIFETIME_EPHEMERAL ||
            status > CHILD_FAILED || id_len > BP_ID_MAX ||
            len - *off - 7 < (size_t)id_len + 2) {
            return -1;
        }
        uint16_t detail_len = (uint16_t)(p[7 + id_len] | p[8 + id_len] << 8);
        if (detail_len > KV_DETAIL_MAX ||
            len - *off - 9 - id_len < detail_len) {
            return -1;
        }
        int found;
        size_t i = child_find(kv, tag, &found);
        if (i != kv->n_children || child_reserve(kv) != 0) {
            return -1; /* not after the last tag, or out of memory */
        }
        struct child *c = child_insert(kv, i, tag, lifetime);
        c->status = status;
        c->id_len = id_len;
        memcpy(c->id, p + 7, id_len);
        c->detail_len = detail_len;
        memcpy(c->detail, p + 9 + id_len, detail_len);
        *off += 9 + (size_t)id_len + detail_len;
    }
    return 0;
}

/* Load n_sent sent messages of a KV4 snapshot from snap[*off..len) into
 * the empty table, moving *off past them; returns 0, or -1 when one is cut
 * short, holds a value kv never writes or is out of tag order. */
static int load_sent(struct kv *kv, const uint8_t *snap, size_t len,
                     size_t *off, uint32_t n_sent)
{
    if (n_sent > KV_SENT_MAX) {
        return -1;
    }
    for (uint32_t k = 0; k < n_sent; k++) {
        const uint8_t *p = snap + *off;
        if (len - *off < 8) {
            return -1;
        }
        uint32_t tag = get32(p);
        uint8_t outcome = p[4], target_len = p[7];
        uint16_t status = (uint16_t)(p[5] | p[6] << 8);
        if (outcome > BP_RECEIPT_FAILED || target_len > BP_ID_MAX ||
            len - *off - 8 < (size_t)target_len + 2) {
            return -1;
        }
        uint16_t body_len =
            (uint16_t)(p[8 + target_len] | p[9 + target_len] << 8);
        if (body_len > KV_SENT_BODY_MAX ||
            len - *off - 10 - target_len < body_len) {
            return -1;
        }
        if (kv->n_sent > 0 && kv->sent[kv->n_sent - 1].tag >= tag) {
            return -1;
        }
        void *t = kv->sent;
        int rv = tag_reserve(&t, kv->n_sent, &kv->sent_cap, sizeof *kv->sent);
        kv->sent = t;
        if (rv != 0) {
            return -1;
        }
        struct sent *m = &kv->sent[kv->n_sent++];
        m->tag = tag;
        m->outcome = outcome;
        m->status = status;
        m->target_len = target_len;
        memcpy(m->target, p + 8, target_len);
        m->body_len = body_len;
        memcpy(m->body, p + 10 + target_len, body_len);
        kv->snapshot_size += KV_SENT_SIZE_MAX;
        *off += 10 + (size_t)target_len + body_len;
    }
    return 0;
}

/* Load a snapshot; refuse (and stay empty) unless it is exactly what
 * on_snapshot makes, or what it made before messages, before children or
 * before alarms: a magic we know, the alarm fields whole after KV2's, KV3's
 * and KV4's, the children whole and in increasing tag order after KV3's and
 * KV4's, then KV4's sent messages the same, keys of 1 to 256 bytes in
 * strictly increasing order, lengths that add up to the end. */
static int on_boot(void *ctx, const uint8_t *snap, size_t len)
{
    struct kv *kv = ctx;
    if (snap == NULL) {
        return 0;
    }
    int version;
    if (len >= sizeof kv_magic &&
        memcmp(snap, kv_magic, sizeof kv_magic) == 0) {
        version = 4;
    } else if (len >= sizeof kv_magic_v3 &&
               memcmp(snap, kv_magic_v3, sizeof kv_magic_v3) == 0) {
        version = 3; /* written before kv had messages */
    } else if (len >= sizeof kv_magic_v2 &&
               memcmp(snap, kv_magic_v2, sizeof kv_magic_v2) == 0) {
        version = 2; /* written before kv had children */
    } else if (len >= sizeof kv_magic_v1 &&
               memcmp(snap, kv_magic_v1, sizeof kv_magic_v1) == 0) {
        version = 1; /* written before kv had alarms, so it never set one */
    } else {
        fprintf(stderr, "kv: refusing a snapshot that is not KV1 to KV4\n");
        return -1;
    }
    size_t off = sizeof kv_magic;
    if (version >= 2) {
        if (len - off < 16) {
            goto err;
        }
        kv->alarm_ns = get64(snap + off);
        kv->fired = get64(snap + off + 8);
        off += 16;
    }
    if (version >= 3) {
        if (len - off < 4) {
            goto err;
        }
        uint32_t n_children = get32(snap + off);
        off += 4;
        if (load_children(kv, snap, len, &off, n_children) != 0) {
            goto err;
        }
    }
    if (version >= 4) {
        if (len - off < 4) {
            goto err;
        }
        uint32_t n_sent = get32(snap + off);
        off += 4;
        if (load_sent(kv, snap, len, &off, n_sent) != 0) {
            goto err;
        }
    }
    while (off < len) {
        if (len - off < 4) {
            goto err;
        }
        uint32_t kl = get32(snap + off);
        off += 4;
        if (kl == 0 || kl > KV_KEY_MAX || len - off < (size_t)kl + 4) {
            goto err;
        }
        const char *k = (const char *)snap + off;
        off += kl;
        uint32_t vl = get32(snap + off);
        off += 4;
        if (len - off < vl) {
            goto err;
        }
        /* Sorted input makes every insert an append. */
        if (kv->n > 0) {
            const struct pair *last = kv->pairs[kv->n - 1];
            if (cmp_key(last->key, last->key_len, k, kl) >= 0) {
                goto err;
            }
        }
        if (kv_put(kv, k, kl, snap + off, vl) < 0) {
            goto err;
        }
        off += vl;
    }
    return 0;
err:
    fprintf(stderr, "kv: refusing a damaged or unsorted snapshot\n");
    kv_clear(kv);
    return -1;
}

/* Append a child or a sent message to a snapshot: its fixed fields (the
 * last one the length of id), id, u16 the length of text, text. */
static int put_record(struct bp_bytes *out, const uint8_t *fixed, size_t n,
                      const char *id, const void *text, uint16_t text_len)
{
    uint8_t tl[2] = {(uint8_t)text_len, (uint8_t)(text_len >> 8)};
    if (bp_bytes_append(out, fixed, n) != 0 ||
        bp_bytes_append(out, id, fixed[n - 1]) != 0 ||
        bp_bytes_append(out, tl, sizeof tl) != 0) {
        return -1;
    }
    return bp_bytes_append(out, text, text_len);
}

static int on_snapshot(void *ctx, struct bp_bytes *out)
{
    struct kv *kv = ctx;
    uint8_t head[20];
    put64(head, kv->alarm_ns);
    put64(head + 8, kv->fired);
    put32(head + 16, (uint32_t)kv->n_children);
    if (bp_bytes_append(out, kv_magic, sizeof kv_magic) != 0 ||
        bp_bytes_append(out, head, sizeof head) != 0) {
        return -1;
    }
    for (size_t i = 0; i < kv->n_children; i++) {
        const struct child *c = &kv->children[i];
        uint8_t fixed[7];
        put32(fixed, c->tag);
        fixed[4] = c->lifetime;
        fixed[5] = c->status;
        fixed[6] = c->id_len;
        if (put_record(out, fixed, sizeof fixed, c->id, c->detail,
                       c->detail_len) != 0) {
            return -1;
        }
    }
    put32(head, (uint32_t)kv->n_sent);
    if (bp_bytes_append(out, head, 4) != 0) {
        return -1;
    }
    for (size_t i = 0; i < kv->n_sent; i++) {
        const struct sent *m = &kv->sent[i];
        uint8_t fixed[8];
        put32(fixed, m->tag);
        fixed[4] = m->outcome;
        fixed[5] = (uint8_t)m->status;
        fixed[6] = (uint8_t)(m->status >> 8);
        fixed[7] = m->target_len;
        if (put_record(out, fixed, sizeof fixed, m->target, m->body,
                       m->body_len) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < kv->n; i++) {
        const struct pair *p = kv->pairs[i];
        uint8_t n[4];
        put32(n, (uint32_t)p->key_len);
        if (bp_bytes_append(out, n, 4) != 0 ||
            bp_bytes_append(out, p->key, p->key_len) != 0) {
            return -1;
        }
        put32(n, (uint32_t)p->value_len);
        if (bp_bytes_append(out, n, 4) != 0 ||
            bp_bytes_append(out, p->value, p->value_len) != 0) {
            return -1;
        }
    }
    return 0;
}

int main(void)
{
    struct kv kv = {.snapshot_size = KV_HEAD_SIZE};
    struct bp_program p = {
        .boot = on_boot,
        .event = on_event,
        .snapshot = on_snapshot,
        .ctx = &kv,
    };
    int status = bp_run(&p);
    kv_clear(&kv);
    free(kv.pairs);
    free(kv.children);
    free(kv.sent);
    return status;
}
