/* Wrapped keys: the data keys a store keeps, and a new master key on its
 * way to every host of a cluster, sealed under a master key.
 *
 * A wrapped key is
 *
 *     nonce[24] | ciphertext of the key[32] | tag[16]
 *
 * XChaCha20-Poly1305 under a key derived from the master key (crypto_kdf,
 * context "berthwrp", subkey the kind), with associated data naming what is
 * wrapped: the kind, the key's id (a data key's id; 0 for a master key) and
 * the wrapping master key's id (crypto/master.h). A wrapped key moved to
 * another id, or opened with another master key, does not open.
 * docs/security.md, "Key rotation", says how rotation uses them. */
#ifndef BERTH_CRYPTO_KEYWRAP_H
#define BERTH_CRYPTO_KEYWRAP_H

#include <stddef.h>
#include <stdint.h>

#define KEYWRAP_KEY_SIZE 32
/* The bytes of one wrapped key. */
#define KEYWRAP_SIZE (24 + KEYWRAP_KEY_SIZE + 16)

/* What a wrapped key is, which keeps the two kinds apart. */
enum keywrap_kind {
    KEYWRAP_DATA = 1,   /* a data key (crypto/seal.h); id: its key id */
    KEYWRAP_MASTER = 2, /* the next master key; id: 0 */
};

/* Write to out (KEYWRAP_SIZE bytes) key (KEYWRAP_KEY_SIZE bytes) of kind
 * and id, wrapped under master_key (KEYWRAP_KEY_SIZE bytes) with a random
 * nonce. The caller keeps every pointer. */
void keywrap_wrap_key(uint8_t *out, const uint8_t *master_key,
                      enum keywrap_kind kind, uint32_t id, const uint8_t *key);

/* Open the wrapped key at wrapped (len bytes) of kind and id with
 * master_key into key (KEYWRAP_KEY_SIZE bytes). Returns 0, or
 * BERTH_ECORRUPT with key zeroed when it does not open (another master
 * key, kind or id, or altered) or len is not KEYWRAP_SIZE. The caller keeps
 * every pointer. */
int keywrap_unwrap_key(uint8_t *key, const uint8_t *master_key,
                       enum keywrap_kind kind, uint32_t id,
                       const uint8_t *wrapped, size_t len);

#endif
