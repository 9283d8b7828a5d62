#include "proc/harden.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/mem.h"

/* The most BPF instructions the filter may take; it needs about 80. */
#define HARDEN__BPF_MAX 512

/* The system calls answered EPERM (harden.h has them by kind). A name this
 * architecture does not have is skipped. */
static const char *const harden__denied[] = {
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "open_by_handle_at",
    "name_to_handle_at",
    "unshare",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "init_module",
    "finit_module",
    "delete_module",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    "syslog",
    "iopl",
    "ioperm",
    "vhangup",
    "lookup_dcookie",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
};

/* clone's flags that make a namespace: each is a rule of its own, as a
 * rule's masked comparison matches only when every bit of it is set. */
static const unsigned long harden__clone_new[] = {
    CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,    CLONE_NEWUSER,
    CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP,
};

/* Everything the child reads, computed by harden_setup. */
static unsigned harden__parts;
static struct sock_filter harden__bpf[HARDEN__BPF_MAX];
static struct sock_fprog harden__prog;
static int harden__netns = -1;
static char harden__net_why[160] = "host";
static long harden__uid = -1;
static gid_t harden__gid;
/* The --program-uids range, and which of it running programs hold (a bit
 * each, under harden__lock); the search for a free one starts at next. */
static long harden__uids_first;
static unsigned harden__uids_n;
static uint8_t *harden__uids_held;
static unsigned harden__uids_next;
/* The owner of a working directory as made, and as given back. */
static uid_t harden__dir_uid;
static gid_t harden__dir_gid;
static int harden__cap_last = CAP_LAST_CAP;
static bool harden__drop_caps;
static struct rlimit harden__nofile;
static char harden__root[PATH_MAX - 64]; /* room for "/run.N" */
/* Directories made ahead, empty, by their run numbers: a wake takes one
 * rather than wait for a mkdir (30 us here, hundreds under load). */
#define HARDEN__POOL 64
static pthread_mutex_t harden__lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long harden__runs; /* the last number given */
static unsigned long harden__pool[HARDEN__POOL];
static int harden__pool_n;
/* The parts this process (the launcher) applied to itself, which its
 * children inherit: not applied again in each. */
static unsigned harden__inherited;

/* Build the filter and export it into harden__bpf; 0 or a message. */
static int harden__filter(char *errmsg)
{
    int rv = BERTH_EIO;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == NULL) {
        err_printf(errmsg, "seccomp: cannot make a filter");
        return BERTH_EIO;
    }
    int e =
        seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    /* libseccomp sets no_new_privs when it loads a filter; the child
     * loads it, and sets it itself. */
    if (e == 0) {
        e = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    }
    for (size_t i = 0;
         e == 0 && i < sizeof harden__denied / sizeof *harden__denied; i++) {
        int nr = seccomp_syscall_resolve_name(harden__denied[i]);
        if (nr != __NR_SCMP_ERROR) {
            e = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        }
    }
    /* setns only into the empty network namespace, by the descriptor the
     * host and the launcher hold: the launcher's children join it after
     * the launcher has loaded the filter (harden_launcher). A program has
     * no such descriptor, and without CAP_SYS_ADMIN could not use one. */
    if (e == 0 && harden__netns < 0) {
        e = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(setns), 0);
    } else if (e == 0) {
        e = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(setns), 1,
                             SCMP_A0_32(SCMP_CMP_NE, (uint32_t)harden__netns));
        if (e == 0) {
            e = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(setns), 1,
                                 SCMP_A1_32(SCMP_CMP_NE, CLONE_NEWNET));
        }
    }
    for (size_t i = 0;
         e == 0 && i < sizeof harden__clone_new / sizeof *harden__clone_new;
         i++) {
        unsigned long f = harden__clone_new[i];
        e = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, f, f));
    }
    /* clone3 passes its flags in memory, out of a filter's sight: libc
     * takes ENOSYS for a kernel without it and uses clone. */
    if (e == 0) {
        int nr = seccomp_syscall_resolve_name("clone3");
        if (nr != __NR_SCMP_ERROR) {
            e = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
        }
    }
    if (e != 0) {
        err_printf(errmsg, "seccomp: cannot add a rule: %s", strerror(-e));
        goto err_after_ctx;
    }
    /* libseccomp 2.5 exports only to a descriptor: a memory file, read
     * back. */
    int fd = memfd_create("berth-seccomp", MFD_CLOEXEC);
    if (fd < 0) {
        err_printf(errmsg, "seccomp: memfd_create: %s", strerror(errno));
        goto err_after_ctx;
    }
    e = seccomp_export_bpf(ctx, fd);
    if (e != 0) {
        err_printf(errmsg, "seccomp: cannot export the filter: %s",
                   strerror(-e));
        goto err_after_fd;
    }
    ssize_t n = pread(fd, harden__bpf, sizeof harden__bpf, 0);
    struct stat st;
    if (n <= 0 || fstat(fd, &st) != 0 || st.st_size != n ||
        n % (ssize_t)sizeof *harden__bpf != 0) {
        err_printf(errmsg, "seccomp: the filter does not fit (%lld bytes)",
                   (long long)n);
        goto err_after_fd;
    }
    harden__prog.len = (unsigned short)(n / (ssize_t)sizeof *harden__bpf);
    harden__prog.filter = harden__bpf;
    rv = 0;
