#include "proc/cgcaps.h"

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
#include "proc/cgbusy.h"
#include "proc/freezer.h"
#include "proc/tree.h"

/* The CFS period that a CPU cap's quota is a share of: 100 ms, the
 * kernel's default, so that a half-core program runs 50 ms of each 100. */
#define CGCAPS__PERIOD_US 100000

/* How deep cgcaps_enter follows children of children: as deep as the
 * staging cgroup's pids cap lets a tree grow, so that a fork bomb's chain
 * moves whole. */
#define CGCAPS__ADOPT_DEPTH CGCAPS_STAGE_PIDS

/* The v1 hierarchies a program gets a cgroup in; memory and pids must be
 * there for the cgroup1 mechanism, cpu and cpuacct are used where
 * mounted. */
enum cgcaps__ctl {
    CGCAPS__MEMORY,
    CGCAPS__PIDS,
    CGCAPS__CPU,
    CGCAPS__CPUACCT,
    CGCAPS__N,
};
static const char *const cgcaps__ctl_name[CGCAPS__N] = {"memory", "pids", "cpu",
                                                        "cpuacct"};

/* The operations of one mechanism: the sandbox ops table. dir is the
 * program's freezer cgroup (used by cgroup2 only). */
struct cgcaps__ops {
    int (*prepare)(pid_t pid, const char *dir, const struct caps *caps);
    int (*enter)(pid_t pid);
    int (*set)(pid_t pid, const char *dir, const struct caps *caps);
    int (*read)(pid_t pid, const char *dir, struct cgcaps_use *use);
    int (*cpu_open)(pid_t pid, const char *dir);
    int (*cpu_parse)(const char *text, uint64_t *usec);
    int (*oom_kills)(pid_t pid, const char *dir, uint64_t *n);
    void (*remove)(pid_t pid);
    bool (*rmdir)(pid_t pid);
};

/* 0 until detected; for cgroup1, this run's directory in each hierarchy
 * ("" where it is not mounted, or shares the directory of an earlier
 * one, as cpu and cpuacct do when mounted together). */
static enum cgcaps_kind cgcaps__kind;
static const struct cgcaps__ops *cgcaps__ops;
static char cgcaps__run[CGCAPS__N][PATH_MAX];
static bool cgcaps__swap; /* v1 memsw files exist */
/* cgroup2: the freezer's run directory, where staging lives. */
static char cgcaps__run2[PATH_MAX];

/* Write text to dir/file; 0 or BERTH_EIO. */
static int cgcaps__write(const char *dir, const char *file, const char *text)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path) {
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

/* Read dir/file into text (size bytes, NUL-terminated); 0 or BERTH_EIO. */
static int cgcaps__read(const char *dir, const char *file, char *text,
                        size_t size)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path ||
        tree_read_small(path, text, size) < 0) {
        return BERTH_EIO;
    }
    return 0;
}

/* Read one number (or "max", as UINT64_MAX) from dir/file. */
static int cgcaps__read_u64(const char *dir, const char *file, uint64_t *v)
{
    char text[64];
    if (cgcaps__read(dir, file, text, sizeof text) != 0) {
        return BERTH_EIO;
    }
    if (strncmp(text, "max", 3) == 0) {
        *v = UINT64_MAX;
        return 0;
    }
    char *end;
    unsigned long long x = strtoull(text, &end, 10);
    if (end == text) {
        return BERTH_EIO;
    }
    *v = x;
    return 0;
}

/* The staging cgroup's name in a run directory. */
#define CGCAPS__STAGE "staging"

/* Copy the staging directory below run into a PATH_MAX buffer. */
static int cgcaps__stage_dir(const char *run, char *out)
{
    if (run[0] == '\0') {
        return BERTH_ENOTFOUND;
    }
    int n = snprintf(out, PATH_MAX, "%s/" CGCAPS__STAGE, run);
    return n > 0 && n < PATH_MAX ? 0 : BERTH_ENOTFOUND;
}

