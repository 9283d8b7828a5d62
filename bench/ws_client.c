/* make bench, WebSockets: the timed parts of bench/websocket.py, in C so
 * that the client's own cost stays small beside what it measures. Each
 * mode prints one latency a line, in microseconds, unless said otherwise.
 *
 *   ws_client rtt PORT TARGET N SIZE
 *       one WebSocket opened on TARGET (e.g. /s/room/), then N text
 *       messages of SIZE bytes one after the other, each timed from before
 *       its write to the whole frame that carries it back (frames before
 *       it, such as a chat room's history, are read and not counted).
 *   ws_client put PORT TARGET N SIZE
 *       a peer of rtt over plain HTTP: one keep-alive connection, N PUTs of
 *       SIZE bytes to TARGET one after the other, each from before its
 *       write to the whole reply.
 *   ws_client echo N SIZE
 *       the floor of rtt: a raw TCP echo on loopback, a child process that
 *       writes back what it reads; N round trips of SIZE bytes, each from
 *       before the write to the last byte back.
 *   ws_client sync DIR N SIZE
 *       the floor of a logged message: N appends of SIZE bytes (whole 4 KiB
 *       blocks) over a file in DIR written and synced beforehand, each a
 *       pwrite and an fdatasync, timed together.
 *   ws_client hold PORT PREFIX SHIPS PER_SHIP
 *       SHIPS * PER_SHIP WebSockets, PER_SHIP on /s/PREFIX-i/ for i in 1 ..
 *       SHIPS, opened with epoll, at most 256 at a time; prints "open N"
 *       once all are, then takes commands on stdin: "send I" sends a text
 *       message on socket I (0-based, ship I / PER_SHIP + 1) and prints the
 *       time to the frame that carries it back; "get S" sends GET /s/PREFIX-S/
 * on a fresh connection and prints the time from before the connect to the
 * whole reply; "quit" closes them all. ws_client floor CHAT DIR N SIZE the
 * floor of a message to a sleeping chat ship, the same work with no host: a
 * message of SIZE bytes comes in on an open loopback connection; this process
 * posix_spawns CHAT with pipes, BOOTs it from a snapshot of a room with that
 * one member, sends the message as a WEBSOCKET TEXT event, reads the DONE,
 * writes the event's bytes to a file in DIR and fdatasyncs it (the durable log
 * write), and sends the WS_SEND's bytes back as a WebSocket frame; timed from
 *       before the client's write to the whole frame read. STOP and the
 *       program's exit are not timed, as a host answers before its
 *       program exits. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "proto/frame.h"

extern char **environ;

/* The WEBSOCKET event kind, its TEXT what, and the WS_SEND effect kind, as
 * docs/protocol.md numbers them. */
enum { WSC_EVENT_WEBSOCKET = 8, WSC_WS_TEXT = 2, WSC_EFFECT_WS_SEND = 9 };

static void die(const char *f, ...) __attribute__((format(printf, 1, 2)));

