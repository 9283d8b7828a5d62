/* The admin API: versioned JSON under /v1/, on a Unix socket by default.
 *
 *   GET    /v1/ships              list ships, a page at a time:
 *                                  ?limit=N (default 1000) &after=NEXT
 *                                  &state=STATE
 *   POST   /v1/ships              create: {"program", "name"?, "count"?,
 *                                  "idle_timeout_ms"?, "freeze_timeout_ms"?,
 *                                  "args"?, "env"?, "acks"?, "account"?,
 *                                  "parent"?, "lifetime"?, "network"?,
 *                                  "memory"?, "cpu"?, "pids"?}
 *   GET    /v1/ships/ID           show one ship
 *   GET    /v1/ships/ID/tree      the ship and its descendants, nested
 *   GET    /v1/ships/ID/logs      its program's stderr: ?after=OFFSET
 *                                  &bytes=N &wait=MS (daemon/shiplog.c)
 *   DELETE /v1/ships/ID           remove a ship and its data
 *   POST   /v1/ships/ID/send      deliver the body as a POKE event
 *   POST   /v1/ships/ID/sleep     snapshot and stop; answers once asleep
 *   POST   /v1/ships/ID/wake      start; answers once awake
 *   POST   /v1/ships/ID/kill      kill its program now; answers once asleep
 *   POST   /v1/ships/ID/block, /unblock  cut the ship off, or let it back
 *                                  (a SHIP_BLOCK entry); answers once
 *                                  committed
 *   POST   /v1/ships/ID/resize    {"memory"?, "cpu"?, "pids"?, "storage"?}:
 *                                  its caps, now (daemon/resize.c)
 *   GET    /v1/stats              host counters
 *   GET    /metrics               the same and more, as Prometheus text
 *                                  (daemon/metrics.c)
 *   GET    /v1/cluster            the hosts of the cluster, probed now
 *   DELETE /v1/cluster/hosts/ID   remove a host (by id or peer address)
 *   GET    /v1/cluster/secret     the cluster secret, for a host to join
 *   POST   /v1/cluster/join       {"peer", "secret"?}: an empty cluster of
 *                                  one joins the cluster of that peer
 *   GET    /v1/tokens             list the admin API's tokens (no secrets)
 *   POST   /v1/tokens             {"scope", "name"?}: make a token; its text
 *                                  is in this answer only
 *   DELETE /v1/tokens/ID           revoke a token, by id or name
 *   GET    /v1/accounts           list accounts (daemon/accounts.c)
 *   POST   /v1/accounts           {"name"}: make an account and its token
 *   GET    /v1/accounts/NAME      show one
 *   DELETE /v1/accounts/NAME?yes=1  remove it and its ships
 *   POST   /v1/accounts/NAME/disable, /enable
 *   POST   /v1/anonymous          {"creation": BOOL}
 *   POST   /v1/key/rotate         replace the master key (KEY_ROTATE entry)
 *   POST   /v1/fsck               check this host's store of ships
 *   POST   /v1/tls/reload         load the front door's certificate again
 *   GET    /dashboard, /dashboard/FILE  the dashboard's page, no token
 *                                  (daemon/dashboard.c)
 *
 * On TCP every request needs a token (host_admin_handle_tcp, in
 * daemon/tokens.c); the socket needs none.
 *
 * On a host that does not lead, every request but /healthz, /v1/stats,
 * /metrics, /v1/cluster and /v1/fsck is forwarded to the leader
 * (daemon/forward.c).
 *
 * Errors are {"error": {"code", "message"}} with a fitting status; docs/api.md
 * is the reference. */
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "consensus/log.h"
#include "core/account.h"
#include "core/gate.h"
#include "core/record.h"
#include "core/sandbox.h"
#include "http/tls.h"
#include "core/ship.h"
#include "crypto/keywrap.h"
#include "crypto/secretfile.h"
#include "daemon/body.h"
#include "daemon/dashboard.h"
#include "daemon/replay.h"
#include "daemon/repair.h"
#include "lib/strlist.h"
#include "proto/frame.h"
#include "store/fsck.h"
#include "daemon/host.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "proc/harden.h"
#include "lib/notify.h"
#include "proc/launcher.h"
#include "proc/proc.h"
#include "proc/tree.h"

/* Ships a creation proposes per log entry. Each costs a key pair here
 * (about 25 us) and 32 bytes of entry; a chunk keeps the loop responsive and
 * the entry small. */
#define ADMIN__CHUNK 1024

struct admin__create {
    struct host *host;
    struct http_request *req;
    char *program;
    struct buf args, env;          /* string lists */
    struct buf sandbox;            /* a child's, from its parent's; or none */
    char name[STORE_NAME_MAX + 1]; /* the name, or the prefix with count */
    bool single;                   /* no count: answer with the ship */
    uint64_t created_ns, idle_ms, freeze_ms;
    uint8_t acks;         /* GATE_ACKS_DEFAULT when not given */
    uint64_t account;     /* core/account.h */
    uint64_t parent;      /* a child's parent (its sid); 0: none */
    uint8_t lifetime;     /* with a parent: FRAME_LIFETIME_* */
    uint64_t lifetime_ms; /* a resetting child's time */
    uint32_t count;
    uint32_t next;     /* the first index (0-based) not yet looked at */
    uint32_t first;    /* the index of the batch being committed */
    uint32_t chunk;    /* and its size */
    uint32_t created;  /* ships this call created */
    uint32_t existing; /* named ships found from an earlier call */
    char (*ids)[REGISTRY_ID_LEN + 1]; /* "" for a ship still to create */
};

static void admin__create_free(struct admin__create *c)
{
    mem_free(c->program);
    buf_free(&c->args);
    buf_free(&c->env);
    buf_free(&c->sandbox);
    mem_free(c->ids);
    mem_free(c);
}

static void admin__create_next(struct admin__create *c);

/* Add a ship's lineage to its object o, from the store: "parent" (the
 * parent's id, or null), "lifetime" (null for a ship the operator made),
 * "lifetime_ms" for a lifetime that takes a time, "children" (how many
 * it has) and "network" (whether its sandbox lets its program use the
 * network). */
static void admin__lineage(struct host *h, uint64_t sid, json_t *o)
{
    struct store_ship rec, parent;
    json_t *parent_id = json_null(), *lifetime = json_null();
    bool network = false;
    if (store_ship_get_sid(h->store, sid, &rec) == 0) {
        struct sandbox sb;
        network = sandbox_decode(rec.sandbox, rec.sandbox_len, &sb) == 0 &&
                  (sb.flags & SANDBOX_NETWORK);
        if (rec.parent != 0 &&
            store_ship_get_sid(h->store, rec.parent, &parent) == 0) {
            json_decref(parent_id);
            parent_id = json_string(parent.id);
            store_ship_clear(&parent);
        }
        const char *name = ship_lifetime_name(rec.lifetime);
        if (name != NULL) {
            json_decref(lifetime);
            lifetime = json_string(name);
        }
        if (rec.lifetime_ms != 0) {
            json_object_set_new(o, "lifetime_ms",
                                json_integer((json_int_t)rec.lifetime_ms));
        }
        store_ship_clear(&rec);
    }
    struct store_child *kids = NULL;
    size_t n = 0;
    if (store_ship_children(h->store, sid, &kids, &n) != 0) {
        n = 0;
    }
    mem_free(kids);
    json_object_set_new(o, "parent", parent_id);
    json_object_set_new(o, "lifetime", lifetime);
    json_object_set_new(o, "children", json_integer((json_int_t)n));
    json_object_set_new(o, "network", json_boolean(network));
}

/* The ship in slot as one ship's answers show it: its object with its
 * lineage. */
static json_t *admin__ship_json(struct host *h, uint32_t slot)
{
    json_t *o = host_ship_json(h, slot);
    admin__lineage(h, registry_get(&h->reg, slot)->sid, o);
    return o;
}

/* A block or unblock on its way through the log. */
struct admin__block {
    struct host *host;
    struct http_request *req;
    uint64_t sid;
    bool blocked;
};

static void admin__blocked(void *arg, int status, int result)
{
    struct admin__block *b = arg;
    struct host *h = b->host;
    if (status != 0) {
        host_reply_error(b->req, 503, "unavailable",
                         "the block was not committed: %s", err_str(status));
    } else if (result != 0) {
        host_reply_error(b->req, 404, "not_found",
                         "the ship was removed meanwhile");
    } else {
        uint32_t slot = registry_seek(&h->reg, b->sid - 1);
        if (slot < h->reg.n_slots &&
            registry_get(&h->reg, slot)->sid == b->sid) {
            host_reply_json(b->req, 200, admin__ship_json(h, slot));
        } else {
            host_reply_error(b->req, 404, "not_found",
                             "the ship was removed meanwhile");
        }
    }
    mem_free(b);
}

/* Block a ship or let it back: a SHIP_BLOCK entry, so that every host's
 * front door and mail follow, now and after a restart. */
