/* Sealing: how a ship's data stays unreadable and unalterable at rest.
 *
 * Every event record, snapshot and ship secret that berth writes to its
 * log or store is a seal: XChaCha20-Poly1305 under a key of its ship, with
 * the record's identity (ship, number, kind, previous hash and the like) as
 * associated data, so a seal that is altered, moved to another ship or
 * replayed at another number fails to open. A seal is
 *
 *     u32 key_id | nonce[24] | ciphertext | tag[16]
 *
 * (little-endian), or, with key_id 0, u32 0 | plaintext: written by a host
 * started --unsealed, which exists to measure what sealing costs. The nonce
 * is random (the caller's entropy): a ship's key seals many records, and a
 * number can be proposed twice with different contents after a change of
 * leader, so no counter would be safe.
 *
 * The key hierarchy. The master key (crypto/master.h) never seals data
 * itself. Data keys come from it: data key 1 is derived from the master key
 * (crypto_kdf, context "berthdat"), so a host needs nothing else to start,
 * and key_id names the data key a seal was made under, so a later data key
 * (key rotation) leaves every old seal readable. After a rotation the data
 * keys are random and kept wrapped under the master key in the store
 * (crypto/keywrap.h; seal_keys_set). A ship's key is derived from a data
 * key and the ship's sid (crypto_kdf, context "berthshp"), then, for a ship
 * with a key of its own, mixed with that key (keyed BLAKE2b): its own key
 * comes from the random seed of its key pair, which only its store row
 * keeps, so once the row is gone nothing on any disk opens the ship's
 * records, whatever copies of them are left (crypto-shredding). The seeds,
 * and the batch keys that older ships' identities come from, are sealed
 * under a key of their own (context "berthbat"). Derivation is one or two
 * BLAKE2b, cheaper than keeping a key per ship in memory.
 *
 * Pure: no I/O; entropy comes from the caller. */
#ifndef BERTH_CRYPTO_SEAL_H
#define BERTH_CRYPTO_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define SEAL_KEY_SIZE 32
#define SEAL_NONCE_SIZE 24
#define SEAL_TAG_SIZE 16
/* Bytes a seal adds to its plaintext, and what an unsealed one adds. */
#define SEAL_OVERHEAD (4 + SEAL_NONCE_SIZE + SEAL_TAG_SIZE)
#define SEAL_PLAIN_OVERHEAD 4
/* The most data keys a host knows: one per key rotation, and the first. */
#define SEAL_KEYS_MAX 64
/* The bytes of a ship's own key (seal_own_key). */
#define SEAL_OWN_KEY_SIZE 32

/* What a key seals, which keeps keys for different uses apart. */
enum seal_use {
    SEAL_USE_SHIP = 1,  /* a ship's records, snapshots; subject: its sid */
    SEAL_USE_BATCH = 2, /* the batch keys of new ships; subject: 0 */
};

/* The data keys a host seals and opens with. */
struct seal_keys {
    uint32_t current; /* the key new seals use; 0: none (unsealed) */
    uint32_t count;   /* keys 1..count are known */
    uint8_t data[SEAL_KEYS_MAX][SEAL_KEY_SIZE];
};

/* Fill k with the data keys that come from master_key (SEAL_KEY_SIZE
 * bytes, borrowed). With sealed false, new seals are unsealed (key_id 0),
 * though every key still opens. */
void seal_keys_init(struct seal_keys *k, const uint8_t *master_key,
                    bool sealed);

/* Fill k with count data keys (count * SEAL_KEY_SIZE bytes at data,
 * borrowed: keys 1..count), the last one current unless sealed is false.
 * Returns 0, or BERTH_EINVAL when count is 0 or over SEAL_KEYS_MAX. */
int seal_keys_set(struct seal_keys *k, const uint8_t *data, uint32_t count,
                  bool sealed);

/* Wipe every key in k. */
void seal_keys_wipe(struct seal_keys *k);

/* Derive a ship's own key (SEAL_OWN_KEY_SIZE bytes) into own from the
 * 32-byte seed of its key pair. The caller keeps both. */
void seal_own_key(const uint8_t *seed, uint8_t *own);

/* Append to out a seal of the len bytes at plain, for use and subject,
 * under k's current key with nonce (SEAL_NONCE_SIZE random bytes) and ad
 * (ad_len bytes) as associated data; for SEAL_USE_SHIP, own is the ship's
 * own key (SEAL_OWN_KEY_SIZE bytes), or NULL for a ship made before ships
 * had one. k may be NULL: unsealed. Returns 0 or BERTH_ENOMEM. The caller
 * keeps every pointer. */
int seal_put(struct buf *out, const struct seal_keys *k, enum seal_use use,
             uint64_t subject, const uint8_t *own, const uint8_t *nonce,
             const uint8_t *ad, size_t ad_len, const uint8_t *plain,
             size_t len);

/* Append to out the plaintext of the seal at p (len bytes), own as for
 * seal_put. Returns 0, BERTH_ECORRUPT when it does not open (altered,
 * moved, or made under a key k or own does not have; k may be NULL, which
 * opens only unsealed ones), BERTH_EMALFORMED when too short, or
 * BERTH_ENOMEM. */
int seal_open(struct buf *out, const struct seal_keys *k, enum seal_use use,
              uint64_t subject, const uint8_t *own, const uint8_t *ad,
              size_t ad_len, const uint8_t *p, size_t len);

/* Return the size of a seal of len bytes under k (NULL: unsealed). */
size_t seal_size(const struct seal_keys *k, size_t len);

/* Return the key_id a seal was made under (0: unsealed), or -1 when p
 * (len bytes) is too short to be one. */
int64_t seal_key_id(const uint8_t *p, size_t len);

#endif
