#include "store/shipkey.h"

#include <sodium.h>
#include <string.h>

#include "core/record.h"
#include "lib/err.h"

int shipkey_open(struct store *s, const struct seal_keys *keys,
                 const struct store_ship *ship, uint8_t *sk, uint8_t *own,
                 bool *has_own)
{
    uint64_t sids[SHIPKEY_DEPTH_MAX];
    size_t n = 0;
    struct store_ship up;
    int rv;
    *has_own = false;

    /* Up the lineage, while a seed is sealed under its parent's key. */
    bool in_parent =
        record_ship_secret_in_parent(ship->secret, ship->secret_len);
    uint64_t parent = ship->parent;
    while (in_parent) {
        if (n == SHIPKEY_DEPTH_MAX || parent == 0) {
            return store_set_error(s, BERTH_ECORRUPT,
                                   "ship %s: its key's lineage is broken",
                                   ship->id);
        }
        sids[n++] = parent;
        rv = store_ship_get_sid(s, parent, &up);
        if (rv == BERTH_ENOTFOUND) {
            return store_set_error(s, BERTH_ECORRUPT,
                                   "ship %s: the parent whose key opens its "
                                   "key is gone",
                                   ship->id);
        }
        if (rv != 0) {
            return rv;
        }
        in_parent = record_ship_secret_in_parent(up.secret, up.secret_len);
        parent = up.parent;
        store_ship_clear(&up);
    }

    /* Down again, each ancestor's own key opening the next one's seed. */
    uint8_t above[SEAL_OWN_KEY_SIZE], next[SEAL_OWN_KEY_SIZE];
    uint64_t above_sid = 0;
    bool have_above = false;
    rv = 0;
    for (size_t i = n; i-- > 0 && rv == 0;) {
        bool has;
        rv = store_ship_get_sid(s, sids[i], &up);
        if (rv != 0) {
            break;
        }
        rv = record_ship_open(keys, up.secret, up.secret_len, up.public_key,
                              above_sid, have_above ? above : NULL, NULL, next,
                              &has);
        store_ship_clear(&up);
        if (rv == 0 && !has) {
            rv = BERTH_ECORRUPT; /* a parent without a key sealed nothing */
        }
        memcpy(above, next, sizeof above);
        above_sid = sids[i];
        have_above = true;
    }
    if (rv == 0) {
        rv = record_ship_open(keys, ship->secret, ship->secret_len,
                              ship->public_key, above_sid,
                              have_above ? above : NULL, sk, own, has_own);
    }
    sodium_memzero(above, sizeof above);
    sodium_memzero(next, sizeof next);
    if (rv == BERTH_ECORRUPT || rv == BERTH_EMALFORMED || rv == BERTH_EINVAL) {
        return store_set_error(s, BERTH_ECORRUPT,
                               "ship %s: its key does not open (altered, or "
                               "sealed under a key this host does not have)",
                               ship->id);
    }
    return rv;
}