static void admin__block(struct host *h, struct http_request *req,
                         uint32_t slot, bool blocked)
{
    struct admin__block *b = mem_alloc(sizeof *b);
    struct buf e;
    buf_init(&e);
    if (b == NULL) {
        host_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    *b = (struct admin__block){.host = h,
                               .req = req,
                               .sid = registry_get(&h->reg, slot)->sid,
                               .blocked = blocked};
    int rv = record_encode_ship_block(&e, b->sid, blocked);
    if (rv == 0) {
        rv = host_propose_entry(h, &e, admin__blocked, b);
    }
    if (rv != 0) {
        buf_free(&e);
        mem_free(b);
        host_reply_error(req, 503, "unavailable", "cannot log the block: %s",
                         err_str(rv));
    }
}

static void admin__created(void *arg, int status, int result)
{
    struct admin__create *c = arg;
    struct host *h = c->host;
    if (status != 0 || result != 0) {
        if (status != 0) {
            host_reply_error(c->req, 503, "unavailable",
                             "ship creation was not committed after %u of %u "
                             "ships: %s",
                             c->created + c->existing, c->count,
                             err_str(status));
        } else if (result == BERTH_ENOTFOUND && c->parent != 0) {
            host_reply_error(c->req, 404, "not_found",
                             "the parent was removed before its child was "
                             "made");
        } else if (result == BERTH_EINVAL) {
            host_reply_error(c->req, 409, "conflict",
                             "the child was not made: it is one ship, in its "
                             "parent's account");
        } else if (result == BERTH_ENOTFOUND) {
            host_reply_error(c->req, 404, "not_found",
                             "the ships' account was removed (created %u of "
                             "%u)",
                             c->created + c->existing, c->count);
        } else {
            host_reply_error(c->req, 409, "conflict",
                             "a ship with that name or id exists (created %u "
                             "of %u)",
                             c->created + c->existing, c->count);
        }
        admin__create_free(c);
        return;
    }
    c->created += c->chunk;
    if (c->next < c->count) {
        admin__create_next(c);
        return;
    }
    if (c->single) {
        uint32_t slot = registry_find(&h->reg, c->ids[0]);
        if (slot == REGISTRY_NONE) {
            host_reply_error(c->req, 500, "internal", "created ship not found");
        } else {
            host_log("info", "ship created", "ship", c->ids[0], "name", c->name,
                     "program", c->program, NULL);
            host_reply_json(c->req, 201, admin__ship_json(h, slot));
        }
    } else {
        char n[16], e[16];
        snprintf(n, sizeof n, "%u", c->created);
        snprintf(e, sizeof e, "%u", c->existing);
        host_log("info", "ships created", "count", n, "existing", e, "program",
                 c->program, NULL);
        json_t *ids = json_array();
        for (uint32_t i = 0; i < c->count; i++) {
            json_array_append_new(ids, json_string(c->ids[i]));
        }
        json_t *o = json_object();
        json_object_set_new(o, "created", json_integer(c->created));
        json_object_set_new(o, "existing", json_integer(c->existing));
        json_object_set_new(o, "ids", ids);
        host_reply_json(c->req, 201, o);
    }
    admin__create_free(c);
}

/* Propose the next chunk of ships. Their key pairs are made here, each
 * from a random seed of its own that the entry carries sealed, so that
 * every host has the same secret keys and destroying a ship's row shreds
 * its data (crypto/seal.h). */
static void admin__create_next(struct admin__create *c)
{
    struct host *h = c->host;
    /* The next run of ships still to create: consecutive, so that one
     * entry names them NAME-first ... */
    while (c->next < c->count && c->ids[c->next][0] != '\0') {
        c->next++;
    }
    uint32_t n = 0;
    while (c->next + n < c->count && n < ADMIN__CHUNK &&
           c->ids[c->next + n][0] == '\0') {
        n++;
    }
    if (n == 0) {
        /* Everything existed already. */
        c->chunk = 0;
        admin__created(c, 0, 0);
        return;
    }
    c->first = c->next;
    c->next += n;
    c->chunk = n;
    struct record_ship_batch b = {
        .program = c->program,
        .program_len = strlen(c->program),
        .name = c->name,
        .name_len = strlen(c->name),
        .flags = (c->single ? 0 : RECORD_BATCH_PREFIX) |
                 (c->acks != GATE_ACKS_DEFAULT ? RECORD_BATCH_ACKS : 0),
        .acks = c->acks,
        .account = c->account,
        .parent = c->parent,
        .lifetime = c->lifetime,
        .lifetime_ms = c->lifetime_ms,
        .created_ns = c->created_ns,
        .idle_timeout_ms = c->idle_ms,
        .freeze_timeout_ms = c->freeze_ms,
        .args = (const char *)c->args.data,
        .args_len = c->args.len,
        .env = (const char *)c->env.data,
        .env_len = c->env.len,
        .sandbox = c->sandbox.len > 0 ? c->sandbox.data : NULL,
        .sandbox_len = c->sandbox.len,
        .first = c->first + 1,
        .count = n,
    };
    uint8_t *pks = mem_alloc((size_t)n * 32);
    uint8_t *seeds = mem_alloc((size_t)n * 32);
    if (pks == NULL || seeds == NULL) {
        mem_free(pks);
        mem_free(seeds);
        host_reply_error(c->req, 503, "unavailable", "out of memory");
        admin__create_free(c);
        return;
    }
    /* A clash of 80-bit ids is all but impossible; should one happen, the
     * whole chunk draws new seeds. */
    randombytes_buf(seeds, (size_t)n * 32);
    for (int attempt = 0;; attempt++) {
        bool clash = false;
        for (uint32_t i = 0; i < n && !clash; i++) {
            uint8_t sk[64];
            if (attempt > 0) {
                randombytes_buf(seeds + (size_t)i * 32, 32);
            }
            crypto_sign_seed_keypair(pks + (size_t)i * 32, sk,
                                     seeds + (size_t)i * 32);
            sodium_memzero(sk, sizeof sk);
            registry_id_encode(pks + (size_t)i * 32, REGISTRY_KEY_SIZE,
                               c->ids[c->first + i]);
            clash =
                registry_find(&h->reg, c->ids[c->first + i]) != REGISTRY_NONE;
        }
        if (!clash || attempt == 3) {
            break;
        }
    }
    b.public_keys = pks;
    b.seeds = seeds;
    /* A child that cannot outlive its parent keeps its key sealed under
     * the parent's (store/shipkey.h). */
    uint8_t parent_own[SEAL_OWN_KEY_SIZE];
    if (c->parent != 0 && frame_lifetime_bound(c->lifetime)) {
        b.parent_own = host_ship_own_key(h, c->parent, parent_own);
    }
    uint8_t nonce[SEAL_NONCE_SIZE];
    randombytes_buf(nonce, sizeof nonce);
    struct buf e;
    buf_init(&e);
    int rv = record_encode_ship_batch(&e, &b, &h->keys, nonce);
    sodium_memzero(seeds, (size_t)n * 32);
    sodium_memzero(parent_own, sizeof parent_own);
    mem_free(seeds);
    mem_free(pks);
    if (rv == 0) {
        rv = host_propose_entry(h, &e, admin__created, c);
    }
    if (rv != 0) {
        buf_free(&e);
        host_reply_error(c->req, 503, "unavailable",
                         "cannot log the new ships: %s", err_str(rv));
        admin__create_free(c);
    }
}

/* Check that program is an absolute path to an executable regular file
 * that the host's user may run; on failure writes why to msg (ERRMSG_SIZE)
 * and returns false. The host checks what it will run, so a ship never
 * starts life unable to wake. */
static bool admin__program_ok(const char *program, char *msg)
{
    struct stat st;
    if (program[0] != '/') {
        err_printf(msg,
                   "program must be an absolute path, not \"%s\" (the CLI "
                   "makes a relative path absolute where it runs)",
                   program);
        return false;
    }
    if (stat(program, &st) != 0) {
        if (errno == ENOENT) {
            err_printf(msg, "program %s does not exist", program);
        } else {
            err_printf(msg, "program %s cannot be used: %s", program,
                       strerror(errno));
        }
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        err_printf(msg, "program %s is not a regular file (it is a %s)",
                   program, S_ISDIR(st.st_mode) ? "directory" : "special file");
        return false;
    }
    if (access(program, X_OK) != 0) {
        err_printf(msg,
                   "program %s is not executable by the host's user (uid "
                   "%u): %s",
                   program, (unsigned)geteuid(), strerror(errno));
        return false;
    }
    return true;
}

/* A counted creation with a name can be run again after it was cut short
 * (a host killed midway keeps the batches it committed): the ships
 * NAME-i that exist already, with the same program, are kept and only the
 * missing ones are created. A NAME-i of another program refuses the whole
 * call, 409, before anything is created. Returns false after answering. */
static bool admin__resume(struct admin__create *c)
{
    struct host *h = c->host;
    for (uint32_t i = 0; i < c->count; i++) {
        char n[STORE_NAME_MAX + 16];
        snprintf(n, sizeof n, "%s-%u", c->name, i + 1);
        uint32_t slot = registry_find(&h->reg, n);
        if (slot == REGISTRY_NONE) {
            continue;
        }
        uint64_t account;
        if (store_ship_account(h->store, registry_get(&h->reg, slot)->sid,
                               &account) != 0 ||
            account != c->account) {
            /* Another account's ship is not taken over, nor described. */
            host_reply_error(c->req, 409, "conflict", "a ship named %s exists",
                             n);
            return false;
        }
        if (strcmp(registry_program(&h->reg, slot), c->program) != 0) {
            host_reply_error(c->req, 409, "conflict",
                             "a ship named %s exists with another program "
                             "(%s)",
                             n, registry_program(&h->reg, slot));
            return false;
        }
        registry_id(&h->reg, slot, c->ids[i]);
        c->existing++;
    }
    return true;
}

/* Find the parent that a creation names (spec->parent) in the caller's
 * scope, where another account's ship is not there (404): its sid into
 * *parent and its account, which its child belongs to, into *account. An
 * account named besides must be that one. Returns false after answering. */
static bool admin__parent(struct host *h, struct http_request *req,
                          uint64_t scope, const struct body_create *spec,
                          uint64_t *parent, uint64_t *account)
{
    uint32_t slot = host_ship_lookup(h, spec->parent);
    uint64_t owner = 0;
    int rv = BERTH_ENOTFOUND;
    if (slot != REGISTRY_NONE &&
        !(registry_get(&h->reg, slot)->flags & REGISTRY_REMOVED) &&
        host_ship_visible(h, scope, slot)) {
        *parent = registry_get(&h->reg, slot)->sid;
        rv = store_ship_account(h->store, *parent, &owner);
    }
    if (rv == BERTH_ENOTFOUND) {
        host_reply_error(req, 404, "not_found",
                         "no ship named %s, to be the parent", spec->parent);
        return false;
    }
    if (rv != 0) {
        host_reply_error(req, 503, "unavailable", "cannot read the parent: %s",
                         store_errmsg(h->store));
        return false;
    }
    if (spec->account[0] != '\0' && owner != *account) {
        host_reply_error(req, 400, "invalid",
                         "a child belongs to its parent's account, not to "
                         "%s: leave account out",
                         spec->account);
        return false;
    }
    *account = owner;
    return true;
}

/* Give the child that c makes what its parent's sandbox gives any child
 * (core/sandbox.h): its restrictions and caps, so that no ship of a tree
 * has more than its parent, whoever made it, and the network when asked
 * for (network) and the parent has it. Returns false after
 * answering. */
static bool admin__inherit(struct host *h, struct admin__create *c,
                           bool network, const struct caps *caps)
{
    struct store_ship p;
    struct sandbox mine, given;
    /* The caps asked for, never more than the parent's. */
    struct sandbox want = {.flags = network ? SANDBOX_NETWORK : 0,
                           .memory_bytes = caps->memory_bytes,
                           .cpu_millis = caps->cpu_millis,
                           .pids = caps->pids};
    const char *why = NULL;
    int rv = store_ship_get_sid(h->store, c->parent, &p);
    if (rv != 0) {
        host_reply_error(c->req, rv == BERTH_ENOTFOUND ? 404 : 503,
                         rv == BERTH_ENOTFOUND ? "not_found" : "unavailable",
                         "cannot read the parent: %s",
                         rv == BERTH_ENOTFOUND ? "it was removed"
                                               : store_errmsg(h->store));
        return false;
    }
    rv = sandbox_decode(p.sandbox, p.sandbox_len, &mine);
    if (rv == 0) {
        rv = sandbox_inherit(&mine, &want, &given, &why);
    }
    if (rv == 0 && !sandbox_empty(&given)) {
        rv = sandbox_encode(&c->sandbox, &given); /* before its list goes */
    }
    store_ship_clear(&p);
    if (rv != 0) {
        host_reply_error(c->req, 503, "unavailable",
                         "cannot give the child its parent's sandbox: %s",
                         why != NULL ? why : err_str(rv));
    }
    return rv == 0;
}

void host_ship_create(struct host *h, struct http_request *req)
{
    struct body_create spec;
    char msg[BODY_ERRMSG_SIZE];
    int rv = body_parse_create(req->body.data, req->body.len, &spec, msg);
    if (rv != 0) {
        if (rv == BERTH_EINVAL) {
            host_reply_error(req, 400, "invalid", "%s", msg);
        } else {
            host_reply_error(req, 503, "unavailable", "out of memory");
        }
        return;
    }
    uint64_t scope, account = ACCOUNT_ANONYMOUS;
    if (!host_request_scope(req, &scope)) {
        body_create_free(&spec);
        return;
    }
    if (spec.account[0] == '\0' && scope != ACCOUNT_ALL) {
        account = scope; /* an account's token makes its own ships */
    } else if (spec.account[0] != '\0') {
        struct store_account a;
        rv = store_account_get(h->store, spec.account, &a);
        if (rv == 0 && !account_scope_sees(scope, a.id)) {
            rv = BERTH_ENOTFOUND; /* another's account is not there */
        }
        if (rv != 0) {
            host_reply_error(req, rv == BERTH_ENOTFOUND ? 404 : 503,
                             rv == BERTH_ENOTFOUND ? "not_found"
                                                   : "unavailable",
                             "no account named %s", spec.account);
            body_create_free(&spec);
            return;
        }
        account = a.id;
    }
    uint64_t parent = 0;
    if (spec.parent[0] != '\0' &&
        !admin__parent(h, req, scope, &spec, &parent, &account)) {
        body_create_free(&spec);
        return;
    }
    rv = account_create_check(scope, account, host_account_disabled(h, account),
                              host_anonymous_open(h));
    if (rv != 0) {
        if (rv == BERTH_EDISABLED) {
            host_reply_error(req, 403, "account_disabled",
                             "the ship's account is disabled");
        } else {
            host_reply_error(req, 403, "anonymous_closed",
                             "ships without an account are not made on this "
                             "host (berth account anonymous on); name an "
                             "account (--account) or use an account's token");
        }
        body_create_free(&spec);
        return;
    }
    if (spec.single && spec.name[0] != '\0' &&
        registry_find(&h->reg, spec.name) != REGISTRY_NONE) {
        host_reply_error(req, 409, "conflict", "a ship named %s exists",
                         spec.name);
        body_create_free(&spec);
        return;
    }
    if (!admin__program_ok(spec.program, msg)) {
        host_reply_error(req, 400, "invalid", "%s", msg);
        body_create_free(&spec);
        return;
    }
    if (!host_disk_ok(h)) {
        host_reply_error(req, 507, "insufficient_storage",
                         "the host's disk is nearly full");
        body_create_free(&spec);
        return;
    }
    struct quota_refusal why;
    if (!host_quota_create_ok(h, account, spec.count, &why)) {
        snprintf(msg, sizeof msg,
                 "no ship is made: the account's %s limit is %llu, and it "
                 "has %llu",
                 quota_name(why.which), (unsigned long long)why.limit,
                 (unsigned long long)why.used);
        host_reply_limit(req, msg, &why);
        body_create_free(&spec);
        return;
    }

    struct admin__create *c = mem_calloc(1, sizeof *c);
    if (c == NULL) {
        body_create_free(&spec);
        host_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    /* The path as given: a symbolic link in it is followed at each start,
     * so pointing the link at a new build upgrades the ships (a new
     * epoch). The program and the lists move from spec to c. */
    c->program = spec.program;
    c->args = spec.args;
    c->env = spec.env;
    buf_init(&c->sandbox);
    c->ids = mem_calloc(spec.count, sizeof *c->ids);
    if (c->ids == NULL) {
        admin__create_free(c);
        host_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    c->host = h;
    c->req = req;
    c->single = spec.single;
    snprintf(c->name, sizeof c->name, "%s", spec.name);
    c->created_ns = host_now_ns();
    c->idle_ms = spec.idle_ms;
    c->freeze_ms = spec.freeze_ms;
    c->acks = spec.acks;
    c->count = spec.count;
    c->account = account;
    c->parent = parent;
    c->lifetime = spec.lifetime;
    c->lifetime_ms = spec.lifetime_ms;
    if (c->parent != 0 && !admin__inherit(h, c, spec.network, &spec.caps)) {
        admin__create_free(c);
        return;
    }
    if (c->parent == 0 && (spec.network || !caps_none(&spec.caps))) {
        /* The operator's ship: the sandbox of its caps and network. */
        struct sandbox sb = {.flags = spec.network ? SANDBOX_NETWORK : 0,
                             .memory_bytes = spec.caps.memory_bytes,
                             .cpu_millis = spec.caps.cpu_millis,
                             .pids = spec.caps.pids};
        if (sandbox_encode(&c->sandbox, &sb) != 0) {
            admin__create_free(c);
            host_reply_error(req, 503, "unavailable", "out of memory");
            return;
        }
    }
    if (!c->single && c->name[0] != '\0' && !admin__resume(c)) {
        admin__create_free(c);
        return;
    }
    admin__create_next(c);
}

/* Return the value of query parameter key in target, copied to out, or
 * NULL when absent. */
static const char *admin__query(const char *target, const char *key, char *out,
                                size_t size)
{
    const char *q = strchr(target, '?');
    size_t klen = strlen(key);
    while (q != NULL) {
        q++;
        if (strncmp(q, key, klen) == 0 && q[klen] == '=') {
            const char *v = q + klen + 1;
            size_t n = strcspn(v, "&");
            if (n >= size) {
                n = size - 1;
            }
            memcpy(out, v, n);
            out[n] = '\0';
            return out;
        }
        q = strchr(q, '&');
    }
    return NULL;
}

static bool admin__number(const char *s, unsigned long long max,
                          unsigned long long *out)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9') {
        return false;
    }
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0 || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* Ships listed per page by default, and at most. */
#define ADMIN__PAGE 1000
#define ADMIN__PAGE_MAX 10000

/* Return how many ships are in state now: the live ones in it, or for
 * asleep every ship that is not live in another state. */
static uint32_t admin__tier_count(const struct host *h, enum ship_state state)
{
    if (state != SHIP_ASLEEP) {
        return h->fleet.tiers[state];
    }
    uint32_t others = 0;
    for (int i = 0; i < SHIP__STATE_COUNT; i++) {
        if (i != SHIP_REMOVED && i != SHIP_ASLEEP) {
            others += h->fleet.tiers[i];
        }
    }
    uint32_t total = registry_count(&h->reg);
    return total > others ? total - others : 0;
}

/* Whether the ship in slot is listed: it is not removed, and it is in
 * state want (any state for want < 0). */
static bool admin__listed(const struct host *h, uint32_t slot, int want)
{
    const struct registry_ship *e = registry_get(&h->reg, slot);
    if (e->flags & REGISTRY_REMOVED) {
        return false;
    }
    const struct host_ship *s = e->live;
    return want < 0 || (int)(s != NULL ? s->core.state : SHIP_ASLEEP) == want;
}

/* A page of one account's ships, walked from the store's index of them. */
struct admin__scoped {
    struct host *host;
    json_t *arr;
    int want;
    uint64_t after, last;
    unsigned long long limit, n, total;
    bool more;
};

static int admin__scoped_one(uint64_t sid, uint64_t alarm_ns, void *arg)
{
    struct admin__scoped *l = arg;
    struct host *h = l->host;
    uint32_t slot = registry_seek(&h->reg, sid - 1);
    if (slot >= h->reg.n_slots || registry_get(&h->reg, slot)->sid != sid ||
        !admin__listed(h, slot, l->want)) {
        return 0;
    }
    l->total++;
    if (sid <= l->after) {
        return 0;
    }
    if (l->n < l->limit) {
        json_array_append_new(l->arr, host_ship_json(h, slot));
        l->last = sid;
        l->n++;
    } else {
        l->more = true;
    }
    return 0;
}

/* Answer a list in an account's scope: its ships only, and their count. */
static void admin__list_scoped(struct host *h, struct http_request *req,
                               uint64_t scope, int want,
                               unsigned long long limit, uint64_t after)
{
    struct admin__scoped l = {
        .host = h,
        .arr = json_array(),
        .want = want,
        .after = after,
        .limit = limit,
    };
    int rv = store_account_ships(h->store, scope, 0, admin__scoped_one, &l);
    if (rv != 0) {
        json_decref(l.arr);
        host_reply_error(req, 503, "unavailable", "cannot read the ships: %s",
                         store_errmsg(h->store));
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "ships", l.arr);
    json_object_set_new(o, "total", json_integer((json_int_t)l.total));
    if (l.more) {
        char next[32];
        snprintf(next, sizeof next, "%llu", (unsigned long long)l.last);
        json_object_set_new(o, "next", json_string(next));
    } else {
        json_object_set_new(o, "next", json_null());
    }
    host_reply_json(req, 200, o);
}

static void admin__list(struct host *h, struct http_request *req,
                        uint64_t scope)
{
    char v[32];
    unsigned long long limit = ADMIN__PAGE, after = 0;
    int want = -1;
    enum ship_state state = SHIP_ASLEEP;
    const char *p = admin__query(req->target, "state", v, sizeof v);
    if (p != NULL) {
        if (ship_state_parse(p, &state) != 0 || state == SHIP_REMOVED) {
            host_reply_error(req, 400, "invalid",
                             "state must be asleep, waking, awake, frozen or "
                             "sleeping, not %s",
                             p);
            return;
        }
        want = (int)state;
    }
    p = admin__query(req->target, "limit", v, sizeof v);
    if (p != NULL &&
        (!admin__number(p, ADMIN__PAGE_MAX, &limit) || limit == 0)) {
        host_reply_error(req, 400, "invalid", "limit must be from 1 to %d",
                         ADMIN__PAGE_MAX);
        return;
    }
    p = admin__query(req->target, "after", v, sizeof v);
    if (p != NULL && !admin__number(p, UINT64_MAX, &after)) {
        host_reply_error(req, 400, "invalid",
                         "after must be the \"next\" of an earlier page");
        return;
    }
    if (scope != ACCOUNT_ALL) {
        admin__list_scoped(h, req, scope, want, limit, after);
        return;
    }
    json_t *arr = json_array();
    uint32_t slot = registry_seek(&h->reg, after);
    uint64_t last = 0;
    unsigned long long n = 0;
    for (; slot < h->reg.n_slots && n < limit; slot++) {
        if (!admin__listed(h, slot, want)) {
            continue;
        }
        json_array_append_new(arr, host_ship_json(h, slot));
        last = registry_get(&h->reg, slot)->sid;
        n++;
    }
    /* Skip trailing holes and ships in other states, so that a full last
     * page says "no more". */
    while (slot < h->reg.n_slots && !admin__listed(h, slot, want)) {
        slot++;
    }
    json_t *o = json_object();
    json_object_set_new(o, "ships", arr);
    json_object_set_new(o, "total",
                        json_integer(want < 0 ? registry_count(&h->reg)
                                              : admin__tier_count(h, state)));
    if (slot < h->reg.n_slots) {
        char next[32];
        snprintf(next, sizeof next, "%llu", (unsigned long long)last);
        json_object_set_new(o, "next", json_string(next));
    } else {
        json_object_set_new(o, "next", json_null());
    }
    host_reply_json(req, 200, o);
}

static json_t *admin__latency(const struct hist *hs)
{
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)hs->count));
    json_object_set_new(o, "p50", json_real(hist_quantile(hs, 0.50) / 1e6));
    json_object_set_new(o, "p90", json_real(hist_quantile(hs, 0.90) / 1e6));
    json_object_set_new(o, "p99", json_real(hist_quantile(hs, 0.99) / 1e6));
    json_object_set_new(o, "max", json_real(hs->max / 1e6));
    return o;
}