/* Make the staging cgroup below run, with its pids cap where it has one.
 * Best effort: without it, programs are born in the launcher's cgroup. */
static void cgcaps__stage_make(const char *run, bool pids)
{
    char dir[PATH_MAX];
    char text[16];
    if (cgcaps__stage_dir(run, dir) != 0 ||
        (mkdir(dir, 0755) != 0 && errno != EEXIST)) {
        return;
    }
    if (pids) {
        snprintf(text, sizeof text, "%u", (unsigned)CGCAPS_STAGE_PIDS);
        cgcaps__write(dir, "pids.max", text);
    }
}

/* Find "key N" in a flat keyed file's text. */
static uint64_t cgcaps__key(const char *text, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, key, n) == 0 && p[n] == ' ') {
            return strtoull(p + n + 1, NULL, 10);
        }
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    return 0;
}

/* --- cgroup2: the freezer's cgroup holds the caps too. --- */

static int cgcaps__v2_set(pid_t pid, const char *dir, const struct caps *caps)
{
    char text[64];
    int rv = 0;
    if (caps->memory_bytes > 0) {
        snprintf(text, sizeof text, "%llu",
                 (unsigned long long)caps->memory_bytes);
    } else {
        snprintf(text, sizeof text, "max");
    }
    rv |= cgcaps__write(dir, "memory.max", text);
    /* Swap would let a program past its cap, at the disk's expense; a
     * kernel without swap accounting has no such file. */
    cgcaps__write(dir, "memory.swap.max", caps->memory_bytes > 0 ? "0" : "max");
    if (caps->pids > 0) {
        snprintf(text, sizeof text, "%u", (unsigned)caps->pids);
    } else {
        snprintf(text, sizeof text, "max");
    }
    rv |= cgcaps__write(dir, "pids.max", text);
    if (caps->cpu_millis > 0) {
        snprintf(text, sizeof text, "%llu %u",
                 (unsigned long long)caps->cpu_millis *
                     (CGCAPS__PERIOD_US / 1000),
                 (unsigned)CGCAPS__PERIOD_US);
    } else {
        snprintf(text, sizeof text, "max %u", (unsigned)CGCAPS__PERIOD_US);
    }
    /* Without the cpu controller the file is missing: no CPU cap. */
    cgcaps__write(dir, "cpu.max", text);
    return rv != 0 ? BERTH_EIO : 0;
}

static int cgcaps__v2_prepare(pid_t pid, const char *dir,
                              const struct caps *caps)
{
    return cgcaps__v2_set(pid, dir, caps);
}

static int cgcaps__v2_enter(pid_t pid)
{
    return 0;
}

static int cgcaps__v2_read(pid_t pid, const char *dir, struct cgcaps_use *use)
{
    char text[1024];
    memset(use, 0, sizeof *use);
    if (cgcaps__read_u64(dir, "memory.current", &use->memory_bytes) != 0) {
        return BERTH_EIO;
    }
    cgcaps__read_u64(dir, "memory.peak", &use->memory_peak_bytes);
    cgcaps__read_u64(dir, "pids.current", &use->pids);
    cgcaps__read_u64(dir, "pids.peak", &use->pids_peak);
    if (cgcaps__read(dir, "memory.events", text, sizeof text) == 0) {
        use->oom_kills = cgcaps__key(text, "oom_kill");
    }
    if (cgcaps__read(dir, "cpu.stat", text, sizeof text) == 0) {
        use->cpu_usec = cgcaps__key(text, "usage_usec");
    }
    return 0;
}

/* Open the file at dir/file for reading again and again; an fd or -1. */
static int cgcaps__open(const char *dir, const char *file)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path) {
        return -1;
    }
    return open(path, O_RDONLY | O_CLOEXEC);
}

static int cgcaps__v2_cpu_open(pid_t pid, const char *dir)
{
    return cgcaps__open(dir, "cpu.stat");
}

static int cgcaps__v2_cpu_parse(const char *text, uint64_t *usec)
{
    if (strstr(text, "usage_usec ") == NULL) {
        return BERTH_EIO;
    }
    *usec = cgcaps__key(text, "usage_usec");
    return 0;
}

