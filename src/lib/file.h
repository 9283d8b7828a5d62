/* Files replaced whole: written beside their place, synced, renamed over
 * it, and their directory synced, so that a crash leaves the old file or
 * the new one, never a mix. */
#ifndef BERTH_LIB_FILE_H
#define BERTH_LIB_FILE_H

#include <stddef.h>

/* Write len bytes at data to a new file at path (mode 0600, truncated if it
 * exists) and fsync it. Returns 0, or BERTH_EIO with a message in errmsg
 * (ERRMSG_SIZE bytes), the file then removed. data stays the caller's. */
int file_write_synced(const char *path, const void *data, size_t len,
                      char *errmsg);

/* fsync the directory that holds path, so that a rename in it is durable.
 * Returns 0, or BERTH_EIO with a message in errmsg. */
int file_sync_dir(const char *path, char *errmsg);

/* Rename from over to (a file written with file_write_synced) and sync
 * the directory. Returns 0, BERTH_ENOTFOUND when from does not exist, or
 * BERTH_EIO, with a message in errmsg. The caller keeps both paths. */
int file_rename_synced(const char *from, const char *to, char *errmsg);

/* Read the small text file at path into out (size bytes, NUL-terminated;
 * what does not fit is left out). Returns 0, BERTH_ENOTFOUND when it does
 * not exist, or BERTH_EIO with a message in errmsg. */
int file_read_text(const char *path, char *out, size_t size, char *errmsg);

#endif
