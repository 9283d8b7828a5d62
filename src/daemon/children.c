/* Children and mail on the host (docs/design.md, "Children and mail").
 *
 * What a program's SPAWN, RELEASE and DESTROY effects become in the log
 * (the fleet's effect_entry operation), and, on the leader, the delivery of
 * mail: each ship's mail goes to its program one piece at a time, in seq
 * order, as a FLEET_JOB_MAIL job whose logged event takes it. What the
 * program refuses, or fails on, is dropped by an entry of its own, so that
 * no piece of mail can make a ship fail for ever. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/gate.h"
#include "core/quota.h"
#include "core/record.h"
#include "core/sandbox.h"
#include "daemon/host.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "lib/strlist.h"
#include "store/shipkey.h"

/* Retry mail that could not be delivered (a ship busy, its account
 * disabled) this much later. */
#define CHILDREN__RETRY_MS 5000

/* Open ship's signing key into sk (64 bytes); 0 or a code. */
static int children__secret_key(struct host *h, const struct store_ship *ship,
                                uint8_t *sk)
{
    uint8_t own[SEAL_OWN_KEY_SIZE];
    bool has_own;
    int rv = shipkey_open(h->store, &h->keys, ship, sk, own, &has_own);
    sodium_memzero(own, sizeof own);
    return rv;
}

/* Append to out the MAIL entry that gives ship target an event of kind
 * with the len bytes at p as its payload, sealed under the target's key. */
static int children__mail(struct host *h, uint64_t target, uint8_t kind,
                          const uint8_t *p, size_t len, struct buf *out)
{
    uint8_t nonce[SEAL_NONCE_SIZE];
    randombytes_buf(nonce, sizeof nonce);
    struct buf body, e;
    buf_init(&body);
    buf_init(&e);
    uint8_t own[SEAL_OWN_KEY_SIZE];
    int rv =
        record_seal_mail(&body, &h->keys, host_ship_own_key(h, target, own),
                         target, kind, nonce, p, len);
    sodium_memzero(own, sizeof own);
    if (rv == 0) {
        struct record_mail m = {
            .target = target, .kind = kind, .body = body.data, .len = body.len};
        rv = record_encode_mail(&e, &m);
    }
    if (rv == 0) {
        rv = record_effects_add(out, e.data, e.len);
    }
    buf_free(&body);
    buf_free(&e);
    return rv;
}

/* Append the MAIL entry that tells ship sid its SPAWN tag made nothing, and
 * why; the event is logged with it. */
static int children__refuse(struct host *h, uint64_t sid, uint32_t tag,
                            const char *why, struct buf *out)
{
    struct frame_child c = {.what = FRAME_CHILD_FAILED,
                            .tag = tag,
                            .id = "",
                            .detail = why,
                            .detail_len = strlen(why)};
    struct buf body;
    buf_init(&body);
    int rv = frame_encode_child(&body, &c);
    if (rv == 0) {
        rv =
            children__mail(h, sid, FRAME_EVENT_CHILD, body.data, body.len, out);
    }
    buf_free(&body);
    return rv;
}

/* Append the MAIL entry that gives ship sender (if it still exists) the
 * RECEIPT r of a message it sent. */
static int children__receipt(struct host *h, const char *sender,
                             size_t sender_len, const struct frame_receipt *r,
                             struct buf *out)
{
    char id[FRAME_ID_MAX + 1];
    snprintf(id, sizeof id, "%.*s", (int)sender_len, sender);
    struct store_ship ship;
    int rv = store_ship_get(h->store, id, &ship);
    if (rv == BERTH_ENOTFOUND) {
        return 0; /* gone: nobody to tell */
    }
    if (rv != 0) {
        return rv;
    }
    uint64_t sid = ship.sid;
    store_ship_clear(&ship);
    struct buf body;
    buf_init(&body);
    rv = frame_encode_receipt(&body, r);
    if (rv == 0) {
        rv = children__mail(h, sid, FRAME_EVENT_RECEIPT, body.data, body.len,
                            out);
    }
    buf_free(&body);
    return rv;
}

/* Append a string to a string list. */
static int children__list_add(struct buf *list, const uint8_t *p, size_t n)
{
    if (memchr(p, '\0', n) != NULL) {
        return BERTH_EINVAL;
    }
    int rv = buf_append(list, p, n);
    return rv != 0 ? rv : buf_put_u8(list, 0);
}

/* Read the SPAWN's options into args and env; 0, or BERTH_EINVAL with why
 * (ERRMSG_SIZE bytes) set. */
