/* A blocking HTTP/1.1 client for the CLI and tests: one request per
 * connection, the response parsed with llhttp. */
#include <errno.h>
#include <llhttp.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"
#include "lib/err.h"
#include "lib/mem.h"

struct client__resp {
    struct buf *body;
    bool done;
    bool oom;
};

static int client__on_body(llhttp_t *l, const char *at, size_t n)
{
    struct client__resp *r = l->data;
    if (buf_append(r->body, at, n) != 0) {
        r->oom = true;
        return -1;
    }
    return 0;
}

static int client__on_complete(llhttp_t *l)
{
    struct client__resp *r = l->data;
    r->done = true;
    return 0;
}

static long client__ms_left(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (deadline->tv_sec - now.tv_sec) * 1000 +
           (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Wait for fd to be ready; 0, or BERTH_ETIMEOUT. */
static int client__wait(int fd, short events, unsigned timeout_ms,
                        const struct timespec *deadline)
{
    if (timeout_ms == 0) {
        return 0;
    }
    for (;;) {
        long left = client__ms_left(deadline);
        if (left <= 0) {
            return BERTH_ETIMEOUT;
        }
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, (int)left);
        if (n > 0) {
            return 0;
        }
        if (n < 0 && errno != EINTR) {
            return BERTH_EIO;
        }
    }
}

static int client__connect(const char *endpoint, char *errmsg)
{
    int fd;
    if (strncmp(endpoint, "unix:", 5) == 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        const char *path = endpoint + 5;
        if (strlen(path) >= sizeof sa.sun_path) {
            err_printf(errmsg, "socket path too long: %s", path);
            return BERTH_EINVAL;
        }
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            err_printf(errmsg, "cannot connect to %s: %s", endpoint,
                       strerror(errno));
            if (fd >= 0) {
                close(fd);
            }
            return BERTH_EIO;
        }
        return fd;
    }
    char host[256];
    const char *colon = strrchr(endpoint, ':');
    if (colon == NULL || (size_t)(colon - endpoint) >= sizeof host) {
        err_printf(errmsg, "%s is not unix:PATH or HOST:PORT", endpoint);
        return BERTH_EINVAL;
    }
    const char *h = endpoint;
    size_t hl = (size_t)(colon - endpoint);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        err_printf(errmsg, "cannot resolve %s: %s", endpoint, gai_strerror(rc));
        return BERTH_EINVAL;
    }
    fd = -1;
    int saved = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            break;
        }
        saved = errno;
        if (fd >= 0) {
            close(fd);
        }
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        err_printf(errmsg, "cannot connect to %s: %s", endpoint,
                   strerror(saved));
        return BERTH_EIO;
    }
    return fd;
}

int http_client_request(const char *endpoint, const char *method,
                        const char *target, const void *body, size_t len,
                        unsigned timeout_ms, int *status, struct buf *resp,
                        char *errmsg)
{
    return http_client_request_ex(endpoint, method, target, NULL, body, len,
                                  timeout_ms, status, resp, errmsg);
}

int http_client_request_ex(const char *endpoint, const char *method,
                           const char *target, const char *extra_headers,
                           const void *body, size_t len, unsigned timeout_ms,
                           int *status, struct buf *resp, char *errmsg)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }

    int fd = client__connect(endpoint, errmsg);
    if (fd < 0) {
        return fd;
    }
    int rv;
    struct buf req;
    buf_init(&req);
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n"
                     "%sContent-Length: %zu\r\n\r\n",
                     method, target, extra_headers ? extra_headers : "", len);
    if (n < 0 || (size_t)n >= sizeof head) {
        err_printf(errmsg, "request target too long");
        rv = BERTH_EINVAL;
        goto out;
    }
    if (buf_append(&req, head, (size_t)n) != 0 ||
        buf_append(&req, body, len) != 0) {
        err_printf(errmsg, "out of memory");
        rv = BERTH_ENOMEM;
        goto out;
    }
    size_t off = 0;
    while (off < req.len) {
        rv = client__wait(fd, POLLOUT, timeout_ms, &deadline);
        if (rv != 0) {
            err_printf(errmsg, "timed out sending to %s", endpoint);
            goto out;
        }
        ssize_t w = send(fd, req.data + off, req.len - off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            /* The server may have answered early (413) and closed. */
            break;
        }
        off += (size_t)w;
    }

    llhttp_settings_t settings;
    llhttp_settings_init(&settings);
    settings.on_body = client__on_body;
    settings.on_message_complete = client__on_complete;
    llhttp_t parser;
    llhttp_init(&parser, HTTP_RESPONSE, &settings);
    struct client__resp r = {.body = resp};
    parser.data = &r;
    char chunk[16384];
    while (!r.done) {
        rv = client__wait(fd, POLLIN, timeout_ms, &deadline);
        if (rv != 0) {
            err_printf(errmsg, "timed out waiting for %s", endpoint);
            goto out;
        }
        ssize_t got = recv(fd, chunk, sizeof chunk, 0);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            if (llhttp_finish(&parser) == HPE_OK && r.done) {
                break;
            }
            err_printf(errmsg, "%s closed the connection before answering",
                       endpoint);
            rv = BERTH_EIO;
            goto out;
        }
        if (llhttp_execute(&parser, chunk, (size_t)got) != HPE_OK) {
            err_printf(errmsg,
                       r.oom ? "out of memory" : "malformed response from %s",
                       endpoint);
            rv = r.oom ? BERTH_ENOMEM : BERTH_EMALFORMED;
            goto out;
        }
    }
    *status = llhttp_get_status_code(&parser);
    rv = 0;
out:
    buf_free(&req);
    close(fd);
    return rv;
}