/* What programs give up at their start (proc/harden.h): its parts, their
 * network ("none": the empty namespace; "host (...)": why not), and the
 * uid they run as (null: the host's). */
static json_t *admin__hardening(void)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"seccomp", HARDEN_SECCOMP},
                 {"rlimits", HARDEN_RLIMITS},
                 {"dir", HARDEN_DIR},
                 {"netns", HARDEN_NETNS},
                 {"caps", HARDEN_CAPS}};
    json_t *parts = json_array();
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (harden_parts() & names[i].bit) {
            json_array_append_new(parts, json_string(names[i].name));
        }
    }
    long uid = harden_uid(), first;
    unsigned n = harden_uids(&first);
    char uids[48];
    snprintf(uids, sizeof uids, "%ld-%ld", first, first + (long)n - 1);
    return json_pack("{s:o, s:s, s:o, s:o}", "parts", parts, "network",
                     harden_network(), "uid",
                     uid >= 0 ? json_integer(uid) : json_null(), "uids",
                     n > 0 ? json_string(uids) : json_null());
}

static json_t *admin__divergence(const struct host *h);

static void admin__stats(struct host *h, struct http_request *req)
{
    json_t *st = json_object();
    for (int i = 0; i < SHIP__STATE_COUNT; i++) {
        if (i != SHIP_REMOVED && i != SHIP_ASLEEP) {
            json_object_set_new(st, ship_state_name(i),
                                json_integer(h->fleet.tiers[i]));
        }
    }
    uint32_t total = registry_count(&h->reg);
    json_object_set_new(st, "asleep",
                        json_integer(admin__tier_count(h, SHIP_ASLEEP)));
    json_t *o = json_object();
    json_object_set_new(o, "ships", json_integer(total));
    json_object_set_new(o, "states", st);
    json_object_set_new(o, "wake_queue", json_integer(h->fleet.n_wake_queue));
    json_object_set_new(o, "host_id", json_integer((json_int_t)log_id(h->log)));
    json_object_set_new(o, "leading", json_boolean(h->leading));
    json_object_set_new(o, "leads", json_integer((json_int_t)h->leads));
    json_object_set_new(o, "divergence", admin__divergence(h));
    json_object_set_new(o, "live", json_integer(h->fleet.n_live));
    json_object_set_new(o, "corrupt", json_integer(h->fleet.n_damaged));
    json_object_set_new(o, "programs_running", json_integer(h->fleet.n_procs));
    json_object_set_new(o, "max_awake", json_integer(h->max_awake));
    json_object_set_new(o, "awake_memory_bytes",
                        json_integer((json_int_t)h->fleet.awake_memory));
    json_object_set_new(o, "max_awake_bytes",
                        json_integer((json_int_t)h->cfg.max_awake_bytes));
    json_object_set_new(o, "freezer", json_string(proc_freezer_name()));
    json_object_set_new(o, "launcher", json_boolean(launcher_running()));
    json_object_set_new(o, "hardening", admin__hardening());
    json_object_set_new(o, "caps", json_string(proc_caps_name()));
    json_object_set_new(o, "default_caps",
                        json_pack("{s:I, s:I, s:I, s:I}", "memory_bytes",
                                  (json_int_t)h->cfg.caps.memory_bytes,
                                  "cpu_millis",
                                  (json_int_t)h->cfg.caps.cpu_millis, "pids",
                                  (json_int_t)h->cfg.caps.pids, "event_cpu_ms",
                                  (json_int_t)h->cfg.event_cpu_ms));
    json_object_set_new(o, "stderr_dropped_bytes",
                        json_integer((json_int_t)proc_stderr_dropped_total()));
    json_object_set_new(o, "events_committed",
                        json_integer((json_int_t)h->events_committed));
    json_object_set_new(o, "batches_committed",
                        json_integer((json_int_t)h->batches_committed));
    json_object_set_new(o, "store_commits",
                        json_integer((json_int_t)fsm_stats(h->fsm).flushes));
    json_object_set_new(o, "wakes", json_integer((json_int_t)h->fleet.wakes));
    const struct host_crawler *cr = &h->crawler;
    json_object_set_new(
        o, "crawler",
        json_pack("{s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:f, s:I}",
                  "share_percent", (json_int_t)h->cfg.crawl_share, "walking",
                  cr->walking, "cursor", (json_int_t)cr->cursor, "ships_walked",
                  (json_int_t)cr->ships_walked, "passes",
                  (json_int_t)cr->passes, "ships_fixed",
                  (json_int_t)cr->ships_fixed, "accounts_fixed",
                  (json_int_t)cr->accounts_fixed, "cpu_seconds",
                  (double)cr->cpu_ns / 1e9, "last_pass_ms",
                  (json_int_t)cr->last_pass_ms, "last_pass_cpu_seconds",
                  (double)cr->last_pass_cpu_ns / 1e9, "last_pass_ships",
                  (json_int_t)cr->last_pass_ships));
    json_object_set_new(o, "master_key",
                        json_string(master_how_text(h->key_how)));
    char key_id[2 * MASTER_ID_SIZE + 1];
    master_key_id(h->master_key, key_id);
    json_object_set_new(o, "master_key_id", json_string(key_id));
    json_object_set_new(o, "data_key", json_integer(h->keys.count));
    json_object_set_new(o, "reuses",
                        json_integer((json_int_t)h->fleet.reuse.hits));
    json_object_set_new(o, "websockets",
                        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "open",
                                  (json_int_t)h->ws.open, "opening",
                                  (json_int_t)(h->ws.n - h->ws.open), "opened",
                                  (json_int_t)h->ws.opened, "messages_in",
                                  (json_int_t)h->ws.messages_in, "messages_out",
                                  (json_int_t)h->ws.messages_out, "dropped",
                                  (json_int_t)h->ws.dropped, "refused",
                                  (json_int_t)h->ws.refused));
    json_object_set_new(o, "reuse_bytes",
                        json_integer((json_int_t)h->fleet.reuse.bytes));
    json_object_set_new(o, "thaws", json_integer((json_int_t)h->fleet.thaws));
    json_object_set_new(o, "evictions",
                        json_integer((json_int_t)h->fleet.evictions));
    json_object_set_new(o, "alarms", json_integer(alarms_count(&h->alarms)));
    json_object_set_new(o, "alarms_fired",
                        json_integer((json_int_t)h->fleet.alarms_fired));
    json_object_set_new(o, "wake_latency_ms",
                        admin__latency(&h->fleet.wake_latency));
    json_object_set_new(o, "thaw_latency_ms",
                        admin__latency(&h->fleet.thaw_latency));
    json_object_set_new(o, "queue_latency_ms",
                        admin__latency(&h->fleet.queue_latency));
    json_object_set_new(o, "compute_latency_ms",
                        admin__latency(&h->fleet.compute_latency));
    json_object_set_new(o, "durable_latency_ms",
                        admin__latency(&h->fleet.durable_latency));
    json_object_set_new(o, "rss_bytes",
                        json_integer((json_int_t)tree_self_rss()));
    json_object_set_new(o, "buffer_bytes",
                        json_integer((json_int_t)h->budget.held));
    json_object_set_new(o, "buffer_peak_bytes",
                        json_integer((json_int_t)h->budget.peak));
    json_object_set_new(o, "max_buffer_bytes",
                        json_integer((json_int_t)h->budget.cap));
    json_object_set_new(o, "programs_held", json_integer(h->n_held));
    json_object_set_new(o, "connections",
                        json_integer(http_server_connections(h->front)));
    json_object_set_new(o, "idle_connections",
                        json_integer(http_server_idle_connections(h->front)));
    json_object_set_new(o, "max_connections",
                        json_integer(host_front_max_conns(h)));
    json_object_set_new(o, "registry_bytes",
                        json_integer((json_int_t)registry_memory(&h->reg)));
    json_object_set_new(o, "store_cache_bytes",
                        json_integer((json_int_t)store_cache_bytes(h->store)));
    json_object_set_new(o, "start_ms", json_real(h->ready_ns / 1e6));
    json_object_set_new(o, "log_applied_index",
                        json_integer((json_int_t)log_applied_index(h->log)));
    json_object_set_new(o, "store_unflushed",
                        json_integer(store_unflushed(h->store)));
    host_reply_json(req, 200, o);
}

