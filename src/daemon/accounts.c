/* Accounts on a host: the endpoints that make, list, show, disable, enable
 * and remove them, the caller's scope, and what a host does when an ACCOUNT
 * entry applies. core/account.h has the rules; the store keeps the
 * accounts, replicated through the log like everything else.
 *
 * Checking a ship's account costs a read of its store row. Only requests
 * in an account's scope need it always; the front door, wakes and alarms
 * need it only while some account is disabled (h->n_disabled), so a host
 * without disabled accounts reads nothing more than before. */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/account.h"
#include "core/auth.h"
#include "core/caps.h"
#include "core/record.h"
#include "daemon/body.h"
#include "daemon/host.h"
#include "http/forward.h"
#include "lib/err.h"
#include "lib/mem.h"

bool host_request_scope(struct http_request *req, uint64_t *scope)
{
    if (account_scope_parse(http_request_header(req, ACCOUNT_HEADER), scope) !=
        0) {
        host_reply_error(req, 400, "invalid",
                         "the %s header must be an account id", ACCOUNT_HEADER);
        return false;
    }
    return true;
}

bool host_ship_visible(struct host *h, uint64_t scope, uint32_t slot)
{
    if (scope == ACCOUNT_ALL) {
        return true;
    }
    uint64_t account;
    return store_ship_account(h->store, registry_get(&h->reg, slot)->sid,
                              &account) == 0 &&
           account == scope;
}

bool host_account_disabled(struct host *h, uint64_t account)
{
    for (uint64_t i = 0; i < h->n_disabled; i++) {
        if (h->disabled[i] == account) {
            return true;
        }
    }
    return false;
}

bool host_ship_disabled(struct host *h, uint32_t slot)
{
    uint64_t account;
    return h->n_disabled > 0 &&
           store_ship_account(h->store, registry_get(&h->reg, slot)->sid,
                              &account) == 0 &&
           host_account_disabled(h, account);
}

/* A list of account ids being read, and a count of those with caps. */
struct accounts__ids {
    uint64_t *ids;
    uint64_t n;
    uint64_t capped;
};

static int accounts__add_disabled(const struct store_account *a, void *arg)
{
    struct accounts__ids *l = arg;
    l->capped += !caps_none(&a->caps);
    if (!a->disabled) {
        return 0;
    }
    uint64_t *p = mem_realloc(l->ids, (size_t)(l->n + 1) * sizeof *p);
    if (p == NULL) {
        return BERTH_ENOMEM;
    }
    l->ids = p;
    l->ids[l->n++] = a->id;
    return 0;
}

int host_accounts_load(struct host *h)
{
    struct accounts__ids l = {NULL, 0, 0};
    int rv = store_account_foreach(h->store, accounts__add_disabled, &l);
    if (rv != 0) {
        mem_free(l.ids);
        return rv;
    }
    mem_free(h->disabled);
    h->disabled = l.ids;
    h->n_disabled = l.n;
    h->n_capped = l.capped;
    return store_account_limited_count(h->store, &h->n_limited);
}

/* Find the registry slot of ship sid, or REGISTRY_NONE. */
static uint32_t accounts__slot(struct host *h, uint64_t sid)
{
    uint32_t slot = registry_seek(&h->reg, sid - 1);
    if (slot < h->reg.n_slots && registry_get(&h->reg, slot)->sid == sid &&
        !(registry_get(&h->reg, slot)->flags & REGISTRY_REMOVED)) {
        return slot;
    }
    return REGISTRY_NONE;
}

/* A ship of a disabled account: its alarm leaves the heap (the store keeps
 * it), and its program, if it runs, goes to sleep. */
static int accounts__park(uint64_t sid, uint64_t alarm_ns, void *arg)
{
    struct host *h = arg;
    uint32_t slot = accounts__slot(h, sid);
    if (slot == REGISTRY_NONE) {
        return 0;
    }
    alarms_set(&h->alarms, slot, 0);
    struct host_ship *s = registry_get(&h->reg, slot)->live;
    if (s != NULL) {
        fleet_ship_sleep(&s->core, NULL);
    }
    return 0;
}

