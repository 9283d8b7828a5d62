#include "crypto/keywrap.h"

#include <sodium.h>
#include <string.h>

#include "crypto/master.h"
#include "lib/buf.h"
#include "lib/err.h"

#define KEYWRAP__NONCE 24
#define KEYWRAP__AD (1 + 4 + 2 * MASTER_ID_SIZE)

/* Derive the wrapping key of kind from master_key into wk, and write the
 * associated data of kind, id and the master key's id into ad. */
static void keywrap__prepare(const uint8_t *master_key, enum keywrap_kind kind,
                             uint32_t id, uint8_t *wk, uint8_t *ad)
{
    char mid[2 * MASTER_ID_SIZE + 1];
    crypto_kdf_derive_from_key(wk, KEYWRAP_KEY_SIZE, (uint64_t)kind, "berthwrp",
                               master_key);
    master_key_id(master_key, mid);
    ad[0] = (uint8_t)kind;
    put_le32(ad + 1, id);
    memcpy(ad + 5, mid, 2 * MASTER_ID_SIZE);
}

void keywrap_wrap_key(uint8_t *out, const uint8_t *master_key,
                      enum keywrap_kind kind, uint32_t id, const uint8_t *key)
{
    uint8_t wk[KEYWRAP_KEY_SIZE], ad[KEYWRAP__AD];
    keywrap__prepare(master_key, kind, id, wk, ad);
    randombytes_buf(out, KEYWRAP__NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + KEYWRAP__NONCE, NULL, key,
                                               KEYWRAP_KEY_SIZE, ad, sizeof ad,
                                               NULL, out, wk);
    sodium_memzero(wk, sizeof wk);
}

int keywrap_unwrap_key(uint8_t *key, const uint8_t *master_key,
                       enum keywrap_kind kind, uint32_t id,
                       const uint8_t *wrapped, size_t len)
{
    uint8_t wk[KEYWRAP_KEY_SIZE], ad[KEYWRAP__AD];
    if (len != KEYWRAP_SIZE) {
        sodium_memzero(key, KEYWRAP_KEY_SIZE);
        return BERTH_ECORRUPT;
    }
    keywrap__prepare(master_key, kind, id, wk, ad);
    int rv = crypto_aead_xchacha20poly1305_ietf_decrypt(
        key, NULL, NULL, wrapped + KEYWRAP__NONCE, len - KEYWRAP__NONCE, ad,
        sizeof ad, wrapped, wk);
    sodium_memzero(wk, sizeof wk);
    if (rv != 0) {
        sodium_memzero(key, KEYWRAP_KEY_SIZE);
        return BERTH_ECORRUPT;
    }
    return 0;
}
