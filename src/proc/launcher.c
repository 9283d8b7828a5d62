#include "proc/launcher.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/err.h"
#include "proc/cgcaps.h"
#include "proc/freezer.h"
#include "proc/harden.h"
#include "proc/proc.h"
#include "proc/spawn.h"

/* A request: u16 file_len | file | u16 argc | argv strings | u16 envc |
 * envp strings | dir string | u16 flags (LAUNCHER__*) | with LAUNCHER__UID,
 * the uid as u16 low | u16 high, each string
 * u16 len | bytes with its NUL counted in len,
 * so that the launcher points into the message; the two descriptors are
 * attached. The reply: i32 errno | i32 pid. */
#define LAUNCHER__MSG_MAX (64 * 1024)

/* A request's flag: the program keeps the host's network. */
#define LAUNCHER__NETWORK 0x01

/* A request's flag: the program runs as the uid that follows. */
#define LAUNCHER__UID 0x02

/* Entries of argv or envp at most, the NULL included: the program, its
 * arguments; or PATH, BERTH_SHIP, BERTH_HOST and the added variables. */
#define LAUNCHER__VEC_MAX (PROC_ARGS_MAX + 4)

static int launcher__ctl = -1;
static pid_t launcher__pid;
static int launcher__deadline_ms = LAUNCHER_DEADLINE_MS;

/* --- In the launcher process. --- */

static size_t launcher__u16(const uint8_t *p, size_t *off)
{
    size_t v = (size_t)p[*off] | (size_t)p[*off + 1] << 8;
    *off += 2;
    return v;
}

/* Point at the next string of a request, which ends in its NUL; NULL when
 * the request is cut or the string unterminated. */
static char *launcher__str(uint8_t *p, size_t n, size_t *off)
{
    if (*off + 2 > n) {
        return NULL;
    }
    size_t len = launcher__u16(p, off);
    if (len == 0 || *off + len > n || p[*off + len - 1] != '\0') {
        return NULL;
    }
    char *s = (char *)p + *off;
    *off += len;
    return s;
}

/* Read a vector of strings into vec (LAUNCHER__VEC_MAX entries), ended by
 * NULL; returns false when the request is malformed. */
static bool launcher__vec(uint8_t *p, size_t n, size_t *off, char **vec)
{
    if (*off + 2 > n) {
        return false;
    }
    size_t count = launcher__u16(p, off);
    if (count >= LAUNCHER__VEC_MAX) {
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        if ((vec[i] = launcher__str(p, n, off)) == NULL) {
            return false;
        }
    }
    vec[count] = NULL;
    return true;
}