/* A ship of an enabled account: its stored alarm is armed again, and fires
 * at once if it passed while the account was disabled. */
static int accounts__unpark(uint64_t sid, uint64_t alarm_ns, void *arg)
{
    struct host *h = arg;
    uint32_t slot = accounts__slot(h, sid);
    if (slot == REGISTRY_NONE || alarm_ns == 0) {
        return 0;
    }
    return alarms_set(&h->alarms, slot, alarm_ns);
}

void host_accounts_applied(struct host *h, const uint8_t *entry, size_t len)
{
    struct record_account r;
    if (record_decode_account(entry, len, &r) != 0) {
        return;
    }
    if (host_accounts_load(h) != 0) {
        host_log("error", "cannot count the disabled accounts", "error",
                 store_errmsg(h->store), NULL);
    }
    if (r.op == ACCOUNT_OP_DISABLE) {
        host_ws_close_disabled(h);
    }
    if (h->ready && h->leading && r.op == ACCOUNT_OP_LIMIT &&
        r.caps_which != 0) {
        host_caps_account_changed(h, r.account);
        return;
    }
    if (!h->ready || !h->leading ||
        (r.op != ACCOUNT_OP_DISABLE && r.op != ACCOUNT_OP_ENABLE)) {
        return;
    }
    int rv = store_account_ships(
        h->store, r.account, 0,
        r.op == ACCOUNT_OP_DISABLE ? accounts__park : accounts__unpark, h);
    if (rv != 0) {
        host_log("error", "cannot walk an account's ships", "error",
                 store_errmsg(h->store), NULL);
    }
    fleet_alarms_rearm(&h->fleet);
}

/* --- The endpoints. --- */

/* Describe account a as a new JSON object. */
static json_t *accounts__json(struct host *h, const struct store_account *a)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)a->id));
    json_object_set_new(o, "name", json_string(a->name));
    json_object_set_new(o, "disabled", json_boolean(a->disabled));
    json_object_set_new(o, "created_ns",
                        json_integer((json_int_t)a->created_ns));
    /* The recorded count, not a count of the rows: an account of a million
     * ships would cost a walk of its index at every listing (the crawler
     * checks the figure against the rows). */
    json_object_set_new(o, "ships", json_integer((json_int_t)a->usage.ships));
    json_object_set_new(
        o, "usage",
        host_usage_json(&a->usage, true, host_usage_awake(h, a->id)));
    host_quota_json(h, a, o);
    /* Its caps (0: none), and those in force for a ship of it that sets
     * none of its own: the smaller of the host's and these. */
    struct caps eff;
    caps_resolve(&h->cfg.caps, &a->caps, NULL, &eff);
    json_object_set_new(
        o, "caps",
        json_pack("{s:I, s:I, s:I, s:{s:I, s:I, s:I}}", "memory_bytes",
                  (json_int_t)a->caps.memory_bytes, "cpu_millis",
                  (json_int_t)a->caps.cpu_millis, "pids",
                  (json_int_t)a->caps.pids, "in_force", "memory_bytes",
                  (json_int_t)eff.memory_bytes, "cpu_millis",
                  (json_int_t)eff.cpu_millis, "pids", (json_int_t)eff.pids));
    /* What the crawler's last whole pass counted on this host's disk, and
     * what was recorded then (daemon/crawler.c); null before one. */
    struct store_crawl_account c;
    uint64_t passed_ns;
    if (store_crawl_result_get(h->store, a->id, &c, &passed_ns) == 0) {
        json_object_set_new(
            o, "crawl",
            json_pack("{s:I, s:I, s:I, s:I, s:I}", "ships", (json_int_t)c.ships,
                      "storage_bytes", (json_int_t)c.storage_bytes,
                      "recorded_ships", (json_int_t)c.recorded_ships,
                      "recorded_storage_bytes",
                      (json_int_t)c.recorded_storage_bytes, "passed_ns",
                      (json_int_t)passed_ns));
    } else {
        json_object_set_new(o, "crawl", json_null());
    }
    return o;
}

