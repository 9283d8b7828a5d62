#include "store/fsck.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/record.h"
#include "lib/buf.h"
#include "store/shipkey.h"

/* What a walk of a ship's events needs to open them. */
struct fsck__walk {
    const struct seal_keys *keys;
    const uint8_t *own; /* the ship's own key, or NULL */
    struct buf plain;
    uint64_t count;
    uint64_t unopened; /* the first event whose seal did not open */
    int why;           /* and why: BERTH_ECORRUPT or BERTH_EMALFORMED */
    uint64_t link_at;  /* the snapshot's event, when walked (0: not) */
    uint8_t link[STORE_HASH_SIZE]; /* the hash the snapshot holds of it */
    bool unlinked;                 /* its record does not hash to link */
};

static void fsck__problem(struct fsck_result *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void fsck__problem(struct fsck_result *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->problem, sizeof out->problem, fmt, ap);
    va_end(ap);
    out->ok = false;
}

static int fsck__event(uint64_t number, const void *rec, size_t len, void *arg)
{
    struct fsck__walk *w = arg;
    struct record_event ev;
    int rv = record_open_event(rec, len, w->keys, w->own, &w->plain, &ev);
    if (rv == BERTH_ENOMEM) {
        return rv;
    }
    if (rv != 0) {
        w->unopened = number;
        w->why = rv;
        return 1; /* stops the walk: the chain after it is not checked */
    }
    if (number == w->link_at) {
        uint8_t h[STORE_HASH_SIZE];
        record_hash(rec, len, h);
        if (sodium_memcmp(h, w->link, sizeof h) != 0) {
            w->unlinked = true;
            return 1;
        }
    }
    w->count++;
    return 0;
}

/* Read and check ship sid's latest snapshot (or its prior one) into meta:
 * its checksum, and its seal. A problem goes to out; returns 0 or a code
 * for a failure to read. */
static int fsck__snapshot(struct store *s, const struct seal_keys *keys,
                          const uint8_t *own, uint64_t sid, bool prior,
                          struct store_snapshot *meta, struct fsck_result *out)
{
    struct buf data, plain;
    buf_init(&data);
    buf_init(&plain);
    int rv = prior ? store_prior_snapshot_get(s, sid, meta, &data)
                   : store_snapshot_get(s, sid, meta, &data);
    if (rv == BERTH_ECORRUPT || rv == BERTH_ENOTFOUND) {
        fsck__problem(out, "%s",
                      rv == BERTH_ENOTFOUND
                          ? (prior ? "its prior snapshot is missing"
                                   : "its snapshot is missing")
                          : store_errmsg(s));
        rv = 0;
    } else if (rv == 0 && meta->sealed &&
               (rv = record_open_snapshot(&plain, keys, own, sid, meta->number,
                                          meta->epoch, data.data, data.len)) !=
                   0 &&
               rv != BERTH_ENOMEM) {
        fsck__problem(out,
                      "the %ssnapshot at event %llu does not open: altered, "
                      "or sealed under a key this host does not have",
                      prior ? "prior " : "", (unsigned long long)meta->number);
        rv = 0;
    }
    if (plain.data != NULL) {
        sodium_memzero(plain.data, plain.len);
    }
    buf_free(&plain);
    buf_free(&data);
    return rv;
}

int fsck_ship(struct store *s, const struct seal_keys *keys, uint64_t sid,
              struct fsck_result *out)
{
    struct store_ship ship;
    memset(out, 0, sizeof *out);
    out->sid = sid;
    out->ok = true;
    int rv = store_ship_get_sid(s, sid, &ship);
    if (rv == BERTH_ECORRUPT) {
        fsck__problem(out, "its record does not read: %s", store_errmsg(s));
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    memcpy(out->id, ship.id, sizeof out->id);
    memcpy(out->name, ship.name, sizeof out->name);
    out->snapshot_event = ship.snapshot_event;
    out->first_event = ship.first_event;
    out->last_event = ship.last_event;

    /* Its secret key. */
    uint8_t sk[64];
    uint8_t own_key[SEAL_OWN_KEY_SIZE];
    const uint8_t *own = NULL;
    bool has_own = false;
    rv = shipkey_open(s, keys, &ship, sk, own_key, &has_own);
    sodium_memzero(sk, sizeof sk);
    if (rv == 0 && has_own) {
        own = own_key;
    }
    if (rv == BERTH_ENOMEM) {
        goto out;
    }
    if (rv != 0) {
        fsck__problem(out,
                      "its secret key does not open, or is not its public "
                      "key's (altered, or sealed under a key this host does "
                      "not have)");
        rv = 0;
        goto out;
    }

    /* Its snapshot, its prior snapshot (kept with the events after it),
     * and the events from the prior (or from event 1) to its head. */
    struct store_snapshot latest, prior;
    uint8_t zeros[STORE_HASH_SIZE] = {0};
    const uint8_t *chain = zeros;
    uint64_t from = ship.first_event > 0 ? ship.first_event : 1;
    if (ship.snapshot_event > 0) {
        rv = fsck__snapshot(s, keys, own, sid, false, &latest, out);
        if (rv != 0 || !out->ok) {
            goto out;
        }
        if (from == ship.snapshot_event + 1) {
            chain = latest.chain; /* nothing kept before it */
        } else if (from > 1) {
            rv = fsck__snapshot(s, keys, own, sid, true, &prior, out);
            if (rv != 0 || !out->ok) {
                goto out;
            }
            if (prior.number + 1 != from) {
                fsck__problem(out,
                              "its prior snapshot is at event %llu, but its "
                              "log starts at %llu",
                              (unsigned long long)prior.number,
                              (unsigned long long)from);
                goto out;
            }
            chain = prior.chain;
        }
    }
    struct fsck__walk w = {
        .keys = keys,
        .own = own,
        .link_at = from <= ship.snapshot_event ? ship.snapshot_event : 0};
    if (w.link_at > 0) {
        memcpy(w.link, latest.chain, sizeof w.link);
    }
    buf_init(&w.plain);
    rv = store_event_foreach(s, sid, from, chain, fsck__event, &w);
    out->events = w.count;
    if (w.plain.data != NULL) {
        sodium_memzero(w.plain.data, w.plain.cap);
    }
    buf_free(&w.plain);
    if (rv == 1 && w.unlinked) {
        fsck__problem(out,
                      "the snapshot at event %llu does not link to its "
                      "event's record",
                      (unsigned long long)w.link_at);
        rv = 0;
    } else if (rv == 1) {
        fsck__problem(out, "event %llu %s", (unsigned long long)w.unopened,
                      w.why == BERTH_EMALFORMED
                          ? "does not decode"
                          : "does not open: altered, or sealed under a key "
                            "this host does not have");
        rv = 0;
    } else if (rv == BERTH_ECORRUPT) {
        fsck__problem(out, "%s", store_errmsg(s));
        rv = 0;
    }
out:
    sodium_memzero(own_key, sizeof own_key);
    store_ship_clear(&ship);
    return rv;
}