static int cgcaps__v2_oom_kills(pid_t pid, const char *dir, uint64_t *n)
{
    char text[1024];
    if (cgcaps__read(dir, "memory.events", text, sizeof text) != 0) {
        return BERTH_EIO;
    }
    *n = cgcaps__key(text, "oom_kill");
    return 0;
}

static void cgcaps__v2_remove(pid_t pid)
{
}

static bool cgcaps__v2_rmdir(pid_t pid)
{
    return false;
}

static const struct cgcaps__ops cgcaps__v2 = {
    .prepare = cgcaps__v2_prepare,
    .enter = cgcaps__v2_enter,
    .set = cgcaps__v2_set,
    .read = cgcaps__v2_read,
    .cpu_open = cgcaps__v2_cpu_open,
    .cpu_parse = cgcaps__v2_cpu_parse,
    .oom_kills = cgcaps__v2_oom_kills,
    .remove = cgcaps__v2_remove,
    .rmdir = cgcaps__v2_rmdir,
};

/* --- cgroup1: a cgroup in each hierarchy. --- */

/* Copy pid's cgroup directory in hierarchy i into a PATH_MAX buffer; 0,
 * or BERTH_ENOTFOUND where this run has no directory there. */
static int cgcaps__v1_dir(int i, pid_t pid, char *dir)
{
    if (cgcaps__run[i][0] == '\0') {
        return BERTH_ENOTFOUND;
    }
    int n = snprintf(dir, PATH_MAX, "%s/%d", cgcaps__run[i], (int)pid);
    return n > 0 && n < PATH_MAX ? 0 : BERTH_ENOTFOUND;
}

static int cgcaps__v1_set(pid_t pid, const char *unused,
                          const struct caps *caps)
{
    char dir[PATH_MAX];
    char text[64];
    if (cgcaps__v1_dir(CGCAPS__MEMORY, pid, dir) == 0) {
        /* The kernel's "no limit" is the largest page-aligned value. */
        snprintf(text, sizeof text, "%lld",
                 caps->memory_bytes > 0 ? (long long)caps->memory_bytes : -1LL);
        /* memsw may never be below the plain limit, so it is written
         * before (which fails when lowering) and after (which then
         * succeeds). Equal to it, swap adds nothing. */
        if (cgcaps__swap) {
            cgcaps__write(dir, "memory.memsw.limit_in_bytes", text);
        }
        if (cgcaps__write(dir, "memory.limit_in_bytes", text) != 0) {
            return BERTH_EIO;
        }
        if (cgcaps__swap) {
            cgcaps__write(dir, "memory.memsw.limit_in_bytes", text);
        }
    }
    if (cgcaps__v1_dir(CGCAPS__PIDS, pid, dir) == 0) {
        if (caps->pids > 0) {
            snprintf(text, sizeof text, "%u", (unsigned)caps->pids);
        } else {
            snprintf(text, sizeof text, "max");
        }
        if (cgcaps__write(dir, "pids.max", text) != 0) {
            return BERTH_EIO;
        }
    }
    if (cgcaps__v1_dir(CGCAPS__CPU, pid, dir) == 0) {
        snprintf(text, sizeof text, "%u", (unsigned)CGCAPS__PERIOD_US);
        cgcaps__write(dir, "cpu.cfs_period_us", text);
        snprintf(text, sizeof text, "%lld",
                 caps->cpu_millis > 0
                     ? (long long)caps->cpu_millis * (CGCAPS__PERIOD_US / 1000)
                     : -1LL);
        if (cgcaps__write(dir, "cpu.cfs_quota_us", text) != 0) {
            return BERTH_EIO;
        }
    }
    return 0;
}

/* Remove pid's v1 cgroups; returns whether one is still there (a process
 * the program started is dying still). */
