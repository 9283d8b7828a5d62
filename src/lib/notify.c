#include "lib/notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/err.h"

int notify_send(const char *text)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0') {
        return 0;
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    /* An abstract socket's name starts with a NUL byte, which the
     * variable cannot hold: '@' stands for it. */
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof addr.sun_path) {
        return BERTH_EINVAL;
    }
    memcpy(addr.sun_path, path, len);
    if (path[0] == '@') {
        addr.sun_path[0] = '\0';
    }
    socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                                     len + (path[0] == '@' ? 0 : 1));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return BERTH_EIO;
    }
    ssize_t n;
    do {
        n = sendto(fd, text, strlen(text), MSG_NOSIGNAL,
                   (struct sockaddr *)&addr, addr_len);
    } while (n < 0 && errno == EINTR);
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : BERTH_EIO;
}

int notify_status(const char *status)
{
    char text[512];
    snprintf(text, sizeof text, "STATUS=%s", status);
    return notify_send(text);
}

uint64_t notify_watchdog_usec(void)
{
    const char *usec = getenv("WATCHDOG_USEC");
    const char *pid = getenv("WATCHDOG_PID");
    char *end;
    if (usec == NULL || usec[0] < '0' || usec[0] > '9') {
        return 0;
    }
    errno = 0;
    unsigned long long v = strtoull(usec, &end, 10);
    if (*end != '\0' || errno != 0) {
        return 0;
    }
    /* The watchdog is meant for the main process; a variable inherited by
     * another one (a pid that is not ours) is not for it. */
    if (pid != NULL && pid[0] != '\0') {
        errno = 0;
        unsigned long long p = strtoull(pid, &end, 10);
        if (*end != '\0' || errno != 0 || p != (unsigned long long)getpid()) {
            return 0;
        }
    }
    return (uint64_t)v;
}

int notify_listen_fds(int *front, int *tls)
{
    const char *pid = getenv("LISTEN_PID");
    const char *fds = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
    char *end;
    *front = -1;
    *tls = -1;
    if (pid == NULL || fds == NULL) {
        return 0;
    }
    errno = 0;
    unsigned long long p = strtoull(pid, &end, 10);
    if (*end != '\0' || errno != 0 || p != (unsigned long long)getpid()) {
        return 0; /* meant for another process */
    }
    unsigned long long n = strtoull(fds, &end, 10);
    if (*end != '\0' || errno != 0 || n == 0 || n > 64) {
        return 0;
    }
    for (int fd = NOTIFY_LISTEN_FDS_START;
         fd < NOTIFY_LISTEN_FDS_START + (int)n; fd++) {
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0) {
            fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        }
    }
    /* Names are colon-separated, one per descriptor in order. */
    const char *name = names;
    for (unsigned long long i = 0; i < n; i++) {
        size_t len = name != NULL ? strcspn(name, ":") : 0;
        if ((name != NULL && len == 5 && strncmp(name, "front", 5) == 0) ||
            ((names == NULL || names[0] == '\0') && n == 1)) {
            *front = NOTIFY_LISTEN_FDS_START + (int)i;
        }
        if (name != NULL && len == 3 && strncmp(name, "tls", 3) == 0) {
            *tls = NOTIFY_LISTEN_FDS_START + (int)i;
        }
        if (name != NULL) {
            name = name[len] == ':' ? name + len + 1 : NULL;
        }
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return (int)n;
}

int notify_listen_fds_pass(int front, int tls)
{
    /* A manager passes its sockets from descriptor 3 on, in a row. */
    int n = tls >= 0 ? 2 : 1;
    if (front < NOTIFY_LISTEN_FDS_START || tls == front ||
        (tls >= 0 && tls < NOTIFY_LISTEN_FDS_START) ||
        (front >= NOTIFY_LISTEN_FDS_START + n) ||
        (tls >= NOTIFY_LISTEN_FDS_START + n)) {
        return BERTH_EIO;
    }
    int fds[2] = {front, tls};
    for (int i = 0; i < n; i++) {
        int flags = fcntl(fds[i], F_GETFD);
        if (flags < 0 || fcntl(fds[i], F_SETFD, flags & ~FD_CLOEXEC) != 0) {
            return BERTH_EIO;
        }
    }
    char pid[24], count[4];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    snprintf(count, sizeof count, "%d", n);
    const char *names = n == 1                             ? "front"
                        : front == NOTIFY_LISTEN_FDS_START ? "front:tls"
                                                           : "tls:front";
    if (setenv("LISTEN_PID", pid, 1) != 0 ||
        setenv("LISTEN_FDS", count, 1) != 0 ||
        setenv("LISTEN_FDNAMES", names, 1) != 0) {
        return BERTH_EIO;
    }
    return 0;
}