static void admin__send(struct host_ship *s, struct http_request *req)
{
    /* The request's body is the event's payload: move it, do not copy. */
    struct buf payload = req->body;
    buf_init(&req->body);
    http_request_drop_body(req);
    host_ship_deliver(s, HOST_JOB_ADMIN, req, FRAME_EVENT_POKE, &payload);
}

/* GET /v1/ships/ID/logs?after=OFFSET&bytes=N&wait=MS: the ship's
 * program's stderr (daemon/shiplog.c). */
static void admin__logs(struct host *h, struct http_request *req, uint32_t slot)
{
    char v[32];
    unsigned long long after = UINT64_MAX, bytes = HOST_SHIPLOG_READ_MAX;
    unsigned long long wait = 0;
    const char *a = admin__query(req->target, "after", v, sizeof v);
    if (a != NULL && !admin__number(a, (1ULL << 62), &after)) {
        host_reply_error(req, 400, "bad_request",
                         "after must be a byte offset, not %s", a);
        return;
    }
    const char *b = admin__query(req->target, "bytes", v, sizeof v);
    if (b != NULL &&
        (!admin__number(b, HOST_SHIPLOG_READ_MAX, &bytes) || bytes == 0)) {
        host_reply_error(req, 400, "bad_request",
                         "bytes must be from 1 to %u, not %s",
                         HOST_SHIPLOG_READ_MAX, b);
        return;
    }
    const char *w = admin__query(req->target, "wait", v, sizeof v);
    if (w != NULL && !admin__number(w, HOST_SHIPLOG_WAIT_MAX_MS, &wait)) {
        host_reply_error(req, 400, "bad_request",
                         "wait must be from 0 to %u ms, not %s",
                         HOST_SHIPLOG_WAIT_MAX_MS, w);
        return;
    }
    if (wait > 0 && after == UINT64_MAX) {
        host_reply_error(req, 400, "bad_request",
                         "wait needs after: the offset to wait past");
        return;
    }
    /* A request a follower passed on is waited for as long as an event
     * (daemon/forward.c): a wait never outlasts that. */
    if (wait > h->cfg.event_timeout_ms) {
        wait = h->cfg.event_timeout_ms;
    }
    host_shiplog_get(h, req, slot, after, (size_t)bytes, (unsigned)wait);
}

