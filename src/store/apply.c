#include "store/apply.h"

#include <stdbool.h>
#include <string.h>

#include "core/record.h"
#include "lib/err.h"
#include "lib/mem.h"

static int apply__ship_new(struct store *s, const uint8_t *p, size_t len,
                           int *result)
{
    struct record_ship_new r;
    struct store_ship ship;
    int rv = record_decode_ship_new(p, len, &r);
    if (rv != 0 || r.id_len == 0 || r.id_len > STORE_ID_MAX ||
        r.name_len > STORE_NAME_MAX) {
        return BERTH_ECORRUPT;
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
        return BERTH_ENOMEM;
    }
    ship.created_ns = r.created_ns;
    ship.idle_timeout_ms = r.idle_timeout_ms;
    ship.first_event = 1;
    memcpy(ship.public_key, r.public_key, sizeof ship.public_key);
    memcpy(ship.secret_key, r.secret_key, sizeof ship.secret_key);
    rv = store_ship_put(s, &ship);
    store_ship_clear(&ship);
    if (rv == BERTH_EEXIST) {
        /* Two proposals raced for one name; the later one loses, on every
         * host alike. */
        *result = BERTH_EEXIST;
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    return store_meta_put(s, "next_sid", next + 1);
}

static int apply__events(struct store *s, const uint8_t *p, size_t len)
{
    uint64_t sid = 0, last = 0;
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
        if (rv != 0 || record_decode_event(rec, rec_len, &ev) != 0) {
            rv = BERTH_ECORRUPT;
            break;
        }
        /* Consecutive records of one ship share one read and one write of
         * its head. */
        if (!have || sid != ev.sid) {
            if (dirty && (rv = store_ship_head_put(s, sid, last, hash)) != 0) {
                break;
            }
            dirty = false;
            sid = ev.sid;
            rv = store_ship_head_get(s, sid, &last, hash);
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
            rv = BERTH_ECORRUPT;
            break;
        }
        rv = store_event_put(s, ev.sid, ev.number, rec, rec_len);
        if (rv != 0) {
            break;
        }
        last = ev.number;
        record_hash(rec, rec_len, hash);
        dirty = true;
    }
    if (rv == 0 && dirty) {
        rv = store_ship_head_put(s, sid, last, hash);
    }
    return rv;
}

static int apply__snapshot(struct store *s, const uint8_t *p, size_t len)
{
    struct record_snapshot r;
    struct store_ship ship;
    if (record_decode_snapshot(p, len, &r) != 0) {
        return BERTH_ECORRUPT;
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
    if (r.number > ship.last_event) {
        rv = BERTH_ECORRUPT;
        goto out;
    }
    rv = store_snapshot_put(s, r.sid, r.number, r.epoch, r.data, r.len);
    if (rv != 0) {
        goto out;
    }
    /* The snapshot stands for every event up to its number. */
    rv = store_event_truncate(s, r.sid, r.number);
    if (rv != 0) {
        goto out;
    }
    ship.snapshot_event = r.number;
    ship.first_event = r.number + 1;
    rv = store_ship_put(s, &ship);
out:
    store_ship_clear(&ship);
    return rv;
}

static int apply__ship_remove(struct store *s, const uint8_t *p, size_t len)
{
    uint64_t sid;
    if (record_decode_ship_remove(p, len, &sid) != 0) {
        return BERTH_ECORRUPT;
    }
    int rv = store_ship_delete(s, sid);
    return rv == BERTH_ENOTFOUND ? 0 : rv;
}

int store_apply_entry(struct store *s, const uint8_t *entry, size_t len,
                      int *result)
{
    uint8_t type;
    *result = 0;
    if (record_entry_type(entry, len, &type) != 0) {
        return BERTH_ECORRUPT;
    }
    int rv = store_begin(s);
    if (rv != 0) {
        return rv;
    }
    switch (type) {
    case RECORD_ENTRY_SHIP_NEW:
        rv = apply__ship_new(s, entry, len, result);
        break;
    case RECORD_ENTRY_EVENTS:
        rv = apply__events(s, entry, len);
        break;
    case RECORD_ENTRY_SNAPSHOT:
        rv = apply__snapshot(s, entry, len);
        break;
    case RECORD_ENTRY_SHIP_REMOVE:
        rv = apply__ship_remove(s, entry, len);
        break;
    default:
        rv = BERTH_ECORRUPT;
        break;
    }
    if (rv != 0) {
        store_rollback(s);
        return rv;
    }
    return store_commit(s);
}