static bool cgcaps__v1_rmdirs(pid_t pid)
{
    bool busy = false;
    for (int i = 0; i < CGCAPS__N; i++) {
        char dir[PATH_MAX];
        if (cgcaps__v1_dir(i, pid, dir) == 0 && rmdir(dir) != 0 &&
            errno == EBUSY) {
            busy = true;
        }
    }
    return busy;
}

/* The caps' cgroups still busy at their removal (cgbusy.h). */
static struct cgbusy cgcaps__busy_list;

static void cgcaps__v1_remove(pid_t pid)
{
    cgbusy_remove(&cgcaps__busy_list, pid, cgcaps__v1_rmdirs);
}

static int cgcaps__v1_prepare(pid_t pid, const char *unused,
                              const struct caps *caps)
{
    for (int i = 0; i < CGCAPS__N; i++) {
        char dir[PATH_MAX];
        if (cgcaps__v1_dir(i, pid, dir) != 0) {
            continue;
        }
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            /* Nothing is in them yet, so they go at once; and this runs
             * on a worker, while the busy list is the loop thread's. */
            cgcaps__v1_rmdirs(pid);
            return BERTH_EIO;
        }
        /* What the program touched in staging comes with it (anonymous
         * and file pages): cgroup v1 leaves charges behind otherwise, and
         * memory taken before the move would escape the cap. */
        if (i == CGCAPS__MEMORY) {
            cgcaps__write(dir, "memory.move_charge_at_immigrate", "3");
        }
    }
    if (cgcaps__v1_set(pid, NULL, caps) != 0) {
        cgcaps__v1_rmdirs(pid);
        return BERTH_EIO;
    }
    return 0;
}

struct cgcaps__adopt {
    char procs[CGCAPS__N][PATH_MAX]; /* each hierarchy's cgroup.procs */
};

/* Move one process into the program's v1 cgroups; only one that moved is
 * looked below, its children then being born inside. */
