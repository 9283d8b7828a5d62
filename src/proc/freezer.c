#include "proc/freezer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/err.h"

/* How deep freezer_adopt follows children of children. */
#define FREEZER__ADOPT_DEPTH 8

/* 0 until detected. For a cgroup kind, freezer__dir is this host's
 * directory, <cgroup>/berth-<hostpid>. */
static enum freezer_kind freezer__kind;
static char freezer__dir[PATH_MAX];

/* Undo the octal escapes (\040 for a space) that /proc uses in paths. */
static void freezer__unescape(char *s)
{
    char *out = s;
    const char *in = s;
    while (*in != '\0') {
        if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' &&
            in[2] <= '7' && in[3] >= '0' && in[3] <= '7') {
            *out++ =
                (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
            in += 4;
        } else {
            *out++ = *in++;
        }
    }
    *out = '\0';
}

/* Return whether the comma-separated list holds item. */
static bool freezer__has_item(const char *list, const char *item)
{
    size_t n = strlen(item);
    const char *p = list;
    while (p != NULL && *p != '\0') {
        if (strncmp(p, item, n) == 0 && (p[n] == ',' || p[n] == '\0')) {
            return true;
        }
        p = strchr(p, ',');
        p = p != NULL ? p + 1 : NULL;
    }
    return false;
}

/* Copy src into a PATH_MAX buffer; returns false if it does not fit. */
static bool freezer__copy(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n >= PATH_MAX) {
        return false;
    }
    memcpy(dst, src, n + 1);
    return true;
}

/* Find the cgroup2 mount (version 2) or the cgroup1 hierarchy that holds
 * the freezer (version 1): its root inside the hierarchy and its mount
 * point, each into a PATH_MAX buffer. */
static int freezer__find_mount(int version, char *root, char *mnt)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL) {
        return BERTH_ENOTFOUND;
    }
    /* getline, not a fixed buffer: option lists of overlay mounts run to
     * kilobytes. Its buffer comes from libc and goes back with free(). */
    char *line = NULL;
    size_t cap = 0;
    int rv = BERTH_ENOTFOUND;
    while (rv != 0 && getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = '\0';
        char *sep = strstr(line, " - ");
        if (sep == NULL) {
            continue;
        }
        *sep = '\0';
        char *save;
        char *field[5];
        int n = 0;
        for (char *t = strtok_r(line, " ", &save); t != NULL && n < 5;
             t = strtok_r(NULL, " ", &save)) {
            field[n++] = t;
        }
        char *fstype = strtok_r(sep + 3, " ", &save);
        char *source = fstype ? strtok_r(NULL, " ", &save) : NULL;
        char *opts = source ? strtok_r(NULL, " ", &save) : NULL;
        if (n < 5 || opts == NULL) {
            continue;
        }
        bool match = version == 2 ? strcmp(fstype, "cgroup2") == 0
                                  : strcmp(fstype, "cgroup") == 0 &&
                                        freezer__has_item(opts, "freezer");
        if (!match) {
            continue;
        }
        freezer__unescape(field[3]);
        freezer__unescape(field[4]);
        if (freezer__copy(root, field[3]) && freezer__copy(mnt, field[4])) {
            rv = 0;
        }
    }
    free(line);
    fclose(f);
    return rv;
}

/* Copy this process's cgroup path in the given hierarchy, from
 * /proc/self/cgroup, into a PATH_MAX buffer. */
static int freezer__own_cgroup(int version, char *path)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (f == NULL) {
        return BERTH_ENOTFOUND;
    }
    char *line = NULL;
    size_t cap = 0;
    int rv = BERTH_ENOTFOUND;
    while (rv != 0 && getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = '\0';
        /* hierarchy-id:controllers:path; the path may hold colons. */
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL) {
            continue;
        }
        *c1 = '\0';
        *c2 = '\0';
        bool match = version == 2 ? strcmp(line, "0") == 0 && c1[1] == '\0'
                                  : freezer__has_item(c1 + 1, "freezer");
        if (match && freezer__copy(path, c2 + 1)) {
            rv = 0;
        }
    }
    free(line);
    fclose(f);
    return rv;
}

/* Find this process's own cgroup directory in the given hierarchy, into a
 * PATH_MAX buffer. */
static int freezer__own_dir(int version, char *out)
{
    char root[PATH_MAX];
    char mnt[PATH_MAX];
    char cg[PATH_MAX];
    if (freezer__find_mount(version, root, mnt) != 0 ||
        freezer__own_cgroup(version, cg) != 0) {
        return BERTH_ENOTFOUND;
    }
    /* A mount of a subtree (as in containers) shows only what lies below
     * its root; a cgroup outside it cannot be reached. */
    const char *rel = cg;
    if (strcmp(root, "/") != 0) {
        size_t n = strlen(root);
        if (strncmp(cg, root, n) != 0 || (cg[n] != '/' && cg[n] != '\0')) {
            return BERTH_ENOTFOUND;
        }
        rel = cg + n;
    }
    if (strcmp(rel, "/") == 0) {
        rel = "";
    }
    int n = snprintf(out, PATH_MAX, "%s%s", mnt, rel);
    return n > 0 && n < PATH_MAX ? 0 : BERTH_ENOTFOUND;
}