/* --- The status map: a ship and its descendants. --- */

/* Ships one tree answer holds at the most; past them it says truncated. */
#define ADMIN__TREE_MAX 10000

/* What a tree says of a ship's tier: "active" (waking, awake, sleeping),
 * "idle" (frozen) or "asleep". */
static const char *admin__tree_status(enum ship_state state)
{
    switch (state) {
    case SHIP_ASLEEP:
        return "asleep";
    case SHIP_FROZEN:
        return "idle";
    default:
        return "active";
    }
}

/* The node of ship sid in a tree, its "children" still empty, or NULL when
 * the registry has it no longer (a removal under way). lifetime is the
 * ship's own (0: the operator made it). */
static json_t *admin__tree_node(struct host *h, uint64_t sid, uint8_t lifetime)
{
    uint32_t slot = registry_seek(&h->reg, sid - 1);
    if (slot >= h->reg.n_slots) {
        return NULL;
    }
    const struct registry_ship *e = registry_get(&h->reg, slot);
    if (e->sid != sid || (e->flags & REGISTRY_REMOVED)) {
        return NULL;
    }
    const struct host_ship *s = e->live;
    enum ship_state state = s != NULL ? s->core.state : SHIP_ASLEEP;
    uint64_t last_event = 0, alarm;
    uint8_t hash[RECORD_HASH_SIZE];
    if (store_ship_head_get(h->store, sid, &last_event, hash, &alarm) != 0) {
        last_event = 0;
    }
    if (s != NULL && s->core.last_event > last_event) {
        last_event = s->core.last_event; /* computed, not yet applied */
    }
    char id[REGISTRY_ID_LEN + 1];
    registry_id(&h->reg, slot, id);
    const char *name = registry_name(&h->reg, slot);
    const char *life = ship_lifetime_name(lifetime);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "name", name[0] ? json_string(name) : json_null());
    json_object_set_new(o, "lifetime",
                        life != NULL ? json_string(life) : json_null());
    json_object_set_new(o, "status", json_string(admin__tree_status(state)));
    json_object_set_new(o, "state", json_string(ship_state_name(state)));
    json_object_set_new(o, "last_event", json_integer((json_int_t)last_event));
    if (e->last_active_ns != 0) {
        json_object_set_new(o, "last_active_ns",
                            json_integer((json_int_t)e->last_active_ns));
    }
    /* Measured only while the ship has a live object. */
    if (s != NULL) {
        json_object_set_new(o, "memory_bytes",
                            json_integer((json_int_t)s->core.memory));
    }
    json_object_set_new(o, "children", json_array());
    return o;
}

/* One budget's figure in a tree node: limit, used and left. */
static json_t *admin__budget_figure(uint64_t limit, uint64_t used)
{
    json_t *o = json_object();
    json_object_set_new(o, "limit", json_integer((json_int_t)limit));
    json_object_set_new(o, "used", json_integer((json_int_t)used));
    json_object_set_new(
        o, "left", json_integer((json_int_t)(used < limit ? limit - used : 0)));
    return o;
}

/* Give each node of a tree with a budget (core/sandbox.h) what is left of
 * it: the usage of its subtree, summed from the leaves up (nodes[] is in
 * breadth-first order, so a node's descendants come after it). In a
 * truncated tree the sums count what the walk saw. 0 or a code. */
static int admin__tree_budgets(struct host *h, const uint64_t *sids,
                               const size_t *parents, json_t **nodes, size_t n)
{
    struct admin__sum {
        uint64_t ships, bytes, cpu_ms;
    } *sum = mem_alloc((n ? n : 1) * sizeof *sum);
    if (sum == NULL) {
        return BERTH_ENOMEM;
    }
    int rv = 0;
    for (size_t i = 0; i < n && rv == 0; i++) {
        struct store_usage u;
        if ((rv = store_ship_usage(h->store, sids[i], &u)) == BERTH_ENOTFOUND) {
            memset(&u, 0, sizeof u); /* removed meanwhile */
            rv = 0;
        }
        sum[i] = (struct admin__sum){1, u.storage_bytes, u.cpu_us / 1000};
    }
    for (size_t i = n; i-- > 1 && rv == 0;) {
        sum[parents[i]].ships += sum[i].ships;
        sum[parents[i]].bytes += sum[i].bytes;
        sum[parents[i]].cpu_ms += sum[i].cpu_ms;
    }
    for (size_t i = 0; i < n && rv == 0; i++) {
        struct store_ship rec;
        struct sandbox sb;
        if (store_ship_get_sid(h->store, sids[i], &rec) != 0) {
            continue; /* removed meanwhile */
        }
        if (sandbox_decode(rec.sandbox, rec.sandbox_len, &sb) == 0 &&
            (sb.budget_ships || sb.budget_bytes || sb.budget_cpu_ms)) {
            json_t *b = json_object();
            if (sb.budget_ships) {
                json_object_set_new(
                    b, "ships",
                    admin__budget_figure(sb.budget_ships, sum[i].ships));
            }
            if (sb.budget_bytes) {
                json_object_set_new(
                    b, "storage_bytes",
                    admin__budget_figure(sb.budget_bytes, sum[i].bytes));
            }
            if (sb.budget_cpu_ms) {
                json_object_set_new(
                    b, "cpu_ms",
                    admin__budget_figure(sb.budget_cpu_ms, sum[i].cpu_ms));
            }
            json_object_set_new(nodes[i], "budget", b);
        }
        store_ship_clear(&rec);
    }
    mem_free(sum);
    return rv;
}

/* GET /v1/ships/ID/tree: the ship and its descendants, nested, walked from
 * the store's children breadth first (no depth costs stack), at most
 * ADMIN__TREE_MAX ships; a walk cut there says "truncated". Every
 * descendant is in the ship's account, so a scope that sees the ship sees
 * them all. */
