/* make bench, idling at scale: what a host pays for ships that do nothing
 * and for waking them, each figure beside a floor measured in the same run.
 *
 *   registry  BENCH_SHIPS never-run kv ships, created BENCH_BATCH per call:
 *             call time, host RSS, registry and disk per ship. Floor for a
 *             call: the key pairs it must derive plus one write+fdatasync of
 *             32 bytes a ship, done here.
 *   restart   SIGTERM, start again: spawn to /healthz 200, start_ms and RSS.
 *             Floor: the same restart of a host with no ships.
 *   wake      an asleep ship (snapshot, no events) to the full HTTP reply,
 *             one at a time. Floor: posix_spawn of kv, BOOT with the same
 *             snapshot, READY, one EVENT, DONE, from this small process.
 *   thaw      a frozen ship to the full reply. Floor: the same GET to an
 *             awake ship.
 *   awake     BENCH_AWAKE ships awake at once: host RSS and program memory
 *             per ship. Floor for the latter: one kv alone, same measure.
 *   storm     BENCH_STORM asleep ships, one GET each, written at once.
 *   harden    what programs' hardening costs a wake: BENCH_HARDEN_WAKES
 *             asleep ships of a small host of their own woken one at a
 *             time, over BENCH_HARDEN_ROUNDS rounds, with hardening whole,
 *             with each part alone (BERTH_HARDEN), whole with a uid of
 *             its own for each program (--program-uids) and with
 *             --no-harden,
 *             the configurations in turn and their order turning round
 *             after round. Floor: --no-harden. BENCH_HARDEN_ONLY=1 runs
 *             this step alone; BENCH_HARDEN=off runs the steps before
 *             it with --no-harden.
 *
 * usage: idle_bench BERTH KV DATA_DIR
 * The host's data goes to DATA_DIR/host, its stderr to DATA_DIR/host.log. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "bench.h"
#include "http/http.h"
#include "lib/buf.h"
#include "proto/frame.h"

extern char **environ;

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? atol(v) : def;
}

/* --- Rows: figure | value | floor | ratio | target. --- */

/* Formatted cells live in a ring of buffers, enough for a few rows. */
static char *fmt(const char *f, ...)
{
    static char ring[64][64];
    static unsigned next;
    char *b = ring[next++ % 64];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof ring[0], f, ap);
    va_end(ap);
    return b;
}

static char *fmt_ms(double s)
{
    return fmt("%.3f ms", s * 1e3);
}

static char *fmt_s(double s)
{
    return fmt("%.3f s", s);
}

static char *fmt_bytes(double b)
{
    if (b >= 1024.0 * 1024 * 1024) {
        return fmt("%.2f GiB", b / (1024.0 * 1024 * 1024));
    }
    if (b >= 1024.0 * 1024) {
        return fmt("%.1f MiB", b / (1024.0 * 1024));
    }
    if (b >= 1024.0) {
        return fmt("%.2f KiB", b / 1024.0);
    }
    return fmt("%.0f B", b);
}

static char *fmt_ratio(double value, double floor)
{
    return floor > 0 ? fmt("%.2fx", value / floor) : "-";
}

/* Targets missed and things that went wrong, for the last line. */
static int missed, problems;

/* "<= LIMIT ok" or "<= LIMIT MISSED"; a missed target is counted. */
static char *target(double value, double limit, const char *limit_text)
{
    bool ok = value <= limit;
    missed += !ok;
    return fmt("<= %s %s", limit_text, ok ? "ok" : "MISSED");
}

static void table_head(void)
{
    printf("  %-34s %18s %14s %8s  %s\n", "", "value", "floor", "ratio",
           "target");
}

static void row(const char *what, const char *value, const char *floor,
                const char *ratio, const char *tgt)
{
    printf("  %-34s %18s %14s %8s  %s\n", what, value, floor ? floor : "-",
           ratio ? ratio : "", tgt ? tgt : "");
}

/* Something that should not happen: said beside the figures, and counted. */
static void problem(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    printf("  PROBLEM: ");
    vprintf(f, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    problems++;
}

/* --- A host under test, with its log kept for when it misbehaves. --- */

static pid_t host_pid;
static int host_port;
static char front_ep[64], admin_ep[4200], host_log[4200];

static void log_tail(void)
{
    FILE *f = fopen(host_log, "r");
    if (f == NULL) {
        return;
    }
    /* The last lines are what explain a failure; keep a ring of 20. */
    static char lines[20][1024];
    unsigned n = 0;
    while (fgets(lines[n % 20], sizeof lines[0], f) != NULL) {
        n++;
    }
    fclose(f);
    fprintf(stderr, "idle_bench: last lines of %s:\n", host_log);
    for (unsigned i = n > 20 ? n - 20 : 0; i < n; i++) {
        fprintf(stderr, "  %s", lines[i % 20]);
    }
}

/* Say whether the host has exited, reaping it if so. */
static bool host_gone(int *wstatus)
{
    if (host_pid > 0 && waitpid(host_pid, wstatus, WNOHANG) == host_pid) {
        host_pid = 0;
        return true;
    }
    return false;
}

static void die(const char *f, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "idle_bench: ");
    va_start(ap, f);
    vfprintf(stderr, f, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    int st;
    if (host_gone(&st)) {
        fprintf(stderr, "idle_bench: the host exited (%s %d)\n",
                WIFSIGNALED(st) ? "signal" : "status",
                WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    }
    if (host_log[0] != '\0') {
        log_tail();
    }
    exit(1);
}

/* Stop the host: SIGTERM, then wait for it. Returns the seconds it took. */
static double host_stop(void)
{
    if (host_pid <= 0) {
        return 0;
    }
    double t0 = now_s();
    int st = 0;
    kill(host_pid, SIGTERM);
    waitpid(host_pid, &st, 0);
    host_pid = 0;
    double dt = now_s() - t0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        problem("host stopped with %s %d (log: %s)",
                WIFSIGNALED(st) ? "signal" : "status",
                WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), host_log);
    }
    return dt;
}

static void host_stop_atexit(void)
{
    if (host_pid > 0) {
        kill(host_pid, SIGTERM);
        waitpid(host_pid, NULL, 0);
        host_pid = 0;
    }
}

static void on_signal(int sig)
{
    if (host_pid > 0) {
        kill(host_pid, SIGTERM);
        waitpid(host_pid, NULL, 0);
    }
    _exit(128 + sig);
}

/* How the next host started hardens its programs: NULL, all of it (the
 * default); "off", --no-harden; "uids", all of it with a uid each
 * (--program-uids); otherwise the parts BERTH_HARDEN keeps. */
static const char *host_harden;

/* Start `berth serve` on data with the bench's timeouts (nothing freezes or
 * sleeps on its own unless a ship asks) and return the seconds from spawn to
 * the first /healthz 200, as a client sees it. */