static void die(const char *f, ...)
{
    va_list ap;
    fprintf(stderr, "ws_client: ");
    va_start(ap, f);
    vfprintf(stderr, f, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

static bool write_all(int fd, const void *p, size_t len)
{
    const uint8_t *b = p;
    while (len > 0) {
        ssize_t n = write(fd, b, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        b += n;
        len -= (size_t)n;
    }
    return true;
}

static bool read_all(int fd, void *p, size_t len)
{
    uint8_t *b = p;
    while (len > 0) {
        ssize_t n = read(fd, b, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        b += n;
        len -= (size_t)n;
    }
    return true;
}

static void nodelay(int s)
{
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    return a;
}

/* The upgrade request for target; the key is fixed, as the bench does not
 * check the accept header (the host's tests do). */
static int upgrade_request(char *out, size_t size, const char *target)
{
    return snprintf(out, size,
                    "GET %s HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                    target);
}

/* Whether an upgrade response in buf[0..n) (NUL-terminated) is complete;
 * *ok says whether it is a 101, *head_len how many bytes it took. */
static bool upgrade_done(const char *buf, size_t n, bool *ok, size_t *head_len)
{
    const char *end = strstr(buf, "\r\n\r\n");
    if (end == NULL) {
        return false;
    }
    *ok = n > 12 && strncmp(buf + 9, "101", 3) == 0;
    *head_len = (size_t)(end + 4 - buf);
    return true;
}

/* Open a WebSocket on target, blocking; returns the socket. */
static int ws_open(int port, const char *target)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = loopback(port);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        die("connect: %s", strerror(errno));
    }
    nodelay(s);
    char req[512], resp[2048];
    int len = upgrade_request(req, sizeof req, target);
    if (!write_all(s, req, (size_t)len)) {
        die("write the upgrade: %s", strerror(errno));
    }
    size_t have = 0, head;
    bool ok;
    for (;;) {
        /* One byte at a time: nothing after the head may be taken. */
        if (have == sizeof resp - 1 || read(s, resp + have, 1) != 1) {
            die("no upgrade response");
        }
        resp[++have] = '\0';
        if (upgrade_done(resp, have, &ok, &head)) {
            break;
        }
    }
    if (!ok) {
        die("upgrade refused: %.*s", (int)strcspn(resp, "\r"), resp);
    }
    return s;
}

/* Send one masked text frame of n bytes (a client's frames are masked). */
static bool ws_send_text(int s, const char *p, size_t n)
{
    uint8_t f[16 + 65536];
    size_t h = 0;
    if (n > 65535) {
        return false;
    }
    f[h++] = 0x81;
    if (n < 126) {
        f[h++] = (uint8_t)(0x80 | n);
    } else {
        f[h++] = 0x80 | 126;
        f[h++] = (uint8_t)(n >> 8);
        f[h++] = (uint8_t)n;
    }
    static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(f + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++) {
        f[h + i] = (uint8_t)p[i] ^ mask[i % 4];
    }
    return write_all(s, f, h + n);
}

/* Read one whole frame from the server (unmasked) into buf; returns its
 * payload length, or -1. */
static long ws_read_frame(int s, uint8_t *buf, size_t cap)
{
    uint8_t h[8];
    if (!read_all(s, h, 2)) {
        return -1;
    }
    uint64_t n = h[1] & 0x7f;
    if (n == 126) {
        if (!read_all(s, h, 2)) {
            return -1;
        }
        n = (uint64_t)h[0] << 8 | h[1];
    } else if (n == 127) {
        if (!read_all(s, h, 8)) {
            return -1;
        }
        n = 0;
        for (int i = 0; i < 8; i++) {
            n = n << 8 | h[i];
        }
    }
    if (n > cap || !read_all(s, buf, (size_t)n)) {
        return -1;
    }
    return (long)n;
}

/* A message of size bytes whose start names it: this process and i, so
 * that no message of an earlier run (a chat room's history, sent to every
 * new member) can pass for it. */
static void message(char *out, size_t size, long i)
{
    memset(out, 'm', size);
    char head[48];
    int n = snprintf(head, sizeof head, "%ld.%ld ", (long)getpid(), i);
    memcpy(out, head, (size_t)n < size ? (size_t)n : size);
}

/* Read frames from s until one carries msg's name (its start, up to the
 * first space): frames that come before it (history, other members' lines)
 * are not its answer. Returns false when the socket fails. */
static bool ws_read_answer(int s, const char *msg, size_t size, uint8_t *in,
                           size_t cap)
{
    const char *sp = memchr(msg, ' ', size);
    size_t name = sp != NULL ? (size_t)(sp - msg) + 1 : size;
    for (;;) {
        long n = ws_read_frame(s, in, cap);
        if (n < 0) {
            return false;
        }
        if (memmem(in, (size_t)n, msg, name) != NULL) {
            return true;
        }
    }
}

static void print_us(double s)
{
    printf("%.1f\n", s * 1e6);
}

static int mode_rtt(int port, const char *target, long n, size_t size)
{
    int s = ws_open(port, target);
    char *msg = malloc(size);
    static uint8_t in[1 << 20];
    for (long i = 0; i < n; i++) {
        message(msg, size, i);
        double t0 = now_s();
        if (!ws_send_text(s, msg, size) ||
            !ws_read_answer(s, msg, size, in, sizeof in)) {
            die("round trip %ld failed", i);
        }
        print_us(now_s() - t0);
    }
    free(msg);
    close(s);
    return 0;
}

static int mode_put(int port, const char *target, long n, size_t size)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = loopback(port);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        die("connect: %s", strerror(errno));
    }
    nodelay(s);
    char *req = malloc(size + 256);
    for (long i = 0; i < n; i++) {
        int h = snprintf(req, 256,
                         "PUT %s HTTP/1.1\r\nHost: bench\r\n"
                         "Content-Length: %zu\r\n\r\n",
                         target, size);
        message(req + h, size, i);
        double t0 = now_s();
        int status = bench_http_call(s, req, (size_t)h + size);
        if (status != 200 && status != 201) {
            die("PUT %ld answered %d", i, status);
        }
        print_us(now_s() - t0);
    }
    free(req);
    close(s);
    return 0;
}

static int mode_echo(long n, size_t size)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = loopback(0);
    socklen_t alen = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(l, 1) != 0 || getsockname(l, (struct sockaddr *)&a, &alen)) {
        die("echo listener: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid == 0) {
        int c = accept(l, NULL, NULL);
        nodelay(c);
        char b[65536];
        ssize_t r;
        while ((r = read(c, b, sizeof b)) > 0) {
            if (!write_all(c, b, (size_t)r)) {
                break;
            }
        }
        _exit(0);
    }
    close(l);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        die("echo connect: %s", strerror(errno));
    }
    nodelay(s);
    char *msg = malloc(size), *back = malloc(size);
    for (long i = 0; i < n; i++) {
        message(msg, size, i);
        double t0 = now_s();
        if (!write_all(s, msg, size) || !read_all(s, back, size)) {
            die("echo round trip %ld failed", i);
        }
        print_us(now_s() - t0);
    }
    close(s);
    waitpid(pid, NULL, 0);
    free(msg);
    free(back);
    return 0;
}

