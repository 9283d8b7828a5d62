/* Cgroups that refused their removal, tried again later.
 *
 * A killed program's children die a moment after the program is reaped,
 * and until the last of them is gone (and reaped, by whoever is now its
 * parent) its cgroups refuse rmdir with EBUSY. Rather than wait on the
 * loop's thread, the removal is tried again at the next few removals of
 * the same kind: each one first retries the cgroups held from before,
 * then tries its own. A cgroup still busy after CGBUSY_TRIES retries, or
 * one that finds the list full, is left to the owner's cleanup, or to the
 * next start of the host. Both the freezer's cgroups (freezer.c) and the
 * caps' (cgcaps.c) keep such a list; the list knows nothing of cgroups,
 * only of the try the owner passes. Loop thread only. */
#ifndef BERTH_PROC_CGBUSY_H
#define BERTH_PROC_CGBUSY_H

#include <stdbool.h>
#include <sys/types.h>

/* How many busy cgroups one list holds, and how often each is retried. */
#define CGBUSY_MAX 32
#define CGBUSY_TRIES 8

/* One try at removing pid's cgroups: true while they are still there. */
typedef bool (*cgbusy_try_fn)(pid_t pid);

/* The cgroups held for another try; all zero is empty. */
struct cgbusy {
    struct {
        pid_t pid;
        int tries;
    } held[CGBUSY_MAX];
    int n;
};

/* Retry every held cgroup with try_remove, dropping the ones gone and the
 * ones out of tries. */
void cgbusy_retry(struct cgbusy *b, cgbusy_try_fn try_remove);

/* Retry every held cgroup (cgbusy_retry), then try pid's, and hold it if
 * it is still busy. */
void cgbusy_remove(struct cgbusy *b, pid_t pid, cgbusy_try_fn try_remove);

/* Forget every held cgroup (the owner's cleanup removes what is left). */
void cgbusy_clear(struct cgbusy *b);

#endif