static double host_start(const char *berth, const char *data)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(s, (struct sockaddr *)&a, sizeof a);
    getsockname(s, (struct sockaddr *)&a, &len);
    host_port = ntohs(a.sin_port);
    close(s);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", host_port);
    snprintf(front_ep, sizeof front_ep, "127.0.0.1:%d", host_port);
    snprintf(admin_ep, sizeof admin_ep, "unix:%s/admin.sock", data);
    /* The storm's 10,000 connections come from one address, and wait
     * idle until every one is open. */
    char *argv[] = {(char *)berth,
                    "serve",
                    "--data",
                    (char *)data,
                    "--listen",
                    listen,
                    "--freeze-timeout",
                    "0",
                    "--idle-timeout",
                    "600000",
                    "--max-conns-per-addr",
                    "0",
                    "--max-idle-conns",
                    "0",
                    NULL,
                    NULL,
                    NULL};
    /* The host reads BERTH_HARDEN from the environment it inherits. */
    unsetenv("BERTH_HARDEN");
    if (host_harden != NULL && strcmp(host_harden, "off") == 0) {
        argv[sizeof argv / sizeof *argv - 3] = "--no-harden";
    } else if (host_harden != NULL && strcmp(host_harden, "uids") == 0) {
        argv[sizeof argv / sizeof *argv - 3] = "--program-uids";
        argv[sizeof argv / sizeof *argv - 2] = "400000-465535";
    } else if (host_harden != NULL) {
        setenv("BERTH_HARDEN", host_harden, 1);
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, host_log,
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    double t0 = now_s();
    if (posix_spawn(&host_pid, berth, &fa, NULL, argv, environ) != 0) {
        die("cannot spawn %s: %s", berth, strerror(errno));
    }
    posix_spawn_file_actions_destroy(&fa);
    /* Poll often: a 2 ms step is noise beside a start of seconds. */
    while (now_s() - t0 < 300) {
        struct buf b;
        char err[256];
        int status = 0, st;
        buf_init(&b);
        int rv = http_client_request(front_ep, "GET", "/healthz", NULL, 0, 1000,
                                     &status, &b, err);
        buf_free(&b);
        if (rv == 0 && status == 200) {
            return now_s() - t0;
        }
        if (host_gone(&st)) {
            die("the host exited while starting on %s", data);
        }
        usleep(2000);
    }
    die("the host on %s was not ready after 300 s", data);
    return 0;
}

/* --- The admin API. --- */

static json_t *admin_try(const char *method, const char *target_,
                         const char *body, int *status, char *err)
{
    struct buf b;
    buf_init(&b);
    *status = 0;
    if (http_client_request(admin_ep, method, target_, body,
                            body ? strlen(body) : 0, 0, status, &b, err) != 0) {
        buf_free(&b);
        return NULL;
    }
    json_t *v = json_loadb((const char *)b.data, b.len, 0, NULL);
    if (*status >= 300 || v == NULL) {
        snprintf(err, 256, "%.*s", (int)(b.len < 200 ? b.len : 200),
                 (const char *)b.data);
        json_decref(v);
        v = NULL;
    }
    buf_free(&b);
    return v;
}

static json_t *admin(const char *method, const char *target_, const char *body)
{
    char err[256] = "";
    int status;
    json_t *v = admin_try(method, target_, body, &status, err);
    if (v == NULL) {
        die("%s %s failed: %d %s", method, target_, status, err);
    }
    return v;
}

static json_t *stats(void)
{
    return admin("GET", "/v1/stats", NULL);
}

/* A number in o by dotted path ("states.frozen"); 0 when absent. */
static double jnum(json_t *o, const char *path)
{
    char key[64];
    while (o != NULL) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, path);
        o = json_object_get(o, key);
        if (path[n] == '\0') {
            return json_number_value(o);
        }
        path += n + 1;
    }
    return 0;
}

/* Create count ships in one call; returns the answer ({"created", "ids"})
 * and the call's seconds in *secs. name may be NULL; freeze and idle are
 * per ship, 0 meaning the host's. */
static json_t *create_ships(const char *kv, const char *name, long count,
                            long idle_ms, long freeze_ms, double *secs)
{
    json_t *spec =
        json_pack("{s:s, s:I}", "program", kv, "count", (json_int_t)count);
    if (name != NULL) {
        json_object_set_new(spec, "name", json_string(name));
    }
    if (idle_ms) {
        json_object_set_new(spec, "idle_timeout_ms", json_integer(idle_ms));
    }
    if (freeze_ms) {
        json_object_set_new(spec, "freeze_timeout_ms", json_integer(freeze_ms));
    }
    char *body = json_dumps(spec, JSON_COMPACT);
    json_decref(spec);
    double t0 = now_s();
    json_t *r = admin("POST", "/v1/ships", body);
    if (secs != NULL) {
        *secs = now_s() - t0;
    }
    free(body);
    if (jnum(r, "created") != (double)count ||
        json_array_size(json_object_get(r, "ids")) != (size_t)count) {
        die("POST /v1/ships with count %ld created %.0f", count,
            jnum(r, "created"));
    }
    return r;
}

/* --- The front door: one request at a time, keep-alive or fresh. --- */

/* A new loopback connection to port, with TCP_NODELAY; -1 if refused. */
static int conn_to(int port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        close(s);
        return -1;
    }
    return s;
}

static int conn_open(void)
{
    int s = conn_to(host_port);
    if (s < 0) {
        die("connect to the front door: %s", strerror(errno));
    }
    return s;
}

/* Whether buf[0..have) (NUL-terminated) holds a whole response; its status
 * in *status. Bodies here are small and always have a Content-Length. */
static bool http_complete(const char *buf, size_t have, int *status)
{
    const char *end = strstr(buf, "\r\n\r\n");
    if (end == NULL) {
        return false;
    }
    const char *cl = strcasestr(buf, "content-length:");
    size_t body = cl != NULL && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
    if (have < (size_t)(end + 4 - buf) + body) {
        return false;
    }
    *status = have > 12 ? atoi(buf + 9) : -1;
    return true;
}

/* Read one whole response from s; returns its status, or -1. */
static int conn_read_reply(int s)
{
    char buf[8192];
    size_t have = 0;
    int status;
    for (;;) {
        ssize_t n = read(s, buf + have, sizeof buf - 1 - have);
        if (n <= 0) {
            return -1;
        }
        have += (size_t)n;
        buf[have] = '\0';
        if (http_complete(buf, have, &status)) {
            return status;
        }
    }
}

/* Send one request and read its response; returns the status, or -1. */
static int conn_call(int s, const char *req, size_t len)
{
    if (write(s, req, len) != (ssize_t)len) {
        return -1;
    }
    return conn_read_reply(s);
}

/* One request on a fresh connection, timed from connect to the full
 * response: what a client that was not already talking to the host sees. */
static double fresh_call(const char *method, const char *path, int *status)
{
    char req[512];
    int len = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: b\r\n\r\n",
                       method, path);
    double t0 = now_s();
    int s = conn_open();
    *status = conn_call(s, req, (size_t)len);
    double dt = now_s() - t0;
    close(s);
    return dt;
}

/* --- Floors computed here, in a process that is small. --- */

/* A program's own memory as the host measures it: resident minus shared
 * pages of /proc/PID/statm. */
static double statm_private(pid_t pid)
{
    char path[64];
    unsigned long long size, resident, shared;
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    int n = fscanf(f, "%llu %llu %llu", &size, &resident, &shared);
    fclose(f);
    return n == 3 ? (double)(resident - shared) * (double)sysconf(_SC_PAGESIZE)
                  : 0;
}

/* Read one frame from fd into buf (cap bytes); 0, or -1 on EOF or error. */
static int read_frame(int fd, uint8_t *buf, size_t cap, struct frame *f)
{
    size_t have = 0, used;
    for (;;) {
        int rv = frame_split(buf, have, cap, f, &used);
        if (rv == 0) {
            return 0;
        }
        if (rv != BERTH_EPARTIAL || have == cap) {
            return -1;
        }
        ssize_t n = read(fd, buf + have, cap - have);
        if (n <= 0) {
            return -1;
        }
        have += (size_t)n;
    }
}

