/* A program process: spawn, frame I/O over pipes, and supervision.
 *
 * A proc owns one child process and four file descriptors in the host: the
 * write end of the child's stdin pipe, the read ends of its stdout and
 * stderr pipes, and a pidfd that tells when the child has exited. Frames
 * written with proc_send go to the child's stdin; frames it writes to stdout
 * come back one by one through the frame callback; lines it writes to stderr go
 * to the host's log with the proc's name in front, at level info
 * (lib/loglevel.h: not at all when the host writes only warn and above),
 * within a rate limit (PROC_STDERR_RATE), and all of it to a callback of the
 * caller's. Each
 * readiness of the stderr pipe reads it once (at most 64 KiB), so that a
 * program writing without end shares the loop with everything else, and
 * past PROC_STDERR_READ_RATE the pipe waits: the program blocks. A child
 * that writes a malformed or oversized frame, or closes its stdout, is killed
 * at once: the host never trusts a program.
 *
 * The child starts from the launcher or from the host (spawn.h:
 * vfork-like, so its cost does not grow with the host's memory), in a
 * session and process group of its own, with an empty signal mask, every
 * signal at its default action, and SIGKILL due when the host dies. It gets
 * no file descriptor of the host but its three stdio: each spawn marks
 * every descriptor of the host above 2 close-on-exec (Linux 5.11),
 * including any the host inherited or a library opened without O_CLOEXEC.
 * It is hardened as harden.h says once harden_setup has run: rlimits, an
 * empty network namespace, a private working directory made for the run
 * and removed once the proc is gone, no capabilities, the program user,
 * no_new_privs and a seccomp filter.
 * Where the host has a cgroup freezer the child also gets a cgroup of its
 * own, made on libuv's thread pool a few milliseconds later, and what it
 * has started by then is moved there with it (see proc_freeze).
 *
 * Nothing a program starts outlives it. However the child ends (it exits,
 * is killed, crashes), its process group and its cgroup are killed before
 * it is reaped; its cgroup is killed again while it refuses removal. When
 * the host itself dies, the child dies of PR_SET_PDEATHSIG, and the
 * launcher kills the rest of the run (launcher.h); what survives both (the
 * launcher killed too) is killed by the host's next start, see
 * proc_setup.
 *
 * The state machine is RUNNING -> DYING -> GONE. DYING starts when the child
 * exits, closes its stdout, breaks the protocol or is killed; GONE is
 * reached once the child has been reaped and every handle closed, and is
 * announced by the exit callback, after which the proc frees itself. An idle
 * proc holds no buffer: reads go through one scratch buffer per thread, and
 * only a frame or line cut by a read boundary is kept, until it is complete.
 *
 * Procs are driven from one thread, the host's loop: the freezer detection
 * is process-wide and takes no lock. */
#ifndef BERTH_PROC_PROC_H
#define BERTH_PROC_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "core/caps.h"
#include "lib/budget.h"
#include "lib/buf.h"
#include "proto/frame.h"

struct proc;

/* Called for each frame from the child. f and its body are valid only during
 * the call. The callback may call proc_kill; no frame follows a kill. */
typedef void (*proc_frame_cb)(struct proc *p, const struct frame *f, void *arg);

/* Called once when the child is gone and the proc is about to be freed. why
 * says how it ended ("exited with status 0", "killed: timed out", ...); clean
 * is true only for an exit with status 0 that nobody asked to kill. */
typedef void (*proc_exit_cb)(struct proc *p, const char *why, int clean,
                             void *arg);

/* Called with every n bytes read from the child's stderr (data is valid
 * during the call only), before the rate limit of the host log: what the
 * host keeps of a program's stderr (daemon/shiplog.c). It may not call
 * back into the proc. */
typedef void (*proc_stderr_cb)(void *arg, const uint8_t *data, size_t n);

/* A program's stderr reaches the host log at this many bytes a second on
 * average, in bursts of up to PROC_STDERR_BURST bytes; the rest is dropped,
 * counted, and said in one log line per flood. */
#define PROC_STDERR_RATE (64u * 1024)
#define PROC_STDERR_BURST (512u * 1024)

/* A program's stderr is read at this many bytes a second on average, in
 * bursts of up to a second's worth: past it the host stops reading the
 * pipe for a while, and a program that writes more blocks in its writes
 * (as it would on a slow terminal) instead of taking the host's time. */
#define PROC_STDERR_READ_RATE (16u * 1024 * 1024)

/* The most strings a program's arguments, or its added environment, may
 * hold; and the most bytes both may take together, NULs included. */
#define PROC_ARGS_MAX 256
#define PROC_ARGS_BYTES_MAX 16384

