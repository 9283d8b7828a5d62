#include "crypto/seal.h"

#include <sodium.h>
#include <string.h>

#include "lib/err.h"

void seal_keys_init(struct seal_keys *k, const uint8_t *master_key, bool sealed)
{
    memset(k, 0, sizeof *k);
    crypto_kdf_derive_from_key(k->data[0], SEAL_KEY_SIZE, 1, "berthdat",
                               master_key);
    k->count = 1;
    k->current = sealed ? 1 : 0;
}

int seal_keys_set(struct seal_keys *k, const uint8_t *data, uint32_t count,
                  bool sealed)
{
    if (count == 0 || count > SEAL_KEYS_MAX) {
        return BERTH_EINVAL;
    }
    memset(k, 0, sizeof *k);
    memcpy(k->data, data, (size_t)count * SEAL_KEY_SIZE);
    k->count = count;
    k->current = sealed ? count : 0;
    return 0;
}

void seal_keys_wipe(struct seal_keys *k)
{
    sodium_memzero(k, sizeof *k);
}

void seal_own_key(const uint8_t *seed, uint8_t *own)
{
    /* A subkey, not the seed itself: the seed also makes the ship's
     * signing key, and one secret should not serve two algorithms. */
    crypto_kdf_derive_from_key(own, SEAL_OWN_KEY_SIZE, 1, "berthown", seed);
}

/* Derive the key of use and subject (and own, for a ship's) from data key
 * id; BERTH_ECORRUPT when k does not have it. */
static int seal__key(const struct seal_keys *k, uint32_t id, enum seal_use use,
                     uint64_t subject, const uint8_t *own, uint8_t *out)
{
    if (k == NULL || id == 0 || id > k->count) {
        return BERTH_ECORRUPT;
    }
    const char *ctx = use == SEAL_USE_SHIP ? "berthshp" : "berthbat";
    crypto_kdf_derive_from_key(out, SEAL_KEY_SIZE, subject, ctx,
                               k->data[id - 1]);
    if (use == SEAL_USE_SHIP && own != NULL) {
        /* Both are needed: the data key (so the master key and rotation
         * still govern every seal) and the ship's own key (so that
         * destroying its row shreds the ship). */
        uint8_t derived[SEAL_KEY_SIZE];
        memcpy(derived, out, sizeof derived);
        crypto_generichash(out, SEAL_KEY_SIZE, own, SEAL_OWN_KEY_SIZE, derived,
                           sizeof derived);
        sodium_memzero(derived, sizeof derived);
    }
    return 0;
}

size_t seal_size(const struct seal_keys *k, size_t len)
{
    bool sealed = k != NULL && k->current != 0;
    return len + (sealed ? SEAL_OVERHEAD : SEAL_PLAIN_OVERHEAD);
}

int64_t seal_key_id(const uint8_t *p, size_t len)
{
    return len < 4 ? -1 : (int64_t)get_le32(p);
}

int seal_put(struct buf *out, const struct seal_keys *k, enum seal_use use,
             uint64_t subject, const uint8_t *own, const uint8_t *nonce,
             const uint8_t *ad, size_t ad_len, const uint8_t *plain, size_t len)
{
    uint32_t id = k != NULL ? k->current : 0;
    int rv = buf_reserve(out, seal_size(k, len));
    if (rv != 0) {
        return rv;
    }
    /* Reserved above, so the appends below cannot fail. */
    buf_put_u32(out, id);
    if (id == 0) {
        buf_append(out, plain, len);
        return 0;
    }
    uint8_t key[SEAL_KEY_SIZE];
    seal__key(k, id, use, subject, own, key);
    buf_append(out, nonce, SEAL_NONCE_SIZE);
    uint8_t *c = out->data + out->len;
    unsigned long long clen;
    crypto_aead_xchacha20poly1305_ietf_encrypt(c, &clen, plain, len, ad, ad_len,
                                               NULL, nonce, key);
    out->len += (size_t)clen;
    sodium_memzero(key, sizeof key);
    return 0;
}

int seal_open(struct buf *out, const struct seal_keys *k, enum seal_use use,
              uint64_t subject, const uint8_t *own, const uint8_t *ad,
              size_t ad_len, const uint8_t *p, size_t len)
{
    int64_t id = seal_key_id(p, len);
    if (id < 0) {
        return BERTH_EMALFORMED;
    }
    if (id == 0) {
        return buf_append(out, p + 4, len - 4);
    }
    if (len < SEAL_OVERHEAD) {
        return BERTH_EMALFORMED;
    }
    uint8_t key[SEAL_KEY_SIZE];
    int rv = seal__key(k, (uint32_t)id, use, subject, own, key);
    if (rv != 0) {
        return rv;
    }
    size_t clen = len - 4 - SEAL_NONCE_SIZE;
    /* At least a byte, so that out has memory to point at even for an
     * empty plaintext (found by fuzz_record). */
    rv = buf_reserve(out, clen > SEAL_TAG_SIZE ? clen - SEAL_TAG_SIZE : 1);
    if (rv != 0) {
        goto out;
    }
    unsigned long long mlen;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            out->data + out->len, &mlen, NULL, p + 4 + SEAL_NONCE_SIZE, clen,
            ad, ad_len, p + 4, key) != 0) {
        rv = BERTH_ECORRUPT;
        goto out;
    }
    out->len += (size_t)mlen;
out:
    sodium_memzero(key, sizeof key);
    return rv;
}
