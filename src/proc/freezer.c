#include "proc/freezer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/err.h"
#include "proc/cgbusy.h"
#include "proc/tree.h"

/* How deep freezer_adopt follows children of children. */
#define FREEZER__ADOPT_DEPTH 8

/* How long a kill of leftovers waits for them to be gone, at most. */
#define FREEZER__KILL_WAIT_MS 3000

/* 0 until detected. For a cgroup kind, freezer__dir is this run's
 * directory, <cgroup>/berth-<tag>/<run>, and freezer__mem the file of a
 * program's cgroup that holds its memory use ("" if there is none). The
 * names are made once per process, or set by freezer_claim. */
static enum freezer_kind freezer__kind;
static char freezer__dir[PATH_MAX];
static char freezer__mem[32];
static char freezer__tag[96];
static char freezer__run[32];
static char freezer__id[sizeof freezer__tag + sizeof freezer__run];

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
 * the controller ctl (version 1): its root inside the hierarchy and its
 * mount point, each into a PATH_MAX buffer. */
static int freezer__find_mount(int version, const char *ctl, char *root,
                               char *mnt)
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
                                        freezer__has_item(opts, ctl);
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

/* Copy this process's cgroup path in the given hierarchy (version 1: the
 * one of controller ctl), from /proc/self/cgroup, into a PATH_MAX
 * buffer. */
static int freezer__own_cgroup(int version, const char *ctl, char *path)
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
                                  : freezer__has_item(c1 + 1, ctl);
        if (match && freezer__copy(path, c2 + 1)) {
            rv = 0;
        }
    }
    free(line);
    fclose(f);
    return rv;
}

int freezer_own_dir(int version, const char *ctl, char *out)
{
    char root[PATH_MAX];
    char mnt[PATH_MAX];
    char cg[PATH_MAX];
    if (freezer__find_mount(version, ctl, root, mnt) != 0 ||
        freezer__own_cgroup(version, ctl, cg) != 0) {
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

/* Make the names once. The tag defaults to this process's pid; the run is
 * the pid and a random number, so that no two runs of one host share a
 * directory, not even in pid namespaces that hand out the same pids. */
static void freezer__names(void)
{
    if (freezer__tag[0] == '\0') {
        snprintf(freezer__tag, sizeof freezer__tag, "%d", (int)getpid());
    }
    if (freezer__run[0] == '\0') {
        uint32_t r = 0;
        if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
            r = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
        }
        snprintf(freezer__run, sizeof freezer__run, "%d-%08x", (int)getpid(),
                 (unsigned)r);
    }
    snprintf(freezer__id, sizeof freezer__id, "%s/%s", freezer__tag,
             freezer__run);
}

const char *freezer_host_id(void)
{
    freezer__names();
    return freezer__id;
}

/* Write text to the file at dir/file; returns 0 or BERTH_EIO. */
static int freezer__write_at(const char *dir, const char *file,
                             const char *text)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", dir, file);
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

int freezer_pid_dir(pid_t pid, char *dir)
{
    int n = snprintf(dir, PATH_MAX, "%s/%d", freezer__dir, (int)pid);
    return n > 0 && n < PATH_MAX ? 0 : BERTH_EIO;
}

/* Write text to a control file of pid's cgroup; returns 0 or BERTH_EIO. */
static int freezer__write(pid_t pid, const char *file, const char *text)
{
    char dir[PATH_MAX];
    if (freezer_pid_dir(pid, dir) != 0) {
        return BERTH_EIO;
    }
    return freezer__write_at(dir, file, text);
}

static bool freezer__kill_pid(pid_t pid, void *arg)
{
    unsigned *listed = arg;
    if (pid == getpid()) {
        return true; /* the launcher, in the staging cgroup, kills the run */
    }
    (*listed)++;
    kill(pid, SIGKILL);
    return true;
}

/* Send SIGKILL to every process of the cgroup at dir and of the cgroups
 * below it. With cgroup v1 each cgroup is frozen first, so that nothing
 * forks or exits between the list and the signal, and thawed after, since
 * a task frozen by v1 takes even SIGKILL only once thawed (cgroup v2 lets
 * a frozen task die). Returns how many processes were listed. */
static unsigned freezer__kill_pass(const char *dir, int version)
{
    unsigned listed = 0;
    char path[PATH_MAX];
    if (version == 1) {
        freezer__write_at(dir, "freezer.state", "FROZEN");
    }
    if (snprintf(path, sizeof path, "%s/cgroup.procs", dir) <
        (int)sizeof path) {
        tree_list(path, freezer__kill_pid, &listed);
    }
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_type != DT_DIR || e->d_name[0] == '.' ||
                snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >=
                    (int)sizeof path) {
                continue;
            }
            listed += freezer__kill_pass(path, version);
        }
        closedir(d);
    }
    if (version == 1) {
        freezer__write_at(dir, "freezer.state", "THAWED");
    }
    return listed;
}

