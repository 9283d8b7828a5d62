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
#include "daemon/host.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "lib/strlist.h"

/* Retry mail that could not be delivered (a ship busy, its account
 * disabled) this much later. */
#define CHILDREN__RETRY_MS 5000

/* Append the MAIL entry that tells ship sid its SPAWN tag made nothing, and
 * why; the event is logged with it. */
static int children__refuse(uint64_t sid, uint32_t tag, const char *why,
                            struct buf *out)
{
    struct frame_child c = {.what = FRAME_CHILD_FAILED,
                            .tag = tag,
                            .id = "",
                            .detail = why,
                            .detail_len = strlen(why)};
    struct buf body, e;
    buf_init(&body);
    buf_init(&e);
    int rv = frame_encode_child(&body, &c);
    if (rv == 0) {
        struct record_mail m = {.target = sid,
                                .kind = FRAME_EVENT_CHILD,
                                .body = body.data,
                                .len = body.len};
        rv = record_encode_mail(&e, &m);
    }
    if (rv == 0) {
        rv = record_effects_add(out, e.data, e.len);
    }
    buf_free(&body);
    buf_free(&e);
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
                             struct buf *env, char *why)
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
        } else {
            err_printf(why, "unknown SPAWN option %u", (unsigned)kind);
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

/* The SHIP_BATCH entry of a child of parent, appended to out; a SPAWN the
 * host cannot carry out appends the parent's CHILD FAILED instead. */
static int children__spawn(struct host *h, const struct store_ship *parent,
                           const uint8_t *p, size_t len, struct buf *out)
{
    struct frame_spawn sp;
    char why[ERRMSG_SIZE] = "";
    struct buf args, env, e;
    buf_init(&args);
    buf_init(&env);
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
    int rv = children__options(&sp, &args, &env, why);
    if (rv == BERTH_ENOMEM) {
        goto out;
    }
    if (rv != 0) {
        /* why says it */
    } else if (sp.lifetime < FRAME_LIFETIME_ROOT ||
               sp.lifetime > FRAME_LIFETIME_EPHEMERAL) {
        err_printf(why, "lifetime %u is not supported", (unsigned)sp.lifetime);
    } else if (program[0] != '/' || memchr(program, '\0', strlen(program)) ||
               stat(program, &st) != 0 || !S_ISREG(st.st_mode) ||
               access(program, X_OK) != 0) {
        err_printf(why, "the program must be an absolute path to an executable "
                        "file");
    } else if (!host_quota_create_ok(h, parent->account, 1, &q)) {
        err_printf(why, "%s: the account's %s limit is %llu, and it has %llu",
                   quota_code(q.which), quota_name(q.which),
                   (unsigned long long)q.limit, (unsigned long long)q.used);
    }
    if (why[0] != '\0') {
        rv = children__refuse(parent->sid, sp.tag, why, out);
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
    for (int attempt = 0; attempt < 4; attempt++) {
        uint8_t seed[32], sk[64];
        char id[REGISTRY_ID_LEN + 1];
        randombytes_buf(b.key, sizeof b.key);
        record_ship_seed(b.key, b.first, seed);
        crypto_sign_seed_keypair(pk, sk, seed);
        sodium_memzero(sk, sizeof sk);
        sodium_memzero(seed, sizeof seed);
        registry_id_encode(pk, REGISTRY_KEY_SIZE, id);
        if (registry_find(&h->reg, id) == REGISTRY_NONE) {
            break;
        }
    }
    uint8_t nonce[SEAL_NONCE_SIZE];
    randombytes_buf(nonce, sizeof nonce);
    rv = record_encode_ship_batch(&e, &b, &h->keys, nonce);
    sodium_memzero(b.key, sizeof b.key);
    if (rv == 0) {
        rv = record_effects_add(out, e.data, e.len);
    }
out:
    buf_free(&args);
    buf_free(&env);
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
    struct record_destroy d = {.sid = target.sid};
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
    rv = record_ship_secret(&h->keys, from->secret, from->secret_len,
                            from->public_key, sk);
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

int host_children_effect_entry(struct host *h, struct host_ship *s,
                               uint8_t kind, const uint8_t *p, size_t len,
                               struct buf *out)
{
    struct store_ship self;
    int rv = store_ship_get_sid(h->store, s->core.sid, &self);
    if (rv != 0) {
        return rv;
    }
    rv = kind == FRAME_EFFECT_SPAWN
             ? children__spawn(h, &self, p, len, out)
             : children__destroy(h, &self, kind, p, len, out);
    sodium_memzero(self.secret, sizeof self.secret);
    store_ship_clear(&self);
    return rv;
}

/* --- Mail. --- */

static void children__retry_cb(uv_timer_t *t)
{
    host_mail_start(t->data);
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
    struct fleet_ship *fs = fleet_ship_live(&h->fleet, slot);
    if (fs == NULL) {
        store_mail_clear(&m);
        return;
    }
    hs = (struct host_ship *)fs;
    hs->mail_busy = true;
    struct buf payload = {.data = m.body, .len = m.len, .cap = m.len};
    m.body = NULL;
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

void host_mail_start(struct host *h)
{
    h->mail_epoch++;
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

static void children__dropped(void *arg, int status, int result)
{
    (void)arg;
    (void)status;
    (void)result;
}

/* Drop mail seq of ship sid, which its program refused or failed on. */
static void children__drop(struct host *h, uint64_t sid, uint64_t seq)
{
    struct record_effects fx = {.sid = sid, .mail_taken = seq};
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
    if (j->error_code[0] == '\0' || j->status == 422 || j->status == 502 ||
        j->status == 504) {
        if (j->error_code[0] != '\0') {
            host_log("warn",
                     "mail dropped: its program refused or failed on it",
                     "ship", j->ship->id, "mail", seq, "error",
                     j->error_message ? j->error_message : j->error_code, NULL);
            children__drop(h, sid, j->mail_seq);
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