static int children__options(const struct frame_spawn *sp, struct buf *args,
                             struct buf *env, struct buf *access,
                             struct buf *send, struct sandbox *want, char *why)
{
    size_t off = 0;
    uint8_t kind;
    const uint8_t *data;
    size_t n;
    while (frame_spawn_next_option(sp, &off, &kind, &data, &n) == 0) {
        int rv;
        if (kind == FRAME_SPAWN_ARG) {
            rv = children__list_add(args, data, n);
        } else if (kind == FRAME_SPAWN_ENV) {
            const uint8_t *eq = memchr(data, '=', n);
            if (eq == NULL || eq == data ||
                (n >= 11 && memcmp(data, "BERTH_SHIP=", 11) == 0) ||
                (n >= 11 && memcmp(data, "BERTH_HOST=", 11) == 0)) {
                err_printf(why, "an ENV option must be KEY=VALUE, and not "
                                "BERTH_SHIP or BERTH_HOST");
                return BERTH_EINVAL;
            }
            rv = children__list_add(env, data, n);
        } else if (kind == FRAME_SPAWN_ACCESS) {
            if (n == 0 || n > FRAME_ID_MAX) {
                err_printf(why, "an ACCESS option must be a ship's id");
                return BERTH_EINVAL;
            }
            rv = children__list_add(access, data, n);
        } else if (kind == FRAME_SPAWN_SEND_TO) {
            if (n == 0 || n > FRAME_ID_MAX) {
                err_printf(why, "a SEND_TO option must be a ship's id");
                return BERTH_EINVAL;
            }
            want->flags |= SANDBOX_SEND_LIST;
            rv = children__list_add(send, data, n);
        } else if (kind == FRAME_SPAWN_SANDBOX &&
                   (n == FRAME_SPAWN_SANDBOX_SIZE ||
                    n == FRAME_SPAWN_SANDBOX_PIDS_SIZE)) {
            if (data[0] & ~SANDBOX_FLAGS) {
                err_printf(why, "unknown sandbox flags 0x%02x", data[0]);
                return BERTH_EINVAL;
            }
            want->flags |= data[0];
            want->memory_bytes = get_le64(data + 1);
            want->cpu_millis = get_le32(data + 9);
            want->events_per_s = get_le32(data + 13);
            want->pids = n == FRAME_SPAWN_SANDBOX_PIDS_SIZE
                             ? get_le32(data + FRAME_SPAWN_SANDBOX_SIZE)
                             : 0;
            rv = 0;
        } else if (kind == FRAME_SPAWN_BUDGET && n == FRAME_SPAWN_BUDGET_SIZE) {
            want->budget_ships = get_le64(data);
            want->budget_bytes = get_le64(data + 8);
            want->budget_cpu_ms = get_le64(data + 16);
            rv = 0;
        } else {
            err_printf(why, "unknown or malformed SPAWN option %u",
                       (unsigned)kind);
            return BERTH_EINVAL;
        }
        if (rv == BERTH_EINVAL) {
            err_printf(why, "an option holds a NUL byte");
        }
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

/* Count the ships of the tree under sid (itself included) and their
 * storage. */
static int children__tree_usage(struct host *h, uint64_t sid, uint64_t *ships,
                                uint64_t *bytes, uint64_t *cpu_ms)
{
    uint64_t *todo = mem_alloc(sizeof *todo);
    size_t n = 1, cap = 1;
    int rv = todo == NULL ? BERTH_ENOMEM : 0;
    if (todo != NULL) {
        todo[0] = sid;
    }
    *ships = *bytes = *cpu_ms = 0;
    while (rv == 0 && n > 0) {
        uint64_t at = todo[--n];
        struct store_usage u;
        if ((rv = store_ship_usage(h->store, at, &u)) != 0) {
            break;
        }
        (*ships)++;
        *bytes += u.storage_bytes;
        *cpu_ms += u.cpu_us / 1000;
        struct store_child *kids;
        size_t nk;
        if ((rv = store_ship_children(h->store, at, &kids, &nk)) != 0) {
            break;
        }
        for (size_t i = 0; i < nk && rv == 0; i++) {
            if (n == cap) {
                uint64_t *p = mem_realloc(todo, cap * 2 * sizeof *p);
                if (p == NULL) {
                    rv = BERTH_ENOMEM;
                    break;
                }
                todo = p;
                cap *= 2;
            }
            todo[n++] = kids[i].sid;
        }
        mem_free(kids);
    }
    mem_free(todo);
    return rv;
}

/* Whether one more ship fits the budgets of parent and of each of its
 * ancestors (a budget covers a ship and its descendants together): 0,
 * BERTH_ELIMIT with why set, or a failure. */
static int children__budget_ok(struct host *h, const struct store_ship *parent,
                               char *why)
{
    struct store_ship at;
    int rv = store_ship_get_sid(h->store, parent->sid, &at);
    /* Bounded: a chain of ancestors ends, and sids only go up it. */
    for (int depth = 0; rv == 0 && depth < 1024; depth++) {
        struct sandbox sb;
        uint64_t ships, bytes, cpu_ms, up = at.parent;
        if (sandbox_decode(at.sandbox, at.sandbox_len, &sb) == 0 &&
            (sb.budget_ships != 0 || sb.budget_bytes != 0 ||
             sb.budget_cpu_ms != 0)) {
            rv = children__tree_usage(h, at.sid, &ships, &bytes, &cpu_ms);
            const char *code = NULL, *unit = NULL;
            uint64_t limit = 0, used = 0;
            if (rv == 0 && sb.budget_ships != 0 &&
                ships + 1 > sb.budget_ships) {
                code = "budget_ships", unit = "ships";
                limit = sb.budget_ships, used = ships;
            } else if (rv == 0 && sb.budget_bytes != 0 &&
                       bytes >= sb.budget_bytes) {
                code = "budget_storage", unit = "bytes";
                limit = sb.budget_bytes, used = bytes;
            } else if (rv == 0 && sb.budget_cpu_ms != 0 &&
                       cpu_ms >= sb.budget_cpu_ms) {
                code = "budget_cpu", unit = "ms of CPU";
                limit = sb.budget_cpu_ms, used = cpu_ms;
            }
            if (code != NULL) {
                err_printf(why,
                           "%s: ship %s's budget is %llu %s, and it has "
                           "%llu",
                           code, at.id, (unsigned long long)limit, unit,
                           (unsigned long long)used);
                rv = BERTH_ELIMIT;
            }
        }
        store_ship_clear(&at);
        if (rv != 0 || up == 0) {
            break;
        }
        rv = store_ship_get_sid(h->store, up, &at);
        if (rv == BERTH_ENOTFOUND) {
            return 0;
        }
    }
    return rv == BERTH_ENOTFOUND ? 0 : rv;
}

/* The SHIP_BATCH entry of a child of parent, appended to out; a SPAWN the
 * host cannot carry out appends the parent's CHILD FAILED instead. */
static int children__spawn(struct host *h, const struct store_ship *parent,
                           const uint8_t *p, size_t len, struct buf *out)
{
    struct frame_spawn sp;
    char why[ERRMSG_SIZE] = "";
    struct buf args, env, allow, send, blob, e;
    struct sandbox want = {0}, mine, given;
    const char *no = NULL;
    buf_init(&args);
    buf_init(&env);
    buf_init(&allow);
    buf_init(&send);
    buf_init(&blob);
    buf_init(&e);
    if (frame_decode_spawn(p, len, &sp) != 0) {
        return BERTH_EMALFORMED; /* checked by the fleet already */
    }
    char program[4096];
    if (sp.program_len == 0) {
        snprintf(program, sizeof program, "%s", parent->program);
    } else if (sp.program_len < sizeof program) {
        memcpy(program, sp.program, sp.program_len);
        program[sp.program_len] = '\0';
    } else {
        program[0] = '\0';
    }
    struct stat st;
    struct quota_refusal q;
    int rv = children__options(&sp, &args, &env, &allow, &send, &want, why);
    want.send = (const char *)send.data;
    want.send_len = send.len;
    if (rv == BERTH_ENOMEM) {
        goto out;
    }
    if (rv != 0) {
        /* why says it */
    } else if (sp.lifetime < FRAME_LIFETIME_ROOT ||
               sp.lifetime > FRAME_LIFETIME_LEASED) {
        err_printf(why, "lifetime %u is not supported", (unsigned)sp.lifetime);
    } else if (sp.lifetime >= FRAME_LIFETIME_RESETTING &&
               sp.lifetime_ms < FRAME_LIFETIME_MIN_MS) {
        err_printf(why, "a resetting or leased lifetime takes at least %u ms",
                   (unsigned)FRAME_LIFETIME_MIN_MS);
    } else if (program[0] != '/' ||
               (sp.program_len > 0 &&
                memchr(sp.program, '\0', sp.program_len) != NULL) ||
               stat(program, &st) != 0 || !S_ISREG(st.st_mode) ||
               access(program, X_OK) != 0) {
        err_printf(why, "the program must be an absolute path to an executable "
                        "file");
    } else if (sandbox_decode(parent->sandbox, parent->sandbox_len, &mine) !=
               0) {
        err_printf(why, "the parent's sandbox does not decode");
    } else if (mine.flags & SANDBOX_NO_SPAWN) {
        err_printf(why, "sandbox: this ship may not spawn");
    } else if (sandbox_inherit(&mine, &want, &given, &no) != 0) {
        err_printf(why, "sandbox: %s", no);
    } else if ((rv = children__budget_ok(h, parent, why)) != 0) {
        if (rv != BERTH_ELIMIT) {
            goto out;
        }
        rv = 0;
    } else if (!host_quota_create_ok(h, parent->account, 1, &q)) {
        err_printf(why, "%s: the account's %s limit is %llu, and it has %llu",
                   quota_code(q.which), quota_name(q.which),
                   (unsigned long long)q.limit, (unsigned long long)q.used);
    }
    if (why[0] != '\0') {
        rv = children__refuse(h, parent->sid, sp.tag, why, out);
        goto out;
    }
    if (!sandbox_empty(&given) && (rv = sandbox_encode(&blob, &given)) != 0) {
        goto out;
    }
    uint8_t pk[32];
    struct record_ship_batch b = {
        .program = program,
        .program_len = strlen(program),
        .name = "",
        .flags = parent->acks != GATE_ACKS_DEFAULT ? RECORD_BATCH_ACKS : 0,
        .acks = parent->acks,
        .account = parent->account,
        .created_ns = host_now_ns(),
        .args = (const char *)args.data,
        .args_len = args.len,
        .env = (const char *)env.data,
        .env_len = env.len,
        .access = (const char *)allow.data,
        .access_len = allow.len,
        .sandbox = blob.data,
        .sandbox_len = blob.len,
        .first = 1,
        .count = 1,
        .public_keys = pk,
        .parent = parent->sid,
        .lifetime = sp.lifetime,
        .lifetime_ms = sp.lifetime_ms,
        .tag = sp.tag,
    };
    /* A clash of 80-bit ids is all but impossible; should one happen, a
     * new key is drawn. */
    uint8_t seed[32];
    for (int attempt = 0; attempt < 4; attempt++) {
        uint8_t sk[64];
        char id[REGISTRY_ID_LEN + 1];
        randombytes_buf(seed, sizeof seed);
        crypto_sign_seed_keypair(pk, sk, seed);
        sodium_memzero(sk, sizeof sk);
        registry_id_encode(pk, REGISTRY_KEY_SIZE, id);
        if (registry_find(&h->reg, id) == REGISTRY_NONE) {
            break;
        }
    }
    uint8_t nonce[SEAL_NONCE_SIZE];
    randombytes_buf(nonce, sizeof nonce);
    b.seeds = seed;
    /* A child that cannot outlive its parent keeps its key sealed under
     * the parent's (store/shipkey.h). */
    uint8_t parent_own[SEAL_OWN_KEY_SIZE];
    if (frame_lifetime_bound(sp.lifetime)) {
        b.parent_own = host_ship_own_key(h, parent->sid, parent_own);
    }
    rv = record_encode_ship_batch(&e, &b, &h->keys, nonce);
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(parent_own, sizeof parent_own);
    if (rv == 0) {
        rv = record_effects_add(out, e.data, e.len);
    }
out:
    buf_free(&args);
    buf_free(&env);
    buf_free(&allow);
    buf_free(&send);
    buf_free(&blob);
    buf_free(&e);
    return rv;
}

/* The SHIP_DESTROY entry of a DESTROY or RELEASE by ship from, signed with
 * its key, appended to out; one that names no ship it may destroy appends
 * nothing and says so in the log. */
static int children__destroy(struct host *h, const struct store_ship *from,
                             uint8_t kind, const uint8_t *p, size_t len,
                             struct buf *out)
{
    char id[FRAME_ID_MAX + 1];
    memcpy(id, p, len);
    id[len] = '\0';
    struct store_ship target;
    int rv = len == 0 ? store_ship_get_sid(h->store, from->sid, &target)
                      : store_ship_get(h->store, id, &target);
    const char *no = NULL;
    if (rv == BERTH_ENOTFOUND) {
        no = "no such ship";
    } else if (rv != 0) {
        return rv;
    }
    struct record_destroy d = {.sid = rv == 0 ? target.sid : 0};
    if (no != NULL) {
        /* not found */
    } else if (target.sid == from->sid) {
        d.by = RECORD_DESTROY_SELF;
        no = kind == FRAME_EFFECT_RELEASE ? "a ship cannot release itself"
                                          : NULL;
    } else if (target.parent != from->sid) {
        no = "not its child";
    } else if (kind == FRAME_EFFECT_RELEASE) {
        d.by = RECORD_DESTROY_RELEASED;
        no = target.lifetime == FRAME_LIFETIME_EPHEMERAL
                 ? NULL
                 : "only an ephemeral child is released";
    } else {
        d.by = RECORD_DESTROY_PARENT;
    }
    if (no != NULL) {
        host_log("warn",
                 kind == FRAME_EFFECT_RELEASE ? "release ignored"
                                              : "destroy ignored",
                 "ship", from->id, "target", id, "why", no, NULL);
        if (rv == 0) {
            store_ship_clear(&target);
        }
        return 0;
    }
    /* The proof: the ship's own signature, which every host checks
     * against the public key it holds. */
    uint8_t sk[64], msg[RECORD_DESTROY_MESSAGE_MAX];
    rv = children__secret_key(h, from, sk);
    if (rv == 0) {
        size_t n = record_destroy_message(target.id, msg);
        crypto_sign_detached(d.signature, NULL, msg, n, sk);
        sodium_memzero(sk, sizeof sk);
    }
    store_ship_clear(&target);
    struct buf e;
    buf_init(&e);
    if (rv == 0) {
        rv = record_encode_destroy(&e, &d);
    }
    if (rv == 0) {
        rv = record_effects_add(out, e.data, e.len);
    }
    buf_free(&e);
    return rv;
}

/* Count the entries made so far for an event: the index of the next. */
static uint16_t children__index(const struct buf *out)
{
    struct record_effects fx = {.entries = out->data, .entries_len = out->len};
    size_t off = 0;
    const uint8_t *e;
    size_t n;
    uint16_t count = 0;
    while (record_effects_next(&fx, &off, &e, &n) == 0) {
        count++;
    }
    return count;
}

/* The MAIL entry of a message from ship from, signed with its key, for
 * the ship the SEND names, appended to out; for no such ship, the sender's
 * RECEIPT saying so. */
static int children__send(struct host *h, const struct store_ship *from,
                          uint64_t number, const uint8_t *p, size_t len,
                          struct buf *out)
{
    struct frame_send sd;
    if (frame_decode_send(p, len, &sd) != 0) {
        return BERTH_EMALFORMED; /* checked by the fleet already */
    }
    char name[FRAME_ID_MAX + 1];
    snprintf(name, sizeof name, "%.*s", (int)sd.target_len, sd.target);
    struct store_ship target;
    int rv = store_ship_get(h->store, name, &target);
    if (rv == BERTH_ENOTFOUND) {
        static const char no[] = "no such ship";
        struct frame_receipt r = {.tag = sd.tag,
                                  .outcome = FRAME_RECEIPT_FAILED,
                                  .target = sd.target,
                                  .target_len = sd.target_len,
                                  .body = (const uint8_t *)no,
                                  .body_len = sizeof no - 1};
        return children__receipt(h, from->id, strlen(from->id), &r, out);
    }
    if (rv != 0) {
        return rv;
    }
    struct sandbox sb;
    if (sandbox_decode(from->sandbox, from->sandbox_len, &sb) != 0 ||
        !sandbox_may_send(&sb, target.id)) {
        static const char no[] = "the sender's sandbox does not let it send "
                                 "there";
        struct frame_receipt r = {.tag = sd.tag,
                                  .outcome = FRAME_RECEIPT_REFUSED,
                                  .target = sd.target,
                                  .target_len = sd.target_len,
                                  .body = (const uint8_t *)no,
                                  .body_len = sizeof no - 1};
        store_ship_clear(&target);
        return children__receipt(h, from->id, strlen(from->id), &r, out);
    }
    struct frame_message m = {.tag = sd.tag,
                              .sender = from->id,
                              .sender_len = strlen(from->id),
                              .number = number,
                              .index = children__index(out),
                              .payload = sd.payload,
                              .payload_len = sd.payload_len};
    memcpy(m.public_key, from->public_key, sizeof m.public_key);
    uint8_t sk[64];
    struct buf signed_bytes, body;
    buf_init(&signed_bytes);
    buf_init(&body);
    rv = children__secret_key(h, from, sk);
    if (rv == 0) {
        rv = frame_message_signed(&signed_bytes, &m, target.id,
                                  strlen(target.id));
    }
    if (rv == 0) {
        crypto_sign_detached(m.signature, NULL, signed_bytes.data,
                             signed_bytes.len, sk);
        rv = frame_encode_message(&body, &m);
    }
    sodium_memzero(sk, sizeof sk);
    if (rv == 0) {
        rv = children__mail(h, target.sid, FRAME_EVENT_MESSAGE, body.data,
                            body.len, out);
    }
    store_ship_clear(&target);
    buf_free(&signed_bytes);
    buf_free(&body);
    return rv;
}

int host_children_effect_entry(struct host *h, struct host_ship *s,
                               const struct fleet_job *j, uint8_t kind,
                               const uint8_t *p, size_t len, struct buf *out)
{
    struct store_ship self;
    int rv = store_ship_get_sid(h->store, s->core.sid, &self);
    if (rv != 0) {
        return rv;
    }
    rv = kind == FRAME_EFFECT_SPAWN ? children__spawn(h, &self, p, len, out)
         : kind == FRAME_EFFECT_SEND
             ? children__send(h, &self, j->number, p, len, out)
             : children__destroy(h, &self, kind, p, len, out);
    sodium_memzero(self.secret, sizeof self.secret);
    store_ship_clear(&self);
    return rv;
}

/* The lease of ship sid on this leader; NULL when out of memory. */
static struct host_lease *children__lease(struct host *h, uint64_t sid)
{
    for (size_t i = 0; i < h->n_leases; i++) {
        if (h->leases[i].sid == sid) {
            return &h->leases[i];
        }
    }
    if (h->n_leases == h->cap_leases) {
        size_t cap = h->cap_leases ? h->cap_leases * 2 : 8;
        struct host_lease *p = mem_realloc(h->leases, cap * sizeof *p);
        if (p == NULL) {
            return NULL;
        }
        h->leases = p;
        h->cap_leases = cap;
    }
    struct host_lease *l = &h->leases[h->n_leases++];
    memset(l, 0, sizeof *l);
    l->sid = sid;
    return l;
}

/* The holder answered a LEASE (j): a 2xx reply renews the lease, anything
 * else destroys the child, by the holder's proof, with the answer. */
static int children__lease_answered(struct host *h, struct host_ship *s,
                                    const struct fleet_job *j, struct buf *out)
{
    char id[FRAME_ID_MAX + 1];
    size_t n = j->payload.len < FRAME_ID_MAX ? j->payload.len : FRAME_ID_MAX;
    memcpy(id, j->payload.data, n);
    id[n] = '\0';
    struct store_ship child;
    int rv = store_ship_get(h->store, id, &child);
    if (rv != 0) {
        return rv == BERTH_ENOTFOUND ? 0 : rv;
    }
    uint64_t sid = child.sid;
    store_ship_clear(&child);
    if (j->status >= 200 && j->status < 300) {
        struct host_lease *l = children__lease(h, sid);
        if (l != NULL) {
            l->renewed_ns = host_now_ns();
            l->asked_ns = 0;
        }
        return 0;
    }
    struct store_ship self;
    rv = store_ship_get_sid(h->store, s->core.sid, &self);
    if (rv == 0) {
        rv = children__destroy(h, &self, FRAME_EFFECT_DESTROY,
                               (const uint8_t *)id, n, out);
        sodium_memzero(self.secret, sizeof self.secret);
        store_ship_clear(&self);
    }
    return rv;
}

int host_children_receipt_entry(struct host *h, struct host_ship *s,
                                const struct fleet_job *j, struct buf *out)
{
    if (j->kind == FRAME_EVENT_LEASE) {
        return children__lease_answered(h, s, j, out);
    }
    if (j->kind != FRAME_EVENT_MESSAGE) {
        return 0;
    }
    struct frame_message m;
    if (frame_decode_message(j->payload.data, j->payload.len, &m) != 0) {
        return BERTH_EMALFORMED; /* checked at delivery */
    }
    uint16_t status = (uint16_t)(j->status ? j->status : 204);
    struct frame_receipt r = {.tag = m.tag,
                              .outcome = FRAME_RECEIPT_DELIVERED,
                              .status = status,
                              .target = s->core.id,
                              .target_len = strlen(s->core.id),
                              .body = j->body,
                              .body_len = j->body_len};
    return children__receipt(h, m.sender, m.sender_len, &r, out);
}

/* --- Mail. --- */

/* Whether the message m may reach ship target: its signature is by the
 * key it names, that key is the sender's id, and the target's access list
 * holds the sender (an empty one: a ship of the target's account). *why
 * says what failed. */
static bool children__admit(struct host *h, const struct store_ship *target,
                            const struct frame_message *m, const char **why)
{
    char id[REGISTRY_ID_LEN + 1];
    registry_id_encode(m->public_key, REGISTRY_KEY_SIZE, id);
    if (m->sender_len != strlen(id) || memcmp(m->sender, id, m->sender_len)) {
        *why = "the sender's id is not its key's";
        return false;
    }
    /* The operator's block cuts a ship off both ways. */
    uint32_t at = registry_find(&h->reg, target->id);
    if (at != REGISTRY_NONE &&
        (registry_get(&h->reg, at)->flags & REGISTRY_BLOCKED)) {
        *why = "the ship is blocked by the operator";
        return false;
    }
    at = registry_find(&h->reg, id);
    if (at != REGISTRY_NONE &&
        (registry_get(&h->reg, at)->flags & REGISTRY_BLOCKED)) {
        *why = "the sender is blocked by the operator";
        return false;
    }
    struct buf b;
    buf_init(&b);
    bool ok =
        frame_message_signed(&b, m, target->id, strlen(target->id)) == 0 &&
        crypto_sign_verify_detached(m->signature, b.data, b.len,
                                    m->public_key) == 0;
    buf_free(&b);
    if (!ok) {
        *why = "the message's signature does not hold";
        return false;
    }
    if (target->access_len > 0) {
        size_t off = 0;
        const char *a;
        while ((a = strlist_next(target->access, target->access_len, &off))) {
            if (strcmp(a, id) == 0) {
                return true;
            }
        }
        *why = "the sender is not on the ship's access list";
        return false;
    }
    struct store_ship sender;
    ok = store_ship_get(h->store, id, &sender) == 0;
    if (ok) {
        ok = sender.account == target->account;
        store_ship_clear(&sender);
    }
    *why = "the sender is not a ship of the target's account";
    return ok;
}

static void children__drop(struct host *h, uint64_t sid, uint64_t seq,
                           const struct buf *entries);

static void children__pump_all(struct host *h);

static void children__retry_cb(uv_timer_t *t)
{
    children__pump_all(t->data);
}

/* Deliver ship sid's next mail if it has some and none is on its way. */
static void children__pump(struct host *h, uint64_t sid)
{
    if (!h->leading || !h->ready) {
        return;
    }
    uint32_t slot = registry_seek(&h->reg, sid - 1);
    if (slot >= h->reg.n_slots || registry_get(&h->reg, slot)->sid != sid) {
        return;
    }
    struct host_ship *hs = registry_get(&h->reg, slot)->live;
    uint64_t after = 0;
    if (hs != NULL) {
        if (hs->mail_busy) {
            return;
        }
        /* What it took under an earlier lead may not have committed. */
        after = hs->mail_epoch == h->mail_epoch ? hs->mail_last : 0;
    }
    struct store_mail m;
    int rv = store_mail_next(h->store, sid, after, &m);
    if (rv != 0) {
        if (rv != BERTH_ENOTFOUND) {
            host_log("error", "cannot read mail", "error",
                     store_errmsg(h->store), NULL);
        }
        return;
    }
    struct buf payload;
    buf_init(&payload);
    uint8_t own[SEAL_OWN_KEY_SIZE];
    rv = record_open_mail(&payload, &h->keys, host_ship_own_key(h, sid, own),
                          sid, m.kind, m.body, m.len);
    sodium_memzero(own, sizeof own);
    mem_free(m.body); /* seq and kind are still wanted */
    m.body = NULL;
    const char *why = NULL;
    struct frame_message msg;
    struct store_ship target;
    if (rv == BERTH_ENOMEM) {
        buf_free(&payload);
        uv_timer_start(&h->mail_retry, children__retry_cb, CHILDREN__RETRY_MS,
                       0);
        return;
    }
    if (rv != 0) {
        why = "it does not open";
    } else if (m.kind == FRAME_EVENT_MESSAGE &&
               frame_decode_message(payload.data, payload.len, &msg) != 0) {
        why = "it does not decode";
    } else if (m.kind == FRAME_EVENT_MESSAGE &&
               store_ship_get_sid(h->store, sid, &target) == 0) {
        if (children__admit(h, &target, &msg, &why)) {
            why = NULL;
        }
        store_ship_clear(&target);
    }
    if (why != NULL) {
        /* Refused by the host: dropped, and its sender told why. */
        struct buf receipt;
        buf_init(&receipt);
        char seq[24];
        snprintf(seq, sizeof seq, "%llu", (unsigned long long)m.seq);
        host_log("warn", "mail refused", "mail", seq, "why", why, NULL);
        if (m.kind == FRAME_EVENT_MESSAGE && rv == 0) {
            char tid[REGISTRY_ID_LEN + 1];
            registry_id_encode(registry_get(&h->reg, slot)->key,
                               REGISTRY_KEY_SIZE, tid);
            struct frame_receipt r = {.tag = msg.tag,
                                      .outcome = FRAME_RECEIPT_REFUSED,
                                      .target = tid,
                                      .target_len = strlen(tid),
                                      .body = (const uint8_t *)why,
                                      .body_len = strlen(why)};
            if (children__receipt(h, msg.sender, msg.sender_len, &r,
                                  &receipt) != 0) {
                receipt.len = 0;
            }
        }
        children__drop(h, sid, m.seq, &receipt);
        buf_free(&receipt);
        buf_free(&payload);
        if (hs != NULL) {
            hs->mail_last = m.seq;
            hs->mail_epoch = h->mail_epoch;
        }
        return;
    }
    struct fleet_ship *fs = fleet_ship_live(&h->fleet, slot);
    if (fs == NULL) {
        buf_free(&payload);
        return;
    }
    hs = (struct host_ship *)fs;
    hs->mail_busy = true;
    if (fleet_deliver_mail(fs, m.seq, m.kind, &payload) != 0) {
        hs->mail_busy = false; /* freed; the retry comes back to it */
        uv_timer_start(&h->mail_retry, children__retry_cb, CHILDREN__RETRY_MS,
                       0);
    }
}

void host_mail_due(struct host *h, uint64_t target)
{
    if (!h->leading || !h->ready) {
        return; /* the next lead delivers it */
    }
    if (h->n_mail_due == h->cap_mail_due) {
        size_t cap = h->cap_mail_due ? h->cap_mail_due * 2 : 16;
        uint64_t *p = mem_realloc(h->mail_due, cap * sizeof *p);
        if (p == NULL) {
            /* The retry finds it in the store. */
            uv_timer_start(&h->mail_retry, children__retry_cb,
                           CHILDREN__RETRY_MS, 0);
            return;
        }
        h->mail_due = p;
        h->cap_mail_due = cap;
    }
    h->mail_due[h->n_mail_due++] = target;
}

void host_mail_flush(struct host *h)
{
    /* Delivering may apply nothing, but it may fail at once and add: walk
     * a list taken whole. */
    while (h->n_mail_due > 0) {
        uint64_t sid = h->mail_due[--h->n_mail_due];
        children__pump(h, sid);
    }
}

/* How often the leader looks at the lifetimes that take a time. */
#define CHILDREN__LIFETIME_TICK_MS 1000

static void children__entry_done(void *arg, int status, int result)
{
    (void)arg;
    (void)status;
    (void)result;
}

/* A leased ship's lease: once its time has passed since its last renewal
 * (or since this host came to lead), its holder is asked by a LEASE
 * event; once its time has passed again with no renewal, the child is
 * destroyed, by the holder's proof. */
static void children__lease_due(struct host *h, const struct store_timed *st,
                                uint64_t now)
{
    struct host_lease *l = children__lease(h, st->sid);
    uint64_t span = st->lifetime_ms * 1000000;
    if (l == NULL || st->parent == 0) {
        return;
    }
    uint64_t base =
        l->renewed_ns > h->lead_since_ns ? l->renewed_ns : h->lead_since_ns;
    struct store_ship child, parent;
    if (l->asked_ns == 0 ? now - base < span : now - l->asked_ns < span) {
        return;
    }
    if (store_ship_get_sid(h->store, st->sid, &child) != 0) {
        return;
    }
    struct buf fx, e;
    buf_init(&fx);
    buf_init(&e);
    int rv;
    if (l->asked_ns == 0) {
        uint8_t nonce[SEAL_NONCE_SIZE];
        randombytes_buf(nonce, sizeof nonce);
        struct buf body;
        buf_init(&body);
        uint8_t own[SEAL_OWN_KEY_SIZE];
        rv = record_seal_mail(&body, &h->keys,
                              host_ship_own_key(h, st->parent, own), st->parent,
                              FRAME_EVENT_LEASE, nonce,
                              (const uint8_t *)child.id, strlen(child.id));
        sodium_memzero(own, sizeof own);
        struct record_mail m = {.target = st->parent,
                                .kind = FRAME_EVENT_LEASE,
                                .body = body.data,
                                .len = body.len};
        if (rv == 0) {
            rv = record_encode_mail(&e, &m);
        }
        buf_free(&body);
        host_log("info", "lease: asking its holder", "ship", child.id, NULL);
    } else if ((rv = store_ship_get_sid(h->store, st->parent, &parent)) == 0) {
        /* Not renewed in time: the leader destroys it with the holder's
         * proof, as the holder would. */
        rv =
            children__destroy(h, &parent, FRAME_EFFECT_DESTROY,
                              (const uint8_t *)child.id, strlen(child.id), &fx);
        sodium_memzero(parent.secret, sizeof parent.secret);
        store_ship_clear(&parent);
        struct record_effects it = {.entries = fx.data, .entries_len = fx.len};
        size_t off = 0;
        const uint8_t *one;
        size_t n;
        if (rv == 0 && record_effects_next(&it, &off, &one, &n) == 0) {
            rv = buf_append(&e, one, n);
        }
        host_log("info", "lease: not renewed; the ship is destroyed", "ship",
                 child.id, NULL);
    }
    if (rv == 0 && e.len > 0) {
        rv = host_propose_entry(h, &e, children__entry_done, NULL);
    }
    if (rv == 0) {
        l->asked_ns = now;
    }
    buf_free(&fx);
    buf_free(&e);
    store_ship_clear(&child);
}

/* Reset each resetting ship that has had no event for its lifetime's time
 * (counted from this host's lead when it has seen none since). */
static void children__lifetimes_cb(uv_timer_t *t)
{
    struct host *h = t->data;
    if (!h->leading || !h->ready) {
        return;
    }
    struct store_timed *ships;
    size_t n;
    if (store_ship_timed(h->store, &ships, &n) != 0) {
        host_log("error", "cannot list timed lifetimes", "error",
                 store_errmsg(h->store), NULL);
        return;
    }
    uint64_t now = host_now_ns();
    for (size_t i = 0; i < n; i++) {
        const struct store_timed *st = &ships[i];
        if (st->lifetime == FRAME_LIFETIME_LEASED) {
            children__lease_due(h, st, now);
            continue;
        }
        uint32_t slot = registry_seek(&h->reg, st->sid - 1);
        if (st->lifetime != FRAME_LIFETIME_RESETTING || st->last_event == 0 ||
            slot >= h->reg.n_slots ||
            registry_get(&h->reg, slot)->sid != st->sid) {
            continue;
        }
        uint64_t last = registry_get(&h->reg, slot)->last_active_ns;
        if (last < h->lead_since_ns) {
            last = h->lead_since_ns;
        }
        if (now < last || now - last < st->lifetime_ms * 1000000) {
            continue;
        }
        struct fleet_ship *fs = fleet_ship_live(&h->fleet, slot);
        if (fs != NULL && fleet_ship_reset(fs, st->last_event) == 0) {
            host_log("info", "ship reset: its resetting lifetime came due",
                     "ship", fs->id, NULL);
        }
    }
    mem_free(ships);
}

/* Deliver every ship's waiting mail. */
static void children__pump_all(struct host *h)
{
    uint64_t *targets;
    size_t n;
    if (store_mail_targets(h->store, &targets, &n) != 0) {
        host_log("error", "cannot list mail", "error", store_errmsg(h->store),
                 NULL);
        uv_timer_start(&h->mail_retry, children__retry_cb, CHILDREN__RETRY_MS,
                       0);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        children__pump(h, targets[i]);
    }
    mem_free(targets);
}

void host_mail_start(struct host *h)
{
    h->mail_epoch++;
    h->lead_since_ns = host_now_ns();
    uv_timer_start(&h->lifetimes, children__lifetimes_cb,
                   CHILDREN__LIFETIME_TICK_MS, CHILDREN__LIFETIME_TICK_MS);
    children__pump_all(h);
}

static void children__dropped(void *arg, int status, int result)
{
    (void)arg;
    (void)status;
    (void)result;
}

/* Drop mail seq of ship sid, which its host or its program refused, with
 * entries (may be NULL: none), the sender's receipt. */
static void children__drop(struct host *h, uint64_t sid, uint64_t seq,
                           const struct buf *entries)
{
    struct record_effects fx = {.sid = sid, .mail_taken = seq};
    if (entries != NULL) {
        fx.entries = entries->data;
        fx.entries_len = entries->len;
    }
    struct buf item, e;
    buf_init(&item);
    buf_init(&e);
    int rv = record_encode_effects(&item, &fx);
    if (rv == 0) {
        rv = record_events_begin(&e);
    }
    if (rv == 0) {
        rv = record_events_add(&e, item.data, item.len);
    }
    if (rv == 0) {
        rv = host_propose_entry(h, &e, children__dropped, NULL);
    }
    buf_free(&item);
    buf_free(&e);
    if (rv != 0) {
        host_log("warn", "cannot drop refused mail; it comes again", "error",
                 err_str(rv), NULL);
    }
}

void host_mail_released(struct host *h, const struct fleet_job *j)
{
    struct host_ship *hs = (struct host_ship *)j->ship;
    uint64_t sid = j->ship->sid;
    hs->mail_busy = false;
    char seq[24];
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)j->mail_seq);
    if (h->stopping && j->error_code[0] != '\0') {
        /* Killed by the stop, not by the mail: it waits in the store for
         * the next leader. */
        return;
    }
    if (j->error_code[0] == '\0' || j->status == 422 || j->status == 502 ||
        j->status == 504) {
        if (j->error_code[0] != '\0') {
            const char *why =
                j->error_message ? j->error_message : j->error_code;
            host_log("warn",
                     "mail dropped: its program refused or failed on it",
                     "ship", j->ship->id, "mail", seq, "error", why, NULL);
            struct buf receipt;
            buf_init(&receipt);
            struct frame_message m;
            if (j->kind == FRAME_EVENT_MESSAGE &&
                frame_decode_message(j->payload.data, j->payload.len, &m) ==
                    0) {
                struct frame_receipt r = {.tag = m.tag,
                                          .outcome = FRAME_RECEIPT_FAILED,
                                          .status = (uint16_t)j->status,
                                          .target = j->ship->id,
                                          .target_len = strlen(j->ship->id),
                                          .body = (const uint8_t *)why,
                                          .body_len = strlen(why)};
                if (children__receipt(h, m.sender, m.sender_len, &r,
                                      &receipt) != 0) {
                    receipt.len = 0;
                }
            }
            children__drop(h, sid, j->mail_seq, &receipt);
            buf_free(&receipt);
        }
        hs->mail_last = j->mail_seq;
        hs->mail_epoch = h->mail_epoch;
        children__pump(h, sid);
    } else if (strcmp(j->error_code, "leader_changed") != 0 &&
               strcmp(j->error_code, "not_found") != 0 && !h->stopping) {
        /* Busy, disabled, over a limit: the mail waits in the store. */
        uv_timer_start(&h->mail_retry, children__retry_cb, CHILDREN__RETRY_MS,
                       0);
    }
}