static void admin__tree(struct host *h, struct http_request *req, uint32_t slot)
{
    uint64_t top = registry_get(&h->reg, slot)->sid;
    struct store_ship rec;
    uint8_t lifetime = 0;
    if (store_ship_get_sid(h->store, top, &rec) == 0) {
        lifetime = rec.lifetime;
        store_ship_clear(&rec);
    }
    uint64_t *sids = mem_alloc(ADMIN__TREE_MAX * sizeof *sids);
    size_t *parents = mem_alloc(ADMIN__TREE_MAX * sizeof *parents);
    json_t **nodes = mem_alloc(ADMIN__TREE_MAX * sizeof *nodes);
    json_t *root = admin__tree_node(h, top, lifetime);
    if (sids == NULL || parents == NULL || nodes == NULL || root == NULL) {
        host_reply_error(req, 503, "unavailable", "out of memory");
        goto out;
    }
    size_t n = 1;
    bool truncated = false;
    int rv = 0;
    sids[0] = top;
    nodes[0] = root;
    for (size_t i = 0; i < n && rv == 0 && !truncated; i++) {
        struct store_child *kids;
        size_t nk;
        rv = store_ship_children(h->store, sids[i], &kids, &nk);
        for (size_t k = 0; k < nk && rv == 0; k++) {
            if (n == ADMIN__TREE_MAX) {
                truncated = true;
                break;
            }
            json_t *o = admin__tree_node(h, kids[k].sid, kids[k].lifetime);
            if (o == NULL) {
                continue;
            }
            json_array_append_new(json_object_get(nodes[i], "children"), o);
            sids[n] = kids[k].sid;
            parents[n] = i;
            nodes[n++] = o; /* held by its parent's array */
        }
        mem_free(kids);
    }
    if (rv != 0) {
        host_reply_error(req, 503, "unavailable", "cannot read the ships: %s",
                         store_errmsg(h->store));
        goto out;
    }
    if ((rv = admin__tree_budgets(h, sids, parents, nodes, n)) != 0) {
        host_reply_error(req, 503, "unavailable", "cannot read the ships: %s",
                         err_str(rv));
        goto out;
    }
    json_object_set_new(root, "ships", json_integer((json_int_t)n));
    json_object_set_new(root, "truncated", json_boolean(truncated));
    host_reply_json(req, 200, root);
    root = NULL;
out:
    json_decref(root);
    mem_free(sids);
    mem_free(parents);
    mem_free(nodes);
}

/* --- The cluster. --- */

/* Split a probe's info text ("listen A admin B") into its two addresses. */
static void admin__info(json_t *o, const char *info)
{
    char listen[256] = "", admin[256] = "";
    if (info != NULL) {
        sscanf(info, "listen %255s admin %255s", listen, admin);
    }
    json_object_set_new(o, "listen",
                        listen[0] ? json_string(listen) : json_null());
    json_object_set_new(o, "admin",
                        admin[0] && strcmp(admin, "-") != 0 ? json_string(admin)
                                                            : json_null());
}

/* What this host let out below quorum, and what became of it. */
static json_t *admin__divergence(const struct host *h)
{
    json_t *d = json_object();
    json_object_set_new(d, "released_below_quorum",
                        json_integer((json_int_t)h->released_early));
    json_object_set_new(d, "watching", json_integer(h->n_watch));
    json_object_set_new(d, "survived",
                        json_integer((json_int_t)h->diverge_survived));
    json_object_set_new(d, "lost", json_integer((json_int_t)h->diverge_lost));
    json_object_set_new(d, "unknown",
                        json_integer((json_int_t)h->diverge_unknown));
    return d;
}

static void admin__cluster_cb(void *arg, int status,
                              const struct log_cluster *c)
{
    struct http_request *req = arg;
    struct host *h = req->data;
    if (status != 0) {
        host_reply_error(req, 503, "unavailable", "%s", err_str(status));
        return;
    }
    char hex[33];
    for (int i = 0; i < 16; i++) {
        snprintf(hex + 2 * i, 3, "%02x", c->cluster[i]);
    }
    json_t *hosts = json_array();
    for (unsigned i = 0; i < c->n_hosts; i++) {
        const struct log_host *lh = &c->hosts[i];
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer((json_int_t)lh->id));
        json_object_set_new(o, "peer", json_string(lh->peer));
        admin__info(o, lh->info);
        json_object_set_new(o, "role", json_string(lh->role));
        json_object_set_new(o, "leader", json_boolean(lh->leader));
        json_object_set_new(o, "self", json_boolean(lh->id == c->self));
        json_object_set_new(o, "online", json_boolean(lh->online));
        json_object_set_new(o, "applied",
                            json_integer((json_int_t)lh->applied));
        json_object_set_new(o, "lag", json_integer((json_int_t)lh->lag));
        host_beat_json(h, lh->id, o);
        json_array_append_new(hosts, o);
    }
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)c->self));
    json_object_set_new(o, "cluster", json_string(hex));
    json_object_set_new(o, "leader", json_integer((json_int_t)c->leader));
    json_object_set_new(o, "term", json_integer((json_int_t)c->term));
    json_object_set_new(o, "last_index",
                        json_integer((json_int_t)c->last_index));
    json_object_set_new(o, "peers_refused",
                        json_integer((json_int_t)c->refused));
    json_object_set_new(o, "hosts", hosts);
    json_object_set_new(o, "divergence", admin__divergence(h));
    host_reply_json(req, 200, o);
}

/* Joining another cluster from a running host: the host starts again as
 * itself, with --join, on an emptied data directory. Only a host that is a
 * cluster of one holding no ships may do this; anything else would drop
 * data. */
static void admin__rejoin_cb(uv_timer_t *t)
{
    struct host *h = t->data;
    char path[4200], moved[4300];
    /* The log and the store of the cluster of one go aside, not away: an
     * operator who joined by mistake can still look. */
    const char *parts[] = {"raft", "store.db", "store.db-wal", "store.db-shm"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", h->cfg.data_dir, parts[i]);
        snprintf(moved, sizeof moved, "%s/before-join.%s", h->cfg.data_dir,
                 parts[i]);
        if (rename(path, moved) != 0 && errno != ENOENT) {
            host_log("fatal", "cannot set the old log aside to join", "path",
                     path, "error", strerror(errno), NULL);
            _exit(70);
        }
    }
    /* The same command line, with --join. */
    char *args[128];
    int n = 0;
    static char cmdline[65536];
    FILE *f = fopen("/proc/self/cmdline", "r");
    size_t len = f != NULL ? fread(cmdline, 1, sizeof cmdline - 1, f) : 0;
    if (f != NULL) {
        fclose(f);
    }
    for (size_t off = 0; off < len && n < 124;) {
        char *a = cmdline + off;
        off += strlen(a) + 1;
        if (strcmp(a, "--join") == 0) {
            off += strlen(cmdline + off) + 1; /* and its value */
            continue;
        }
        if (strncmp(a, "--join=", 7) != 0) {
            args[n++] = a;
        }
    }
    args[n++] = "--join";
    args[n++] = h->rejoin;
    args[n] = NULL;
    host_log("info", "starting again to join a cluster", "through", h->rejoin,
             NULL);
    store_close(h->store);
    h->store = NULL;
    /* A front door passed by the service manager is not ours to bind
     * again: the process that follows takes it as this one did. */
    if (h->front_fd >= 0 &&
        notify_listen_fds_pass(h->front_fd, h->tls_fd) != 0) {
        host_log("warn", "cannot hand the front door's socket on", NULL);
    }
    execv("/proc/self/exe", args);
    host_log("fatal", "cannot start again", "error", strerror(errno), NULL);
    _exit(70);
}

json_t *host_fsck_json(const struct fsck_result *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(r->id));
    json_object_set_new(o, "name",
                        r->name[0] ? json_string(r->name) : json_null());
    json_object_set_new(o, "ok", json_boolean(r->ok));
    json_object_set_new(o, "events_checked",
                        json_integer((json_int_t)r->events));
    json_object_set_new(o, "first_event",
                        json_integer((json_int_t)r->first_event));
    json_object_set_new(o, "last_event",
                        json_integer((json_int_t)r->last_event));
    json_object_set_new(o, "snapshot_event",
                        json_integer((json_int_t)r->snapshot_event));
    json_object_set_new(o, "problem",
                        r->ok ? json_null() : json_string(r->problem));
    return o;
}

/* A fsck with --replay in progress: the ships' answers so far, and the
 * replays still to run, one at a time. */
struct admin__fsck {
    struct host *h;
    struct http_request *req;
    json_t *ships;   /* the answer's entries, one per ship checked */
    uint32_t *slots; /* each entry's ship */
    size_t n, next;  /* replays to run, and the next one */
    bool ok;
    /* Repairs (daemon/repair.h): the next entry to look at, while
     * repair. */
    bool repair;
    size_t count, rnext;
};

static void admin__fsck_next(struct admin__fsck *f);

static void admin__fsck_repaired(void *arg, bool repaired, const char *detail)
{
    struct admin__fsck *f = arg;
    struct host *h = f->h;
    const struct registry_ship *e = registry_get(&h->reg, f->slots[f->rnext]);
    json_t *o = json_array_get(f->ships, f->rnext);
    struct fsck_result r;
    if (repaired && fsck_ship(h->store, &h->keys, e->sid, &r) == 0) {
        o = host_fsck_json(&r);
        json_object_set_new(o, "repaired_from", json_string(detail));
        json_array_set_new(f->ships, f->rnext, o);
    } else {
        json_object_set_new(o, "repair", json_string(detail));
    }
    f->rnext++;
    admin__fsck_next(f);
}

/* Start the repair of the next ship found wrong; return whether one is on
 * its way. */
static bool admin__fsck_repair(struct admin__fsck *f)
{
    while (f->rnext < f->count) {
        json_t *o = json_array_get(f->ships, f->rnext);
        if (json_is_true(json_object_get(o, "ok"))) {
            f->rnext++;
            continue;
        }
        int rv =
            repair_start(f->h, f->slots[f->rnext], admin__fsck_repaired, f);
        if (rv == 0) {
            return true;
        }
        json_object_set_new(
            o, "repair",
            json_string(rv == BERTH_EBUSY
                            ? "not repaired: it has a program running (put "
                              "it to sleep first)"
                        : rv == BERTH_ENOTFOUND
                            ? "not repaired: no other host holds a copy"
                            : "not repaired: out of memory"));
        f->rnext++;
    }
    return false;
}

static void admin__fsck_replayed(void *arg, enum replay_verdict verdict,
                                 const char *detail)
{
    struct admin__fsck *f = arg;
    json_t *o = json_array_get(f->ships, f->next);
    json_t *r = json_object();
    json_object_set_new(r, "verdict",
                        json_string(replay_verdict_name(verdict)));
    json_object_set_new(r, "detail", json_string(detail));
    json_object_set_new(o, "replay", r);
    if (verdict == REPLAY_DIFFERENT || verdict == REPLAY_FAILED) {
        f->ok = false;
        json_object_set_new(o, "ok", json_false());
        json_object_set_new(o, "problem", json_string(detail));
        host_log("warn", "fsck: a ship's replay did not make its snapshot",
                 "ship", json_string_value(json_object_get(o, "id")), "problem",
                 detail, NULL);
    }
    f->next++;
    admin__fsck_next(f);
}