err_after_fd:
    close(fd);
err_after_ctx:
    seccomp_release(ctx);
    return rv;
}

/* Make the empty network namespace: a helper child unshares one, the
 * host opens it through /proc and kills the helper. Where that fails,
 * harden__net_why says why, and programs keep the host's network. */
static void harden__namespace(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        snprintf(harden__net_why, sizeof harden__net_why,
                 "host (no network namespace: pipe: %s)", strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(harden__net_why, sizeof harden__net_why,
                 "host (no network namespace: fork: %s)", strerror(errno));
        close(p[0]);
        close(p[1]);
        return;
    }
    if (pid == 0) {
        int e = unshare(CLONE_NEWNET) == 0 ? 0 : errno;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (write(p[1], &e, sizeof e) != sizeof e) {
            _exit(1);
        }
        for (;;) {
            pause(); /* until the host has opened the namespace */
        }
    }
    close(p[1]);
    int e = 0;
    if (read(p[0], &e, sizeof e) != sizeof e) {
        e = EIO;
    }
    close(p[0]);
    if (e == 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
        harden__netns = open(path, O_RDONLY | O_CLOEXEC);
        e = harden__netns < 0 ? errno : 0;
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    if (e != 0) {
        snprintf(harden__net_why, sizeof harden__net_why,
                 "host (no network namespace: %s)", strerror(e));
        return;
    }
    snprintf(harden__net_why, sizeof harden__net_why, "none");
}

/* Look up user (a name or a number) into harden__uid and harden__gid. */
static int harden__user(const char *user, char *errmsg)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(user, &end, 10);
    struct passwd *pw = getpwnam(user);
    if (pw != NULL) {
        harden__uid = (long)pw->pw_uid;
        harden__gid = pw->pw_gid;
    } else if (user[0] != '\0' && *end == '\0' && errno == 0 &&
               n < UINT32_MAX) {
        /* A number with no entry: its own group. */
        harden__uid = (long)n;
        harden__gid = (gid_t)n;
    } else {
        err_printf(errmsg, "no user named %s", user);
        return BERTH_EINVAL;
    }
    if (geteuid() != 0 && (uid_t)harden__uid != geteuid()) {
        err_printf(errmsg,
                   "programs can run as %s only when the host runs as root",
                   user);
        harden__uid = -1;
        return BERTH_EINVAL;
    }
    return 0;
}

/* Parse range ("FIRST-LAST") into the --program-uids range. */
static int harden__uids(const char *range, char *errmsg)
{
    char *end;
    errno = 0;
    unsigned long first = strtoul(range, &end, 10);
    unsigned long last = 0;
    bool ok = range[0] >= '0' && range[0] <= '9' && *end == '-' && errno == 0;
    if (ok) {
        const char *second = end + 1;
        last = strtoul(second, &end, 10);
        ok = second[0] >= '0' && second[0] <= '9' && *end == '\0' && errno == 0;
    }
    if (!ok || first == 0 || first > last || last >= UINT32_MAX ||
        last - first + 1 > HARDEN_UIDS_MAX) {
        err_printf(errmsg,
                   "--program-uids %s: want FIRST-LAST, uids from 1, at most "
                   "%u of them",
                   range, HARDEN_UIDS_MAX);
        return BERTH_EINVAL;
    }
    if (geteuid() != 0) {
        err_printf(errmsg, "programs can run as uids of their own only when "
                           "the host runs as root");
        return BERTH_EINVAL;
    }
    harden__uids_n = (unsigned)(last - first + 1);
    harden__uids_held = mem_calloc(harden__uids_n / 8 + 1, 1);
    if (harden__uids_held == NULL) {
        harden__uids_n = 0;
        err_printf(errmsg, "out of memory");
        return BERTH_ENOMEM;
    }
    harden__uids_first = (long)first;
    harden__uids_next = 0;
    return 0;
}

