#include "store/shipcopy.h"

#include <sodium.h>
#include <string.h>

#include "core/record.h"

#include "lib/err.h"
#include "store/fsck.h"

#define SHIPCOPY__VERSION 1

/* A snapshot of a copy, decoded; data points into the copy. */
struct shipcopy__snap {
    bool present;
    struct store_snapshot meta;
    const uint8_t *data;
    size_t len;
};

/* A copy's head, the fields before its snapshots, and its snapshots once
 * decoded (shipcopy__decode_head). */
struct shipcopy__head {
    uint64_t last_event;
    uint8_t last_hash[STORE_HASH_SIZE];
    uint64_t first_event;
    uint64_t snapshot_event;
    uint64_t alarm_ns;
    struct shipcopy__snap latest, prior;
};

/* Append the version and h's fields (not its snapshots) to out. */
static int shipcopy__put_head(struct buf *out, const struct shipcopy__head *h)
{
    int rv;
    if ((rv = buf_put_u8(out, SHIPCOPY__VERSION)) != 0 ||
        (rv = buf_put_u64(out, h->last_event)) != 0 ||
        (rv = buf_append(out, h->last_hash, sizeof h->last_hash)) != 0 ||
        (rv = buf_put_u64(out, h->first_event)) != 0 ||
        (rv = buf_put_u64(out, h->snapshot_event)) != 0) {
        return rv;
    }
    return buf_put_u64(out, h->alarm_ns);
}

static int shipcopy__put_snapshot(struct buf *out, int rv,
                                  const struct store_snapshot *meta,
                                  const struct buf *data)
{
    if (rv == BERTH_ENOTFOUND) {
        return buf_put_u8(out, 0);
    }
    if (rv != 0) {
        return rv;
    }
    if ((rv = buf_put_u8(out, 1)) != 0 ||
        (rv = buf_put_u64(out, meta->number)) != 0 ||
        (rv = buf_append(out, meta->epoch, sizeof meta->epoch)) != 0 ||
        (rv = buf_append(out, meta->chain, sizeof meta->chain)) != 0 ||
        (rv = buf_put_u8(out, meta->sealed ? 1 : 0)) != 0 ||
        (rv = buf_put_u32(out, (uint32_t)data->len)) != 0) {
        return rv;
    }
    return buf_append(out, data->data, data->len);
}

/* What a walk of the events to send needs. */
struct shipcopy__walk {
    struct buf *out;
    size_t count_at; /* where the count goes */
    uint32_t n;
};

static int shipcopy__event(uint64_t number, const void *rec, size_t len,
                           void *arg)
{
    struct shipcopy__walk *w = arg;
    int rv;
    if ((rv = buf_put_u64(w->out, number)) != 0 ||
        (rv = buf_put_u32(w->out, (uint32_t)len)) != 0 ||
        (rv = buf_append(w->out, rec, len)) != 0) {
        return rv;
    }
    w->n++;
    return 0;
}

int shipcopy_encode(struct store *s, uint64_t sid, struct buf *out)
{
    struct store_ship ship;
    struct store_snapshot meta;
    struct buf data;
    int rv = store_ship_get_sid(s, sid, &ship);
    if (rv != 0) {
        return rv;
    }
    buf_init(&data);
    struct shipcopy__head head = {
        .last_event = ship.last_event,
        .first_event = ship.first_event,
        .snapshot_event = ship.snapshot_event,
        .alarm_ns = ship.alarm_ns,
    };
    memcpy(head.last_hash, ship.last_hash, sizeof head.last_hash);
    if ((rv = shipcopy__put_head(out, &head)) != 0) {
        goto out;
    }
    rv = shipcopy__put_snapshot(out, store_snapshot_get(s, sid, &meta, &data),
                                &meta, &data);
    data.len = 0;
    if (rv == 0) {
        rv = shipcopy__put_snapshot(
            out, store_prior_snapshot_get(s, sid, &meta, &data), &meta, &data);
    }
    if (rv != 0) {
        goto out;
    }
    struct shipcopy__walk w = {.out = out, .count_at = out->len};
    if ((rv = buf_put_u32(out, 0)) != 0) {
        goto out;
    }
    /* Not checked here: the receiver checks what it gets. */
    rv = store_event_foreach(s, sid, ship.first_event, NULL, shipcopy__event,
                             &w);
    if (rv == BERTH_ECORRUPT) {
        rv = 0; /* a chain this store finds broken is for the receiver to
                   refuse: it may be the receiver's head that differs */
    }
    put_le32(out->data + w.count_at, w.n);
out:
    buf_free(&data);
    store_ship_clear(&ship);
    return rv;
}

