/* The supervisor on real processes: frames round-trip through a child, bad
 * frames and kills end it with a reason, the child starts clean (its own
 * session, default signals, three descriptors), freezing stops it, and the
 * loop closes cleanly. No test asserts on time: waits are bounded polls and
 * a stuck test ends by SIGALRM. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/err.h"
#include "lib/mem.h"
#include "proc/launcher.h"
#include "proc/proc.h"

struct fx {
    uv_loop_t loop;
    struct proc *p;
    unsigned frames;
    uint8_t last_type;
    bool gone;
    int clean;
    bool over_memory; /* proc_over_memory, in the exit callback */
    char why[200];
    char script[64];
    /* For frames checked byte by byte: frame k has body byte i equal to
     * (k + i) & 0xff and a length taken from sizes[k]. */
    const size_t *sizes;
    unsigned bad;
    uint8_t last_body[16];
    size_t last_len;
    /* With take set, each frame's memory is taken where it can be. */
    bool take;
    struct budget *budget; /* given to the proc */
    void *taken;
    uint64_t taken_counted;
    unsigned n_taken;
};

static void on_frame(struct proc *p, const struct frame *f, void *arg)
{
    struct fx *x = arg;
    if (x->sizes != NULL) {
        unsigned k = x->frames;
        if (f->body_len != x->sizes[k]) {
            x->bad++;
        }
        for (size_t i = 0; i < f->body_len; i++) {
            if (f->body[i] != (uint8_t)(k + i)) {
                x->bad++;
                break;
            }
        }
    }
    if (x->take) {
        uint64_t counted;
        void *mem = proc_take_frame(p, &counted);
        if (mem != NULL) {
            /* Whole and counted: the body lies inside the memory. */
            assert_ptr_equal((const uint8_t *)mem + FRAME_HEADER_SIZE, f->body);
            assert_int_equal(counted, FRAME_HEADER_SIZE + f->body_len);
            /* Frames still queued for the child count too. */
            assert_true(x->budget->held >= counted + x->taken_counted);
            mem_free(x->taken);
            budget_sub(x->budget, x->taken_counted, false);
            x->taken = mem;
            x->taken_counted = counted;
            x->n_taken++;
        }
    }
    x->frames++;
    x->last_type = f->type;
    x->last_len = f->body_len;
    memcpy(x->last_body, f->body,
           f->body_len < sizeof x->last_body ? f->body_len
                                             : sizeof x->last_body);
}

static void on_exit_cb(struct proc *p, const char *why, int clean, void *arg)
{
    struct fx *x = arg;
    x->gone = true;
    x->clean = clean;
    x->over_memory = proc_over_memory(p);
    snprintf(x->why, sizeof x->why, "%s", why);
}

static void run_until_gone(struct fx *x)
{
    while (!x->gone) {
        uv_run(&x->loop, UV_RUN_ONCE);
    }
    uv_run(&x->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&x->loop), 0);
}

static void spawn(struct fx *x, const char *path)
{
    /* A child that cannot be stopped or killed would hang the test. */
    alarm(60);
    char errmsg[ERRMSG_SIZE];
    struct proc_config cfg = {
        .path = path, .name = "t", .ship_id = "t", .budget = x->budget};
    assert_int_equal(uv_loop_init(&x->loop), 0);
    assert_int_equal(
        proc_spawn(&x->p, &x->loop, &cfg, on_frame, on_exit_cb, x, errmsg), 0);
}

/* Write a shell script to a temp file and return its path in x->script. */
static void script(struct fx *x, const char *body)
{
    snprintf(x->script, sizeof x->script, "./proc-test.XXXXXX");
    int fd = mkstemp(x->script);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    chmod(x->script, 0700);
}

static void test_frames_round_trip_through_cat(void **state)
{
    struct fx x = {0};
    spawn(&x, "/bin/cat");
    for (int i = 0; i < 3; i++) {
        struct buf f;
        buf_init(&f);
        assert_int_equal(frame_encode_snap_req(&f, (uint64_t)i), 0);
        assert_int_equal(proc_send(x.p, &f), 0);
        assert_null(f.data);
    }
    while (x.frames < 3) {
        uv_run(&x.loop, UV_RUN_ONCE);
    }
    assert_int_equal(x.last_type, FRAME_SNAP_REQ);
    assert_true(proc_running(x.p));
    proc_kill(x.p, "test over");
    assert_false(proc_running(x.p));
    run_until_gone(&x);
    assert_int_equal(x.clean, 0);
    assert_string_equal(x.why, "killed: test over");
}

static void test_clean_exit(void **state)
{
    struct fx x = {0};
    script(&x, "exit 0");
    spawn(&x, x.script);
    run_until_gone(&x);
    unlink(x.script);
    assert_int_equal(x.clean, 1);
    assert_string_equal(x.why, "exited with status 0");
}

static void test_exit_status_reported(void **state)
{
    struct fx x = {0};
    script(&x, "echo oops >&2; exit 3");
    spawn(&x, x.script);
    run_until_gone(&x);
    unlink(x.script);
    assert_int_equal(x.clean, 0);
    assert_string_equal(x.why, "exited with status 3");
}

static void test_oversized_frame_kills(void **state)
{
    struct fx x = {0};
    /* A length of 0x7f7f7f7f is far over the 64 MiB limit. */
    script(&x, "printf '\\177\\177\\177\\177\\001'; sleep 30");
    spawn(&x, x.script);
    run_until_gone(&x);
    unlink(x.script);
    assert_int_equal(x.frames, 0);
    assert_string_equal(x.why, "killed: frame over the size limit");
}

static void test_zero_length_frame_kills(void **state)
{
    struct fx x = {0};
    script(&x, "printf '\\000\\000\\000\\000'; sleep 30");
    spawn(&x, x.script);
    run_until_gone(&x);
    unlink(x.script);
    assert_string_equal(x.why, "killed: malformed frame");
}

static void test_missing_program(void **state)
{
    struct fx x = {0};
    char errmsg[ERRMSG_SIZE];
    struct proc_config cfg = {
        .path = "/nonexistent/prog", .name = "t", .ship_id = "t"};
    assert_int_equal(uv_loop_init(&x.loop), 0);
    assert_int_equal(
        proc_spawn(&x.p, &x.loop, &cfg, on_frame, on_exit_cb, &x, errmsg),
        BERTH_ENOTFOUND);
    assert_string_equal(errmsg, "cannot start program /nonexistent/prog: "
                                "No such file or directory");
    uv_run(&x.loop, UV_RUN_DEFAULT);
    assert_false(x.gone);
    assert_int_equal(uv_loop_close(&x.loop), 0);
}

/* Return how many descriptors this process has open. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d) != NULL) {
        n++;
    }
    closedir(d);
    return n;
}

/* Make a temp file name in the working directory for a child to write. */
static void temp_name(char *name, size_t size)
{
    snprintf(name, size, "./proc-out.XXXXXX");
    int fd = mkstemp(name);
    assert_true(fd >= 0);
    close(fd);
}

