#include "crypto/master.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/file.h"

#define MASTER__MAGIC "brthmkey"
#define MASTER__FORMAT 1
#define MASTER__HEADER MASTER_HEADER_SIZE
#define MASTER__TAG crypto_aead_xchacha20poly1305_ietf_ABYTES
#define MASTER__MAX (MASTER__HEADER + MASTER_KEY_SIZE + MASTER__TAG)

const char *master_how_text(enum master_how how)
{
    switch (how) {
    case MASTER_PASSPHRASE:
        return "sealed under a passphrase";
    case MASTER_KEY_FILE:
        return "sealed under a key file";
    default:
        return "beside the data";
    }
}

/* The key that seals the master key: the key file's bytes, or the
 * passphrase stretched with the header's salt and limits. */
static int master__wrapping_key(const struct master_secret *secret,
                                const uint8_t *header, uint8_t *wk,
                                char *errmsg)
{
    if (secret->how == MASTER_KEY_FILE) {
        if (secret->len != MASTER_KEY_SIZE) {
            err_printf(errmsg, "a key file holds %d bytes", MASTER_KEY_SIZE);
            return BERTH_EINVAL;
        }
        memcpy(wk, secret->bytes, MASTER_KEY_SIZE);
        return 0;
    }
    if (crypto_pwhash(wk, MASTER_KEY_SIZE, (const char *)secret->bytes,
                      secret->len, header + 16, get_le64(header + 32),
                      (size_t)get_le64(header + 40),
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
        err_printf(errmsg, "stretching the passphrase: out of memory");
        return BERTH_ENOMEM;
    }
    return 0;
}

/* Write the file for key in place of path, sealed under wrap's key with
 * wrap's header (how, salt, limits) and a new nonce, or plain. */
static int master__write_wrapped(const char *path,
                                 const struct master_wrap *wrap,
                                 const uint8_t *key, char *errmsg)
{
    uint8_t file[MASTER__MAX] = {0};
    size_t len = MASTER__HEADER + MASTER_KEY_SIZE;
    memcpy(file, wrap->header, MASTER__HEADER);
    memcpy(file, MASTER__MAGIC, 8);
    file[8] = MASTER__FORMAT;
    file[9] = (uint8_t)wrap->how;
    memset(file + 48, 0, 24);
    if (wrap->how == MASTER_PLAIN) {
        memset(file + 16, 0, 32);
        memcpy(file + MASTER__HEADER, key, MASTER_KEY_SIZE);
    } else {
        unsigned long long clen;
        randombytes_buf(file + 48, 24);
        crypto_aead_xchacha20poly1305_ietf_encrypt(
            file + MASTER__HEADER, &clen, key, MASTER_KEY_SIZE, file,
            MASTER__HEADER, NULL, file + 48, wrap->key);
        len += MASTER__TAG;
    }

    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.new", path) >= (int)sizeof tmp) {
        err_printf(errmsg, "the path %s is too long", path);
        sodium_memzero(file, sizeof file);
        return BERTH_EINVAL;
    }
    int rv = file_write_synced(tmp, file, len, errmsg);
    sodium_memzero(file, sizeof file);
    if (rv == 0 && (rv = file_rename_synced(tmp, path, errmsg)) != 0) {
        unlink(tmp);
    }
    return rv;
}

/* Make in *wrap a new wrapping of secret: a new salt for a passphrase. */
static int master__new_wrap(const struct master_secret *secret,
                            struct master_wrap *wrap, char *errmsg)
{
    memset(wrap, 0, sizeof *wrap);
    wrap->how = secret->how;
    wrap->header[9] = (uint8_t)secret->how;
    if (secret->how == MASTER_PLAIN) {
        return 0;
    }
    if (secret->how == MASTER_PASSPHRASE) {
        randombytes_buf(wrap->header + 16, 16);
        put_le64(wrap->header + 32, crypto_pwhash_OPSLIMIT_INTERACTIVE);
        put_le64(wrap->header + 40, crypto_pwhash_MEMLIMIT_INTERACTIVE);
    }
    return master__wrapping_key(secret, wrap->header, wrap->key, errmsg);
}

/* Write the file for key, kept as secret says, in place of path; *out (may
 * be NULL) gets the wrapping. */
static int master__write(const char *path, const struct master_secret *secret,
                         const uint8_t *key, struct master_wrap *out,
                         char *errmsg)
{
    struct master_wrap wrap;
    int rv = master__new_wrap(secret, &wrap, errmsg);
    if (rv == 0) {
        rv = master__write_wrapped(path, &wrap, key, errmsg);
    }
    if (rv == 0 && out != NULL) {
        *out = wrap;
    }
    master_wrap_wipe(&wrap);
    return rv;
}

