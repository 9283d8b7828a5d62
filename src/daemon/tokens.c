/* Tokens of the admin API: the check on TCP, and the endpoints that make,
 * list and revoke them.
 *
 * The check runs on the host a client reaches, before anything else,
 * forwarding to the leader included: token hashes are replicated through
 * the log (a TOKEN entry), so every host knows every token. A request a
 * host forwards reaches the leader over the peer port without its
 * Authorization header, and is served there as the forwarding host
 * decided, with the scope of the token's account, if it has one, in the
 * header core/account.h names; the peer port is trusted as it is for
 * everything else (docs/api.md). core/auth.h has the scopes, the hash and
 * the limiter. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/account.h"
#include "core/auth.h"
#include "core/record.h"
#include "daemon/host.h"
#include "lib/err.h"
#include "lib/mem.h"

/* Answer req with an error and one extra header line (CRLF-terminated, or
 * NULL). */
static void tokens__refuse(struct http_request *req, int status,
                           const char *code, const char *message,
                           const char *extra)
{
    json_t *e =
        json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
    char *text = e != NULL ? json_dumps(e, JSON_COMPACT) : NULL;
    json_decref(e);
    if (text == NULL) {
        host_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    http_reply(req, status, "application/json", text, strlen(text), extra);
    mem_free(text);
}

/* Log a refused request from addr, as the limiter allows. */
static void tokens__log_refused(struct host *h, const uint8_t *addr,
                                const char *why, const struct http_request *req)
{
    uint64_t suppressed = 0;
    if (!auth_limiter_log(&h->limiter, uv_now(&h->loop), &suppressed)) {
        return;
    }
    char ip[INET6_ADDRSTRLEN] = "?";
    static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
    if (memcmp(addr, mapped, sizeof mapped) == 0) {
        inet_ntop(AF_INET, addr + 12, ip, sizeof ip);
    } else {
        inet_ntop(AF_INET6, addr, ip, sizeof ip);
    }
    char target[128], left[24];
    snprintf(target, sizeof target, "%s %.*s", req->method,
             (int)strcspn(req->target, "?"), req->target);
    snprintf(left, sizeof left, "%llu", (unsigned long long)suppressed);
    host_log("warn", "admin request refused", "address", ip, "why", why,
             "request", target, suppressed > 0 ? "unlogged_before" : NULL, left,
             NULL);
}

void host_admin_handle_tcp(struct http_request *req, void *arg)
{
    struct host *h = arg;
    uint8_t addr[16];
    uint64_t now = uv_now(&h->loop);
    if (http_request_peer(req, addr) != 0) {
        memset(addr, 0, sizeof addr);
    }
    uint64_t wait = auth_limiter_check(&h->limiter, addr, now);
    if (wait > 0) {
        char extra[48];
        snprintf(extra, sizeof extra, "Retry-After: %llu\r\n",
                 (unsigned long long)(wait + 999) / 1000);
        tokens__log_refused(h, addr, "too many failed attempts", req);
        tokens__refuse(req, 429, "too_many_failures",
                       "too many requests with a bad token from this "
                       "address; try again later",
                       extra);
        return;
    }
    const char *value = http_request_header(req, "authorization");
    uint8_t hash[AUTH_HASH_SIZE];
    struct store_token t;
    const char *why = NULL;
    if (value == NULL) {
        why = "no token";
    } else if (auth_bearer_hash(value, hash) != 0) {
        why = "not a token";
    } else {
        char id[AUTH_ID_SIZE];
        auth_token_id(hash, id);
        int rv = store_token_get(h->store, id, &t);
        if (rv != 0 && rv != BERTH_ENOTFOUND) {
            host_reply_error(req, 503, "unavailable",
                             "cannot read the tokens: %s", err_str(rv));
            return;
        }
        if (rv != 0 || !auth_hash_equal(t.hash, hash)) {
            why = "unknown or revoked token";
        }
    }
    sodium_memzero(hash, sizeof hash);
    if (why != NULL) {
        char msg[256];
        auth_limiter_fail(&h->limiter, addr, now);
        tokens__log_refused(h, addr, why, req);
        snprintf(msg, sizeof msg,
                 "%s: the admin API on TCP takes a token, as "
                 "\"Authorization: Bearer TOKEN\" (the CLI: --token or "
                 "BERTH_TOKEN); make one with 'berth token new' on the host",
                 why);
        tokens__refuse(req, 401, "unauthorized", msg,
                       "WWW-Authenticate: Bearer\r\n");
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "%.*s", (int)strcspn(req->target, "?"),
             req->target);
    enum auth_scope need = auth_route_scope(req->method, path);
    if (t.scope < need) {
        char msg[600];
        snprintf(msg, sizeof msg, "token %s has the scope %s; %s %s needs %s",
                 t.id, auth_scope_name((enum auth_scope)t.scope), req->method,
                 path, auth_scope_name(need));
        tokens__refuse(req, 403, "forbidden", msg, NULL);
        return;
    }
    /* A token of an account (core/account.h) acts in that account's
     * scope, which the header says to host_admin_handle, here and on the
     * leader; a client's own header is never believed on TCP. */
    http_request_remove_header(req, ACCOUNT_HEADER);
    if (t.account != 0) {
        if (!account_route_allowed(t.account, req->method, path)) {
            char msg[600];
            snprintf(msg, sizeof msg,
                     "token %s belongs to an account; it may use only "
                     "/v1/ships and its ships, not %.32s %.200s",
                     t.id, req->method, path);
            tokens__refuse(req, 403, "forbidden", msg, NULL);
            return;
        }
        struct store_account a;
        if (store_account_get_id(h->store, t.account, &a) != 0) {
            tokens__refuse(req, 403, "forbidden",
                           "the token's account cannot be read", NULL);
            return;
        }
        if (a.disabled) {
            char msg[200];
            snprintf(msg, sizeof msg, "account %s is disabled", a.name);
            tokens__refuse(req, 403, "account_disabled", msg, NULL);
            return;
        }
        char v[24];
        snprintf(v, sizeof v, "%" PRIu64, t.account);
        if (http_request_set_header(req, ACCOUNT_HEADER, v) != 0) {
            host_reply_error(req, 503, "unavailable", "out of memory");
            return;
        }
    }
    /* The token is not passed on, to the leader or anywhere. */
    http_request_remove_header(req, "authorization");
    host_admin_handle(req, h);
}

/* --- The endpoints. --- */

/* Describe token t as a new JSON object, without any secret. */
static json_t *tokens__json(const struct store_token *t)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(t->id));
    json_object_set_new(o, "name",
                        t->name[0] ? json_string(t->name) : json_null());
    json_object_set_new(
        o, "scope", json_string(auth_scope_name((enum auth_scope)t->scope)));
    json_object_set_new(o, "account", json_integer((json_int_t)t->account));
    json_object_set_new(o, "created_ns",
                        json_integer((json_int_t)t->created_ns));
    return o;
}