bool host_anonymous_open(struct host *h)
{
    uint64_t closed = 0;
    return store_meta_get(h->store, "anonymous_closed", &closed) != 0 ||
           closed == 0;
}

struct accounts__list {
    struct host *host;
    json_t *arr;
};

static int accounts__list_one(const struct store_account *a, void *arg)
{
    struct accounts__list *l = arg;
    return json_array_append_new(l->arr, accounts__json(l->host, a)) == 0
               ? 0
               : BERTH_ENOMEM;
}

/* An account being made, changed or removed, waiting for its entries. */
struct accounts__op {
    struct host *host;
    struct http_request *req;
    struct store_account a;
    uint8_t op;
    char text[AUTH_TOKEN_TEXT_SIZE]; /* a new account's token; wiped */
    uint32_t pending;                /* ship removals not yet answered */
    uint32_t removed;                /* ship removals that succeeded */
    int failed;                      /* the first failed removal's status */
};

static void accounts__op_free(struct accounts__op *op)
{
    sodium_memzero(op->text, sizeof op->text);
    mem_free(op);
}

static void accounts__committed(void *arg, int status, int result)
{
    struct accounts__op *op = arg;
    struct host *h = op->host;
    struct store_account now;
    if (status != 0) {
        host_reply_error(op->req, 503, "unavailable",
                         "the account change was not committed: %s",
                         err_str(status));
    } else if (result == BERTH_EEXIST) {
        host_reply_error(op->req, 409, "conflict", "an account named %s exists",
                         op->a.name);
    } else if (result == BERTH_EBUSY) {
        host_reply_error(op->req, 409, "conflict",
                         "account %s has ships again (made while it was "
                         "being removed); remove it again",
                         op->a.name);
    } else if (result == BERTH_ENOTFOUND) {
        host_reply_error(op->req, 404, "not_found", "no account named %s",
                         op->a.name);
    } else if (result != 0) {
        host_reply_error(op->req, 400, "invalid", "account %s: %s", op->a.name,
                         err_str(result));
    } else if (op->op == ACCOUNT_OP_REMOVE) {
        host_log("info", "account removed", "account", op->a.name, NULL);
        json_t *o = json_object();
        json_object_set_new(o, "removed", json_string(op->a.name));
        json_object_set_new(o, "ships", json_integer(op->removed));
        host_reply_json(op->req, 200, o);
    } else if (op->op == ACCOUNT_OP_ANONYMOUS) {
        json_t *o = json_object();
        json_object_set_new(o, "anonymous_creation",
                            json_boolean(host_anonymous_open(h)));
        host_reply_json(op->req, 200, o);
    } else if (store_account_get(h->store, op->a.name, &now) != 0) {
        host_reply_error(op->req, 503, "unavailable",
                         "cannot read the account: %s", store_errmsg(h->store));
    } else {
        host_log("info",
                 op->op == ACCOUNT_OP_NEW     ? "account made"
                 : op->op == ACCOUNT_OP_LIMIT ? "account limits set"
                 : now.disabled               ? "account disabled"
                                              : "account enabled",
                 "account", now.name, NULL);
        json_t *o = accounts__json(h, &now);
        if (op->op == ACCOUNT_OP_NEW) {
            uint8_t hash[AUTH_HASH_SIZE];
            char id[AUTH_ID_SIZE];
            auth_token_hash(op->text, hash);
            auth_token_id(hash, id);
            json_object_set_new(o, "token", json_string(op->text));
            json_object_set_new(o, "token_id", json_string(id));
        }
        host_reply_json(op->req, op->op == ACCOUNT_OP_NEW ? 201 : 200, o);
    }
    accounts__op_free(op);
}

