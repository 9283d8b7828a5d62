/* kv: the sample berth program, a key/value store with an alarm.
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
 *
 * A query string is ignored; other paths are 404 and other methods 405, with
 * a JSON body {"error":{"code":...,"message":...}}; a bad key or alarm body
 * is 400. Keys are percent-decoded path segments of 1 to 256 bytes. POKE
 * events take "put KEY VALUE" and "del KEY"; anything else is rejected. A
 * TIMER event, the alarm coming due, counts one more fired alarm and clears
 * the pending one, as its delivery cleared the host's (unless the TIMER is
 * for an older alarm that a later PUT /alarm replaced: that one stays).
 * Every write, a TIMER included, adds one LOG line. Alarm times come from
 * the event's time_ns, never from the clock, so that a replay computes the
 * same ones.
 *
 * The state is the alarm, the fired count and an array of pointers to pairs
 * sorted by key: lookups are a binary search, and a write moves at most n
 * pointers, which stays in the tens of microseconds at 1e5 keys. The
 * snapshot is "KV2\n", u64 alarm_ns, u64 fired, then (u32 key length, key,
 * u32 value length, value) for each pair in key order, so equal states give
 * equal snapshots. Snapshots of the version before alarms, "KV1\n" and the
 * pairs, still load, with no alarm and none fired. A snapshot must fit in
 * one frame, so writes that would make it too large are refused with 507. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth_program.h"

#define KV_KEY_MAX 256

static const char kv_magic[4] = {'K', 'V', '2', '\n'};

/* The magic of the format before alarms, which boot still accepts. */
static const char kv_magic_v1[4] = {'K', 'V', '1', '\n'};

/* Bytes of a snapshot before its pairs: the magic, alarm_ns and fired. */
#define KV_HEAD_SIZE (sizeof kv_magic + 8 + 8)

/* The snapshot's bytes must fit in a SNAPSHOT frame: len, type, number. */
#define KV_SNAPSHOT_MAX (BP_MAX_FRAME - 1 - 8)

struct pair {
    uint8_t *value;
    size_t value_len;
    size_t key_len;
    char key[]; /* key_len bytes, not NUL-terminated */
};

struct kv {
    struct pair **pairs; /* sorted by key, bytewise */
    size_t n, cap;
    size_t snapshot_size; /* bytes the snapshot of this state takes */
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
    /* A KV1 snapshot at the very limit loads 16 bytes over it as KV2: then
     * nothing grows, and the subtractions below must not wrap. */
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

/* Return the length of the valid UTF-8 sequence at p[0..n), or 0 if the
 * bytes there are not one (overlong forms and surrogates included). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    unsigned min;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    unsigned cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return len;
}

/* Append s[0..n) to b as a JSON string. Valid UTF-8 passes through; a byte
 * that is not part of any is written as the code point of the same value,
 * so the output is always valid JSON even for binary keys. */
static int json_string(struct bp_bytes *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    int rv = bp_bytes_append(b, "\"", 1);
    for (size_t i = 0; i < n && rv == 0;) {
        char esc[8];
        size_t u = utf8_len(p + i, n - i);
        if (p[i] == '"' || p[i] == '\\') {
            esc[0] = '\\';
            esc[1] = (char)p[i];
            rv = bp_bytes_append(b, esc, 2);
            i++;
        } else if (u == 0 || p[i] < 0x20 || p[i] == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", p[i]);
            rv = bp_bytes_append(b, esc, 6);
            i++;
        } else {
            rv = bp_bytes_append(b, p + i, u);
            i += u;
        }
    }
    return rv == 0 ? bp_bytes_append(b, "\"", 1) : rv;
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
            rv = json_string(&b, kv->pairs[i]->key, kv->pairs[i]->key_len);
        }
    }
    if (rv == 0) {
        rv = bp_bytes_append(&b, "]\n", 2);
    }
    if (rv == 0) {
        rv = bp_reply(out, 200, "application/json", b.data, b.len);
    }
    if (rv != 0) {
        reply_error(out, 500, "too_large", "the key list does not fit");
    }
    bp_bytes_free(&b);
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

static int on_http(struct kv *kv, const struct bp_event *ev, struct bp_out *out)
{
    const struct bp_http *h = ev->http;
    if (bp_http_match(h, NULL, "/alarm")) {
        return on_alarm(kv, h, ev->time_ns, out);
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
        reply_error(out, 404, "not_found", "kv serves /k, /k/<key> and /alarm");
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
        int found;
        size_t i = kv_find(kv, key, (size_t)klen, &found);
        if (!found) {
            reply_error(out, 404, "not_found", "no such key");
        } else if (bp_reply(out, 200, "application/octet-stream",
                            kv->pairs[i]->value,
                            kv->pairs[i]->value_len) != 0) {
            reply_error(out, 500, "too_large", "the value does not fit");
        }
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
    if (n > 4 && memcmp(p, "put ", 4) == 0) {
        const char *k = p + 4;
        const char *sp = memchr(k, ' ', n - 4);
        if (sp == NULL || sp == k || (size_t)(sp - k) > KV_KEY_MAX) {
            return bp_reject(out, "usage: put KEY VALUE (KEY of 1 to %d bytes)",
                             KV_KEY_MAX);
        }
        const char *v = sp + 1;
        int r = do_put(kv, k, (size_t)(sp - k), (const uint8_t *)v,
                       n - (size_t)(v - p), out);
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

/* Load a snapshot; refuse (and stay empty) unless it is exactly what
 * on_snapshot makes, or what it made before alarms: a magic we know, the
 * alarm fields whole after KV2's, keys of 1 to 256 bytes in strictly
 * increasing order, lengths that add up to the end. */
static int on_boot(void *ctx, const uint8_t *snap, size_t len)
{
    struct kv *kv = ctx;
    if (snap == NULL) {
        return 0;
    }
    size_t off;
    if (len >= sizeof kv_magic &&
        memcmp(snap, kv_magic, sizeof kv_magic) == 0) {
        if (len < KV_HEAD_SIZE) {
            goto err;
        }
        kv->alarm_ns = get64(snap + sizeof kv_magic);
        kv->fired = get64(snap + sizeof kv_magic + 8);
        off = KV_HEAD_SIZE;
    } else if (len >= sizeof kv_magic_v1 &&
               memcmp(snap, kv_magic_v1, sizeof kv_magic_v1) == 0) {
        /* Written before kv had alarms, so it never set one. */
        off = sizeof kv_magic_v1;
    } else {
        fprintf(stderr, "kv: refusing a snapshot that is not KV1 or KV2\n");
        return -1;
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

static int on_snapshot(void *ctx, struct bp_bytes *out)
{
    struct kv *kv = ctx;
    uint8_t alarm[16];
    put64(alarm, kv->alarm_ns);
    put64(alarm + 8, kv->fired);
    if (bp_bytes_append(out, kv_magic, sizeof kv_magic) != 0 ||
        bp_bytes_append(out, alarm, sizeof alarm) != 0) {
        return -1;
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
    return status;
}
