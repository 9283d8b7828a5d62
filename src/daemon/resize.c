/* Resizing a live ship: POST /v1/ships/ID/resize {"memory"?, "cpu"?,
 * "pids"?, "storage"?} proposes a SHIP_RESIZE entry (core/record.h), which
 * every host applies to the ship's sandbox; once it is committed, the
 * leader, the only host that runs programs, puts the caps now in force
 * (core/caps.h: the smallest of the host's, the account's and the ship's)
 * on the running program's cgroups at once. A program asleep gets them at
 * its next wake.
 *
 * An account's caps change the same way: when an ACCOUNT entry that sets
 * them applies on the leader, every running program of the account's
 * ships (the awake list, not the account's ships in the store: only those
 * have programs) gets the caps now in force. */
#include <jansson.h>
#include <string.h>

#include "core/caps.h"
#include "core/record.h"
#include "core/sandbox.h"
#include "daemon/body.h"
#include "daemon/host.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "proc/proc.h"

/* One resize waiting for its entry. */
struct resize__op {
    struct host *host;
    struct http_request *req;
    uint64_t sid;
};

void host_caps_in_force(struct host *h, uint64_t account,
                        const struct caps *own, struct caps *out,
                        struct caps_origin *from, struct caps *acct)
{
    struct caps a = {0};
    /* A store that cannot be read leaves the account's caps out: the
     * host's still bound the program. */
    if (h->n_capped > 0 && store_account_caps(h->store, account, &a) != 0) {
        memset(&a, 0, sizeof a);
    }
    caps_resolve_from(&h->cfg.caps, &a, own, out, from);
    if (acct != NULL) {
        *acct = a;
    }
}

int host_caps_refresh(struct host *h, struct host_ship *s)
{
    struct store_ship rec;
    int rv = store_ship_get_sid(h->store, s->core.sid, &rec);
    if (rv != 0) {
        return rv;
    }
    struct sandbox sb;
    struct caps own = {0};
    if (sandbox_decode(rec.sandbox, rec.sandbox_len, &sb) == 0) {
        own.memory_bytes = sb.memory_bytes;
        own.cpu_millis = sb.cpu_millis;
        own.pids = sb.pids;
    }
    uint64_t account = rec.account;
    store_ship_clear(&rec);
    host_caps_in_force(h, account, &own, &s->caps, NULL, NULL);
    if (s->proc == NULL || !proc_running(s->proc)) {
        return 0;
    }
    return proc_set_caps(s->proc, &s->caps);
}

void host_caps_account_changed(struct host *h, uint64_t account)
{
    unsigned n = 0, refused = 0;
    for (struct fleet_ship *c = h->fleet.lru_head; c != NULL; c = c->lru_next) {
        struct host_ship *s = (struct host_ship *)c;
        if (s->account != account || s->proc == NULL) {
            continue;
        }
        n++;
        int rv = host_caps_refresh(h, s);
        if (rv != 0) {
            /* Recorded, and in force from its next wake; the kernel may
             * refuse a memory cap below what the program uses now. */
            refused++;
            host_log("warn",
                     "a running program keeps its old caps until its next "
                     "wake",
                     "ship", c->id, "error", err_str(rv), NULL);
        }
    }
    h->caps_refused = refused;
    char acct[24], ns[16], rs[16];
    snprintf(acct, sizeof acct, "%llu", (unsigned long long)account);
    snprintf(ns, sizeof ns, "%u", n);
    snprintf(rs, sizeof rs, "%u", refused);
    host_log("info", "account caps put on running programs", "account", acct,
             "programs", ns, "refused", rs, NULL);
}