/* Propose r for op; answers and frees op on failure. */
static void accounts__propose(struct accounts__op *op,
                              const struct record_account *r)
{
    struct buf e;
    buf_init(&e);
    op->op = r->op;
    int rv = record_encode_account(&e, r);
    if (rv == 0) {
        rv = host_propose_entry(op->host, &e, accounts__committed, op);
    }
    if (rv != 0) {
        buf_free(&e);
        host_reply_error(op->req, 503, "unavailable",
                         "cannot log the account change: %s", err_str(rv));
        accounts__op_free(op);
    }
}

static struct accounts__op *accounts__op_new(struct host *h,
                                             struct http_request *req)
{
    struct accounts__op *op = mem_calloc(1, sizeof *op);
    if (op == NULL) {
        host_reply_error(req, 503, "unavailable", "out of memory");
        return NULL;
    }
    op->host = h;
    op->req = req;
    return op;
}

/* POST /v1/accounts {"name": NAME}. */
static void accounts__new(struct host *h, struct http_request *req)
{
    json_error_t jerr;
    const char *name = NULL;
    json_t *spec =
        json_loadb((const char *)req->body.data, req->body.len, 0, &jerr);
    if (spec == NULL ||
        json_unpack_ex(spec, &jerr, JSON_STRICT, "{s:s}", "name", &name) != 0) {
        host_reply_error(req, 400, "invalid", "expected {\"name\": NAME}: %s",
                         jerr.text);
        json_decref(spec);
        return;
    }
    struct store_account old;
    if (account_name_check(name) != 0) {
        host_reply_error(req, 400, "invalid",
                         "an account's name is 1 to %d of a-z, 0-9 and '-', "
                         "not starting with '-', not all digits and not "
                         "\"%s\", not \"%.64s\"",
                         ACCOUNT_NAME_MAX, ACCOUNT_ANONYMOUS_NAME, name);
    } else if (store_account_get(h->store, name, &old) == 0) {
        host_reply_error(req, 409, "conflict", "an account named %s exists",
                         name);
    } else if (!host_disk_ok(h)) {
        host_reply_error(req, 507, "insufficient_storage",
                         "the disk is nearly full");
    } else {
        struct accounts__op *op = accounts__op_new(h, req);
        if (op != NULL) {
            struct record_account r = {
                .op = ACCOUNT_OP_NEW,
                .created_ns = host_now_ns(),
                .name = name,
                .name_len = strlen(name),
            };
            snprintf(op->a.name, sizeof op->a.name, "%s", name);
            auth_token_new(op->text, r.hash);
            accounts__propose(op, &r);
        }
    }
    json_decref(spec);
}

/* POST /v1/anonymous {"creation": BOOL}. */
static void accounts__anonymous(struct host *h, struct http_request *req)
{
    json_error_t jerr;
    int on = 0;
    json_t *spec =
        json_loadb((const char *)req->body.data, req->body.len, 0, &jerr);
    if (spec == NULL || json_unpack_ex(spec, &jerr, JSON_STRICT, "{s:b}",
                                       "creation", &on) != 0) {
        host_reply_error(req, 400, "invalid",
                         "expected {\"creation\": true or false}: %s",
                         jerr.text);
        json_decref(spec);
        return;
    }
    json_decref(spec);
    struct accounts__op *op = accounts__op_new(h, req);
    if (op != NULL) {
        snprintf(op->a.name, sizeof op->a.name, "%s", ACCOUNT_ANONYMOUS_NAME);
        struct record_account r = {.op = ACCOUNT_OP_ANONYMOUS,
                                   .value = on ? 1 : 0};
        accounts__propose(op, &r);
    }
}