static bool cgcaps__adopt_one(pid_t pid, void *arg)
{
    struct cgcaps__adopt *a = arg;
    char num[24];
    snprintf(num, sizeof num, "%d", (int)pid);
    bool moved = false;
    for (int i = 0; i < CGCAPS__N; i++) {
        if (a->procs[i][0] == '\0') {
            continue;
        }
        int fd = open(a->procs[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        moved = write(fd, num, strlen(num)) == (ssize_t)strlen(num) || moved;
        close(fd);
    }
    return moved;
}

/* Moving a task takes the kernel's cgroup_threadgroup_rwsem for writing
 * (freezer.c says what that costs); one hierarchy after another, the
 * later moves come within the same grace period and cost microseconds. */
static int cgcaps__v1_enter(pid_t pid)
{
    struct cgcaps__adopt a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < CGCAPS__N; i++) {
        char dir[PATH_MAX];
        if (cgcaps__v1_dir(i, pid, dir) == 0 &&
            snprintf(a.procs[i], sizeof a.procs[i], "%s/cgroup.procs", dir) >=
                (int)sizeof a.procs[i]) {
            a.procs[i][0] = '\0';
        }
    }
    if (!cgcaps__adopt_one(pid, &a)) {
        return BERTH_EIO;
    }
    tree_walk(pid, CGCAPS__ADOPT_DEPTH, cgcaps__adopt_one, &a);
    return 0;
}

static int cgcaps__v1_read(pid_t pid, const char *unused,
                           struct cgcaps_use *use)
{
    char dir[PATH_MAX];
    char text[1024];
    memset(use, 0, sizeof *use);
    if (cgcaps__v1_dir(CGCAPS__MEMORY, pid, dir) != 0 ||
        cgcaps__read_u64(dir, "memory.usage_in_bytes", &use->memory_bytes) !=
            0) {
        return BERTH_EIO;
    }
    cgcaps__read_u64(dir, "memory.max_usage_in_bytes", &use->memory_peak_bytes);
    if (cgcaps__read(dir, "memory.oom_control", text, sizeof text) == 0) {
        use->oom_kills = cgcaps__key(text, "oom_kill");
    }
    if (cgcaps__v1_dir(CGCAPS__PIDS, pid, dir) == 0) {
        cgcaps__read_u64(dir, "pids.current", &use->pids);
        cgcaps__read_u64(dir, "pids.peak", &use->pids_peak);
    }
    uint64_t ns;
    if (cgcaps__v1_dir(CGCAPS__CPUACCT, pid, dir) == 0 &&
        cgcaps__read_u64(dir, "cpuacct.usage", &ns) == 0) {
        use->cpu_usec = ns / 1000;
    }
    return 0;
}

static int cgcaps__v1_cpu_open(pid_t pid, const char *unused)
{
    char dir[PATH_MAX];
    if (cgcaps__v1_dir(CGCAPS__CPUACCT, pid, dir) != 0) {
        return -1;
    }
    return cgcaps__open(dir, "cpuacct.usage");
}

static int cgcaps__v1_cpu_parse(const char *text, uint64_t *usec)
{
    char *end;
    uint64_t ns = strtoull(text, &end, 10);
    if (end == text) {
        return BERTH_EIO;
    }
    *usec = ns / 1000;
    return 0;
}

static int cgcaps__v1_oom_kills(pid_t pid, const char *unused, uint64_t *n)
{
    char dir[PATH_MAX];
    char text[1024];
    if (cgcaps__v1_dir(CGCAPS__MEMORY, pid, dir) != 0 ||
        cgcaps__read(dir, "memory.oom_control", text, sizeof text) != 0) {
        return BERTH_EIO;
    }
    *n = cgcaps__key(text, "oom_kill");
    return 0;
}

static const struct cgcaps__ops cgcaps__v1 = {
    .prepare = cgcaps__v1_prepare,
    .enter = cgcaps__v1_enter,
    .set = cgcaps__v1_set,
    .read = cgcaps__v1_read,
    .cpu_open = cgcaps__v1_cpu_open,
    .cpu_parse = cgcaps__v1_cpu_parse,
    .oom_kills = cgcaps__v1_oom_kills,
    .remove = cgcaps__v1_remove,
    .rmdir = cgcaps__v1_rmdirs,
};

/* --- detection --- */

/* Copy the group of this host's tag, <own dir>/berth-<tag>, in hierarchy
 * ctl of version into a PATH_MAX buffer. */
static int cgcaps__group(int version, const char *ctl, const char *tag,
                         char *out)
{
    char base[PATH_MAX];
    if (freezer_own_dir(version, ctl, base) != 0) {
        return BERTH_ENOTFOUND;
    }
    int n = snprintf(out, PATH_MAX, "%s/berth-%s", base, tag);
    return n > 0 && n < PATH_MAX ? 0 : BERTH_ENOTFOUND;
}

/* Split freezer_host_id() into its tag and run. */
static void cgcaps__names(char *tag, size_t tn, const char **run)
{
    const char *id = freezer_host_id();
    const char *slash = strchr(id, '/');
    size_t n = slash != NULL ? (size_t)(slash - id) : strlen(id);
    snprintf(tag, tn, "%.*s", (int)n, id);
    *run = slash != NULL ? slash + 1 : "";
}

/* Make this run's directory in each v1 hierarchy; returns whether memory
 * and pids are there. */
static bool cgcaps__v1_try(void)
{
    char tag[128];
    const char *run;
    cgcaps__names(tag, sizeof tag, &run);
    for (int i = 0; i < CGCAPS__N; i++) {
        char group[PATH_MAX];
        cgcaps__run[i][0] = '\0';
        if (cgcaps__group(1, cgcaps__ctl_name[i], tag, group) != 0) {
            continue;
        }
        int n = snprintf(cgcaps__run[i], PATH_MAX, "%s/%s", group, run);
        if (n <= 0 || n >= PATH_MAX) {
            cgcaps__run[i][0] = '\0';
            continue;
        }
        /* cpu and cpuacct mounted together: one directory serves both. */
        for (int j = 0; j < i; j++) {
            if (strcmp(cgcaps__run[j], cgcaps__run[i]) == 0) {
                cgcaps__run[i][0] = '\0';
            }
        }
        if (cgcaps__run[i][0] == '\0') {
            continue;
        }
        bool made = false;
        for (int k = 0; k < 3 && !made; k++) {
            if (mkdir(group, 0755) != 0 && errno != EEXIST) {
                break;
            }
            made = mkdir(cgcaps__run[i], 0755) == 0 || errno == EEXIST;
        }
        if (!made) {
            cgcaps__run[i][0] = '\0';
        }
    }
    /* cpu and cpuacct co-mounted: cpuacct.usage lives in cpu's. */
    if (cgcaps__run[CGCAPS__CPUACCT][0] == '\0' &&
        cgcaps__run[CGCAPS__CPU][0] != '\0') {
        char probe[PATH_MAX];
        if (snprintf(probe, sizeof probe, "%s/cpuacct.usage",
                     cgcaps__run[CGCAPS__CPU]) < (int)sizeof probe &&
            access(probe, R_OK) == 0) {
            memcpy(cgcaps__run[CGCAPS__CPUACCT], cgcaps__run[CGCAPS__CPU],
                   PATH_MAX);
        }
    }
    for (int i = 0; i < CGCAPS__N; i++) {
        cgcaps__stage_make(cgcaps__run[i], i == CGCAPS__PIDS);
    }
    char probe[PATH_MAX];
    cgcaps__swap =
        cgcaps__run[CGCAPS__MEMORY][0] != '\0' &&
        snprintf(probe, sizeof probe, "%s/memory.memsw.limit_in_bytes",
                 cgcaps__run[CGCAPS__MEMORY]) < (int)sizeof probe &&
        access(probe, W_OK) == 0;
    return cgcaps__run[CGCAPS__MEMORY][0] != '\0' &&
           cgcaps__run[CGCAPS__PIDS][0] != '\0';
}

/* Whether the freezer's cgroup2 run directory hands memory and pids down
 * to the programs' cgroups. */
static bool cgcaps__v2_try(void)
{
    char dir[PATH_MAX];
    char text[256];
    /* The run directory is the parent of any program's. */
    if (freezer_pid_dir(1, dir) != 0) {
        return false;
    }
    char *slash = strrchr(dir, '/');
    if (slash == NULL) {
        return false;
    }
    *slash = '\0';
    if (cgcaps__read(dir, "cgroup.subtree_control", text, sizeof text) != 0 ||
        strstr(text, "memory") == NULL || strstr(text, "pids") == NULL) {
        return false;
    }
    memcpy(cgcaps__run2, dir, PATH_MAX);
    cgcaps__stage_make(cgcaps__run2, true);
    return true;
}

enum cgcaps_kind cgcaps_detect(void)
{
    if (cgcaps__kind != 0) {
        return cgcaps__kind;
    }
    enum freezer_kind fz = freezer_detect();
    const char *want = getenv("BERTH_CAPS");
    cgcaps__kind = CGCAPS_NONE;
    cgcaps__ops = NULL;
    if (want != NULL && strcmp(want, "none") == 0) {
        return cgcaps__kind;
    }
    if (fz == FREEZER_CGROUP2 && cgcaps__v2_try()) {
        cgcaps__kind = CGCAPS_CGROUP2;
        cgcaps__ops = &cgcaps__v2;
    } else if (fz != FREEZER_SIGSTOP && cgcaps__v1_try()) {
        /* Only beside a cgroup freezer: its kill takes what the program
         * started, which the caps' cgroups do not kill by themselves. */
        cgcaps__kind = CGCAPS_CGROUP1;
        cgcaps__ops = &cgcaps__v1;
    }
    return cgcaps__kind;
}

const char *cgcaps_name(enum cgcaps_kind kind)
{
    switch (kind) {
    case CGCAPS_CGROUP2:
        return "cgroup2";
    case CGCAPS_CGROUP1:
        return "cgroup1";
    default:
        return "none";
    }
}

int cgcaps_prepare(pid_t pid, const char *dir, const struct caps *caps)
{
    return cgcaps__ops != NULL ? cgcaps__ops->prepare(pid, dir, caps)
                               : BERTH_EIO;
}

int cgcaps_enter(pid_t pid)
{
    return cgcaps__ops != NULL ? cgcaps__ops->enter(pid) : BERTH_EIO;
}

int cgcaps_set(pid_t pid, const char *dir, const struct caps *caps)
{
    return cgcaps__ops != NULL ? cgcaps__ops->set(pid, dir, caps) : BERTH_EIO;
}

int cgcaps_read(pid_t pid, const char *dir, struct cgcaps_use *use)
{
    return cgcaps__ops != NULL ? cgcaps__ops->read(pid, dir, use) : BERTH_EIO;
}

int cgcaps_cpu_open(pid_t pid, const char *dir)
{
    int fd = cgcaps__ops != NULL ? cgcaps__ops->cpu_open(pid, dir) : -1;
    return fd >= 0 ? fd : BERTH_EIO;
}

int cgcaps_cpu_read(int fd, uint64_t *usec)
{
    /* A cgroup file read from its start is made anew each time. */
    char text[1024];
    ssize_t n;
    do {
        n = pread(fd, text, sizeof text - 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0 || cgcaps__ops == NULL) {
        return BERTH_EIO;
    }
    text[n] = '\0';
    return cgcaps__ops->cpu_parse(text, usec);
}

int cgcaps_oom_kills(pid_t pid, const char *dir, uint64_t *n)
{
    return cgcaps__ops != NULL ? cgcaps__ops->oom_kills(pid, dir, n)
                               : BERTH_EIO;
}

bool cgcaps_rmdir(pid_t pid)
{
    return cgcaps__ops != NULL && cgcaps__ops->rmdir(pid);
}

void cgcaps_retry_busy(void)
{
    /* Only cgroup1's removals are ever held. */
    cgbusy_retry(&cgcaps__busy_list, cgcaps__v1_rmdirs);
}

void cgcaps_remove(pid_t pid)
{
    if (cgcaps__ops != NULL) {
        cgcaps__ops->remove(pid);
    }
}

/* Write pid into the staging cgroup below run; 0 or BERTH_EIO. */
static int cgcaps__stage_enter(const char *run, pid_t pid)
{
    char dir[PATH_MAX];
    char num[24];
    if (cgcaps__stage_dir(run, dir) != 0) {
        return BERTH_EIO;
    }
    snprintf(num, sizeof num, "%d", (int)pid);
    return cgcaps__write(dir, "cgroup.procs", num);
}

int cgcaps_stage_self(void)
{
    pid_t self = getpid();
    if (cgcaps__kind == CGCAPS_CGROUP2) {
        return cgcaps__stage_enter(cgcaps__run2, self);
    }
    if (cgcaps__kind != CGCAPS_CGROUP1) {
        return BERTH_EIO;
    }
    int rv = 0;
    for (int i = 0; i < CGCAPS__N; i++) {
        if (cgcaps__run[i][0] != '\0' &&
            cgcaps__stage_enter(cgcaps__run[i], self) != 0 &&
            i == CGCAPS__PIDS) {
            rv = BERTH_EIO; /* the cap that matters before the move */
        }
    }
    return rv;
}

/* Move self out of the staging cgroup below run, into the cgroup two
 * levels above run (<base>/berth-<tag>/<run>), and remove staging, run and
 * the group where they are empty. */
static void cgcaps__unstage_one(char *run, pid_t self)
{
    char dir[PATH_MAX];
    char base[PATH_MAX];
    char num[24];
    if (run[0] == '\0' || cgcaps__stage_dir(run, dir) != 0) {
        return;
    }
    memcpy(base, run, PATH_MAX);
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(base, '/');
        if (slash == NULL) {
            return;
        }
        *slash = '\0';
    }
    snprintf(num, sizeof num, "%d", (int)self);
    cgcaps__write(base, "cgroup.procs", num);
    rmdir(dir);
    /* Programs' cgroups left by a host that died (their processes were
     * killed through the freezer's). */
    DIR *d = opendir(run);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char path[PATH_MAX];
            if (tree_is_number(e->d_name) &&
                snprintf(path, sizeof path, "%s/%s", run, e->d_name) <
                    (int)sizeof path) {
                rmdir(path);
            }
        }
        closedir(d);
    }
    rmdir(run);
    char *slash = strrchr(run, '/');
    if (slash != NULL) {
        *slash = '\0';
        rmdir(run); /* the group, unless another run is in it */
        *slash = '/';
    }
}

