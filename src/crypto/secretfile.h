/* Small secrets kept on disk sealed under a key derived from the master
 * key, such as DATA/cluster.key (the cluster secret).
 *
 * The file (0600):
 *
 *   0-7    magic "brthseal"
 *   8      format, 1
 *   9-15   zero
 *   16-23  what the file holds (8 bytes, such as "clusterk"): the context
 *          under which its key is derived from the master key
 *          (crypto_kdf, id 1)
 *   24-47  nonce
 *   48-    the secret sealed with XChaCha20-Poly1305, and its 16-byte tag;
 *          bytes 0-47 are the associated data.
 *
 * The file is replaced whole: written beside it, synced, renamed over it,
 * and the directory synced. The secret is never on disk unsealed. */
#ifndef BERTH_CRYPTO_SECRETFILE_H
#define BERTH_CRYPTO_SECRETFILE_H

#include <stddef.h>
#include <stdint.h>

/* The most bytes one sealed file holds. */
#define SECRETFILE_MAX 256

/* Write len bytes of data (at most SECRETFILE_MAX; borrowed) to path, sealed
 * under a key derived from master_key (32 bytes, borrowed) for what (8
 * characters). Returns 0, or a negative code with a message in errmsg
 * (ERRMSG_SIZE bytes). */
int secretfile_write(const char *path, const uint8_t *master_key,
                     const char *what, const void *data, size_t len,
                     char *errmsg);

/* Read the len bytes sealed in path for what under master_key into data
 * (the caller's, len bytes). Returns 0; BERTH_ENOTFOUND when there is no
 * file; BERTH_EREJECTED when it does not open under this master key (or
 * was altered); BERTH_ECORRUPT when it is not such a file; BERTH_EIO; each
 * with a message in errmsg. */
int secretfile_read(const char *path, const uint8_t *master_key,
                    const char *what, void *data, size_t len, char *errmsg);

#endif