static bool write_all(int fd, const void *p, size_t len)
{
    const uint8_t *b = p;
    while (len > 0) {
        ssize_t n = write(fd, b, len);
        if (n <= 0) {
            return false;
        }
        b += n;
        len -= (size_t)n;
    }
    return true;
}

/* The snapshot a w- ship sleeps with: kv's KV2 format (magic, alarm_ns,
 * fired, then key/value pairs) holding key0 = "x", as PUT made it. */
static struct buf wake_snapshot;

static void wake_snapshot_init(void)
{
    buf_init(&wake_snapshot);
    buf_append(&wake_snapshot, "KV2\n", 4);
    buf_put_u64(&wake_snapshot, 0);
    buf_put_u64(&wake_snapshot, 0);
    buf_put_u32(&wake_snapshot, 4);
    buf_append(&wake_snapshot, "key0", 4);
    buf_put_u32(&wake_snapshot, 1);
    buf_append(&wake_snapshot, "x", 1);
}

/* A loopback listener of this process's own, for the wake floor's fresh
 * connection. */
static int floor_listener = -1;
static int floor_port;

static void floor_listen(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    floor_listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (floor_listener < 0 ||
        bind(floor_listener, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(floor_listener, 16) != 0 ||
        getsockname(floor_listener, (struct sockaddr *)&a, &alen) != 0) {
        die("floor listener: %s", strerror(errno));
    }
    floor_port = ntohs(a.sin_port);
}

/* The floor for a wake, the same work with no host: a fresh loopback
 * connection carries the same GET to this process, which reads it,
 * posix_spawns kv with pipes, BOOTs it from the same snapshot, reads
 * READY, sends the GET as one EVENT, reads its DONE and writes a reply of
 * the same size back, timed until the client has read it all; then close
 * and reap, untimed, as a host answers before its program exits. *mem gets
 * the program's memory then, the floor of awake_memory_bytes. */
static double floor_wake(const char *kv, double *mem)
{
    int in[2], out[2];
    pid_t pid;
    uint8_t r[4096];
    struct frame f;
    if (floor_listener < 0) {
        floor_listen();
    }
    static const char get[] = "GET /s/w-1/k/key0 HTTP/1.1\r\nHost: b\r\n\r\n";
    double t0 = now_s();
    int c = conn_to(floor_port);
    if (c < 0 || !write_all(c, get, sizeof get - 1)) {
        die("floor connection: %s", strerror(errno));
    }
    int srv = accept4(floor_listener, NULL, NULL, SOCK_CLOEXEC);
    char req[512];
    size_t got = 0;
    while (srv >= 0 && got < sizeof get - 1) {
        ssize_t n = read(srv, req + got, sizeof req - got);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    if (got != sizeof get - 1) {
        die("floor connection: the GET did not arrive");
    }
    int one = 1;
    setsockopt(srv, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* O_CLOEXEC: only the dup2'd ends reach the program. */
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
        die("pipe: %s", strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    char *argv[] = {(char *)kv, NULL};
    if (posix_spawn(&pid, kv, &fa, NULL, argv, environ) != 0) {
        die("cannot spawn %s", kv);
    }
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    struct buf b;
    buf_init(&b);
    struct frame_boot boot = {.id = "floor",
                              .id_len = 5,
                              .snapshot_event = 1,
                              .snapshot = wake_snapshot.data,
                              .snapshot_len = wake_snapshot.len};
    frame_encode_boot(&b, &boot);
    bool ok = write_all(in[1], b.data, b.len) &&
              read_frame(out[0], r, sizeof r, &f) == 0 &&
              f.type == FRAME_READY && f.body_len == 1 && f.body[0] == 1;
    if (ok) {
        struct buf payload;
        buf_init(&payload);
        struct frame_http_request hr = {.method = "GET",
                                        .method_len = 3,
                                        .target = "/k/key0",
                                        .target_len = 7};
        frame_encode_http_request(&payload, &hr, NULL);
        struct frame_event ev = {.number = 2,
                                 .time_ns = (uint64_t)time(NULL) * 1000000000u,
                                 .kind = FRAME_EVENT_HTTP,
                                 .payload = payload.data,
                                 .payload_len = payload.len};
        b.len = 0;
        frame_encode_event(&b, &ev);
        buf_free(&payload);
        ok = write_all(in[1], b.data, b.len) &&
             read_frame(out[0], r, sizeof r, &f) == 0 && f.type == FRAME_DONE;
    }
    if (ok) {
        /* The reply as the host writes it for kv's value "x". */
        static const char reply[] =
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            "Content-Length: 1\r\n\r\nx";
        ok = write_all(srv, reply, sizeof reply - 1) &&
             conn_read_reply(c) == 200;
    }
    double dt = now_s() - t0;
    close(c);
    close(srv);
    buf_free(&b);
    if (!ok) {
        die("the floor's kv did not boot from the snapshot and answer "
            "(READY 1, then DONE)");
    }
    *mem = statm_private(pid);
    close(in[1]);
    close(out[0]);
    waitpid(pid, NULL, 0);
    return dt;
}

/* The floor for one creation call of n ships: the n key pairs a host must
 * derive, and their 32-byte public keys written and fdatasynced once. */
static double floor_create(const char *dir, long n)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/floor.dat", dir);
    uint8_t *pks = malloc((size_t)n * 32);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        uint8_t seed[32], sk[64];
        randombytes_buf(seed, sizeof seed);
        crypto_sign_seed_keypair(pks + i * 32, sk, seed);
    }
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    if (fd < 0 || !write_all(fd, pks, (size_t)n * 32) || fdatasync(fd) != 0) {
        die("floor file %s: %s", path, strerror(errno));
    }
    double dt = now_s() - t0;
    close(fd);
    unlink(path);
    free(pks);
    return dt;
}

/* --- Disk use of a data directory. --- */

static double disk_sum;

static int disk_add(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    disk_sum += (double)st->st_blocks * 512;
    return 0;
}

static double disk_bytes(const char *dir)
{
    disk_sum = 0;
    nftw(dir, disk_add, 64, FTW_PHYS);
    return disk_sum;
}

/* --- The machine, as bench/run.sh prints it, and the data's file system. */

static void machine_line(const char *data)
{
    struct sysinfo si;
    struct utsname u;
    sysinfo(&si);
    uname(&u);
    char dev[256] = "?", type[64] = "?", where[4096];
    size_t best = 0;
    if (realpath(data, where) == NULL) {
        snprintf(where, sizeof where, "%s", data);
    }
    FILE *m = fopen("/proc/self/mounts", "r");
    char d[256], mp[4096], t[64];
    while (m != NULL && fscanf(m, "%255s %4095s %63s %*[^\n]", d, mp, t) == 3) {
        size_t n = strlen(mp);
        bool under = strncmp(where, mp, n) == 0 &&
                     (where[n] == '/' || where[n] == '\0' || n == 1);
        if (under && n >= best) {
            best = n;
            snprintf(dev, sizeof dev, "%s", d);
            snprintf(type, sizeof type, "%s", t);
        }
    }
    if (m != NULL) {
        fclose(m);
    }
    printf("machine: %ld cores, %.0f GiB, %s; data on %s (%s)\n",
           sysconf(_SC_NPROCESSORS_ONLN),
           (double)si.totalram * si.mem_unit / (1024.0 * 1024 * 1024),
           u.release, dev, type);
}

/* --- Many awake: a few keep-alive clients waking ships. --- */

#define AWAKE_CLIENTS 4

struct waker {
    pthread_t thread;
    char (*ids)[32];
    long from, to, step;
    long errors;
    int bad_status;
};

static void *waker_main(void *arg)
{
    struct waker *w = arg;
    int s = conn_open();
    char req[256];
    for (long i = w->from; i < w->to; i += w->step) {
        int len =
            snprintf(req, sizeof req, "GET /s/%s/k HTTP/1.1\r\nHost: b\r\n\r\n",
                     w->ids[i]);
        int status = conn_call(s, req, (size_t)len);
        if (status != 200) {
            w->errors++;
            w->bad_status = status;
            close(s);
            s = conn_open();
        }
    }
    close(s);
    return NULL;
}

/* --- Wake storm: one connection per ship, epoll, all written at once. --- */

#define STORM_BUF 2048

struct storm_conn {
    int fd;
    int status; /* 0: no answer yet; -1: failed */
    double t0, t1;
    size_t have;
    char buf[STORM_BUF + 1];
};

/* The host's figures during the storm, polled on the admin socket from a
 * thread so that the epoll loop is never held up by them. */
struct sampler {
    pthread_t thread;
    atomic_int stop;
    double rss_max, queue_max, procs_max, samples, failures;
};

static void *sampler_main(void *arg)
{
    struct sampler *sm = arg;
    while (!atomic_load(&sm->stop)) {
        char err[256];
        int status;
        json_t *s = admin_try("GET", "/v1/stats", NULL, &status, err);
        if (s == NULL) {
            sm->failures++;
        } else {
            double v;
            if ((v = jnum(s, "rss_bytes")) > sm->rss_max) {
                sm->rss_max = v;
            }
            if ((v = jnum(s, "wake_queue")) > sm->queue_max) {
                sm->queue_max = v;
            }
            if ((v = jnum(s, "programs_running")) > sm->procs_max) {
                sm->procs_max = v;
            }
            sm->samples++;
            json_decref(s);
        }
        usleep(50000);
    }
    return NULL;
}

static void storm_fail(struct storm_conn *c, int *open_fds)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
        (*open_fds)--;
    }
    c->status = -1;
}

