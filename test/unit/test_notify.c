/* Socket activation: the sockets a service manager passes are found by
 * name (front, tls, or the only one when none is named), only when they are
 * meant for this process, and handed on to the next program as a manager
 * would hand them. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/err.h"
#include "lib/notify.h"

/* Open descriptors 3 and 4 (on /dev/null: what they are does not matter
 * here) and set the variables as a manager would for this process. */
static void notify__pass(const char *pid, const char *fds, const char *names)
{
    for (int fd = 3; fd <= 4; fd++) {
        int n = open("/dev/null", O_RDONLY);
        assert_true(n >= 0);
        if (n != fd) {
            assert_int_equal(dup2(n, fd), fd);
            close(n);
        }
    }
    char self[24];
    snprintf(self, sizeof self, "%d", (int)getpid());
    setenv("LISTEN_PID", pid != NULL ? pid : self, 1);
    setenv("LISTEN_FDS", fds, 1);
    if (names != NULL) {
        setenv("LISTEN_FDNAMES", names, 1);
    } else {
        unsetenv("LISTEN_FDNAMES");
    }
}

static void test_notify_named(void **state)
{
    (void)state;
    int front, tls;
    notify__pass(NULL, "2", "tls:front");
    assert_int_equal(notify_listen_fds(&front, &tls), 2);
    assert_int_equal(front, 4);
    assert_int_equal(tls, 3);
    assert_null(getenv("LISTEN_FDS")); /* taken: not for a child */
    assert_true(fcntl(3, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(4, F_GETFD) & FD_CLOEXEC);

    notify__pass(NULL, "1", NULL); /* the only one, unnamed: the front */
    assert_int_equal(notify_listen_fds(&front, &tls), 1);
    assert_int_equal(front, 3);
    assert_int_equal(tls, -1);

    notify__pass(NULL, "2", "admin:other"); /* none of ours */
    assert_int_equal(notify_listen_fds(&front, &tls), 2);
    assert_int_equal(front, -1);
    assert_int_equal(tls, -1);

    notify__pass("1", "2", "front:tls"); /* another process's */
    assert_int_equal(notify_listen_fds(&front, &tls), 0);
    assert_int_equal(front, -1);
    assert_int_equal(tls, -1);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
}

static void test_notify_pass_on(void **state)
{
    (void)state;
    int front, tls;
    notify__pass(NULL, "2", "front:tls");
    assert_int_equal(notify_listen_fds(&front, &tls), 2);
    assert_int_equal(notify_listen_fds_pass(front, tls), 0);
    assert_string_equal(getenv("LISTEN_FDS"), "2");
    assert_string_equal(getenv("LISTEN_FDNAMES"), "front:tls");
    assert_false(fcntl(3, F_GETFD) & FD_CLOEXEC); /* kept across exec */
    assert_false(fcntl(4, F_GETFD) & FD_CLOEXEC);
    /* What the next process finds is what this one had. */
    assert_int_equal(notify_listen_fds(&front, &tls), 2);
    assert_int_equal(front, 3);
    assert_int_equal(tls, 4);

    assert_int_equal(notify_listen_fds_pass(4, 3), 0);
    assert_string_equal(getenv("LISTEN_FDNAMES"), "tls:front");
    assert_int_equal(notify_listen_fds_pass(3, -1), 0);
    assert_string_equal(getenv("LISTEN_FDS"), "1");
    assert_string_equal(getenv("LISTEN_FDNAMES"), "front");
    /* Not the row from 3 on that a manager passes. */
    assert_int_equal(notify_listen_fds_pass(4, -1), BERTH_EIO);
    assert_int_equal(notify_listen_fds_pass(3, 3), BERTH_EIO);
    assert_int_equal(notify_listen_fds_pass(3, 5), BERTH_EIO);
    assert_int_equal(notify_listen_fds_pass(2, -1), BERTH_EIO);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    close(3);
    close(4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify_named),
        cmocka_unit_test(test_notify_pass_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