/* The account removal's ships are all removed (or failed): remove the
 * account, or say which ship failed. */
static void accounts__ships_done(struct accounts__op *op)
{
    if (op->failed != 0) {
        host_reply_error(op->req, op->failed >= 500 ? 503 : 409,
                         op->failed >= 500 ? "unavailable" : "conflict",
                         "removed %u ships of account %s, but not all; "
                         "remove it again",
                         op->removed, op->a.name);
        accounts__op_free(op);
        return;
    }
    struct record_account r = {.op = ACCOUNT_OP_REMOVE, .account = op->a.id};
    accounts__propose(op, &r);
}

static void accounts__ship_removed(void *arg, int status,
                                   const char *content_type, const void *body,
                                   size_t len, const char *extra_headers)
{
    struct accounts__op *op = arg;
    if (status == 200 || status == 404) {
        op->removed += status == 200;
    } else if (op->failed == 0) {
        op->failed = status;
    }
    if (--op->pending == 0) {
        accounts__ships_done(op);
    }
}

struct accounts__sids {
    uint64_t *sids;
    size_t n, cap;
};

static int accounts__collect(uint64_t sid, uint64_t alarm_ns, void *arg)
{
    struct accounts__sids *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        uint64_t *p = mem_realloc(l->sids, cap * sizeof *p);
        if (p == NULL) {
            return BERTH_ENOMEM;
        }
        l->sids = p;
        l->cap = cap;
    }
    l->sids[l->n++] = sid;
    return 0;
}

/* DELETE /v1/accounts/NAME?yes=1: remove every ship of the account as
 * `ship rm` does, all at once, then the account and its tokens. */
static void accounts__remove(struct host *h, struct http_request *req,
                             const struct store_account *a)
{
    const char *q = strchr(req->target, '?');
    if (q == NULL || strstr(q, "yes=1") == NULL) {
        host_reply_error(req, 400, "invalid",
                         "removing account %s removes its ships and their "
                         "data: confirm with ?yes=1 (the CLI: --yes)",
                         a->name);
        return;
    }
    if (account_op_check(ACCOUNT_OP_REMOVE, a->id) != 0) {
        host_reply_error(req, 400, "invalid",
                         "the anonymous account cannot be removed");
        return;
    }
    struct accounts__sids l = {0};
    int rv = store_account_ships(h->store, a->id, 0, accounts__collect, &l);
    if (rv != 0) {
        mem_free(l.sids);
        host_reply_error(req, 503, "unavailable",
                         "cannot read the account's ships: %s", err_str(rv));
        return;
    }
    struct accounts__op *op = accounts__op_new(h, req);
    if (op == NULL) {
        mem_free(l.sids);
        return;
    }
    op->a = *a;
    /* One more than the removals under way, so that none of them finishes
     * the whole while others are still being started. */
    op->pending = 1;
    for (size_t i = 0; i < l.n; i++) {
        uint32_t slot = accounts__slot(h, l.sids[i]);
        if (slot == REGISTRY_NONE) {
            continue;
        }
        char id[REGISTRY_ID_LEN + 1], target[64];
        registry_id(&h->reg, slot, id);
        snprintf(target, sizeof target, "/v1/ships/%s", id);
        struct http_forward_request f = {
            .server = HTTP_FORWARD_ADMIN,
            .method = "DELETE",
            .method_len = 6,
            .target = target,
            .target_len = strlen(target),
        };
        struct host_ship *s = host_ship_live(h, slot);
        struct http_request *dreq;
        if (s == NULL ||
            http_request_new_detached(&dreq, &f, &h->budget,
                                      accounts__ship_removed, op) != 0) {
            op->failed = 503;
            break;
        }
        op->pending++;
        host_ship_remove(s, dreq);
    }
    mem_free(l.sids);
    if (--op->pending == 0) {
        accounts__ships_done(op);
    }
}