/* Start the next repair, then the next replay, or answer when none is
 * left. */
static void admin__fsck_next(struct admin__fsck *f)
{
    if (f->repair && admin__fsck_repair(f)) {
        return;
    }
    f->repair = false;
    while (f->next < f->n) {
        json_t *o = json_array_get(f->ships, f->next);
        if (!json_is_true(json_object_get(o, "ok"))) {
            f->next++; /* wrong already: nothing to replay from */
            continue;
        }
        if (replay_start(f->h, f->slots[f->next], admin__fsck_replayed, f) ==
            0) {
            return;
        }
        json_t *r = json_pack("{s:s, s:s}", "verdict", "failed", "detail",
                              "out of memory");
        json_object_set_new(o, "replay", r);
        json_object_set_new(o, "ok", json_false());
        f->ok = false;
        f->next++;
    }
    size_t i;
    json_t *s;
    f->ok = true;
    json_array_foreach(f->ships, i, s)
    {
        f->ok = f->ok && json_is_true(json_object_get(s, "ok"));
    }
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_boolean(f->ok));
    json_object_set_new(o, "ships", f->ships);
    host_reply_json(f->req, 200, o);
    mem_free(f->slots);
    mem_free(f);
}

/* POST /v1/fsck {"ships"?: [ID or NAME, ...], "replay"?: bool} (no ships:
 * every ship): check what this host's store holds of each (store/fsck.h)
 * and, with replay, whether each one's program makes its latest snapshot
 * again from its prior one (daemon/replay.h). Answered by the host asked,
 * leader or not: each host checks its own copy. The store is read on the
 * loop, a ship at a time; replays run one at a time. */
static void admin__fsck(struct host *h, struct http_request *req)
{
    char msg[BODY_ERRMSG_SIZE];
    struct buf names;
    bool replay, repair;
    buf_init(&names);
    int rv = body_parse_fsck(req->body.data, req->body.len, &names, &replay,
                             &repair, msg);
    if (rv != 0) {
        if (rv == BERTH_EINVAL) {
            host_reply_error(req, 400, "invalid", "%s", msg);
        } else {
            host_reply_error(req, 503, "unavailable", "out of memory");
        }
        buf_free(&names);
        return;
    }
    long named = strlist_count((const char *)names.data, names.len);
    size_t n = named > 0 ? (size_t)named : registry_count(&h->reg);
    struct admin__fsck *f = mem_calloc(1, sizeof *f);
    uint32_t *slots = mem_calloc(n > 0 ? n : 1, sizeof *slots);
    json_t *ships = json_array();
    if (f == NULL || slots == NULL || ships == NULL) {
        host_reply_error(req, 503, "unavailable", "out of memory");
        goto err;
    }
    size_t k = 0;
    if (named > 0) {
        size_t off = 0;
        const char *who;
        while ((who = strlist_next((const char *)names.data, names.len,
                                   &off)) != NULL) {
            uint32_t slot = registry_find(&h->reg, who);
            if (slot == REGISTRY_NONE) {
                host_reply_error(req, 404, "not_found", "no ship %s", who);
                goto err;
            }
            slots[k++] = slot;
        }
    } else {
        for (uint32_t slot = 0; slot < h->reg.n_slots && k < n; slot++) {
            if (!(registry_get(&h->reg, slot)->flags & REGISTRY_REMOVED)) {
                slots[k++] = slot;
            }
        }
    }
    buf_free(&names);
    f->ok = true;
    size_t kept = 0;
    for (size_t i = 0; i < k; i++) {
        struct fsck_result r;
        rv = fsck_ship(h->store, &h->keys, registry_get(&h->reg, slots[i])->sid,
                       &r);
        if (rv == BERTH_ENOTFOUND) {
            continue; /* removed meanwhile */
        }
        if (rv != 0) {
            host_reply_error(req, 503, "unavailable",
                             "cannot read the store: %s",
                             store_errmsg(h->store));
            goto err;
        }
        f->ok = f->ok && r.ok;
        json_array_append_new(ships, host_fsck_json(&r));
        slots[kept++] = slots[i];
        if (!r.ok) {
            host_log("warn", "fsck: a ship's stored data is wrong", "ship",
                     r.id, "problem", r.problem, NULL);
        }
    }
    f->h = h;
    f->req = req;
    f->ships = ships;
    f->slots = slots;
    f->n = replay ? kept : 0; /* without replay: nothing more to run */
    f->count = kept;
    f->repair = repair;
    admin__fsck_next(f);
    return;

err:
    buf_free(&names);
    json_decref(ships);
    mem_free(slots);
    mem_free(f);
}

/* GET /v1/cluster/secret: what a host that joins needs. The admin API is
 * local only; whoever reaches it controls the host anyway. */
static void admin__cluster_secret(struct host *h, struct http_request *req)
{
    char hex[2 * sizeof h->cluster_secret + 1];
    if (h->cfg.peer == NULL) {
        host_reply_error(req, 409, "conflict",
                         "this host has no --peer, and so no cluster secret");
        return;
    }
    sodium_bin2hex(hex, sizeof hex, h->cluster_secret,
                   sizeof h->cluster_secret);
    json_t *o = json_object();
    json_object_set_new(o, "secret", json_string(hex));
    sodium_memzero(hex, sizeof hex);
    host_reply_json(req, 200, o);
}

/* POST /v1/cluster/join {"peer": ADDRESS, "secret": HEX}: the secret, if
 * given, is kept in DATA/cluster.key for the start that joins. */
static void admin__cluster_join(struct host *h, struct http_request *req)
{
    char msg[BODY_ERRMSG_SIZE], errmsg[ERRMSG_SIZE], path[4200];
    uint8_t bin[BODY_SECRET_SIZE];
    bool has_secret;
    char *peer;
    _Static_assert(sizeof bin == sizeof h->cluster_secret,
                   "a join's secret is the cluster's");
    int rv = body_parse_join(req->body.data, req->body.len, &peer, bin,
                             &has_secret, msg);
    if (rv != 0) {
        if (rv == BERTH_EINVAL) {
            host_reply_error(req, 400, "invalid", "%s", msg);
        } else {
            host_reply_error(req, 503, "unavailable", "out of memory");
        }
        return;
    }
    if (h->cfg.peer == NULL) {
        host_reply_error(req, 409, "conflict",
                         "this host has no --peer: start it with one to let "
                         "a cluster reach it");
    } else if (log_hosts(h->log) > 1) {
        host_reply_error(req, 409, "conflict",
                         "this host is a member of a cluster of %u already",
                         log_hosts(h->log));
    } else if (registry_count(&h->reg) > 0) {
        host_reply_error(req, 409, "conflict",
                         "this host holds %u ships; only a host with none "
                         "joins another cluster (its log would be dropped)",
                         registry_count(&h->reg));
    } else if (strlen(peer) >= sizeof h->rejoin || !log_address_valid(peer)) {
        host_reply_error(req, 400, "invalid",
                         "%s is not a peer address (an IP and a port)", peer);
    } else if (h->rejoin[0] != '\0') {
        host_reply_error(req, 409, "conflict", "already joining %s", h->rejoin);
    } else if (has_secret &&
               (snprintf(path, sizeof path, "%s/cluster.key", h->cfg.data_dir),
                secretfile_write(path, h->master_key, "clusterk", bin,
                                 sizeof bin, errmsg)) != 0) {
        host_reply_error(req, 500, "internal", "%s", errmsg);
    } else {
        if (has_secret) {
            memcpy(h->cluster_secret, bin, sizeof bin);
        }
        snprintf(h->rejoin, sizeof h->rejoin, "%s", peer);
        json_t *o = json_object();
        json_object_set_new(o, "joining", json_string(peer));
        host_reply_json(req, 202, o);
        /* After the answer has left. */
        uv_timer_start(&h->stop_timer, admin__rejoin_cb, 200, 0);
        h->stop_timer.data = h;
    }
    sodium_memzero(bin, sizeof bin);
    mem_free(peer);
}

/* DELETE /v1/cluster/hosts/<id or peer address>. */
static void admin__cluster_remove(struct host *h, struct http_request *req,
                                  const char *who)
{
    char errmsg[ERRMSG_SIZE];
    char *end;
    uint64_t id = strtoull(who, &end, 10);
    if (*who == '\0' || *end != '\0') {
        id = log_host_by_peer(h->log, who);
    }
    if (id == 0) {
        host_reply_error(req, 404, "not_found", "no host %s in the cluster",
                         who);
        return;
    }
    int rv = log_remove(h->log, id, errmsg);
    if (rv != 0) {
        host_reply_error(req,
                         rv == BERTH_ENOTFOUND ? 404
                         : rv == BERTH_EBUSY   ? 409
                                               : 503,
                         rv == BERTH_ENOTFOUND ? "not_found"
                         : rv == BERTH_EBUSY   ? "busy"
                                               : "leader_changed",
                         "%s", errmsg);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "removing", json_integer((json_int_t)id));
    host_reply_json(req, 202, o);
}

/* A key rotation proposed, waiting for its entry to apply. */
struct admin__rotation {
    struct host *host;
    struct http_request *req;
};

static void admin__rotated(void *arg, int status, int result)
{
    struct admin__rotation *op = arg;
    struct host *h = op->host;
    (void)result;
    h->rotating = false;
    if (status != 0) {
        host_reply_error(op->req, 503, "unavailable",
                         "the key rotation was not committed: %s",
                         err_str(status));
    } else {
        char id[2 * MASTER_ID_SIZE + 1];
        master_key_id(h->master_key, id);
        json_t *o = json_object();
        json_object_set_new(o, "master_key_id", json_string(id));
        json_object_set_new(o, "data_key", json_integer(h->keys.count));
        host_reply_json(op->req, 200, o);
    }
    mem_free(op);
}

/* POST /v1/key/rotate: a new master key, wrapped under the one every host
 * holds, and every data key and a new one wrapped under the new master
 * key, in one KEY_ROTATE entry; each host replaces its master key as it
 * applies it (host.c, host__key_rotated). */