/* Connect n sockets a wave at a time, each wave fully connected before the
 * next starts, so that the host's listen backlog (4096) never overflows and
 * no SYN has to be retried. */
#define STORM_WAVE 512

static void storm_connect(int ep, struct storm_conn *cs, long n, int *open_fds)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)host_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct epoll_event evs[STORM_WAVE];
    for (long i = 0; i < n; i += STORM_WAVE) {
        long end = i + STORM_WAVE < n ? i + STORM_WAVE : n;
        long pending = 0;
        for (long j = i; j < end; j++) {
            struct storm_conn *c = &cs[j];
            c->fd =
                socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c->fd < 0) {
                die("socket %ld of the storm: %s", j, strerror(errno));
            }
            (*open_fds)++;
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            struct epoll_event ev = {.events = EPOLLOUT,
                                     .data.u64 = (uint64_t)j};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            if (connect(c->fd, (struct sockaddr *)&a, sizeof a) == 0) {
                /* Connected at once: quiet it, or its EPOLLOUT would be
                 * counted against a later wave. */
                ev.events = 0;
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                continue;
            }
            if (errno != EINPROGRESS) {
                storm_fail(c, open_fds);
                continue;
            }
            pending++;
        }
        while (pending > 0) {
            int k = epoll_wait(ep, evs, STORM_WAVE, 10000);
            if (k == 0) {
                die("%ld connections of the storm still not connected after "
                    "10 s",
                    pending);
            }
            for (int e = 0; e < k; e++) {
                struct storm_conn *c = &cs[evs[e].data.u64];
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                /* Quiet it until the requests go out. */
                struct epoll_event ev = {.events = 0, .data = evs[e].data};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                if (err != 0) {
                    storm_fail(c, open_fds);
                }
                pending--;
            }
        }
    }
}

/* --- The steps. Each prints its table as soon as it is done. --- */

/* What the steps share: the arguments, the sizes and the floors that later
 * steps reuse. */
struct run {
    const char *berth, *kv, *dir;
    char data[4096], empty[4096];
    long ships, batch, wakes, awake, storm;
    double cores;
    double empty_start, empty_start_ms, empty_rss; /* a host with no ships */
    double wake_floor, kv_mem; /* floor_wake's p50 and the program's memory */
    char (*kept)[32];          /* never-run ships of the last batch */
    long n_kept;
};

static double median(double *v, size_t n)
{
    return pct(v, n, 0.5);
}

/* The floor of a restart: the same host with no ships, started once to
 * make its data directory and then restarted. */
static void step_empty(struct run *r)
{
    host_start(r->berth, r->empty);
    host_stop();
    r->empty_start = host_start(r->berth, r->empty);
    json_t *st = stats();
    r->empty_rss = jnum(st, "rss_bytes");
    r->empty_start_ms = jnum(st, "start_ms");
    json_decref(st);
    host_stop();
}

static void step_registry(struct run *r)
{
    host_start(r->berth, r->data);
    json_t *st = stats();
    double rss0 = jnum(st, "rss_bytes");
    json_decref(st);
    long calls = (r->ships + r->batch - 1) / r->batch;
    double first = 0, last = 0, sum = 0, worst = 0;
    for (long k = 0, done = 0; k < calls; k++) {
        long count = r->ships - done < r->batch ? r->ships - done : r->batch;
        double dt;
        json_t *res = create_ships(r->kv, NULL, count, 0, 0, &dt);
        done += count;
        first = k == 0 ? dt : first;
        last = dt;
        sum += dt;
        worst = dt > worst ? dt : worst;
        if (k == calls - 1) {
            /* Never-run ships for the awake and storm steps. */
            json_t *ids = json_object_get(res, "ids");
            r->n_kept = (long)json_array_size(ids);
            r->kept = calloc((size_t)r->n_kept, sizeof *r->kept);
            for (long i = 0; i < r->n_kept; i++) {
                snprintf(r->kept[i], sizeof r->kept[i], "%s",
                         json_string_value(json_array_get(ids, (size_t)i)));
            }
        }
        json_decref(res);
    }
    st = stats();
    double rss = jnum(st, "rss_bytes"), reg = jnum(st, "registry_bytes");
    double ships = jnum(st, "ships");
    json_decref(st);
    double disk = disk_bytes(r->data);
    double floor = floor_create(r->dir, r->batch);
    /* The target, 100,000 in 30 s, scaled to the batch. */
    double limit = 30.0 * (double)r->batch / 100000;
    char *limit_text = fmt("%.1f s", limit);
    printf("\nregistry: %ld never-run kv ships, %ld calls of up to %ld\n",
           r->ships, calls, r->batch);
    printf("  floors: a call, %ld key pairs derived + 32 B each written and "
           "fdatasynced, here; RSS, the host's registry_bytes\n",
           r->batch);
    table_head();
    row("first call", fmt_s(first), fmt_s(floor), fmt_ratio(first, floor),
        target(first, limit, limit_text));
    row("mean call", fmt_s(sum / (double)calls), fmt_s(floor),
        fmt_ratio(sum / (double)calls, floor), NULL);
    row("max call", fmt_s(worst), fmt_s(floor), fmt_ratio(worst, floor),
        target(worst, limit, limit_text));
    /* Beside the first, the last shows what a fuller registry costs. */
    row("last call", fmt_s(last), fmt_s(floor), fmt_ratio(last, floor), NULL);
    row("ships (stats)", fmt("%.0f", ships), NULL, NULL, NULL);
    row("host RSS before creating", fmt_bytes(rss0), NULL, NULL, NULL);
    row("host RSS after creating", fmt_bytes(rss), NULL, NULL, NULL);
    row("RSS per ship", fmt_bytes((rss - rss0) / ships), fmt_bytes(reg / ships),
        fmt_ratio(rss - rss0, reg), NULL);
    row("registry_bytes", fmt_bytes(reg), NULL, NULL, NULL);
    row("disk per ship", fmt_bytes(disk / ships), NULL, NULL,
        target(disk / ships, 16384, "16 KiB"));
    row("disk, whole data directory", fmt_bytes(disk), NULL, NULL, NULL);
    if (ships != (double)r->ships) {
        problem("stats say %.0f ships, %ld were created", ships, r->ships);
    }
    fflush(stdout);
}