void master_wrap_wipe(struct master_wrap *wrap)
{
    sodium_memzero(wrap, sizeof *wrap);
}

int master_rewrap(const char *path, const struct master_wrap *wrap,
                  const uint8_t *key, char *errmsg)
{
    if (sodium_init() < 0) {
        err_printf(errmsg, "libsodium cannot start");
        return BERTH_EIO;
    }
    return master__write_wrapped(path, wrap, key, errmsg);
}

/* Read the file at path into file; *len gets its length. */
static int master__read(const char *path, uint8_t *file, size_t *len,
                        char *errmsg)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        err_printf(errmsg, "opening %s: %s", path, strerror(e));
        return e == ENOENT ? BERTH_ENOTFOUND : BERTH_EIO;
    }
    ssize_t n = read(fd, file, MASTER__MAX + 1);
    int e = errno;
    close(fd);
    if (n < 0) {
        err_printf(errmsg, "reading %s: %s", path, strerror(e));
        return BERTH_EIO;
    }
    *len = (size_t)n;
    return 0;
}

int master_open(const char *path, const struct master_secret *secret,
                uint8_t *key, enum master_how *how, struct master_wrap *wrap,
                char *errmsg)
{
    static const struct master_secret none = {.how = MASTER_PLAIN};
    uint8_t file[MASTER__MAX + 1];
    size_t len;
    if (sodium_init() < 0) {
        err_printf(errmsg, "libsodium cannot start");
        return BERTH_EIO;
    }
    secret = secret != NULL ? secret : &none;
    int rv = master__read(path, file, &len, errmsg);
    if (rv == BERTH_ENOTFOUND) {
        randombytes_buf(key, MASTER_KEY_SIZE);
        rv = master__write(path, secret, key, wrap, errmsg);
        *how = secret->how;
        return rv;
    }
    if (rv != 0) {
        return rv;
    }
    struct master_file f;
    char why[ERRMSG_SIZE];
    rv = master_decode_file(file, len, &f, why);
    if (rv != 0) {
        err_printf(errmsg, "%s %s", path, why);
        return rv;
    }
    enum master_how kept = f.how;
    if (kept == MASTER_PLAIN) {
        memcpy(key, f.key, MASTER_KEY_SIZE);
        sodium_memzero(file, sizeof file);
        *how = MASTER_PLAIN;
        /* A secret given for the first time seals the key from now on. */
        if (secret->how != MASTER_PLAIN) {
            rv = master__write(path, secret, key, wrap, errmsg);
            *how = rv == 0 ? secret->how : MASTER_PLAIN;
        } else if (wrap != NULL) {
            memset(wrap, 0, sizeof *wrap);
        }
        return rv;
    }
    if (secret->how != kept) {
        err_printf(
            errmsg, "%s is %s: start with %s", path, master_how_text(kept),
            kept == MASTER_PASSPHRASE ? "its passphrase (BERTH_PASSPHRASE or "
                                        "--passphrase-file)"
                                      : "its key file (--master-key-file)");
        return BERTH_EINVAL;
    }
    uint8_t wk[MASTER_KEY_SIZE];
    rv = master__wrapping_key(secret, file, wk, errmsg);
    if (rv != 0) {
        return rv;
    }
    rv = master_unseal(&f, wk, key);
    if (rv == 0 && wrap != NULL) {
        wrap->how = kept;
        memcpy(wrap->header, file, MASTER__HEADER);
        memcpy(wrap->key, wk, MASTER_KEY_SIZE);
    }
    sodium_memzero(wk, sizeof wk);
    if (rv != 0) {
        err_printf(errmsg, "%s does not open with this %s (or was altered)",
                   path, kept == MASTER_PASSPHRASE ? "passphrase" : "key file");
        return rv;
    }
    *how = kept;
    return 0;
}

int master_replace(const char *path, const struct master_secret *secret,
                   const uint8_t *key, char *errmsg)
{
    static const struct master_secret none = {.how = MASTER_PLAIN};
    if (sodium_init() < 0) {
        err_printf(errmsg, "libsodium cannot start");
        return BERTH_EIO;
    }
    return master__write(path, secret != NULL ? secret : &none, key, NULL,
                         errmsg);
}

