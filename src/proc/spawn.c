#include "proc/spawn.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "proc/harden.h"

/* The kernel's signal set: 64 bits on every Linux architecture we run. */
#define SPAWN__SIGSET_SIZE sizeof(uint64_t)

struct spawn__run {
    const struct spawn_job *job;
    volatile int
        err; /* written by the child, read once it has exec'd or exited */
};

/* The child, on the starter's memory and its own stack, while the starter
 * waits (CLONE_VFORK): system calls only, raw where libc or a sanitizer
 * would look at per-thread state. */
static int spawn__child(void *arg)
{
    struct spawn__run *r = arg;
    const struct spawn_job *j = r->job;
    /* Handlers go at exec by themselves; an ignored signal (the host
     * ignores SIGPIPE, and whoever started the host may have ignored
     * others) would stay ignored. The raw call reaches the two signals
     * glibc keeps for itself as well; an all-zero kernel sigaction is
     * SIG_DFL, no flags and an empty mask whatever the architecture's
     * layout. Every signal is blocked meanwhile (by the starter). */
    static const uint64_t dfl[8];
    for (int s = 1; s < NSIG; s++) {
        syscall(SYS_rt_sigaction, s, dfl, NULL, SPAWN__SIGSET_SIZE);
    }
    if (setsid() < 0 || dup2(j->in, 0) < 0 || dup2(j->out, 1) < 0 ||
        dup2(j->errw, 2) < 0) {
        r->err = errno;
        _exit(127);
    }
    /* Before the death signal: a change of user clears it. What follows
     * is allowed by the filter. */
    int e = harden_child(j->dir, j->network, j->uid);
    if (e != 0) {
        r->err = e;
        _exit(127);
    }
    if (syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
        r->err = errno;
        _exit(127);
    }
    /* A parent that died before the prctl sends nothing: the child has
     * been handed to another process already. */
    if ((pid_t)syscall(SYS_getppid) != j->parent) {
        r->err = ESRCH;
        _exit(127);
    }
    /* A program runs as a batch task: waking it (an event written to its
     * pipe) does not preempt the host's loop, which goes on serving other
     * ships and requests while the woken program waits for a core. Its
     * share of the CPU is unchanged. Best effort: a kernel or a filter
     * that refuses leaves the program a normal task. */
    static const int batch_priority;
    syscall(SYS_sched_setscheduler, 0, SCHED_BATCH, &batch_priority);
    static const uint64_t none;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, SPAWN__SIGSET_SIZE);
    execve(j->file, j->argv, j->envp);
    r->err = errno;
    _exit(127);
}

int spawn_program(const struct spawn_job *job, int flags, pid_t *pid)
{
    static uint8_t stack[64 * 1024] __attribute__((aligned(16)));
    struct spawn__run r = {job, 0};
    uint64_t all = ~(uint64_t)0;
    uint64_t old;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, SPAWN__SIGSET_SIZE);
    pid_t c = clone(spawn__child, stack + sizeof stack,
                    CLONE_VM | CLONE_VFORK | SIGCHLD | flags, &r);
    int e = c < 0 ? errno : r.err;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, SPAWN__SIGSET_SIZE);
    *pid = c < 0 ? 0 : c;
    return e;
}
