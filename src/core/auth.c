#include "core/auth.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/err.h"

/* The key of the token hash: a fixed label, public, so that no other hash
 * of the same bytes is a token's hash. */
static const char auth__label[] = "berth admin token 1";

/* Every admin route, with the scope it needs (docs/api.md has the same
 * table). Read: what looks; operate: what changes ships; admin: the
 * cluster's members and the tokens. */
static const struct auth_route auth__routes[] = {
    {"GET", "/healthz", AUTH_SCOPE_READ},
    {"GET", "/v1/stats", AUTH_SCOPE_READ},
    {"GET", "/metrics", AUTH_SCOPE_READ},
    {"GET", "/v1/cluster", AUTH_SCOPE_READ},
    {"GET", "/v1/ships", AUTH_SCOPE_READ},
    {"GET", "/v1/ships/*", AUTH_SCOPE_READ},
    {"GET", "/v1/ships/*/tree", AUTH_SCOPE_READ},
    {"GET", "/v1/ships/*/logs", AUTH_SCOPE_READ},
    {"POST", "/v1/ships", AUTH_SCOPE_OPERATE},
    {"DELETE", "/v1/ships/*", AUTH_SCOPE_OPERATE},
    {"POST", "/v1/ships/*/send", AUTH_SCOPE_OPERATE},
    {"POST", "/v1/ships/*/sleep", AUTH_SCOPE_OPERATE},
    {"POST", "/v1/ships/*/wake", AUTH_SCOPE_OPERATE},
    {"POST", "/v1/ships/*/kill", AUTH_SCOPE_OPERATE},
    {"POST", "/v1/fsck", AUTH_SCOPE_OPERATE},
    /* Caps are the operator's: a resize may lift what a parent gave. */
    {"POST", "/v1/ships/*/resize", AUTH_SCOPE_ADMIN},
    {"DELETE", "/v1/cluster/hosts/*", AUTH_SCOPE_ADMIN},
    {"POST", "/v1/cluster/join", AUTH_SCOPE_ADMIN},
    {"GET", "/v1/tokens", AUTH_SCOPE_ADMIN},
    {"POST", "/v1/tokens", AUTH_SCOPE_ADMIN},
    {"DELETE", "/v1/tokens/*", AUTH_SCOPE_ADMIN},
    {"POST", "/v1/key/rotate", AUTH_SCOPE_ADMIN},
    {"GET", "/v1/ships/*/export", AUTH_SCOPE_ADMIN},
    {"POST", "/v1/imports", AUTH_SCOPE_ADMIN},
};

const char *auth_scope_name(enum auth_scope scope)
{
    switch (scope) {
    case AUTH_SCOPE_READ:
        return "read";
    case AUTH_SCOPE_OPERATE:
        return "operate";
    case AUTH_SCOPE_ADMIN:
        return "admin";
    default:
        return "none";
    }
}

int auth_scope_parse(const char *name, enum auth_scope *out)
{
    for (int s = AUTH_SCOPE_READ; s <= AUTH_SCOPE_ADMIN; s++) {
        if (strcmp(name, auth_scope_name((enum auth_scope)s)) == 0) {
            *out = (enum auth_scope)s;
            return 0;
        }
    }
    return BERTH_EINVAL;
}

const struct auth_route *auth_routes(size_t *n)
{
    *n = sizeof auth__routes / sizeof auth__routes[0];
    return auth__routes;
}

/* Whether path matches pattern, segment by segment. */
static bool auth__match(const char *pattern, const char *path)
{
    while (*pattern != '\0' && *path != '\0') {
        if (pattern[0] == '*' && (pattern[1] == '/' || pattern[1] == '\0')) {
            size_t n = strcspn(path, "/");
            if (n == 0) {
                return false;
            }
            pattern++;
            path += n;
            continue;
        }
        if (*pattern != *path) {
            return false;
        }
        pattern++;
        path++;
    }
    return *pattern == '\0' && *path == '\0';
}

enum auth_scope auth_route_scope(const char *method, const char *path)
{
    size_t n;
    const struct auth_route *r = auth_routes(&n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(r[i].method, method) == 0 && auth__match(r[i].path, path)) {
            return r[i].scope;
        }
    }
    return AUTH_SCOPE_ADMIN;
}

/* Hash the token's bytes. */
static void auth__hash(const uint8_t *raw, uint8_t *hash)
{
    crypto_generichash(hash, AUTH_HASH_SIZE, raw, AUTH_TOKEN_BYTES,
                       (const uint8_t *)auth__label, sizeof auth__label - 1);
}

