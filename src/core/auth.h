/* Tokens of the admin API: their scopes, what each route needs, their
 * text and hash, and the limiter of failed attempts.
 *
 * A token is 32 random bytes, shown once as text: "bt_" and the bytes in
 * unpadded base64url (43 characters). A host keeps only its hash: BLAKE2b-256
 * (crypto_generichash) of the 32 bytes, keyed with a fixed public label for
 * domain separation. The hash is not keyed with a secret: every host of a
 * cluster checks the same tokens against the same replicated hashes, and the
 * token's 256 random bits leave nothing to guess from a stolen hash. A
 * token's id, which lists show and revocation takes, is the hex of the first
 * 6 bytes of its hash: public, and of no use to find the token.
 *
 * Scopes are ordered: read < operate < admin, and a token of a scope may do
 * everything a lower one may. Every admin route's scope is in one table
 * here (auth_route_scope); a route missing from it needs admin.
 *
 * Nothing here touches the loop, the store or the clock: time comes in as
 * an argument, so that tests drive it. */
#ifndef BERTH_CORE_AUTH_H
#define BERTH_CORE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a token may do; the order matters. */
enum auth_scope {
    AUTH_SCOPE_NONE = 0, /* nothing: no such token */
    AUTH_SCOPE_READ = 1,
    AUTH_SCOPE_OPERATE = 2,
    AUTH_SCOPE_ADMIN = 3,
};

#define AUTH_TOKEN_BYTES 32
#define AUTH_HASH_SIZE 32
#define AUTH_TOKEN_PREFIX "bt_"
/* "bt_" + 43 base64url characters, and the NUL. */
#define AUTH_TOKEN_TEXT_SIZE (3 + 43 + 1)
/* 12 hex digits, and the NUL. */
#define AUTH_ID_LEN 12
#define AUTH_ID_SIZE (AUTH_ID_LEN + 1)

/* The account of a token that belongs to none: the operator's, which sees
 * every account (core/account.h). An account's token has its id. */
#define AUTH_ACCOUNT_ANONYMOUS 0

/* Return the name of a scope ("read", "operate", "admin"; "none"). */
const char *auth_scope_name(enum auth_scope scope);

/* Read a scope's name into *out; 0, or BERTH_EINVAL for anything but
 * "read", "operate" and "admin". The caller keeps name. */
int auth_scope_parse(const char *name, enum auth_scope *out);

/* One row of the table of routes: a method and a path pattern, in which a
 * "*" segment stands for any one non-empty segment. */
struct auth_route {
    const char *method;
    const char *path;
    enum auth_scope scope;
};

/* Return the table of admin routes and set *n to its length; the table is
 * static. */
const struct auth_route *auth_routes(size_t *n);

/* Return the scope a request for method and path (without its query)
 * needs: the table's, or AUTH_SCOPE_ADMIN for a route not in it. The
 * caller keeps method and path. */
enum auth_scope auth_route_scope(const char *method, const char *path);

/* Make a new token: its text into text (AUTH_TOKEN_TEXT_SIZE bytes) and
 * its hash into hash (AUTH_HASH_SIZE bytes); the caller owns both buffers
 * and should wipe text once it has been shown. */
void auth_token_new(char *text, uint8_t *hash);

/* Hash a token's text into hash (AUTH_HASH_SIZE bytes); 0, or
 * BERTH_EINVAL when text is not a token's text. The caller keeps text. */
int auth_token_hash(const char *text, uint8_t *hash);

/* Read the token of an Authorization header's value ("Bearer TOKEN", the
 * scheme in any case) and hash it into hash; 0, or BERTH_EINVAL. The
 * caller keeps value. */
int auth_bearer_hash(const char *value, uint8_t *hash);

/* Write the id of a token of this hash into id (AUTH_ID_SIZE bytes). */
void auth_token_id(const uint8_t *hash, char *id);

/* Compare two hashes in constant time. */
bool auth_hash_equal(const uint8_t *a, const uint8_t *b);

/* --- Failed attempts. ---
 *
 * Each client address has a bucket of failures: it holds `burst` and
 * refills at `per_sec` a second. A failure takes one; an address whose
 * bucket is empty is refused without its token being looked at until the
 * bucket refills to one. Addresses are 16 bytes (IPv4 mapped into IPv6).
 * The table has AUTH_LIMIT_SLOTS addresses; a new one takes a free slot,
 * else one whose bucket is full again, else the one least recently failed.
 *
 * The log of failures has a bucket of its own, shared by all addresses, so
 * that an attack cannot flood it: auth_limiter_log says whether to write a
 * line, and how many were left out since the last one written. */

#define AUTH_LIMIT_SLOTS 256
#define AUTH_FAIL_BURST 10
#define AUTH_FAIL_PER_SEC 1
#define AUTH_LOG_BURST 20
#define AUTH_LOG_PER_SEC 2

/* A token bucket in thousandths of a token. */
struct auth_bucket {
    uint64_t level;
    uint64_t at_ms; /* when level was last brought up to date */
};

struct auth_limiter {
    unsigned burst, per_sec;         /* failures */
    unsigned log_burst, log_per_sec; /* log lines */
    struct {
        uint8_t addr[16];
        bool used;
        uint64_t last_ms; /* its last failure */
        struct auth_bucket b;
    } slots[AUTH_LIMIT_SLOTS];
    struct auth_bucket log;
    uint64_t suppressed; /* log lines left out since the last written */
};

/* Set l up to let burst failures through at once and per_sec a second
 * after (both at least 1), with the default log limits. */
void auth_limiter_init(struct auth_limiter *l, unsigned burst,
                       unsigned per_sec);

/* Return 0 when addr may try a token at now_ms, else how many ms until it
 * may. The caller keeps addr. */
uint64_t auth_limiter_check(struct auth_limiter *l, const uint8_t *addr,
                            uint64_t now_ms);

/* Count a failed attempt from addr at now_ms. The caller keeps addr. */
void auth_limiter_fail(struct auth_limiter *l, const uint8_t *addr,
                       uint64_t now_ms);

/* Return whether a log line about a failure may be written at now_ms;
 * when it may, *suppressed is set to the lines left out since the last one
 * written (and counted from 0 again). */
bool auth_limiter_log(struct auth_limiter *l, uint64_t now_ms,
                      uint64_t *suppressed);

#endif