/* The caps an account may set beside its limits, as POST
 * /v1/accounts/NAME/limits names them, with their RECORD_ACCOUNT_CAPS_*
 * bits. */
static const struct {
    const char *name;
    uint8_t bit;
} accounts__caps[] = {
    {"memory", RECORD_ACCOUNT_CAPS_MEMORY},
    {"cpu", RECORD_ACCOUNT_CAPS_CPU},
    {"pids", RECORD_ACCOUNT_CAPS_PIDS},
};

/* Read cap key's value v into r's caps part: "default" or null are none,
 * as 0 and "none" are (the host's cap, and each ship's own, still bound
 * the account's ships). Returns 0, or BERTH_EINVAL with why in msg
 * (BODY_ERRMSG_SIZE bytes); BERTH_ENOTFOUND when key names no cap. */
static int accounts__cap(const char *key, json_t *v, struct record_account *r,
                         char *msg)
{
    int i = 0;
    while (i < 3 && strcmp(accounts__caps[i].name, key) != 0) {
        i++;
    }
    if (i == 3) {
        return BERTH_ENOTFOUND;
    }
    struct caps c = {0};
    if (!json_is_null(v) &&
        !(json_is_string(v) && strcmp(json_string_value(v), "default") == 0)) {
        int rv = body_parse_caps(i == 0 ? v : NULL, i == 1 ? v : NULL,
                                 i == 2 ? v : NULL, &c, msg);
        if (rv != 0) {
            return rv;
        }
    }
    r->caps_which |= accounts__caps[i].bit;
    if (i == 0) {
        r->caps.memory_bytes = c.memory_bytes;
    } else if (i == 1) {
        r->caps.cpu_millis = c.cpu_millis;
    } else {
        r->caps.pids = c.pids;
    }
    return 0;
}

/* POST /v1/accounts/NAME/limits {NAME: N, "default" or null, ...}: set the
 * account's own limits (N; 0 for none) or go back to the host's default,
 * and its caps ("memory", "cpu", "pids", as in POST /v1/ships; "none", 0,
 * "default" or null for none); names left out stay as they are. */