static void resize__committed(void *arg, int status, int result)
{
    struct resize__op *op = arg;
    struct host *h = op->host;
    uint32_t slot = registry_seek(&h->reg, op->sid - 1);
    if (slot >= h->reg.n_slots || registry_get(&h->reg, slot)->sid != op->sid ||
        (registry_get(&h->reg, slot)->flags & REGISTRY_REMOVED)) {
        slot = REGISTRY_NONE;
    }
    if (status != 0) {
        host_reply_error(op->req, 503, "unavailable",
                         "the resize was not committed: %s", err_str(status));
    } else if (result == BERTH_ENOTFOUND || slot == REGISTRY_NONE) {
        host_reply_error(op->req, 404, "not_found", "the ship was removed");
    } else if (result != 0) {
        host_reply_error(op->req, 409, "conflict",
                         "the ship's sandbox does not decode: nothing changed");
    } else {
        const struct registry_ship *e = registry_get(&h->reg, slot);
        struct host_ship *s = (struct host_ship *)e->live;
        int rv = s != NULL ? host_caps_refresh(h, s) : 0;
        char id[REGISTRY_ID_LEN + 1];
        registry_id(&h->reg, slot, id);
        host_log("info", "ship resized", "ship", id, "live",
                 s != NULL && s->proc != NULL ? "yes" : "no", "kernel",
                 rv == 0 ? "ok" : err_str(rv), NULL);
        json_t *o = host_ship_json(h, slot);
        if (rv != 0) {
            /* Recorded, and in force from the next wake; the kernel may
             * refuse a memory cap below what the program uses now. */
            json_object_set_new(
                o, "warning",
                json_string("recorded, but the running program keeps its "
                            "old caps until its next wake: the kernel "
                            "refused the new ones"));
        }
        host_reply_json(op->req, 200, o);
    }
    mem_free(op);
}

void host_ship_resize(struct host *h, struct http_request *req, uint32_t slot)
{
    json_error_t jerr;
    json_t *memory = NULL, *cpu = NULL, *pids = NULL, *storage = NULL;
    char msg[BODY_ERRMSG_SIZE];
    json_t *spec =
        json_loadb((const char *)req->body.data, req->body.len, 0, &jerr);
    if (spec == NULL ||
        json_unpack_ex(spec, &jerr, JSON_STRICT, "{s?:o, s?:o, s?:o, s?:o}",
                       "memory", &memory, "cpu", &cpu, "pids", &pids, "storage",
                       &storage) != 0) {
        host_reply_error(req, 400, "invalid",
                         "expected {\"memory\"?: SIZE, \"cpu\"?: CORES, "
                         "\"pids\"?: N, \"storage\"?: SIZE}: %s",
                         jerr.text);
        json_decref(spec);
        return;
    }
    struct caps caps, store_caps;
    struct record_resize r = {.sid = registry_get(&h->reg, slot)->sid};
    if (body_parse_caps(memory, cpu, pids, &caps, msg) != 0 ||
        body_parse_caps(storage, NULL, NULL, &store_caps, msg) != 0) {
        if (storage != NULL && strstr(msg, "memory") != NULL) {
            snprintf(msg, sizeof msg,
                     "storage must be a size of at least 4M, such as "
                     "\"100M\", or \"none\"");
        }
        host_reply_error(req, 400, "invalid", "%s", msg);
        json_decref(spec);
        return;
    }
    r.which = (uint8_t)((memory ? RECORD_RESIZE_MEMORY : 0) |
                        (cpu ? RECORD_RESIZE_CPU : 0) |
                        (pids ? RECORD_RESIZE_PIDS : 0) |
                        (storage ? RECORD_RESIZE_STORAGE : 0));
    json_decref(spec);
    if (r.which == 0) {
        host_reply_error(req, 400, "invalid",
                         "give at least one of memory, cpu, pids, storage");
        return;
    }
    r.memory_bytes = caps.memory_bytes;
    r.cpu_millis = caps.cpu_millis;
    r.pids = caps.pids;
    r.storage_bytes = store_caps.memory_bytes;
    struct resize__op *op = mem_calloc(1, sizeof *op);
    struct buf e;
    buf_init(&e);
    int rv = op == NULL ? BERTH_ENOMEM : record_encode_ship_resize(&e, &r);
    if (rv == 0) {
        op->host = h;
        op->req = req;
        op->sid = r.sid;
        rv = host_propose_entry(h, &e, resize__committed, op);
    }
    if (rv != 0) {
        buf_free(&e);
        mem_free(op);
        host_reply_error(req, 503, "unavailable", "cannot log the resize: %s",
                         err_str(rv));
    }
}
