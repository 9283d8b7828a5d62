/* A program process: spawn, frame I/O over its pipes, and supervision.
 *
 * A proc owns one child process and its three pipes. Frames written with
 * proc_send go to the child's stdin; frames it writes to stdout come back one
 * by one through the frame callback; lines it writes to stderr go to the
 * host's log with the proc's name in front. A child that writes a malformed
 * or oversized frame is killed at once: the host never trusts a program.
 *
 * The state machine is RUNNING -> DYING -> GONE. DYING starts when the child
 * exits, breaks the protocol or is killed; GONE is reached once the child
 * has been reaped and every handle closed, and is announced by the exit
 * callback, after which the proc frees itself. */
#ifndef BERTH_PROC_PROC_H
#define BERTH_PROC_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "lib/buf.h"
#include "proto/frame.h"

struct proc;

/* Called for each frame from the child. f and its body are valid only during
 * the call. The callback may call proc_kill; no frame follows a kill. */
typedef void (*proc_frame_cb)(struct proc *p, const struct frame *f,
                              void *arg);

/* Called once when the child is gone and the proc is about to be freed. why
 * says how it ended ("exited with status 0", "killed: timed out", ...); clean
 * is true only for an exit with status 0 that nobody asked to kill. */
typedef void (*proc_exit_cb)(struct proc *p, const char *why, int clean,
                             void *arg);

struct proc_config {
    const char *path;    /* the executable; without a slash, PATH is searched */
    const char *name;    /* prefix for its stderr lines in the host log */
    const char *ship_id; /* exported to the child as BERTH_SHIP */
    size_t max_frame;    /* 0: FRAME_MAX_DEFAULT */
};

/* Start cfg->path with pipes on loop. The proc keeps no pointer into cfg.
 * On failure returns a negative code with errmsg set and no callback runs.
 * On success *out stays valid until the exit callback returns. */
int proc_spawn(struct proc **out, uv_loop_t *loop,
               const struct proc_config *cfg, proc_frame_cb on_frame,
               proc_exit_cb on_exit, void *arg, char *errmsg);

/* Queue one encoded frame for the child's stdin. The proc takes frame's bytes
 * (frame is left empty) on success; on failure (the child is dying) returns
 * BERTH_ESHUTDOWN and frame is untouched. */
int proc_send(struct proc *p, struct buf *frame);

/* Kill the child with SIGKILL, stating why; the exit callback follows. Does
 * nothing if the child is already dying. why is copied. */
void proc_kill(struct proc *p, const char *why);

/* Return the child's process id. */
pid_t proc_pid(const struct proc *p);

/* Return whether the child is still running (not dying or gone). */
int proc_running(const struct proc *p);

#endif
