#include "daemon/rejoin.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "consensus/log.h"
#include "lib/err.h"
#include "lib/file.h"

#define REJOIN__FILE "rejoin"

/* Read DATA/rejoin into *out; *found says whether it exists. */
static int rejoin__read(const char *path, struct identity_rejoin *out,
                        bool *found, char *errmsg)
{
    char text[IDENTITY_REJOIN_TEXT_SIZE];
    *found = false;
    int rv = file_read_text(path, text, sizeof text, errmsg);
    if (rv != 0) {
        return rv == BERTH_ENOTFOUND ? 0 : rv;
    }
    if (identity_rejoin_parse(text, out) != 0 || out->replaces == 0 ||
        out->peer[0] == '\0' || out->n == 0) {
        err_printf(errmsg,
                   "%s is damaged (remove it to start as the raft "
                   "log allows)",
                   path);
        return BERTH_ECORRUPT;
    }
    *found = true;
    return 0;
}

int rejoin_prepare(const char *data_dir, uint64_t applied,
                   struct identity_rejoin *out, bool *rejoining, char *errmsg)
{
    char path[4200], tmp[4300], raft[4200], damage[ERRMSG_SIZE];
    char text[IDENTITY_REJOIN_TEXT_SIZE];
    bool found;
    *rejoining = false;
    snprintf(path, sizeof path, "%s/%s", data_dir, REJOIN__FILE);
    int rv = rejoin__read(path, out, &found, errmsg);
    if (rv != 0 || found) {
        *rejoining = found;
        return rv;
    }
    snprintf(raft, sizeof raft, "%s/raft", data_dir);
    rv = log_check_dir(raft, applied, out, damage);
    if (rv == 0) {
        return 0;
    }
    if (rv != BERTH_ECORRUPT || out->replaces == 0) {
        err_printf(errmsg, "%s%s", damage,
                   rv != BERTH_ECORRUPT ? ""
                                        : "; no other host is known to hold "
                                          "a copy");
        return rv;
    }
    int n = identity_rejoin_format(out, text, sizeof text);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof text ||
        file_write_synced(tmp, text, (size_t)n, errmsg) != 0 ||
        file_rename_synced(tmp, path, errmsg) != 0) {
        return BERTH_EIO;
    }
    /* What was found is said once more, now that it is acted on. */
    err_printf(errmsg, "%s", damage);
    *rejoining = true;
    return 0;
}

/* Move data_dir/name into dir, when it exists. */
static int rejoin__move(const char *data_dir, const char *name, const char *dir,
                        char *errmsg)
{
    char from[4200], to[4400];
    snprintf(from, sizeof from, "%s/%s", data_dir, name);
    snprintf(to, sizeof to, "%s/%s", dir, name);
    if (rename(from, to) != 0 && errno != ENOENT) {
        err_printf(errmsg, "cannot move %s to %s: %s", from, to,
                   strerror(errno));
        return BERTH_EIO;
    }
    return 0;
}

int rejoin_set_aside(const char *data_dir, char *where, size_t size,
                     char *errmsg)
{
    static const char *const names[] = {"raft", "store.db", "store.db-wal",
                                        "store.db-shm"};
    char dir[4200];
    time_t now = time(NULL);
    struct tm tm;
    char stamp[32];
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    /* A name of its own, even for two set asides in one second. */
    for (unsigned i = 0;; i++) {
        snprintf(dir, sizeof dir, i ? "%s/damaged-%s-%u" : "%s/damaged-%s",
                 data_dir, stamp, i);
        if (mkdir(dir, 0700) == 0) {
            break;
        }
        if (errno != EEXIST || i == 100) {
            err_printf(errmsg, "cannot create %s: %s", dir, strerror(errno));
            return BERTH_EIO;
        }
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int rv = rejoin__move(data_dir, names[i], dir, errmsg);
        if (rv != 0) {
            return rv;
        }
    }
    /* Both directories changed: the data directory and the new one. */
    char probe[4300], inner[4300];
    snprintf(probe, sizeof probe, "%s/raft", data_dir);
    snprintf(inner, sizeof inner, "%s/raft", dir);
    if (file_sync_dir(probe, errmsg) != 0 ||
        file_sync_dir(inner, errmsg) != 0) {
        return BERTH_EIO;
    }
    snprintf(where, size, "%s", dir);
    return 0;
}

int rejoin_done(const char *data_dir, char *errmsg)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", data_dir, REJOIN__FILE);
    if (unlink(path) != 0 && errno != ENOENT) {
        err_printf(errmsg, "cannot remove %s: %s", path, strerror(errno));
        return BERTH_EIO;
    }
    return file_sync_dir(path, errmsg);
}
