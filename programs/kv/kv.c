/* kv: the sample berth program, a key/value store.
 *
 *   PUT    /k/<key>   body = value; 201 when new, 200 when replaced
 *   GET    /k/<key>   the value, or 404
 *   DELETE /k/<key>   200, or 404
 *   GET    /k         the keys, as a JSON array, sorted
 *
 * POKE events take "put KEY VALUE" and "del KEY". Keys are percent-decoded
 * path segments of 1 to 256 bytes. The state is a sorted array of pairs;
 * its snapshot is "KV1\n" followed by (u32 key length, key, u32 value
 * length, value) for each pair in key order, so equal states give equal
 * snapshots. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth_program.h"

#define KV_KEY_MAX 256
static const char kv_magic[4] = {'K', 'V', '1', '\n'};

struct pair {
    char *key;
    size_t key_len;
    uint8_t *value;
    size_t value_len;
};

struct kv {
    struct pair *pairs;
    size_t n, cap;
};

static int cmp_key(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c != 0 ? c : (al > bl) - (al < bl);
}

/* Index of key, or of where it would go; *found says which. */
static size_t kv_find(const struct kv *kv, const char *key, size_t len,
                      int *found)
{
    size_t lo = 0, hi = kv->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_key(kv->pairs[mid].key, kv->pairs[mid].key_len, key, len);
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

/* Set key to value; 1 if it was new, 0 if replaced, -1 out of memory. */
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
        free(kv->pairs[i].value);
        kv->pairs[i].value = v;
        kv->pairs[i].value_len = vlen;
        return 0;
    }
    char *k = malloc(klen);
    if (k == NULL) {
        free(v);
        return -1;
    }
    memcpy(k, key, klen);
    if (kv->n == kv->cap) {
        size_t cap = kv->cap ? kv->cap * 2 : 16;
        struct pair *p = realloc(kv->pairs, cap * sizeof *p);
        if (p == NULL) {
            free(k);
            free(v);
            return -1;
        }
        kv->pairs = p;
        kv->cap = cap;
    }
    memmove(&kv->pairs[i + 1], &kv->pairs[i], (kv->n - i) * sizeof *kv->pairs);
    kv->pairs[i] = (struct pair){k, klen, v, vlen};
    kv->n++;
    return 1;
}

static int kv_del(struct kv *kv, const char *key, size_t klen)
{
    int found;
    size_t i = kv_find(kv, key, klen, &found);
    if (!found) {
        return 0;
    }
    free(kv->pairs[i].key);
    free(kv->pairs[i].value);
    memmove(&kv->pairs[i], &kv->pairs[i + 1],
            (kv->n - i - 1) * sizeof *kv->pairs);
    kv->n--;
    return 1;
}

static void kv_clear(struct kv *kv)
{
    for (size_t i = 0; i < kv->n; i++) {
        free(kv->pairs[i].key);
        free(kv->pairs[i].value);
    }
    kv->n = 0;
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

/* Percent-decode the key segment after "/k/"; returns its length or -1. */
static long decode_key(const struct bp_http *h, char *out)
{
    const char *p = h->target + 3;
    const char *end = h->target + h->target_len;
    const char *q = memchr(p, '?', (size_t)(end - p));
    if (q != NULL) {
        end = q;
    }
    size_t n = 0;
    while (p < end) {
        char c = *p++;
        if (c == '/') {
            return -1;
        }
        if (c == '%') {
            if (end - p < 2 || hexval(p[0]) < 0 || hexval(p[1]) < 0) {
                return -1;
            }
            c = (char)(hexval(p[0]) * 16 + hexval(p[1]));
            p += 2;
        }
        if (n == KV_KEY_MAX) {
            return -1;
        }
        out[n++] = c;
    }
    return n == 0 ? -1 : (long)n;
}

static void reply_error(struct bp_out *out, int status, const char *code,
                        const char *message)
{
    char body[256];
    int n = snprintf(body, sizeof body,
                     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code,
                     message);
    bp_reply(out, status, "application/json", body, (size_t)n);
}

/* The keys as a JSON array of strings. */
static int list_keys(const struct kv *kv, struct bp_out *out)
{
    struct bp_bytes b = {0};
    int rv = bp_bytes_append(&b, "[", 1);
    for (size_t i = 0; i < kv->n && rv == 0; i++) {
        rv = bp_bytes_append(&b, i ? ",\"" : "\"", i ? 2 : 1);
        for (size_t j = 0; j < kv->pairs[i].key_len && rv == 0; j++) {
            unsigned char c = (unsigned char)kv->pairs[i].key[j];
            char esc[8];
            if (c == '"' || c == '\\') {
                esc[0] = '\\';
                esc[1] = (char)c;
                rv = bp_bytes_append(&b, esc, 2);
            } else if (c < 0x20 || c >= 0x7f) {
                /* Bytes outside ASCII are escaped one by one so the output
                 * is valid JSON whatever the key holds. */
                snprintf(esc, sizeof esc, "\\u%04x", c);
                rv = bp_bytes_append(&b, esc, 6);
            } else {
                rv = bp_bytes_append(&b, &c, 1);
            }
        }
        if (rv == 0) {
            rv = bp_bytes_append(&b, "\"", 1);
        }
    }
    if (rv == 0) {
        rv = bp_bytes_append(&b, "]\n", 2);
    }
    if (rv == 0) {
        rv = bp_reply(out, 200, "application/json", b.data, b.len);
    }
    bp_bytes_free(&b);
    return rv;
}

static int on_http(struct kv *kv, const struct bp_http *h, struct bp_out *out)
{
    char key[KV_KEY_MAX];
    const char *q = memchr(h->target, '?', h->target_len);
    size_t path_len = q ? (size_t)(q - h->target) : h->target_len;
    if (bp_http_match(h, "GET", "/k") ||
        (bp_http_match(h, "GET", "/k/") && path_len == 3)) {
        list_keys(kv, out);
        return BP_UNCHANGED;
    }
    if (h->target_len < 3 || memcmp(h->target, "/k/", 3) != 0) {
        reply_error(out, 404, "not_found", "kv serves /k and /k/<key>");
        return BP_UNCHANGED;
    }
    long klen = decode_key(h, key);
    if (klen < 0) {
        reply_error(out, 400, "invalid", "a key is 1 to 256 bytes, no '/'");
        return BP_UNCHANGED;
    }
    int found;
    if (bp_http_match(h, "GET", "/k/")) {
        size_t i = kv_find(kv, key, (size_t)klen, &found);
        if (!found) {
            reply_error(out, 404, "not_found", "no such key");
        } else {
            bp_reply(out, 200, "application/octet-stream",
                     kv->pairs[i].value, kv->pairs[i].value_len);
        }
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, "PUT", "/k/")) {
        int r = kv_put(kv, key, (size_t)klen, h->body, h->body_len);
        if (r < 0) {
            return bp_reject(out, "out of memory");
        }
        bp_reply(out, r ? 201 : 200, "text/plain", r ? "created\n" : "ok\n",
                 r ? 8 : 3);
        bp_log(out, "put %.*s (%zu bytes)", (int)klen, key, h->body_len);
        return BP_CHANGED;
    }
    if (bp_http_match(h, "DELETE", "/k/")) {
        if (!kv_del(kv, key, (size_t)klen)) {
            reply_error(out, 404, "not_found", "no such key");
            return BP_UNCHANGED;
        }
        bp_reply(out, 200, "text/plain", "deleted\n", 8);
        bp_log(out, "del %.*s", (int)klen, key);
        return BP_CHANGED;
    }
    reply_error(out, 405, "method_not_allowed", "use GET, PUT or DELETE");
    return BP_UNCHANGED;
}

