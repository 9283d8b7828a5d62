#include "crypto/channel.h"

#include <string.h>

#include "lib/err.h"

#define CHANNEL__TAG crypto_aead_chacha20poly1305_ietf_ABYTES
#define CHANNEL__TRANSCRIPT (CHANNEL_HELLO_SIZE + CHANNEL_ANSWER_SIZE)

_Static_assert(CHANNEL_OVERHEAD == 4 + CHANNEL__TAG, "a record's overhead");
_Static_assert(crypto_kdf_KEYBYTES == CHANNEL_SECRET_SIZE, "secret size");

void channel_init(struct channel *ch, const uint8_t *secret, bool dialer)
{
    memset(ch, 0, sizeof *ch);
    ch->dialer = dialer;
    ch->state = dialer ? CHANNEL_ANSWER : CHANNEL_HELLO;
    crypto_kdf_derive_from_key(ch->auth, sizeof ch->auth, 1, CHANNEL_MAGIC,
                               secret);
    crypto_kdf_derive_from_key(ch->mix, sizeof ch->mix, 2, CHANNEL_MAGIC,
                               secret);
    crypto_kx_keypair(ch->pk, ch->sk);
    buf_init(&ch->in);
}

/* Fill the 72 bytes at p: magic, this side's public key, a fresh nonce. */
static void channel__hello(struct channel *ch, uint8_t *p)
{
    memcpy(p, CHANNEL_MAGIC, 8);
    memcpy(p + 8, ch->pk, sizeof ch->pk);
    randombytes_buf(p + 40, 32);
}

int channel_start(struct channel *ch, struct buf *out)
{
    if (!ch->dialer) {
        return 0;
    }
    channel__hello(ch, ch->hs);
    return buf_append(out, ch->hs, CHANNEL_HELLO_SIZE);
}

/* The MAC that side (a letter) makes over the first len bytes of the
 * transcript. */
static void channel__mac(const struct channel *ch, char side, size_t len,
                         uint8_t *mac)
{
    uint8_t m[1 + CHANNEL__TRANSCRIPT];
    m[0] = (uint8_t)side;
    memcpy(m + 1, ch->hs, len);
    crypto_auth(mac, m, 1 + len, ch->auth);
}

/* Session keys from crypto_kx, each mixed with the secret and the whole
 * transcript. Returns 0, or BERTH_EMALFORMED for a peer's key that
 * crypto_kx refuses. */
static int channel__keys(struct channel *ch)
{
    uint8_t rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES];
    const uint8_t *dialer_pk = ch->hs + 8;
    const uint8_t *listener_pk = ch->hs + CHANNEL_HELLO_SIZE + 8;
    int bad =
        ch->dialer
            ? crypto_kx_client_session_keys(rx, tx, ch->pk, ch->sk, listener_pk)
            : crypto_kx_server_session_keys(rx, tx, ch->pk, ch->sk, dialer_pk);
    sodium_memzero(ch->sk, sizeof ch->sk);
    if (bad != 0) {
        return BERTH_EMALFORMED;
    }
    uint8_t *const from[2] = {rx, tx};
    uint8_t *const to[2] = {ch->rx, ch->tx};
    for (int i = 0; i < 2; i++) {
        crypto_generichash_state st;
        crypto_generichash_init(&st, ch->mix, sizeof ch->mix, 32);
        crypto_generichash_update(&st, from[i], 32);
        crypto_generichash_update(&st, ch->hs, CHANNEL__TRANSCRIPT);
        crypto_generichash_final(&st, to[i], 32);
        sodium_memzero(&st, sizeof st);
    }
    sodium_memzero(rx, sizeof rx);
    sodium_memzero(tx, sizeof tx);
    return 0;
}

static int channel__fail(struct channel *ch, int rv)
{
    ch->state = CHANNEL_FAILED;
    sodium_memzero(ch->tx, sizeof ch->tx);
    sodium_memzero(ch->rx, sizeof ch->rx);
    return rv;
}