static int tokens__list_one(const struct store_token *t, void *arg)
{
    return json_array_append_new(arg, tokens__json(t)) == 0 ? 0 : BERTH_ENOMEM;
}

/* A token being made or revoked, waiting for its entry to commit. */
struct tokens__op {
    struct host *host;
    struct http_request *req;
    struct store_token t;
    char text[AUTH_TOKEN_TEXT_SIZE]; /* a new token's; wiped when freed */
};

static void tokens__op_free(struct tokens__op *op)
{
    sodium_memzero(op->text, sizeof op->text);
    mem_free(op);
}

static void tokens__made(void *arg, int status, int result)
{
    struct tokens__op *op = arg;
    if (status != 0) {
        host_reply_error(op->req, 503, "unavailable",
                         "the token was not committed: %s", err_str(status));
    } else if (result != 0) {
        host_reply_error(op->req, 409, "conflict",
                         "a token with that name (or hash) exists");
    } else {
        host_log("info", "token made", "token", op->t.id, "scope",
                 auth_scope_name((enum auth_scope)op->t.scope), "name",
                 op->t.name, NULL);
        json_t *o = tokens__json(&op->t);
        json_object_set_new(o, "token", json_string(op->text));
        host_reply_json(op->req, 201, o);
    }
    tokens__op_free(op);
}

static void tokens__revoked(void *arg, int status, int result)
{
    struct tokens__op *op = arg;
    if (status != 0) {
        host_reply_error(op->req, 503, "unavailable",
                         "the revocation was not committed: %s",
                         err_str(status));
    } else if (result == BERTH_ENOTFOUND) {
        host_reply_error(op->req, 404, "not_found", "no token %s", op->t.id);
    } else {
        host_log("info", "token revoked", "token", op->t.id, NULL);
        json_t *o = json_object();
        json_object_set_new(o, "revoked", json_string(op->t.id));
        host_reply_json(op->req, 200, o);
    }
    tokens__op_free(op);
}

/* Whether name may name a token: 1 to 63 of a-z, 0-9 and '-', not
 * starting with '-', and not 12 hex digits, which would read as an id. */
static bool tokens__name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > STORE_NAME_MAX || name[0] == '-' ||
        strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != n) {
        return false;
    }
    return !(n == AUTH_ID_LEN && strspn(name, "0123456789abcdef") == n);
}

/* Propose op's entry; answers and frees op on failure. */
static void tokens__propose(struct tokens__op *op, const struct record_token *r,
                            void (*cb)(void *, int, int))
{
    struct buf e;
    buf_init(&e);
    int rv = record_encode_token(&e, r);
    if (rv == 0) {
        rv = host_propose_entry(op->host, &e, cb, op);
    }
    if (rv != 0) {
        buf_free(&e);
        host_reply_error(op->req, 503, "unavailable",
                         "cannot log the token: %s", err_str(rv));
        tokens__op_free(op);
    }
}