/* A GET of target on a fresh connection, from before the connect to the
 * whole reply; returns seconds. */
static double fresh_get(int port, const char *target)
{
    char req[256];
    int len = snprintf(req, sizeof req,
                       "GET %s HTTP/1.1\r\nHost: bench\r\n\r\n", target);
    double t0 = now_s();
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = loopback(port);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        die("connect: %s", strerror(errno));
    }
    nodelay(s);
    int status = bench_http_call(s, req, (size_t)len);
    double dt = now_s() - t0;
    close(s);
    if (status != 200) {
        die("GET %s answered %d", target, status);
    }
    return dt;
}

/* --- hold: many sockets at once. --- */

struct held {
    int fd;
    int state; /* 0 not started, 1 connecting, 2 reading the response, 3
                  open */
    size_t have;
    char resp[512];
};

static void hold_start(int ep, struct held *h, int port, long i)
{
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (h->fd < 0) {
        die("socket %ld: %s", i, strerror(errno));
    }
    struct sockaddr_in a = loopback(port);
    if (connect(h->fd, (struct sockaddr *)&a, sizeof a) != 0 &&
        errno != EINPROGRESS) {
        die("connect %ld: %s", i, strerror(errno));
    }
    h->state = 1;
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, h->fd, &ev) != 0) {
        die("epoll_ctl: %s", strerror(errno));
    }
}