/* Remove what the directory open at fd holds, then close it: by
 * descriptors, each level opened with O_NOFOLLOW relative to the one
 * above, so that a program of the same user swapping a directory for a
 * link meanwhile cannot send the walk elsewhere. Deeper than 64 levels
 * is left for the next start. */
static void harden__empty_at(int fd, int depth)
{
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return;
    }
    /* Entries removed while reading can make readdir skip some: go over
     * it again while a pass removes anything. */
    for (bool progress = true; progress;) {
        progress = false;
        rewinddir(d);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            const char *name = e->d_name;
            if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
                continue;
            }
            if (unlinkat(dirfd(d), name, 0) == 0) {
                progress = true;
                continue;
            }
            int sub =
                depth < 64
                    ? openat(dirfd(d), name,
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    : -1;
            if (sub >= 0) {
                harden__empty_at(sub, depth + 1);
            }
            if (unlinkat(dirfd(d), name, AT_REMOVEDIR) == 0) {
                progress = true;
            }
        }
    }
    closedir(d);
}

/* Remove path and everything below it, without following links. */
static void harden__rm_tree(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        harden__empty_at(fd, 0);
    }
    if (rmdir(path) != 0 && errno == ENOTDIR) {
        unlink(path);
    }
}

int harden_setup(const struct harden_config *cfg, char *errmsg)
{
    harden_cleanup();
    harden__parts = 0;
    harden__uid = -1;
    harden__root[0] = '\0';
    snprintf(harden__net_why, sizeof harden__net_why, "host");
    if (cfg->user != NULL && cfg->uids != NULL) {
        err_printf(errmsg, "--program-user and --program-uids: one or the "
                           "other");
        return BERTH_EINVAL;
    }
    if (cfg->user != NULL) {
        int rv = harden__user(cfg->user, errmsg);
        if (rv != 0) {
            return rv;
        }
    }
    if (cfg->uids != NULL) {
        int rv = harden__uids(cfg->uids, errmsg);
        if (rv != 0) {
            return rv;
        }
    }
    harden__dir_uid = harden__uid >= 0 ? (uid_t)harden__uid : geteuid();
    harden__dir_gid = harden__uid >= 0 ? harden__gid : getegid();
    unsigned parts = cfg->parts & HARDEN_ALL;
    if (parts & HARDEN_NETNS) {
        harden__namespace(); /* before the filter, which names it */
    }
    if (parts & HARDEN_SECCOMP) {
        int rv = harden__filter(errmsg);
        if (rv != 0) {
            harden_cleanup();
            return rv;
        }
    }
    if (parts & HARDEN_RLIMITS) {
        /* A host whose own hard limit is lower keeps it. */
        struct rlimit now;
        rlim_t cap = HARDEN_NOFILE;
        if (getrlimit(RLIMIT_NOFILE, &now) == 0 && now.rlim_max < cap) {
            cap = now.rlim_max;
        }
        harden__nofile.rlim_cur = harden__nofile.rlim_max = cap;
    }
    if (parts & HARDEN_DIR) {
        /* Absolute: the child changes to it from the starter's working
         * directory, and a data directory may be given relative to it. */
        char real[PATH_MAX];
        if (cfg->data_dir == NULL || realpath(cfg->data_dir, real) == NULL) {
            err_printf(errmsg, "cannot find the data directory %s: %s",
                       cfg->data_dir != NULL ? cfg->data_dir : "(none)",
                       strerror(cfg->data_dir != NULL ? errno : EINVAL));
            return BERTH_EINVAL;
        }
        if (snprintf(harden__root, sizeof harden__root, "%s/programs", real) >=
            (int)sizeof harden__root) {
            err_printf(errmsg, "the data directory's path is too long");
            return BERTH_EINVAL;
        }
        /* What a run killed with -9 left. */
        harden__rm_tree(harden__root);
        harden__pool_n = 0;
        if (mkdir(harden__root, 0711) != 0 && errno != EEXIST) {
            err_printf(errmsg, "cannot make %s: %s", harden__root,
                       strerror(errno));
            harden__root[0] = '\0';
            return BERTH_EIO;
        }
    }
    if (parts & HARDEN_CAPS) {
        /* Only a host that has capabilities can drop them. */
        harden__drop_caps =
            prctl(PR_CAPBSET_READ, CAP_SETPCAP) == 1 && geteuid() == 0;
        FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
        int last;
        if (f != NULL) {
            if (fscanf(f, "%d", &last) == 1 && last > 0 && last < 64) {
                harden__cap_last = last;
            }
            fclose(f);
        }
    }
    harden__parts = parts;
    harden_dir_refill();
    return 0;
}

