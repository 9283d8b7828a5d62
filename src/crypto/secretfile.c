#include "crypto/secretfile.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/file.h"

#define SECRETFILE__MAGIC "brthseal"
#define SECRETFILE__FORMAT 1
#define SECRETFILE__HEADER 48
#define SECRETFILE__TAG crypto_aead_xchacha20poly1305_ietf_ABYTES
#define SECRETFILE__FILE (SECRETFILE__HEADER + SECRETFILE_MAX + SECRETFILE__TAG)

_Static_assert(crypto_kdf_CONTEXTBYTES == 8, "what is 8 characters");

static void secretfile__key(const uint8_t *master_key, const char *what,
                            uint8_t *key)
{
    crypto_kdf_derive_from_key(key, 32, 1, what, master_key);
}

int secretfile_write(const char *path, const uint8_t *master_key,
                     const char *what, const void *data, size_t len,
                     char *errmsg)
{
    uint8_t file[SECRETFILE__FILE] = {0};
    uint8_t key[32];
    char tmp[4096];
    if (len > SECRETFILE_MAX || strlen(what) != 8) {
        err_printf(errmsg, "a sealed file holds at most %d bytes",
                   SECRETFILE_MAX);
        return BERTH_EINVAL;
    }
    if (snprintf(tmp, sizeof tmp, "%s.new", path) >= (int)sizeof tmp) {
        err_printf(errmsg, "the path %s is too long", path);
        return BERTH_EINVAL;
    }
    memcpy(file, SECRETFILE__MAGIC, 8);
    file[8] = SECRETFILE__FORMAT;
    memcpy(file + 16, what, 8);
    randombytes_buf(file + 24, 24);
    secretfile__key(master_key, what, key);
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        file + SECRETFILE__HEADER, NULL, data, len, file, SECRETFILE__HEADER,
        NULL, file + 24, key);
    sodium_memzero(key, sizeof key);
    int rv = file_write_synced(
        tmp, file, SECRETFILE__HEADER + len + SECRETFILE__TAG, errmsg);
    if (rv == 0 && (rv = file_rename_synced(tmp, path, errmsg)) != 0) {
        unlink(tmp);
    }
    return rv;
}

int secretfile_read(const char *path, const uint8_t *master_key,
                    const char *what, void *data, size_t len, char *errmsg)
{
    uint8_t file[SECRETFILE__FILE + 1];
    uint8_t key[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        err_printf(errmsg, "opening %s: %s", path, strerror(e));
        return e == ENOENT ? BERTH_ENOTFOUND : BERTH_EIO;
    }
    ssize_t n = read(fd, file, sizeof file);
    int e = errno;
    close(fd);
    if (n < 0) {
        err_printf(errmsg, "reading %s: %s", path, strerror(e));
        return BERTH_EIO;
    }
    if (len > SECRETFILE_MAX ||
        (size_t)n != SECRETFILE__HEADER + len + SECRETFILE__TAG ||
        memcmp(file, SECRETFILE__MAGIC, 8) != 0 ||
        file[8] != SECRETFILE__FORMAT || memcmp(file + 16, what, 8) != 0) {
        err_printf(errmsg, "%s is not a sealed %.8s file of this berth", path,
                   what);
        return BERTH_ECORRUPT;
    }
    secretfile__key(master_key, what, key);
    int bad = crypto_aead_xchacha20poly1305_ietf_decrypt(
        data, NULL, NULL, file + SECRETFILE__HEADER, len + SECRETFILE__TAG,
        file, SECRETFILE__HEADER, file + 24, key);
    sodium_memzero(key, sizeof key);
    if (bad != 0) {
        sodium_memzero(data, len);
        err_printf(errmsg,
                   "%s does not open under this host's master key (or was "
                   "altered)",
                   path);
        return BERTH_EREJECTED;
    }
    return 0;
}
