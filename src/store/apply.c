#include "store/apply.h"

#include <stdbool.h>
#include <string.h>

#include <sodium.h>

#include "core/account.h"
#include "core/auth.h"
#include "core/caps.h"
#include "core/export.h"
#include "core/gate.h"
#include "core/record.h"
#include "core/registry.h"
#include "core/sandbox.h"
#include "crypto/keywrap.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "proto/frame.h"
#include "store/shipcopy.h"

_Static_assert(RECORD_SECRET_MAX <= STORE_SECRET_MAX,
               "a ship's secret fits its store row");

/* The storage bytes a ship's row counts for (docs/store.md, "Usage"). */
static uint64_t apply__row_bytes(size_t name_len, size_t program_len,
                                 size_t args_len, size_t env_len)
{
    return STORE_USAGE_ROW + name_len + program_len + args_len + env_len;
}

static int apply__ship_new(struct store *s, const uint8_t *p, size_t len,
                           int *result)
{
    struct record_ship_new r;
    struct store_ship ship;
    int rv = record_decode_ship_new(p, len, &r);
    if (rv != 0 || r.id_len == 0 || r.id_len > STORE_ID_MAX ||
        r.name_len > STORE_NAME_MAX) {
        return store_set_error(s, BERTH_ECORRUPT,
                               "a new ship's record does not decode");
    }
    char id[STORE_ID_MAX + 1];
    memcpy(id, r.id, r.id_len);
    id[r.id_len] = '\0';

    /* Replayed: the ship exists already. */
    rv = store_ship_get(s, id, &ship);
    if (rv == 0) {
        store_ship_clear(&ship);
        return 0;
    }
    if (rv != BERTH_ENOTFOUND) {
        return rv;
    }

    memset(&ship, 0, sizeof ship);
    uint64_t next;
    rv = store_meta_get(s, "next_sid", &next);
    if (rv != 0) {
        return rv;
    }
    ship.sid = next + 1;
    memcpy(ship.id, id, sizeof id);
    memcpy(ship.name, r.name, r.name_len);
    ship.program = mem_strndup(r.program, r.program_len);
    if (ship.program == NULL) {
        return store_set_error(s, BERTH_ENOMEM,
                               "applying a new ship: out of memory");
    }
    ship.created_ns = r.created_ns;
    ship.idle_timeout_ms = r.idle_timeout_ms;
    ship.acks = GATE_ACKS_DEFAULT;
    ship.first_event = 1;
    memcpy(ship.public_key, r.public_key, sizeof ship.public_key);
    memcpy(ship.secret, r.secret_key, sizeof r.secret_key);
    ship.secret_len = sizeof r.secret_key;
    rv = store_ship_put(s, &ship);
    store_ship_clear(&ship);
    if (rv == BERTH_EEXIST) {
        /* Two proposals raced for one name; the later one loses, on every
         * host alike. */
        *result = BERTH_EEXIST;
        return 0;
    }
    if (rv != 0 ||
        (rv = store_usage_add(s, next + 1,
                              (int64_t)apply__row_bytes(
                                  r.name_len, r.program_len, 0, 0))) != 0 ||
        (rv = store_usage_ships(s, ACCOUNT_ANONYMOUS, 1, 0, 0)) != 0) {
        return rv;
    }
    return store_meta_put(s, "next_sid", next + 1);
}

/* Returned by an apply step whose entry changes nothing after all: its
 * changes are undone, and the entry still counts as applied. */
#define APPLY__UNDO 1

static int apply__tell_parent(struct store *s, uint64_t parent, uint8_t what,
                              uint32_t tag, const char *id, const char *detail,
                              const struct store_apply_hook *hook);

/* The fields of a new ship's row that a SHIP_BATCH (or SHIP_SEEDS) entry
 * and a SHIP_IMPORT entry both give: views into the entry. */
struct apply__shared {
    const char *program;
    size_t program_len;
    const char *args; /* string lists, or NULL */
    size_t args_len;
    const char *env;
    size_t env_len;
    const char *access;
    size_t access_len;
    const uint8_t *sandbox; /* core/sandbox.h's blob, or NULL */
    size_t sandbox_len;
    uint64_t created_ns;
    uint64_t idle_timeout_ms;
    uint64_t freeze_timeout_ms;
    uint64_t account;
    uint8_t acks;
};

/* The shared fields of e, a decoded struct record_ship_batch or struct
 * export_ship: the two name them alike. */
#define APPLY__SHARED(e)                                                       \
    ((struct apply__shared){                                                   \
        .program = (e).program,                                                \
        .program_len = (e).program_len,                                        \
        .args = (e).args,                                                      \
        .args_len = (e).args_len,                                              \
        .env = (e).env,                                                        \
        .env_len = (e).env_len,                                                \
        .access = (e).access,                                                  \
        .access_len = (e).access_len,                                          \
        .sandbox = (e).sandbox,                                                \
        .sandbox_len = (e).sandbox_len,                                        \
        .created_ns = (e).created_ns,                                          \
        .idle_timeout_ms = (e).idle_timeout_ms,                                \
        .freeze_timeout_ms = (e).freeze_timeout_ms,                            \
        .account = (e).account,                                                \
        .acks = (e).acks,                                                      \
    })

/* A copy of the len bytes at p (NULL when len is 0, or out of memory). */
static void *apply__copy(const void *p, size_t len)
{
    void *q = len > 0 ? mem_alloc(len) : NULL;
    if (q != NULL) {
        memcpy(q, p, len);
    }
    return q;
}

/* Fill ship (zeroed first) with f's fields, copied (store_ship_clear()
 * frees them), as the first row of a ship with no event yet. Returns 0, or
 * BERTH_ENOMEM with ship cleared. */