/* POST /v1/tokens {"scope": S, "name"?: N}. */
static void tokens__new(struct host *h, struct http_request *req)
{
    json_error_t jerr;
    const char *scope = NULL, *name = "";
    enum auth_scope sc;
    json_t *spec =
        json_loadb((const char *)req->body.data, req->body.len, 0, &jerr);
    if (spec == NULL || json_unpack_ex(spec, &jerr, JSON_STRICT, "{s:s,s?s}",
                                       "scope", &scope, "name", &name) != 0) {
        host_reply_error(req, 400, "invalid",
                         "expected {\"scope\": \"read\", \"operate\" or "
                         "\"admin\", \"name\"?: NAME}: %s",
                         jerr.text);
        json_decref(spec);
        return;
    }
    struct store_token old;
    if (auth_scope_parse(scope, &sc) != 0) {
        host_reply_error(req, 400, "invalid",
                         "scope must be read, operate or admin, not %.64s",
                         scope);
    } else if (name[0] != '\0' && !tokens__name_ok(name)) {
        host_reply_error(req, 400, "invalid",
                         "a token's name is 1 to 63 of a-z, 0-9 and '-', not "
                         "starting with '-' and not 12 hex digits, not "
                         "\"%.64s\"",
                         name);
    } else if (name[0] != '\0' && store_token_get(h->store, name, &old) == 0) {
        host_reply_error(req, 409, "conflict", "a token named %s exists (%s)",
                         name, old.id);
    } else if (!host_disk_ok(h)) {
        host_reply_error(req, 507, "insufficient_storage",
                         "the disk is nearly full");
    } else {
        struct tokens__op *op = mem_calloc(1, sizeof *op);
        if (op == NULL) {
            host_reply_error(req, 503, "unavailable", "out of memory");
            json_decref(spec);
            return;
        }
        op->host = h;
        op->req = req;
        auth_token_new(op->text, op->t.hash);
        auth_token_id(op->t.hash, op->t.id);
        op->t.scope = (uint8_t)sc;
        snprintf(op->t.name, sizeof op->t.name, "%s", name);
        op->t.account = AUTH_ACCOUNT_ANONYMOUS;
        op->t.created_ns = host_now_ns();
        struct record_token r = {
            .op = RECORD_TOKEN_ADD,
            .scope = op->t.scope,
            .account = op->t.account,
            .created_ns = op->t.created_ns,
            .name = op->t.name,
            .name_len = strlen(op->t.name),
        };
        memcpy(r.hash, op->t.hash, sizeof r.hash);
        tokens__propose(op, &r, tokens__made);
    }
    json_decref(spec);
}

/* DELETE /v1/tokens/<id or name>. */
static void tokens__revoke(struct host *h, struct http_request *req,
                           const char *who)
{
    struct store_token t;
    int rv = store_token_get(h->store, who, &t);
    if (rv == BERTH_ENOTFOUND) {
        host_reply_error(req, 404, "not_found", "no token %.64s", who);
        return;
    }
    if (rv != 0) {
        host_reply_error(req, 503, "unavailable", "cannot read the tokens: %s",
                         err_str(rv));
        return;
    }
    struct tokens__op *op = mem_calloc(1, sizeof *op);
    if (op == NULL) {
        host_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    op->host = h;
    op->req = req;
    op->t = t;
    struct record_token r = {
        .op = RECORD_TOKEN_REVOKE,
        .name = op->t.id,
        .name_len = strlen(op->t.id),
    };
    tokens__propose(op, &r, tokens__revoked);
}

void host_tokens_handle(struct host *h, struct http_request *req,
                        const char *path)
{
    const char *m = req->method;
    if (strcmp(path, "/v1/tokens") == 0) {
        if (strcmp(m, "GET") == 0) {
            json_t *list = json_array();
            int rv = store_token_foreach(h->store, tokens__list_one, list);
            if (rv != 0) {
                json_decref(list);
                host_reply_error(req, 503, "unavailable",
                                 "cannot read the tokens: %s", err_str(rv));
                return;
            }
            json_t *o = json_object();
            json_object_set_new(o, "tokens", list);
            host_reply_json(req, 200, o);
        } else if (strcmp(m, "POST") == 0) {
            tokens__new(h, req);
        } else {
            host_reply_error(req, 405, "method_not_allowed",
                             "%s is not allowed on %s", m, path);
        }
        return;
    }
    const char *who = path + strlen("/v1/tokens/");
    if (*who == '\0' || strchr(who, '/') != NULL) {
        host_reply_error(req, 404, "not_found", "no such endpoint: %s %s", m,
                         path);
        return;
    }
    if (strcmp(m, "DELETE") != 0) {
        host_reply_error(req, 405, "method_not_allowed",
                         "%s is not allowed on %s", m, path);
        return;
    }
    tokens__revoke(h, req, who);
}