int master_open_wrapped(const char *path, const struct master_wrap *wrap,
                        uint8_t *key, char *errmsg)
{
    uint8_t file[MASTER__MAX + 1];
    size_t len;
    int rv = master__read(path, file, &len, errmsg);
    if (rv != 0) {
        return rv;
    }
    struct master_file f;
    char why[ERRMSG_SIZE];
    rv = master_decode_file(file, len, &f, why);
    if (rv == 0 && f.how != wrap->how) {
        err_printf(why, "is not kept as %s", master_how_text(wrap->how));
        rv = BERTH_EREJECTED;
    }
    if (rv != 0) {
        err_printf(errmsg, "%s %s", path, why);
    } else if (f.how == MASTER_PLAIN) {
        memcpy(key, f.key, MASTER_KEY_SIZE);
    } else if ((rv = master_unseal(&f, wrap->key, key)) != 0) {
        err_printf(errmsg, "%s does not open (or was altered)", path);
    }
    sodium_memzero(file, sizeof file);
    return rv;
}

void master_key_id(const uint8_t *key, char *out)
{
    static const char label[] = "berth master key id";
    uint8_t h[MASTER_ID_SIZE];
    crypto_generichash(h, sizeof h, (const uint8_t *)label, sizeof label - 1,
                       key, MASTER_KEY_SIZE);
    sodium_bin2hex(out, 2 * MASTER_ID_SIZE + 1, h, sizeof h);
}

int master_decode_file(const uint8_t *bytes, size_t len,
                       struct master_file *out, char *why)
{
    if (len < MASTER__HEADER) {
        err_printf(why, "is not a master key file of this berth");
        return BERTH_ECORRUPT;
    }
    enum master_how kept = (enum master_how)bytes[9];
    bool sealed = kept == MASTER_PASSPHRASE || kept == MASTER_KEY_FILE;
    size_t want = MASTER__HEADER + MASTER_KEY_SIZE + (sealed ? MASTER__TAG : 0);
    if (len != want || memcmp(bytes, MASTER__MAGIC, 8) != 0 ||
        bytes[8] != MASTER__FORMAT || (!sealed && kept != MASTER_PLAIN)) {
        err_printf(why, "is not a master key file of this berth");
        return BERTH_ECORRUPT;
    }
    uint64_t ops = get_le64(bytes + 32), mem = get_le64(bytes + 40);
    if (kept == MASTER_PASSPHRASE && (ops < crypto_pwhash_OPSLIMIT_MIN ||
                                      ops > crypto_pwhash_OPSLIMIT_SENSITIVE ||
                                      mem < crypto_pwhash_MEMLIMIT_MIN ||
                                      mem > crypto_pwhash_MEMLIMIT_SENSITIVE)) {
        /* Else an altered file could make the start take hours or all the
         * memory before it failed. */
        err_printf(why, "asks for Argon2id limits out of range");
        return BERTH_ECORRUPT;
    }
    out->how = kept;
    out->header = bytes;
    out->salt = bytes + 16;
    out->opslimit = ops;
    out->memlimit = mem;
    out->nonce = bytes + 48;
    out->key = bytes + MASTER__HEADER;
    out->key_len = len - MASTER__HEADER;
    return 0;
}

int master_unseal(const struct master_file *f, const uint8_t *wk, uint8_t *key)
{
    if (f->key_len != MASTER_KEY_SIZE + MASTER__TAG ||
        crypto_aead_xchacha20poly1305_ietf_decrypt(
            key, NULL, NULL, f->key, f->key_len, f->header, MASTER__HEADER,
            f->nonce, wk) != 0) {
        sodium_memzero(key, MASTER_KEY_SIZE);
        return BERTH_EREJECTED;
    }
    return 0;
}

int master_parse_key_file(const uint8_t *raw, size_t len, uint8_t *out)
{
    if (len == MASTER_KEY_SIZE) {
        memcpy(out, raw, MASTER_KEY_SIZE);
        return 0;
    }
    size_t got = 0;
    if (len > 0 && raw[len - 1] == '\n') {
        len--;
    }
    if (len != 2 * MASTER_KEY_SIZE ||
        sodium_hex2bin(out, MASTER_KEY_SIZE, (const char *)raw, len, NULL, &got,
                       NULL) != 0 ||
        got != MASTER_KEY_SIZE) {
        return BERTH_EINVAL;
    }
    return 0;
}

int master_read_key_file(const char *path, uint8_t *out, char *errmsg)
{
    uint8_t raw[130];
    size_t len;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_printf(errmsg, "opening the key file %s: %s", path,
                   strerror(errno));
        return BERTH_EIO;
    }
    ssize_t n = read(fd, raw, sizeof raw);
    close(fd);
    if (n < 0) {
        err_printf(errmsg, "reading the key file %s: %s", path,
                   strerror(errno));
        return BERTH_EIO;
    }
    len = (size_t)n;
    int rv = master_parse_key_file(raw, len, out);
    if (rv != 0) {
        err_printf(errmsg,
                   "the key file %s holds neither 32 bytes nor 64 hex digits",
                   path);
    }
    sodium_memzero(raw, sizeof raw);
    return rv;
}