void cgcaps_unstage(void)
{
    pid_t self = getpid();
    if (cgcaps__kind == CGCAPS_CGROUP2) {
        cgcaps__unstage_one(cgcaps__run2, self);
    } else if (cgcaps__kind == CGCAPS_CGROUP1) {
        for (int i = 0; i < CGCAPS__N; i++) {
            cgcaps__unstage_one(cgcaps__run[i], self);
        }
    }
}

struct cgcaps__sweep {
    cgcaps_keep_fn keep;
    void *arg;
};

static bool cgcaps__sweep_one(pid_t pid, void *arg)
{
    struct cgcaps__sweep *w = arg;
    if (!w->keep(pid, w->arg)) {
        kill(pid, SIGKILL);
    }
    return true;
}

void cgcaps_stage_sweep(cgcaps_keep_fn keep, void *arg)
{
    const char *run = cgcaps__kind == CGCAPS_CGROUP2 ? cgcaps__run2
                      : cgcaps__kind == CGCAPS_CGROUP1
                          ? cgcaps__run[CGCAPS__PIDS]
                          : "";
    char dir[PATH_MAX];
    char path[PATH_MAX];
    struct cgcaps__sweep w = {keep, arg};
    if (cgcaps__stage_dir(run, dir) == 0 &&
        snprintf(path, sizeof path, "%s/cgroup.procs", dir) <
            (int)sizeof path) {
        tree_list(path, cgcaps__sweep_one, &w);
    }
}

