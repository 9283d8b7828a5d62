/* Stopping a program and everything it started: the host's frozen tier,
 * and the kill that ends a program with all it started.
 *
 * The cgroup freezer stops every process of a cgroup, including processes
 * that left the program's process group, and is used where the host has
 * one. The cgroups of a host live under its own cgroup, in a group named
 * after the host's tag (its data directory's identity, see freezer_claim;
 * the pid of a process that names none) with one directory per run of the
 * host below it: <cgroup>/berth-<tag>/<run>/<program pid>. A host that
 * starts kills and removes what earlier runs left in its group, and no
 * other host's. Without a usable cgroup freezer, SIGSTOP and SIGCONT go to
 * the program's process group.
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
#include <stdint.h>
#include <sys/types.h>

/* How one program is frozen. */
enum freezer_kind {
    FREEZER_SIGSTOP = 1,
    FREEZER_CGROUP1 = 2,
    FREEZER_CGROUP2 = 3,
};

/* Name this process's cgroups after tag (letters, digits, '-', '_' and
 * '.', not all digits) and a new run, forgetting any detection, and kill
 * whatever an earlier run of the same tag left: every process in the tag's
 * group in either cgroup hierarchy (waiting, at most 3 s, until they are
 * gone, then removing the group), and every process whose environment has
 * BERTH_HOST=<tag>/..., which finds them without cgroups too. Call it with
 * no program alive, before freezer_detect. Returns 0 with *killed set to
 * how many processes were killed, or BERTH_EINVAL for a bad tag. */
int freezer_claim(const char *tag, unsigned *killed);

/* Return "<tag>/<run>", this run's identity, which programs get as
 * BERTH_HOST; the names are made on the first call if freezer_claim was
 * not called. The string is static. */
const char *freezer_host_id(void);

/* Kill every process of this run: its cgroups, waiting (at most 3 s) until
 * they are gone and then removing them, and every process whose
 * environment has BERTH_HOST=<this run's identity>. For a process that
 * outlives the host to call (the launcher), with the state it inherited.
 * Returns how many were killed. */
unsigned freezer_kill_run(void);

/* Return the mechanism this host uses, detecting it on the first call. */
enum freezer_kind freezer_detect(void);

/* Return the name of a mechanism: "sigstop", "cgroup1" or "cgroup2". */
const char *freezer_name(enum freezer_kind kind);

/* Called by freezer_attach with the new cgroup's directory, before pid
 * enters it; a nonzero return gives up the cgroup. */
typedef int (*freezer_prepare_fn)(pid_t pid, const char *dir, void *arg);

/* Give pid a cgroup of its own and move it there, calling prepare (NULL:
 * none) on the cgroup before the move; this may block for
 * milliseconds (see freezer.c), so it belongs on a worker thread. Returns
 * the mechanism that freezes pid from now on: the host's, or
 * FREEZER_SIGSTOP when the host has no cgroup freezer or the cgroup could
 * not be set up (then no directory is left behind). pid must stay unreaped
 * until it returns. */
enum freezer_kind freezer_attach(pid_t pid, freezer_prepare_fn prepare,
                                 void *arg);

/* Copy this process's own cgroup directory in the cgroup2 hierarchy
 * (version 2) or in the cgroup1 hierarchy of controller ctl (version 1)
 * into out, a PATH_MAX buffer; 0 or BERTH_ENOTFOUND. */
int freezer_own_dir(int version, const char *ctl, char *out);

/* Copy the directory of pid's cgroup in this run's freezer hierarchy into
 * dir, a PATH_MAX buffer; 0 or BERTH_EIO. */
int freezer_pid_dir(pid_t pid, char *dir);

/* Kill every process of the cgroup at dir (of the given version) and below
 * it, wait (at most 3 s) until they are gone, and remove the cgroups;
 * returns how many processes there were. */
unsigned freezer_kill_tree(const char *dir, int version);

/* Move what pid has started so far (its children, theirs, and so on) into
 * pid's cgroup, after freezer_attach succeeded. A process that left the
 * tree (its parent exited) is not found. */
void freezer_adopt(pid_t pid);

/* Stop (frozen true) or resume pid and the processes that belong with it,
 * by kind; returns 0 or BERTH_EIO. */
int freezer_set(enum freezer_kind kind, pid_t pid, bool frozen);

/* Send SIGKILL to every process of pid's cgroup: cgroup.kill with cgroup
 * v2, else each process listed, frozen meanwhile and thawed after so that
 * a cgroup v1 freeze cannot hold the kill back. Does nothing for
 * FREEZER_SIGSTOP. */
void freezer_kill_all(enum freezer_kind kind, pid_t pid);

/* Set *bytes to the memory of pid's cgroup: memory.current (cgroup v2) or
 * memory.usage_in_bytes (a cgroup v1 freezer hierarchy that has the memory
 * controller too) where the cgroup accounts memory, else the sum of the
 * anonymous resident memory of its processes. Returns 0, or BERTH_EIO when
 * pid has no cgroup with a process in it. */
int freezer_memory(pid_t pid, uint64_t *bytes);

/* Set *usec to the CPU time used by the processes of pid's cgroup, those
 * gone included (cgroup v2's cpu.stat usage_usec). Returns 0, or
 * BERTH_EIO without a cgroup v2 of pid's. */
int freezer_cpu(pid_t pid, uint64_t *usec);

/* Remove pid's cgroup once pid has been reaped. If a process that pid
 * started still lives in it, it is killed again, and the removal tried
 * again at the next few removals and otherwise left for freezer_cleanup. */
void freezer_remove(pid_t pid);

/* Remove pid's cgroup now, once, with no retry: 0, or the errno of rmdir
 * (EBUSY while a process it started still lives in it). For a worker
 * thread, at a program's end and before its reap, so that its pid, the
 * cgroup's name, cannot go to another program meanwhile; freezer_remove
 * then takes on a cgroup still busy. */
int freezer_rmdir(pid_t pid);

/* Try again to remove the cgroups earlier removals found busy (as
 * freezer_remove does before its own). */
void freezer_retry_busy(void);

/* Remove every empty program cgroup of this run, and when all is true also
 * the run's directory and the group if it is empty, forgetting the
 * detection (not the names) so that the next use detects again. */
void freezer_cleanup(bool all);

#endif