static void accounts__limits(struct host *h, struct http_request *req,
                             const struct store_account *a)
{
    json_error_t jerr;
    json_t *spec =
        json_loadb((const char *)req->body.data, req->body.len, 0, &jerr);
    struct record_account r = {.op = ACCOUNT_OP_LIMIT, .account = a->id};
    for (int i = 0; i < QUOTA__COUNT; i++) {
        r.limits[i] = QUOTA_KEEP;
    }
    if (!json_is_object(spec)) {
        host_reply_error(req, 400, "invalid",
                         "expected {NAME: N or \"default\", ...}: %s",
                         spec == NULL ? jerr.text : "not an object");
        json_decref(spec);
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(spec, key, v)
    {
        char msg[BODY_ERRMSG_SIZE];
        int crv = accounts__cap(key, v, &r, msg);
        if (crv == BERTH_EINVAL) {
            host_reply_error(req, 400, "invalid", "%s", msg);
            json_decref(spec);
            return;
        }
        if (crv == 0) {
            continue;
        }
        int i = 0;
        while (i < QUOTA__COUNT && strcmp(quota_name(i), key) != 0) {
            i++;
        }
        if (i == QUOTA__COUNT) {
            host_reply_error(req, 400, "invalid",
                             "no limit named %s (ships, storage_bytes, "
                             "ships_awake, cpu_seconds_per_hour, "
                             "events_per_second; caps memory, cpu, pids)",
                             key);
            json_decref(spec);
            return;
        }
        if (json_is_null(v) || (json_is_string(v) &&
                                strcmp(json_string_value(v), "default") == 0)) {
            r.limits[i] = QUOTA_DEFAULT;
        } else if (json_is_integer(v) && json_integer_value(v) >= 0 &&
                   (uint64_t)json_integer_value(v) <= QUOTA_MAX) {
            r.limits[i] = (uint64_t)json_integer_value(v);
        } else {
            host_reply_error(req, 400, "invalid",
                             "%s takes a number from 0 (no limit) to %llu, or "
                             "\"default\"",
                             key, (unsigned long long)QUOTA_MAX);
            json_decref(spec);
            return;
        }
    }
    json_decref(spec);
    struct accounts__op *op = accounts__op_new(h, req);
    if (op != NULL) {
        op->a = *a;
        accounts__propose(op, &r);
    }
}

void host_accounts_handle(struct host *h, struct http_request *req,
                          const char *path)
{
    const char *m = req->method;
    if (strcmp(path, "/v1/anonymous") == 0) {
        if (strcmp(m, "POST") != 0) {
            goto method;
        }
        accounts__anonymous(h, req);
        return;
    }
    if (strcmp(path, "/v1/accounts") == 0) {
        if (strcmp(m, "GET") == 0) {
            struct accounts__list l = {h, json_array()};
            int rv = store_account_foreach(h->store, accounts__list_one, &l);
            if (rv != 0) {
                json_decref(l.arr);
                host_reply_error(req, 503, "unavailable",
                                 "cannot read the accounts: %s", err_str(rv));
                return;
            }
            json_t *o = json_object();
            json_object_set_new(o, "accounts", l.arr);
            json_object_set_new(o, "anonymous_creation",
                                json_boolean(host_anonymous_open(h)));
            host_reply_json(req, 200, o);
        } else if (strcmp(m, "POST") == 0) {
            accounts__new(h, req);
        } else {
            goto method;
        }
        return;
    }
    char name[ACCOUNT_NAME_MAX + 2];
    const char *p = path + strlen("/v1/accounts/");
    size_t n = strcspn(p, "/");
    const char *action = p + n;
    if (n == 0 || n >= sizeof name) {
        host_reply_error(req, 404, "not_found", "no account named %.*s",
                         (int)(n > 64 ? 64 : n), p);
        return;
    }
    memcpy(name, p, n);
    name[n] = '\0';
    struct store_account a;
    int rv = store_account_get(h->store, name, &a);
    if (rv == BERTH_ENOTFOUND) {
        host_reply_error(req, 404, "not_found", "no account named %s", name);
        return;
    }
    if (rv != 0) {
        host_reply_error(req, 503, "unavailable", "cannot read the account: %s",
                         store_errmsg(h->store));
        return;
    }
    if (*action == '\0') {
        if (strcmp(m, "GET") == 0) {
            json_t *o = accounts__json(h, &a);
            if (a.id == ACCOUNT_ANONYMOUS) {
                json_object_set_new(o, "anonymous_creation",
                                    json_boolean(host_anonymous_open(h)));
            }
            host_reply_json(req, 200, o);
        } else if (strcmp(m, "DELETE") == 0) {
            accounts__remove(h, req, &a);
        } else {
            goto method;
        }
        return;
    }
    if (strcmp(action, "/limits") == 0) {
        if (strcmp(m, "POST") != 0) {
            goto method;
        }
        accounts__limits(h, req, &a);
        return;
    }
    bool disable = strcmp(action, "/disable") == 0;
    if (!disable && strcmp(action, "/enable") != 0) {
        host_reply_error(req, 404, "not_found", "no such endpoint: %s %s", m,
                         path);
        return;
    }
    if (strcmp(m, "POST") != 0) {
        goto method;
    }
    struct accounts__op *op = accounts__op_new(h, req);
    if (op != NULL) {
        op->a = a;
        struct record_account r = {
            .op = disable ? ACCOUNT_OP_DISABLE : ACCOUNT_OP_ENABLE,
            .account = a.id,
        };
        accounts__propose(op, &r);
    }
    return;
method:
    host_reply_error(req, 405, "method_not_allowed", "%s is not allowed on %s",
                     m, path);
}