/* Read a whole small file into buf as a string. */
static void slurp(const char *name, char *buf, size_t size)
{
    FILE *f = fopen(name, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static off_t file_size(const char *name)
{
    struct stat st;
    return stat(name, &st) == 0 ? st.st_size : 0;
}

/* Copy the line of /proc/<pid>/cgroup for the hierarchy that freezes
 * (cgroup2: "0::", else the freezer's) into line; false if there is none. */
static bool cgroup_line(int pid, char *line, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cgroup", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    bool v2 = strcmp(proc_freezer_name(), "cgroup1") != 0;
    bool found = false;
    while (!found && fgets(line, (int)size, f) != NULL) {
        found = v2 ? strncmp(line, "0::", 3) == 0
                   : strstr(line, ":freezer:") != NULL;
    }
    fclose(f);
    return found;
}

/* Wait (at most about 10 s) until pid sits in a cgroup of this host's
 * making; returns whether it did. */
static bool wait_attached(int pid)
{
    char want[256];
    snprintf(want, sizeof want, "/berth-%s/%d\n", proc_host_id(), pid);
    for (int i = 0; i < 1000; i++) {
        char line[512];
        if (cgroup_line(pid, line, sizeof line) && strstr(line, want)) {
            return true;
        }
        usleep(10 * 1000);
    }
    return false;
}

/* Whether one of the comma-separated items of list is item. */
static bool list_has(const char *list, const char *item)
{
    size_t n = strlen(item);
    for (const char *p = list; p != NULL; p = strchr(p, ',')) {
        p += *p == ',';
        if (strncmp(p, item, n) == 0 && (p[n] == ',' || p[n] == '\0')) {
            return true;
        }
    }
    return false;
}

/* Copy into mnt (PATH_MAX) where the hierarchy of /proc/<pid>/cgroup's
 * controller list ctls is mounted ("": cgroup2); false if nowhere. */
static bool cgroup_mount(const char *ctls, char *mnt)
{
    FILE *f = fopen("/proc/self/mounts", "r");
    if (f == NULL) {
        return false;
    }
    char first[64];
    snprintf(first, sizeof first, "%.*s", (int)strcspn(ctls, ","), ctls);
    char dev[256], dir[PATH_MAX], type[64], opts[1024];
    bool found = false;
    while (!found && fscanf(f, "%255s %4095s %63s %1023s %*d %*d", dev, dir,
                            type, opts) == 4) {
        found = ctls[0] == '\0'
                    ? strcmp(type, "cgroup2") == 0
                    : strcmp(type, "cgroup") == 0 && list_has(opts, first);
    }
    fclose(f);
    if (found) {
        snprintf(mnt, PATH_MAX, "%s", dir);
    }
    return found;
}

/* Copy into dirs the directories of pid's own cgroups, the ones this host
 * made for it (.../berth-<host>/<pid>) in every hierarchy; returns how
 * many (at most n). */
static int program_cgroup_dirs(int pid, char (*dirs)[PATH_MAX], int n)
{
    char path[64];
    char want[256];
    snprintf(path, sizeof path, "/proc/%d/cgroup", pid);
    snprintf(want, sizeof want, "/berth-%s/%d", proc_host_id(), pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    int got = 0;
    char line[1024];
    while (got < n && fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char *own = strstr(line, want);
        char *c1 = strchr(line, ':');
        char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
        if (own == NULL || own[strlen(want)] != '\0' || c2 == NULL) {
            continue;
        }
        *c2 = '\0';
        char mnt[PATH_MAX];
        if (cgroup_mount(c1 + 1, mnt) &&
            snprintf(dirs[got], PATH_MAX, "%s%s", mnt, c2 + 1) < PATH_MAX) {
            got++;
        }
    }
    fclose(f);
    return got;
}

/* Run the loop until n frames have come or the child is gone. */
static void run_until_frames(struct fx *x, unsigned n)
{
    while (x->frames < n && !x->gone) {
        uv_run(&x->loop, UV_RUN_ONCE);
    }
}

/* Encode a raw frame of type 0x84 whose body follows the on_frame check
 * pattern for frame number k. */
static void pattern_frame(struct buf *f, unsigned k, size_t len)
{
    buf_init(f);
    assert_int_equal(buf_put_u32(f, (uint32_t)(len + 1)), 0);
    assert_int_equal(buf_put_u8(f, FRAME_SNAPSHOT), 0);
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(buf_put_u8(f, (uint8_t)(k + i)), 0);
    }
}

/* A first frame waits in the child's stdin before the child runs: cat
 * echoes it before anything sent later, whole, both one that fits in the
 * pipe and one four times larger than the pipe holds, and proc_spawn takes
 * its bytes. */
static void test_first_frame_waits_in_stdin(void **state)
{
    static const size_t sizes[] = {100, 4 * 65536, 7};
    for (unsigned big = 0; big < 2; big++) {
        struct fx x = {.sizes = sizes + big};
        struct buf first, later;
        pattern_frame(&first, 0, sizes[big]);
        pattern_frame(&later, 1, sizes[1 + big]);
        alarm(60);
        char errmsg[ERRMSG_SIZE];
        struct proc_config cfg = {
            .path = "/bin/cat", .name = "t", .ship_id = "t", .first = &first};
        assert_int_equal(uv_loop_init(&x.loop), 0);
        assert_int_equal(
            proc_spawn(&x.p, &x.loop, &cfg, on_frame, on_exit_cb, &x, errmsg),
            0);
        assert_null(first.data);
        assert_int_equal(first.len, 0);
        assert_int_equal(proc_send(x.p, &later), 0);
        run_until_frames(&x, 2);
        assert_int_equal(x.frames, 2);
        assert_int_equal(x.bad, 0);
        proc_kill(x.p, "test over");
        run_until_gone(&x);
    }
}

/* Forget the detected freezer and detect again with BERTH_FREEZER set to
 * mode (NULL: unset); returns the name now in use. */
static const char *use_freezer(const char *mode)
{
    assert_int_equal(proc_count(), 0);
    proc_cleanup();
    if (mode != NULL) {
        setenv("BERTH_FREEZER", mode, 1);
    } else {
        unsetenv("BERTH_FREEZER");
    }
    return proc_freezer_name();
}

static void test_exec_failures(void **state)
{
    int fds = count_fds();
    struct fx x = {0};
    char errmsg[ERRMSG_SIZE];
    assert_int_equal(uv_loop_init(&x.loop), 0);

    /* Not executable. */
    script(&x, "exit 0");
    chmod(x.script, 0600);
    struct proc_config cfg = {.path = x.script, .name = "t", .ship_id = "t"};
    assert_int_equal(
        proc_spawn(&x.p, &x.loop, &cfg, on_frame, on_exit_cb, &x, errmsg),
        BERTH_ENOTFOUND);
    char want[ERRMSG_SIZE];
    snprintf(want, sizeof want, "cannot start program %s: Permission denied",
             x.script);
    assert_string_equal(errmsg, want);
    unlink(x.script);

    /* Not found in the child's PATH. */
    cfg.path = "berth-no-such-program";
    assert_int_equal(
        proc_spawn(&x.p, &x.loop, &cfg, on_frame, on_exit_cb, &x, errmsg),
        BERTH_ENOTFOUND);
    assert_string_equal(errmsg, "cannot start program berth-no-such-program: "
                                "No such file or directory");

    uv_run(&x.loop, UV_RUN_DEFAULT);
    assert_false(x.gone);
    assert_int_equal(proc_count(), 0);
    assert_int_equal(uv_loop_close(&x.loop), 0);
    assert_int_equal(count_fds(), fds);
}

/* Send the running cat one frame, see it come back, and end it. */
static void echo_one_and_end(struct fx *x)
{
    struct buf f;
    pattern_frame(&f, 0, 10);
    assert_int_equal(proc_send(x->p, &f), 0);
    run_until_frames(x, 1);
    assert_int_equal(x->frames, 1);
    proc_kill(x->p, "test over");
    run_until_gone(x);
}

static void test_path_search_finds_cat(void **state)
{
    struct fx x = {0};
    spawn(&x, "cat");
    echo_one_and_end(&x);
}

static void test_four_fds_and_count(void **state)
{
    struct fx x = {0};
    char errmsg[ERRMSG_SIZE];
    struct proc_config cfg = {.path = "/bin/cat", .name = "t", .ship_id = "t"};
    assert_int_equal(uv_loop_init(&x.loop), 0);
    /* libuv opens one reserve descriptor per loop at its first stream;
     * open it now so that only the proc's own are counted. */
    uv_pipe_t first;
    assert_int_equal(uv_pipe_init(&x.loop, &first, 0), 0);
    uv_close((uv_handle_t *)&first, NULL);
    int fds = count_fds();
    assert_int_equal(proc_count(), 0);
    assert_int_equal(
        proc_spawn(&x.p, &x.loop, &cfg, on_frame, on_exit_cb, &x, errmsg), 0);
    assert_int_equal(proc_count(), 1);
    /* The cgroup is made on a worker thread, which holds a descriptor of
     * its own for a moment: count again until it is done. */
    int now = count_fds();
    for (int i = 0; i < 1000 && now != fds + (int)proc_fds_per_proc(); i++) {
        usleep(10 * 1000);
        now = count_fds();
    }
    assert_int_equal(now, fds + (int)proc_fds_per_proc());
    assert_int_equal(proc_fds_per_proc(), 4);
    proc_kill(x.p, "test over");
    /* Dying is not gone: the child is not reaped yet. */
    assert_int_equal(proc_count(), 1);
    while (!x.gone) {
        uv_run(&x.loop, UV_RUN_ONCE);
    }
    uv_run(&x.loop, UV_RUN_DEFAULT);
    assert_int_equal(proc_count(), 0);
    assert_int_equal(count_fds(), fds);
    assert_int_equal(uv_loop_close(&x.loop), 0);
}

/* The child gets a session of its own, runs as a batch task, default
 * signal actions and an empty mask, a pipe each as stdin, stdout and stderr
 * (three different ones), and nothing else of the host: not even the
 * descriptors of another running proc. cat is looked at from outside, through
 * /proc, because a shell would show its own work (saved descriptors, signals
 * blocked around fork). */
static void test_child_starts_clean(void **state)
{
    struct fx other = {0};
    spawn(&other, "/bin/cat");

    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    struct fx x = {0};
    spawn(&x, "/bin/cat");
    sigprocmask(SIG_UNBLOCK, &usr1, NULL);
    int pid = (int)proc_pid(x.p);
    /* posix_spawn returns in the middle of exec; once a frame came back,
     * cat is running for sure. */
    struct buf f0;
    pattern_frame(&f0, 0, 1);
    assert_int_equal(proc_send(x.p, &f0), 0);
    run_until_frames(&x, 1);
    assert_int_equal(x.frames, 1);

    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    char target[3][64] = {{0}};
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        int fd = atoi(e->d_name);
        assert_in_range(fd, 0, 2);
        char link[384];
        snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
        ssize_t len = readlink(link, target[fd], sizeof target[fd] - 1);
        assert_true(len > 0);
        n++;
    }
    closedir(d);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        assert_memory_equal(target[i], "pipe:[", 6);
    }
    assert_string_not_equal(target[0], target[1]);
    assert_string_not_equal(target[1], target[2]);

    char path[64];
    char text[4096];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    slurp(path, text, sizeof text);
    char *ign = strstr(text, "SigIgn:");
    char *blk = strstr(text, "SigBlk:");
    assert_non_null(ign);
    assert_non_null(blk);
    assert_int_equal(strtoull(ign + 7, NULL, 16), 0);
    assert_int_equal(strtoull(blk + 7, NULL, 16), 0);

    /* pid (comm) state ppid pgrp session ... */
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    slurp(path, text, sizeof text);
    char st;
    int ppid, pgrp, session;
    assert_int_equal(sscanf(strrchr(text, ')') + 1, " %c %d %d %d", &st, &ppid,
                            &pgrp, &session),
                     4);
    assert_int_equal(pgrp, pid);
    assert_int_equal(session, pid);
    assert_int_equal(sched_getscheduler(pid), SCHED_BATCH);
    /* Started by the launcher or not, the program is this process's
     * child: it is reaped here. */
    assert_int_equal(ppid, getpid());

    /* Only PATH, BERTH_SHIP and BERTH_HOST; environ is NUL-separated. */
    snprintf(path, sizeof path, "/proc/%d/environ", pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t len = fread(text, 1, sizeof text, f);
    fclose(f);
    char want[256];
    int wlen = snprintf(want, sizeof want,
                        "PATH=/usr/local/bin:/usr/bin:/bin%cBERTH_SHIP=t%c"
                        "BERTH_HOST=%s",
                        0, 0, proc_host_id());
    assert_int_equal(len, (size_t)wlen + 1);
    assert_memory_equal(text, want, (size_t)wlen + 1);

    proc_kill(x.p, "test over");
    run_until_gone(&x);
    proc_kill(other.p, "test over");
    run_until_gone(&other);
}

/* A frame that spans reads is counted while it is read and can be taken
 * whole; one read in one go cannot (it sits in the shared buffer). A
 * paused proc reads nothing until resumed. */
static void test_frames_taken_counted_and_paused(void **state)
{
    static const size_t sizes[] = {300 * 1024, 10, 200 * 1024};
    struct budget b;
    budget_init(&b, 0, NULL, NULL);
    struct fx x = {.sizes = sizes, .take = true, .budget = &b};
    spawn(&x, "/bin/cat");
    for (unsigned k = 0; k < 2; k++) {
        struct buf f;
        pattern_frame(&f, k, sizes[k]);
        assert_int_equal(proc_send(x.p, &f), 0);
    }
    run_until_frames(&x, 2);
    assert_int_equal(x.frames, 2);
    assert_int_equal(x.bad, 0);
    assert_int_equal(x.n_taken, 1);
    assert_int_equal(x.taken_counted, FRAME_HEADER_SIZE + sizes[0]);
    assert_int_equal(proc_partial_bytes(x.p), 0);
    proc_pause(x.p);
    struct buf f;
    pattern_frame(&f, 2, sizes[2]);
    assert_int_equal(proc_send(x.p, &f), 0);
    for (int i = 0; i < 50; i++) {
        uv_run(&x.loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
    assert_int_equal(x.frames, 2);
    proc_resume(x.p);
    run_until_frames(&x, 3);
    assert_int_equal(x.frames, 3);
    assert_int_equal(x.bad, 0);
    assert_int_equal(x.n_taken, 2);
    proc_kill(x.p, "test over");
    run_until_gone(&x);
    /* What is left is the taker's to free. */
    assert_int_equal(b.held, x.taken_counted);
    mem_free(x.taken);
}

/* Read a /proc file of NUL-separated strings (cmdline, environ) of pid into
 * buf; returns its length. A spawn returns in the middle of the exec, before
 * the kernel has laid out the new image's strings (the file reads empty
 * until then), so wait for them; the test's alarm bounds the wait. */
static size_t read_proc_list(int pid, const char *what, char *buf, size_t size)
{
    char path[64];
    size_t len;
    snprintf(path, sizeof path, "/proc/%d/%s", pid, what);
    do {
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        len = fread(buf, 1, size, f);
        fclose(f);
    } while (len == 0 && usleep(1000) == 0);
    return len;
}

/* A program gets its arguments after its path, and its added variables
 * after PATH, BERTH_SHIP and BERTH_HOST; its own PATH replaces the default
 * one, and a BERTH_SHIP or BERTH_HOST of its own is dropped. Lists over the
 * limits fail the spawn. */
static void test_args_and_env(void **state)
{
    static const char args[] = "60\0";
    static const char env[] = "K=a b\0EMPTY=\0";
    struct fx x = {0};
    char errmsg[ERRMSG_SIZE];
    char text[4096];
    struct proc_config cfg = {.path = "/bin/sleep",
                              .name = "t",
                              .ship_id = "t",
                              .args = args,
                              .args_len = sizeof args - 1,
                              .env = env,
                              .env_len = sizeof env - 1};
    alarm(60);
    assert_int_equal(uv_loop_init(&x.loop), 0);
    assert_int_equal(
        proc_spawn(&x.p, &x.loop, &cfg, on_frame, on_exit_cb, &x, errmsg), 0);
    int pid = (int)proc_pid(x.p);
    const char want_argv[] = "/bin/sleep\0"
                             "60";
    assert_int_equal(read_proc_list(pid, "cmdline", text, sizeof text),
                     sizeof want_argv);
    assert_memory_equal(text, want_argv, sizeof want_argv);
    char want_env[256];
    int wlen = snprintf(want_env, sizeof want_env,
                        "PATH=/usr/local/bin:/usr/bin:/bin%cBERTH_SHIP=t%c"
                        "BERTH_HOST=%s%cK=a b%cEMPTY=",
                        0, 0, proc_host_id(), 0, 0);
    assert_int_equal(read_proc_list(pid, "environ", text, sizeof text),
                     (size_t)wlen + 1);
    assert_memory_equal(text, want_env, (size_t)wlen + 1);
    proc_kill(x.p, "test over");
    run_until_gone(&x);

    static const char own[] =
        "PATH=/opt/bin\0BERTH_SHIP=other\0BERTH_HOST=other/x\0";
    struct fx y = {0};
    cfg.env = own;
    cfg.env_len = sizeof own - 1;
    assert_int_equal(uv_loop_init(&y.loop), 0);
    assert_int_equal(
        proc_spawn(&y.p, &y.loop, &cfg, on_frame, on_exit_cb, &y, errmsg), 0);
    char want_own[256];
    wlen = snprintf(want_own, sizeof want_own,
                    "BERTH_SHIP=t%cBERTH_HOST=%s%cPATH=/opt/bin", 0,
                    proc_host_id(), 0);
    assert_int_equal(
        read_proc_list((int)proc_pid(y.p), "environ", text, sizeof text),
        (size_t)wlen + 1);
    assert_memory_equal(text, want_own, (size_t)wlen + 1);
    proc_kill(y.p, "test over");
    run_until_gone(&y);

    /* One string too many, too many bytes, or no final NUL: refused. */
    char *many = calloc(PROC_ARGS_BYTES_MAX + 2, 1);
    assert_non_null(many);
    struct fx z = {0};
    assert_int_equal(uv_loop_init(&z.loop), 0);
    cfg.env = NULL;
    cfg.env_len = 0;
    cfg.args = many;
    size_t sizes[] = {PROC_ARGS_MAX + 1, PROC_ARGS_BYTES_MAX + 1};
    for (int i = 0; i < 2; i++) {
        cfg.args_len = sizes[i];
        assert_int_equal(
            proc_spawn(&z.p, &z.loop, &cfg, on_frame, on_exit_cb, &z, errmsg),
            BERTH_EIO);
        assert_string_equal(errmsg, "cannot start program /bin/sleep: "
                                    "Argument list too long");
    }
    cfg.args = "60";
    cfg.args_len = 2;
    assert_int_equal(
        proc_spawn(&z.p, &z.loop, &cfg, on_frame, on_exit_cb, &z, errmsg),
        BERTH_EIO);
    free(many);
    uv_run(&z.loop, UV_RUN_DEFAULT);
    assert_false(z.gone);
    assert_int_equal(uv_loop_close(&z.loop), 0);
}

/* Small frames pipelined past the 64 KiB read size are cut at arbitrary
 * points, and a 300 KiB frame spans several reads; all come back whole. */
static void test_frames_cut_by_reads(void **state)
{
    enum { N = 3000 };
    static size_t sizes[N];
    struct fx x = {0};
    x.sizes = sizes;
    spawn(&x, "/bin/cat");
    for (unsigned k = 0; k < N; k++) {
        sizes[k] = k == N / 2 ? 300 * 1024 : (k * 37) % 301;
        struct buf f;
        pattern_frame(&f, k, sizes[k]);
        assert_int_equal(proc_send(x.p, &f), 0);
    }
    run_until_frames(&x, N);
    assert_int_equal(x.frames, N);
    assert_int_equal(x.bad, 0);
    assert_true(proc_running(x.p));
    proc_kill(x.p, "test over");
    run_until_gone(&x);
}

static void test_frame_header_cut(void **state)
{
    struct fx x = {0};
    script(&x, "printf '\\005\\000'; sleep 0.2; printf '\\000\\000\\201ab';"
               " sleep 0.2; printf 'cd'; sleep 30");
    spawn(&x, x.script);
    run_until_frames(&x, 1);
    unlink(x.script);
    assert_int_equal(x.frames, 1);
    assert_int_equal(x.last_type, FRAME_READY);
    assert_int_equal(x.last_len, 4);
    assert_memory_equal(x.last_body, "abcd", 4);
    proc_kill(x.p, "test over");
    run_until_gone(&x);
    assert_string_equal(x.why, "killed: test over");
}

static void test_oversized_header_cut_kills(void **state)
{
    struct fx x = {0};
    script(&x, "printf '\\377\\377'; sleep 0.2; printf '\\377\\177'; sleep 30");
    spawn(&x, x.script);
    run_until_gone(&x);
    unlink(x.script);
    assert_int_equal(x.frames, 0);
    assert_string_equal(x.why, "killed: frame over the size limit");
}

static void test_out_of_memory_for_cut_frame_kills(void **state)
{
    struct fx x = {0};
    script(&x, "printf '\\010\\000\\000\\000\\201ab'; sleep 30");
    spawn(&x, x.script);
    mem_fault_countdown(0);
    while (!x.gone) {
        uv_run(&x.loop, UV_RUN_ONCE);
    }
    mem_fault_countdown(-1);
    run_until_gone(&x);
    unlink(x.script);
    assert_int_equal(x.frames, 0);
    assert_string_equal(x.why, "killed: host out of memory reading its output");
}

/* Send this process's stderr (where procs log) to a new temp file named
 * into log; returns the saved descriptor for stderr_restore. */
static int stderr_capture(char *log, size_t size)
{
    temp_name(log, size);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(log, O_WRONLY | O_TRUNC);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    return saved;
}

/* Put stderr back after stderr_capture. */
static void stderr_restore(int saved)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

static void test_stderr_reaches_log(void **state)
{
    char log[32];
    int saved = stderr_capture(log, sizeof log);

    struct fx x = {0};
    script(&x, "echo first line >&2\n"
               "printf 'cut ' >&2; sleep 0.2; printf 'line\\nsecond' >&2\n"
               "sleep 0.2; printf ' half\\n' >&2\n"
               "printf 'no newline before exit' >&2\n"
               "exit 0");
    spawn(&x, x.script);
    run_until_gone(&x);
    unlink(x.script);
    stderr_restore(saved);

    char text[4096];
    slurp(log, text, sizeof text);
    unlink(log);
    assert_string_equal(text, "[t] first line\n"
                              "[t] cut line\n"
                              "[t] second half\n"
                              "[t] no newline before exit\n");
    assert_int_equal(x.clean, 1);
}

static void test_memory_is_plausible(void **state)
{
    struct fx x = {0};
    /* The shell holds an 8 MB string, then says so with a READY frame. */
    script(&x, "x=$(head -c 8000000 /dev/zero | tr '\\0' a)\n"
               "printf '\\002\\000\\000\\000\\201\\001'\n"
               "sleep 30");
    spawn(&x, x.script);
    uint64_t bytes = 0;
    assert_int_equal(proc_memory(x.p, &bytes), 0);
    assert_true(bytes > 0);
    run_until_frames(&x, 1);
    assert_int_equal(x.frames, 1);
    assert_int_equal(proc_memory(x.p, &bytes), 0);
    assert_true(bytes >= 8000000);
    assert_true(bytes < 256u * 1024 * 1024);
    proc_kill(x.p, "test over");
    assert_int_equal(proc_memory(x.p, &bytes), BERTH_ESHUTDOWN);
    run_until_gone(&x);
    unlink(x.script);
}

/* Wait (at most about 10 s) until the file stops growing; returns whether
 * it did. */
static bool wait_until_still(const char *name)
{
    for (int i = 0; i < 100; i++) {
        off_t a = file_size(name);
        usleep(100 * 1000);
        if (file_size(name) == a) {
            return true;
        }
    }
    return false;
}

/* Wait (at most about 10 s) until the file is larger than size. */
static bool wait_until_grows(const char *name, off_t size)
{
    for (int i = 0; i < 200 && file_size(name) <= size; i++) {
        usleep(50 * 1000);
    }
    return file_size(name) > size;
}

/* Spawn a shell that appends to a file in a loop, forking sleep each time,
 * and wait until it has written something. */
static void spawn_writer(struct fx *x, char *out, size_t size)
{
    temp_name(out, size);
    char body[256];
    snprintf(body, sizeof body, "while :; do echo x >> %s; sleep 0.02; done",
             out);
    script(x, body);
    spawn(x, x->script);
    assert_true(wait_until_grows(out, 0));
    /* The cgroup comes a few milliseconds after the spawn; a freeze before
     * it would use signals and not test the cgroup. */
    if (strcmp(proc_freezer_name(), "sigstop") != 0) {
        assert_true(wait_attached((int)proc_pid(x->p)));
    }
}

static void check_freeze_stops_progress(void)
{
    struct fx x = {0};
    char out[32];
    spawn_writer(&x, out, sizeof out);
    assert_int_equal(proc_freeze(x.p), 0);
    assert_int_equal(proc_freeze(x.p), 0);
    assert_true(wait_until_still(out));
    off_t frozen = file_size(out);
    usleep(500 * 1000);
    assert_int_equal(file_size(out), frozen);
    assert_true(proc_running(x.p));
    assert_int_equal(proc_thaw(x.p), 0);
    assert_int_equal(proc_thaw(x.p), 0);
    assert_true(wait_until_grows(out, frozen));
    proc_kill(x.p, "test over");
    assert_int_equal(proc_freeze(x.p), BERTH_ESHUTDOWN);
    run_until_gone(&x);
    unlink(x.script);
    unlink(out);
    assert_string_equal(x.why, "killed: test over");
}

static void check_kill_while_frozen(void)
{
    struct fx x = {0};
    char out[32];
    spawn_writer(&x, out, sizeof out);
    assert_int_equal(proc_freeze(x.p), 0);
    assert_true(wait_until_still(out));
    proc_kill(x.p, "frozen");
    run_until_gone(&x);
    unlink(x.script);
    unlink(out);
    assert_int_equal(x.clean, 0);
    assert_string_equal(x.why, "killed: frozen");
}

/* A child the program forked right away, before its cgroup existed, ends
 * up in the program's cgroup too; with signals nobody gets one. */
static void check_children_adopted(void)
{
    struct fx x = {0};
    script(&x, "sleep 30 & exec sleep 31");
    spawn(&x, x.script);
    int pid = (int)proc_pid(x.p);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", pid, pid);
    int child = 0;
    for (int i = 0; i < 1000 && child == 0; i++) {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            if (fscanf(f, "%d", &child) != 1) {
                child = 0;
            }
            fclose(f);
        }
        if (child == 0) {
            usleep(10 * 1000);
        }
    }
    assert_true(child > 0);
    char mine[512];
    char its[512];
    if (strcmp(proc_freezer_name(), "sigstop") == 0) {
        assert_true(cgroup_line(pid, mine, sizeof mine));
        assert_null(strstr(mine, "/berth-"));
    } else {
        assert_true(wait_attached(pid));
        assert_true(cgroup_line(pid, mine, sizeof mine));
        bool same = false;
        for (int i = 0; i < 1000 && !same; i++) {
            same =
                cgroup_line(child, its, sizeof its) && strcmp(mine, its) == 0;
            if (!same) {
                usleep(10 * 1000);
            }
        }
        assert_true(same);
    }
    proc_kill(x.p, "test over");
    run_until_gone(&x);
    unlink(x.script);
}

/* A kill or an exit while the cgroup is still being made waits for it,
 * and the proc still ends cleanly. */
static void check_end_during_attach(void)
{
    struct fx x = {0};
    spawn(&x, "/bin/cat");
    proc_kill(x.p, "at once");
    run_until_gone(&x);
    assert_string_equal(x.why, "killed: at once");

    struct fx y = {0};
    script(&y, "exit 0");
    spawn(&y, y.script);
    run_until_gone(&y);
    unlink(y.script);
    assert_int_equal(y.clean, 1);
}

/* Frames sent to a frozen program wait, and come back once it thaws. */
static void check_frozen_keeps_its_input(void)
{
    struct fx x = {0};
    spawn(&x, "/bin/cat");
    assert_int_equal(proc_freeze(x.p), 0);
    struct buf f;
    pattern_frame(&f, 0, 100);
    assert_int_equal(proc_send(x.p, &f), 0);
    assert_int_equal(proc_thaw(x.p), 0);
    run_until_frames(&x, 1);
    assert_int_equal(x.frames, 1);
    proc_kill(x.p, "test over");
    run_until_gone(&x);
}

/* Return whether pid is gone: no such process, or a zombie nobody reaped
 * yet (init here does not reap at once). */
static bool pid_dead(int pid)
{
    char path[64];
    char text[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return true;
    }
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *end = strrchr(text, ')');
    return end == NULL || end[2] == 'Z' || end[2] == 'X';
}

/* Wait (at most about 10 s) until pid is gone; returns whether it is. */
static bool wait_dead(int pid)
{
    for (int i = 0; i < 1000 && !pid_dead(pid); i++) {
        usleep(10 * 1000);
    }
    return pid_dead(pid);
}

/* Wait (at most about 10 s) until the file holds a pid, and return it. */
static int read_pid(const char *name)
{
    for (int i = 0; i < 1000; i++) {
        char text[32] = {0};
        FILE *f = fopen(name, "r");
        if (f != NULL) {
            size_t n = fread(text, 1, sizeof text - 1, f);
            fclose(f);
            text[n] = '\0';
            if (strchr(text, '\n') != NULL) {
                return atoi(text);
            }
        }
        usleep(10 * 1000);
    }
    fail_msg("no pid in %s", name);
    return 0;
}

/* Wait (at most about 10 s) until child sits in the same cgroup as pid. */
static bool wait_same_cgroup(int pid, int child)
{
    char mine[512];
    char its[512];
    for (int i = 0; i < 1000; i++) {
        if (cgroup_line(pid, mine, sizeof mine) &&
            cgroup_line(child, its, sizeof its) && strcmp(mine, its) == 0) {
            return true;
        }
        usleep(10 * 1000);
    }
    return false;
}

/* How a program ends in check_children_die. */
enum end_how { END_EXIT, END_KILL, END_KILL_FROZEN };

/* A program starts a child in its process group and, with cgroups, one
 * that left the group (setsid); the program then ends, and so do both.
 * Without cgroups only the group is reached: a process that left it is a
 * documented limit. */
static void check_children_die(enum end_how how)
{
    bool cgroups = strcmp(proc_freezer_name(), "sigstop") != 0;
    struct fx x = {0};
    char grouped[32];
    char left[32];
    temp_name(grouped, sizeof grouped);
    temp_name(left, sizeof left);
    char body[512];
    snprintf(body, sizeof body,
             "sleep 300 & echo $! > %s\n"
             "%s > %s\n"
             "head -c 1 >/dev/null; exit 0",
             grouped, cgroups ? "setsid sleep 301 & echo $!" : "echo 0", left);
    script(&x, body);
    spawn(&x, x.script);
    int pid = (int)proc_pid(x.p);
    int a = read_pid(grouped);
    int b = read_pid(left);
    assert_true(a > 0);
    char dirs[8][PATH_MAX];
    int n_dirs = 0;
    if (cgroups) {
        assert_true(b > 0);
        assert_true(wait_attached(pid));
        assert_true(wait_same_cgroup(pid, a));
        assert_true(wait_same_cgroup(pid, b));
        n_dirs = program_cgroup_dirs(pid, dirs, 8);
        assert_true(n_dirs > 0);
        for (int i = 0; i < n_dirs; i++) {
            assert_int_equal(access(dirs[i], F_OK), 0);
        }
    }
    if (how == END_EXIT) {
        struct buf f;
        pattern_frame(&f, 0, 1);
        assert_int_equal(proc_send(x.p, &f), 0);
    } else {
        if (how == END_KILL_FROZEN) {
            assert_int_equal(proc_freeze(x.p), 0);
        }
        proc_kill(x.p, "test over");
    }
    run_until_gone(&x);
    if (how == END_EXIT) {
        assert_int_equal(x.clean, 1);
    }
    /* Its cgroups went with it, the ones that held its children too: none
     * is left for a later retry. */
    for (int i = 0; i < n_dirs; i++) {
        if (access(dirs[i], F_OK) == 0) {
            fail_msg("%s is still there", dirs[i]);
        }
    }
    assert_true(wait_dead(a));
    if (cgroups) {
        assert_true(wait_dead(b));
    }
    unlink(x.script);
    unlink(grouped);
    unlink(left);
}

static void check_children_die_all(void)
{
    check_children_die(END_EXIT);
    check_children_die(END_KILL);
    check_children_die(END_KILL_FROZEN);
}

/* Write the pid to the file at name, with a newline; false on failure. */
static bool write_pid(const char *name, int pid)
{
    FILE *f = fopen(name, "w");
    if (f == NULL) {
        return false;
    }
    fprintf(f, "%d\n", pid);
    return fclose(f) == 0;
}

static void ignore_frame(struct proc *p, const struct frame *f, void *arg)
{
}

static void ignore_exit(struct proc *p, const char *why, int clean, void *arg)
{
}

/* The child side of check_setup_kills_leftovers: one run of a host that
 * starts a program, which starts a process, then dies without cleaning
 * up. No cmocka assert here: a failure is the exit status. */
static _Noreturn void dead_run(const char *tag, const char *script_path,
                               const char *prog_out, const char *left_out)
{
    /* This copy of the launcher's socket is the parent's: programs start
     * from here, as after the launcher died. */
    launcher_stop();
    unsigned killed;
    uv_loop_t loop;
    struct proc *p;
    char errmsg[ERRMSG_SIZE];
    struct proc_config cfg = {.path = script_path, .name = "t", .ship_id = "t"};
    if (proc_setup(tag, &killed) != 0 || uv_loop_init(&loop) != 0 ||
        proc_spawn(&p, &loop, &cfg, ignore_frame, ignore_exit, NULL, errmsg) !=
            0) {
        _exit(2);
    }
    if (strcmp(proc_freezer_name(), "sigstop") != 0 &&
        !wait_attached((int)proc_pid(p))) {
        _exit(3);
    }
    if (!write_pid(prog_out, (int)proc_pid(p))) {
        _exit(4);
    }
    /* Die once the program has started its process. */
    for (int i = 0; i < 1000 && file_size(left_out) == 0; i++) {
        usleep(10 * 1000);
    }
    _exit(0);
}

/* A run of a host dies without cleaning up, as after kill -9 with its
 * launcher gone too: its program dies of the parent-death signal, but what
 * the program started lives on, in the run's cgroup (here with an empty
 * environment, out of the process group) or, without cgroups, with
 * BERTH_HOST in its environment. The next proc_setup with the same tag
 * kills it, and nothing of another tag. */
static void check_setup_kills_leftovers(void)
{
    bool cgroups = strcmp(proc_freezer_name(), "sigstop") != 0;
    char tag[64];
    snprintf(tag, sizeof tag, "unit-%d", (int)getpid());
    char prog_out[32];
    char left_out[32];
    temp_name(prog_out, sizeof prog_out);
    temp_name(left_out, sizeof left_out);
    struct fx x = {0};
    char body[256];
    /* The process starts once the program is in its cgroup. */
    snprintf(body, sizeof body,
             "while [ ! -e %s.go ]; do sleep 0.01; done\n"
             "%s & echo $! > %s\n"
             "exec sleep 302",
             left_out, cgroups ? "setsid env -i sleep 301" : "sleep 301",
             left_out);
    script(&x, body);

    char other_env[96];
    snprintf(other_env, sizeof other_env, "BERTH_HOST=unit-other-%d/x",
             (int)getpid());
    pid_t other = fork();
    assert_true(other >= 0);
    if (other == 0) {
        char *argv[] = {"sleep", "300", NULL};
        char *envp[] = {other_env, NULL};
        execve("/bin/sleep", argv, envp);
        _exit(127);
    }

    pid_t run = fork();
    assert_true(run >= 0);
    if (run == 0) {
        dead_run(tag, x.script, prog_out, left_out);
    }
    int prog = read_pid(prog_out);
    char go[48];
    snprintf(go, sizeof go, "%s.go", left_out);
    FILE *f = fopen(go, "w");
    assert_non_null(f);
    fclose(f);
    int left = read_pid(left_out);
    int ws;
    assert_int_equal(waitpid(run, &ws, 0), run);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
    assert_true(wait_dead(prog));
    usleep(100 * 1000);
    assert_false(pid_dead(left));

    unsigned killed = 0;
    assert_int_equal(proc_setup(tag, &killed), 0);
    assert_true(killed >= 1);
    assert_true(wait_dead(left));
    assert_false(pid_dead(other));
    kill(other, SIGKILL);
    waitpid(other, NULL, 0);
    unlink(x.script);
    unlink(prog_out);
    unlink(left_out);
    unlink(go);
}

/* A program that closes its stdout can never answer: it is killed at
 * once, not at some time limit, and what it started goes with it. */
static void test_closed_output_kills(void **state)
{
    struct fx x = {0};
    char out[32];
    temp_name(out, sizeof out);
    char body[128];
    snprintf(body, sizeof body,
             "sleep 300 </dev/null >/dev/null & echo $! > %s\n"
             "exec 0<&- 1>&-\nexec sleep 301",
             out);
    script(&x, body);
    spawn(&x, x.script);
    run_until_gone(&x);
    int child = read_pid(out);
    unlink(x.script);
    unlink(out);
    assert_int_equal(x.clean, 0);
    assert_string_equal(x.why, "killed: closed its output");
    assert_true(wait_dead(child));
}

/* Count the bytes of program output in a log of "[t] line" lines, and the
 * lines that say how much was dropped, adding up what they say. */
static void count_log(const char *text, size_t *logged, unsigned *notes,
                      unsigned long long *dropped)
{
    *logged = 0;
    *notes = 0;
    *dropped = 0;
    const char *note = "[t] berth: dropped ";
    for (const char *p = text; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (strncmp(p, note, strlen(note)) == 0) {
            (*notes)++;
            *dropped += strtoull(p + strlen(note), NULL, 10);
        } else if (strncmp(p, "[t] ", 4) == 0) {
            *logged += len - 4 + 1;
        }
        p += len + (nl != NULL);
    }
}

static size_t stderr_dropped_seen;
static size_t stderr_taken; /* bytes given to the stderr callback */

static void on_stderr_count(void *arg, const uint8_t *data, size_t n)
{
    stderr_taken += n;
}

static void on_exit_dropped(struct proc *p, const char *why, int clean,
                            void *arg)
{
    stderr_dropped_seen = (size_t)proc_stderr_dropped(p);
    on_exit_cb(p, why, clean, arg);
}

/* A program that floods stderr reaches the log only within its limit:
 * the burst, plus the rate meanwhile; the rest is dropped, counted, and
 * said in one line, and every byte is either logged or counted. The
 * stderr callback gets every byte, dropped or not. */
static void test_stderr_flood_is_limited(void **state)
{
    char log[32];
    int saved = stderr_capture(log, sizeof log);

    struct fx x = {0};
    /* 5,000 lines of 50 bytes: 250,000 bytes. */
    script(&x, "i=0; while [ $i -lt 5000 ]; do\n"
               "printf 'line %05d xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\\n' "
               "$i\n"
               "i=$((i+1)); done >&2\nexit 0");
    alarm(60);
    char errmsg[ERRMSG_SIZE];
    struct proc_config cfg = {.path = x.script,
                              .name = "t",
                              .ship_id = "t",
                              .stderr_rate = 100,
                              .stderr_burst = 5000,
                              .on_stderr = on_stderr_count};
    uint64_t before = proc_stderr_dropped_total();
    stderr_taken = 0;
    assert_int_equal(uv_loop_init(&x.loop), 0);
    assert_int_equal(
        proc_spawn(&x.p, &x.loop, &cfg, on_frame, on_exit_dropped, &x, errmsg),
        0);
    run_until_gone(&x);
    unlink(x.script);
    stderr_restore(saved);

    static char text[1 << 20];
    slurp(log, text, sizeof text);
    unlink(log);
    size_t logged;
    unsigned notes;
    unsigned long long dropped;
    count_log(text, &logged, &notes, &dropped);
    assert_int_equal(x.clean, 1);
    assert_int_equal(notes, 1);
    assert_int_equal(logged + dropped, 250000);
    assert_int_equal(stderr_taken, 250000);
    /* The burst, and what 100 bytes a second add while the shell runs. */
    assert_true(logged <= 5000 + 100 * 30);
    assert_int_equal(stderr_dropped_seen, dropped);
    assert_int_equal(proc_stderr_dropped_total() - before, dropped);
}

/* A program that writes stderr faster than PROC_STDERR_READ_RATE is held
 * to it: 48 MiB take at least the 2 s past the first second's burst, and
 * the callback still gets every byte. */
static void test_stderr_read_is_paced(void **state)
{
    char log[32];
    int saved = stderr_capture(log, sizeof log);
    struct fx x = {0};
    script(&x, "head -c 50331648 /dev/zero >&2\nexit 0");
    alarm(60);
    char errmsg[ERRMSG_SIZE];
    struct proc_config cfg = {.path = x.script,
                              .name = "t",
                              .ship_id = "t",
                              .on_stderr = on_stderr_count};
    stderr_taken = 0;
    assert_int_equal(uv_loop_init(&x.loop), 0);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(
        proc_spawn(&x.p, &x.loop, &cfg, on_frame, on_exit_cb, &x, errmsg), 0);
    run_until_gone(&x);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    unlink(x.script);
    stderr_restore(saved);
    unlink(log);
    assert_int_equal(x.clean, 1);
    assert_int_equal(stderr_taken, 50331648);
    if (ms < 1800) {
        fail_msg("48 MiB of stderr read in %llu ms", (unsigned long long)ms);
    }
}

/* A program's memory counts what it started: a child holding 8 MB, found
 * in the process tree at first and in the cgroup once there is one. */
static void test_memory_counts_children(void **state)
{
    struct fx x = {0};
    /* The child holds an 8 MB string, then says so with a READY frame;
     * the shell would exec a subshell's last command, dropping it. */
    script(&x, "(x=$(head -c 8000000 /dev/zero | tr '\\0' a)\n"
               "printf '\\002\\000\\000\\000\\201\\001'; sleep 30; "
               "true) &\n"
               "exec sleep 31");
    spawn(&x, x.script);
    run_until_frames(&x, 1);
    assert_int_equal(x.frames, 1);
    uint64_t bytes = 0;
    assert_int_equal(proc_memory(x.p, &bytes), 0);
    assert_true(bytes >= 8000000);
    if (strcmp(proc_freezer_name(), "sigstop") != 0) {
        assert_true(wait_attached((int)proc_pid(x.p)));
        assert_int_equal(proc_memory(x.p, &bytes), 0);
        assert_true(bytes >= 8000000);
    }
    assert_true(bytes < 256u * 1024 * 1024);
    proc_kill(x.p, "test over");
    run_until_gone(&x);
    unlink(x.script);
}

static void test_freezer_detected(void **state)
{
    const char *name = use_freezer(NULL);
    assert_true(strcmp(name, "cgroup2") == 0 || strcmp(name, "cgroup1") == 0 ||
                strcmp(name, "sigstop") == 0);
    print_message("freezer on this host: %s\n", name);
    check_freeze_stops_progress();
    check_kill_while_frozen();
    check_frozen_keeps_its_input();
    check_children_adopted();
    check_end_during_attach();
    check_children_die_all();
    check_setup_kills_leftovers();
}

static void test_freezer_cgroup1(void **state)
{
    if (strcmp(use_freezer("cgroup1"), "cgroup1") != 0) {
        use_freezer(NULL);
        skip();
    }
    check_freeze_stops_progress();
    check_kill_while_frozen();
    check_frozen_keeps_its_input();
    check_children_adopted();
    check_end_during_attach();
    check_children_die_all();
    check_setup_kills_leftovers();
    use_freezer(NULL);
}

static void test_freezer_sigstop(void **state)
{
    assert_string_equal(use_freezer("sigstop"), "sigstop");
    check_freeze_stops_progress();
    check_kill_while_frozen();
    check_frozen_keeps_its_input();
    check_children_adopted();
    check_end_during_attach();
    check_children_die_all();
    check_setup_kills_leftovers();
    use_freezer(NULL);
}

/* Start a script with caps, as spawn does without. */
static void spawn_capped(struct fx *x, const char *path, const struct caps *c)
{
    alarm(60);
    char errmsg[ERRMSG_SIZE];
    struct proc_config cfg = {
        .path = path, .name = "t", .ship_id = "t", .caps = *c};
    assert_int_equal(uv_loop_init(&x->loop), 0);
    assert_int_equal(
        proc_spawn(&x->p, &x->loop, &cfg, on_frame, on_exit_cb, x, errmsg), 0);
}

/* Run the loop until the proc's caps can be read (its cgroups are made). */
static void run_until_capped(struct fx *x, struct proc_caps_use *use)
{
    while (proc_caps_use(x->p, use) != 0) {
        assert_false(x->gone);
        uv_run(&x->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

/* Where the host enforces caps, a program that takes more memory than its
 * cap is killed by the kernel and its exit says so; its peak stays at the
 * cap. Without caps the test says which mechanism is missing. */
static void test_memory_cap_kills(void **state)
{
    print_message("caps on this host: %s\n", proc_caps_name());
    assert_string_not_equal(proc_caps_name(), "none");
    struct fx x = {0};
    /* It waits for its cgroups (made within milliseconds), then builds a
     * string of 80 MB in the shell. */
    script(&x, "read line\nx=$(head -c 80000000 /dev/zero | tr '\\0' a)\n"
               "echo survived >&2\nsleep 5");
    struct caps c = {.memory_bytes = 16 << 20};
    spawn_capped(&x, x.script, &c);
    struct proc_caps_use use;
    run_until_capped(&x, &use);
    assert_int_equal(use.oom_kills, 0);
    struct buf f;
    buf_init(&f);
    assert_int_equal(buf_append(&f, "go\n", 3), 0);
    assert_int_equal(proc_send(x.p, &f), 0);
    /* The shell, which holds the string, is the largest process of its
     * cgroup: the kernel kills it, and its exit says why. */
    for (int i = 0; i < 10000 && !x.gone; i++) {
        uv_run(&x.loop, UV_RUN_NOWAIT);
        if (!x.gone && proc_caps_use(x.p, &use) == 0) {
            assert_true(use.memory_peak_bytes <= c.memory_bytes);
        }
        usleep(1000);
    }
    if (!x.gone) {
        proc_kill(x.p, "test over: not killed for its memory");
    }
    run_until_gone(&x);
    assert_true(x.over_memory);
    assert_string_equal(x.why, "killed: over its memory cap");
    unlink(x.script);
}

/* A fork bomb stays within its pids cap, and a resize changes the cap of
 * the running program. */
static void test_pids_cap_holds(void **state)
{
    struct fx x = {0};
    /* The inner shell forks until a fork fails, and dies of it; the outer
     * one lives on. */
    script(&x, "read line\nsh -c 'for i in $(seq 40); do sleep 30 & done' "
               "2>/dev/null\nread line");
    struct caps c = {.pids = 8};
    spawn_capped(&x, x.script, &c);
    struct proc_caps_use use;
    run_until_capped(&x, &use);
    struct buf f;
    buf_init(&f);
    assert_int_equal(buf_append(&f, "go\n", 3), 0);
    assert_int_equal(proc_send(x.p, &f), 0);
    uint64_t most = 0;
    for (int i = 0; i < 3000 && most < 8; i++) {
        uv_run(&x.loop, UV_RUN_NOWAIT);
        assert_false(x.gone);
        assert_int_equal(proc_caps_use(x.p, &use), 0);
        assert_true(use.pids <= 8 && use.pids_peak <= 8);
        most = use.pids > use.pids_peak ? use.pids : use.pids_peak;
        usleep(1000);
    }
    assert_int_equal(most, 8);
    usleep(100 * 1000);
    uv_run(&x.loop, UV_RUN_NOWAIT);
    assert_false(x.gone);
    assert_int_equal(proc_caps_use(x.p, &use), 0);
    assert_true(use.pids <= 8);
    /* Raised at once: the cap is the kernel's. */
    struct caps more = {.pids = 16};
    assert_int_equal(proc_set_caps(x.p, &more), 0);
    proc_kill(x.p, "test over");
    run_until_gone(&x);
    unlink(x.script);
}

/* The launcher dies: programs start from this process again, and those it
 * started go on as before. */
static void test_launcher_gone(void **state)
{
    char errmsg[ERRMSG_SIZE];
    assert_int_equal(launcher_start(errmsg), 0);
    struct fx before = {0};
    spawn(&before, "/bin/cat");
    pid_t launcher = launcher_pid();
    assert_true(launcher > 0);
    assert_int_equal(kill(launcher, SIGKILL), 0);
    struct fx after = {0};
    spawn(&after, "/bin/cat");
    assert_false(launcher_running());
    struct fx *both[] = {&before, &after};
    for (int i = 0; i < 2; i++) {
        struct buf f;
        pattern_frame(&f, 0, 10);
        assert_int_equal(proc_send(both[i]->p, &f), 0);
        run_until_frames(both[i], 1);
        assert_int_equal(both[i]->frames, 1);
        proc_kill(both[i]->p, "test over");
        run_until_gone(both[i]);
    }
    /* The launcher was reaped: no zombie of it is left. */
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)launcher);
    assert_int_equal(access(path, F_OK), -1);
}

/* Start path by the launcher without waiting for its reply
 * (proc_config.start_async). */
static void spawn_async(struct fx *x, const char *path)
{
    alarm(60);
    char errmsg[ERRMSG_SIZE];
    struct proc_config cfg = {.path = path,
                              .name = "t",
                              .ship_id = "t",
                              .budget = x->budget,
                              .start_async = true};
    assert_true(launcher_running());
    assert_int_equal(uv_loop_init(&x->loop), 0);
    assert_int_equal(
        proc_spawn(&x->p, &x->loop, &cfg, on_frame, on_exit_cb, x, errmsg), 0);
}

/* A frame sent before the reply is held until the reply has brought the
 * pid, and the program's frames are read from then on; the loop ends once
 * the child is gone (nothing watches the launcher then). */
static void test_async_start(void **state)
{
    struct fx x = {0};
    spawn_async(&x, "/bin/cat");
    assert_int_equal(proc_pid(x.p), 0);
    struct buf f;
    pattern_frame(&f, 0, 10);
    assert_int_equal(proc_send(x.p, &f), 0);
    run_until_frames(&x, 1);
    assert_int_equal(x.frames, 1);
    pid_t pid = proc_pid(x.p);
    assert_true(pid > 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    char text[64];
    assert_true(read_proc_list((int)pid, "cmdline", text, sizeof text) > 0);
    assert_string_equal(text, "/bin/cat");
    proc_kill(x.p, "test over");
    run_until_gone(&x);
    assert_false(x.clean);
    assert_int_equal(access(path, F_OK), -1);
}

/* A kill before the reply ends the proc at once, its exit saying the
 * kill's reason and that the launcher had not answered; the child is
 * killed and reaped when the reply comes. */
static void test_async_kill_before_reply(void **state)
{
    struct fx x = {0};
    spawn_async(&x, "/bin/cat");
    assert_int_equal(proc_pid(x.p), 0);
    proc_kill(x.p, "early");
    run_until_gone(&x);
    assert_false(x.clean);
    assert_string_equal(
        x.why, "killed: early; the launcher had not answered its start");
}

/* A program that cannot be executed ends like one that exited. */
static void test_async_exec_failure(void **state)
{
    struct fx x = {0};
    script(&x, "exit 0");
    chmod(x.script, 0600);
    spawn_async(&x, x.script);
    run_until_gone(&x);
    assert_false(x.clean);
    assert_string_equal(x.why, "could not start: Permission denied");
    unlink(x.script);
}

/* Run x's loop without blocking until x's proc is gone, for about five
 * seconds at most: a start that hangs fails the test rather than the
 * alarm. */
static void run_a_while_until_gone(struct fx *x)
{
    for (int i = 0; i < 5000 && !x->gone; i++) {
        uv_run(&x->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

/* The pids cgroup the launcher starts programs in (cgcaps.h): its
 * directory, in dir. */
static void launcher_stage_dir(char *dir, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)launcher_pid());
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[1024];
    dir[0] = '\0';
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char *v1 = strstr(line, ":pids:");
        if (v1 != NULL) {
            snprintf(dir, size, "/sys/fs/cgroup/pids%s", v1 + 6);
            break;
        }
        if (strncmp(line, "0::", 3) == 0) {
            snprintf(dir, size, "/sys/fs/cgroup%s", line + 3);
        }
    }
    fclose(f);
    /* Caps are enforced on this machine (test_memory_cap_kills): the
     * launcher is staged. */
    assert_non_null(strstr(dir, "/staging"));
}

static void read_text(const char *dir, const char *name, char *text,
                      size_t size)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(text, (int)size, f));
    fclose(f);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* A start the kernel refuses for want of a process (a fork bomb has used
 * the staging cgroup's pids, clone fails with EAGAIN) ends with that
 * reason, and the reply after it goes to the start after it: a refusal's
 * EAGAIN is an answer, not "no reply yet". */
static void test_async_start_refused(void **state)
{
    char dir[PATH_MAX];
    launcher_stage_dir(dir, sizeof dir);
    char current[32] = "";
    char max[32] = "";
    read_text(dir, "pids.current", current, sizeof current);
    read_text(dir, "pids.max", max, sizeof max);
    /* No pid left to start a program with. */
    write_text(dir, "pids.max", current);
    struct fx x = {0};
    spawn_async(&x, "/bin/cat");
    run_a_while_until_gone(&x);
    write_text(dir, "pids.max", max);
    assert_true(x.gone);
    assert_false(x.clean);
    assert_string_equal(x.why,
                        "could not start: Resource temporarily unavailable");
    run_until_gone(&x);
    /* The next start is answered with its own child. */
    struct fx y = {0};
    spawn_async(&y, "/bin/cat");
    struct buf fr;
    pattern_frame(&fr, 0, 10);
    assert_int_equal(proc_send(y.p, &fr), 0);
    run_until_frames(&y, 1);
    for (int i = 0; i < 5000 && proc_pid(y.p) == 0 && !y.gone; i++) {
        uv_run(&y.loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_true(proc_pid(y.p) > 0);
    char text[64];
    assert_true(
        read_proc_list((int)proc_pid(y.p), "cmdline", text, sizeof text) > 0);
    assert_string_equal(text, "/bin/cat");
    proc_kill(y.p, "test over");
    run_until_gone(&y);
}

/* How many of this process's children run a command line holding
 * needle. */
static int children_running(const char *needle)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int pid = atoi(e->d_name);
        char path[300];
        char text[512];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = pid > 0 ? fopen(path, "r") : NULL;
        if (f == NULL) {
            continue;
        }
        size_t len = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[len] = '\0';
        const char *close = strrchr(text, ')');
        int ppid = 0;
        if (close == NULL || sscanf(close + 1, " %*c %d", &ppid) != 1 ||
            ppid != (int)getpid()) {
            continue;
        }
        snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        len = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        for (size_t i = 0; i < len; i++) {
            text[i] = text[i] == '\0' ? ' ' : text[i];
        }
        text[len] = '\0';
        n += strstr(text, needle) != NULL;
    }
    closedir(d);
    return n;
}

/* Stop (SIGSTOP) or resume the launcher, and wait until it is so. */
static void launcher_hold(bool hold)
{
    pid_t pid = launcher_pid();
    assert_int_equal(kill(pid, hold ? SIGSTOP : SIGCONT), 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    for (int i = 0; i < 5000; i++) {
        char text[512];
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        size_t len = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[len] = '\0';
        const char *close = strrchr(text, ')');
        assert_non_null(close);
        if ((close[2] == 'T') == hold) {
            return;
        }
        usleep(1000);
    }
    fail_msg("the launcher did not %s", hold ? "stop" : "resume");
}

/* A kill ends a start whose reply does not come (a launcher that hangs),
 * as the wake's deadline kills a program that makes no progress: the exit
 * is said at once, and once the reply comes after all, its child is
 * killed and reaped, the watch of the launcher goes, and the next start
 * gets its own child. */
static void test_async_kill_unanswered(void **state)
{
    struct fx x = {0};
    script(&x, "sleep 30\nexit 0");
    launcher_hold(true);
    spawn_async(&x, x.script);
    for (int i = 0; i < 100; i++) {
        uv_run(&x.loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_false(x.gone);
    assert_int_equal(proc_pid(x.p), 0);
    proc_kill(x.p, "no progress while waking");
    run_a_while_until_gone(&x);
    assert_true(x.gone);
    assert_false(x.clean);
    assert_string_equal(x.why, "killed: no progress while waking; the "
                               "launcher had not answered its start");
    assert_int_equal(proc_count(), 0);
    /* The reply comes late: its child goes, and so does the watch. */
    launcher_hold(false);
    int closed = UV_EBUSY;
    for (int i = 0; i < 5000 && closed != 0; i++) {
        uv_run(&x.loop, UV_RUN_NOWAIT);
        closed = uv_loop_close(&x.loop);
        usleep(1000);
    }
    assert_int_equal(closed, 0);
    assert_int_equal(children_running(x.script + 2), 0);
    unlink(x.script);
    struct fx y = {0};
    spawn_async(&y, "/bin/cat");
    for (int i = 0; i < 5000 && proc_pid(y.p) == 0 && !y.gone; i++) {
        uv_run(&y.loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_true(proc_pid(y.p) > 0);
    char text[64];
    assert_true(
        read_proc_list((int)proc_pid(y.p), "cmdline", text, sizeof text) > 0);
    assert_string_equal(text, "/bin/cat");
    proc_kill(y.p, "test over");
    run_until_gone(&y);
}

/* A start that waits for its reply, after one that does not: each gets
 * its own child. */
static void test_async_then_waiting_start(void **state)
{
    struct fx a = {0};
    spawn_async(&a, "/bin/cat");
    struct fx b = {0};
    spawn(&b, "/bin/cat");
    assert_true(proc_pid(b.p) > 0);
    struct fx *both[] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        struct buf f;
        pattern_frame(&f, 0, 10);
        assert_int_equal(proc_send(both[i]->p, &f), 0);
        run_until_frames(both[i], 1);
        assert_int_equal(both[i]->frames, 1);
    }
    /* The reply to a's start was read by b's. */
    assert_true(proc_pid(a.p) > 0);
    assert_int_not_equal(proc_pid(a.p), proc_pid(b.p));
    for (int i = 0; i < 2; i++) {
        proc_kill(both[i]->p, "test over");
        run_until_gone(both[i]);
    }
}

/* The launcher dies with an asynchronous start unanswered: the host starts
 * the program itself, as a start that waited for the reply does. */
static void test_async_launcher_dies_unanswered(void **state)
{
    char errmsg[ERRMSG_SIZE];
    assert_int_equal(launcher_start(errmsg), 0);
    pid_t launcher = launcher_pid();
    struct fx x = {0};
    launcher_hold(true);
    spawn_async(&x, "/bin/cat");
    struct buf f;
    pattern_frame(&f, 0, 10);
    assert_int_equal(proc_send(x.p, &f), 0);
    for (int i = 0; i < 50; i++) {
        uv_run(&x.loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(proc_pid(x.p), 0);
    assert_int_equal(kill(launcher, SIGKILL), 0);
    run_until_frames(&x, 1);
    assert_false(x.gone);
    assert_int_equal(x.frames, 1);
    assert_true(proc_pid(x.p) > 0);
    assert_false(launcher_running());
    proc_kill(x.p, "test over");
    run_until_gone(&x);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)launcher);
    assert_int_equal(access(path, F_OK), -1);
}

/* Start a launcher with a short deadline, and stop it: it is hung. */
static pid_t launcher_hung(void)
{
    char errmsg[ERRMSG_SIZE];
    assert_int_equal(launcher_start(errmsg), 0);
    launcher_set_deadline(300);
    pid_t launcher = launcher_pid();
    launcher_hold(true);
    return launcher;
}

/* The hung launcher was killed and reaped, and the deadline is back. */
static void launcher_hung_over(pid_t launcher)
{
    launcher_set_deadline(LAUNCHER_DEADLINE_MS);
    assert_false(launcher_running());
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)launcher);
    assert_int_equal(access(path, F_OK), -1);
}

/* A launcher that answers nothing for its deadline while a start awaits
 * its reply is killed, and the host starts the program itself: the start
 * goes on, its held frame delivered. */
static void test_async_launcher_hung(void **state)
{
    pid_t launcher = launcher_hung();
    struct fx x = {0};
    spawn_async(&x, "/bin/cat");
    struct buf f;
    pattern_frame(&f, 0, 10);
    assert_int_equal(proc_send(x.p, &f), 0);
    uint64_t t0 = uv_hrtime();
    run_until_frames(&x, 1);
    uint64_t waited_ms = (uv_hrtime() - t0) / 1000000;
    assert_false(x.gone);
    assert_int_equal(x.frames, 1);
    assert_true(proc_pid(x.p) > 0);
    assert_true(waited_ms >= 250);
    launcher_hung_over(launcher);
    proc_kill(x.p, "test over");
    run_until_gone(&x);
}

/* A start that waits on the launcher's reply waits no longer than the
 * deadline: the hung launcher is killed and the program started from the
 * host. */
static void test_launcher_hung_waiting_start(void **state)
{
    pid_t launcher = launcher_hung();
    struct fx x = {0};
    uint64_t t0 = uv_hrtime();
    spawn(&x, "/bin/cat");
    uint64_t waited_ms = (uv_hrtime() - t0) / 1000000;
    assert_true(waited_ms >= 250);
    assert_true(proc_pid(x.p) > 0);
    launcher_hung_over(launcher);
    echo_one_and_end(&x);
}

/* Stopping a hung launcher does not hold the host's stop: it is killed
 * once it has had the time to reap a run, and its deadline. */
static void test_launcher_stop_hung(void **state)
{
    alarm(60);
    pid_t launcher = launcher_hung();
    uint64_t t0 = uv_hrtime();
    launcher_stop();
    uint64_t waited_ms = (uv_hrtime() - t0) / 1000000;
    assert_true(waited_ms >= 3000 && waited_ms < 30000);
    launcher_hung_over(launcher);
}

int main(void)
{
    /* As the host does: the child must not inherit it. */
    signal(SIGPIPE, SIG_IGN);
    /* And what whoever starts a host may have left ignored, the two
     * signals glibc keeps for itself included (which only the raw call can
     * set): SIG_IGN is 1, the first word of the kernel's sigaction. */
    static const uint64_t ign[8] = {1};
    for (int sig = 32; sig <= 33; sig++) {
        syscall(SYS_rt_sigaction, sig, ign, NULL, sizeof(uint64_t));
    }
    signal(SIGUSR2, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames_round_trip_through_cat),
        cmocka_unit_test(test_clean_exit),
        cmocka_unit_test(test_exit_status_reported),
        cmocka_unit_test(test_oversized_frame_kills),
        cmocka_unit_test(test_zero_length_frame_kills),
        cmocka_unit_test(test_missing_program),
        cmocka_unit_test(test_exec_failures),
        cmocka_unit_test(test_path_search_finds_cat),
        cmocka_unit_test(test_four_fds_and_count),
        cmocka_unit_test(test_child_starts_clean),
        cmocka_unit_test(test_first_frame_waits_in_stdin),
        cmocka_unit_test(test_args_and_env),
        cmocka_unit_test(test_frames_cut_by_reads),
        cmocka_unit_test(test_frames_taken_counted_and_paused),
        cmocka_unit_test(test_frame_header_cut),
        cmocka_unit_test(test_oversized_header_cut_kills),
        cmocka_unit_test(test_out_of_memory_for_cut_frame_kills),
        cmocka_unit_test(test_stderr_reaches_log),
        cmocka_unit_test(test_memory_is_plausible),
        cmocka_unit_test(test_closed_output_kills),
        cmocka_unit_test(test_stderr_flood_is_limited),
        cmocka_unit_test(test_stderr_read_is_paced),
        cmocka_unit_test(test_memory_counts_children),
        cmocka_unit_test(test_freezer_detected),
        cmocka_unit_test(test_freezer_cgroup1),
        cmocka_unit_test(test_freezer_sigstop),
        cmocka_unit_test(test_memory_cap_kills),
        cmocka_unit_test(test_pids_cap_holds),
    };
    /* Every test twice: programs started from this process, then by a
     * launcher, as the host starts them. */
    int failed = cmocka_run_group_tests_name("direct", tests, NULL, NULL);
    char errmsg[ERRMSG_SIZE];
    assert_int_equal(launcher_start(errmsg), 0);
    failed += cmocka_run_group_tests_name("launcher", tests, NULL, NULL);
    const struct CMUnitTest async[] = {
        cmocka_unit_test(test_async_then_waiting_start),
        cmocka_unit_test(test_async_start),
        cmocka_unit_test(test_async_kill_before_reply),
        cmocka_unit_test(test_async_exec_failure),
        cmocka_unit_test(test_async_start_refused),
        cmocka_unit_test(test_async_kill_unanswered),
    };
    /* A launcher of its own: one test of the group before may have
     * killed the last. */
    launcher_stop();
    assert_int_equal(launcher_start(errmsg), 0);
    failed +=
        cmocka_run_group_tests_name("launcher, no wait", async, NULL, NULL);
    launcher_stop();
    const struct CMUnitTest gone[] = {
        cmocka_unit_test(test_launcher_gone),
        cmocka_unit_test(test_async_launcher_dies_unanswered),
        cmocka_unit_test(test_async_launcher_hung),
        cmocka_unit_test(test_launcher_hung_waiting_start),
        cmocka_unit_test(test_launcher_stop_hung),
    };
    failed += cmocka_run_group_tests_name("launcher gone", gone, NULL, NULL);
    proc_cleanup();
    return failed;
}