/* Ships for the wake step, put to sleep now (one key each, then a
 * snapshot) so that after the restart the host's wake histogram holds
 * exactly the wakes measured. */
static void prepare_wakes(struct run *r)
{
    json_decref(create_ships(r->kv, "w", r->wakes, 0, 0, NULL));
    for (long i = 1; i <= r->wakes; i++) {
        char path[128], req[256];
        snprintf(path, sizeof path, "/s/w-%ld/k/key0", i);
        int len = snprintf(req, sizeof req,
                           "PUT %s HTTP/1.1\r\nHost: b\r\n"
                           "Content-Length: 1\r\n\r\nx",
                           path);
        int s = conn_open();
        int status = conn_call(s, req, (size_t)len);
        close(s);
        if (status != 201 && status != 200) {
            die("PUT %s answered %d", path, status);
        }
        snprintf(path, sizeof path, "/v1/ships/w-%ld/sleep", i);
        json_decref(admin("POST", path, NULL));
    }
}

/* Stop the host, start it again and print how long each took. */
static void restart_rows(struct run *r, const char *title)
{
    double stop = host_stop();
    double start = host_start(r->berth, r->data);
    json_t *st = stats();
    double start_ms = jnum(st, "start_ms"), rss = jnum(st, "rss_bytes");
    double ships = jnum(st, "ships");
    json_decref(st);
    printf("\n%s: SIGTERM, wait for exit, start again, %.0f ships "
           "(floor: the same with no ships)\n",
           title, ships);
    table_head();
    row("stop (SIGTERM to exit)", fmt_s(stop), NULL, NULL, NULL);
    row("restart to ready (client)", fmt_s(start), fmt_s(r->empty_start),
        fmt_ratio(start, r->empty_start), target(start, 5, "5 s"));
    row("start_ms (host)", fmt_ms(start_ms / 1e3),
        fmt_ms(r->empty_start_ms / 1e3), fmt_ratio(start_ms, r->empty_start_ms),
        NULL);
    row("host RSS after restart", fmt_bytes(rss), fmt_bytes(r->empty_rss),
        fmt_ratio(rss, r->empty_rss),
        target(rss, 512.0 * 1024 * 1024, "512 MiB"));
    row("RSS per ship after restart", fmt_bytes((rss - r->empty_rss) / ships),
        NULL, NULL, NULL);
    fflush(stdout);
}

/* The host's own view of a latency histogram, as two rows. */
static void host_latency_rows(json_t *st, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "%s.count", name);
    double n = jnum(st, key);
    snprintf(key, sizeof key, "%s.p50", name);
    double p50 = jnum(st, key);
    snprintf(key, sizeof key, "%s.p99", name);
    double p99 = jnum(st, key);
    snprintf(key, sizeof key, "%s.max", name);
    double max = jnum(st, key);
    row(fmt("host %s p50 (n=%.0f)", name, n), fmt("%.3f ms", p50), NULL, NULL,
        NULL);
    row(fmt("host %s p99 / max", name), fmt("%.3f / %.3f ms", p99, max), NULL,
        NULL, NULL);
}

/* Wake, one ship at a time, each beside one floor. */
static void step_wake(struct run *r)
{
    size_t n = (size_t)r->wakes;
    double *lat = malloc(n * sizeof *lat), *fl = malloc(n * sizeof *fl);
    double *mem = malloc(n * sizeof *mem);
    for (size_t i = 0; i < n; i++) {
        char path[128];
        int status;
        snprintf(path, sizeof path, "/s/w-%zu/k/key0", i + 1);
        lat[i] = fresh_call("GET", path, &status);
        if (status != 200) {
            problem("wake GET %s answered %d", path, status);
        }
        fl[i] = floor_wake(r->kv, &mem[i]);
    }
    /* Which wakes were slow says whether they are cold starts (the first
     * few) or spread out; counted before pct() sorts them. */
    size_t slow = 0;
    char which[128] = "";
    for (size_t i = 0; i < n; i++) {
        if (lat[i] > 0.010 && slow++ < 8) {
            size_t used = strlen(which);
            snprintf(which + used, sizeof which - used, "%s#%zu",
                     used ? " " : "", i + 1);
        }
    }
    json_t *st = stats();
    double w50 = pct(lat, n, 0.5), w99 = pct(lat, n, 0.99);
    double f50 = pct(fl, n, 0.5), f99 = pct(fl, n, 0.99);
    r->wake_floor = f50;
    r->kv_mem = median(mem, n);
    printf("\nwake: asleep kv ship (snapshot, 0 events) to full HTTP reply on "
           "a fresh connection, %ld ships one at a time, host holding %.0f\n",
           r->wakes, jnum(st, "ships"));
    printf("  floor: the same GET on a fresh loopback connection to this "
           "process, which posix_spawns kv, BOOT (same snapshot) / READY + "
           "one EVENT (same GET) / DONE on pipes, and the reply back\n");
    table_head();
    row("wake p50", fmt_ms(w50), fmt_ms(f50), fmt_ratio(w50, f50),
        target(w50, 0.002, "2 ms"));
    row("wake p99", fmt_ms(w99), fmt_ms(f99), fmt_ratio(w99, f99),
        target(w99, 0.010, "10 ms"));
    row("ratio p50/p50", fmt("%.2fx", w50 / f50), NULL, NULL,
        target(w50 / f50, 1.25, "1.25x"));
    row("ratio p99/p99", fmt("%.2fx", w99 / f99), NULL, NULL,
        target(w99 / f99, 2, "2x"));
    row("wakes over 10 ms", fmt("%zu of %zu", slow, n), NULL, NULL, which);
    host_latency_rows(st, "wake_latency_ms");
    json_decref(st);
    fflush(stdout);
    free(lat);
    free(fl);
    free(mem);
}

/* Thaw: ships that freeze 50 ms after their last event, each GET beside the
 * same GET to an awake ship that never freezes (a w- ship, awake since the
 * wake step). */
