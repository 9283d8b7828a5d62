#include "lib/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"

/* Write len bytes at data to a new file at path and fsync it; on failure
 * the file is removed. */
int file_write_synced(const char *path, const void *data, size_t len,
                      char *errmsg)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        err_printf(errmsg, "creating %s: %s", path, strerror(errno));
        return BERTH_EIO;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, (const char *)data + off, len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            err_printf(errmsg, "writing %s: %s", path,
                       n < 0 ? strerror(errno) : "no progress");
            goto err_after_open;
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0) {
        err_printf(errmsg, "syncing %s: %s", path, strerror(errno));
        goto err_after_open;
    }
    if (close(fd) != 0) {
        err_printf(errmsg, "closing %s: %s", path, strerror(errno));
        unlink(path);
        return BERTH_EIO;
    }
    return 0;

err_after_open:
    close(fd);
    unlink(path);
    return BERTH_EIO;
}

/* fsync the directory that holds path, so that a rename in it is durable. */
int file_sync_dir(const char *path, char *errmsg)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(dir, sizeof dir, ".");
    } else {
        snprintf(dir, sizeof dir, "%.*s",
                 (int)(slash == path ? 1 : slash - path), path);
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        err_printf(errmsg, "syncing %s: %s", dir, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return BERTH_EIO;
    }
    close(fd);
    return 0;
}

int file_rename_synced(const char *from, const char *to, char *errmsg)
{
    if (rename(from, to) != 0) {
        int e = errno;
        err_printf(errmsg, "renaming %s: %s", from, strerror(e));
        return e == ENOENT ? BERTH_ENOTFOUND : BERTH_EIO;
    }
    return file_sync_dir(to, errmsg);
}

int file_read_text(const char *path, char *out, size_t size, char *errmsg)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT) {
            return BERTH_ENOTFOUND;
        }
        err_printf(errmsg, "cannot read %s: %s", path, strerror(errno));
        return BERTH_EIO;
    }
    size_t n = fread(out, 1, size - 1, f);
    bool failed = ferror(f) != 0;
    fclose(f);
    out[n] = '\0';
    if (failed) {
        err_printf(errmsg, "cannot read %s", path);
        return BERTH_EIO;
    }
    return 0;
}
