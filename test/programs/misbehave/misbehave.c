/* misbehave: a program that fails on request, so that the host's fault tests
 * can check that it survives. Targets, with any method:
 *
 *   /crash       abort()
 *   /exit        exit(3)
 *   /hang        say "hanging" on stderr, then never answer (nor read)
 *   /garbage     write a malformed frame (len 1, type 0x99), then answer as
 *                if nothing happened
 *   /huge        write a frame header declaring 100 MiB, some garbage, then
 *                wait forever
 *   /slow/<ms>   sleep ms milliseconds, then answer 200 (unchanged)
 *   /spin/<ms>   use the CPU for ms milliseconds of its own CPU time, then
 *                answer 200 (unchanged)
 *   /reject      reject with reason "asked to reject"
 *   /count       add one to the counter (changed) and answer its value
 *   /random      add 1 to 1000 to the counter, from the process's own
 *                random numbers (changed): not deterministic
 *   /slowcount/<ms>  sleep ms milliseconds, then add one to the counter
 *                (changed: a replay of it is as slow)
 *   /slowsnap/<ms>  make the next snapshot take ms milliseconds (unchanged:
 *                a setting of this process, not state)
 *   /alarm/<ms>  set an alarm ms after the event's time, and say the state
 *                did not change (the host must log it all the same)
 *   /badalarm    answer with an ALARM effect of 7 bytes, then wait
 *   /big/<n>     answer 200 with a body of n bytes (unchanged)
 *   /fork/<n>    fork n children that sleep for ever (they keep stdin,
 *                stdout and stderr), and answer 200
 *   /daemon/<n>  start n processes that leave the program's process group
 *                and tree (setsid, then a fork whose parent exits) and sleep
 *                for ever with stdio closed, and answer 200 once they run
 *   /alloc/<mb>  fork a child that touches mb MiB of memory and sleeps for
 *                ever, and answer 200 once the memory is touched
 *   /alloclater/<mb>  the same, but answer at once: the child touches the
 *                memory half a second later, while the program is idle
 *   /closeout    close stdin and stdout (one socket) and sleep for ever
 *   /hog/<mb>    touch mb MiB of memory in the program itself, keep it, and
 *                answer 200 (unchanged): a memory hog
 *   /bomb        fork children that sleep for ever until a fork fails, and
 *                answer 200 with how many it made (unchanged): a fork bomb
 *   /bombloop    fork for ever, in the program and in every child, never
 *                answering: a fork bomb that keeps trying
 *   /burn        use the CPU for ever, never answering: a CPU burner
 *   /stderr/<mb> write mb MiB to stderr in 100-byte lines, then answer 200
 *   /flood       fork a child that writes numbered 100-byte lines to
 *                stderr without end ("flood 00000042 eee..."), as fast as
 *                the pipe takes them, and answer 200 at once
 *   /argv        answer with the program's arguments, argv[0] included,
 *                one a line (unchanged)
 *   /env         answer with its environment, one KEY=VALUE a line
 *                (unchanged)
 *
 * A TIMER event adds one to the counter (changed).
 *
 * GET / answers the counter's value (unchanged); anything else is 404. The
 * snapshot is the counter as a u64, little-endian. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "berth_program.h"

/* Write n bytes to stdout behind the helper's back, or die trying. */
static void write_raw(const void *p, size_t n)
{
    const char *b = p;
    while (n > 0) {
        ssize_t w = write(1, b, n);
        if (w <= 0) {
            exit(1);
        }
        b += w;
        n -= (size_t)w;
    }
}

static void wait_forever(void)
{
    for (;;) {
        pause();
    }
}