static void launcher__reply(int ctl, int err, pid_t pid)
{
    int32_t r[2] = {err, (int32_t)pid};
    while (send(ctl, r, sizeof r, MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
}

/* The host is gone, killed or stopped: so is everything of its run. A
 * program itself dies with the host (PR_SET_PDEATHSIG), but not what it
 * started, nor one that a cgroup v1 freezer holds. */
static _Noreturn void launcher__reap(void)
{
    /* Out of staging first, so that the run's cgroups can go. */
    cgcaps_unstage();
    freezer_kill_run();
    cgcaps_unstage();
    _exit(0);
}

static _Noreturn void launcher__main(int ctl, pid_t host)
{
    /* No PR_SET_PDEATHSIG here: the launcher must outlive the host long
     * enough to reap its run, and learns of its death from the socket,
     * which only the host holds the other end of. */
    if (getppid() != host) {
        launcher__reap(); /* the host is gone already */
    }
    /* Keep stdio (for messages), the socket and the empty network
     * namespace programs join; drop what the host had open, its data
     * directory's lock among them. */
    int keep[2] = {ctl, harden_netns_fd()};
    if (keep[1] >= 0 && keep[1] < keep[0]) {
        keep[0] = keep[1];
        keep[1] = ctl;
    }
    unsigned from = 3;
    for (int i = 0; i < 2; i++) {
        if (keep[i] < 0) {
            continue;
        }
        if ((unsigned)keep[i] > from) {
            close_range(from, (unsigned)keep[i] - 1, 0);
        }
        from = (unsigned)keep[i] + 1;
    }
    close_range(from, ~0U, 0);
    /* What it starts is born under the staging cgroup's pids cap, until
     * the host moves it into its own (cgcaps.h). Only after the lock has
     * gone: the move may wait for the kernel's cgroup lock for
     * milliseconds, and a host that fails early and exits would leave its
     * data directory locked by this process meanwhile. */
    cgcaps_stage_self();
    /* What every program gives up anyway, given up once here. */
    harden_launcher();
    for (;;) {
        uint8_t buf[LAUNCHER__MSG_MAX];
        union {
            struct cmsghdr h;
            char space[CMSG_SPACE(3 * sizeof(int))];
        } c;
        struct iovec iov = {buf, sizeof buf};
        struct msghdr m = {.msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = c.space,
                           .msg_controllen = sizeof c.space};
        ssize_t n = recvmsg(ctl, &m, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            launcher__reap(); /* the host closed its end, or died */
        }
        int fds[3] = {-1, -1, -1};
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);
        if (h != NULL && h->cmsg_level == SOL_SOCKET &&
            h->cmsg_type == SCM_RIGHTS &&
            h->cmsg_len == CMSG_LEN(3 * sizeof(int))) {
            memcpy(fds, CMSG_DATA(h), sizeof fds);
        }
        char *argv[LAUNCHER__VEC_MAX], *env[LAUNCHER__VEC_MAX];
        size_t off = 0;
        char *file = fds[0] >= 0 && fds[1] >= 0 && fds[2] >= 0
                         ? launcher__str(buf, (size_t)n, &off)
                         : NULL;
        bool ok = file != NULL && launcher__vec(buf, (size_t)n, &off, argv) &&
                  launcher__vec(buf, (size_t)n, &off, env) && argv[0] != NULL;
        char *dir = ok ? launcher__str(buf, (size_t)n, &off) : NULL;
        ok = dir != NULL && off + 2 <= (size_t)n;
        size_t flags = ok ? launcher__u16(buf, &off) : 0;
        long uid = -1;
        if (ok && (flags & LAUNCHER__UID)) {
            ok = off + 4 <= (size_t)n;
            if (ok) {
                uid = (long)launcher__u16(buf, &off);
                uid |= (long)launcher__u16(buf, &off) << 16;
            }
        }
        if (!ok) {
            launcher__reply(ctl, EINVAL, 0);
        } else {
            /* CLONE_PARENT: the program is the host's child, and dies with
             * the host. */
            struct spawn_job j = {
                .file = file,
                .argv = argv,
                .envp = env,
                .in = fds[0],
                .out = fds[1],
                .errw = fds[2],
                .parent = host,
                .dir = dir,
                .network = (flags & LAUNCHER__NETWORK) != 0,
                .uid = uid,
            };
            pid_t pid;
            int e = spawn_program(&j, CLONE_PARENT, &pid);
            launcher__reply(ctl, e, pid);
        }
        for (int i = 0; i < 3; i++) {
            if (fds[i] >= 0) {
                close(fds[i]);
            }
        }
    }
}

/* --- In the host. --- */

int launcher_start(char *errmsg)
{
    int sv[2];
    if (launcher__ctl >= 0) {
        return 0;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        err_printf(errmsg, "launcher: socketpair: %s", strerror(errno));
        return BERTH_EIO;
    }
    pid_t host = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        err_printf(errmsg, "launcher: fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return BERTH_EIO;
    }
    if (pid == 0) {
        close(sv[0]);
        launcher__main(sv[1], host);
    }
    close(sv[1]);
    launcher__ctl = sv[0];
    launcher__pid = pid;
    return 0;
}

bool launcher_running(void)
{
    return launcher__ctl >= 0;
}

pid_t launcher_pid(void)
{
    return launcher__ctl >= 0 ? launcher__pid : 0;
}

void launcher_set_deadline(int ms)
{
    launcher__deadline_ms = ms;
}

int launcher_deadline(void)
{
    return launcher__deadline_ms;
}

void launcher_stop(void)
{
    if (launcher__ctl < 0) {
        return;
    }
    close(launcher__ctl);
    launcher__ctl = -1;
    /* It reaps the run (at most 3 s, freezer.h) and exits; one that hung
     * would hold the host's stop for ever, so it is killed past that and
     * its deadline. */
    for (int ms = 0; ms < 3000 + launcher__deadline_ms; ms += 10) {
        pid_t r = waitpid(launcher__pid, NULL, WNOHANG);
        if (r == launcher__pid || (r < 0 && errno != EINTR)) {
            return;
        }
        struct timespec t = {0, 10 * 1000000};
        nanosleep(&t, NULL);
    }
    kill(launcher__pid, SIGKILL);
    while (waitpid(launcher__pid, NULL, 0) < 0 && errno == EINTR) {
    }
}

/* The launcher died, or hung (it did not take a request or answer one
 * within the deadline): forget it and start programs from the host. */
static int launcher__lost(bool hung)
{
    if (hung) {
        fprintf(stderr,
                "berth: the program launcher (pid %d) did not answer for "
                "%d ms: killed; starting programs from the host\n",
                (int)launcher__pid, launcher__deadline_ms);
    } else {
        fprintf(stderr,
                "berth: the program launcher (pid %d) is gone; starting "
                "programs from the host\n",
                (int)launcher__pid);
    }
    close(launcher__ctl);
    launcher__ctl = -1;
    /* Its socket broke, so it is dead or dying, or it hung: make sure,
     * and reap it. */
    kill(launcher__pid, SIGKILL);
    while (waitpid(launcher__pid, NULL, 0) < 0 && errno == EINTR) {
    }
    return ESRCH;
}

void launcher_abandon(void)
{
    if (launcher__ctl >= 0) {
        launcher__lost(true);
    }
}

static void launcher__put_u16(uint8_t *buf, size_t *off, size_t v)
{
    buf[(*off)++] = (uint8_t)v;
    buf[(*off)++] = (uint8_t)(v >> 8);
}

/* Add a string, its NUL included, to a request; E2BIG when it does not
 * fit. */
static int launcher__put_str(uint8_t *buf, size_t *off, const char *s)
{
    size_t n = strlen(s) + 1;
    if (n > UINT16_MAX || *off + 2 + n > LAUNCHER__MSG_MAX) {
        return E2BIG;
    }
    launcher__put_u16(buf, off, n);
    memcpy(buf + *off, s, n);
    *off += n;
    return 0;
}

/* Add a NULL-terminated vector of strings to a request; E2BIG when it has
 * too many strings or does not fit. */
static int launcher__put_vec(uint8_t *buf, size_t *off, char *const *vec)
{
    size_t count = 0;
    while (vec[count] != NULL) {
        count++;
    }
    if (count >= LAUNCHER__VEC_MAX || *off + 2 > LAUNCHER__MSG_MAX) {
        return E2BIG;
    }
    launcher__put_u16(buf, off, count);
    for (size_t i = 0; i < count; i++) {
        int e = launcher__put_str(buf, off, vec[i]);
        if (e != 0) {
            return e;
        }
    }
    return 0;
}

/* Wait until the socket is ready for events, at most the deadline; false
 * when poll fails, or with errno ETIMEDOUT when the launcher hung. */
static bool launcher__wait(short events)
{
    struct pollfd pfd = {.fd = launcher__ctl, .events = events};
    int r;
    while ((r = poll(&pfd, 1, launcher__deadline_ms)) < 0 && errno == EINTR) {
    }
    if (r == 0) {
        errno = ETIMEDOUT;
    }
    return r > 0;
}

int launcher_send(const struct spawn_job *job)
{
    static uint8_t buf[LAUNCHER__MSG_MAX];
    size_t off = 0;
    int e;
    if (launcher__ctl < 0) {
        return ESRCH;
    }
    if ((e = launcher__put_str(buf, &off, job->file)) != 0 ||
        (e = launcher__put_vec(buf, &off, job->argv)) != 0 ||
        (e = launcher__put_vec(buf, &off, job->envp)) != 0 ||
        (e = launcher__put_str(buf, &off, job->dir != NULL ? job->dir : "")) !=
            0) {
        return e;
    }
    if (off + 6 > LAUNCHER__MSG_MAX) {
        return E2BIG;
    }
    launcher__put_u16(buf, &off,
                      (job->network ? LAUNCHER__NETWORK : 0) |
                          (job->uid >= 0 ? LAUNCHER__UID : 0));
    if (job->uid >= 0) {
        launcher__put_u16(buf, &off, (size_t)job->uid & 0xffff);
        launcher__put_u16(buf, &off, ((size_t)job->uid >> 16) & 0xffff);
    }
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(3 * sizeof(int))];
    } c;
    memset(&c, 0, sizeof c);
    struct iovec iov = {buf, off};
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = c.space,
                       .msg_controllen = sizeof c.space};
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(3 * sizeof(int));
    int fds[3] = {job->in, job->out, job->errw};
    memcpy(CMSG_DATA(h), fds, sizeof fds);
    ssize_t n;
    /* A full socket is waited for, up to the deadline: a launcher that
     * takes no request holds the loop no longer. */
    while ((n = sendmsg(launcher__ctl, &m, MSG_NOSIGNAL | MSG_DONTWAIT)) < 0 &&
           (errno == EINTR || ((errno == EAGAIN || errno == EWOULDBLOCK) &&
                               launcher__wait(POLLOUT)))) {
    }
    if (n < 0) {
        return launcher__lost(errno == ETIMEDOUT);
    }
    return 0;
}

