/* The supervisor on real processes: frames round-trip through a child, bad
 * frames and kills end it with a reason, and the loop closes cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/err.h"
#include "proc/proc.h"

struct fx {
    uv_loop_t loop;
    struct proc *p;
    unsigned frames;
    uint8_t last_type;
    bool gone;
    int clean;
    char why[200];
    char script[64];
};

static void on_frame(struct proc *p, const struct frame *f, void *arg)
{
    struct fx *x = arg;
    x->frames++;
    x->last_type = f->type;
}

static void on_exit_cb(struct proc *p, const char *why, int clean, void *arg)
{
    struct fx *x = arg;
    x->gone = true;
    x->clean = clean;
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
    char errmsg[ERRMSG_SIZE];
    struct proc_config cfg = {.path = path, .name = "t", .ship_id = "t"};
    assert_int_equal(uv_loop_init(&x->loop), 0);
    assert_int_equal(proc_spawn(&x->p, &x->loop, &cfg, on_frame, on_exit_cb,
                                x, errmsg),
                     0);
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
    struct proc_config cfg = {.path = "/nonexistent/prog", .name = "t",
                              .ship_id = "t"};
    assert_int_equal(uv_loop_init(&x.loop), 0);
    assert_int_equal(proc_spawn(&x.p, &x.loop, &cfg, on_frame, on_exit_cb, &x,
                                errmsg),
                     BERTH_ENOTFOUND);
    assert_non_null(strstr(errmsg, "/nonexistent/prog"));
    uv_run(&x.loop, UV_RUN_DEFAULT);
    assert_false(x.gone);
    assert_int_equal(uv_loop_close(&x.loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames_round_trip_through_cat),
        cmocka_unit_test(test_clean_exit),
        cmocka_unit_test(test_exit_status_reported),
        cmocka_unit_test(test_oversized_frame_kills),
        cmocka_unit_test(test_zero_length_frame_kills),
        cmocka_unit_test(test_missing_program),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