/* Sleep for the milliseconds in the decimal digits of p[0..n). */
static void sleep_ms(const char *p, size_t n)
{
    unsigned long ms = 0;
    for (size_t i = 0; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
        ms = ms * 10 + (unsigned long)(p[i] - '0');
        if (ms > 86400000ul) {
            break;
        }
    }
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* The decimal number in the target after its first skip bytes (the
 * target is not NUL-terminated). */
static unsigned long target_number(const struct bp_http *h, size_t skip)
{
    unsigned long v = 0;
    for (size_t i = skip; i < h->target_len && h->target[i] >= '0' &&
                          h->target[i] <= '9' && v < 1000000ul;
         i++) {
        v = v * 10 + (unsigned long)(h->target[i] - '0');
    }
    return v;
}

/* Fork. In the child, return 0 with *ready set to a descriptor to close
 * once the child is ready; in the parent, wait until the child (and any
 * process that inherited the descriptor) has closed it, and return the
 * child's pid. */
static pid_t fork_ready(int *ready)
{
    int p[2];
    if (pipe(p) != 0) {
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        exit(1);
    }
    if (pid == 0) {
        close(p[0]);
        *ready = p[1];
        return 0;
    }
    close(p[1]);
    char c;
    while (read(p[0], &c, 1) > 0) {
    }
    close(p[0]);
    return pid;
}

/* Fork n children that sleep for ever; with leave, each leaves the
 * process group and, through a second fork, the process tree, with stdio
 * closed. Returns once they all run. */
static void fork_sleepers(unsigned long n, bool leave)
{
    for (unsigned long i = 0; i < n; i++) {
        int ready;
        pid_t pid = fork_ready(&ready);
        if (pid == 0) {
            if (leave) {
                setsid();
                if (fork() != 0) {
                    _exit(0);
                }
                close(0);
                close(1);
                close(2);
            }
            close(ready); /* running */
            wait_forever();
        }
        if (leave) {
            waitpid(pid, NULL, 0);
        }
    }
}

/* Fork a child that touches mb MiB and sleeps for ever; return once the
 * memory is touched, or at once with later, the child then waiting half a
 * second before it starts. */
static void fork_allocator(unsigned long mb, bool later)
{
    int ready;
    if (fork_ready(&ready) != 0) {
        return;
    }
    if (later) {
        close(ready);
        ready = -1;
        sleep_ms("500", 3);
    }
    size_t len = mb * 1024 * 1024;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        _exit(1);
    }
    memset(m, 0x5a, len);
    if (ready >= 0) {
        close(ready);
    }
    wait_forever();
}

/* Write mb MiB to stderr in 100-byte lines. */
static void flood_stderr(unsigned long mb)
{
    char line[100];
    memset(line, 'e', sizeof line - 1);
    line[sizeof line - 1] = '\n';
    char block[100 * 100];
    for (size_t i = 0; i < sizeof block; i += sizeof line) {
        memcpy(block + i, line, sizeof line);
    }
    unsigned long long left = (unsigned long long)mb * 1024 * 1024;
    while (left > 0) {
        size_t n = left < sizeof block ? (size_t)left : sizeof block;
        ssize_t w = write(2, block, n);
        if (w <= 0) {
            exit(1);
        }
        left -= (unsigned long long)w;
    }
}

/* Fork a child that writes numbered lines to stderr for ever. */
static void fork_flood(void)
{
    pid_t pid = fork();
    if (pid != 0) {
        return;
    }
    char block[100 * 100];
    for (unsigned long long n = 0;; n += 100) {
        for (int i = 0; i < 100; i++) {
            char *line = block + 100 * i;
            snprintf(line, 100, "flood %08llu ", n + (unsigned long long)i);
            size_t k = strlen(line);
            memset(line + k, 'e', 99 - k);
            line[99] = '\n';
        }
        const char *p = block;
        size_t left = sizeof block;
        while (left > 0) {
            ssize_t w = write(2, p, left);
            if (w <= 0) {
                _exit(1);
            }
            p += w;
            left -= (size_t)w;
        }
    }
}

/* The delay of the next snapshot, in the digits of a /slowsnap target. */
static char snap_delay[16];

/* The program's arguments, for /argv. */
static char **args;

extern char **environ;

/* Answer 200 with the strings of a NULL-terminated vector, one a line. */
static int reply_lines(struct bp_out *out, char **vec)
{
    char body[8192];
    size_t n = 0;
    for (; *vec != NULL; vec++) {
        int w = snprintf(body + n, sizeof body - n, "%s\n", *vec);
        if (w < 0 || (size_t)w >= sizeof body - n) {
            break;
        }
        n += (size_t)w;
    }
    bp_reply(out, 200, "text/plain", body, n);
    return BP_UNCHANGED;
}

static int reply_count(struct bp_out *out, uint64_t count)
{
    char body[32];
    int n = snprintf(body, sizeof body, "%llu\n", (unsigned long long)count);
    bp_reply(out, 200, "text/plain", body, (size_t)n);
    return 0;
}

