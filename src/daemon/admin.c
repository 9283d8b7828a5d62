/* The admin API: versioned JSON under /v1/, on a Unix socket by default.
 *
 *   GET    /v1/ships              list ships
 *   POST   /v1/ships              create: {"program", "name"?, "idle_timeout_ms"?}
 *   GET    /v1/ships/ID           show one ship
 *   DELETE /v1/ships/ID           remove a ship and its data
 *   POST   /v1/ships/ID/send      deliver the body as a POKE event
 *   POST   /v1/ships/ID/sleep     snapshot and stop; answers once asleep
 *   POST   /v1/ships/ID/wake      start; answers once awake
 *   GET    /v1/stats              host counters
 *
 * Errors are {"error": {"code", "message"}} with a fitting status; docs/api.md
 * is the reference. */
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consensus/log.h"
#include "core/record.h"
#include "core/ship.h"
#include "daemon/host.h"
#include "lib/err.h"
#include "lib/mem.h"

/* RFC 4648 base32 in lower case, without padding: URL- and DNS-safe ids. */
static void admin__base32(const uint8_t *in, size_t n, char *out)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = alphabet[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0) {
        out[o++] = alphabet[(acc << (5 - bits)) & 31];
    }
    out[o] = '\0';
}

struct admin__create {
    struct host *host;
    struct http_request *req;
    char id[STORE_ID_MAX + 1];
};

static void admin__created(void *arg, int status, int result)
{
    struct admin__create *c = arg;
    struct host *h = c->host;
    struct store_ship rec;
    if (status != 0) {
        host_reply_error(c->req, 503, "unavailable",
                         "ship creation was not committed: %s",
                         err_str(status));
        goto out;
    }
    if (result == BERTH_EEXIST) {
        host_reply_error(c->req, 409, "conflict",
                         "a ship with that name exists");
        goto out;
    }
    if (store_ship_get(h->store, c->id, &rec) != 0) {
        host_reply_error(c->req, 500, "internal", "created ship not found: %s",
                         store_errmsg(h->store));
        goto out;
    }
    struct host_ship *s = host_ship_add(h, &rec);
    store_ship_clear(&rec);
    if (s == NULL) {
        host_reply_error(c->req, 503, "unavailable", "out of memory");
        goto out;
    }
    host_log("info", "ship created", "ship", s->id, "name", s->name,
             "program", s->program, NULL);
    host_reply_json(c->req, 201, host_ship_json(s));
out:
    mem_free(c);
}

