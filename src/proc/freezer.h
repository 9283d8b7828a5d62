/* Stopping a program and everything it started: the host's frozen tier.
 *
 * The cgroup freezer stops every process of a cgroup, including processes
 * that left the program's process group, and is used where the host has
 * one. Each host process gets one directory under its own cgroup,
 * <cgroup>/berth-<hostpid>/, and each program process one below it, named
 * by its pid. Without a usable cgroup freezer, SIGSTOP and SIGCONT go to the
 * program's process group.
 *
 * The mechanism is detected once, on first use, and cached. The environment
 * variable BERTH_FREEZER, read at detection, narrows the choice: "sigstop"
 * forces signals, "cgroup2" or "cgroup1" allow only that cgroup version (and
 * signals where it is missing); any other value is ignored. Internal to
 * src/proc; the state is per process and kept by the loop's thread, except
 * that freezer_attach and freezer_adopt may run on a worker thread once
 * freezer_detect has returned. */
#ifndef BERTH_PROC_FREEZER_H
#define BERTH_PROC_FREEZER_H

#include <stdbool.h>
#include <sys/types.h>

/* How one program is frozen. */
enum freezer_kind {
    FREEZER_SIGSTOP = 1,
    FREEZER_CGROUP1 = 2,
    FREEZER_CGROUP2 = 3,
};

/* Return the mechanism this host uses, detecting it on the first call. */
enum freezer_kind freezer_detect(void);

/* Return the name of a mechanism: "sigstop", "cgroup1" or "cgroup2". */
const char *freezer_name(enum freezer_kind kind);

/* Give pid a cgroup of its own and move it there; this may block for
 * milliseconds (see freezer.c), so it belongs on a worker thread. Returns
 * the mechanism that freezes pid from now on: the host's, or
 * FREEZER_SIGSTOP when the host has no cgroup freezer or the cgroup could
 * not be set up (then no directory is left behind). pid must stay unreaped
 * until it returns. */
enum freezer_kind freezer_attach(pid_t pid);

/* Move what pid has started so far (its children, theirs, and so on) into
 * pid's cgroup, after freezer_attach succeeded. A process that left the
 * tree (its parent exited) is not found. */
void freezer_adopt(pid_t pid);

/* Stop (frozen true) or resume pid and the processes that belong with it,
 * by kind; returns 0 or BERTH_EIO. */
int freezer_set(enum freezer_kind kind, pid_t pid, bool frozen);

/* Send SIGKILL to every process of pid's cgroup (cgroup v2 only; does
 * nothing otherwise or on failure). */
void freezer_kill_all(enum freezer_kind kind, pid_t pid);

/* Remove pid's cgroup once pid has been reaped. If a process that pid
 * started still lives in it, it is tried again at the next few removals
 * and otherwise left for freezer_cleanup. */
void freezer_remove(pid_t pid);

/* Remove every empty program cgroup of this host, and when all is true
 * also the host's directory, forgetting the detection so that the next use
 * detects again. */
void freezer_cleanup(bool all);

#endif
