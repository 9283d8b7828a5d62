/* Starting one program process: what the host and the launcher share.
 *
 * The child is made with clone(CLONE_VM | CLONE_VFORK): it runs on the
 * starter's memory, on a stack of its own, while the starter waits for its
 * exec, so the cost does not grow with the starter's memory (as fork's
 * would) and the child can report a failed exec through memory. Before the
 * exec it resets every signal to its default action (the two glibc keeps
 * for itself included), takes a session and process group of its own,
 * puts its descriptors in place, asks for SIGKILL when its parent dies
 * (PR_SET_PDEATHSIG) and then checks that the parent is still the one it
 * must die with, since a parent that died before the request sends
 * nothing, and becomes a batch task (SCHED_BATCH), so that waking it does
 * not preempt the host. The starter blocks every signal around the clone, so
 * that no handler of the starter runs in the child on shared memory.
 *
 * Internal to src/proc. One thread at a time: the child's stack is one
 * static buffer. */
#ifndef BERTH_PROC_SPAWN_H
#define BERTH_PROC_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

/* What to start; every pointer stays the caller's. */
struct spawn_job {
    const char *file;  /* the executable's path (no PATH search) */
    char *const *argv; /* NULL-terminated */
    char *const *envp; /* NULL-terminated: the whole environment */
    int in;            /* becomes stdin */
    int out;           /* becomes stdout */
    int errw;          /* becomes stderr */
    pid_t parent;      /* the process whose death kills the child: the
                          child's parent after the clone */
    const char *dir;   /* its working directory; NULL or "": the starter's */
    bool network;      /* it keeps the host's network (harden_child) */
    long uid;          /* the uid it runs as (harden_uid_take); -1: the
                          starter's */
};

/* Start job with clone(CLONE_VM | CLONE_VFORK | SIGCHLD | flags); flags
 * may add CLONE_PARENT. Returns 0 with *pid set; or the errno of a failed
 * start, with *pid set to the child if one was made (it has exited and its
 * parent must reap it) or to 0. */
int spawn_program(const struct spawn_job *job, int flags, pid_t *pid);

#endif