/* The listener has the hello: answer it. */
static int channel__answer(struct channel *ch, struct buf *out)
{
    if (memcmp(ch->hs, CHANNEL_MAGIC, 8) != 0) {
        return channel__fail(ch, BERTH_EMALFORMED);
    }
    uint8_t *a = ch->hs + CHANNEL_HELLO_SIZE;
    channel__hello(ch, a);
    channel__mac(ch, 'L', CHANNEL_HELLO_SIZE + 72, a + 72);
    int rv = channel__keys(ch);
    if (rv != 0) {
        return channel__fail(ch, rv);
    }
    rv = buf_append(out, a, CHANNEL_ANSWER_SIZE);
    if (rv != 0) {
        return channel__fail(ch, rv);
    }
    ch->state = CHANNEL_PROOF;
    ch->hs_got = 0;
    return 0;
}

/* The dialer has the answer: check it, and prove itself in any case. */
static int channel__check_answer(struct channel *ch, struct buf *out)
{
    const uint8_t *a = ch->hs + CHANNEL_HELLO_SIZE;
    uint8_t proof[CHANNEL_PROOF_SIZE];
    if (memcmp(a, CHANNEL_MAGIC, 8) != 0) {
        return channel__fail(ch, BERTH_EMALFORMED);
    }
    uint8_t m[1 + CHANNEL_HELLO_SIZE + 72];
    m[0] = 'L';
    memcpy(m + 1, ch->hs, CHANNEL_HELLO_SIZE + 72);
    bool ok = crypto_auth_verify(a + 72, m, sizeof m, ch->auth) == 0;
    channel__mac(ch, 'D', CHANNEL__TRANSCRIPT, proof);
    if (buf_append(out, proof, sizeof proof) != 0) {
        return channel__fail(ch, BERTH_ENOMEM);
    }
    if (!ok) {
        return channel__fail(ch, BERTH_EREJECTED);
    }
    int rv = channel__keys(ch);
    if (rv != 0) {
        return channel__fail(ch, rv);
    }
    ch->state = CHANNEL_OPEN;
    return 0;
}

static int channel__check_proof(struct channel *ch)
{
    uint8_t m[1 + CHANNEL__TRANSCRIPT];
    m[0] = 'D';
    memcpy(m + 1, ch->hs, CHANNEL__TRANSCRIPT);
    if (crypto_auth_verify(ch->proof, m, sizeof m, ch->auth) != 0) {
        return channel__fail(ch, BERTH_EREJECTED);
    }
    ch->state = CHANNEL_OPEN;
    return 0;
}

static void channel__nonce(uint8_t *nonce, uint64_t n)
{
    memset(nonce, 0, crypto_aead_chacha20poly1305_ietf_NPUBBYTES);
    put_le64(nonce, n);
}

/* Open the whole records at the start of p (len bytes) into plain; *used
 * gets the bytes they took. */
static int channel__records(struct channel *ch, const uint8_t *p, size_t len,
                            struct buf *plain, size_t *used)
{
    uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
    size_t at = 0;
    while (len - at >= 4) {
        size_t n = get_le32(p + at);
        if (n > CHANNEL_MAX_RECORD) {
            return channel__fail(ch, BERTH_EMALFORMED);
        }
        if (len - at < CHANNEL_OVERHEAD + n) {
            break;
        }
        /* At least a byte, so that plain has memory to point at even for
         * an empty record (found by fuzz_channel). */
        int rv = buf_reserve(plain, n > 0 ? n : 1);
        if (rv != 0) {
            return channel__fail(ch, rv);
        }
        channel__nonce(nonce, ch->rx_n);
        if (crypto_aead_chacha20poly1305_ietf_decrypt(
                plain->data + plain->len, NULL, NULL, p + at + 4,
                n + CHANNEL__TAG, p + at, 4, nonce, ch->rx) != 0) {
            return channel__fail(ch, BERTH_ECORRUPT);
        }
        ch->rx_n++;
        plain->len += n;
        at += CHANNEL_OVERHEAD + n;
    }
    *used = at;
    return 0;
}