void cgcaps_claim(const char *tag)
{
    for (int i = 0; i < CGCAPS__N; i++) {
        char group[PATH_MAX];
        if (cgcaps__group(1, cgcaps__ctl_name[i], tag, group) == 0 &&
            access(group, F_OK) == 0) {
            freezer_kill_tree(group, 1);
        }
    }
}

void cgcaps_cleanup(bool all)
{
    char dir[PATH_MAX];
    if (cgcaps__kind != CGCAPS_CGROUP1) {
        if (all) {
            if (cgcaps__stage_dir(cgcaps__run2, dir) == 0) {
                rmdir(dir);
            }
            cgcaps__run2[0] = '\0';
            cgcaps__kind = 0;
            cgcaps__ops = NULL;
        }
        return;
    }
    for (int i = 0; i < CGCAPS__N; i++) {
        if (cgcaps__run[i][0] == '\0') {
            continue;
        }
        DIR *d = opendir(cgcaps__run[i]);
        if (d != NULL) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                char path[PATH_MAX];
                if (tree_is_number(e->d_name) &&
                    snprintf(path, sizeof path, "%s/%s", cgcaps__run[i],
                             e->d_name) < (int)sizeof path) {
                    rmdir(path);
                }
            }
            closedir(d);
        }
        if (all) {
            /* Empty once the launcher is gone. */
            if (cgcaps__stage_dir(cgcaps__run[i], dir) == 0) {
                rmdir(dir);
            }
            rmdir(cgcaps__run[i]);
            char *slash = strrchr(cgcaps__run[i], '/');
            if (slash != NULL) {
                *slash = '\0';
                rmdir(cgcaps__run[i]);
            }
            cgcaps__run[i][0] = '\0';
        }
    }
    if (all) {
        cgbusy_clear(&cgcaps__busy_list);
        cgcaps__kind = 0;
        cgcaps__ops = NULL;
    }
}
