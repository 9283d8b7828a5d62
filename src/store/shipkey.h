/* A ship's keys, opened from its store row: its signing key and its own
 * key (crypto/seal.h), which its records, snapshots and mail are sealed
 * under.
 *
 * A ship's row keeps its key pair's seed sealed (core/record.h,
 * record_ship_open): under the batch-key key for most ships, but under
 * its parent's ship key for a child that cannot outlive its parent
 * (linked, ephemeral or leased), so that only the parent's key, and the
 * host holding it, can use the child's. Opening such a child's key opens
 * its parent's first, and so on up its lineage to the first ship whose
 * seed is sealed under the batch-key key. Destroying a parent destroys
 * those children with it, in the same entry, so no sealed seed outlives
 * the key that opens it. */
#ifndef BERTH_STORE_SHIPKEY_H
#define BERTH_STORE_SHIPKEY_H

#include <stdbool.h>
#include <stdint.h>

#include "crypto/seal.h"
#include "store/store.h"

/* The most ancestors whose keys one opening may go through. */
#define SHIPKEY_DEPTH_MAX 64

/* Open ship's keys (ship is a row of store s, the caller's), with keys:
 * its 64-byte signing key into sk (NULL: not wanted, which spares making
 * the key pair) and its own key into own (SEAL_OWN_KEY_SIZE bytes), with
 * *has_own false for a ship made before ships had one. Reads the rows of
 * the ancestors its seed needs. Returns 0; BERTH_ECORRUPT when a seal does
 * not open, an ancestor is missing or the lineage is too deep; or a code
 * of the store's (store_errmsg says why). */
int shipkey_open(struct store *s, const struct seal_keys *keys,
                 const struct store_ship *ship, uint8_t *sk, uint8_t *own,
                 bool *has_own);

#endif