int channel_feed(struct channel *ch, const uint8_t *p, size_t n,
                 struct buf *out, struct buf *plain)
{
    size_t i = 0;
    int rv = 0;
    while (i < n && ch->state != CHANNEL_OPEN) {
        uint8_t *dst;
        size_t need;
        switch (ch->state) {
        case CHANNEL_HELLO:
            dst = ch->hs;
            need = CHANNEL_HELLO_SIZE;
            break;
        case CHANNEL_ANSWER:
            dst = ch->hs + CHANNEL_HELLO_SIZE;
            need = CHANNEL_ANSWER_SIZE;
            break;
        case CHANNEL_PROOF:
            dst = ch->proof;
            need = CHANNEL_PROOF_SIZE;
            break;
        default:
            return BERTH_EMALFORMED; /* failed before */
        }
        size_t k = need - ch->hs_got < n - i ? need - ch->hs_got : n - i;
        memcpy(dst + ch->hs_got, p + i, k);
        ch->hs_got += k;
        i += k;
        /* A bad magic shows in the first bytes: no need to wait. */
        if (ch->state != CHANNEL_PROOF &&
            memcmp(dst, CHANNEL_MAGIC, ch->hs_got < 8 ? ch->hs_got : 8) != 0) {
            return channel__fail(ch, BERTH_EMALFORMED);
        }
        if (ch->hs_got < need) {
            return 0;
        }
        rv = ch->state == CHANNEL_HELLO    ? channel__answer(ch, out)
             : ch->state == CHANNEL_ANSWER ? channel__check_answer(ch, out)
                                           : channel__check_proof(ch);
        if (rv != 0) {
            return rv;
        }
    }
    if (i == n) {
        return 0;
    }
    p += i;
    n -= i;
    size_t used = 0;
    if (ch->in.len == 0) {
        rv = channel__records(ch, p, n, plain, &used);
        if (rv == 0 && used < n) {
            rv = buf_append(&ch->in, p + used, n - used);
        }
        return rv != 0 ? channel__fail(ch, rv) : 0;
    }
    rv = buf_append(&ch->in, p, n);
    if (rv == 0) {
        rv = channel__records(ch, ch->in.data, ch->in.len, plain, &used);
    }
    if (rv != 0) {
        return channel__fail(ch, rv);
    }
    memmove(ch->in.data, ch->in.data + used, ch->in.len - used);
    ch->in.len -= used;
    if (ch->in.len == 0 && ch->in.cap > 4 * CHANNEL_MAX_RECORD) {
        buf_free(&ch->in);
    }
    return 0;
}

bool channel_ready(const struct channel *ch)
{
    return ch->state == CHANNEL_OPEN;
}

int channel_seal(struct channel *ch, const uint8_t *p, size_t n,
                 struct buf *out)
{
    uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
    if (ch->state != CHANNEL_OPEN) {
        return BERTH_EINVAL;
    }
    size_t records = (n + CHANNEL_MAX_RECORD - 1) / CHANNEL_MAX_RECORD;
    int rv = buf_reserve(out, n + records * CHANNEL_OVERHEAD);
    if (rv != 0) {
        return rv;
    }
    while (n > 0) {
        size_t k = n < CHANNEL_MAX_RECORD ? n : CHANNEL_MAX_RECORD;
        uint8_t *r = out->data + out->len;
        put_le32(r, (uint32_t)k);
        channel__nonce(nonce, ch->tx_n++);
        crypto_aead_chacha20poly1305_ietf_encrypt(r + 4, NULL, p, k, r, 4, NULL,
                                                  nonce, ch->tx);
        out->len += CHANNEL_OVERHEAD + k;
        p += k;
        n -= k;
    }
    return 0;
}

void channel_wipe(struct channel *ch)
{
    buf_free(&ch->in);
    sodium_memzero(ch, sizeof *ch);
}