/* Remove the cgroup at dir and every cgroup below it, deepest first; one
 * that still holds a process stays. */
static void freezer__rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char path[PATH_MAX];
            if (e->d_type != DT_DIR || e->d_name[0] == '.' ||
                snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >=
                    (int)sizeof path) {
                continue;
            }
            freezer__rmtree(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Kill every process of the cgroup at dir and below it, wait until they
 * are gone (at most FREEZER__KILL_WAIT_MS), and remove the cgroups.
 * Returns how many processes there were. */
unsigned freezer_kill_tree(const char *dir, int version)
{
    unsigned found = freezer__kill_pass(dir, version);
    /* cgroup.kill (Linux 5.14) also takes what forks meanwhile. */
    if (version == 2) {
        freezer__write_at(dir, "cgroup.kill", "1");
    }
    for (int waited = 0; found > 0 && waited < FREEZER__KILL_WAIT_MS;
         waited += 5) {
        usleep(5000);
        if (freezer__kill_pass(dir, version) == 0) {
            break;
        }
    }
    freezer__rmtree(dir);
    return found;
}

/* Remove what hosts that are gone left behind in base: the directories of
 * dead processes that never named theirs (berth-<pid>, unit tests and older
 * hosts), and empty groups of data directories whose last run ended. A
 * group of a running host holds its run directory and stays. */
static void freezer__sweep_dead(const char *base)
{
    DIR *d = opendir(base);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[PATH_MAX];
        if (strncmp(e->d_name, "berth-", 6) != 0 ||
            snprintf(path, sizeof path, "%s/%s", base, e->d_name) >=
                (int)sizeof path) {
            continue;
        }
        if (!tree_is_number(e->d_name + 6)) {
            rmdir(path);
            continue;
        }
        long pid = strtol(e->d_name + 6, NULL, 10);
        if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 ||
            errno != ESRCH) {
            continue;
        }
        freezer__rmtree(path);
    }
    closedir(d);
}

/* Let the program cgroups account their memory where the host's cgroup
 * may hand the memory controller down (cgroup v2), or where the freezer
 * hierarchy has it too (cgroup v1), and remember the file to read. */
static void freezer__memory_setup(int version, const char *group)
{
    char path[PATH_MAX];
    freezer__mem[0] = '\0';
    if (version == 2) {
        /* cpu and pids too, for the caps (cgcaps.h); one at a time, since
         * a write naming a controller the parent lacks fails whole. */
        static const char *const ctl[] = {"+memory", "+pids", "+cpu"};
        for (size_t i = 0; i < sizeof ctl / sizeof ctl[0]; i++) {
            freezer__write_at(group, "cgroup.subtree_control", ctl[i]);
            freezer__write_at(freezer__dir, "cgroup.subtree_control", ctl[i]);
        }
        FILE *f = snprintf(path, sizeof path, "%s/cgroup.subtree_control",
                           freezer__dir) < (int)sizeof path
                      ? fopen(path, "re")
                      : NULL;
        char line[256];
        if (f != NULL) {
            if (fgets(line, sizeof line, f) != NULL &&
                strstr(line, "memory") != NULL) {
                snprintf(freezer__mem, sizeof freezer__mem, "memory.current");
            }
            fclose(f);
        }
        return;
    }
    if (snprintf(path, sizeof path, "%s/memory.usage_in_bytes", freezer__dir) <
            (int)sizeof path &&
        access(path, R_OK) == 0) {
        snprintf(freezer__mem, sizeof freezer__mem, "memory.usage_in_bytes");
    }
}

/* Set up this run's directory in the given cgroup version; returns whether
 * that version's freezer can be used. */