/* Return whether name is a non-empty string of digits. */
static bool freezer__is_number(const char *name)
{
    if (*name == '\0') {
        return false;
    }
    for (const char *c = name; *c != '\0'; c++) {
        if (*c < '0' || *c > '9') {
            return false;
        }
    }
    return true;
}

/* Remove the program cgroups under dir that are empty, then dir itself if
 * self is true. A cgroup still holding a process refuses rmdir and stays. */
static void freezer__sweep(const char *dir, bool self)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char path[PATH_MAX];
            if (!freezer__is_number(e->d_name) ||
                snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >=
                    (int)sizeof path) {
                continue;
            }
            rmdir(path);
        }
        closedir(d);
    }
    if (self) {
        rmdir(dir);
    }
}

/* A host is crash-only, so a host killed with -9 leaves its directory
 * behind; remove those of host processes that no longer exist. */
static void freezer__sweep_dead(const char *base)
{
    DIR *d = opendir(base);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "berth-", 6) != 0 ||
            !freezer__is_number(e->d_name + 6)) {
            continue;
        }
        long pid = strtol(e->d_name + 6, NULL, 10);
        if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 ||
            errno != ESRCH) {
            continue;
        }
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", base, e->d_name) <
            (int)sizeof path) {
            freezer__sweep(path, true);
        }
    }
    closedir(d);
}

/* Set up this host's directory in the given cgroup version; returns
 * whether that version's freezer can be used. */
static bool freezer__try(int version)
{
    char base[PATH_MAX];
    if (freezer__own_dir(version, base) != 0) {
        return false;
    }
    freezer__sweep_dead(base);
    int n = snprintf(freezer__dir, sizeof freezer__dir, "%s/berth-%d", base,
                     (int)getpid());
    if (n <= 0 || (size_t)n >= sizeof freezer__dir) {
        return false;
    }
    if (mkdir(freezer__dir, 0755) != 0 && errno != EEXIST) {
        return false;
    }
    /* A cgroup2 hierarchy without the freeze file (kernels before 5.2) or
     * a directory we may not write to is no freezer. */
    char probe[PATH_MAX];
    n = snprintf(probe, sizeof probe, "%s/%s", freezer__dir,
                 version == 2 ? "cgroup.freeze" : "freezer.state");
    if (n <= 0 || (size_t)n >= sizeof probe || access(probe, W_OK) != 0) {
        rmdir(freezer__dir);
        return false;
    }
    return true;
}

enum freezer_kind freezer_detect(void)
{
    if (freezer__kind != 0) {
        return freezer__kind;
    }
    const char *want = getenv("BERTH_FREEZER");
    bool v2 = true;
    bool v1 = true;
    if (want != NULL && strcmp(want, "sigstop") == 0) {
        v2 = v1 = false;
    } else if (want != NULL && strcmp(want, "cgroup2") == 0) {
        v1 = false;
    } else if (want != NULL && strcmp(want, "cgroup1") == 0) {
        v2 = false;
    }
    if (v2 && freezer__try(2)) {
        freezer__kind = FREEZER_CGROUP2;
    } else if (v1 && freezer__try(1)) {
        freezer__kind = FREEZER_CGROUP1;
    } else {
        freezer__kind = FREEZER_SIGSTOP;
    }
    return freezer__kind;
}

const char *freezer_name(enum freezer_kind kind)
{
    switch (kind) {
    case FREEZER_CGROUP2:
        return "cgroup2";
    case FREEZER_CGROUP1:
        return "cgroup1";
    default:
        return "sigstop";
    }
}

/* Write text to a control file of pid's cgroup; returns 0 or BERTH_EIO. */
static int freezer__write(pid_t pid, const char *file, const char *text)
{
    char path[PATH_MAX];
    int n =
        snprintf(path, sizeof path, "%s/%d/%s", freezer__dir, (int)pid, file);
    if (n <= 0 || (size_t)n >= sizeof path) {
        return BERTH_EIO;
    }
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return BERTH_EIO;
    }
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    close(fd);
    return w == (ssize_t)len ? 0 : BERTH_EIO;
}

/* What attaching costs, measured here (kernel 6.18, 2 CPUs, hybrid
 * hierarchy, p50 of 200): mkdir 30-60 us; the write of cgroup.procs 40-90 us
 * when attaches follow one another within a few milliseconds, but 9-11 ms
 * (p90 19 ms), in cgroup1 as in cgroup2, when they are 20 ms apart, as
 * wakes on a real host are. Moving a task takes the kernel's
 * cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period
 * unless the hierarchy is mounted with favordynmods (Linux 6.0). That is far
 * over the 100 us a wake may spend, so the caller runs this off the event
 * loop, and freezer_adopt then catches what the program forked meanwhile.
 * Attaching lazily at the first freeze instead would put the same wait on
 * the freeze and miss more. The rmdir after exit costs 14-22 us. */