static void shipcopy__get_snapshot(struct cursor *c, struct shipcopy__snap *s)
{
    memset(s, 0, sizeof *s);
    s->present = cursor_u8(c) != 0;
    if (!s->present) {
        return;
    }
    s->meta.number = cursor_u64(c);
    const uint8_t *epoch = cursor_bytes(c, sizeof s->meta.epoch);
    const uint8_t *chain = cursor_bytes(c, sizeof s->meta.chain);
    s->meta.sealed = cursor_u8(c) != 0;
    s->len = cursor_u32(c);
    s->data = cursor_bytes(c, s->len);
    if (c->err == 0) {
        memcpy(s->meta.epoch, epoch, sizeof s->meta.epoch);
        memcpy(s->meta.chain, chain, sizeof s->meta.chain);
    }
}

/* Decode the copy at p (len bytes) up to its events into *h, with c
 * (initialised here) left at their count. Returns 0, or BERTH_EMALFORMED
 * for another version, bytes cut short, or a latest snapshot that is not
 * at the head's snapshot event. */
static int shipcopy__decode_head(struct cursor *c, const uint8_t *p, size_t len,
                                 struct shipcopy__head *h)
{
    cursor_init(c, p, len);
    if (cursor_u8(c) != SHIPCOPY__VERSION) {
        return BERTH_EMALFORMED;
    }
    h->last_event = cursor_u64(c);
    const uint8_t *hash = cursor_bytes(c, sizeof h->last_hash);
    h->first_event = cursor_u64(c);
    h->snapshot_event = cursor_u64(c);
    h->alarm_ns = cursor_u64(c);
    shipcopy__get_snapshot(c, &h->latest);
    shipcopy__get_snapshot(c, &h->prior);
    if (c->err != 0 ||
        (h->latest.present && h->latest.meta.number != h->snapshot_event)) {
        return BERTH_EMALFORMED;
    }
    memcpy(h->last_hash, hash, sizeof h->last_hash);
    return 0;
}

/* Decode the copy at p (len bytes) up to its events, as
 * shipcopy__decode_head does, and read ship sid's record into *ship, which
 * the caller clears when this returns 0. */
static int shipcopy__read(struct store *s, uint64_t sid, const uint8_t *p,
                          size_t len, struct cursor *c,
                          struct shipcopy__head *h, struct store_ship *ship)
{
    int rv = shipcopy__decode_head(c, p, len, h);
    return rv != 0 ? rv : store_ship_get_sid(s, sid, ship);
}

/* Write the copy with head h, its events at c, into the store as ship's
 * data, and h into ship's record (the caller's) and head. */
static int shipcopy__write(struct store *s, struct store_ship *ship,
                           struct cursor *c, const struct shipcopy__head *h)
{
    int rv = store_ship_data_clear(s, ship->sid);
    /* The prior first: putting the latest keeps what it replaces as the
     * prior. */
    if (rv == 0 && h->prior.present) {
        rv = store_snapshot_put(s, ship->sid, &h->prior.meta, h->prior.data,
                                h->prior.len);
    }
    if (rv == 0 && h->latest.present) {
        rv = store_snapshot_put(s, ship->sid, &h->latest.meta, h->latest.data,
                                h->latest.len);
    }
    uint32_t n = cursor_u32(c);
    for (uint32_t i = 0; i < n && rv == 0; i++) {
        uint64_t number = cursor_u64(c);
        uint32_t len = cursor_u32(c);
        const uint8_t *rec = cursor_bytes(c, len);
        if (c->err != 0) {
            return BERTH_EMALFORMED;
        }
        rv = store_event_put(s, ship->sid, number, rec, len);
    }
    if (rv == 0 && (c->err != 0 || cursor_left(c) != 0)) {
        return BERTH_EMALFORMED;
    }
    if (rv != 0) {
        return rv;
    }
    ship->last_event = h->last_event;
    ship->first_event = h->first_event;
    ship->snapshot_event = h->snapshot_event;
    ship->alarm_ns = h->alarm_ns;
    memcpy(ship->last_hash, h->last_hash, sizeof ship->last_hash);
    if ((rv = store_ship_put(s, ship)) != 0) {
        return rv;
    }
    return store_ship_head_put(s, ship->sid, h->last_event, h->last_hash,
                               h->alarm_ns, 0, 0);
}