static void step_thaw(struct run *r)
{
    size_t n = (size_t)r->wakes;
    json_decref(create_ships(r->kv, "f", r->wakes, 600000, 50, NULL));
    for (size_t i = 1; i <= n; i++) {
        char path[128];
        int status;
        snprintf(path, sizeof path, "/s/f-%zu/k", i);
        fresh_call("GET", path, &status);
        if (status != 200) {
            die("GET %s answered %d", path, status);
        }
    }
    double frozen = 0, thaws0 = 0;
    for (double t0 = now_s(); now_s() - t0 < 30; usleep(50000)) {
        json_t *st = stats();
        frozen = jnum(st, "states.frozen");
        thaws0 = jnum(st, "thaws");
        json_decref(st);
        if (frozen >= (double)n) {
            break;
        }
    }
    if (frozen < (double)n) {
        problem("only %.0f of %zu ships frozen 30 s after their last event "
                "(freeze_timeout_ms 50)",
                frozen, n);
    }
    double *lat = malloc(n * sizeof *lat), *fl = malloc(n * sizeof *fl);
    for (size_t i = 0; i < n; i++) {
        char path[128];
        int status;
        snprintf(path, sizeof path, "/s/f-%zu/k", i + 1);
        lat[i] = fresh_call("GET", path, &status);
        if (status != 200) {
            problem("thaw GET %s answered %d", path, status);
        }
        snprintf(path, sizeof path, "/s/w-%zu/k", i + 1);
        fl[i] = fresh_call("GET", path, &status);
        if (status != 200) {
            problem("awake GET %s answered %d", path, status);
        }
    }
    json_t *st = stats();
    double thaws = jnum(st, "thaws") - thaws0;
    double t50 = pct(lat, n, 0.5), t99 = pct(lat, n, 0.99);
    double f50 = pct(fl, n, 0.5), f99 = pct(fl, n, 0.99);
    printf("\nthaw: frozen kv ship to full HTTP reply on a fresh connection, "
           "%zu ships (%.0f frozen, %.0f thaws)\n",
           n, frozen, thaws);
    printf("  floor: the same GET to an awake ship, interleaved\n");
    table_head();
    row("thaw p50", fmt_ms(t50), fmt_ms(f50), fmt_ratio(t50, f50),
        target(t50, 0.0003, "0.3 ms"));
    row("thaw p99", fmt_ms(t99), fmt_ms(f99), fmt_ratio(t99, f99), NULL);
    host_latency_rows(st, "thaw_latency_ms");
    if (thaws != (double)n) {
        problem("%.0f thaws counted for %zu GETs to frozen ships", thaws, n);
    }
    json_decref(st);
    fflush(stdout);
    free(lat);
    free(fl);
}

/* Many awake: never-run ships woken by a few clients, all staying awake
 * (idle 600 s, no freezing). */
static void step_awake(struct run *r)
{
    json_t *st = stats();
    double rss0 = jnum(st, "rss_bytes");
    double mem0 = jnum(st, "awake_memory_bytes");
    double procs0 = jnum(st, "programs_running");
    json_decref(st);
    struct waker ws[AWAKE_CLIENTS];
    double t0 = now_s();
    for (int i = 0; i < AWAKE_CLIENTS; i++) {
        ws[i] = (struct waker){
            .ids = r->kept, .from = i, .to = r->awake, .step = AWAKE_CLIENTS};
        pthread_create(&ws[i].thread, NULL, waker_main, &ws[i]);
    }
    long errors = 0;
    int bad = 0;
    for (int i = 0; i < AWAKE_CLIENTS; i++) {
        pthread_join(ws[i].thread, NULL);
        errors += ws[i].errors;
        bad = ws[i].errors ? ws[i].bad_status : bad;
    }
    double took = now_s() - t0;
    /* A program's memory is measured when it goes idle, at most once a
     * second: let the last ones be counted. */
    sleep(2);
    st = stats();
    double procs = jnum(st, "programs_running");
    double rss = jnum(st, "rss_bytes");
    double mem = jnum(st, "awake_memory_bytes");
    double want = procs0 + (double)r->awake;
    double floor = (double)r->awake * r->wake_floor / r->cores;
    double per = (mem - mem0) / (double)r->awake;
    printf("\nawake: %ld never-run ships woken by %d keep-alive clients and "
           "kept awake (idle 600 s, no freezing)\n",
           r->awake, AWAKE_CLIENTS);
    printf("  floors: time, %ld wake floors / %.0f cores; program memory, one "
           "kv alone after the same boot and GET\n"
           "  (resident minus shared pages, as the host counts)\n",
           r->awake, r->cores);
    table_head();
    row("time to wake them all", fmt_s(took), fmt_s(floor),
        fmt_ratio(took, floor), fmt("(%.0f wakes/s)", (double)r->awake / took));
    row("programs_running before", fmt("%.0f", procs0), NULL, NULL, NULL);
    missed += procs < want;
    row("programs_running after", fmt("%.0f", procs), NULL, NULL,
        fmt(">= %.0f %s", want, procs >= want ? "ok" : "MISSED"));
    row("states awake / frozen",
        fmt("%.0f / %.0f", jnum(st, "states.awake"), jnum(st, "states.frozen")),
        NULL, NULL, NULL);
    row("host RSS before", fmt_bytes(rss0), NULL, NULL, NULL);
    row("host RSS after", fmt_bytes(rss), NULL, NULL, NULL);
    row("host RSS per awake ship", fmt_bytes((rss - rss0) / (double)r->awake),
        NULL, NULL, NULL);
    row("awake_memory_bytes", fmt_bytes(mem), NULL, NULL, NULL);
    row("program memory per awake ship", fmt_bytes(per), fmt_bytes(r->kv_mem),
        fmt_ratio(per, r->kv_mem), NULL);
    if (errors > 0) {
        problem("%ld of %ld GETs to wake ships failed (last status %d)", errors,
                r->awake, bad);
    }
    json_decref(st);
    fflush(stdout);
}

/* Wake storm: one GET each to distinct asleep ships, all written at once on
 * their own connections, answers collected with epoll. */