void auth_token_new(char *text, uint8_t *hash)
{
    uint8_t raw[AUTH_TOKEN_BYTES];
    randombytes_buf(raw, sizeof raw);
    memcpy(text, AUTH_TOKEN_PREFIX, 3);
    sodium_bin2base64(text + 3, AUTH_TOKEN_TEXT_SIZE - 3, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    auth__hash(raw, hash);
    sodium_memzero(raw, sizeof raw);
}

int auth_token_hash(const char *text, uint8_t *hash)
{
    uint8_t raw[AUTH_TOKEN_BYTES];
    size_t len = 0;
    const char *end = NULL;
    size_t n = strlen(text);
    if (n != AUTH_TOKEN_TEXT_SIZE - 1 ||
        strncmp(text, AUTH_TOKEN_PREFIX, 3) != 0 ||
        sodium_base642bin(raw, sizeof raw, text + 3, n - 3, NULL, &len, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        len != sizeof raw || end != text + n) {
        sodium_memzero(raw, sizeof raw);
        return BERTH_EINVAL;
    }
    auth__hash(raw, hash);
    sodium_memzero(raw, sizeof raw);
    return 0;
}

int auth_bearer_hash(const char *value, uint8_t *hash)
{
    char text[AUTH_TOKEN_TEXT_SIZE];
    while (*value == ' ' || *value == '\t') {
        value++;
    }
    if (strncasecmp(value, "bearer", 6) != 0 ||
        (value[6] != ' ' && value[6] != '\t')) {
        return BERTH_EINVAL;
    }
    value += 6;
    while (*value == ' ' || *value == '\t') {
        value++;
    }
    size_t n = strcspn(value, " \t");
    const char *rest = value + n;
    while (*rest == ' ' || *rest == '\t') {
        rest++;
    }
    if (n != sizeof text - 1 || *rest != '\0') {
        return BERTH_EINVAL;
    }
    memcpy(text, value, n);
    text[n] = '\0';
    int rv = auth_token_hash(text, hash);
    sodium_memzero(text, sizeof text);
    return rv;
}

void auth_token_id(const uint8_t *hash, char *id)
{
    sodium_bin2hex(id, AUTH_ID_SIZE, hash, AUTH_ID_LEN / 2);
}

bool auth_hash_equal(const uint8_t *a, const uint8_t *b)
{
    return sodium_memcmp(a, b, AUTH_HASH_SIZE) == 0;
}

/* --- Failed attempts. --- */

/* Bring b up to date at now_ms: it refills at per_sec tokens a second, up
 * to cap tokens. A clock that went back refills nothing. */
static void auth__refill(struct auth_bucket *b, unsigned cap, unsigned per_sec,
                         uint64_t now_ms)
{
    uint64_t full = (uint64_t)cap * 1000;
    if (now_ms > b->at_ms) {
        uint64_t add = (now_ms - b->at_ms) * per_sec;
        b->level = add >= full - b->level ? full : b->level + add;
    }
    b->at_ms = now_ms;
}

void auth_limiter_init(struct auth_limiter *l, unsigned burst, unsigned per_sec)
{
    memset(l, 0, sizeof *l);
    l->burst = burst > 0 ? burst : 1;
    l->per_sec = per_sec > 0 ? per_sec : 1;
    l->log_burst = AUTH_LOG_BURST;
    l->log_per_sec = AUTH_LOG_PER_SEC;
    l->log.level = (uint64_t)l->log_burst * 1000;
}

/* Return the slot of addr, or -1 when it has none. */
static int auth__find(const struct auth_limiter *l, const uint8_t *addr)
{
    for (int i = 0; i < AUTH_LIMIT_SLOTS; i++) {
        if (l->slots[i].used && memcmp(l->slots[i].addr, addr, 16) == 0) {
            return i;
        }
    }
    return -1;
}

uint64_t auth_limiter_check(struct auth_limiter *l, const uint8_t *addr,
                            uint64_t now_ms)
{
    int i = auth__find(l, addr);
    if (i < 0) {
        return 0;
    }
    struct auth_bucket *b = &l->slots[i].b;
    auth__refill(b, l->burst, l->per_sec, now_ms);
    if (b->level >= 1000) {
        return 0;
    }
    return (1000 - b->level + l->per_sec - 1) / l->per_sec;
}

void auth_limiter_fail(struct auth_limiter *l, const uint8_t *addr,
                       uint64_t now_ms)
{
    int i = auth__find(l, addr);
    if (i < 0) {
        /* A free slot, else one full again, else the least recently
         * failed. */
        int oldest = 0;
        for (int k = 0; k < AUTH_LIMIT_SLOTS && i < 0; k++) {
            if (!l->slots[k].used) {
                i = k;
                break;
            }
            struct auth_bucket *b = &l->slots[k].b;
            auth__refill(b, l->burst, l->per_sec, now_ms);
            if (b->level >= (uint64_t)l->burst * 1000) {
                i = k;
            } else if (l->slots[k].last_ms < l->slots[oldest].last_ms) {
                oldest = k;
            }
        }
        if (i < 0) {
            i = oldest;
        }
        memcpy(l->slots[i].addr, addr, 16);
        l->slots[i].used = true;
        l->slots[i].b.level = (uint64_t)l->burst * 1000;
        l->slots[i].b.at_ms = now_ms;
    }
    struct auth_bucket *b = &l->slots[i].b;
    auth__refill(b, l->burst, l->per_sec, now_ms);
    l->slots[i].last_ms = now_ms;
    b->level = b->level >= 1000 ? b->level - 1000 : 0;
}

bool auth_limiter_log(struct auth_limiter *l, uint64_t now_ms,
                      uint64_t *suppressed)
{
    auth__refill(&l->log, l->log_burst, l->log_per_sec, now_ms);
    if (l->log.level < 1000) {
        l->suppressed++;
        return false;
    }
    l->log.level -= 1000;
    *suppressed = l->suppressed;
    l->suppressed = 0;
    return true;
}