enum freezer_kind freezer_attach(pid_t pid)
{
    enum freezer_kind kind = freezer_detect();
    if (kind == FREEZER_SIGSTOP) {
        return kind;
    }
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%d", freezer__dir, (int)pid);
    if (n <= 0 || (size_t)n >= sizeof path) {
        return FREEZER_SIGSTOP;
    }
    if (mkdir(path, 0755) != 0) {
        if (errno != EEXIST) {
            return FREEZER_SIGSTOP;
        }
        /* An earlier program with this pid left its cgroup behind, kept
         * busy by a stray process at the time, and maybe frozen. */
        freezer_set(kind, pid, false);
    }
    char num[24];
    snprintf(num, sizeof num, "%d", (int)pid);
    if (freezer__write(pid, "cgroup.procs", num) != 0) {
        rmdir(path);
        return FREEZER_SIGSTOP;
    }
    return kind;
}

/* Move the children of every thread of pid into top's cgroup, then theirs.
 * A child is moved before its own children are listed, so one it forks
 * meanwhile is born inside. */
static void freezer__adopt(pid_t pid, pid_t top, int depth)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!freezer__is_number(e->d_name)) {
            continue;
        }
        char list[64 + 256];
        snprintf(list, sizeof list, "/proc/%d/task/%s/children", (int)pid,
                 e->d_name);
        int fd = open(list, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        /* A program with more children than fit is not worth a loop. */
        char text[1024];
        ssize_t n = read(fd, text, sizeof text - 1);
        close(fd);
        if (n <= 0) {
            continue;
        }
        text[n] = '\0';
        char *save;
        for (char *t = strtok_r(text, " \n", &save); t != NULL;
             t = strtok_r(NULL, " \n", &save)) {
            if (!freezer__is_number(t) ||
                freezer__write(top, "cgroup.procs", t) != 0) {
                continue;
            }
            if (depth < FREEZER__ADOPT_DEPTH) {
                freezer__adopt((pid_t)strtol(t, NULL, 10), top, depth + 1);
            }
        }
    }
    closedir(d);
}

void freezer_adopt(pid_t pid)
{
    freezer__adopt(pid, pid, 0);
}

/* A freeze and a thaw together cost about 24 us with cgroup2, 165 us with
 * cgroup1 and 7 us with signals here (mean of 10,000 pairs on a cat). */
int freezer_set(enum freezer_kind kind, pid_t pid, bool frozen)
{
    switch (kind) {
    case FREEZER_CGROUP2:
        return freezer__write(pid, "cgroup.freeze", frozen ? "1" : "0");
    case FREEZER_CGROUP1:
        /* cgroup1 freezes asynchronously (FREEZING, then FROZEN); the
         * tasks stop on their own shortly after the write. */
        return freezer__write(pid, "freezer.state",
                              frozen ? "FROZEN" : "THAWED");
    default:
        break;
    }
    /* The child leads its own process group; what it started is in it. */
    int sig = frozen ? SIGSTOP : SIGCONT;
    if (kill(-pid, sig) != 0 && kill(pid, sig) != 0) {
        return BERTH_EIO;
    }
    return 0;
}

void freezer_kill_all(enum freezer_kind kind, pid_t pid)
{
    /* cgroup.kill (Linux 5.14) also reaches processes that left the
     * process group; where it is missing the group kill has to do. */
    if (kind == FREEZER_CGROUP2) {
        freezer__write(pid, "cgroup.kill", "1");
    }
}

/* Remove pid's cgroup; returns 0 or the errno of rmdir. */
static int freezer__rmdir(pid_t pid)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%d", freezer__dir, (int)pid);
    if (n <= 0 || (size_t)n >= sizeof path) {
        return ENAMETOOLONG;
    }
    return rmdir(path) == 0 ? 0 : errno;
}

/* A killed program's children die a moment after the program is reaped,
 * and until then its cgroup refuses rmdir. Those cgroups are tried again
 * at the next few removals; one a stray keeps busy for longer is left to
 * freezer_cleanup, or to the sweep at the next host's start. */
#define FREEZER__RETRY_MAX 32
#define FREEZER__RETRY_TRIES 8
static struct {
    pid_t pid;
    int tries;
} freezer__retry[FREEZER__RETRY_MAX];
static int freezer__retry_n;

void freezer_remove(pid_t pid)
{
    for (int i = 0; i < freezer__retry_n;) {
        if (freezer__rmdir(freezer__retry[i].pid) != EBUSY ||
            ++freezer__retry[i].tries >= FREEZER__RETRY_TRIES) {
            freezer__retry[i] = freezer__retry[--freezer__retry_n];
            continue;
        }
        i++;
    }
    if (freezer__rmdir(pid) == EBUSY && freezer__retry_n < FREEZER__RETRY_MAX) {
        freezer__retry[freezer__retry_n].pid = pid;
        freezer__retry[freezer__retry_n].tries = 0;
        freezer__retry_n++;
    }
}

void freezer_cleanup(bool all)
{
    if (freezer__kind == FREEZER_CGROUP1 || freezer__kind == FREEZER_CGROUP2) {
        freezer__sweep(freezer__dir, all);
    }
    if (all) {
        freezer__retry_n = 0;
        freezer__kind = 0;
        freezer__dir[0] = '\0';
    }
}