/* Move socket i along; returns true once it is open. */
static bool hold_step(int ep, struct held *h, const char *prefix, long i,
                      long per_ship)
{
    if (h->state == 1) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err != 0) {
            die("connect %ld: %s", i, strerror(err));
        }
        char target[128], req[512];
        snprintf(target, sizeof target, "/s/%s-%ld/", prefix, i / per_ship + 1);
        int len = upgrade_request(req, sizeof req, target);
        /* A fresh socket's buffer takes the request whole. */
        if (write(h->fd, req, (size_t)len) != len) {
            die("upgrade %ld: %s", i, strerror(errno));
        }
        h->state = 2;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
        epoll_ctl(ep, EPOLL_CTL_MOD, h->fd, &ev);
        return false;
    }
    ssize_t n = read(h->fd, h->resp + h->have, sizeof h->resp - 1 - h->have);
    if (n < 0 && errno == EAGAIN) {
        return false;
    }
    if (n <= 0) {
        die("socket %ld closed during the upgrade", i);
    }
    h->have += (size_t)n;
    h->resp[h->have] = '\0';
    bool ok;
    size_t head;
    if (!upgrade_done(h->resp, h->have, &ok, &head)) {
        if (h->have == sizeof h->resp - 1) {
            die("socket %ld: upgrade response too long", i);
        }
        return false;
    }
    if (!ok) {
        die("socket %ld refused: %s", i, h->resp);
    }
    /* A fresh room sends no history, so nothing follows the head yet. */
    if (head != h->have) {
        die("socket %ld: bytes after the upgrade response", i);
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, h->fd, NULL);
    int fl = fcntl(h->fd, F_GETFL);
    fcntl(h->fd, F_SETFL, fl & ~O_NONBLOCK);
    nodelay(h->fd);
    h->state = 3;
    return true;
}

static int mode_hold(int port, const char *prefix, long ships, long per_ship)
{
    long n = ships * per_ship;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((long)rl.rlim_cur < n + 16) {
        die("%ld sockets need a descriptor limit above %ld", n,
            (long)rl.rlim_cur);
    }
    struct held *hs = calloc((size_t)n, sizeof *hs);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    long next = 0, open = 0, busy = 0;
    while (open < n) {
        while (busy < 256 && next < n) {
            hold_start(ep, &hs[next], port, next);
            next++;
            busy++;
        }
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 60000);
        if (k == 0) {
            die("no progress in 60 s with %ld of %ld open", open, n);
        }
        for (int j = 0; j < k; j++) {
            long i = (long)evs[j].data.u64;
            if (hold_step(ep, &hs[i], prefix, i, per_ship)) {
                open++;
                busy--;
            }
        }
    }
    printf("open %ld\n", open);
    fflush(stdout);
    char line[128];
    char *msg = malloc(65536);
    static uint8_t in[1 << 20];
    while (fgets(line, sizeof line, stdin) != NULL) {
        long i, size = 64;
        if (strncmp(line, "quit", 4) == 0) {
            break;
        }
        if (sscanf(line, "get %ld", &i) == 1) {
            char target[128];
            snprintf(target, sizeof target, "/s/%s-%ld/", prefix, i);
            print_us(fresh_get(port, target));
            fflush(stdout);
            continue;
        }
        if (sscanf(line, "send %ld %ld", &i, &size) < 1 || i < 0 || i >= n ||
            size < 1 || size > 65535) {
            die("bad command: %s", line);
        }
        message(msg, (size_t)size, i);
        double t0 = now_s();
        if (!ws_send_text(hs[i].fd, msg, (size_t)size) ||
            !ws_read_answer(hs[i].fd, msg, (size_t)size, in, sizeof in)) {
            die("message on socket %ld failed", i);
        }
        print_us(now_s() - t0);
        fflush(stdout);
    }
    free(msg);
    for (long i = 0; i < n; i++) {
        close(hs[i].fd);
    }
    free(hs);
    close(ep);
    return 0;
}

/* --- floor: a wake of chat on one message, without a host. --- */

static int read_frame(int fd, struct buf *b, struct frame *f)
{
    b->len = 0;
    for (;;) {
        size_t used;
        int rv = frame_split(b->data, b->len, FRAME_MAX_DEFAULT, f, &used);
        if (rv == 0) {
            return 0;
        }
        if (rv != BERTH_EPARTIAL || buf_reserve(b, 65536) != 0) {
            return -1;
        }
        ssize_t n = read(fd, b->data + b->len, 65536);
        if (n <= 0) {
            return -1;
        }
        b->len += (size_t)n;
    }
}

