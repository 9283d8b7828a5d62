/* A ship's stored data, whole, as one host sends it to another that found
 * its own copy damaged: the ship's head, its latest and prior snapshots
 * and every event the store keeps, as they lie (sealed: the bytes mean
 * nothing to the wire, and every host of a cluster has the keys).
 *
 *   u8 version (1) | u64 last_event | u8 last_hash[32] | u64 first_event |
 *   u64 snapshot_event | u64 alarm_ns | snapshot | prior | u32 n |
 *   (u64 number | u32 len | record) * n
 *
 * where a snapshot is u8 present | [u64 number | u8 epoch[32] |
 * u8 chain[32] | u8 sealed | u32 len | bytes]. Integers little-endian.
 *
 * The receiving host installs it in place of its own, checks the result
 * as fsck does (store/fsck.h) and keeps it only when right: a copy from a
 * host that lies, or is damaged too, changes nothing. */
#ifndef BERTH_STORE_SHIPCOPY_H
#define BERTH_STORE_SHIPCOPY_H

#include <stdint.h>

#include "crypto/seal.h"
#include "lib/buf.h"
#include "store/store.h"

/* Append ship sid's stored data to out (the caller's). Returns 0,
 * BERTH_ENOTFOUND for an unknown ship, BERTH_ECORRUPT when this store's
 * own copy fails its checksums (it is not sent), or another code. */
int shipcopy_encode(struct store *s, uint64_t sid, struct buf *out);

/* Replace ship sid's stored data with the copy at p (len bytes), in the
 * open batch, and check it with keys (borrowed): kept when it is right and
 * reaches at least this store's last event for the ship (a copy from a
 * host behind this one would lose events the log will not apply again),
 * else undone. Returns 0, BERTH_EMALFORMED for bytes that are not a copy,
 * BERTH_EREJECTED with why in errmsg (ERRMSG_SIZE bytes) for a copy that
 * is behind or wrong, or the store's error. */
int shipcopy_install(struct store *s, const struct seal_keys *keys,
                     uint64_t sid, const uint8_t *p, size_t len, char *errmsg);

/* Append to out the copy at p (len bytes) of ship from_sid made again for
 * ship to_sid: every event record and snapshot opened with keys and own,
 * the ship's own key (NULL for a ship without one; both borrowed), and
 * sealed again under to_sid's key and the same own key with fresh nonces, the
 * hash chain and the snapshots' links made again to match. A ship restored from
 * an export gets a sid of its own this way, since every seal is bound to one.
 * Returns 0, BERTH_EMALFORMED for bytes that are not a copy, BERTH_ECORRUPT
 * with what failed in errmsg (ERRMSG_SIZE bytes) when a seal does not open, or
 * BERTH_ENOMEM. */
int shipcopy_reseal(const uint8_t *p, size_t len, const struct seal_keys *keys,
                    const uint8_t *own, uint64_t from_sid, uint64_t to_sid,
                    struct buf *out, char *errmsg);

/* Write the copy at p (len bytes) as ship sid's stored data and head, in
 * place of what the store holds of it, without checking it: for a ship
 * being imported, whose copy its proposer checked (core/export.h), and for
 * that check, in a scratch store. Ship sid's record must exist. Returns 0,
 * BERTH_EMALFORMED for bytes that are not a copy, or the store's error. */
int shipcopy_put(struct store *s, uint64_t sid, const uint8_t *p, size_t len);

#endif