static void admin__key_rotate(struct host *h, struct http_request *req)
{
    if (h->rotating) {
        host_reply_error(req, 409, "busy", "a key rotation is under way");
        return;
    }
    if (h->keys.count >= SEAL_KEYS_MAX) {
        host_reply_error(req, 409, "conflict",
                         "the store holds %d data keys, the most it can",
                         SEAL_KEYS_MAX);
        return;
    }
    uint8_t next[MASTER_KEY_SIZE], data[SEAL_KEY_SIZE];
    uint8_t wrapped_master[KEYWRAP_SIZE];
    uint8_t keys[SEAL_KEYS_MAX * KEYWRAP_SIZE];
    char id[2 * MASTER_ID_SIZE + 1];
    struct record_key_rotate r = {.count = h->keys.count + 1};
    randombytes_buf(next, sizeof next);
    randombytes_buf(data, sizeof data);
    master_key_id(h->master_key, id);
    memcpy(r.old_id, id, RECORD_KEY_ID_SIZE);
    keywrap_wrap_key(wrapped_master, h->master_key, KEYWRAP_MASTER, 0, next);
    for (uint32_t i = 0; i < r.count; i++) {
        keywrap_wrap_key(keys + (size_t)i * KEYWRAP_SIZE, next, KEYWRAP_DATA,
                         i + 1, i < h->keys.count ? h->keys.data[i] : data);
    }
    sodium_memzero(next, sizeof next);
    sodium_memzero(data, sizeof data);
    r.master = wrapped_master;
    r.keys = keys;
    struct admin__rotation *op = mem_calloc(1, sizeof *op);
    struct buf e;
    buf_init(&e);
    int rv = op == NULL ? BERTH_ENOMEM : record_encode_key_rotate(&e, &r);
    if (rv == 0) {
        op->host = h;
        op->req = req;
        rv = host_propose_entry(h, &e, admin__rotated, op);
    }
    if (rv != 0) {
        buf_free(&e);
        mem_free(op);
        host_reply_error(req, 503, "unavailable",
                         "cannot log the key rotation: %s", err_str(rv));
        return;
    }
    h->rotating = true;
    host_log("info", "key rotation proposed", "from", id, NULL);
}

/* POST /v1/tls/reload: this host's certificate, again from its files. */
static void admin__tls_reload(struct host *h, struct http_request *req)
{
    char errmsg[ERRMSG_SIZE];
    int rv = host_tls_reload(h, errmsg);
    if (rv == BERTH_ENOTFOUND) {
        host_reply_error(req, 404, "no_tls", "%s", errmsg);
        return;
    }
    if (rv != 0) {
        host_reply_error(req, 422, "invalid_certificate",
                         "%s; the certificate loaded before still serves",
                         errmsg);
        return;
    }
    char what[400];
    http_tls_describe(h->tls, what, sizeof what);
    host_reply_json(req, 200,
                    json_pack("{s:b,s:s}", "reloaded", 1, "cert", what));
}

void host_admin_handle(struct http_request *req, void *arg)
{
    struct host *h = arg;
    const char *m = req->method;
    char path[512];
    snprintf(path, sizeof path, "%.*s", (int)strcspn(req->target, "?"),
             req->target);

    /* The dashboard's page holds no data: every host serves its own, with
     * no token, leader or not (daemon/dashboard.h). */
    if (dashboard_path(path)) {
        dashboard_serve(req, path);
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        bool ok = host_serving(h);
        http_reply(req, ok ? 200 : 503, "text/plain",
                   ok ? "ok\n" : "starting\n", ok ? 3 : 9, NULL);
        return;
    }
    /* An account's scope reaches only its ships (core/account.h). */
    uint64_t scope;
    if (!host_request_scope(req, &scope)) {
        return;
    }
    if (!account_route_allowed(scope, m, path)) {
        host_reply_error(req, 403, "forbidden",
                         "an account may use only /v1/ships and its ships, "
                         "not %s %s",
                         m, path);
        return;
    }
    /* A host that does not lead passes everything to the leader but what
     * describes this host (host_admin_local). */
    if ((!h->leading || h->stopping) && !host_admin_local(m, path)) {
        host_forward(h, req, HTTP_FORWARD_ADMIN);
        return;
    }
    /* What this host knows of itself and of the cluster is there as soon
     * as it is up, leader or not: it is how one finds out why not. */
    if (h->ready && strcmp(path, "/v1/stats") == 0) {
        if (strcmp(m, "GET") != 0) {
            goto method;
        }
        admin__stats(h, req);
        return;
    }
    if (h->ready && strcmp(path, "/metrics") == 0) {
        if (strcmp(m, "GET") != 0) {
            goto method;
        }
        host_metrics_handle(h, req);
        return;
    }
    if (h->ready && strcmp(path, "/v1/cluster") == 0) {
        if (strcmp(m, "GET") != 0) {
            goto method;
        }
        req->data = h;
        if (log_cluster(h->log, admin__cluster_cb, req) != 0) {
            host_reply_error(req, 503, "unavailable", "out of memory");
        }
        return;
    }
    if (h->ready && strcmp(path, "/v1/fsck") == 0) {
        if (strcmp(m, "POST") != 0) {
            goto method;
        }
        admin__fsck(h, req);
        return;
    }
    if (h->ready && strcmp(path, "/v1/cluster/secret") == 0) {
        if (strcmp(m, "GET") != 0) {
            goto method;
        }
        admin__cluster_secret(h, req);
        return;
    }
    if (strcmp(path, "/v1/tls/reload") == 0) {
        if (strcmp(m, "POST") != 0) {
            goto method;
        }
        admin__tls_reload(h, req);
        return;
    }
    if (!host_serving(h)) {
        host_reply_error(req, 503, "starting", "host is starting");
        return;
    }
    if (strcmp(path, "/v1/cluster/join") == 0) {
        if (strcmp(m, "POST") != 0) {
            goto method;
        }
        admin__cluster_join(h, req);
        return;
    }
    if (strncmp(path, "/v1/cluster/hosts/", 18) == 0) {
        if (strcmp(m, "DELETE") != 0) {
            goto method;
        }
        admin__cluster_remove(h, req, path + 18);
        return;
    }
    if (strcmp(path, "/v1/tokens") == 0 ||
        strncmp(path, "/v1/tokens/", 11) == 0) {
        host_tokens_handle(h, req, path);
        return;
    }
    if (strcmp(path, "/v1/accounts") == 0 ||
        strncmp(path, "/v1/accounts/", 13) == 0 ||
        strcmp(path, "/v1/anonymous") == 0) {
        host_accounts_handle(h, req, path);
        return;
    }
    if (strcmp(path, "/v1/key/rotate") == 0) {
        if (strcmp(m, "POST") != 0) {
            goto method;
        }
        admin__key_rotate(h, req);
        return;
    }
    if (strcmp(path, "/v1/imports") == 0) {
        if (strcmp(m, "POST") != 0) {
            goto method;
        }
        host_ship_import(h, req);
        return;
    }
    if (strcmp(path, "/v1/ships") == 0) {
        if (strcmp(m, "GET") == 0) {
            admin__list(h, req, scope);
        } else if (strcmp(m, "POST") == 0) {
            host_ship_create(h, req);
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
        uint32_t slot = host_ship_lookup(h, name);
        /* Another account's ship is not there, as far as this scope can
         * tell: the same 404 as a ship that does not exist. */
        if (slot == REGISTRY_NONE || !host_ship_visible(h, scope, slot)) {
            host_reply_error(req, 404, "not_found", "no ship named %s", name);
            return;
        }
        if (*action == '\0' && strcmp(m, "GET") == 0) {
            host_reply_json(req, 200, admin__ship_json(h, slot));
            return;
        }
        if (strcmp(action, "/export") == 0) {
            if (strcmp(m, "GET") != 0) {
                goto method;
            }
            host_ship_export(h, req, slot);
            return;
        }
        if (strcmp(action, "/tree") == 0) {
            if (strcmp(m, "GET") != 0) {
                goto method;
            }
            admin__tree(h, req, slot);
            return;
        }
        if (strcmp(action, "/resize") == 0) {
            if (strcmp(m, "POST") != 0) {
                goto method;
            }
            host_ship_resize(h, req, slot);
            return;
        }
        if (strcmp(action, "/logs") == 0) {
            if (strcmp(m, "GET") != 0) {
                goto method;
            }
            admin__logs(h, req, slot);
            return;
        }
        if (*action == '\0' ? strcmp(m, "DELETE") != 0
                            : strcmp(m, "POST") != 0) {
            goto method;
        }
        if (strcmp(action, "/block") == 0 || strcmp(action, "/unblock") == 0) {
            if (strcmp(m, "POST") != 0) {
                goto method;
            }
            admin__block(h, req, slot, strcmp(action, "/block") == 0);
            return;
        }
        if (*action != '\0' && strcmp(action, "/send") != 0 &&
            strcmp(action, "/sleep") != 0 && strcmp(action, "/wake") != 0 &&
            strcmp(action, "/kill") != 0) {
            goto notfound;
        }
        struct host_ship *s = host_ship_live(h, slot);
        if (s == NULL) {
            host_reply_error(req, 503, "unavailable", "out of memory");
            return;
        }
        if (*action == '\0') {
            host_ship_remove(s, req);
            return;
        }
        if ((strcmp(action, "/send") == 0 || strcmp(action, "/wake") == 0) &&
            host_ship_disabled(h, slot)) {
            host_reply_error(req, 403, "account_disabled",
                             "ship %s belongs to a disabled account", name);
            return;
        }
        if (strcmp(action, "/send") == 0) {
            admin__send(s, req);
        } else if (strcmp(action, "/sleep") == 0) {
            host_ship_sleep(s, req);
        } else if (strcmp(action, "/kill") == 0) {
            host_ship_kill(s, req);
        } else {
            host_ship_wake(s, req);
        }
        return;
    }
notfound:
    host_reply_error(req, 404, "not_found", "no such endpoint: %s %s", m, path);
    return;
method:
    host_reply_error(req, 405, "method_not_allowed", "%s is not allowed on %s",
                     m, path);
}