/* A room with one member, conn, and no messages: chat's "CH1" snapshot. */
static void room_snapshot(struct buf *b, uint64_t conn)
{
    buf_append(b, "CH1\n", 4);
    buf_put_u32(b, (uint32_t)(conn >> 32));
    buf_put_u64(b, 1);
    buf_put_u32(b, 1);
    buf_put_u64(b, conn);
    buf_put_u32(b, 0);
}

/* One floor measure; returns seconds. */
static double floor_once(const char *chat, int log_fd, int client, int srv,
                         const struct buf *snap, size_t size, long i)
{
    static const uint64_t conn = 0x0000000100000001ull;
    char *msg = malloc(size);
    uint8_t *in = malloc(size + 16);
    struct buf b, r;
    buf_init(&b);
    buf_init(&r);
    message(msg, size, i);
    double t0 = now_s();
    if (!ws_send_text(client, msg, size)) {
        die("floor: client write");
    }
    /* The host's side: read the frame, unmask it. */
    uint8_t h[8];
    if (!read_all(srv, h, 2)) {
        die("floor: read");
    }
    size_t n = h[1] & 0x7f;
    if (n == 126) {
        read_all(srv, h, 2);
        n = (size_t)h[0] << 8 | h[1];
    }
    uint8_t mask[4];
    if (n != size || !read_all(srv, mask, 4) || !read_all(srv, in, n)) {
        die("floor: bad frame");
    }
    for (size_t k = 0; k < n; k++) {
        in[k] ^= mask[k % 4];
    }
    int to[2], from[2];
    pid_t pid;
    if (pipe2(to, O_CLOEXEC) != 0 || pipe2(from, O_CLOEXEC) != 0) {
        die("pipe: %s", strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to[0], 0);
    posix_spawn_file_actions_adddup2(&fa, from[1], 1);
    char *argv[] = {(char *)chat, NULL};
    if (posix_spawn(&pid, chat, &fa, NULL, argv, environ) != 0) {
        die("cannot spawn %s", chat);
    }
    posix_spawn_file_actions_destroy(&fa);
    close(to[0]);
    close(from[1]);
    struct frame_boot boot = {.id = "floor",
                              .id_len = 5,
                              .snapshot_event = 1,
                              .snapshot = snap->data,
                              .snapshot_len = snap->len};
    frame_encode_boot(&b, &boot);
    struct frame f;
    if (!write_all(to[1], b.data, b.len) || read_frame(from[0], &r, &f) != 0 ||
        f.type != FRAME_READY || f.body_len != 1 || f.body[0] != 1) {
        die("floor: chat did not accept the snapshot");
    }
    struct buf p;
    buf_init(&p);
    buf_put_u64(&p, conn);
    buf_put_u8(&p, WSC_WS_TEXT);
    buf_append(&p, in, n);
    struct frame_event ev = {.number = 2,
                             .time_ns = 1,
                             .kind = WSC_EVENT_WEBSOCKET,
                             .payload = p.data,
                             .payload_len = p.len};
    b.len = 0;
    frame_encode_event(&b, &ev);
    struct frame_done d;
    struct frame_effect e;
    size_t off = 0;
    if (!write_all(to[1], b.data, b.len) || read_frame(from[0], &r, &f) != 0 ||
        frame_decode_done(&f, &d) != 0 ||
        frame_effects_next(&d, &off, &e) != 0 || e.kind != WSC_EFFECT_WS_SEND ||
        e.len < 9) {
        die("floor: chat did not answer with a WS_SEND");
    }
    /* Durable before it leaves: the event's bytes, written and synced. */
    if (!write_all(log_fd, b.data, b.len) || fdatasync(log_fd) != 0) {
        die("floor: log write: %s", strerror(errno));
    }
    size_t out_len = e.len - 9;
    uint8_t head[4] = {0x81, 0, 0, 0};
    size_t hl = 2;
    if (out_len < 126) {
        head[1] = (uint8_t)out_len;
    } else {
        head[1] = 126;
        head[2] = (uint8_t)(out_len >> 8);
        head[3] = (uint8_t)out_len;
        hl = 4;
    }
    static uint8_t back[1 << 16];
    if (!write_all(srv, head, hl) || !write_all(srv, e.data + 9, out_len) ||
        ws_read_frame(client, back, sizeof back) != (long)out_len) {
        die("floor: reply");
    }
    double dt = now_s() - t0;
    b.len = 0;
    frame_encode_stop(&b);
    write_all(to[1], b.data, b.len);
    close(to[1]);
    close(from[0]);
    waitpid(pid, NULL, 0);
    buf_free(&p);
    buf_free(&b);
    buf_free(&r);
    free(msg);
    free(in);
    return dt;
}

static int mode_floor(const char *chat, const char *dir, long n, size_t size)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/floor.log", dir);
    int log_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log_fd < 0) {
        die("%s: %s", path, strerror(errno));
    }
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = loopback(0);
    socklen_t alen = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(l, 1) != 0 || getsockname(l, (struct sockaddr *)&a, &alen)) {
        die("floor listener: %s", strerror(errno));
    }
    int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(client, (struct sockaddr *)&a, sizeof a) != 0) {
        die("floor connect: %s", strerror(errno));
    }
    int srv = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    nodelay(client);
    nodelay(srv);
    struct buf snap;
    buf_init(&snap);
    room_snapshot(&snap, 0x0000000100000001ull);
    for (long i = 0; i < n; i++) {
        print_us(floor_once(chat, log_fd, client, srv, &snap, size, i));
    }
    buf_free(&snap);
    close(client);
    close(srv);
    close(l);
    close(log_fd);
    unlink(path);
    return 0;
}