static void step_storm(struct run *r)
{
    long n = r->storm;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)n + 64) {
        problem("this process may open %llu descriptors: storm cut to %ld",
                (unsigned long long)rl.rlim_cur, (long)rl.rlim_cur - 64);
        n = (long)rl.rlim_cur - 64;
    }
    struct storm_conn *cs = calloc((size_t)n, sizeof *cs);
    char(*reqs)[128] = malloc((size_t)n * sizeof *reqs);
    int *lens = malloc((size_t)n * sizeof *lens);
    for (long i = 0; i < n; i++) {
        lens[i] = snprintf(reqs[i], sizeof reqs[i],
                           "GET /s/%s/k HTTP/1.1\r\nHost: b\r\n\r\n",
                           r->kept[r->awake + i]);
    }
    json_t *st = stats();
    double evict0 = jnum(st, "evictions"), wakes0 = jnum(st, "wakes");
    json_decref(st);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int open_fds = 0;
    storm_connect(ep, cs, n, &open_fds);
    /* Let the host accept the last wave before anything is written. */
    usleep(200000);
    long connect_failed = 0;
    for (long i = 0; i < n; i++) {
        if (cs[i].fd >= 0) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
                                     .data.u64 = (uint64_t)i};
            epoll_ctl(ep, EPOLL_CTL_MOD, cs[i].fd, &ev);
        }
        connect_failed += cs[i].status == -1;
    }
    struct sampler sm = {0};
    pthread_create(&sm.thread, NULL, sampler_main, &sm);
    usleep(100000); /* one sample of the host at rest */

    /* The storm: every request, in one tight loop. */
    double t_first = now_s();
    for (long i = 0; i < n; i++) {
        struct storm_conn *c = &cs[i];
        if (c->fd < 0) {
            continue;
        }
        c->t0 = now_s();
        if (write(c->fd, reqs[i], (size_t)lens[i]) != lens[i]) {
            storm_fail(c, &open_fds);
        }
    }
    double t_written = now_s();
    struct epoll_event evs[1024];
    double t_last = t_first;
    /* The host queues rather than fails; give it all the time it needs. */
    while (open_fds > 0 && now_s() < t_first + 600) {
        int k = epoll_wait(ep, evs, 1024, 1000);
        for (int e = 0; e < k; e++) {
            struct storm_conn *c = &cs[evs[e].data.u64];
            while (c->fd >= 0) {
                ssize_t got =
                    read(c->fd, c->buf + c->have, STORM_BUF - c->have);
                if (got < 0 && errno == EAGAIN) {
                    break;
                }
                if (got <= 0 || (c->have += (size_t)got) == STORM_BUF) {
                    storm_fail(c, &open_fds); /* closed, or too long */
                    break;
                }
                c->buf[c->have] = '\0';
                int status;
                if (http_complete(c->buf, c->have, &status)) {
                    c->t1 = t_last = now_s();
                    c->status = status;
                    close(c->fd);
                    c->fd = -1;
                    open_fds--;
                }
            }
        }
    }
    atomic_store(&sm.stop, 1);
    pthread_join(sm.thread, NULL);
    close(ep);
    st = stats();

    long ok = 0, other = 0, failed = 0, unanswered = 0;
    double *lat = malloc((size_t)n * sizeof *lat);
    size_t n_lat = 0;
    char others[512] = "";
    for (long i = 0; i < n; i++) {
        struct storm_conn *c = &cs[i];
        if (c->fd >= 0) {
            unanswered++;
            close(c->fd);
        } else if (c->status == -1) {
            failed++;
        } else {
            lat[n_lat++] = c->t1 - c->t0;
            ok += c->status == 200;
            if (c->status != 200 && other++ < 3) {
                /* The first few bodies say what went wrong. */
                char *body = strstr(c->buf, "\r\n\r\n");
                size_t used = strlen(others);
                snprintf(others + used, sizeof others - used, " [%d %.100s]",
                         c->status, body ? body + 4 : "");
            }
        }
    }
    failed -= connect_failed;
    double floor = (double)n * r->wake_floor / r->cores;
    printf("\nstorm: %ld asleep never-run ships, one GET each, written at once "
           "on %ld connections (in %.3f s)\n",
           n, n, t_written - t_first);
    printf("  floor of the total: %ld wake floors / %.0f cores; host sampled "
           "%.0f times during\n",
           n, r->cores, sm.samples);
    table_head();
    missed += ok != n;
    row("answered 200", fmt("%ld of %ld", ok, n), NULL, NULL,
        ok == n ? "all ok" : "NOT ALL");
    row("answered another status", fmt("%ld", other), NULL, NULL, NULL);
    row("failed at connect", fmt("%ld", connect_failed), NULL, NULL, NULL);
    row("failed after (reset, closed)", fmt("%ld", failed), NULL, NULL, NULL);
    row("not answered within 600 s", fmt("%ld", unanswered), NULL, NULL, NULL);
    row("first write to last response", fmt_s(t_last - t_first), fmt_s(floor),
        fmt_ratio(t_last - t_first, floor), NULL);
    row("latency p50 (write to response)", fmt_ms(pct(lat, n_lat, 0.5)), NULL,
        NULL, NULL);
    row("latency p99", fmt_ms(pct(lat, n_lat, 0.99)), NULL, NULL, NULL);
    row("host RSS max during", fmt_bytes(sm.rss_max), NULL, NULL, NULL);
    row("host RSS after", fmt_bytes(jnum(st, "rss_bytes")), NULL, NULL, NULL);
    row("programs_running max / after",
        fmt("%.0f / %.0f", sm.procs_max, jnum(st, "programs_running")), NULL,
        NULL, NULL);
    row("wake_queue max seen", fmt("%.0f", sm.queue_max), NULL, NULL, NULL);
    row("wakes", fmt("%.0f", jnum(st, "wakes") - wakes0), NULL, NULL, NULL);
    row("evictions", fmt("%.0f", jnum(st, "evictions") - evict0), NULL, NULL,
        NULL);
    host_latency_rows(st, "wake_latency_ms");
    if (ok != n) {
        problem("storm: %ld of %ld not answered 200: %ld other status%s, %ld "
                "failed at connect, %ld failed after, %ld unanswered",
                n - ok, n, other, others, connect_failed, failed, unanswered);
    }
    if (sm.failures > 0) {
        problem("%.0f stats requests failed during the storm", sm.failures);
    }
    json_decref(st);
    fflush(stdout);
    free(lat);
    free(cs);
    free(reqs);
    free(lens);
}

/* Hardening on the wake path. One host per configuration, all up at
 * once, each with the same asleep h- ships; the wakes go one at a time,
 * ship by ship, to every host in turn, the order of the hosts turning
 * ship by ship: each configuration's wakes sit beside the others' in time,
 * so that what the machine's load does to one it does to all. Each round
 * restarts the hosts (every ship asleep again). */
struct harden_host {
    pid_t pid;
    int port;
    char front[64], admin[4200], data[4200];
};

/* Make the host h the one the bench's calls go to. */
static void harden_use(const struct harden_host *h)
{
    host_pid = h->pid;
    host_port = h->port;
    snprintf(front_ep, sizeof front_ep, "%s", h->front);
    snprintf(admin_ep, sizeof admin_ep, "%s", h->admin);
}

static void harden_keep(struct harden_host *h)
{
    h->pid = host_pid;
    h->port = host_port;
    snprintf(h->front, sizeof h->front, "%s", front_ep);
    snprintf(h->admin, sizeof h->admin, "%s", admin_ep);
    host_pid = 0; /* not stopped by the next host_start's caller */
}

static struct harden_host *harden_hosts;
static int harden_n;

/* Stop every host of the step (at its end, and at exit). */
static void harden_stop_all(void)
{
    for (int c = 0; c < harden_n; c++) {
        if (harden_hosts[c].pid > 0) {
            harden_use(&harden_hosts[c]);
            host_stop();
            harden_hosts[c].pid = 0;
        }
    }
}