/* POKE: "put KEY VALUE" or "del KEY". */
static int on_poke(struct kv *kv, const struct bp_event *ev,
                   struct bp_out *out)
{
    const char *p = (const char *)ev->payload;
    size_t n = ev->payload_len;
    if (n > 4 && memcmp(p, "put ", 4) == 0) {
        const char *k = p + 4;
        const char *sp = memchr(k, ' ', n - 4);
        if (sp == NULL || sp == k || (size_t)(sp - k) > KV_KEY_MAX) {
            return bp_reject(out, "usage: put KEY VALUE");
        }
        const char *v = sp + 1;
        if (kv_put(kv, k, (size_t)(sp - k), (const uint8_t *)v,
                   n - (size_t)(v - p)) < 0) {
            return bp_reject(out, "out of memory");
        }
        bp_reply(out, 200, "text/plain", "ok\n", 3);
        return BP_CHANGED;
    }
    if (n > 4 && memcmp(p, "del ", 4) == 0 && n - 4 <= KV_KEY_MAX) {
        if (!kv_del(kv, p + 4, n - 4)) {
            return bp_reject(out, "no such key");
        }
        bp_reply(out, 200, "text/plain", "deleted\n", 8);
        return BP_CHANGED;
    }
    return bp_reject(out, "unknown command; use 'put KEY VALUE' or 'del KEY'");
}

static int on_event(void *ctx, const struct bp_event *ev, struct bp_out *out)
{
    struct kv *kv = ctx;
    if (ev->kind == BP_EVENT_HTTP) {
        return on_http(kv, ev->http, out);
    }
    if (ev->kind == BP_EVENT_POKE) {
        return on_poke(kv, ev, out);
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

static int on_boot(void *ctx, const uint8_t *snap, size_t len)
{
    struct kv *kv = ctx;
    if (snap == NULL) {
        return 0;
    }
    if (len < sizeof kv_magic || memcmp(snap, kv_magic, sizeof kv_magic)) {
        return -1; /* not ours: the host replays the log instead */
    }
    size_t off = sizeof kv_magic;
    while (off < len) {
        if (len - off < 4) {
            goto bad;
        }
        uint32_t kl = get32(snap + off);
        off += 4;
        if (kl == 0 || kl > KV_KEY_MAX || len - off < kl + 4) {
            goto bad;
        }
        const char *k = (const char *)snap + off;
        off += kl;
        uint32_t vl = get32(snap + off);
        off += 4;
        if (len - off < vl || kv_put(kv, k, kl, snap + off, vl) < 0) {
            goto bad;
        }
        off += vl;
    }
    return 0;
bad:
    kv_clear(kv);
    return -1;
}

static int on_snapshot(void *ctx, struct bp_bytes *out)
{
    struct kv *kv = ctx;
    if (bp_bytes_append(out, kv_magic, sizeof kv_magic) != 0) {
        return -1;
    }
    for (size_t i = 0; i < kv->n; i++) {
        uint8_t n[4];
        put32(n, (uint32_t)kv->pairs[i].key_len);
        if (bp_bytes_append(out, n, 4) ||
            bp_bytes_append(out, kv->pairs[i].key, kv->pairs[i].key_len)) {
            return -1;
        }
        put32(n, (uint32_t)kv->pairs[i].value_len);
        if (bp_bytes_append(out, n, 4) ||
            bp_bytes_append(out, kv->pairs[i].value,
                            kv->pairs[i].value_len)) {
            return -1;
        }
    }
    return 0;
}

int main(void)
{
    struct kv kv = {0};
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
