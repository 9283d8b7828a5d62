/* The processes a program started, as /proc shows them.
 *
 * A program may fork, and what it starts must die with it and counts
 * against its memory. Where the host has cgroups, a program's cgroup lists
 * its processes (cgroup.procs); elsewhere they are found by following
 * /proc/<pid>/task/<tid>/children down from the program, which misses a
 * process whose parent has exited (the kernel hands it to init). Every
 * program also carries the host's BERTH_HOST variable in its environment,
 * and so does whatever it starts unless it clears its environment: that
 * finds a host's processes after its own death, cgroups or not.
 *
 * Internal to src/proc; no state, safe on any thread. */
#ifndef BERTH_PROC_TREE_H
#define BERTH_PROC_TREE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Return whether name is a non-empty string of digits (a pid in /proc). */
bool tree_is_number(const char *name);

/* Read the small file at path (a /proc or cgroup file) into buf, NUL-
 * terminated, at most size - 1 bytes. Returns its length, or -1 when it
 * cannot be read or is empty. */
ssize_t tree_read_small(const char *path, char *buf, size_t size);

/* Set *usec to pid's CPU time, user and system, its waited-for children's
 * included (/proc/PID/stat). Returns 0 or BERTH_EIO. */
int tree_cpu_usec(pid_t pid, uint64_t *usec);

/* Called for each process found, with the caller's arg; returns whether to
 * look below it (tree_walk) or to go on (tree_list). */
typedef bool (*tree_visit_fn)(pid_t pid, void *arg);

/* Call visit for every child of every thread of pid, and below each child
 * for which visit returns true, down to depth levels below pid. A child is
 * visited before its own children are listed. */
void tree_walk(pid_t pid, int depth, tree_visit_fn visit, void *arg);

/* Call visit for each pid in the file at path, a list of decimal numbers
 * (cgroup.procs), until visit returns false. Returns how many were
 * visited, or -1 if the file cannot be read. */
int tree_list(const char *path, tree_visit_fn visit, void *arg);

/* Return this process's resident memory in bytes (the resident pages of
 * /proc/self/statm), or 0 when it cannot be read. */
uint64_t tree_self_rss(void);

/* Return the descriptors this process has open now (/proc/self/fd), or 0
 * when they cannot be listed. */
uint64_t tree_self_fds(void);

/* Set *bytes to pid's anonymous resident memory (resident minus shared
 * pages of /proc/<pid>/statm). Returns 0, or BERTH_EIO when pid is gone. */
int tree_anon_bytes(pid_t pid, uint64_t *bytes);

/* A tree_visit_fn that adds pid's anonymous resident memory, if pid is
 * still there, to the uint64_t at arg; always returns true. */
bool tree_add_anon(pid_t pid, void *arg);

/* Set *bytes to the anonymous resident memory of pid and of what tree_walk
 * finds below it. Returns 0, or BERTH_EIO when pid itself is gone. */
int tree_anon_bytes_below(pid_t pid, uint64_t *bytes);

/* Send SIGKILL to every process but this one whose environment has an
 * entry equal to entry (exact) or starting with it: "BERTH_HOST=tag/run"
 * for one run of a host, "BERTH_HOST=tag/" for all its runs. A pidfd holds
 * each process from the look at its environment to the signal, so a pid
 * used again meanwhile is never hit. Returns how many were signalled. */
unsigned tree_kill_tagged(const char *entry, bool exact);

#endif