struct proc_config {
    const char *path;    /* the executable; without a slash, the child's PATH
                            (/usr/local/bin:/usr/bin:/bin) is searched. It
                            must be a binary or start with #!: unlike
                            execvp, nothing falls back to /bin/sh. */
    const char *name;    /* prefix for its stderr lines in the host log */
    const char *ship_id; /* exported to the child as BERTH_SHIP */
    size_t max_frame;    /* 0: FRAME_MAX_DEFAULT */
    /* The bytes of a frame cut by a read boundary, and of frames queued
     * for the child, are counted here while the proc holds them (not
     * draining); NULL: not counted. Not owned; it must outlive the proc and
     * its writes. */
    struct budget *budget;
    /* Every byte of stderr goes here too, with proc_spawn's arg; NULL:
     * only to the host log. */
    proc_stderr_cb on_stderr;
    size_t stderr_rate;  /* 0: PROC_STDERR_RATE; at most 100,000,000 */
    size_t stderr_burst; /* 0: PROC_STDERR_BURST; at most 1 GiB */
    /* The child's arguments after argv[0] (which is path), and "K=V"
     * variables added to its environment after PATH, BERTH_SHIP and
     * BERTH_HOST (a PATH here replaces the default one, a BERTH_SHIP or
     * BERTH_HOST is dropped): string lists
     * (lib/strlist.h), NULL and 0 for none. */
    const char *args;
    size_t args_len;
    const char *env;
    size_t env_len;
    /* A frame the child finds in its stdin as soon as it starts (the BOOT
     * frame), written before the start so that the program, which takes
     * hundreds of microseconds to load, need not wait for the host to run
     * again; NULL or empty for none. proc_spawn takes its bytes (leaving it
     * empty) on success and leaves it to the caller on failure. */
    struct buf *first;
    /* The program keeps the host's network (its ship's sandbox says it
     * may); otherwise it joins the host's empty network namespace, where
     * there is one (harden.h). */
    bool network;
    /* Memory, CPU and pids caps (0: none), put on the program's cgroups
     * before it is moved in, a few milliseconds after its start, where the
     * host enforces caps (proc_caps_name); what it started by then is
     * moved in too. */
    struct caps caps;
    /* Started by the launcher, proc_spawn returns once the request is
     * sent, not once the child has exec'd: the reply is read from the
     * loop, and until then proc_pid says 0. The first frame
     * (proc_config.first) is in its stdin at once; the frames proc_send
     * is given meanwhile, and those the program writes, wait for the
     * reply. A
     * child that cannot start then ends like one that exited, "could not
     * start: <why>". A kill before the reply ends the proc at once (its
     * exit says the launcher had not answered), whether or not a reply
     * ever comes; the child it names, if it comes, is killed then.
     * Without a launcher, the start is whole before proc_spawn returns,
     * as when this is false. */
    bool start_async;
};

/* What a program's cgroups say of its use (proc_caps_use); 0 for what the
 * host's mechanism does not keep. */
struct proc_caps_use {
    uint64_t memory_bytes, memory_peak_bytes;
    uint64_t pids, pids_peak;
    uint64_t oom_kills;
};

/* Name this host's cgroups and programs after tag, the identity of its
 * data directory (letters, digits, '-', '_' and '.', not all digits), and
 * kill every process that an earlier run with the same tag left: in the
 * tag's cgroups, in either hierarchy, and wherever its BERTH_HOST variable
 * says so (see freezer_claim). Then detect the freezer. Call it before the
 * first spawn and before launcher_start. Returns 0 with *killed set,
 * BERTH_EINVAL for a bad tag, or BERTH_EBUSY while a proc is alive. */
int proc_setup(const char *tag, unsigned *killed);

/* Return "<tag>/<run>", which every program gets as BERTH_HOST: the tag of
 * proc_setup (this process's pid without one) and a name unique to this
 * run. The string is static. */
const char *proc_host_id(void);

/* Start cfg->path on loop. The proc keeps no pointer into cfg. On failure,
 * a failed exec included ("cannot start program X: No such file or
 * directory"), or args and env over the limits above or not string lists
 * ("...: Argument list too long"), returns a negative code with errmsg set
 * and no callback runs.
 * On success *out stays valid until the exit callback returns. */
int proc_spawn(struct proc **out, uv_loop_t *loop,
               const struct proc_config *cfg, proc_frame_cb on_frame,
               proc_exit_cb on_exit, void *arg, char *errmsg);

/* Write one encoded frame to the child's stdin, at once when the pipe takes
 * it, queued otherwise. The proc takes frame's bytes (frame is left empty)
 * on success; on failure returns BERTH_ESHUTDOWN (the child is dying) or
 * BERTH_ENOMEM, and frame is untouched. Out of memory after part of the
 * frame was written, it kills the child and returns 0. */
int proc_send(struct proc *p, struct buf *frame);

/* Take the memory of the frame being delivered; only during the frame
 * callback. A frame that took more than one read sits in a buffer of its
 * own: it is returned (f->body points inside it), the caller frees it with
 * mem_free, and *counted is set to the bytes of it counted in the proc's
 * budget, which the caller now counts instead. A frame read whole in one
 * go sits in the proc's shared read buffer: NULL is returned and the
 * caller copies what it keeps. */
void *proc_take_frame(struct proc *p, uint64_t *counted);