static int on_event(void *ctx, const struct bp_event *ev, struct bp_out *out)
{
    uint64_t *count = ctx;
    const struct bp_http *h = ev->http;
    if (ev->kind == BP_EVENT_TIMER) {
        (*count)++;
        return BP_CHANGED;
    }
    if (h == NULL) {
        return bp_reject(out, "misbehave takes only HTTP events");
    }
    if (bp_http_match(h, NULL, "/alarm/*")) {
        uint64_t ms = strtoull(h->target + 7, NULL, 10);
        bp_alarm(out, ev->time_ns + ms * 1000000ULL);
        bp_reply(out, 200, "text/plain", "ok\n", 3);
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, NULL, "/badalarm")) {
        /* DONE n, flags 0, one effect: ALARM with 7 bytes instead of 8. */
        unsigned char f[4 + 1 + 8 + 1 + 4 + 1 + 4 + 7] = {0};
        uint32_t len = sizeof f - 4;
        for (int i = 0; i < 4; i++) {
            f[i] = (unsigned char)(len >> (8 * i));
        }
        f[4] = 0x82;
        for (int i = 0; i < 8; i++) {
            f[5 + i] = (unsigned char)(ev->number >> (8 * i));
        }
        f[14] = 1; /* n_effects */
        f[18] = 3; /* ALARM */
        f[19] = 7; /* its length */
        write_raw(f, sizeof f);
        wait_forever();
    }
    if (bp_http_match(h, NULL, "/argv")) {
        return reply_lines(out, args);
    }
    if (bp_http_match(h, NULL, "/env")) {
        return reply_lines(out, environ);
    }
    if (bp_http_match(h, NULL, "/crash")) {
        abort();
    }
    if (bp_http_match(h, NULL, "/exit")) {
        exit(3);
    }
    if (bp_http_match(h, NULL, "/hang")) {
        static const char line[] = "hanging\n";
        write(2, line, sizeof line - 1);
        wait_forever();
    }
    if (bp_http_match(h, NULL, "/garbage")) {
        static const unsigned char junk[] = {1, 0, 0, 0, 0x99};
        write_raw(junk, sizeof junk);
        bp_reply(out, 200, "text/plain", "garbage sent\n", 13);
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, NULL, "/huge")) {
        /* 0x06400000 is 100 MiB, over any host's 64 MiB limit. */
        static const unsigned char big[] = {0, 0, 0x40, 6, 0x82};
        unsigned char junk[256];
        memset(junk, 0xab, sizeof junk);
        write_raw(big, sizeof big);
        write_raw(junk, sizeof junk);
        wait_forever();
    }
    if (bp_http_match(h, NULL, "/slow/*")) {
        size_t n = h->target_len - 6;
        sleep_ms(h->target + 6, n);
        bp_reply(out, 200, "text/plain", "slow\n", 5);
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, NULL, "/spin/*")) {
        unsigned long ms = target_number(h, 6);
        struct timespec t0, t;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
        volatile unsigned long x = 0;
        do {
            for (int i = 0; i < 100000; i++) {
                x += (unsigned long)i;
            }
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
        } while ((unsigned long)((t.tv_sec - t0.tv_sec) * 1000 +
                                 (t.tv_nsec - t0.tv_nsec) / 1000000) < ms);
        bp_reply(out, 200, "text/plain", "spun\n", 5);
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, NULL, "/slowcount/*")) {
        size_t n = h->target_len - 11;
        sleep_ms(h->target + 11, n);
        (*count)++;
        reply_count(out, *count);
        return BP_CHANGED;
    }
    if (bp_http_match(h, NULL, "/slowsnap/*")) {
        size_t n = h->target_len - 10;
        if (n >= sizeof snap_delay) {
            n = sizeof snap_delay - 1;
        }
        memcpy(snap_delay, h->target + 10, n);
        snap_delay[n] = '\0';
        bp_reply(out, 200, "text/plain", "ok\n", 3);
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, NULL, "/big/*")) {
        size_t n = (size_t)strtoull(h->target + 5, NULL, 10);
        char *body = malloc(n ? n : 1);
        if (body == NULL) {
            return bp_reject(out, "out of memory");
        }
        memset(body, 'b', n);
        bp_reply(out, 200, "application/octet-stream", body, n);
        free(body);
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, NULL, "/fork/*") ||
        bp_http_match(h, NULL, "/daemon/*")) {
        bool leave = h->target[1] == 'd';
        fork_sleepers(target_number(h, leave ? 8 : 6), leave);
        bp_reply(out, 200, "text/plain", "forked\n", 7);
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, NULL, "/alloc/*") ||
        bp_http_match(h, NULL, "/alloclater/*")) {
        bool later = h->target[6] == 'l';
        fork_allocator(target_number(h, later ? 12 : 7), later);
        bp_reply(out, 200, "text/plain", "allocated\n", 10);
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, NULL, "/hog/*")) {
        size_t len = target_number(h, 5) * 1024 * 1024;
        char *m = mmap(NULL, len ? len : 1, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            return bp_reject(out, "mmap failed");
        }
        memset(m, 0x5a, len); /* kept: the hog holds it until it dies */
        bp_reply(out, 200, "text/plain", "hogged\n", 7);
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, NULL, "/bomb")) {
        unsigned n = 0;
        for (;;) {
            pid_t pid = fork();
            if (pid < 0) {
                break;
            }
            if (pid == 0) {
                wait_forever();
            }
            n++;
        }
        char text[32];
        int len = snprintf(text, sizeof text, "forked %u\n", n);
        bp_reply(out, 200, "text/plain", text, (size_t)len);
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, NULL, "/bombloop")) {
        for (;;) {
            fork();
        }
    }
    if (bp_http_match(h, NULL, "/burn")) {
        volatile unsigned long x = 0;
        for (;;) {
            x++;
        }
    }
    if (bp_http_match(h, NULL, "/closeout")) {
        close(0);
        close(1);
        wait_forever();
    }
    if (bp_http_match(h, NULL, "/flood")) {
        fork_flood();
        bp_reply(out, 200, "text/plain", "flooding\n", 9);
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, NULL, "/stderr/*")) {
        flood_stderr(target_number(h, 8));
        bp_reply(out, 200, "text/plain", "written\n", 8);
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, NULL, "/reject")) {
        return bp_reject(out, "asked to reject");
    }
    if (bp_http_match(h, NULL, "/count")) {
        (*count)++;
        reply_count(out, *count);
        return BP_CHANGED;
    }
    if (bp_http_match(h, NULL, "/random")) {
        /* The process's own randomness, not the event's entropy: a replay
         * of the same events makes another state (the whole range of
         * rand(), so that two draws of three events agree once in some
         * 2^31, not once in a thousand). */
        *count += 1 + (uint64_t)rand();
        reply_count(out, *count);
        return BP_CHANGED;
    }
    if (bp_http_match(h, "GET", "/")) {
        reply_count(out, *count);
        return BP_UNCHANGED;
    }
    bp_reply(out, 404, "application/json",
             "{\"error\":{\"code\":\"not_found\",\"message\":\"no such "
             "target\"}}\n",
             58);
    return BP_UNCHANGED;
}