unsigned harden_parts(void)
{
    return harden__parts;
}

const char *harden_network(void)
{
    return harden__net_why;
}

long harden_uid(void)
{
    return harden__uid;
}

unsigned harden_uids(long *first)
{
    *first = harden__uids_first;
    return harden__uids_n;
}

int harden_uid_take(long *uid)
{
    *uid = harden__uid;
    if (harden__uids_n == 0) {
        return 0;
    }
    int e = EUSERS;
    pthread_mutex_lock(&harden__lock);
    for (unsigned k = 0; k < harden__uids_n; k++) {
        unsigned i = (harden__uids_next + k) % harden__uids_n;
        if (!(harden__uids_held[i / 8] & (1u << (i % 8)))) {
            harden__uids_held[i / 8] |= (uint8_t)(1u << (i % 8));
            harden__uids_next = (i + 1) % harden__uids_n;
            *uid = harden__uids_first + (long)i;
            e = 0;
            break;
        }
    }
    pthread_mutex_unlock(&harden__lock);
    return e;
}

void harden_uid_give(long uid)
{
    if (harden__uids_n == 0 || uid < harden__uids_first ||
        uid - harden__uids_first >= (long)harden__uids_n) {
        return;
    }
    unsigned i = (unsigned)(uid - harden__uids_first);
    pthread_mutex_lock(&harden__lock);
    harden__uids_held[i / 8] &= (uint8_t) ~(1u << (i % 8));
    pthread_mutex_unlock(&harden__lock);
}

int harden_netns_fd(void)
{
    return harden__netns;
}

/* Make the directory of run number n into path (PATH_MAX bytes), owned
 * by the program user; 0 or an errno. */
static int harden__dir_new(unsigned long n, char *path)
{
    snprintf(path, PATH_MAX, "%s/run.%lu", harden__root, n);
    if (mkdir(path, 0700) != 0) {
        return errno;
    }
    if (harden__uid >= 0 &&
        chown(path, harden__dir_uid, harden__dir_gid) != 0) {
        int e = errno;
        rmdir(path);
        return e;
    }
    return 0;
}

int harden_dir_take(char *path, long uid)
{
    path[0] = '\0';
    if (!(harden__parts & HARDEN_DIR) || harden__root[0] == '\0') {
        return 0;
    }
    pthread_mutex_lock(&harden__lock);
    bool ready = harden__pool_n > 0;
    unsigned long n = ready ? harden__pool[--harden__pool_n] : ++harden__runs;
    pthread_mutex_unlock(&harden__lock);
    int e = 0;
    if (ready) {
        snprintf(path, PATH_MAX, "%s/run.%lu", harden__root, n);
    } else {
        e = harden__dir_new(n, path);
    }
    /* A uid of the range: the directory becomes that run's alone. */
    if (e == 0 && uid >= 0 && (uid_t)uid != harden__dir_uid &&
        chown(path, (uid_t)uid, (gid_t)uid) != 0) {
        e = errno;
        harden_dir_give(path);
    }
    if (e != 0) {
        path[0] = '\0';
    }
    return e;
}

bool harden_dir_low(void)
{
    pthread_mutex_lock(&harden__lock);
    bool low = (harden__parts & HARDEN_DIR) && harden__root[0] != '\0' &&
               harden__pool_n < HARDEN__POOL / 2;
    pthread_mutex_unlock(&harden__lock);
    return low;
}

void harden_dir_refill(void)
{
    char path[PATH_MAX];
    for (;;) {
        pthread_mutex_lock(&harden__lock);
        bool full = harden__pool_n >= HARDEN__POOL;
        unsigned long n = full ? 0 : ++harden__runs;
        pthread_mutex_unlock(&harden__lock);
        if (full || harden__dir_new(n, path) != 0) {
            return;
        }
        pthread_mutex_lock(&harden__lock);
        if (harden__pool_n < HARDEN__POOL) {
            harden__pool[harden__pool_n++] = n;
            n = 0;
        }
        pthread_mutex_unlock(&harden__lock);
        if (n != 0) {
            rmdir(path); /* another refill got there first */
            return;
        }
    }
}

/* Whether the directory open at fd holds nothing. */
static bool harden__dir_empty(int fd)
{
    char buf[1024];
    long got;
    while ((got = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < got;) {
            /* struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8
             * type, then the name. */
            unsigned short reclen;
            memcpy(&reclen, buf + off + 16, sizeof reclen);
            const char *name = buf + off + 19;
            if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
                return false;
            }
            off += reclen;
        }
    }
    return got == 0;
}