void host_ship_create(struct host *h, json_t *spec, struct http_request *req)
{
    const char *program = NULL;
    const char *name = "";
    json_int_t idle = 0;
    json_error_t jerr;
    if (json_unpack_ex(spec, &jerr, JSON_STRICT, "{s:s, s?:s, s?:I}",
                       "program", &program, "name", &name, "idle_timeout_ms",
                       &idle) != 0) {
        host_reply_error(req, 400, "invalid",
                         "expected {\"program\": PATH, \"name\"?: NAME, "
                         "\"idle_timeout_ms\"?: N}: %s",
                         jerr.text);
        return;
    }
    if (name[0] != '\0' && !ship_name_valid(name)) {
        host_reply_error(req, 400, "invalid",
                         "ship name \"%s\" is not valid: use 1 to 63 of a-z, "
                         "0-9 and '-', not starting with '-'",
                         name);
        return;
    }
    if (name[0] != '\0' && host_ship_find(h, name) != NULL) {
        host_reply_error(req, 409, "conflict", "a ship named %s exists", name);
        return;
    }
    if (idle < 0 || idle > 365LL * 24 * 3600 * 1000) {
        host_reply_error(req, 400, "invalid", "idle_timeout_ms out of range");
        return;
    }
    if (!host_disk_ok(h)) {
        host_reply_error(req, 507, "insufficient_storage",
                         "the host's disk is nearly full");
        return;
    }
    char path[PATH_MAX];
    if (realpath(program, path) == NULL || access(path, X_OK) != 0) {
        host_reply_error(req, 400, "invalid",
                         "program %s is not an executable file", program);
        return;
    }

    struct admin__create *c = mem_calloc(1, sizeof *c);
    if (c == NULL) {
        host_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    struct record_ship_new rec = {
        .name = name,
        .program = path,
        .created_ns = host_now_ns(),
        .idle_timeout_ms = (uint64_t)idle,
    };
    /* The id is the start of the public key; draw again on the rare clash
     * with an existing id or name. */
    do {
        crypto_sign_keypair(rec.public_key, rec.secret_key);
        admin__base32(rec.public_key, 10, c->id);
    } while (host_ship_find(h, c->id) != NULL);
    rec.id = c->id;
    c->host = h;
    c->req = req;

    struct buf e;
    buf_init(&e);
    int rv = record_encode_ship_new(&e, &rec);
    sodium_memzero(rec.secret_key, sizeof rec.secret_key);
    if (rv == 0) {
        rv = host_propose_entry(h, &e, admin__created, c);
    }
    if (rv != 0) {
        buf_free(&e);
        mem_free(c);
        host_reply_error(req, 503, "unavailable", "cannot log the new ship: %s",
                         err_str(rv));
    }
}

static void admin__list(struct host *h, struct http_request *req)
{
    json_t *arr = json_array();
    /* The table maps ids and names alike; list each ship once, by id. */
    struct table *t = &h->ships;
    for (size_t i = 0; i < t->cap; i++) {
        struct host_ship *s = t->slots[i].value;
        if (s != NULL && t->slots[i].key == s->id) {
            json_array_append_new(arr, host_ship_json(s));
        }
    }
    json_t *o = json_object();
    json_object_set_new(o, "ships", arr);
    host_reply_json(req, 200, o);
}

static void admin__stats(struct host *h, struct http_request *req)
{
    unsigned counts[SHIP__STATE_COUNT] = {0};
    struct table *t = &h->ships;
    for (size_t i = 0; i < t->cap; i++) {
        struct host_ship *s = t->slots[i].value;
        if (s != NULL && t->slots[i].key == s->id) {
            counts[s->state]++;
        }
    }
    json_t *o = json_object();
    json_object_set_new(o, "ships", json_integer(h->n_ships));
    json_t *st = json_object();
    for (int i = 0; i < SHIP__STATE_COUNT; i++) {
        if (i != SHIP_REMOVED) {
            json_object_set_new(st, ship_state_name(i), json_integer(counts[i]));
        }
    }
    json_object_set_new(o, "states", st);
    json_object_set_new(o, "events_committed",
                        json_integer((json_int_t)h->events_committed));
    json_object_set_new(o, "batches_committed",
                        json_integer((json_int_t)h->batches_committed));
    json_object_set_new(o, "wakes", json_integer((json_int_t)h->wakes));
    json_object_set_new(o, "log_applied_index",
                        json_integer((json_int_t)log_applied_index(h->log)));
    host_reply_json(req, 200, o);
}

static void admin__send(struct host_ship *s, struct http_request *req)
{
    /* The request's body is the event's payload: move it, do not copy. */
    struct buf payload = req->body;
    buf_init(&req->body);
    host_ship_deliver(s, HOST_JOB_ADMIN, req, FRAME_EVENT_POKE, &payload);
}

void host_admin_handle(struct http_request *req, void *arg)
{
    struct host *h = arg;
    const char *m = req->method;
    char path[512];
    snprintf(path, sizeof path, "%.*s", (int)strcspn(req->target, "?"),
             req->target);

    if (strcmp(path, "/healthz") == 0) {
        http_reply(req, h->ready ? 200 : 503, "text/plain",
                   h->ready ? "ok\n" : "starting\n", h->ready ? 3 : 9, NULL);
        return;
    }
    if (!h->ready) {
        host_reply_error(req, 503, "starting", "host is starting");
        return;
    }
    if (strcmp(path, "/v1/stats") == 0) {
        if (strcmp(m, "GET") != 0) {
            goto method;
        }
        admin__stats(h, req);
        return;
    }
    if (strcmp(path, "/v1/ships") == 0) {
        if (strcmp(m, "GET") == 0) {
            admin__list(h, req);
        } else if (strcmp(m, "POST") == 0) {
            json_error_t jerr;
            json_t *spec = json_loadb((const char *)req->body.data,
                                      req->body.len, 0, &jerr);
            if (spec == NULL) {
                host_reply_error(req, 400, "invalid", "body is not JSON: %s",
                                 jerr.text);
                return;
            }
            host_ship_create(h, spec, req);
            json_decref(spec);
        } else {
            goto method;
        }
        return;
    }
    if (strncmp(path, "/v1/ships/", 10) == 0) {
        char name[STORE_ID_MAX + STORE_NAME_MAX + 2];
        const char *p = path + 10;
        size_t n = strcspn(p, "/");
        if (n == 0 || n >= sizeof name) {
            goto notfound;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        const char *action = p + n;
        struct host_ship *s = host_ship_find(h, name);
        if (s == NULL) {
            host_reply_error(req, 404, "not_found", "no ship named %s", name);
            return;
        }
        if (*action == '\0') {
            if (strcmp(m, "GET") == 0) {
                host_reply_json(req, 200, host_ship_json(s));
            } else if (strcmp(m, "DELETE") == 0) {
                host_ship_remove(s, req);
            } else {
                goto method;
            }
            return;
        }
        if (strcmp(m, "POST") != 0) {
            goto method;
        }
        if (strcmp(action, "/send") == 0) {
            admin__send(s, req);
        } else if (strcmp(action, "/sleep") == 0) {
            host_ship_sleep(s, req);
        } else if (strcmp(action, "/wake") == 0) {
            host_ship_wake(s, req);
        } else {
            goto notfound;
        }
        return;
    }
notfound:
    host_reply_error(req, 404, "not_found", "no such endpoint: %s %s", m, path);
    return;
method:
    host_reply_error(req, 405, "method_not_allowed",
                     "%s is not allowed on %s", m, path);
}