int launcher_fd(void)
{
    return launcher__ctl;
}

int launcher_reply(bool wait, pid_t *pid, int *err)
{
    if (launcher__ctl < 0) {
        return ESRCH;
    }
    int32_t r[2];
    ssize_t n;
    while (
        (n = recv(launcher__ctl, r, sizeof r, MSG_DONTWAIT)) < 0 &&
        (errno == EINTR || (wait && (errno == EAGAIN || errno == EWOULDBLOCK) &&
                            launcher__wait(POLLIN)))) {
    }
    if (n < 0 && !wait && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return EAGAIN;
    }
    if (n != (ssize_t)sizeof r) {
        return launcher__lost(n < 0 && errno == ETIMEDOUT);
    }
    *err = r[0];
    *pid = 0;
    if (r[0] != 0) {
        if (r[1] > 0) {
            /* The child could not exec and has exited: it is ours to
             * reap. */
            while (waitpid(r[1], NULL, 0) < 0 && errno == EINTR) {
            }
        }
        return 0;
    }
    *pid = r[1];
    return 0;
}

int launcher_spawn(const struct spawn_job *job, pid_t *pid)
{
    int err = 0;
    int e = launcher_send(job);
    if (e == 0) {
        e = launcher_reply(true, pid, &err);
    }
    return e != 0 ? e : err;
}