int shipcopy_install(struct store *s, const struct seal_keys *keys,
                     uint64_t sid, const uint8_t *p, size_t len, char *errmsg)
{
    struct cursor c;
    struct store_ship ship;
    struct shipcopy__head h;
    int rv = shipcopy__read(s, sid, p, len, &c, &h, &ship);
    if (rv != 0) {
        return rv;
    }
    if (h.last_event < ship.last_event) {
        err_printf(errmsg,
                   "the copy ends at event %llu, behind this host's %llu",
                   (unsigned long long)h.last_event,
                   (unsigned long long)ship.last_event);
        rv = BERTH_EREJECTED;
        goto out;
    }
    if ((rv = store_entry_begin(s, true)) != 0) {
        goto out;
    }
    rv = shipcopy__write(s, &ship, &c, &h);
    struct fsck_result r;
    if (rv == 0 && (rv = fsck_ship(s, keys, sid, &r)) == 0 && !r.ok) {
        err_printf(errmsg, "the copy is wrong too: %s", r.problem);
        rv = BERTH_EREJECTED;
    }
    if (rv != 0) {
        int undo = store_entry_undo(s);
        int end = store_entry_end(s);
        if (rv == BERTH_EREJECTED || rv == BERTH_EMALFORMED) {
            rv = undo != 0 ? undo : end != 0 ? end : rv;
        }
        goto out;
    }
    rv = store_entry_end(s);
out:
    store_ship_clear(&ship);
    return rv;
}

int shipcopy_put(struct store *s, uint64_t sid, const uint8_t *p, size_t len)
{
    struct cursor c;
    struct store_ship ship;
    struct shipcopy__head h;
    int rv = shipcopy__read(s, sid, p, len, &c, &h, &ship);
    if (rv != 0) {
        return rv;
    }
    rv = shipcopy__write(s, &ship, &c, &h);
    store_ship_clear(&ship);
    return rv;
}

/* Seal a snapshot of a copy again for to_sid into out (a whole snapshot
 * field of a copy: present, meta and bytes); chain is its new link. */
static int shipcopy__reseal_snapshot(struct buf *out,
                                     const struct shipcopy__snap *snap,
                                     const struct seal_keys *keys,
                                     const uint8_t *own, uint64_t from_sid,
                                     uint64_t to_sid, const uint8_t *chain,
                                     char *errmsg)
{
    if (!snap->present) {
        return buf_put_u8(out, 0);
    }
    struct buf plain, entry;
    buf_init(&plain);
    buf_init(&entry);
    int rv = 0;
    if (snap->meta.sealed) {
        rv =
            record_open_snapshot(&plain, keys, own, from_sid, snap->meta.number,
                                 snap->meta.epoch, snap->data, snap->len);
        if (rv == BERTH_ECORRUPT || rv == BERTH_EMALFORMED) {
            err_printf(errmsg, "the snapshot at event %llu does not open",
                       (unsigned long long)snap->meta.number);
            rv = BERTH_ECORRUPT;
        }
    } else {
        rv = buf_append(&plain, snap->data, snap->len);
    }
    struct record_snapshot r = {
        .sid = to_sid,
        .number = snap->meta.number,
        .data = plain.data,
        .len = plain.len,
    };
    memcpy(r.epoch, snap->meta.epoch, sizeof r.epoch);
    uint8_t nonce[SEAL_NONCE_SIZE];
    randombytes_buf(nonce, sizeof nonce);
    struct record_snapshot sealed;
    if (rv == 0 &&
        (rv = record_encode_snapshot(&entry, &r, keys, own, nonce)) == 0 &&
        (rv = record_decode_snapshot(entry.data, entry.len, &sealed)) == 0) {
        struct store_snapshot meta = snap->meta;
        meta.sealed = true;
        memcpy(meta.chain, chain, sizeof meta.chain);
        /* A view of the seal in entry, for the writer to copy. */
        struct buf view = {.data = (uint8_t *)sealed.data, .len = sealed.len};
        rv = shipcopy__put_snapshot(out, 0, &meta, &view);
    }
    sodium_memzero(plain.data, plain.len);
    buf_free(&plain);
    buf_free(&entry);
    return rv;
}