/* Stop reading the child's frames, to hold back a program whose output
 * the host has no memory for; the child blocks once the socket is full.
 * proc_resume reads again. Both are idempotent. */
void proc_pause(struct proc *p);
void proc_resume(struct proc *p);

/* Return how many bytes of a frame cut by a read boundary the proc holds
 * (0: none). */
uint64_t proc_partial_bytes(const struct proc *p);

/* Kill the child with SIGKILL, stating why; the exit callback follows. Does
 * nothing if the child is already dying. why is copied. */
void proc_kill(struct proc *p, const char *why);

/* Return the child's process id, or 0 while its start awaits the
 * launcher's reply (proc_config.start_async). */
pid_t proc_pid(const struct proc *p);

/* Return whether the child is still running (not dying or gone). */
int proc_running(const struct proc *p);

/* Stop the child and every process in its cgroup (or, without a cgroup
 * freezer, its process group) so that it uses no CPU; its memory and file
 * descriptors stay. Frames sent meanwhile wait in the socket. Freezing may
 * complete shortly after the call returns. Until the child's cgroup is
 * made, a few milliseconds after the spawn, and from a failed cgroup write
 * on, this proc is frozen with SIGSTOP. Returns 0 (also when already
 * frozen), BERTH_ESHUTDOWN if the child is dying, or BERTH_EIO. A kill works
 * on a frozen proc. */
int proc_freeze(struct proc *p);

/* Let a frozen child run again; 0 (also when not frozen), BERTH_ESHUTDOWN
 * if the child is dying, or BERTH_EIO. */
int proc_thaw(struct proc *p);

/* Return what freezes programs on this host: "cgroup2", "cgroup1" or
 * "sigstop". Detected once per process, on the first spawn or call: a
 * cgroup2 mount where the host can create <its cgroup>/berth-<tag>/<run>/
 * holding cgroup.freeze, else a cgroup1 freezer hierarchy where it can do the
 * same, else SIGSTOP/SIGCONT to the child's process group. The environment
 * variable BERTH_FREEZER, read at detection, narrows the choice: "sigstop"
 * forces signals, "cgroup2" or "cgroup1" allow only that version. */
const char *proc_freezer_name(void);

/* Set *bytes to the memory of the child and every process it started:
 * its cgroup's memory use where the cgroup accounts memory, else the sum
 * of the anonymous resident memory (RssAnon: resident minus shared pages
 * of /proc/<pid>/statm) of the processes in its cgroup, or, before it has
 * one or without cgroups, of the processes below it in the process tree.
 * Pages a fork shares copy-on-write count once per process there. Costs a
 * few /proc reads per process. Returns 0, BERTH_ESHUTDOWN if the child is
 * dying, or BERTH_EIO. */
int proc_memory(const struct proc *p, uint64_t *bytes);

/* Return how caps are enforced on this host: "cgroup2", "cgroup1", or
 * "none" (recorded, not enforced). Detected once per process, after the
 * freezer (proc/cgcaps.h); BERTH_CAPS=none turns them off. */
const char *proc_caps_name(void);

/* Change the child's caps at once (a resize); before its cgroups are made,
 * they get these. Returns 0, BERTH_ESHUTDOWN if the child is dying,
 * BERTH_ENOTFOUND without caps on this host, or BERTH_EIO when the kernel
 * refused (a memory cap below what it uses now, with cgroup v1). */
int proc_set_caps(struct proc *p, const struct caps *caps);

/* Fill *use from the child's cgroups. Returns 0, or BERTH_ENOTFOUND when it
 * has no capped cgroups (yet, or on this host). */
int proc_caps_use(const struct proc *p, struct proc_caps_use *use);

/* Return whether the kernel killed a process of the child for going over
 * its memory cap; read at its exit, so valid in the exit callback (whose
 * why then says so). */
bool proc_over_memory(const struct proc *p);

/* Return how many bytes of this child's stderr were dropped over the
 * limit. */
uint64_t proc_stderr_dropped(const struct proc *p);

/* Set *usec to the CPU time the program used, user and system: with a
 * cgroup v2, its cgroup's (what it started included); else its own and
 * that of the children it waited for (/proc/PID/stat while it runs, wait4
 * once it exited). Valid until the proc is freed, also in its exit
 * callback. Returns 0 or BERTH_EIO. */
int proc_cpu(struct proc *p, uint64_t *usec);

/* Return how many bytes of stderr were dropped over the limit, by every
 * proc of this process since it started. */
uint64_t proc_stderr_dropped_total(void);

/* Return how many procs of this process are alive: spawned and not yet
 * gone (their exit callback has not returned). */
unsigned proc_count(void);

/* Return how many file descriptors of the host one running proc holds. */
unsigned proc_fds_per_proc(void);

/* Remove the cgroups this host made for programs that are gone, and when
 * no proc is alive also the host's own cgroup directory; best effort, for
 * the host to call before it exits. With no proc alive it also forgets the
 * freezer detection, so that the next use detects (and reads
 * BERTH_FREEZER) again. */
void proc_cleanup(void);

#endif