/* Give the directory open at fd its mode and owner as made, writing only
 * what changed (an inode write is a journal entry); whether it has them. */
static bool harden__dir_reset(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return false;
    }
    if ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) != 0) {
        return false;
    }
    return (st.st_uid == harden__dir_uid && st.st_gid == harden__dir_gid) ||
           fchown(fd, harden__dir_uid, harden__dir_gid) == 0;
}

void harden_dir_give(const char *path)
{
    if (path == NULL || path[0] == '\0') {
        return;
    }
    const char *dot = strrchr(path, '.');
    unsigned long n = dot != NULL ? strtoul(dot + 1, NULL, 10) : 0;
    /* Empty, it goes back to the pool, its mode and owner as made (the
     * program may have changed them); else it goes, with what is in it. */
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    bool keep =
        fd >= 0 && n != 0 && harden__dir_empty(fd) && harden__dir_reset(fd);
    if (fd >= 0) {
        close(fd);
    }
    if (keep) {
        pthread_mutex_lock(&harden__lock);
        keep = harden__pool_n < HARDEN__POOL;
        if (keep) {
            harden__pool[harden__pool_n++] = n;
        }
        pthread_mutex_unlock(&harden__lock);
    }
    if (!keep && rmdir(path) != 0 && errno != ENOENT) {
        harden__rm_tree(path);
    }
}

/* Empty the bounding set, so that an exec as root gains no capability,
 * and the ambient set; the process keeps those it has. Raw calls only (see
 * harden_child). Returns 0 or an errno. */
static int harden__drop_bounding(void)
{
    if (!harden__drop_caps) {
        return 0;
    }
    for (int c = 0; c <= harden__cap_last; c++) {
        if (syscall(SYS_prctl, PR_CAPBSET_DROP, c, 0, 0, 0) != 0 &&
            errno != EINVAL) {
            return errno;
        }
    }
    syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    return 0;
}

/* Set no_new_privs and load the filter on this process (and what it
 * starts from now on). Returns 0 or an errno. */
static int harden__load_filter(void)
{
    if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &harden__prog) != 0) {
        return errno;
    }
    return 0;
}

int harden_child(const char *dir, bool network, long uid)
{
    unsigned parts = harden__parts;
    if (parts & HARDEN_RLIMITS) {
        static const struct rlimit zero;
        static const struct rlimit fsize = {HARDEN_FSIZE, HARDEN_FSIZE};
        if (syscall(SYS_prlimit64, 0, RLIMIT_CORE, &zero, NULL) != 0 ||
            syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &harden__nofile, NULL) !=
                0 ||
            syscall(SYS_prlimit64, 0, RLIMIT_FSIZE, &fsize, NULL) != 0) {
            return errno;
        }
    }
    if (!network && harden__netns >= 0 &&
        syscall(SYS_setns, harden__netns, CLONE_NEWNET) != 0) {
        return errno;
    }
    if (dir != NULL && dir[0] != '\0' && syscall(SYS_chdir, dir) != 0) {
        return errno;
    }
    if ((parts & HARDEN_CAPS) && !(harden__inherited & HARDEN_CAPS)) {
        int e = harden__drop_bounding();
        if (e != 0) {
            return e;
        }
    }
    /* Raw calls: libc's would make every thread of the starter change
     * its credentials too. Groups, then the gid, then the uid, while the
     * process may still change them. */
    if (uid >= 0) {
        /* The --program-user's group, else the uid's own number. */
        gid_t g = uid == harden__uid ? harden__gid : (gid_t)uid;
        if (syscall(SYS_setgroups, 1, &g) != 0 ||
            syscall(SYS_setresgid, g, g, g) != 0 ||
            syscall(SYS_setresuid, (uid_t)uid, (uid_t)uid, (uid_t)uid) != 0) {
            return errno;
        }
    }
    if ((parts & HARDEN_SECCOMP) && !(harden__inherited & HARDEN_SECCOMP)) {
        return harden__load_filter();
    }
    return 0;
}

void harden_launcher(void)
{
    unsigned done = 0;
    if ((harden__parts & HARDEN_CAPS) && harden__drop_bounding() == 0) {
        done |= HARDEN_CAPS;
    }
    if ((harden__parts & HARDEN_SECCOMP) && harden__load_filter() == 0) {
        done |= HARDEN_SECCOMP;
    }
    harden__inherited = done;
}

void harden_cleanup(void)
{
    if (harden__netns >= 0) {
        close(harden__netns);
        harden__netns = -1;
    }
    mem_free(harden__uids_held);
    harden__uids_held = NULL;
    harden__uids_n = 0;
    harden__uids_first = 0;
}