int shipcopy_reseal(const uint8_t *p, size_t len, const struct seal_keys *keys,
                    const uint8_t *own, uint64_t from_sid, uint64_t to_sid,
                    struct buf *out, char *errmsg)
{
    struct cursor c;
    struct shipcopy__head h;
    if (shipcopy__decode_head(&c, p, len, &h) != 0) {
        return BERTH_EMALFORMED;
    }
    uint32_t n = cursor_u32(&c);
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    /* The events first, apart: the snapshots' new links are their
     * events' new hashes. The first event keeps its link to the one before
     * it, which no copy holds. */
    struct buf events, plain;
    buf_init(&events);
    buf_init(&plain);
    uint8_t chain[RECORD_HASH_SIZE];
    uint8_t latest_chain[RECORD_HASH_SIZE], prior_chain[RECORD_HASH_SIZE];
    memcpy(latest_chain, h.latest.meta.chain, sizeof latest_chain);
    memcpy(prior_chain, h.prior.meta.chain, sizeof prior_chain);
    int rv = 0;
    for (uint32_t i = 0; i < n && rv == 0; i++) {
        uint64_t number = cursor_u64(&c);
        uint32_t rec_len = cursor_u32(&c);
        const uint8_t *rec = cursor_bytes(&c, rec_len);
        struct record_event ev;
        if (c.err != 0) {
            rv = BERTH_EMALFORMED;
            break;
        }
        rv = record_open_event(rec, rec_len, keys, own, &plain, &ev);
        if (rv == 0 && (ev.sid != from_sid || ev.number != number)) {
            rv = BERTH_ECORRUPT;
        }
        if (rv == BERTH_ECORRUPT || rv == BERTH_EMALFORMED) {
            err_printf(errmsg, "event %llu does not open",
                       (unsigned long long)number);
            rv = BERTH_ECORRUPT;
            break;
        }
        ev.sid = to_sid;
        if (i > 0) {
            memcpy(ev.prev_hash, chain, sizeof chain);
        }
        uint8_t nonce[SEAL_NONCE_SIZE];
        randombytes_buf(nonce, sizeof nonce);
        size_t at = events.len;
        if ((rv = buf_put_u64(&events, number)) != 0 ||
            (rv = buf_put_u32(&events, 0)) != 0) {
            break;
        }
        size_t start = events.len;
        rv = record_encode_event(&events, &ev, keys, own, nonce);
        sodium_memzero(plain.data, plain.len);
        if (rv != 0) {
            break;
        }
        put_le32(events.data + at + 8, (uint32_t)(events.len - start));
        record_hash(events.data + start, events.len - start, chain);
        if (number == h.latest.meta.number) {
            memcpy(latest_chain, chain, sizeof chain);
        }
        if (number == h.prior.meta.number) {
            memcpy(prior_chain, chain, sizeof chain);
        }
        if (number == h.last_event) {
            memcpy(h.last_hash, chain, sizeof chain);
        }
    }
    if (rv == 0 && (c.err != 0 || cursor_left(&c) != 0)) {
        rv = BERTH_EMALFORMED;
    }
    if (rv == 0) {
        rv = shipcopy__put_head(out, &h);
    }
    if (rv == 0) {
        rv = shipcopy__reseal_snapshot(out, &h.latest, keys, own, from_sid,
                                       to_sid, latest_chain, errmsg);
    }
    if (rv == 0) {
        rv = shipcopy__reseal_snapshot(out, &h.prior, keys, own, from_sid,
                                       to_sid, prior_chain, errmsg);
    }
    if (rv == 0 && (rv = buf_put_u32(out, n)) == 0) {
        rv = buf_append(out, events.data, events.len);
    }
    buf_free(&events);
    buf_free(&plain);
    return rv;
}