static bool freezer__try(int version)
{
    char base[PATH_MAX];
    char group[PATH_MAX];
    if (freezer_own_dir(version, "freezer", base) != 0) {
        return false;
    }
    freezer__sweep_dead(base);
    freezer__names();
    int n = snprintf(group, sizeof group, "%s/berth-%s", base, freezer__tag);
    if (n <= 0 || (size_t)n >= sizeof group) {
        return false;
    }
    n = snprintf(freezer__dir, sizeof freezer__dir, "%s/%s", group,
                 freezer__run);
    if (n <= 0 || (size_t)n >= sizeof freezer__dir) {
        return false;
    }
    /* Another host's sweep may remove the group, empty for a moment,
     * between the two mkdirs. */
    bool made = false;
    for (int i = 0; i < 3 && !made; i++) {
        if (mkdir(group, 0755) != 0 && errno != EEXIST) {
            return false;
        }
        made = mkdir(freezer__dir, 0755) == 0 || errno == EEXIST;
    }
    if (!made) {
        return false;
    }
    /* A cgroup2 hierarchy without the freeze file (kernels before 5.2) or
     * a directory we may not write to is no freezer. */
    char probe[PATH_MAX];
    n = snprintf(probe, sizeof probe, "%s/%s", freezer__dir,
                 version == 2 ? "cgroup.freeze" : "freezer.state");
    if (n <= 0 || (size_t)n >= sizeof probe || access(probe, W_OK) != 0) {
        rmdir(freezer__dir);
        rmdir(group);
        return false;
    }
    freezer__memory_setup(version, group);
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
        freezer__dir[0] = '\0';
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

/* Return the cgroup version of a kind, or 0 for signals. */
static int freezer__version(enum freezer_kind kind)
{
    return kind == FREEZER_CGROUP2 ? 2 : kind == FREEZER_CGROUP1 ? 1 : 0;
}

int freezer_claim(const char *tag, unsigned *killed)
{
    *killed = 0;
    size_t len = strlen(tag);
    if (len == 0 || len >= sizeof freezer__tag ||
        strspn(tag, "0123456789abcdefghijklmnopqrstuvwxyz"
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ-_.") != len ||
        tree_is_number(tag)) {
        return BERTH_EINVAL;
    }
    freezer_cleanup(true);
    memcpy(freezer__tag, tag, len + 1);
    freezer__run[0] = '\0';
    freezer__names();
    /* Both hierarchies: an earlier run may have used the other one. The
     * cgroups go first, and are waited for, so that what the environment
     * search finds afterwards is only what escaped them. */
    for (int version = 2; version >= 1; version--) {
        char base[PATH_MAX];
        char group[PATH_MAX];
        if (freezer_own_dir(version, "freezer", base) == 0 &&
            snprintf(group, sizeof group, "%s/berth-%s", base, tag) <
                (int)sizeof group &&
            access(group, F_OK) == 0) {
            *killed += freezer_kill_tree(group, version);
        }
    }
    char entry[sizeof freezer__tag + 16];
    snprintf(entry, sizeof entry, "BERTH_HOST=%s/", tag);
    *killed += tree_kill_tagged(entry, false);
    return 0;
}

unsigned freezer_kill_run(void)
{
    unsigned killed = 0;
    int version = freezer__version(freezer__kind);
    if (version != 0) {
        killed = freezer_kill_tree(freezer__dir, version);
    }
    if (freezer__id[0] != '\0') {
        char entry[sizeof freezer__id + 16];
        snprintf(entry, sizeof entry, "BERTH_HOST=%s", freezer__id);
        killed += tree_kill_tagged(entry, true);
    }
    return killed;
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
enum freezer_kind freezer_attach(pid_t pid, freezer_prepare_fn prepare,
                                 void *arg)
{
    enum freezer_kind kind = freezer_detect();
    if (kind == FREEZER_SIGSTOP) {
        return kind;
    }
    char path[PATH_MAX];
    if (freezer_pid_dir(pid, path) != 0) {
        return FREEZER_SIGSTOP;
    }
    if (mkdir(path, 0755) != 0) {
        if (errno != EEXIST) {
            return FREEZER_SIGSTOP;
        }
        /* An earlier program with this pid left its cgroup behind, kept
         * busy by a process that was dying at the time, and maybe frozen:
         * nothing in it may live on with the new program. */
        freezer_kill_all(kind, pid);
        freezer_set(kind, pid, false);
    }
    if (prepare != NULL && prepare(pid, path, arg) != 0) {
        rmdir(path);
        return FREEZER_SIGSTOP;
    }
    char num[24];
    snprintf(num, sizeof num, "%d", (int)pid);
    if (freezer__write(pid, "cgroup.procs", num) != 0) {
        rmdir(path);
        return FREEZER_SIGSTOP;
    }
    return kind;
}

struct freezer__adopt {
    char procs[PATH_MAX]; /* the program's cgroup.procs */
};

/* Move one process into the program's cgroup; only one that moved is
 * looked below, its children then being born inside. */
static bool freezer__adopt_one(pid_t pid, void *arg)
{
    struct freezer__adopt *a = arg;
    char num[24];
    snprintf(num, sizeof num, "%d", (int)pid);
    int fd = open(a->procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    ssize_t w = write(fd, num, strlen(num));
    close(fd);
    return w == (ssize_t)strlen(num);
}

void freezer_adopt(pid_t pid)
{
    struct freezer__adopt a;
    char dir[PATH_MAX];
    if (freezer_pid_dir(pid, dir) != 0 ||
        snprintf(a.procs, sizeof a.procs, "%s/cgroup.procs", dir) >=
            (int)sizeof a.procs) {
        return;
    }
    tree_walk(pid, FREEZER__ADOPT_DEPTH, freezer__adopt_one, &a);
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
    char dir[PATH_MAX];
    int version = freezer__version(kind);
    if (version == 0 || freezer_pid_dir(pid, dir) != 0) {
        return;
    }
    /* cgroup.kill (Linux 5.14) takes the whole cgroup at once, forks
     * included; elsewhere each listed process is killed. */
    if (version == 1 || freezer__write_at(dir, "cgroup.kill", "1") != 0) {
        freezer__kill_pass(dir, version);
    }
}

/* Read one decimal number from the file at path. */
static int freezer__read_u64(const char *path, uint64_t *v)
{
    char text[32];
    if (tree_read_small(path, text, sizeof text) < 0) {
        return BERTH_EIO;
    }
    char *end;
    unsigned long long x = strtoull(text, &end, 10);
    if (end == text) {
        return BERTH_EIO;
    }
    *v = x;
    return 0;
}

int freezer_memory(pid_t pid, uint64_t *bytes)
{
    char dir[PATH_MAX];
    char path[PATH_MAX];
    if (freezer__version(freezer__kind) == 0 ||
        freezer_pid_dir(pid, dir) != 0) {
        return BERTH_EIO;
    }
    if (freezer__mem[0] != '\0' &&
        snprintf(path, sizeof path, "%s/%s", dir, freezer__mem) <
            (int)sizeof path &&
        freezer__read_u64(path, bytes) == 0) {
        return 0;
    }
    uint64_t sum = 0;
    if (snprintf(path, sizeof path, "%s/cgroup.procs", dir) >=
            (int)sizeof path ||
        tree_list(path, tree_add_anon, &sum) <= 0) {
        return BERTH_EIO;
    }
    *bytes = sum;
    return 0;
}

int freezer_cpu(pid_t pid, uint64_t *usec)
{
    char dir[PATH_MAX];
    char path[PATH_MAX];
    char text[1024];
    if (freezer__version(freezer__kind) != 2 ||
        freezer_pid_dir(pid, dir) != 0 ||
        snprintf(path, sizeof path, "%s/cpu.stat", dir) >= (int)sizeof path ||
        tree_read_small(path, text, sizeof text) < 0) {
        return BERTH_EIO;
    }
    /* cgroup v2 keeps cpu.stat's usage_usec in every cgroup, with or
     * without the cpu controller. */
    const char *u = strstr(text, "usage_usec ");
    if (u == NULL) {
        return BERTH_EIO;
    }
    *usec = strtoull(u + strlen("usage_usec "), NULL, 10);
    return 0;
}

int freezer_rmdir(pid_t pid)
{
    char path[PATH_MAX];
    if (freezer_pid_dir(pid, path) != 0) {
        return ENAMETOOLONG;
    }
    return rmdir(path) == 0 ? 0 : errno;
}

/* The freezer's cgroups still busy at their removal (cgbusy.h). */
static struct cgbusy freezer__busy_list;

/* Remove pid's cgroup, or, while something in it lives, kill that again;
 * returns whether it is still there. */
static bool freezer__busy(pid_t pid)
{
    if (freezer_rmdir(pid) != EBUSY) {
        return false;
    }
    freezer_kill_all(freezer__kind, pid);
    return true;
}

void freezer_remove(pid_t pid)
{
    cgbusy_remove(&freezer__busy_list, pid, freezer__busy);
}

void freezer_retry_busy(void)
{
    cgbusy_retry(&freezer__busy_list, freezer__busy);
}

void freezer_cleanup(bool all)
{
    int version = freezer__version(freezer__kind);
    if (version != 0) {
        DIR *d = opendir(freezer__dir);
        if (d != NULL) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                char path[PATH_MAX];
                if (tree_is_number(e->d_name) &&
                    snprintf(path, sizeof path, "%s/%s", freezer__dir,
                             e->d_name) < (int)sizeof path) {
                    rmdir(path);
                }
            }
            closedir(d);
        }
    }
    if (!all) {
        return;
    }
    if (version != 0) {
        rmdir(freezer__dir);
        /* The group goes too, unless another run's directory is in it. */
        char *slash = strrchr(freezer__dir, '/');
        if (slash != NULL) {
            *slash = '\0';
            rmdir(freezer__dir);
        }
    }
    cgbusy_clear(&freezer__busy_list);
    freezer__kind = 0;
    freezer__dir[0] = '\0';
    freezer__mem[0] = '\0';
}
