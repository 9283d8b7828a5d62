/* The encrypted channel between two hosts of a cluster: a handshake that
 * proves both know the cluster secret, then sealed records. Bytes only:
 * no sockets, no loop; the peer transport (consensus/transport.c) feeds
 * what it reads and writes what comes out.
 *
 * The handshake (D: the host that dialed, L: the one that listened):
 *
 *   D -> L  hello:  magic "berthp03" | D's crypto_kx public key (32)
 *                   | D's random nonce (32)                       72 bytes
 *   L -> D  answer: magic "berthp03" | L's public key (32) | L's nonce (32)
 *                   | MAC_A("L" | hello | answer's first 72 bytes) 104 bytes
 *   D -> L  proof:  MAC_A("D" | hello | answer)                    32 bytes
 *
 * MAC_A is HMAC-SHA-512-256 (crypto_auth) under A, a key derived from the
 * cluster secret (crypto_kdf, context "berthp03", id 1). Each side checks
 * the other's MAC over both fresh nonces before it trusts anything: a
 * host without the secret cannot make one, and an old handshake replayed
 * does not cover this one's nonce. The session keys are crypto_kx's
 * (client: the dialer), each hashed with BLAKE2b keyed by M (id 2 from the
 * secret) over the transcript, so that a man in the middle who made the
 * key exchange with each side still lacks the keys without the secret.
 *
 * After it, every byte goes in records, one key per direction:
 *
 *   length u32 (of the plaintext, at most CHANNEL_MAX_RECORD)
 *   | ChaCha20-Poly1305 (IETF) of the plaintext, with its 16-byte tag
 *
 * The nonce is the record's number in its direction (0, 1, ...) and the
 * length is the associated data, so a record altered, cut, dropped,
 * replayed or put out of order fails to open, and the channel is then
 * useless: the caller closes the connection. Integers are little-endian. */
#ifndef BERTH_CRYPTO_CHANNEL_H
#define BERTH_CRYPTO_CHANNEL_H

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define CHANNEL_SECRET_SIZE 32
#define CHANNEL_MAGIC "berthp03"
#define CHANNEL_HELLO_SIZE 72
#define CHANNEL_ANSWER_SIZE 104
#define CHANNEL_PROOF_SIZE 32
/* The most plaintext one record carries; longer writes take several. */
#define CHANNEL_MAX_RECORD (64u * 1024)
/* What a record adds to its plaintext: its length and its tag. */
#define CHANNEL_OVERHEAD 20

/* Where a channel is. */
enum channel_state {
    CHANNEL_HELLO = 1, /* a listener waits for the hello */
    CHANNEL_ANSWER,    /* a dialer waits for the answer */
    CHANNEL_PROOF,     /* a listener waits for the proof */
    CHANNEL_OPEN,      /* records flow both ways */
    CHANNEL_FAILED,    /* something failed to check: close */
};

/* One side of a channel. Lives in the caller's memory; channel_wipe()
 * clears it. */
struct channel {
    enum channel_state state;
    bool dialer;
    uint8_t auth[32]; /* A: proves the secret */
    uint8_t mix[32];  /* M: mixed into session keys */
    uint8_t pk[crypto_kx_PUBLICKEYBYTES];
    uint8_t sk[crypto_kx_SECRETKEYBYTES];
    uint8_t hs[CHANNEL_HELLO_SIZE + CHANNEL_ANSWER_SIZE]; /* the transcript */
    uint8_t proof[CHANNEL_PROOF_SIZE]; /* the dialer's proof, as read */
    size_t hs_got;          /* bytes of the peer's message being read */
    uint8_t tx[32], rx[32]; /* session keys */
    uint64_t tx_n, rx_n;    /* records sealed and opened */
    struct buf in;          /* a record not yet whole */
};

/* Start ch for one connection: dialer says which side this is; secret is
 * the cluster secret (CHANNEL_SECRET_SIZE bytes, copied). */
void channel_init(struct channel *ch, const uint8_t *secret, bool dialer);

/* Append to out what this side sends first: the hello for a dialer,
 * nothing for a listener. Returns 0 or BERTH_ENOMEM. */
int channel_start(struct channel *ch, struct buf *out);

/* Take n bytes read from the peer (p is borrowed). Handshake messages to
 * send go to out; the plaintext of whole records goes to plain (both are
 * the caller's, appended to). Returns 0; BERTH_EMALFORMED for bytes that
 * are not a berth channel (a bad magic, an oversized record);
 * BERTH_EREJECTED for a peer that does not know the cluster secret (its
 * MAC failed); BERTH_ECORRUPT for a record that failed to open (altered,
 * replayed, reordered); BERTH_ENOMEM. After an error the channel is
 * failed and takes nothing more. A dialer whose peer's MAC failed still
 * puts its own proof in out, so that the listener can say why it closes. */
int channel_feed(struct channel *ch, const uint8_t *p, size_t n,
                 struct buf *out, struct buf *plain);

/* Return whether records may be sealed: a dialer once it has sent its
 * proof, a listener once it has checked the dialer's. */
bool channel_ready(const struct channel *ch);

/* Seal n bytes of p (borrowed) as records appended to out. The channel
 * must be ready. Returns 0 or BERTH_ENOMEM. */
int channel_seal(struct channel *ch, const uint8_t *p, size_t n,
                 struct buf *out);

/* Wipe ch's keys and free what it holds. */
void channel_wipe(struct channel *ch);

#endif
