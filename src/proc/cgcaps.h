/* Caps on a program's memory, CPU and processes, enforced by the kernel
 * through cgroups (the caps themselves: core/caps.h).
 *
 * Two tables of operations do the work, one per cgroup version, and the
 * host picks one at detection:
 *
 *  - cgroup2, where the host's cgroup v2 freezer is in use and the
 *    hierarchy hands down the memory and pids controllers (cpu too where
 *    it can): the program's own cgroup (freezer.h) gets memory.max,
 *    memory.swap.max 0, pids.max and cpu.max, written after its mkdir and
 *    before the program is moved in; memory.peak, pids.peak, cpu.stat and
 *    memory.events' oom_kill are read back.
 *  - cgroup1, where the host has v1 memory and pids hierarchies (and cpu,
 *    cpuacct where mounted): the program gets a cgroup of its own in each,
 *    <its cgroup there>/berth-<tag>/<run>/<pid> as for the freezer, with
 *    memory.limit_in_bytes (and memsw, where swap is accounted), pids.max
 *    and cpu.cfs_quota_us over a 100 ms period, written before it is moved
 *    in; memory.max_usage_in_bytes, pids.current/pids.peak, cpuacct.usage
 *    and memory.oom_control's oom_kill are read back.
 *  - none, elsewhere: caps are recorded but not enforced, which the host
 *    says in its log once at start and in `berth stats`.
 *
 * Over its memory cap the kernel's OOM killer kills a process of the
 * program's cgroup; the host then kills the rest and learns why from the
 * oom_kill count (cgcaps_read). A fork past the pids cap fails with
 * EAGAIN. Over its CPU share the program is throttled, not killed.
 *
 * Like the freezer, the program is moved into its cgroups on a worker
 * thread a few milliseconds after it starts (freezer.c says why), with
 * what it started by then; the caps are in its cgroups before it enters.
 * Until then it is held by the staging cgroup: the launcher (launcher.h)
 * moves itself into <run>/staging at its start, once, so that every
 * program it starts is born there, under a pids cap of CGCAPS_STAGE_PIDS
 * for all of them together; a fork bomb that starts before its own cgroup
 * is made stays within that, and what is left in staging once the
 * program's tree was moved out is killed (cgcaps_stage_sweep). Programs
 * started without the launcher are born in the host's cgroup.
 * Internal to src/proc: the detection runs on the loop's thread, the
 * attach on a worker once detection has returned. */
#ifndef BERTH_PROC_CGCAPS_H
#define BERTH_PROC_CGCAPS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/caps.h"

/* How caps are enforced on this host. */
enum cgcaps_kind {
    CGCAPS_NONE = 1,
    CGCAPS_CGROUP1 = 2,
    CGCAPS_CGROUP2 = 3,
};

/* What a program's cgroups say of its use; a figure the mechanism does not
 * keep is 0. */
struct cgcaps_use {
    uint64_t memory_bytes;      /* now */
    uint64_t memory_peak_bytes; /* the most since it started */
    uint64_t pids;              /* processes and threads now */
    uint64_t pids_peak;         /* the most at once (Linux 6.13) */
    uint64_t cpu_usec;          /* CPU time, what it started included */
    uint64_t oom_kills;         /* processes the kernel killed over the cap */
};

/* The most processes and threads of every program not yet in its own
 * cgroups, together (the staging cgroup's pids cap). */
#define CGCAPS_STAGE_PIDS 64

/* Return the mechanism, detecting it on the first call (after the
 * freezer's detection, which it follows: cgroup2 caps only with a cgroup2
 * freezer). The environment variable BERTH_CAPS=none, read at detection,
 * turns caps off. */
enum cgcaps_kind cgcaps_detect(void);

/* Return the name of a mechanism: "cgroup2", "cgroup1" or "none". */
const char *cgcaps_name(enum cgcaps_kind kind);

