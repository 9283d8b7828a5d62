/* fsck: checking what the store holds of a ship, without its program.
 *
 * A ship's stored data is right when its secret key opens and makes its
 * public key, its snapshot (if any) matches its checksum and its seal
 * opens, and its events, from the snapshot's link (or from nothing at
 * event 1) to the ship's head, form an unbroken hash chain of records
 * whose seals open (core/record.h, crypto/seal.h). fsck_ship checks all of
 * that and says the first thing wrong, naming the event; it reads only, so
 * it may run on a host's live store (between its batches) or on a data
 * directory no host has open. */
#ifndef BERTH_STORE_FSCK_H
#define BERTH_STORE_FSCK_H

#include <stdbool.h>
#include <stdint.h>

#include "crypto/seal.h"
#include "lib/err.h"
#include "store/store.h"

/* What fsck_ship found of one ship. */
struct fsck_result {
    uint64_t sid;
    char id[STORE_ID_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    uint64_t snapshot_event; /* 0: no snapshot */
    uint64_t first_event, last_event;
    uint64_t events;           /* records checked */
    bool ok;                   /* nothing wrong */
    char problem[ERRMSG_SIZE]; /* the first thing wrong; "" when ok */
};

/* Check ship sid of store s, opening seals with keys (borrowed; NULL opens
 * only unsealed ones), into out. Returns 0 when the check ran, whatever it
 * found (out->ok says), BERTH_ENOTFOUND for an unknown ship, or a code for
 * a failure to read the store (BERTH_ENOMEM, BERTH_EIO). */
int fsck_ship(struct store *s, const struct seal_keys *keys, uint64_t sid,
              struct fsck_result *out);

#endif
