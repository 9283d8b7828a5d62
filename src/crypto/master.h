/* The cluster's master key, and the file that keeps it.
 *
 * Every key berth derives for sealing data at rest comes from one 32-byte
 * master key, made at a host's first start. DATA/master.key keeps it,
 * either as it is (no operator secret: the key sits beside the data it
 * protects, which the host says at start and in its stats) or sealed with
 * XChaCha20-Poly1305 under a key the operator gives: a passphrase stretched
 * with Argon2id (crypto_pwhash), or 32 bytes from a key file (say from a
 * TPM or a secrets manager). A plain key is sealed the first time a secret
 * is given; a sealed one opens only with its secret.
 *
 * The file (integers little-endian), 0600:
 *
 *   0-7    magic "brthmkey"
 *   8      format, 1
 *   9      how the key is kept: 0 plain, 1 passphrase, 2 key file
 *   10-15  zero
 *   16-31  Argon2id salt (zero unless a passphrase)
 *   32-39  Argon2id opslimit
 *   40-47  Argon2id memlimit
 *   48-71  nonce (zero when plain)
 *   72-    the key, 32 bytes, plain or sealed (then followed by its 16-byte
 *          tag); bytes 0-71 are the seal's associated data, so no header
 *          field can be changed without the key failing to open.
 *
 * The file is replaced whole: written beside it, synced, renamed over it,
 * and the directory synced. */
#ifndef BERTH_CRYPTO_MASTER_H
#define BERTH_CRYPTO_MASTER_H

#include <stddef.h>
#include <stdint.h>

#define MASTER_KEY_SIZE 32
#define MASTER_ID_SIZE 16

/* How the master key is kept on disk. */
enum master_how {
    MASTER_PLAIN = 0,      /* as it is, beside the data */
    MASTER_PASSPHRASE = 1, /* sealed under a key stretched from a passphrase */
    MASTER_KEY_FILE = 2,   /* sealed under 32 bytes from a file */
};

/* The operator's secret, if any. bytes is the passphrase (len bytes, not
 * NUL-terminated) or the key file's 32 bytes; both are borrowed. */
struct master_secret {
    enum master_how how;
    const uint8_t *bytes;
    size_t len;
};

/* The bytes before the key in a master key file. */
#define MASTER_HEADER_SIZE 72

/* How a running host keeps its master key sealed, without the operator's
 * secret: the file's header (how, Argon2id salt and limits) and the key
 * the secret makes (the stretched passphrase, or the key file's bytes;
 * zero when plain). With it a host seals a new master key (a rotation, a
 * join) as it keeps its own, and holds no passphrase. Wipe it with
 * master_wrap_wipe. */
struct master_wrap {
    enum master_how how;
    uint8_t header[MASTER_HEADER_SIZE];
    uint8_t key[MASTER_KEY_SIZE];
};

/* Open the master key kept at path into key (MASTER_KEY_SIZE bytes), with
 * secret (NULL or how MASTER_PLAIN: none). A missing file is made with a
 * new key, kept as secret says; a plain file with a secret given is sealed
 * under it. *how gets how the key is kept now, and *wrap (the caller's; may
 * be NULL) how to seal another key the same way. Returns 0, or a negative
 * code with a message in errmsg (ERRMSG_SIZE bytes): BERTH_EINVAL for a
 * sealed key and no secret or the other kind of secret, BERTH_EREJECTED
 * for a secret that does not open it, BERTH_ECORRUPT for a file that is
 * not a master key file, BERTH_EIO for the disk, BERTH_ENOMEM. */
int master_open(const char *path, const struct master_secret *secret,
                uint8_t *key, enum master_how *how, struct master_wrap *wrap,
                char *errmsg);

/* Replace the file at path with one that keeps key (MASTER_KEY_SIZE bytes)
 * as wrap says (the same header, a new nonce): how a host keeps a new
 * master key under its operator's secret without holding it. The caller
 * keeps every pointer. Returns 0, or a negative code with a message in
 * errmsg. */
int master_rewrap(const char *path, const struct master_wrap *wrap,
                  const uint8_t *key, char *errmsg);

/* Open the file at path, written by master_rewrap with wrap, into key
 * (MASTER_KEY_SIZE bytes). Returns 0, BERTH_ENOTFOUND for no file,
 * BERTH_EREJECTED when it does not open with wrap, or another negative
 * code, with a message in errmsg. The caller keeps every pointer. */
int master_open_wrapped(const char *path, const struct master_wrap *wrap,
                        uint8_t *key, char *errmsg);

/* Wipe *wrap. */
void master_wrap_wipe(struct master_wrap *wrap);

/* Replace the file at path with one that keeps key (MASTER_KEY_SIZE
 * bytes, borrowed) as secret says (NULL: plain), whatever it held before:
 * for a host that adopts its cluster's master key. The file is replaced
 * whole (written beside, synced, renamed, the directory synced). Returns
 * 0, or a negative code with a message in errmsg. */
int master_replace(const char *path, const struct master_secret *secret,
                   const uint8_t *key, char *errmsg);

/* Write into out (MASTER_ID_SIZE * 2 + 1 bytes) the key's id: hex of a
 * keyed BLAKE2b hash, which says whether two hosts hold the same key and
 * nothing about the key. */
void master_key_id(const uint8_t *key, char *out);

/* Read a key file at path: exactly 32 bytes, or 64 hex digits and an
 * optional newline. Returns 0 with out (MASTER_KEY_SIZE bytes) set, or a
 * negative code with a message in errmsg. */
int master_read_key_file(const char *path, uint8_t *out, char *errmsg);

/* The fields of a master key file, as decoded from its bytes; the
 * pointers point into those bytes and own nothing. */
struct master_file {
    enum master_how how;
    const uint8_t *header; /* MASTER_HEADER_SIZE bytes, the seal's AD */
    const uint8_t *salt;   /* 16 bytes: Argon2id's salt */
    uint64_t opslimit;     /* Argon2id's limits, within libsodium's range */
    uint64_t memlimit;     /* when how is MASTER_PASSPHRASE */
    const uint8_t *nonce;  /* 24 bytes */
    const uint8_t *key;    /* the key, or the sealed key and its tag */
    size_t key_len;        /* MASTER_KEY_SIZE, or that and the tag */
};

/* Decode the len bytes of a master key file at bytes into *out. Returns 0,
 * or BERTH_ECORRUPT with why (ERRMSG_SIZE bytes) finishing a sentence that
 * starts with the file's name ("is not a master key file of this
 * berth"). Reads only bytes[0..len); checks no seal. */
int master_decode_file(const uint8_t *bytes, size_t len,
                       struct master_file *out, char *why);

/* Open the sealed key of f (how MASTER_PASSPHRASE or MASTER_KEY_FILE)
 * with the wrapping key wk (MASTER_KEY_SIZE bytes) into key
 * (MASTER_KEY_SIZE bytes). Returns 0, or BERTH_EREJECTED with key zeroed
 * when the seal does not open. */
int master_unseal(const struct master_file *f, const uint8_t *wk, uint8_t *key);

/* Parse the len bytes of a key file at raw: exactly 32 bytes, or 64 hex
 * digits and an optional newline. Returns 0 with out (MASTER_KEY_SIZE
 * bytes) set, or BERTH_EINVAL. */
int master_parse_key_file(const uint8_t *raw, size_t len, uint8_t *out);

/* A short phrase for how, for logs and stats: "beside the data", "sealed
 * under a passphrase" or "sealed under a key file". */
const char *master_how_text(enum master_how how);

#endif