/* Before pid enters its cgroup at dir (cgroup2: the freezer's), or its
 * own v1 cgroups (made here), write caps there. Returns 0, or BERTH_EIO
 * when a cgroup could not be made or a cap not written (then nothing is
 * left behind). For a worker thread, like freezer_attach. */
int cgcaps_prepare(pid_t pid, const char *dir, const struct caps *caps);

/* Move pid into its v1 cgroups (cgroup2: nothing, the freezer's move is
 * the one), and what it has started so far; after cgcaps_prepare. Returns
 * 0 or BERTH_EIO. */
int cgcaps_enter(pid_t pid);

/* Change pid's caps at once, on a running program. Returns 0 or
 * BERTH_EIO (a memory cap below what the program uses now may be refused
 * by cgroup v1: the program keeps its old cap). */
int cgcaps_set(pid_t pid, const char *dir, const struct caps *caps);

/* Read what pid's cgroups say of its use into *use. Returns 0 or
 * BERTH_EIO. */
int cgcaps_read(pid_t pid, const char *dir, struct cgcaps_use *use);

/* Open the one file that counts pid's CPU time in its cgroups, for
 * cgcaps_cpu_read. Returns a descriptor, which the caller closes (before
 * the cgroups' removal), or BERTH_EIO. */
int cgcaps_cpu_open(pid_t pid, const char *dir);

/* Read the CPU time counted by fd (cgcaps_cpu_open), in microseconds,
 * into *usec: one pread, for the per-event CPU limit, which looks at
 * every event's start (opening, reading and closing the file by its path
 * cost the loop about 24 us an event). Returns 0 or BERTH_EIO. */
int cgcaps_cpu_read(int fd, uint64_t *usec);

/* Read only how many of pid's processes the kernel killed over the
 * memory cap into *n: one file, where cgcaps_read reads six, for the
 * host's question at every program's end, on the loop. Returns 0 or
 * BERTH_EIO. */
int cgcaps_oom_kills(pid_t pid, const char *dir, uint64_t *n);

/* Move the calling process into the staging cgroups, so that what it
 * starts is born there; for the launcher, at its start, after detection.
 * Returns 0, or BERTH_EIO (then it stays where it was). */
int cgcaps_stage_self(void);

/* Move the calling process (the launcher, at its end) out of the staging
 * cgroups, back into the cgroups the host was started in, and remove what
 * is left of this run's cap cgroups: staging, the run's directory and the
 * tag's group, where empty. Best effort. */
void cgcaps_unstage(void);

/* Called by cgcaps_stage_sweep for each process of the staging cgroup;
 * returns whether it may stay. */
typedef bool (*cgcaps_keep_fn)(pid_t pid, void *arg);

/* Kill every process of the staging cgroup that keep does not keep: what
 * a program started before its move and the move missed. */
void cgcaps_stage_sweep(cgcaps_keep_fn keep, void *arg);

/* Remove pid's v1 cgroups once pid and everything it started are gone
 * (cgroup2: the freezer removes the one cgroup). Best effort; what stays
 * busy is removed by cgcaps_cleanup or the host's next start. */
void cgcaps_remove(pid_t pid);

/* Remove pid's v1 cgroups now, once, with no retry (cgroup2: nothing, the
 * freezer's is the one); returns whether one is still there. For a worker
 * thread, as freezer_rmdir; cgcaps_remove then takes on what is still
 * busy. */
bool cgcaps_rmdir(pid_t pid);

/* Try again to remove the cgroups earlier removals found busy (as
 * cgcaps_remove does before its own). */
void cgcaps_retry_busy(void);

/* Remove what an earlier run of tag left in the v1 cap hierarchies (its
 * processes were killed through the freezer's; the directories stay
 * until here). */
void cgcaps_claim(const char *tag);

/* Remove every empty program cgroup of this run from the v1 cap
 * hierarchies and, with all, the run's directory and the tag's group if
 * empty, forgetting the detection. */
void cgcaps_cleanup(bool all);

#endif