/* --- sync: the floor of a logged message, one durable write. --- */

static int mode_sync(const char *dir, long n, size_t size)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/ws_client-sync.%ld", dir, (long)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    /* Whole blocks over a file written and synced beforehand: the least a
     * durable append costs (no size or extent change to sync with it). */
    size_t block = (size + 4095) / 4096 * 4096;
    off_t span = 8 << 20;
    char *b = calloc(1, block);
    if (fd < 0) {
        die("sync file %s: %s", path, strerror(errno));
    }
    for (off_t at = 0; at < span; at += (off_t)block) {
        if (pwrite(fd, b, block, at) != (ssize_t)block) {
            die("sync file %s: %s", path, strerror(errno));
        }
    }
    if (fsync(fd) != 0) {
        die("sync file %s: %s", path, strerror(errno));
    }
    for (long i = 0; i < n; i++) {
        message(b, size, i);
        off_t at = (off_t)((size_t)i * block) % span;
        double t0 = now_s();
        if (pwrite(fd, b, block, at) != (ssize_t)block || fdatasync(fd) != 0) {
            die("sync %ld: %s", i, strerror(errno));
        }
        print_us(now_s() - t0);
    }
    free(b);
    close(fd);
    unlink(path);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 6 && strcmp(argv[1], "rtt") == 0) {
        return mode_rtt(atoi(argv[2]), argv[3], atol(argv[4]),
                        (size_t)atol(argv[5]));
    }
    if (argc == 6 && strcmp(argv[1], "put") == 0) {
        return mode_put(atoi(argv[2]), argv[3], atol(argv[4]),
                        (size_t)atol(argv[5]));
    }
    if (argc == 4 && strcmp(argv[1], "echo") == 0) {
        return mode_echo(atol(argv[2]), (size_t)atol(argv[3]));
    }
    if (argc == 6 && strcmp(argv[1], "hold") == 0) {
        return mode_hold(atoi(argv[2]), argv[3], atol(argv[4]), atol(argv[5]));
    }
    if (argc == 6 && strcmp(argv[1], "floor") == 0) {
        return mode_floor(argv[2], argv[3], atol(argv[4]),
                          (size_t)atol(argv[5]));
    }
    if (argc == 5 && strcmp(argv[1], "sync") == 0) {
        return mode_sync(argv[2], atol(argv[3]), (size_t)atol(argv[4]));
    }
    fprintf(stderr,
            "usage: ws_client rtt PORT TARGET N SIZE | put PORT TARGET N SIZE "
            "| echo N SIZE | sync DIR N SIZE | hold "
            "PORT PREFIX SHIPS PER_SHIP | floor CHAT DIR N SIZE\n");
    return 2;
}
