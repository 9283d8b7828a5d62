/* The launcher: a small process that starts programs for the host.
 *
 * Starting a process copies the starter's descriptor table, and exec then
 * closes every descriptor marked close-on-exec, one by one: with the 15,000
 * descriptors of a host running 5,000 programs, that made each start about
 * 1.5 ms slower. So the host forks a launcher at start, while it holds a
 * handful of descriptors, and asks it over a socket to start each program.
 * The launcher receives the program's stdio descriptors with the request
 * (SCM_RIGHTS) and starts it with clone(CLONE_VM | CLONE_VFORK |
 * CLONE_PARENT): the program is the host's child, not the launcher's, so the
 * host waits for it, gets its exit status and opens a pidfd for it as it
 * would for a process it had spawned itself.
 *
 * The launcher is optional: without one (unit tests, or after it died),
 * proc_spawn starts programs from the host in the same way (spawn.h). When
 * the host's end of the socket closes (the host stopped, or died however it
 * died, kill -9 included) the launcher kills every process of the host's
 * run, as freezer_kill_run does with the state it inherited at its fork,
 * and exits: a program dies with the host by itself, but not what it
 * started, nor a program that a cgroup v1 freezer holds. So the host starts
 * it after proc_setup. The request is a round trip that includes the
 * child's exec; a caller on a loop may send it (launcher_send) and read the
 * reply when the socket is readable (launcher_reply), rather than hold its
 * loop for it. */
#ifndef BERTH_PROC_LAUNCHER_H
#define BERTH_PROC_LAUNCHER_H

#include <stdbool.h>
#include <sys/types.h>

#include "proc/spawn.h"

/* Fork the launcher. Call it early, from a single-threaded process holding
 * few descriptors, after proc_setup. Returns 0, or a negative code with errmsg
 * set (the host then starts programs itself). */
int launcher_start(char *errmsg);

/* Return whether a launcher is running for this process. */
bool launcher_running(void);

/* Ask the launcher to start job (spawn.h: its file, vectors of at most
 * PROC_ARGS_MAX + 3 strings each, stdio, directory, network and uid; its
 * parent is ignored: the caller is the parent it dies with), hardened
 * (harden.h), as spawn_program does. Returns 0 with *pid set (the child is
 * the caller's), the errno of a failed exec, E2BIG when the vectors do not
 * fit in a request, or ESRCH when there is no launcher any more, or it
 * did not take the request or answer it within LAUNCHER_DEADLINE_MS (it
 * is then killed and forgotten, and the caller starts the program
 * itself). Everything passed stays the caller's. */
int launcher_spawn(const struct spawn_job *job, pid_t *pid);

/* Send the launcher the request to start job, as launcher_spawn does,
 * without waiting for its reply: launcher_reply reads it, and replies come
 * in the order of their requests. Returns 0, E2BIG, or ESRCH when there is
 * no launcher any more or it took no request for the deadline (then
 * killed). Everything passed stays the caller's. */
int launcher_send(const struct spawn_job *job);

/* Read the reply to the oldest request not yet answered, waiting for it
 * with wait. Returns 0 once a reply is read, with *err the start's
 * outcome: 0 with *pid set (the child is the caller's), or the errno of a
 * failed start (its child, if one was made, reaped; EAGAIN among them
 * when the kernel refused a process), *pid then 0. Otherwise, nothing
 * read: EAGAIN when, without wait, the reply has not come yet, or ESRCH
 * when the launcher is gone, or with wait did not answer within the
 * deadline (then killed; forgotten, its socket closed). The two are
 * kept apart because a start refused with EAGAIN must still end its
 * request: mistaking that reply for "not yet" would leave its start
 * waiting for ever and hand every later reply to the request before
 * it. */
int launcher_reply(bool wait, pid_t *pid, int *err);

/* Return the launcher's socket, readable once a reply has come, or -1
 * when there is no launcher. It stays the launcher module's: a watcher
 * watches a dup of it, as the socket closes when the launcher is lost. */
int launcher_fd(void);

/* Return the launcher's process id, or 0 when there is none. */
pid_t launcher_pid(void);

/* How long, in milliseconds, the launcher may take to take a request or
 * to answer one before the host takes it for hung: it is killed, and the
 * host starts programs itself from then on (a start takes milliseconds;
 * a wake fails after 5 s at the least). */
#define LAUNCHER_DEADLINE_MS 2000

/* Set that deadline, ms > 0 (tests shorten it). */
void launcher_set_deadline(int ms);

/* Return the deadline in force, in milliseconds. */
int launcher_deadline(void);

/* Kill the launcher, found hung by the caller's own watch of its replies
 * (nothing came for the deadline while a start awaited one), and forget
 * it: launcher_send and launcher_reply answer ESRCH from then on. */
void launcher_abandon(void);

/* Close the launcher's socket, so that it exits, and reap it; one that has
 * not exited 3 s past its deadline (hung) is killed. */
void launcher_stop(void);

#endif
