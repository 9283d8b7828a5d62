#include "proc/launcher.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/err.h"
#include "proc/freezer.h"
#include "proc/spawn.h"

/* The environment every program gets besides BERTH_SHIP and BERTH_HOST
 * (proc.c's too). */
#define LAUNCHER__PATH "PATH=/usr/local/bin:/usr/bin:/bin"

/* A request: u16 file_len | file | u16 argv0_len | argv0 | u16 id_len | id
 * | u16 host_len | host, with the two descriptors attached; the reply:
 * i32 errno | i32 pid. */
#define LAUNCHER__MSG_MAX (4 * (2 + 4096))

static int launcher__ctl = -1;
static pid_t launcher__pid;

/* --- In the launcher process. --- */

static const char *launcher__str(const uint8_t *p, size_t n, size_t *off,
                                 char *out, size_t size)
{
    if (*off + 2 > n) {
        return NULL;
    }
    size_t len = (size_t)p[*off] | (size_t)p[*off + 1] << 8;
    *off += 2;
    if (len >= size || *off + len > n) {
        return NULL;
    }
    memcpy(out, p + *off, len);
    out[len] = '\0';
    *off += len;
    return out;
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
    freezer_kill_run();
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
    /* Keep stdio (for messages) and the socket; drop what the host had
     * open, its data directory's lock among them. */
    if (ctl > 3) {
        close_range(3, (unsigned)ctl - 1, 0);
    }
    close_range((unsigned)ctl + 1, ~0U, 0);
    for (;;) {
        uint8_t buf[LAUNCHER__MSG_MAX];
        union {
            struct cmsghdr h;
            char space[CMSG_SPACE(2 * sizeof(int))];
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
        int fds[2] = {-1, -1};
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);
        if (h != NULL && h->cmsg_level == SOL_SOCKET &&
            h->cmsg_type == SCM_RIGHTS &&
            h->cmsg_len == CMSG_LEN(2 * sizeof(int))) {
            memcpy(fds, CMSG_DATA(h), sizeof fds);
        }
        char file[4097], argv0[4097], id[4097], host_id[4097];
        char ship[4200], host_env[4200];
        size_t off = 0;
        bool ok = fds[0] >= 0 && fds[1] >= 0 &&
                  launcher__str(buf, (size_t)n, &off, file, sizeof file) &&
                  launcher__str(buf, (size_t)n, &off, argv0, sizeof argv0) &&
                  launcher__str(buf, (size_t)n, &off, id, sizeof id) &&
                  launcher__str(buf, (size_t)n, &off, host_id, sizeof host_id);
        if (!ok) {
            launcher__reply(ctl, EINVAL, 0);
        } else {
            snprintf(ship, sizeof ship, "BERTH_SHIP=%s", id);
            snprintf(host_env, sizeof host_env, "BERTH_HOST=%s", host_id);
            char *argv[] = {argv0, NULL};
            char *env[] = {LAUNCHER__PATH, ship, host_env, NULL};
            /* CLONE_PARENT: the program is the host's child, and dies with
             * the host. */
            struct spawn_job j = {
                .file = file,
                .argv = argv,
                .envp = env,
                .sock = fds[0],
                .errw = fds[1],
                .parent = host,
            };
            pid_t pid;
            int e = spawn_program(&j, CLONE_PARENT, &pid);
            launcher__reply(ctl, e, pid);
        }
        for (int i = 0; i < 2; i++) {
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

void launcher_stop(void)
{
    if (launcher__ctl < 0) {
        return;
    }
    close(launcher__ctl);
    launcher__ctl = -1;
    while (waitpid(launcher__pid, NULL, 0) < 0 && errno == EINTR) {
    }
}

/* The launcher died: forget it and start programs from the host. */
static int launcher__lost(void)
{
    fprintf(stderr, "berth: the program launcher (pid %d) is gone; starting "
                    "programs from the host\n",
            (int)launcher__pid);
    close(launcher__ctl);
    launcher__ctl = -1;
    /* Its socket broke, so it is dead or dying: make sure, and reap it. */
    kill(launcher__pid, SIGKILL);
    while (waitpid(launcher__pid, NULL, 0) < 0 && errno == EINTR) {
    }
    return ESRCH;
}

static int launcher__put_str(uint8_t *buf, size_t *off, const char *s)
{
    size_t n = strlen(s);
    if (n > 4096) {
        return ENAMETOOLONG;
    }
    buf[(*off)++] = (uint8_t)n;
    buf[(*off)++] = (uint8_t)(n >> 8);
    memcpy(buf + *off, s, n);
    *off += n;
    return 0;
}

int launcher_spawn(const char *file, const char *argv0, const char *ship_id,
                   const char *host_id, int sock, int errw, pid_t *pid)
{
    uint8_t buf[LAUNCHER__MSG_MAX];
    size_t off = 0;
    int e;
    if (launcher__ctl < 0) {
        return ESRCH;
    }
    if ((e = launcher__put_str(buf, &off, file)) != 0 ||
        (e = launcher__put_str(buf, &off, argv0)) != 0 ||
        (e = launcher__put_str(buf, &off, ship_id)) != 0 ||
        (e = launcher__put_str(buf, &off, host_id)) != 0) {
        return e;
    }
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(2 * sizeof(int))];
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
    h->cmsg_len = CMSG_LEN(2 * sizeof(int));
    int fds[2] = {sock, errw};
    memcpy(CMSG_DATA(h), fds, sizeof fds);
    ssize_t n;
    while ((n = sendmsg(launcher__ctl, &m, MSG_NOSIGNAL)) < 0 &&
           errno == EINTR) {
    }
    if (n < 0) {
        return launcher__lost();
    }
    int32_t r[2];
    while ((n = recv(launcher__ctl, r, sizeof r, 0)) < 0 && errno == EINTR) {
    }
    if (n != (ssize_t)sizeof r) {
        return launcher__lost();
    }
    if (r[0] != 0) {
        if (r[1] > 0) {
            /* The child could not exec and has exited: it is ours to
             * reap. */
            while (waitpid(r[1], NULL, 0) < 0 && errno == EINTR) {
            }
        }
        return r[0];
    }
    *pid = r[1];
    return 0;
}