static int on_boot(void *ctx, const uint8_t *snap, size_t len)
{
    uint64_t *count = ctx;
    if (snap == NULL) {
        return 0;
    }
    if (len != 8) {
        return -1;
    }
    *count = 0;
    for (int i = 7; i >= 0; i--) {
        *count = (*count << 8) | snap[i];
    }
    return 0;
}

static int on_snapshot(void *ctx, struct bp_bytes *out)
{
    uint64_t count = *(uint64_t *)ctx;
    uint8_t b[8];
    if (snap_delay[0] != '\0') {
        sleep_ms(snap_delay, strlen(snap_delay));
        snap_delay[0] = '\0';
    }
    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(count >> (8 * i));
    }
    return bp_bytes_append(out, b, sizeof b);
}

int main(int argc, char **argv)
{
    uint64_t count = 0;
    args = argv;
    /* A seed of the kernel's, not time and pid: two processes a second
     * apart with neighbouring pids would otherwise draw the same numbers,
     * and a replay would make the same state by chance. */
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    FILE *ur = fopen("/dev/urandom", "rb");
    if (ur != NULL) {
        if (fread(&seed, sizeof seed, 1, ur) != 1) {
            seed ^= (unsigned)clock();
        }
        fclose(ur);
    }
    srand(seed);
    struct bp_program p = {on_boot, on_event, on_snapshot, &count};
    return bp_run(&p);
}