static void step_harden(struct run *r, long n, long rounds)
{
    static const struct {
        const char *how; /* host_harden */
        const char *label;
    } cfgs[] = {
        {"off", "--no-harden (floor)"},
        {NULL, "hardening whole"},
        {"seccomp", "seccomp alone"},
        {"rlimits", "rlimits alone"},
        {"dir", "private directory alone"},
        {"netns", "empty netns alone"},
        {"caps", "no capabilities alone"},
        {"uids", "whole, a uid each (--program-uids)"},
    };
    enum { NCFG = sizeof cfgs / sizeof *cfgs };
    static struct harden_host hosts[NCFG];
    harden_hosts = hosts;
    harden_n = NCFG;
    atexit(harden_stop_all);
    host_stop();
    for (int c = 0; c < NCFG; c++) {
        snprintf(hosts[c].data, sizeof hosts[c].data, "%s/harden-%d", r->dir,
                 c);
        host_harden = cfgs[c].how;
        host_start(r->berth, hosts[c].data);
        json_decref(create_ships(r->kv, "h", n, 0, 0, NULL));
        for (long i = 1; i <= n; i++) {
            char path[128], req[256];
            snprintf(path, sizeof path, "/s/h-%ld/k/key0", i);
            int len = snprintf(req, sizeof req,
                               "PUT %s HTTP/1.1\r\nHost: b\r\n"
                               "Content-Length: 1\r\n\r\nx",
                               path);
            int s = conn_open();
            int status = conn_call(s, req, (size_t)len);
            close(s);
            if (status != 201 && status != 200) {
                die("PUT %s answered %d", path, status);
            }
        }
        host_stop();
    }
    double *lat[NCFG];
    for (int c = 0; c < NCFG; c++) {
        lat[c] = malloc((size_t)(n * rounds) * sizeof **lat);
    }
    const char *net = NULL;
    for (long k = 0; k < rounds; k++) {
        for (int c = 0; c < NCFG; c++) {
            host_harden = cfgs[c].how;
            host_start(r->berth, hosts[c].data);
            if (k == 0 && c == 1) {
                json_t *st = stats();
                json_t *hard = json_object_get(st, "hardening");
                static char net_buf[160];
                snprintf(net_buf, sizeof net_buf, "%s",
                         json_string_value(json_object_get(hard, "network")));
                net = net_buf;
                json_decref(st);
            }
            harden_keep(&hosts[c]);
        }
        for (long i = 0; i < n; i++) {
            char path[128];
            snprintf(path, sizeof path, "/s/h-%ld/k/key0", i + 1);
            for (int j = 0; j < NCFG; j++) {
                int c = (int)((j + i + k) % NCFG);
                int status;
                harden_use(&hosts[c]);
                lat[c][k * n + i] = fresh_call("GET", path, &status);
                if (status != 200) {
                    problem("hardening: GET %s (%s) answered %d", path,
                            cfgs[c].label, status);
                }
            }
        }
        harden_stop_all();
    }
    host_harden = NULL;
    printf("\nhardening on the wake path: asleep kv ship (snapshot, 0 events) "
           "to full HTTP reply on a fresh connection; %d hosts up at once, "
           "one per configuration, %ld ships each, woken ship by ship on "
           "every host in turn (the order turning), %ld rounds; programs' "
           "network when hardened: %s\n",
           NCFG, n, rounds, net != NULL ? net : "?");
    printf("  floor: the same wakes from the host with --no-harden, "
           "interleaved; p50s and p99s over all rounds; paired: the median "
           "of each wake's ratio to the floor's wake of the same ship\n");
    size_t all = (size_t)(n * rounds);
    /* Each wake beside the floor's wake of the same ship in the same
     * round, a few milliseconds apart: the median of these ratios is
     * less moved by the machine's load drifting than a ratio of medians.
     * Taken before pct() sorts the samples. */
    double paired[NCFG];
    double *q = malloc(all * sizeof *q);
    for (int c = 1; c < NCFG; c++) {
        for (size_t i = 0; i < all; i++) {
            q[i] = lat[c][i] / lat[0][i];
        }
        paired[c] = pct(q, all, 0.5);
    }
    free(q);
    double f50 = pct(lat[0], all, 0.5), f99 = pct(lat[0], all, 0.99);
    table_head();
    for (int c = 1; c < NCFG; c++) {
        double w50 = pct(lat[c], all, 0.5), w99 = pct(lat[c], all, 0.99);
        row(fmt("%s p50", cfgs[c].label), fmt_ms(w50), fmt_ms(f50),
            fmt_ratio(w50, f50), fmt("paired: %.2fx", paired[c]));
        row(fmt("%s p99", cfgs[c].label), fmt_ms(w99), fmt_ms(f99),
            fmt_ratio(w99, f99), NULL);
    }
    for (int c = 0; c < NCFG; c++) {
        free(lat[c]);
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: idle_bench BERTH KV DATA_DIR\n");
        return 2;
    }
    struct run r = {
        .berth = argv[1],
        .kv = argv[2],
        .dir = argv[3],
        .ships = env_long("BENCH_SHIPS", 1000000),
        .batch = env_long("BENCH_BATCH", 100000),
        .wakes = env_long("BENCH_WAKES", 200),
        .awake = env_long("BENCH_AWAKE", 5000),
        .storm = env_long("BENCH_STORM", 10000),
        .cores = (double)sysconf(_SC_NPROCESSORS_ONLN),
    };
    if (r.ships < 1 || r.batch < 1 || r.wakes < 1 || r.awake < 0 ||
        r.storm < 0) {
        fprintf(stderr, "idle_bench: BENCH_SHIPS, BENCH_BATCH and BENCH_WAKES "
                        "must be positive, the others not negative\n");
        return 2;
    }
    r.batch = r.batch < r.ships ? r.batch : r.ships;
    if (sodium_init() < 0) {
        fprintf(stderr, "idle_bench: sodium_init failed\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    atexit(host_stop_atexit);
    mkdir(r.dir, 0700);
    snprintf(r.data, sizeof r.data, "%s/host", r.dir);
    snprintf(r.empty, sizeof r.empty, "%s/empty", r.dir);
    snprintf(host_log, sizeof host_log, "%s/host.log", r.dir);
    wake_snapshot_init();

    /* BENCH_HARDEN=off runs the steps before the hardening one with
     * --no-harden (a part's name: that part alone), to set the wake
     * target's figures of one run beside another's. */
    host_harden = getenv("BENCH_HARDEN");
    machine_line(r.dir);
    long harden_wakes = env_long("BENCH_HARDEN_WAKES", 200);
    long harden_rounds = env_long("BENCH_HARDEN_ROUNDS", 5);
    if (env_long("BENCH_HARDEN_ONLY", 0) != 0) {
        step_harden(&r, harden_wakes, harden_rounds);
        printf("\nidle: %d problem%s\n", problems, problems == 1 ? "" : "s");
        buf_free(&wake_snapshot);
        return 0;
    }
    printf("idle: %ld ships created %ld per call, %ld wakes, %ld awake, storm "
           "of %ld; host stderr in %s\n",
           r.ships, r.batch, r.wakes, r.awake, r.storm, host_log);
    fflush(stdout);

    step_empty(&r);
    step_registry(&r);
    prepare_wakes(&r);
    restart_rows(&r, "restart");
    step_wake(&r);
    step_thaw(&r);
    if (r.awake + r.storm > r.n_kept) {
        problem("BENCH_AWAKE + BENCH_STORM (%ld) exceed the ships of the last "
                "batch (%ld): both cut down",
                r.awake + r.storm, r.n_kept);
        r.awake = r.awake < r.n_kept / 2 ? r.awake : r.n_kept / 2;
        r.storm = r.n_kept - r.awake < r.storm ? r.n_kept - r.awake : r.storm;
    }
    if (r.awake > 0) {
        step_awake(&r);
    }
    /* The storm starts from a restarted host: nothing awake. */
    restart_rows(&r, "second restart");
    if (r.storm > 0) {
        step_storm(&r);
    }
    if (harden_wakes > 0 && harden_rounds > 0) {
        step_harden(&r, harden_wakes, harden_rounds);
    }
    int st;
    if (host_gone(&st)) {
        problem("the host exited on its own (log: %s)", host_log);
    }
    host_stop();
    printf("\nidle: %d target%s missed, %d problem%s\n", missed,
           missed == 1 ? "" : "s", problems, problems == 1 ? "" : "s");
    free(r.kept);
    buf_free(&wake_snapshot);
    return 0;
}