static int apply__ship_fill(struct store_ship *ship,
                            const struct apply__shared *f)
{
    memset(ship, 0, sizeof *ship);
    ship->program = mem_strndup(f->program, f->program_len);
    ship->args = apply__copy(f->args, f->args_len);
    ship->env = apply__copy(f->env, f->env_len);
    ship->access = apply__copy(f->access, f->access_len);
    ship->sandbox = apply__copy(f->sandbox, f->sandbox_len);
    if (ship->program == NULL || (f->args_len && ship->args == NULL) ||
        (f->env_len && ship->env == NULL) ||
        (f->access_len && ship->access == NULL) ||
        (f->sandbox_len && ship->sandbox == NULL)) {
        store_ship_clear(ship);
        return BERTH_ENOMEM;
    }
    ship->args_len = f->args_len;
    ship->env_len = f->env_len;
    ship->access_len = f->access_len;
    ship->sandbox_len = f->sandbox_len;
    ship->created_ns = f->created_ns;
    ship->idle_timeout_ms = f->idle_timeout_ms;
    ship->freeze_timeout_ms = f->freeze_timeout_ms;
    ship->acks = f->acks;
    ship->account = f->account;
    ship->first_event = 1;
    return 0;
}

static int apply__ship_batch(struct store *s, const uint8_t *p, size_t len,
                             const struct store_apply_hook *hook, int *result)
{
    struct record_ship_batch b;
    if (record_decode_ship_batch(p, len, &b) != 0 ||
        b.name_len > STORE_NAME_MAX || b.program_len == 0) {
        return store_set_error(s, BERTH_ECORRUPT,
                               "a ship batch record does not decode");
    }
    /* Ships of an account removed after the proposer checked: none is
     * made, on every host alike. */
    struct store_account account;
    int rv = store_account_get_id(s, b.account, &account);
    if (rv == BERTH_ENOTFOUND) {
        *result = BERTH_ENOTFOUND;
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    if (b.parent != 0) {
        /* A child is made only while its parent is there, in the
         * parent's account. */
        struct store_ship parent;
        rv = store_ship_get_sid(s, b.parent, &parent);
        if (rv == BERTH_ENOTFOUND) {
            *result = BERTH_ENOTFOUND;
            return 0; /* gone: nobody to tell */
        }
        if (rv != 0) {
            return rv;
        }
        bool same = parent.account == b.account;
        store_ship_clear(&parent);
        if (!same || b.count != 1) {
            *result = BERTH_EINVAL; /* a child is one ship of its parent's */
            return 0;
        }
    }
    uint64_t next;
    rv = store_meta_get(s, "next_sid", &next);
    if (rv != 0) {
        return rv;
    }
    struct store_ship ship;
    if (apply__ship_fill(&ship, &APPLY__SHARED(b)) != 0) {
        return store_set_error(s, BERTH_ENOMEM,
                               "applying new ships: out of memory");
    }
    ship.parent = b.parent;
    ship.lifetime = b.lifetime;
    ship.lifetime_ms = b.lifetime_ms;
    ship.spawn_tag = b.tag;
    for (uint32_t i = 0; i < b.count && rv == 0; i++) {
        const uint8_t *pk = b.public_keys + (size_t)i * 32;
        ship.sid = next + 1 + i;
        registry_id_encode(pk, REGISTRY_KEY_SIZE, ship.id);
        if (record_ship_batch_name(&b, i, ship.name, sizeof ship.name) != 0) {
            rv = store_set_error(s, BERTH_ECORRUPT,
                                 "a ship batch names ship %u wrongly",
                                 (unsigned)i);
            break;
        }
        ship.secret_len = record_ship_batch_secret(&b, i, ship.secret);
        memcpy(ship.public_key, pk, 32);
        rv = store_ship_put(s, &ship);
        if (rv == 0) {
            rv = store_usage_add(
                s, ship.sid,
                (int64_t)apply__row_bytes(strlen(ship.name), b.program_len,
                                          b.args_len, b.env_len));
        }
    }
    sodium_memzero(ship.secret, sizeof ship.secret);
    sodium_memzero(b.key, sizeof b.key);
    store_ship_clear(&ship);
    if (rv == BERTH_EEXIST) {
        /* A name or id was taken after the proposer checked: the entry
         * creates nothing, on every host alike. */
        *result = BERTH_EEXIST;
        return APPLY__UNDO;
    }
    if (rv != 0 || (rv = store_usage_ships(s, b.account, b.count, 0, 0)) != 0 ||
        (rv = store_meta_put(s, "next_sid", next + b.count)) != 0) {
        return rv;
    }
    if (b.parent != 0) {
        char id[REGISTRY_ID_LEN + 1];
        registry_id_encode(b.public_keys, REGISTRY_KEY_SIZE, id);
        rv = apply__tell_parent(s, b.parent, FRAME_CHILD_SPAWNED, b.tag, id, "",
                                hook);
    }
    if (rv == 0 && hook != NULL && hook->added != NULL) {
        hook->added(hook->arg);
    }
    return rv;
}

/* A ship restored from an export (core/export.h), as the next sid: made
 * whole or, when that sid was given meanwhile (BERTH_EBUSY), its id or
 * name is taken or its account is gone, not at all, on every host alike.
 * Its copy was sealed for that sid and checked by the proposer. */
static int apply__ship_import(struct store *s, const uint8_t *p, size_t len,
                              const struct store_apply_hook *hook, int *result)
{
    struct export_ship x;
    if (export_decode_entry(p, len, &x) != 0 || x.id_len > STORE_ID_MAX ||
        x.name_len > STORE_NAME_MAX || x.secret_len > STORE_SECRET_MAX) {
        return store_set_error(s, BERTH_ECORRUPT,
                               "a ship import record does not decode");
    }
    struct store_account account;
    int rv = store_account_get_id(s, x.account, &account);
    if (rv == BERTH_ENOTFOUND) {
        *result = BERTH_ENOTFOUND;
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    /* The proposer sealed the ship's data for the next sid as it saw it:
     * a ship made meanwhile took it, and the proposer tries again. */
    uint64_t next;
    if ((rv = store_meta_get(s, "next_sid", &next)) != 0) {
        return rv;
    }
    if (x.sid != next + 1) {
        *result = BERTH_EBUSY;
        return 0;
    }
    struct store_ship ship;
    if (apply__ship_fill(&ship, &APPLY__SHARED(x)) != 0) {
        return store_set_error(s, BERTH_ENOMEM,
                               "applying an import: out of memory");
    }
    ship.sid = x.sid;
    memcpy(ship.id, x.id, x.id_len);
    memcpy(ship.name, x.name, x.name_len);
    memcpy(ship.public_key, x.public_key, sizeof ship.public_key);
    memcpy(ship.secret, x.secret, x.secret_len);
    ship.secret_len = x.secret_len;
    rv = store_ship_put(s, &ship);
    sodium_memzero(ship.secret, sizeof ship.secret);
    store_ship_clear(&ship);
    if (rv == BERTH_EEXIST) {
        *result = BERTH_EEXIST; /* its id or name is another ship's */
        return APPLY__UNDO;
    }
    if (rv == 0) {
        rv = shipcopy_put(s, x.sid, x.copy, x.copy_len);
        if (rv == BERTH_EMALFORMED) {
            rv = store_set_error(s, BERTH_ECORRUPT,
                                 "a ship import's copy does not decode");
        }
    }
    /* Its storage as the crawler would count it, and its sid given. */
    uint64_t bytes = 0;
    if (rv == 0 && (rv = store_usage_recount(s, x.sid, &bytes)) == 0 &&
        (rv = store_usage_add(s, x.sid, (int64_t)bytes)) == 0 &&
        (rv = store_usage_ships(s, x.account, 1, 0, 0)) == 0) {
        rv = store_meta_put(s, "next_sid", x.sid);
    }
    if (rv == 0 && hook != NULL && hook->added != NULL) {
        hook->added(hook->arg);
    }
    return rv;
}

/* Mark ship sid damaged: its stored records do not fit the log, so none of
 * the entry's records for it is applied, and the hook hears of it. */
static void apply__damaged(const struct store_apply_hook *hook, uint64_t sid,
                           uint64_t number, const char *why)
{
    if (hook != NULL && hook->damaged != NULL) {
        hook->damaged(hook->arg, sid, number, why);
    }
}

static int apply__effects(struct store *s, const uint8_t *p, size_t len,
                          uint64_t fresh_sid, uint64_t fresh_number,
                          const struct store_apply_hook *hook);

static int apply__events(struct store *s, const uint8_t *p, size_t len,
                         const struct store_apply_hook *hook)
{
    uint64_t fresh_sid = 0, fresh_number = 0; /* the record just applied */
    uint64_t sid = 0, last = 0, alarm = 0;
    uint64_t bytes = 0, events = 0; /* applied to the ship since its head */
    uint8_t hash[RECORD_HASH_SIZE];
    bool have = false, dirty = false;
    size_t off = 0;
    int rv;
    for (;;) {
        const uint8_t *rec;
        size_t rec_len;
        struct record_event ev;
        rv = record_events_next(p, len, &off, &rec, &rec_len);
        if (rv == 1) {
            rv = 0;
            break;
        }
        if (rv == 0 && rec_len > 0 && rec[0] == RECORD_EFFECTS_MARK) {
            /* What the effects do may touch any ship, this one included:
             * its head is written first and read again after. */
            if (dirty && (rv = store_ship_head_put(s, sid, last, hash, alarm,
                                                   bytes, events)) != 0) {
                break;
            }
            dirty = have = false;
            bytes = events = 0;
            rv = apply__effects(s, rec, rec_len, fresh_sid, fresh_number, hook);
            fresh_sid = fresh_number = 0;
            if (rv != 0) {
                break;
            }
            continue;
        }
        fresh_sid = fresh_number = 0;
        if (rv != 0 || record_decode_event(rec, rec_len, &ev) != 0) {
            rv = store_set_error(s, BERTH_ECORRUPT,
                                 "an event record does not decode");
            break;
        }
        /* Consecutive records of one ship share one read and one write of
         * its head. */
        if (!have || sid != ev.sid) {
            if (dirty && (rv = store_ship_head_put(s, sid, last, hash, alarm,
                                                   bytes, events)) != 0) {
                break;
            }
            dirty = false;
            bytes = events = 0;
            sid = ev.sid;
            rv = store_ship_head_get(s, sid, &last, hash, &alarm);
            have = rv == 0;
            if (rv == BERTH_ENOTFOUND) {
                rv = 0;
                continue; /* removed since: nothing to keep */
            }
            if (rv != 0) {
                break;
            }
        } else if (!have) {
            continue;
        }
        if (ev.number <= last) {
            continue; /* replayed */
        }
        if (ev.number != last + 1 ||
            memcmp(ev.prev_hash, hash, RECORD_HASH_SIZE) != 0) {
            /* The log is checksummed and committed; the store's head of
             * this ship is what changed. The ship's records are left out
             * rather than stopping every other ship. */
            if (dirty && (rv = store_ship_head_put(s, sid, last, hash, alarm,
                                                   bytes, events)) != 0) {
                break;
            }
            apply__damaged(hook, sid, ev.number,
                           ev.number != last + 1
                               ? "its stored last event does not lead to "
                                 "this one"
                               : "its stored head hash does not match this "
                                 "event's previous hash");
            have = false;
            dirty = false;
            bytes = events = 0;
            continue;
        }
        rv = store_event_put(s, ev.sid, ev.number, rec, rec_len);
        if (rv != 0) {
            break;
        }
        fresh_sid = ev.sid;
        fresh_number = ev.number;
        last = ev.number;
        alarm = ev.alarm_ns;
        record_hash(rec, rec_len, hash);
        bytes += rec_len;
        events++;
        dirty = true;
    }
    if (rv == 0 && dirty) {
        rv = store_ship_head_put(s, sid, last, hash, alarm, bytes, events);
    }
    return rv;
}

static int apply__snapshot(struct store *s, const uint8_t *p, size_t len,
                           const struct store_apply_hook *hook)
{
    struct record_snapshot r;
    struct store_ship ship;
    if (record_decode_snapshot(p, len, &r) != 0) {
        return store_set_error(s, BERTH_ECORRUPT,
                               "a snapshot record does not decode");
    }
    int rv = store_ship_get_sid(s, r.sid, &ship);
    if (rv == BERTH_ENOTFOUND) {
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    if (r.number <= ship.snapshot_event) {
        goto out; /* replayed */
    }
    struct store_snapshot snap = {.number = r.number, .sealed = r.sealed};
    memcpy(snap.epoch, r.epoch, sizeof snap.epoch);
    /* The snapshot links to the log through the hash of its last event. */
    if (r.number == ship.last_event) {
        memcpy(snap.chain, ship.last_hash, sizeof snap.chain);
    } else {
        /* Only a missing event is the ship's damage, the same on every
         * host; a failure to read one (no memory, the disk) is this
         * host's, and fatal. */
        rv = r.number > ship.last_event
                 ? BERTH_ENOTFOUND
                 : store_event_hash(s, r.sid, r.number, snap.chain);
        if (rv == BERTH_ENOTFOUND) {
            rv = 0;
            apply__damaged(hook, r.sid, r.number,
                           "the store does not hold the event the snapshot "
                           "stands for");
            goto out;
        }
        if (rv != 0) {
            goto out;
        }
    }
    /* Storage: the new snapshot counts, the prior one goes (the latest
     * becomes the prior), and so do the events the new prior stands for. */
    uint64_t latest_bytes = 0, prior_bytes = 0, event_bytes = 0;
    rv = store_accounting(s)
             ? store_snapshot_bytes(s, r.sid, &latest_bytes, &prior_bytes)
             : 0;
    if (rv == 0 && store_accounting(s) &&
        ship.snapshot_event >= ship.first_event) {
        rv = store_event_bytes(s, r.sid, ship.first_event, ship.snapshot_event,
                               &event_bytes);
    }
    if (rv != 0 || (rv = store_usage_add(s, r.sid,
                                         (int64_t)r.len - (int64_t)prior_bytes -
                                             (int64_t)event_bytes)) != 0) {
        goto out;
    }
    rv = store_snapshot_put(s, r.sid, &snap, r.data, r.len);
    if (rv != 0) {
        goto out;
    }
    /* The snapshot stands for every event up to its number; those after
     * the prior snapshot, which the store keeps (store_prior_snapshot_get),
     * stay with it until the next one, so that the two can be checked
     * against each other. */
    uint64_t prior = ship.snapshot_event;
    if (prior > 0 && (rv = store_event_truncate(s, r.sid, prior)) != 0) {
        goto out;
    }
    ship.snapshot_event = r.number;
    ship.first_event = prior + 1;
    rv = store_ship_put(s, &ship);
out:
    store_ship_clear(&ship);
    return rv;
}

/* Add mail of kind for ship target, and tell the hook. */
static int apply__mail(struct store *s, uint64_t target, uint8_t kind,
                       const uint8_t *body, size_t len,
                       const struct store_apply_hook *hook)
{
    int rv = store_mail_put(s, target, kind, body, len, NULL);
    if (rv == 0 && hook != NULL && hook->mailed != NULL) {
        hook->mailed(hook->arg, target);
    }
    return rv;
}

/* Tell ship parent what became of a child with a CHILD event. */
static int apply__tell_parent(struct store *s, uint64_t parent, uint8_t what,
                              uint32_t tag, const char *id, const char *detail,
                              const struct store_apply_hook *hook)
{
    struct store_ship p;
    int rv = store_ship_get_sid(s, parent, &p);
    if (rv == BERTH_ENOTFOUND) {
        return 0; /* gone too: nobody to tell */
    }
    if (rv != 0) {
        return rv;
    }
    store_ship_clear(&p);
    struct frame_child c = {.what = what,
                            .tag = tag,
                            .id = id,
                            .id_len = strlen(id),
                            .detail = detail,
                            .detail_len = strlen(detail)};
    struct buf b, sealed;
    buf_init(&b);
    buf_init(&sealed);
    if (frame_encode_child(&b, &c) != 0 ||
        record_seal_mail(&sealed, NULL, NULL, parent, FRAME_EVENT_CHILD, NULL,
                         b.data, b.len) != 0) {
        buf_free(&b);
        buf_free(&sealed);
        return store_set_error(s, BERTH_ENOMEM,
                               "telling a parent: out of memory");
    }
    rv = apply__mail(s, parent, FRAME_EVENT_CHILD, sealed.data, sealed.len,
                     hook);
    buf_free(&b);
    buf_free(&sealed);
    return rv;
}

/* Destroy ship sid, and before it its linked, ephemeral and leased
 * descendants
 * (docs/protocol.md, "Children"), gathered breadth first and removed
 * deepest first, so that no child outlives the destroy of a parent it is
 * linked to and no depth of descent costs stack. The ship's parent, if it
 * has one, is told with who as the detail. An absent ship is no change. */
static int apply__destroy(struct store *s, uint64_t sid, const char *who,
                          const struct store_apply_hook *hook)
{
    struct store_ship top;
    int rv = store_ship_get_sid(s, sid, &top);
    if (rv != 0) {
        return rv == BERTH_ENOTFOUND ? 0 : rv;
    }
    uint64_t *list = mem_alloc(sizeof *list);
    size_t n = 1, cap = 1;
    if (list == NULL) {
        rv = BERTH_ENOMEM;
        goto out;
    }
    list[0] = sid;
    for (size_t i = 0; i < n && rv == 0; i++) {
        struct store_child *kids;
        size_t nk;
        rv = store_ship_children(s, list[i], &kids, &nk);
        for (size_t k = 0; k < nk && rv == 0; k++) {
            if (!frame_lifetime_bound(kids[k].lifetime)) {
                continue; /* a root child stays, without a parent */
            }
            if (n == cap) {
                uint64_t *p = mem_realloc(list, cap * 2 * sizeof *p);
                if (p == NULL) {
                    rv = BERTH_ENOMEM;
                    break;
                }
                list = p;
                cap *= 2;
            }
            list[n++] = kids[k].sid;
        }
        mem_free(kids);
    }
    for (size_t i = n; i-- > 0 && rv == 0;) {
        rv = store_usage_ship_gone(s, list[i]);
        if (rv == 0) {
            rv = store_ship_delete(s, list[i]);
            rv = rv == BERTH_ENOTFOUND ? 0 : rv;
        }
        if (rv == 0 && hook != NULL && hook->removed != NULL) {
            hook->removed(hook->arg, list[i]);
        }
    }
    if (rv == 0 && top.parent != 0) {
        rv = apply__tell_parent(s, top.parent, FRAME_CHILD_DESTROYED,
                                top.spawn_tag, top.id, who, hook);
    }
out:
    if (rv == BERTH_ENOMEM) {
        rv = store_set_error(s, rv, "destroying a ship: out of memory");
    }
    mem_free(list);
    store_ship_clear(&top);
    return rv;
}

/* The operator blocks a ship, or lets it back; *result is BERTH_ENOTFOUND
 * for a ship gone by then. */
static int apply__ship_block(struct store *s, const uint8_t *p, size_t len,
                             int *result)
{
    uint64_t sid;
    bool blocked;
    if (record_decode_ship_block(p, len, &sid, &blocked) != 0) {
        return store_set_error(s, BERTH_ECORRUPT,
                               "a block record does not decode");
    }
    int rv = store_ship_block(s, sid, blocked);
    if (rv == BERTH_ENOTFOUND) {
        *result = rv;
        return 0;
    }
    return rv;
}

/* A ship's own caps change (a resize): its sandbox is written again with
 * the new caps, the rest of it kept. A ship that is gone is left alone;
 * one whose sandbox does not decode keeps it, with *result
 * BERTH_EMALFORMED. */
static int apply__ship_resize(struct store *s, const uint8_t *p, size_t len,
                              int *result)
{
    struct record_resize r;
    if (record_decode_ship_resize(p, len, &r) != 0) {
        return store_set_error(s, BERTH_ECORRUPT,
                               "a resize record does not decode");
    }
    struct store_ship ship;
    int rv = store_ship_get_sid(s, r.sid, &ship);
    if (rv != 0) {
        if (rv == BERTH_ENOTFOUND) {
            *result = BERTH_ENOTFOUND;
            return 0;
        }
        return rv;
    }
    struct sandbox sb;
    if (sandbox_decode(ship.sandbox, ship.sandbox_len, &sb) != 0) {
        *result = BERTH_EMALFORMED;
        store_ship_clear(&ship);
        return 0;
    }
    if (r.which & RECORD_RESIZE_MEMORY) {
        sb.memory_bytes = r.memory_bytes;
    }
    if (r.which & RECORD_RESIZE_CPU) {
        sb.cpu_millis = r.cpu_millis;
    }
    if (r.which & RECORD_RESIZE_PIDS) {
        sb.pids = r.pids;
    }
    if (r.which & RECORD_RESIZE_STORAGE) {
        sb.budget_bytes = r.storage_bytes;
    }
    struct buf blob;
    buf_init(&blob);
    /* Encoded before the old blob goes: the send list points into it. */
    rv = sandbox_empty(&sb) ? 0 : sandbox_encode(&blob, &sb);
    if (rv != 0) {
        store_ship_clear(&ship);
        return store_set_error(s, rv, "out of memory");
    }
    mem_free(ship.sandbox);
    ship.sandbox = blob.len > 0 ? blob.data : NULL;
    ship.sandbox_len = blob.len;
    if (blob.len == 0) {
        buf_free(&blob);
    }
    rv = store_ship_put(s, &ship);
    store_ship_clear(&ship);
    return rv;
}

/* A resetting ship's state returns to empty, if no event came since the
 * leader asked. */
static int apply__ship_reset(struct store *s, const uint8_t *p, size_t len)
{
    uint64_t sid, last;
    if (record_decode_ship_reset(p, len, &sid, &last) != 0) {
        return store_set_error(s, BERTH_ECORRUPT,
                               "a reset record does not decode");
    }
    struct store_ship ship;
    int rv = store_ship_get_sid(s, sid, &ship);
    if (rv != 0) {
        return rv == BERTH_ENOTFOUND ? 0 : rv;
    }
    if (ship.last_event == last) {
        uint64_t before = 0, after = 0;
        rv = store_usage_recount(s, sid, &before);
        if (rv == 0) {
            rv = store_ship_data_clear(s, sid);
        }
        if (rv == 0) {
            ship.last_event = 0;
            ship.first_event = 1;
            ship.snapshot_event = 0;
            ship.alarm_ns = 0;
            memset(ship.last_hash, 0, sizeof ship.last_hash);
            rv = store_ship_put(s, &ship);
        }
        if (rv == 0) {
            rv = store_usage_recount(s, sid, &after);
        }
        if (rv == 0) {
            rv = store_usage_add(s, sid, (int64_t)after - (int64_t)before);
        }
    }
    store_ship_clear(&ship);
    return rv;
}

static int apply__ship_remove(struct store *s, const uint8_t *p, size_t len,
                              const struct store_apply_hook *hook)
{
    uint64_t sid;
    if (record_decode_ship_remove(p, len, &sid) != 0) {
        return store_set_error(s, BERTH_ECORRUPT,
                               "a ship removal record does not decode");
    }
    return apply__destroy(s, sid, "operator", hook);
}

/* A destroy that a ship's event carries (from; 0 for an entry of its own,
 * the leader's when a lease ran out), checked before it is applied: the
 * ship itself or its parent must be the one that asks, and the proof must
 * be that one's signature. One that fails its checks, or
 * whose ship is gone, changes nothing, on every host alike. */
static int apply__ship_destroy(struct store *s, uint64_t from, const uint8_t *p,
                               size_t len, const struct store_apply_hook *hook)
{
    struct record_destroy d;
    if (record_decode_destroy(p, len, &d) != 0) {
        return store_set_error(s, BERTH_ECORRUPT,
                               "a destroy record does not decode");
    }
    struct store_ship ship, prover;
    int rv = store_ship_get_sid(s, d.sid, &ship);
    if (rv != 0) {
        return rv == BERTH_ENOTFOUND ? 0 : rv;
    }
    uint64_t by = d.by == RECORD_DESTROY_SELF ? d.sid : ship.parent;
    bool fits = (from == 0 || by == from) && by != 0 &&
                (d.by != RECORD_DESTROY_RELEASED ||
                 ship.lifetime == FRAME_LIFETIME_EPHEMERAL);
    rv = fits ? store_ship_get_sid(s, by, &prover) : BERTH_ENOTFOUND;
    if (rv == 0) {
        uint8_t msg[RECORD_DESTROY_MESSAGE_MAX];
        size_t n = record_destroy_message(ship.id, msg);
        fits = crypto_sign_verify_detached(d.signature, msg, n,
                                           prover.public_key) == 0;
        store_ship_clear(&prover);
    }
    store_ship_clear(&ship);
    if (rv != 0 && rv != BERTH_ENOTFOUND) {
        return rv;
    }
    if (rv != 0 || !fits) {
        return 0;
    }
    static const char *const who[] = {
        [RECORD_DESTROY_SELF] = "self",
        [RECORD_DESTROY_PARENT] = "parent",
        [RECORD_DESTROY_RELEASED] = "released",
    };
    return apply__destroy(s, d.sid, who[d.by], hook);
}

/* A child spawned by ship from's event: made, and the parent told of it
 * either way. A child that cannot be made (its account or parent gone)
 * makes nothing else fail. */
static int apply__spawn(struct store *s, uint64_t from, const uint8_t *p,
                        size_t len, const struct store_apply_hook *hook)
{
    struct record_ship_batch b;
    if (record_decode_ship_batch(p, len, &b) != 0 || b.parent != from ||
        b.count != 1) {
        return store_set_error(s, BERTH_ECORRUPT,
                               "a child's record does not decode");
    }
    int result = 0;
    int rv = apply__ship_batch(s, p, len, hook, &result);
    if (rv == APPLY__UNDO) {
        rv = 0; /* one ship: the put that failed wrote nothing */
    }
    return rv;
}

/* A MAIL entry on its own (the leader's question to a lease holder), or
 * in an effects item: mail for a ship that still exists. */
static int apply__mail_entry(struct store *s, const uint8_t *p, size_t len,
                             const struct store_apply_hook *hook)
{
    struct record_mail m;
    if (record_decode_mail(p, len, &m) != 0) {
        return store_set_error(s, BERTH_ECORRUPT,
                               "a mail record does not decode");
    }
    uint64_t last, alarm;
    uint8_t hash[RECORD_HASH_SIZE];
    int rv = store_ship_head_get(s, m.target, &last, hash, &alarm);
    if (rv == BERTH_ENOTFOUND) {
        return 0; /* its ship is gone */
    }
    return rv != 0 ? rv : apply__mail(s, m.target, m.kind, m.body, m.len, hook);
}

/* Apply the effects item at p, which follows in its entry the record that
 * fresh says was just applied (sid and number; number 0 when none was). */
static int apply__effects(struct store *s, const uint8_t *p, size_t len,
                          uint64_t fresh_sid, uint64_t fresh_number,
                          const struct store_apply_hook *hook)
{
    struct record_effects fx;
    if (record_decode_effects(p, len, &fx) != 0) {
        return store_set_error(s, BERTH_ECORRUPT,
                               "an effects item does not decode");
    }
    int rv;
    if (fx.number == 0) {
        /* Refused mail, dropped once. */
        rv = fx.mail_taken == 0 ? BERTH_ENOTFOUND
                                : store_mail_take(s, fx.sid, fx.mail_taken);
        if (rv != 0) {
            return rv == BERTH_ENOTFOUND ? 0 : rv;
        }
    } else if (fx.sid != fresh_sid || fx.number != fresh_number) {
        return 0; /* its event was applied before: so were they */
    } else if (fx.mail_taken != 0 &&
               (rv = store_mail_take(s, fx.sid, fx.mail_taken)) != 0 &&
               rv != BERTH_ENOTFOUND) {
        return rv;
    }
    size_t off = 0;
    const uint8_t *e;
    size_t n;
    rv = 0;
    while (rv == 0 && record_effects_next(&fx, &off, &e, &n) == 0) {
        uint8_t type = 0;
        if (record_entry_type(e, n, &type) != 0) {
            return store_set_error(s, BERTH_ECORRUPT,
                                   "an effect entry has no type");
        }
        switch (type) {
        case RECORD_ENTRY_SHIP_BATCH:
        case RECORD_ENTRY_SHIP_SEEDS:
            rv = apply__spawn(s, fx.sid, e, n, hook);
            break;
        case RECORD_ENTRY_SHIP_DESTROY:
            rv = apply__ship_destroy(s, fx.sid, e, n, hook);
            break;
        case RECORD_ENTRY_MAIL:
            rv = apply__mail_entry(s, e, n, hook);
            break;
        default:
            return store_set_error(s, BERTH_ECORRUPT,
                                   "an effect entry of type %u",
                                   (unsigned)type);
        }
    }
    return rv;
}

/* Add or revoke a token of the admin API. An add whose id, hash or name is
 * taken by another token changes nothing and says BERTH_EEXIST (the same
 * token again, replayed, is no change); a revoke of no such token says
 * BERTH_ENOTFOUND. */
static int apply__token(struct store *s, const uint8_t *p, size_t len,
                        int *result)
{
    struct record_token r;
    if (record_decode_token(p, len, &r) != 0 || r.name_len > STORE_NAME_MAX ||
        (r.op == RECORD_TOKEN_REVOKE &&
         (r.name_len == 0 || r.name_len > STORE_TOKEN_ID_MAX)) ||
        (r.op == RECORD_TOKEN_ADD &&
         (r.scope < AUTH_SCOPE_READ || r.scope > AUTH_SCOPE_ADMIN))) {
        return store_set_error(s, BERTH_ECORRUPT,
                               "a token record does not decode");
    }
    struct store_token t;
    memset(&t, 0, sizeof t);
    if (r.op == RECORD_TOKEN_REVOKE) {
        memcpy(t.id, r.name, r.name_len);
        int rv = store_token_delete(s, t.id);
        if (rv == BERTH_ENOTFOUND) {
            *result = BERTH_ENOTFOUND;
            return 0;
        }
        return rv;
    }
    auth_token_id(r.hash, t.id);
    memcpy(t.hash, r.hash, sizeof t.hash);
    t.scope = r.scope;
    memcpy(t.name, r.name, r.name_len);
    t.account = r.account;
    t.created_ns = r.created_ns;
    int rv = store_token_put(s, &t);
    if (rv == BERTH_EEXIST) {
        struct store_token old;
        if (store_token_get(s, t.id, &old) == 0 &&
            memcmp(old.hash, t.hash, sizeof t.hash) == 0 &&
            strcmp(old.name, t.name) == 0 && old.scope == t.scope) {
            return 0; /* replayed */
        }
        *result = BERTH_EEXIST;
        return 0;
    }
    return rv;
}

/* Make, disable, enable or remove an account, or open or close anonymous
 * creation. What cannot be done (a name taken, no such account, the
 * anonymous account removed, an account removed while it has ships) changes
 * nothing and says why in *result, on every host alike. */
static int apply__account(struct store *s, const uint8_t *p, size_t len,
                          int *result)
{
    struct record_account r;
    if (record_decode_account(p, len, &r) != 0 ||
        r.name_len > ACCOUNT_NAME_MAX) {
        return store_set_error(s, BERTH_ECORRUPT,
                               "an account record does not decode");
    }
    int rv = account_op_check(r.op, r.account);
    if (rv != 0) {
        *result = rv;
        return 0;
    }
    uint64_t n = 0;
    switch (r.op) {
    case ACCOUNT_OP_NEW: {
        char name[ACCOUNT_NAME_MAX + 1];
        memcpy(name, r.name, r.name_len);
        name[r.name_len] = '\0';
        uint64_t id;
        if (account_name_check(name) != 0) {
            *result = BERTH_EINVAL;
            return 0;
        }
        rv = store_account_new(s, name, r.created_ns, &id);
        if (rv == BERTH_EEXIST) {
            *result = rv;
            return 0;
        }
        if (rv != 0) {
            return rv;
        }
        struct store_token t;
        memset(&t, 0, sizeof t);
        auth_token_id(r.hash, t.id);
        memcpy(t.hash, r.hash, sizeof t.hash);
        t.scope = AUTH_SCOPE_OPERATE;
        t.account = id;
        t.created_ns = r.created_ns;
        rv = store_token_put(s, &t);
        if (rv == BERTH_EEXIST) {
            *result = rv;
            return APPLY__UNDO;
        }
        return rv;
    }
    case ACCOUNT_OP_DISABLE:
    case ACCOUNT_OP_ENABLE:
        rv = store_account_set_disabled(s, r.account,
                                        r.op == ACCOUNT_OP_DISABLE);
        break;
    case ACCOUNT_OP_REMOVE:
        rv = store_account_ship_count(s, r.account, &n);
        if (rv == 0 && n > 0) {
            *result = BERTH_EBUSY;
            return 0;
        }
        if (rv == 0) {
            rv = store_account_delete(s, r.account);
        }
        break;
    case ACCOUNT_OP_LIMIT: {
        for (int i = 0; i < QUOTA__COUNT; i++) {
            if (r.limits[i] > QUOTA_MAX && r.limits[i] != QUOTA_KEEP &&
                r.limits[i] != QUOTA_DEFAULT) {
                *result = BERTH_EINVAL;
                return 0;
            }
        }
        /* Caps out of bounds are refused whole, as limits are: the
         * admin API checks them, so only a hand-made entry gets here. */
        struct caps set = {
            .memory_bytes = (r.caps_which & RECORD_ACCOUNT_CAPS_MEMORY)
                                ? r.caps.memory_bytes
                                : 0,
            .cpu_millis = (r.caps_which & RECORD_ACCOUNT_CAPS_CPU)
                              ? r.caps.cpu_millis
                              : 0,
            .pids = (r.caps_which & RECORD_ACCOUNT_CAPS_PIDS) ? r.caps.pids : 0,
        };
        if (caps_check(&set) != 0) {
            *result = BERTH_EINVAL;
            return 0;
        }
        rv = store_account_set_limits(s, r.account, r.limits);
        if (rv == 0 && r.caps_which != 0) {
            rv = store_account_set_caps(s, r.account, r.caps_which, &set);
        }
        break;
    }
    default: /* ACCOUNT_OP_ANONYMOUS */
        return store_meta_put(s, "anonymous_closed", r.value ? 0 : 1);
    }
    if (rv == BERTH_ENOTFOUND) {
        *result = rv;
        return 0;
    }
    return rv;
}

/* Add what a USAGE entry reports to its ships and their accounts. */
static int apply__usage(struct store *s, const uint8_t *p, size_t len)
{
    size_t n;
    if (record_decode_usage(p, len, &n) != 0) {
        return store_set_error(s, BERTH_ECORRUPT,
                               "a usage record does not decode");
    }
    int rv = 0;
    for (size_t i = 0; i < n && rv == 0; i++) {
        struct record_usage_item it;
        record_usage_item(p, i, &it);
        struct store_measured m = {
            .sid = it.sid,
            .cpu_us = it.cpu_us,
            .memory_peak_bytes = it.memory_peak_bytes,
            .memory_byte_seconds = it.memory_byte_seconds,
            .wakes = it.wakes,
            .requests = it.requests,
        };
        rv = store_usage_measured(s, &m);
    }
    return rv;
}

/* Keep the data keys of a key rotation; the host replaces its master key
 * through the applied hook (docs/security.md, "Key rotation"). */
static int apply__key_rotate(struct store *s, const uint8_t *p, size_t len)
{
    struct record_key_rotate r;
    if (record_decode_key_rotate(p, len, &r) != 0) {
        return store_set_error(s, BERTH_ECORRUPT,
                               "a key rotation record does not decode");
    }
    return store_data_keys_put(s, r.keys, KEYWRAP_SIZE, r.count);
}

int store_apply_entry(struct store *s, uint64_t index, const uint8_t *entry,
                      size_t len, const struct store_apply_hook *hook,
                      int *result)
{
    uint8_t type;
    uint64_t applied = 0;
    *result = 0;
    if (record_entry_type(entry, len, &type) != 0) {
        return store_set_error(s, BERTH_ECORRUPT, "the entry has no type");
    }
    /* Entries of events, nearly all entries, are applied without a
     * savepoint: each event is skipped once its ship's head has it, so an
     * entry cut short by a failure (which stops the host) is completed by
     * applying it again. The others may undo themselves (APPLY__UNDO). */
    bool undoable =
        type != RECORD_ENTRY_EVENTS || record_events_have_effects(entry, len);
    int rv = store_entry_begin(s, undoable);
    if (rv != 0) {
        return rv;
    }
    if (index != 0) {
        rv = store_meta_get(s, "applied_index", &applied);
        if (rv != 0) {
            goto err_after_begin;
        }
        if (index <= applied) {
            /* Replayed after a restart: the store has it already. */
            return store_entry_end(s);
        }
    }
    switch (type) {
    case RECORD_ENTRY_SHIP_NEW:
        rv = apply__ship_new(s, entry, len, result);
        break;
    case RECORD_ENTRY_EVENTS:
        rv = apply__events(s, entry, len, hook);
        break;
    case RECORD_ENTRY_SNAPSHOT:
    case RECORD_ENTRY_SNAPSHOT_SEALED:
        rv = apply__snapshot(s, entry, len, hook);
        break;
    case RECORD_ENTRY_SHIP_REMOVE:
        rv = apply__ship_remove(s, entry, len, hook);
        break;
    case RECORD_ENTRY_SHIP_BATCH:
    case RECORD_ENTRY_SHIP_SEEDS:
        rv = apply__ship_batch(s, entry, len, hook, result);
        break;
    case RECORD_ENTRY_TOKEN:
        rv = apply__token(s, entry, len, result);
        break;
    case RECORD_ENTRY_KEY_ROTATE:
        rv = apply__key_rotate(s, entry, len);
        break;
    case RECORD_ENTRY_ACCOUNT:
        rv = apply__account(s, entry, len, result);
        break;
    case RECORD_ENTRY_USAGE:
        rv = apply__usage(s, entry, len);
        break;
    case RECORD_ENTRY_SHIP_RESET:
        rv = apply__ship_reset(s, entry, len);
        break;
    case RECORD_ENTRY_SHIP_BLOCK:
        rv = apply__ship_block(s, entry, len, result);
        break;
    case RECORD_ENTRY_SHIP_RESIZE:
        rv = apply__ship_resize(s, entry, len, result);
        break;
    case RECORD_ENTRY_MAIL:
        rv = apply__mail_entry(s, entry, len, hook);
        break;
    case RECORD_ENTRY_SHIP_DESTROY:
        rv = apply__ship_destroy(s, 0, entry, len, hook);
        break;
    case RECORD_ENTRY_SHIP_IMPORT:
        rv = apply__ship_import(s, entry, len, hook, result);
        break;
    default:
        rv = store_set_error(s, BERTH_ECORRUPT, "unknown entry type %u",
                             (unsigned)type);
        break;
    }
    if (rv == APPLY__UNDO) {
        rv = store_entry_undo(s);
    }
    if (rv == 0 && index != 0) {
        rv = store_meta_put(s, "applied_index", index);
    }
    if (rv != 0) {
        goto err_after_begin;
    }
    return store_entry_end(s);

err_after_begin:
    /* An undoable entry leaves nothing; a batch SQLite rolled back is said
     * by the return of these, and rv is the first cause either way. An
     * entry of events may leave some of its events: see above. */
    if (!undoable || store_entry_undo(s) == 0) {
        store_entry_end(s);
    }
    return rv;
}
