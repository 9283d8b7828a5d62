#include "proc/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/loglevel.h"
#include "lib/mem.h"
#include "lib/strlist.h"
#include "proc/cgcaps.h"
#include "proc/freezer.h"
#include "proc/harden.h"
#include "proc/launcher.h"
#include "proc/spawn.h"
#include "proc/tree.h"

enum proc_state { PROC_RUNNING, PROC_DYING, PROC_GONE };

/* A child's stderr line longer than this is cut; the host log stays usable.
 * It also bounds what a proc keeps of a line cut by a read boundary. */
#define PROC__LINE_MAX 4096

/* The PATH a child sees, which is also where a path without a slash is
 * looked up, as execvp did in the child before. */
#define PROC__PATH "/usr/local/bin:/usr/bin:/bin"

/* At most this many reads empty a dead child's stderr: a grandchild may
 * keep writing to it for ever. */
#define PROC__DRAIN_READS 16

/* libuv reads synchronously on the loop's thread, each alloc callback
 * followed at once by its read callback, and stderr is read by hand in the
 * same way; so one buffer per thread serves every proc, and an idle proc
 * holds none. */
#define PROC__SCRATCH_SIZE (64 * 1024)
static _Thread_local uint8_t proc__scratch[PROC__SCRATCH_SIZE];

/* Procs spawned and not yet gone. */
static atomic_uint proc__alive;

/* Bytes of stderr dropped over the limit, by every proc of this process. */
static atomic_ullong proc__err_dropped_total;

/* The stderr limit's credit is kept in byte-nanoseconds, so that refills
 * between reads microseconds apart are not rounded away. */
#define PROC__NS 1000000000ULL

/* A refill counts at most this long a pause, and the rate and burst are
 * held below these, which keeps every product below 2^64. */
#define PROC__REFILL_MAX_NS (100ULL * PROC__NS)
#define PROC__ERR_RATE_MAX (100u * 1000 * 1000)
#define PROC__ERR_BURST_MAX (1ULL << 30)

struct proc {
    uv_pipe_t in;  /* the child's stdin: a pipe the host writes frames to */
    uv_pipe_t out; /* the child's stdout: a pipe the host reads frames from */
    uv_poll_t err; /* the child's stderr pipe; read by hand, see err_cb */
    uv_timer_t err_timer; /* reading stderr again after a pause, see
                             proc__err_pace */
    uv_poll_t exit;       /* the child's pidfd, readable once it has exited */
    proc_frame_cb on_frame;
    proc_exit_cb on_exit;
    proc_stderr_cb on_stderr;
    void *arg;
    char *name;
    const char *why; /* set by a kill; owned if why_owned */
    uint8_t *rx;     /* a frame cut by a read boundary, sized for all of it */
    size_t rx_len;   /* bytes in rx, all counted in budget */
    struct budget *budget;
    char *line; /* a stderr line cut by a read, PROC__LINE_MAX bytes */
    uint32_t max_frame;
    uint16_t line_len;
    uint8_t state; /* enum proc_state */
    /* Initialized handles not yet closed, and the attach while it runs:
     * the proc is gone once none is left. */
    uint8_t open_handles;
    uint8_t fz;        /* enum freezer_kind for the next freeze */
    uint8_t frozen_fz; /* enum freezer_kind of the freeze in force */
    bool attached : 1; /* the child has a cgroup of its own */
    bool attach_pending : 1;
    bool exit_ready : 1; /* the pidfd said exited; reaping awaits the attach */
    bool frozen : 1;
    bool exited : 1;
    bool status_lost : 1; /* someone else reaped the child */
    bool killed : 1;
    bool why_owned : 1;
    bool spawn_failed : 1;
    bool paused : 1;        /* stdout is not read: proc_pause */
    bool delivering : 1;    /* in the frame callback: proc_take_frame works */
    bool rx_taken : 1;      /* the frame callback took rx */
    bool output_closed : 1; /* EOF on its stdout: killed, unless exiting */
    bool err_dropping : 1;  /* stderr over its limit: dropping lines */
    bool capped : 1;        /* its caps' cgroups hold it */
    bool caps_dirty : 1;    /* caps changed while the attach ran */
    bool over_memory : 1;   /* the kernel killed in it over its memory cap */
    bool starting : 1;      /* awaiting the launcher's reply: no pid yet */
    bool ending : 1;        /* its end's cgroup work runs: proc__end */
    bool input_held : 1;    /* proc_send holds frames (held) */
    struct caps caps;
    struct proc *pending_next; /* in proc__pending while attach_pending */
    struct proc *start_next;   /* in proc__starts while starting */
    /* Frames after the first, held from an asynchronous start until its
     * reply is in (proc_send, proc__release_input). */
    struct proc__write *held, **held_tail;
    /* An asynchronous start's job, kept until its reply is in: should the
     * launcher die with the request unanswered, the host starts the
     * program itself, as a start that waited would (proc__started). */
    struct proc__kept *kept;
    uv_loop_t *loop;
    pid_t pid;
    uint32_t err_rate;       /* stderr bytes a second */
    uint64_t err_burst;      /* stderr credit at most, in byte-ns */
    uint64_t err_credit;     /* in byte-ns */
    uint64_t err_refill_ns;  /* monotonic time of the last refill */
    uint64_t err_dropped;    /* stderr bytes dropped, in all */
    uint64_t err_unreported; /* ... and not yet said in the log */
    int64_t read_credit;     /* stderr that may be read, in byte-ns */
    uint64_t read_refill_ns; /* monotonic time of its last refill */
    int exit_status;
    int term_signal;
    uint64_t cpu_final_us; /* once exited: the CPU time it used (proc_cpu) */
    char *dir;  /* its private working directory (harden.h), or NULL */
    long uid;   /* the uid it runs as (harden_uid_take), -1: the host's */
    int cpu_fd; /* its caps' file of CPU time (cgcaps_cpu_open), or -1 */
};

struct proc__write {
    uv_write_t req;
    uint8_t *data;
    struct budget *budget; /* where its bytes are counted, or NULL */
    uint64_t counted;
    size_t len;               /* while held: the frame's length */
    struct proc__write *next; /* while held: the next frame held */
};

static void proc__write_cb(uv_write_t *req, int status)
{
    /* A failed write means the child closed stdin or died; its exit, or a
     * kill for not answering, ends the proc, so nothing is done here. */
    struct proc__write *w = req->data;
    budget_sub(w->budget, w->counted, false);
    mem_free(w->data);
    mem_free(w);
}

/* Drop the frames held while starting: the child will not read them. */
static void proc__drop_held(struct proc *p)
{
    while (p->held != NULL) {
        struct proc__write *w = p->held;
        p->held = w->next;
        proc__write_cb(&w->req, UV_ECANCELED);
    }
    p->held_tail = &p->held;
}

/* Write the frames held while starting, in order, behind what the pipe
 * has; 0, or a libuv error (the rest dropped). */
static int proc__write_held(struct proc *p)
{
    int rv = 0;
    while (p->held != NULL && rv == 0) {
        struct proc__write *w = p->held;
        p->held = w->next;
        uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
        rv = uv_write(&w->req, (uv_stream_t *)&p->in, &b, 1, proc__write_cb);
        if (rv != 0) {
            proc__write_cb(&w->req, rv);
        }
    }
    proc__drop_held(p);
    return rv;
}

static void proc__kill_static(struct proc *p, const char *why);

/* Write what proc_send held, and hold nothing more; false when that
 * failed and the proc was killed. */
static bool proc__release_input(struct proc *p)
{
    if (!p->input_held) {
        return true;
    }
    p->input_held = false;
    if (p->state == PROC_RUNNING && proc__write_held(p) != 0) {
        proc__kill_static(p, "killed: its input cannot be written");
        return false;
    }
    return true;
}

struct proc__purge {
    uv_work_t req;
    char *dir;
};

static void proc__purge_work(uv_work_t *req)
{
    struct proc__purge *w = req->data;
    harden_dir_give(w->dir);
}

static void proc__purge_done(uv_work_t *req, int status)
{
    struct proc__purge *w = req->data;
    mem_free(w->dir);
    mem_free(w);
}

/* Give the program's working directory back on a worker thread: reading
 * or removing it (an rmdir took 140 us here) is more than the loop should
 * wait for, and one the program left files in takes a walk. */
static void proc__remove_dir(struct proc *p)
{
    if (p->dir == NULL) {
        return;
    }
    /* A proc whose start failed may have no loop. */
    struct proc__purge *w = p->exit.loop != NULL ? mem_alloc(sizeof *w) : NULL;
    if (w != NULL) {
        w->req.data = w;
        w->dir = p->dir;
        if (uv_queue_work(p->exit.loop, &w->req, proc__purge_work,
                          proc__purge_done) == 0) {
            return;
        }
        mem_free(w);
    }
    harden_dir_give(p->dir);
    mem_free(p->dir);
}

static bool proc__refilling;

static void proc__refill_work(uv_work_t *req)
{
    harden_dir_refill();
}

static void proc__refill_done(uv_work_t *req, int status)
{
    mem_free(req);
    proc__refilling = false;
}

/* Have working directories made ahead when few are left, one worker at a
 * time. */
static void proc__refill(uv_loop_t *loop)
{
    if (proc__refilling || !harden_dir_low()) {
        return;
    }
    uv_work_t *req = mem_alloc(sizeof *req);
    if (req == NULL) {
        return;
    }
    if (uv_queue_work(loop, req, proc__refill_work, proc__refill_done) != 0) {
        mem_free(req);
        return;
    }
    proc__refilling = true;
}

/* Free the proc and what it owns; its handles are closed. */
/* A copy of a spawn job: its strings in one block after the struct, its
 * descriptors duplicates that the copy owns. */
struct proc__kept {
    struct spawn_job job;
    int fds[3];
};

/* Free k and close its descriptors; NULL is ignored. */
static void proc__kept_free(struct proc__kept *k)
{
    if (k == NULL) {
        return;
    }
    for (int i = 0; i < 3; i++) {
        if (k->fds[i] >= 0) {
            close(k->fds[i]);
        }
    }
    mem_free(k);
}

static size_t proc__strv_size(char *const *v, size_t *n)
{
    size_t size = 0;
    for (*n = 0; v[*n] != NULL; (*n)++) {
        size += strlen(v[*n]) + 1;
    }
    return size;
}

static char *proc__strv_copy(char *const *v, size_t n, char **to, char *at)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(v[i]) + 1;
        memcpy(at, v[i], len);
        to[i] = at;
        at += len;
    }
    to[n] = NULL;
    return at;
}

/* Copy job, duplicating its three descriptors; NULL when memory or
 * descriptors run out. */
static struct proc__kept *proc__kept_new(const struct spawn_job *job)
{
    size_t na, ne;
    const char *dir = job->dir != NULL ? job->dir : "";
    size_t strings = proc__strv_size(job->argv, &na) +
                     proc__strv_size(job->envp, &ne) + strlen(job->file) +
                     strlen(dir) + 2;
    size_t ptrs = (na + 1 + ne + 1) * sizeof(char *);
    struct proc__kept *k = mem_alloc(sizeof *k + ptrs + strings);
    if (k == NULL) {
        return NULL;
    }
    k->job = *job;
    char **argv = (char **)(k + 1), **envp = argv + na + 1;
    char *at = (char *)(envp + ne + 1);
    at = proc__strv_copy(job->argv, na, argv, at);
    at = proc__strv_copy(job->envp, ne, envp, at);
    k->job.argv = argv;
    k->job.envp = envp;
    k->job.file = strcpy(at, job->file);
    at += strlen(job->file) + 1;
    k->job.dir = strcpy(at, dir);
    int from[3] = {job->in, job->out, job->errw};
    for (int i = 0; i < 3; i++) {
        k->fds[i] = fcntl(from[i], F_DUPFD_CLOEXEC, 3);
    }
    if (k->fds[0] < 0 || k->fds[1] < 0 || k->fds[2] < 0) {
        proc__kept_free(k);
        return NULL;
    }
    k->job.in = k->fds[0];
    k->job.out = k->fds[1];
    k->job.errw = k->fds[2];
    return k;
}

/* Start job from the host itself, the launcher being gone. Returns 0 with
 * *pid set, or an errno. */
static int proc__spawn_here(const struct spawn_job *job, pid_t *pid)
{
    /* No descriptor of the host but stdio may reach the program, not even
     * one the host inherited or a library opened without O_CLOEXEC: mark
     * them all close-on-exec, a bitmap operation in the kernel. Closing
     * them in the child instead would hold the loop while the kernel
     * closes them one by one (with 15,000 descriptors open, 5,000 procs,
     * closefrom in posix_spawn held it 1.6 ms per spawn against 0.15 ms),
     * whereas close-on-exec ones are closed after the parent goes on.
     * Kernels before 5.11 refuse the flag, and only descriptors opened
     * close-on-exec stay out. */
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    int e = spawn_program(job, 0, pid);
    if (e != 0 && *pid > 0) {
        /* It could not exec and has exited: ours to reap. */
        while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    return e;
}

/* Close the proc's file of CPU time, if open. */
static void proc__close_cpu(struct proc *p)
{
    if (p->cpu_fd >= 0) {
        close(p->cpu_fd);
        p->cpu_fd = -1;
    }
}

static void proc__free(struct proc *p)
{
    proc__close_cpu(p);
    proc__kept_free(p->kept);
    proc__drop_held(p);
    proc__remove_dir(p);
    harden_uid_give(p->uid);
    if (p->why_owned) {
        mem_free((char *)p->why);
    }
    budget_sub(p->budget, p->rx_len, false);
    mem_free(p->rx);
    mem_free(p->line);
    mem_free(p->name);
    mem_free(p);
}

/* A proc is gone once its handles are closed. One whose start still
 * awaits the launcher's reply is gone too if it was killed (its exit is
 * said now, as a kill must end it even if the reply never comes) or its
 * proc_spawn failed; it stays in memory, holding its uid and working
 * directory, until the reply says which child to kill (proc__started). */
static void proc__maybe_gone(struct proc *p)
{
    if (p->state == PROC_GONE || p->open_handles > 0 ||
        (p->starting && !p->killed && !p->spawn_failed)) {
        return;
    }
    p->state = PROC_GONE;
    if (p->spawn_failed) {
        if (!p->starting) {
            proc__free(p);
        }
        return;
    }
    int clean = !p->killed && p->exited && !p->status_lost &&
                p->exit_status == 0 && p->term_signal == 0;
    char why[64];
    if (p->why == NULL) {
        if (p->output_closed && p->term_signal == SIGKILL) {
            /* Killed for it: a program on its way out keeps its status. */
            snprintf(why, sizeof why, "killed: closed its output");
        } else if (p->status_lost) {
            snprintf(why, sizeof why, "exited with unknown status");
        } else if (p->term_signal != 0) {
            snprintf(why, sizeof why, "killed by signal %d", p->term_signal);
        } else {
            snprintf(why, sizeof why, "exited with status %d", p->exit_status);
        }
    }
    p->on_exit(p, p->why != NULL ? p->why : why, clean, p->arg);
    atomic_fetch_sub(&proc__alive, 1);
    if (!p->starting) {
        proc__free(p);
    }
}

static void proc__close_cb(uv_handle_t *h)
{
    struct proc *p = h->data;
    p->open_handles--;
    proc__maybe_gone(p);
}

static void proc__close(uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        uv_close(h, proc__close_cb);
    }
}

/* Close a poll handle and the descriptor it watched, which libuv leaves
 * open; closing right after uv_close is safe, as the handle is already out
 * of epoll. */
static void proc__close_poll(uv_poll_t *h)
{
    if (uv_is_closing((uv_handle_t *)h)) {
        return;
    }
    int fd = -1;
    uv_fileno((uv_handle_t *)h, &fd);
    uv_close((uv_handle_t *)h, proc__close_cb);
    if (fd >= 0) {
        close(fd);
    }
}

/* Enter DYING: stop talking to the child. The pidfd is watched until the
 * child is reaped, so no zombie is left behind. */
static void proc__die(struct proc *p)
{
    if (p->state != PROC_RUNNING) {
        return;
    }
    p->state = PROC_DYING;
    proc__drop_held(p);
    proc__close((uv_handle_t *)&p->in);
    proc__close((uv_handle_t *)&p->out);
}

/* Send SIGKILL to the child's process group, which it leads (a zombie
 * leader keeps the group's id from going to anyone else), or to the child
 * alone if there is none. */
static void proc__kill_group(struct proc *p)
{
    if (p->pid <= 0) {
        return; /* not started yet: killed once its start is known */
    }
    if (kill(-p->pid, SIGKILL) != 0) {
        kill(p->pid, SIGKILL);
    }
}

/* Send SIGKILL to every process the child started, and to the child if it
 * still runs: its process group, and its cgroup, which also holds what
 * left the group. */
static void proc__kill_rest(struct proc *p)
{
    proc__kill_group(p);
    if (p->attached) {
        /* The host's kind: p->fz falls back to signals after a failed
         * cgroup write, but the cgroup is still there. */
        freezer_kill_all(freezer_detect(), p->pid);
    }
}

/* Send SIGKILL to the child and what it started, frozen or not. */
static void proc__signal_kill(struct proc *p)
{
    proc__kill_rest(p);
    /* A task frozen by cgroup1 dies only once thawed (freezer_kill_all
     * thaws its cgroup); a cgroup2-frozen or stopped one dies at once, and
     * thawing it is harmless: the pending SIGKILL is taken before it runs
     * another instruction. */
    if (p->frozen) {
        freezer_set(p->frozen_fz, p->pid, false);
        p->frozen = false;
    }
}

static void proc__close_err(struct proc *p);

/* Kill for a reason that is a literal, so that no allocation can fail. */
static void proc__kill_static(struct proc *p, const char *why)
{
    if (p->state != PROC_RUNNING) {
        return;
    }
    p->killed = true;
    p->why = why;
    proc__signal_kill(p);
    proc__die(p);
    if (p->starting) {
        /* No child to wait for yet, and the reply may be long in coming
         * (or never come, from a launcher that hangs): the proc ends with
         * its handles, its child is killed once the reply names it. */
        proc__close_err(p);
    }
}

void proc_kill(struct proc *p, const char *why)
{
    if (p->state != PROC_RUNNING) {
        return;
    }
    /* A start the launcher has not answered yet is said, as a launcher
     * that does not answer is the host's trouble, not the program's. */
    const char *unanswered =
        p->starting ? "; the launcher had not answered its start" : "";
    size_t n = strlen(why) + strlen(unanswered) + sizeof "killed: ";
    char *copy = mem_alloc(n);
    if (copy == NULL) {
        proc__kill_static(p, "killed (reason lost: host out of memory)");
        return;
    }
    snprintf(copy, n, "killed: %s%s", why, unanswered);
    proc__kill_static(p, copy);
    p->why_owned = true;
}

/* --- stdout: frames --- */

static void proc__alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    b->base = (char *)proc__scratch;
    b->len = sizeof proc__scratch;
}

/* Return how many bytes the frame begun in p->rx needs in all: the header
 * until its length is known, then the whole frame. */
static size_t proc__rx_want(const struct proc *p)
{
    return p->rx_len < 4 ? 4 : 4 + (size_t)get_le32(p->rx);
}

/* Keep the n bytes at in, the start of a frame cut by the read boundary,
 * in a buffer sized for the whole frame (its length was checked) or for the
 * header if even that is cut. Returns 0 or BERTH_ENOMEM. */
static int proc__rx_keep(struct proc *p, const uint8_t *in, size_t n)
{
    size_t want = n < 4 ? 4 : 4 + (size_t)get_le32(in);
    p->rx = mem_alloc(want);
    if (p->rx == NULL) {
        return BERTH_ENOMEM;
    }
    memcpy(p->rx, in, n);
    p->rx_len = n;
    budget_add(p->budget, n, false);
    return 0;
}

/* Hand one frame to the frame callback; in_rx: it sits in p->rx, which
 * the callback may take. */
static void proc__deliver(struct proc *p, const struct frame *f, bool in_rx)
{
    p->delivering = in_rx;
    p->on_frame(p, f, p->arg);
    p->delivering = false;
}

void *proc_take_frame(struct proc *p, uint64_t *counted)
{
    if (!p->delivering || p->rx_taken) {
        *counted = 0;
        return NULL;
    }
    p->rx_taken = true;
    *counted = p->rx_len;
    return p->rx;
}

void proc_pause(struct proc *p)
{
    if (p->paused) {
        return;
    }
    p->paused = true;
    if (p->state == PROC_RUNNING) {
        uv_read_stop((uv_stream_t *)&p->out);
    }
}

static void proc__read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

void proc_resume(struct proc *p)
{
    if (!p->paused) {
        return;
    }
    p->paused = false;
    if (p->state == PROC_RUNNING && !p->starting) {
        uv_read_start((uv_stream_t *)&p->out, proc__alloc_cb, proc__read_cb);
    }
}

uint64_t proc_partial_bytes(const struct proc *p)
{
    return p->rx_len;
}

/* Kill for a frame_split error. */
static void proc__kill_frame(struct proc *p, int rv)
{
    proc__kill_static(p, rv == BERTH_ETOOBIG
                             ? "killed: frame over the size limit"
                             : "killed: malformed frame");
}

/* Add bytes to the frame begun in an earlier read, and deliver it once
 * complete. Returns how many bytes of in were used; the caller stops if
 * the proc is no longer running. */
static size_t proc__rx_continue(struct proc *p, const uint8_t *in, size_t n)
{
    size_t want = proc__rx_want(p);
    size_t take = want - p->rx_len < n ? want - p->rx_len : n;
    memcpy(p->rx + p->rx_len, in, take);
    p->rx_len += take;
    budget_add(p->budget, take, false);
    if (p->rx_len < want) {
        return take;
    }
    struct frame f;
    size_t used;
    int rv = frame_split(p->rx, p->rx_len, p->max_frame, &f, &used);
    if (rv == BERTH_EPARTIAL) {
        /* The header is complete and its length valid: make room for the
         * whole frame, exactly, once. */
        uint8_t *grown = mem_realloc(p->rx, proc__rx_want(p));
        if (grown == NULL) {
            proc__kill_static(p, "killed: host out of memory reading its "
                                 "output");
            return take;
        }
        p->rx = grown;
        return take;
    }
    if (rv != 0) {
        proc__kill_frame(p, rv);
        return take;
    }
    proc__deliver(p, &f, true);
    /* Drained: an idle proc keeps no buffer. */
    if (!p->rx_taken) {
        budget_sub(p->budget, p->rx_len, false);
        mem_free(p->rx);
    }
    p->rx_taken = false;
    p->rx = NULL;
    p->rx_len = 0;
    return take;
}

static void proc__read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct proc *p = s->data;
    if (n < 0) {
        /* EOF or a reset: the child closed its output, or is exiting. It
         * can never answer again, so it is killed now rather than at the
         * event's time limit; one that is exiting keeps its status. */
        uv_read_stop(s);
        if (p->state == PROC_RUNNING) {
            p->output_closed = true;
            proc__signal_kill(p);
            proc__die(p);
        }
        return;
    }
    const uint8_t *in = (const uint8_t *)b->base;
    size_t left = (size_t)n;
    while (left > 0 && p->state == PROC_RUNNING) {
        if (p->rx_len > 0) {
            size_t used = proc__rx_continue(p, in, left);
            in += used;
            left -= used;
            continue;
        }
        /* Frames are parsed where they were read; only a cut one is
         * copied. */
        struct frame f;
        size_t used;
        int rv = frame_split(in, left, p->max_frame, &f, &used);
        if (rv == BERTH_EPARTIAL) {
            if (proc__rx_keep(p, in, left) != 0) {
                proc__kill_static(p, "killed: host out of memory reading "
                                     "its output");
            }
            return;
        }
        if (rv != 0) {
            proc__kill_frame(p, rv);
            return;
        }
        in += used;
        left -= used;
        proc__deliver(p, &f, false);
    }
}

/* --- stderr: lines for the host log --- */

/* Log one line: what was kept of it, then n more bytes. */
static void proc__log_line(struct proc *p, const char *more, size_t n)
{
    fprintf(stderr, "[%s] %.*s%.*s\n", p->name, (int)p->line_len,
            p->line ? p->line : "", (int)n, more);
    mem_free(p->line);
    p->line = NULL;
    p->line_len = 0;
}

/* Split n bytes of stderr into lines and log them; keep a cut line. */
static void proc__err_bytes(struct proc *p, const char *in, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(in, '\n', n);
        if (nl != NULL) {
            proc__log_line(p, in, (size_t)(nl - in));
            n -= (size_t)(nl - in) + 1;
            in = nl + 1;
            continue;
        }
        if (p->line_len + n > PROC__LINE_MAX) {
            proc__log_line(p, in, n);
            return;
        }
        if (p->line == NULL) {
            p->line = mem_alloc(PROC__LINE_MAX);
            if (p->line == NULL) {
                /* Better a line in two pieces than none. */
                proc__log_line(p, in, n);
                return;
            }
        }
        memcpy(p->line + p->line_len, in, n);
        p->line_len = (uint16_t)(p->line_len + n);
        return;
    }
}

/* Say in one line how much stderr was dropped since it was last said, and
 * take lines again. */
static void proc__err_report(struct proc *p)
{
    if (p->err_unreported > 0) {
        fprintf(stderr,
                "[%s] berth: dropped %llu bytes of stderr over the limit of "
                "%u bytes a second\n",
                p->name, (unsigned long long)p->err_unreported,
                (unsigned)p->err_rate);
    }
    p->err_unreported = 0;
    p->err_dropping = false;
}

/* Pass n bytes of stderr to the log within the limit: a token bucket,
 * refilled at err_rate bytes a second up to the burst. Once a piece (a line,
 * or at most PROC__LINE_MAX bytes of one) does not fit, pieces are dropped
 * and counted until half the burst is back, so that a flood costs one line
 * saying what was dropped, not one line per drop. */
static void proc__err_admit(struct proc *p, const char *in, size_t n)
{
    uint64_t now = uv_hrtime();
    uint64_t dt = now - p->err_refill_ns;
    p->err_refill_ns = now;
    if (dt > PROC__REFILL_MAX_NS) {
        dt = PROC__REFILL_MAX_NS;
    }
    uint64_t room = p->err_burst - p->err_credit;
    uint64_t add = dt * p->err_rate;
    p->err_credit += add < room ? add : room;
    while (n > 0) {
        const char *nl = memchr(in, '\n', n);
        size_t k = nl != NULL ? (size_t)(nl - in) + 1 : n;
        if (k > PROC__LINE_MAX) {
            k = PROC__LINE_MAX;
        }
        uint64_t cost = (uint64_t)k * PROC__NS;
        if (p->err_dropping && p->err_credit >= p->err_burst / 2) {
            proc__err_report(p);
        }
        if (!p->err_dropping && cost <= p->err_credit) {
            p->err_credit -= cost;
            proc__err_bytes(p, in, k);
        } else {
            if (!p->err_dropping && p->line_len > 0) {
                /* Its start was logged; its end will not be. */
                proc__log_line(p, "", 0);
            }
            p->err_dropping = true;
            p->err_dropped += k;
            p->err_unreported += k;
            atomic_fetch_add(&proc__err_dropped_total, k);
        }
        in += k;
        n -= k;
    }
}

/* Stop reading stderr: log what is kept of a line, and what was dropped,
 * and close the pipe. */
static void proc__close_err(struct proc *p)
{
    if (p->line_len > 0) {
        proc__log_line(p, "", 0);
    }
    proc__err_report(p);
    proc__close_poll(&p->err);
    proc__close((uv_handle_t *)&p->err_timer);
}

/* Read stderr once: returns how many bytes it read and passed on, 0 at
 * its end (the pipe is closed), -1 if nothing is there now. */
static ssize_t proc__err_read(struct proc *p)
{
    int fd;
    if (uv_fileno((uv_handle_t *)&p->err, &fd) != 0) {
        return 0;
    }
    ssize_t n;
    do {
        n = read(fd, proc__scratch, sizeof proc__scratch);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        if (p->on_stderr != NULL) {
            p->on_stderr(p->arg, proc__scratch, (size_t)n);
        }
        /* Its lines are the host log's at level info: below it, they
         * are neither split nor counted against the limit. */
        if (loglevel_enabled(LOGLEVEL_INFO)) {
            proc__err_admit(p, (const char *)proc__scratch, (size_t)n);
        }
        return n;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return -1;
    }
    proc__close_err(p);
    return 0;
}

static void proc__err_cb(uv_poll_t *h, int status, int events);

static void proc__err_resume(uv_timer_t *t)
{
    struct proc *p = t->data;
    if (!uv_is_closing((uv_handle_t *)&p->err)) {
        uv_poll_start(&p->err, UV_READABLE, proc__err_cb);
    }
}

/* Hold a program that writes stderr faster than PROC_STDERR_READ_RATE:
 * count n bytes read against its credit (refilled at the rate, up to a
 * second's worth), and when it runs out, stop reading the pipe until the
 * credit is back. The program then blocks in its writes, using no CPU,
 * instead of making the host read and keep bytes nobody can read as fast. */
static void proc__err_pace(struct proc *p, size_t n)
{
    const int64_t full = (int64_t)PROC_STDERR_READ_RATE * (int64_t)PROC__NS;
    uint64_t now = uv_hrtime();
    uint64_t dt = now - p->read_refill_ns;
    p->read_refill_ns = now;
    if (dt > PROC__NS) {
        dt = PROC__NS;
    }
    p->read_credit += (int64_t)dt * PROC_STDERR_READ_RATE;
    if (p->read_credit > full) {
        p->read_credit = full;
    }
    p->read_credit -= (int64_t)n * (int64_t)PROC__NS;
    if (p->read_credit >= 0) {
        return;
    }
    uint64_t ms =
        (uint64_t)(-p->read_credit) / PROC_STDERR_READ_RATE / 1000000 + 1;
    uv_poll_stop(&p->err);
    uv_timer_start(&p->err_timer, proc__err_resume, ms, 0);
}

static void proc__err_cb(uv_poll_t *h, int status, int events)
{
    struct proc *p = h->data;
    if (status < 0) {
        proc__close_err(p);
        return;
    }
    ssize_t n = proc__err_read(p);
    if (n > 0) {
        proc__err_pace(p, (size_t)n);
    }
}

/* --- exit --- */

/* A program's end on libuv's thread pool: what its cgroups say of it (its
 * CPU time, whether the kernel killed in it over its memory cap) and their
 * removal, five directories on a host with cgroup v1 caps, 0.2 to 0.3 ms
 * that held the loop at every sleep. It runs before the reap: until then
 * the zombie keeps its pid, which names the cgroups, from going to another
 * program, whose attach would make them again. */
struct proc__end {
    uv_work_t req;
    struct proc *p;
    pid_t pid;
    enum freezer_kind kind;
    bool attached;    /* it has a freezer cgroup */
    bool capped;      /* it has caps' cgroups */
    bool have_cpu;    /* out: cpu_us was read */
    bool over_memory; /* out: the kernel killed in it over its cap */
    bool fz_busy;     /* out: its freezer cgroup outlived the tries */
    bool caps_busy;   /* out: so did one of its caps' cgroups */
    uint64_t cpu_us;  /* out: its cgroup's CPU time */
};

/* How often, 1 ms apart, a cgroup still busy at the end (a process the
 * program started, killed and not gone yet) is killed and removed again
 * before the loop's retries (cgbusy.h) take it on. */
#define PROC__END_TRIES 10

static void proc__end_work(uv_work_t *req)
{
    struct proc__end *e = req->data;
    /* What it started and is still in its cgroup (the loop killed its
     * process group). */
    if (e->attached) {
        freezer_kill_all(e->kind, e->pid);
    }
    /* Its cgroup counts what it started too: read before the removal. */
    e->have_cpu = e->attached && freezer_cpu(e->pid, &e->cpu_us) == 0;
    char dir[PATH_MAX];
    uint64_t n;
    e->over_memory = e->capped && freezer_pid_dir(e->pid, dir) == 0 &&
                     cgcaps_oom_kills(e->pid, dir, &n) == 0 && n > 0;
    for (int i = 0;; i++) {
        e->fz_busy = e->attached && freezer_rmdir(e->pid) == EBUSY;
        e->caps_busy = e->capped && cgcaps_rmdir(e->pid);
        if ((!e->fz_busy && !e->caps_busy) || i == PROC__END_TRIES) {
            return;
        }
        if (e->attached) {
            freezer_kill_all(e->kind, e->pid);
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

/* The child is reaped: record how it ended and close everything; e is its
 * end's cgroup work, done, or NULL when it had no cgroups. */
static void proc__reaped(struct proc *p, pid_t r, int ws,
                         const struct rusage *ru, const struct proc__end *e)
{
    /* Without a cgroup, wait4's count has the program and the children it
     * waited for. */
    if (e != NULL && e->have_cpu) {
        p->cpu_final_us = e->cpu_us;
    } else if (ru != NULL) {
        p->cpu_final_us =
            (uint64_t)ru->ru_utime.tv_sec * 1000000 + ru->ru_utime.tv_usec +
            (uint64_t)ru->ru_stime.tv_sec * 1000000 + ru->ru_stime.tv_usec;
    }
    p->exited = true;
    p->ending = false;
    if (r == p->pid && WIFEXITED(ws)) {
        p->exit_status = WEXITSTATUS(ws);
    } else if (r == p->pid && WIFSIGNALED(ws)) {
        p->term_signal = WTERMSIG(ws);
    } else {
        /* SIGCHLD set to SIG_IGN makes the kernel reap for us. */
        p->status_lost = true;
    }
    p->frozen = false;
    if (e != NULL && e->over_memory) {
        p->over_memory = true;
        if (p->why == NULL) {
            /* Its last gasp: a literal, as no allocation may fail. */
            p->why = "killed: over its memory cap";
        }
    }
    proc__die(p);
    proc__close_poll(&p->exit);
    /* The last lines a program writes before it exits are often the ones
     * that say why; take what is in the pipe now, but do not wait for a
     * grandchild that holds it open. */
    for (int i = 0; i < PROC__DRAIN_READS; i++) {
        if (proc__err_read(p) <= 0) {
            break;
        }
    }
    proc__close_err(p);
}

/* Reap the child, its cgroups' work done (e; NULL: it had none). */
static void proc__reap_now(struct proc *p, const struct proc__end *e)
{
    if (e != NULL) {
        /* What outlived the tries is retried by the loop from now on;
         * else the loop retries what earlier ends left. */
        if (e->fz_busy) {
            freezer_remove(e->pid);
        } else if (e->attached) {
            freezer_retry_busy();
        }
        if (e->caps_busy) {
            cgcaps_remove(e->pid);
        } else if (e->capped) {
            cgcaps_retry_busy();
        }
    }
    int ws = 0;
    pid_t r;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    do {
        r = wait4(p->pid, &ws, 0, &ru);
    } while (r < 0 && errno == EINTR);
    proc__reaped(p, r, ws, r == p->pid ? &ru : NULL, e);
}

static void proc__end_done(uv_work_t *req, int status)
{
    struct proc__end *e = req->data;
    struct proc *p = e->p;
    if (status != 0) {
        proc__end_work(req); /* cancelled: done here instead */
    }
    proc__reap_now(p, e);
    mem_free(e);
    p->open_handles--;
    proc__maybe_gone(p);
}

/* End the child, which has exited or been sent its kill: its cgroups'
 * work on the thread pool (struct proc__end), then the reap. Meanwhile
 * the proc is dying, and the cgroups are the work's alone. */
static void proc__end(struct proc *p)
{
    if (!p->attached && !p->capped) {
        proc__reap_now(p, NULL);
        return;
    }
    struct proc__end local;
    struct proc__end *e = mem_alloc(sizeof *e);
    if (e == NULL) {
        e = &local; /* done here, on the loop, as before */
    }
    memset(e, 0, sizeof *e);
    e->req.data = e;
    e->p = p;
    e->pid = p->pid;
    e->kind = freezer_detect();
    e->attached = p->attached;
    e->capped = p->capped;
    p->attached = false;
    p->capped = false;
    proc__close_cpu(p);
    p->ending = true;
    proc__die(p);
    uv_poll_stop(&p->exit);
    if (e != &local && uv_queue_work(p->exit.loop, &e->req, proc__end_work,
                                     proc__end_done) == 0) {
        p->open_handles++;
        return;
    }
    proc__end_work(&e->req);
    proc__reap_now(p, e);
    if (e != &local) {
        mem_free(e);
    }
}

/* Reap the child once its pidfd said it exited, after killing what it
 * started: nothing of a program outlives it, however it ended. With
 * status < 0 (the pidfd failed, or its news was set aside) a child that
 * has not exited is killed and waited for, rather than left unwatched. */
static void proc__reap(struct proc *p, int status)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int w;
    /* Look without reaping: until the zombie is reaped its pid names its
     * process group, so the group kill cannot reach anyone else. */
    do {
        w = waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT);
    } while (w < 0 && errno == EINTR);
    if (w == 0 && si.si_pid == 0) {
        if (status >= 0) {
            return;
        }
        /* Not seen: the kernel never fails a pidfd of a live child, and
         * one that said "exited" leaves a zombie to reap. */
        proc__signal_kill(p);
    } else if (w == 0) {
        /* The rest in its cgroup is killed by proc__end's work. */
        proc__kill_group(p);
    }
    proc__end(p);
}

static void proc__exit_cb(uv_poll_t *h, int status, int events)
{
    struct proc *p = h->data;
    if (p->attach_pending) {
        /* The attach writes the pid to cgroup.procs; until it is done the
         * zombie must keep that pid from going to another process. */
        uv_poll_stop(h);
        p->exit_ready = true;
        return;
    }
    proc__reap(p, status);
}

/* --- the cgroup, attached off the loop --- */

/* Procs whose start request went to the launcher unanswered, oldest
 * first (the order of the replies), and the watch of the launcher's
 * socket (a dup of it) while there are any. */
static struct proc *proc__starts;
static struct proc **proc__starts_tail = &proc__starts;
static uv_poll_t *proc__watch;
/* The launcher's deadline while a start awaits its reply: nothing from it
 * for LAUNCHER_DEADLINE_MS, and it is taken for hung (launcher.h). */
static uv_timer_t *proc__watch_timer;

/* Procs whose attach runs: until it is done they, and what they start,
 * live in the staging cgroup (cgcaps.h). Loop thread only. */
static struct proc *proc__pending;

static void proc__pending_remove(struct proc *p)
{
    for (struct proc **q = &proc__pending; *q != NULL;
         q = &(*q)->pending_next) {
        if (*q == p) {
            *q = p->pending_next;
            p->pending_next = NULL;
            return;
        }
    }
}

/* Read pid's parent from /proc/<pid>/stat; 0 when it cannot be read. */
static pid_t proc__parent(pid_t pid)
{
    char path[64];
    char text[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (tree_read_small(path, text, sizeof text) < 0) {
        return 0;
    }
    /* "pid (comm) state ppid": comm may hold spaces and parentheses. */
    const char *close = strrchr(text, ')');
    int ppid = 0;
    if (close == NULL || sscanf(close + 1, " %*c %d", &ppid) != 1) {
        return 0;
    }
    return (pid_t)ppid;
}

/* Whether a process of the staging cgroup may stay: the launcher, a
 * program whose attach runs, or something it started (up to 16 levels
 * down). Anything else there escaped its program's move. */
static bool proc__stage_keep(pid_t pid, void *arg)
{
    if (pid == launcher_pid()) {
        return true;
    }
    for (int depth = 0; depth < 16 && pid > 1; depth++) {
        for (struct proc *q = proc__pending; q != NULL; q = q->pending_next) {
            if (q->pid == pid) {
                return true;
            }
        }
        pid_t parent = proc__parent(pid);
        if (parent == getpid() && proc__starts != NULL) {
            /* A program whose start awaits the launcher's reply (it is
             * this host's child, born in staging): its pid is not known
             * yet, and its attach comes with the reply. */
            return true;
        }
        pid = parent;
    }
    return false;
}

/* One attach on libuv's thread pool; see freezer_attach for why. */
struct proc__attach {
    uv_work_t req;
    struct proc *p;
    pid_t pid;
    enum freezer_kind kind;
    enum cgcaps_kind caps_kind;
    struct caps caps;
    bool capped;
};

/* cgroup2: the caps go in the freezer's cgroup, before the move. */
static int proc__attach_prepare(pid_t pid, const char *dir, void *arg)
{
    struct proc__attach *a = arg;
    a->capped = cgcaps_prepare(pid, dir, &a->caps) == 0;
    return 0;
}

static void proc__attach_work(uv_work_t *req)
{
    struct proc__attach *a = req->data;
    /* cgroup1: the caps' cgroups first, so that they hold sooner. */
    if (a->caps_kind == CGCAPS_CGROUP1 &&
        cgcaps_prepare(a->pid, NULL, &a->caps) == 0) {
        a->capped = cgcaps_enter(a->pid) == 0;
    }
    a->kind = freezer_attach(
        a->pid, a->caps_kind == CGCAPS_CGROUP2 ? proc__attach_prepare : NULL,
        a);
    if (a->kind != FREEZER_SIGSTOP) {
        freezer_adopt(a->pid);
    } else if (a->caps_kind == CGCAPS_CGROUP2) {
        a->capped = false;
    }
}

static void proc__attach_done(uv_work_t *req, int status)
{
    struct proc__attach *a = req->data;
    struct proc *p = a->p;
    enum freezer_kind kind = status == 0 ? a->kind : FREEZER_SIGSTOP;
    bool capped = status == 0 && a->capped;
    if (status != 0 && a->caps_kind == CGCAPS_CGROUP1) {
        cgcaps_remove(a->pid);
    }
    mem_free(a);
    p->capped = capped;
    p->attach_pending = false;
    proc__pending_remove(p);
    /* What the move missed of this program (or of one before) is still
     * in staging, under a cap all programs share: it goes. */
    cgcaps_stage_sweep(proc__stage_keep, NULL);
    p->open_handles--;
    if (kind != FREEZER_SIGSTOP) {
        p->attached = true;
        p->fz = (uint8_t)kind;
    }
    if (p->capped && p->caps_dirty && !p->exit_ready) {
        proc_set_caps(p, &p->caps);
    }
    p->caps_dirty = false;
    if (p->exit_ready) {
        /* The pidfd said exited: a wait cannot block. */
        proc__reap(p, -1);
    }
    proc__maybe_gone(p);
}

/* Give the child a cgroup of its own, where the host has a cgroup freezer.
 * Until that is done (milliseconds) a freeze uses signals. */
static void proc__attach_start(struct proc *p, uv_loop_t *loop)
{
    p->fz = FREEZER_SIGSTOP;
    /* Detection runs here, on the loop's thread, before any worker. */
    if (freezer_detect() == FREEZER_SIGSTOP) {
        return;
    }
    struct proc__attach *a = mem_alloc(sizeof *a);
    if (a == NULL) {
        return;
    }
    a->req.data = a;
    a->p = p;
    a->pid = p->pid;
    a->caps_kind = cgcaps_detect();
    a->caps = p->caps;
    a->capped = false;
    if (uv_queue_work(loop, &a->req, proc__attach_work, proc__attach_done) !=
        0) {
        mem_free(a);
        return;
    }
    p->attach_pending = true;
    p->open_handles++;
    p->pending_next = proc__pending;
    proc__pending = p;
}

/* --- spawn --- */

/* A host may run with stdin, stdout or stderr closed, so a new descriptor
 * can be 0, 1 or 2; the child's ends must sit above them, or one dup2 into
 * 0, 1 or 2 would overwrite another's source. Returns the descriptor to use
 * (fd closed if moved) or -1. */
static int proc__above_stdio(int fd)
{
    if (fd > 2) {
        return fd;
    }
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return moved;
}

/* Find a program without a slash in its name in PROC__PATH, the way execvp
 * in the child did, into a PATH_MAX buffer; returns 0 or an errno. */
static int proc__search(const char *name, char *out)
{
    const char *dir = PROC__PATH;
    while (*dir != '\0') {
        size_t n = strcspn(dir, ":");
        int len = snprintf(out, PATH_MAX, "%.*s/%s", (int)n, dir, name);
        if (len > 0 && len < PATH_MAX && access(out, X_OK) == 0) {
            return 0;
        }
        dir += n;
        dir += *dir == ':';
    }
    return ENOENT;
}

/* A child's argument and environment vectors, pointing into its config. */
struct proc__vectors {
    char *argv[PROC_ARGS_MAX + 2];
    char *envp[PROC_ARGS_MAX + 4];
    char ship[128];
    char host[160];
};

/* Fill v from cfg: argv is the path and the arguments; envp is PATH (unless
 * the config gives its own), BERTH_SHIP, BERTH_HOST (see proc_host_id) and
 * the added variables. Returns 0, or E2BIG for lists over the limits or
 * malformed. */
static int proc__vectors(const struct proc_config *cfg, struct proc__vectors *v)
{
    long na = strlist_count(cfg->args, cfg->args_len);
    long ne = strlist_count(cfg->env, cfg->env_len);
    if (na < 0 || ne < 0 || na > PROC_ARGS_MAX || ne > PROC_ARGS_MAX ||
        cfg->args_len + cfg->env_len > PROC_ARGS_BYTES_MAX) {
        return E2BIG;
    }
    const char *str;
    size_t off = 0, n = 0;
    v->argv[n++] = (char *)cfg->path;
    while ((str = strlist_next(cfg->args, cfg->args_len, &off)) != NULL) {
        v->argv[n++] = (char *)str;
    }
    v->argv[n] = NULL;
    bool own_path = false;
    for (off = 0; (str = strlist_next(cfg->env, cfg->env_len, &off));) {
        own_path = own_path || strncmp(str, "PATH=", 5) == 0;
    }
    n = 0;
    if (!own_path) {
        v->envp[n++] = "PATH=" PROC__PATH;
    }
    snprintf(v->ship, sizeof v->ship, "BERTH_SHIP=%s", cfg->ship_id);
    v->envp[n++] = v->ship;
    /* What finds the program and what it starts after the host's death:
     * never the config's to change. */
    snprintf(v->host, sizeof v->host, "BERTH_HOST=%s", freezer_host_id());
    v->envp[n++] = v->host;
    for (off = 0; (str = strlist_next(cfg->env, cfg->env_len, &off));) {
        if (strncmp(str, "BERTH_SHIP=", 11) != 0 &&
            strncmp(str, "BERTH_HOST=", 11) != 0) {
            v->envp[n++] = (char *)str;
        }
    }
    v->envp[n] = NULL;
    return 0;
}

/* Start the program with in as its stdin, out as its stdout and errw as its
 * stderr; returns 0 or an errno, with p->pid set on success. */
static int proc__await(pid_t *pid);

static int proc__start(struct proc *p, const struct proc_config *cfg, int in,
                       int out, int errw)
{
    struct proc__vectors v;
    int e = proc__vectors(cfg, &v);
    if (e != 0) {
        return e;
    }
    char found[PATH_MAX];
    const char *file = cfg->path;
    if (strchr(file, '/') == NULL) {
        e = proc__search(file, found);
        if (e != 0) {
            return e;
        }
        file = found;
    }

    e = harden_uid_take(&p->uid);
    if (e != 0) {
        return e;
    }
    char dir[PATH_MAX];
    e = harden_dir_take(dir, p->uid);
    if (e != 0) {
        return e;
    }
    if (dir[0] != '\0' && (p->dir = mem_strdup(dir)) == NULL) {
        harden_dir_give(dir);
        return ENOMEM;
    }
    struct spawn_job job = {
        .file = file,
        .argv = v.argv,
        .envp = v.envp,
        .in = in,
        .out = out,
        .errw = errw,
        .parent = getpid(),
        .dir = dir,
        .network = cfg->network,
        .uid = p->uid,
    };
    /* From the launcher, the start does not copy the host's descriptor
     * table (see launcher.h); without one, from here. */
    if (cfg->start_async && (p->kept = proc__kept_new(&job)) != NULL) {
        e = launcher_send(&job);
        if (e == 0) {
            p->starting = true;
            p->input_held = true;
            return 0;
        }
        proc__kept_free(p->kept);
        p->kept = NULL;
    } else if ((e = launcher_send(&job)) == 0) {
        e = proc__await(&p->pid);
    }
    if (e != ESRCH) {
        return e;
    }
    pid_t pid;
    e = proc__spawn_here(&job, &pid);
    if (e == 0) {
        p->pid = pid;
    }
    return e;
}

/* --- starts awaiting the launcher's reply --- */

static void proc__watch_close_cb(uv_handle_t *h)
{
    mem_free(h);
}

/* Stop watching the launcher's socket once no start awaits it, so that
 * the loop may end. */
static void proc__watch_settle(void)
{
    if (proc__starts != NULL || proc__watch == NULL) {
        return;
    }
    int fd = -1;
    uv_fileno((uv_handle_t *)proc__watch, &fd);
    uv_close((uv_handle_t *)proc__watch, proc__watch_close_cb);
    if (fd >= 0) {
        close(fd);
    }
    proc__watch = NULL;
    uv_close((uv_handle_t *)proc__watch_timer, proc__watch_close_cb);
    proc__watch_timer = NULL;
}

static struct proc *proc__starts_pop(void)
{
    struct proc *p = proc__starts;
    if (p != NULL) {
        proc__starts = p->start_next;
        if (proc__starts == NULL) {
            proc__starts_tail = &proc__starts;
        }
        p->start_next = NULL;
    }
    return p;
}

static void proc__end_now(struct proc *p);

/* The launcher answered p's start: e is 0 with pid, or why it failed. A
 * proc killed meanwhile has its child killed now, and reaped as usual. */
static void proc__started(struct proc *p, int e, pid_t pid)
{
    p->starting = false;
    if (e == ESRCH && p->kept != NULL && !p->spawn_failed &&
        p->state != PROC_GONE) {
        /* The launcher died with the request unanswered (it was killed,
         * say): the host starts the program itself. */
        e = proc__spawn_here(&p->kept->job, &pid);
    }
    proc__kept_free(p->kept);
    p->kept = NULL;
    if (p->spawn_failed || p->state == PROC_GONE) {
        /* proc_spawn failed after sending the request, or a kill ended the
         * proc before the reply: the child only needs to go, and then the
         * uid and directory it held. */
        if (e == 0) {
            p->pid = pid;
            proc__end_now(p);
        }
        if (p->state == PROC_GONE) {
            proc__free(p);
        } else {
            proc__maybe_gone(p);
        }
        return;
    }
    int pidfd = -1;
    if (e == 0) {
        p->pid = pid;
        /* Nobody else reaps the child, so its pid stays valid. */
        pidfd = pidfd_open(pid, 0);
        if (pidfd < 0) {
            e = errno;
            proc__signal_kill(p);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
            }
        }
    }
    if (e == 0 && uv_poll_init(p->loop, &p->exit, pidfd) != 0) {
        close(pidfd);
        proc__end_now(p);
        e = EIO;
    }
    if (e == 0) {
        p->open_handles++;
        if (uv_poll_start(&p->exit, UV_READABLE, proc__exit_cb) != 0) {
            /* Unwatched, it could not be reaped: it goes now. */
            proc__signal_kill(p);
            proc__reap(p, -1);
            return;
        }
        proc__attach_start(p, p->loop);
        if (p->state != PROC_RUNNING) {
            proc__signal_kill(p);
        } else if (!proc__release_input(p)) {
            /* Killed. */
        } else if (!p->paused &&
                   uv_read_start((uv_stream_t *)&p->out, proc__alloc_cb,
                                 proc__read_cb) != 0) {
            proc__kill_static(p, "killed: its output cannot be read");
        }
        return;
    }
    if (p->why == NULL) {
        const char *reason = e == ESRCH ? "the launcher is gone" : strerror(e);
        size_t n = strlen(reason) + sizeof "could not start: ";
        char *why = mem_alloc(n);
        if (why != NULL) {
            snprintf(why, n, "could not start: %s", reason);
            p->why = why;
            p->why_owned = true;
        } else {
            p->why = "could not start";
        }
    }
    proc__die(p);
    proc__close_err(p);
    proc__maybe_gone(p);
}

/* The launcher is gone (died, or killed for hanging): no reply will come,
 * to any start. The host starts their programs itself (proc__started),
 * and kills what is left in staging: a child the launcher made and never
 * told of. */
static void proc__starts_fail(void)
{
    struct proc *p;
    while ((p = proc__starts_pop()) != NULL) {
        proc__started(p, ESRCH, 0);
    }
    cgcaps_stage_sweep(proc__stage_keep, NULL);
}

static void proc__watch_timer_cb(uv_timer_t *t);

/* Read the launcher's replies that have come, each to its start. */
static void proc__watch_cb(uv_poll_t *h, int status, int events)
{
    bool answered = false;
    while (proc__starts != NULL) {
        pid_t pid = 0;
        int err = 0;
        int e = launcher_reply(false, &pid, &err);
        if (e == EAGAIN) {
            break; /* not come yet; a refused start's EAGAIN is err */
        }
        if (e == ESRCH) {
            proc__starts_fail();
            break;
        }
        proc__started(proc__starts_pop(), err, pid);
        answered = true;
    }
    if (answered && proc__starts != NULL) {
        /* It answers: the next start has the whole deadline. */
        uv_timer_start(proc__watch_timer, proc__watch_timer_cb,
                       (uint64_t)launcher_deadline(), 0);
    }
    proc__watch_settle();
}

/* Nothing from the launcher for its deadline while starts await: it hung
 * (stopped, or stuck in the kernel). */
static void proc__watch_timer_cb(uv_timer_t *t)
{
    if (proc__starts != NULL) {
        launcher_abandon();
        proc__starts_fail();
    }
    proc__watch_settle();
}

/* Queue p for the launcher's reply; 0, or a negative code (nothing
 * queued) when its socket cannot be watched. */
static int proc__starts_add(struct proc *p, uv_loop_t *loop)
{
    if (proc__watch == NULL) {
        int fd = fcntl(launcher_fd(), F_DUPFD_CLOEXEC, 3);
        if (fd < 0) {
            return BERTH_EIO;
        }
        uv_poll_t *w = mem_alloc(sizeof *w);
        if (w == NULL) {
            close(fd);
            return BERTH_ENOMEM;
        }
        if (uv_poll_init(loop, w, fd) != 0) {
            mem_free(w);
            close(fd);
            return BERTH_EIO;
        }
        uv_timer_t *t = mem_alloc(sizeof *t);
        if (t == NULL || uv_timer_init(loop, t) != 0) {
            mem_free(t);
            uv_close((uv_handle_t *)w, proc__watch_close_cb);
            close(fd);
            return BERTH_ENOMEM;
        }
        if (uv_poll_start(w, UV_READABLE, proc__watch_cb) != 0) {
            uv_close((uv_handle_t *)w, proc__watch_close_cb);
            uv_close((uv_handle_t *)t, proc__watch_close_cb);
            close(fd);
            return BERTH_EIO;
        }
        proc__watch = w;
        proc__watch_timer = t;
    }
    if (proc__starts == NULL) {
        uv_timer_start(proc__watch_timer, proc__watch_timer_cb,
                       (uint64_t)launcher_deadline(), 0);
    }
    p->loop = loop;
    p->start_next = NULL;
    *proc__starts_tail = p;
    proc__starts_tail = &p->start_next;
    return 0;
}

/* Wait for the launcher's reply to the last request sent, handing the
 * replies to the starts queued before it to them; as launcher_reply. */
static int proc__await(pid_t *pid)
{
    for (;;) {
        pid_t got = 0;
        int err = 0;
        int e = launcher_reply(true, &got, &err);
        struct proc *q = proc__starts_pop();
        if (e != 0) {
            if (q != NULL) {
                proc__started(q, ESRCH, 0);
            }
            proc__starts_fail();
            proc__watch_settle();
            return ESRCH;
        }
        if (q == NULL) {
            proc__watch_settle();
            if (err == 0) {
                *pid = got;
            }
            return err;
        }
        proc__started(q, err, got);
    }
}

/* Kill and reap a child that cannot be watched. It is a few microseconds
 * old and has no cgroup yet, so waiting is short. */
static void proc__end_now(struct proc *p)
{
    proc__signal_kill(p);
    while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {
    }
}

int proc_spawn(struct proc **out, uv_loop_t *loop,
               const struct proc_config *cfg, proc_frame_cb on_frame,
               proc_exit_cb on_exit, void *arg, char *errmsg)
{
    int rv;
    struct proc *p = mem_calloc(1, sizeof *p);
    if (p == NULL) {
        err_printf(errmsg, "out of memory");
        return BERTH_ENOMEM;
    }
    p->uid = -1;
    p->cpu_fd = -1;
    p->held_tail = &p->held;
    p->name = mem_strdup(cfg->name);
    if (p->name == NULL) {
        err_printf(errmsg, "out of memory");
        rv = BERTH_ENOMEM;
        goto err_after_alloc;
    }
    size_t max = cfg->max_frame ? cfg->max_frame : FRAME_MAX_DEFAULT;
    p->max_frame = max > UINT32_MAX ? UINT32_MAX : (uint32_t)max;
    p->on_frame = on_frame;
    p->on_exit = on_exit;
    p->caps = cfg->caps;
    p->on_stderr = cfg->on_stderr;
    p->arg = arg;
    p->budget = cfg->budget;
    size_t rate = cfg->stderr_rate ? cfg->stderr_rate : PROC_STDERR_RATE;
    size_t burst = cfg->stderr_burst ? cfg->stderr_burst : PROC_STDERR_BURST;
    p->err_rate =
        rate > PROC__ERR_RATE_MAX ? PROC__ERR_RATE_MAX : (uint32_t)rate;
    p->err_burst =
        (burst > PROC__ERR_BURST_MAX ? PROC__ERR_BURST_MAX : (uint64_t)burst) *
        PROC__NS;
    p->err_credit = p->err_burst;
    p->err_refill_ns = uv_hrtime();
    p->read_credit = (int64_t)PROC_STDERR_READ_RATE * (int64_t)PROC__NS;
    p->read_refill_ns = p->err_refill_ns;
    p->in.data = p->out.data = p->err.data = p->exit.data = p;

    /* Frames go over two pipes rather than one socket: reading a socket
     * wakes its writer, a program blocked reading its next event, for
     * nothing, and that cost a context switch per event in both. A pipe
     * wakes its writer only if it was full. */
    int ip[2], op[2], ep[2];
    if (pipe2(ip, O_CLOEXEC) != 0) {
        err_printf(errmsg, "cannot create a pipe for program %s: %s", cfg->path,
                   strerror(errno));
        rv = BERTH_EIO;
        goto err_after_alloc;
    }
    if (pipe2(op, O_CLOEXEC) != 0) {
        err_printf(errmsg, "cannot create a pipe for program %s: %s", cfg->path,
                   strerror(errno));
        close(ip[0]);
        rv = BERTH_EIO;
        goto err_after_in;
    }
    if (pipe2(ep, O_CLOEXEC) != 0) {
        err_printf(errmsg, "cannot create a pipe for program %s: %s", cfg->path,
                   strerror(errno));
        close(ip[0]);
        close(op[1]);
        rv = BERTH_EIO;
        goto err_after_out;
    }
    ip[0] = proc__above_stdio(ip[0]);
    op[1] = proc__above_stdio(op[1]);
    ep[1] = proc__above_stdio(ep[1]);
    /* What fits in the empty pipe goes now; the rest is queued below, once
     * the pipe is a handle (which makes it non-blocking too). A failed
     * write leaves it all to the queue, whose write reports the error. */
    size_t first_sent = 0;
    if (cfg->first != NULL && cfg->first->len > 0 &&
        fcntl(ip[1], F_SETFL, O_NONBLOCK) == 0) {
        ssize_t n = write(ip[1], cfg->first->data, cfg->first->len);
        first_sent = n > 0 ? (size_t)n : 0;
    }
    int e = ip[0] < 0 || op[1] < 0 || ep[1] < 0
                ? EMFILE
                : proc__start(p, cfg, ip[0], op[1], ep[1]);
    if (e == 0 && p->starting && proc__starts_add(p, loop) != 0) {
        /* The reply cannot be watched for: waited for here. */
        p->starting = false;
        p->input_held = false;
        e = proc__await(&p->pid);
    }
    /* The child has its copies; holding ours would hide its EOF. */
    int child[3] = {ip[0], op[1], ep[1]};
    for (int i = 0; i < 3; i++) {
        if (child[i] >= 0) {
            close(child[i]);
        }
    }
    if (e == EUSERS) {
        err_printf(errmsg,
                   "cannot start program %s: every uid of --program-uids "
                   "is held by a running program",
                   cfg->path);
    } else if (e != 0) {
        err_printf(errmsg, "cannot start program %s: %s", cfg->path,
                   strerror(e));
    }
    if (e != 0) {
        rv = e == ENOENT || e == EACCES || e == ENOTDIR ? BERTH_ENOTFOUND
                                                        : BERTH_EIO;
        goto err_after_pipe;
    }

    /* Nobody else reaps the child, so its pid stays valid for pidfd_open
     * even if it has exited already. A start awaiting the launcher has no
     * pid yet: its pidfd comes with the reply (proc__started). */
    int pidfd = p->starting ? -1 : pidfd_open(p->pid, 0);
    if (pidfd < 0 && !p->starting) {
        err_printf(errmsg, "cannot watch program %s: %s", cfg->path,
                   strerror(errno));
        proc__end_now(p);
        rv = BERTH_EIO;
        goto err_after_pipe;
    }
    /* From here each initialized handle is counted in open_handles and
     * owns its descriptor, so that a failure can close it. */
    uv_pipe_init(loop, &p->in, 0);
    uv_pipe_init(loop, &p->out, 0);
    p->open_handles = 2;
    rv = uv_pipe_open(&p->in, ip[1]);
    if (rv != 0) {
        close(ip[1]);
        close(op[0]);
        close(ep[0]);
        close(pidfd);
        goto err_after_handles;
    }
    rv = uv_pipe_open(&p->out, op[0]);
    if (rv != 0) {
        close(op[0]);
        close(ep[0]);
        close(pidfd);
        goto err_after_handles;
    }
    rv = uv_poll_init(loop, &p->err, ep[0]);
    if (rv != 0) {
        close(ep[0]);
        close(pidfd);
        goto err_after_handles;
    }
    p->open_handles = 3;
    if (!p->starting) {
        rv = uv_poll_init(loop, &p->exit, pidfd);
        if (rv != 0) {
            close(pidfd);
            goto err_after_handles;
        }
        p->open_handles = 4;
    }
    uv_timer_init(loop, &p->err_timer);
    p->err_timer.data = p;
    p->open_handles++;
    /* A start awaiting its reply has its frames read once the reply is
     * in (proc__started): none is handled before its pid is known and its
     * move into its cgroups under way, as when the start waits. */
    if ((!p->starting &&
         (rv = uv_read_start((uv_stream_t *)&p->out, proc__alloc_cb,
                             proc__read_cb)) != 0) ||
        (rv = uv_poll_start(&p->err, UV_READABLE, proc__err_cb)) != 0 ||
        (!p->starting &&
         (rv = uv_poll_start(&p->exit, UV_READABLE, proc__exit_cb)) != 0)) {
        goto err_after_handles;
    }
    if (cfg->first != NULL) {
        struct buf *first = cfg->first;
        if (first_sent < first->len) {
            memmove(first->data, first->data + first_sent,
                    first->len - first_sent);
            first->len -= first_sent;
            if (proc_send(p, first) != 0) {
                /* Only a dying child refuses, and this one has just
                 * started: without its first frame it would wait
                 * forever. */
                rv = UV_EPIPE;
                goto err_after_handles;
            }
        } else {
            buf_free(first);
        }
    }
    if (!p->starting) {
        proc__attach_start(p, loop);
    }
    proc__refill(loop);
    atomic_fetch_add(&proc__alive, 1);
    *out = p;
    return 0;

err_after_handles:
    /* The child runs but cannot be watched. p frees itself in the last
     * close callback, without an exit callback. */
    err_printf(errmsg, "cannot watch program %s: %s", cfg->path,
               uv_strerror(rv));
    /* A start awaiting its reply has its child ended then
     * (proc__started). */
    if (!p->starting) {
        proc__end_now(p);
    }
    p->spawn_failed = true;
    p->state = PROC_DYING;
    int opened = p->open_handles;
    proc__close((uv_handle_t *)&p->in);
    proc__close((uv_handle_t *)&p->out);
    if (opened >= 3) {
        proc__close_poll(&p->err);
    }
    /* Without a pidfd yet, the timer is the fourth. */
    int timer_at = p->starting ? 4 : 5;
    if (opened >= 4 && !p->starting) {
        proc__close_poll(&p->exit);
    }
    if (opened >= timer_at) {
        proc__close((uv_handle_t *)&p->err_timer);
    }
    return BERTH_EIO;

err_after_pipe:
    close(ep[0]);
err_after_out:
    close(op[0]);
err_after_in:
    close(ip[1]);
err_after_alloc:
    harden_uid_give(p->uid);
    harden_dir_give(p->dir);
    mem_free(p->dir);
    mem_free(p->name);
    mem_free(p);
    return rv;
}

int proc_send(struct proc *p, struct buf *frame)
{
    if (p->state != PROC_RUNNING) {
        return BERTH_ESHUTDOWN;
    }
    if (p->input_held) {
        /* Held until the reply is in and the move into its cgroups is
         * queued, as when the start waited: the program's first event
         * would otherwise race a move not even begun (a fork bomb in it
         * grows under staging's shared cap until the move). Holding it
         * until the move is done would cost every wake spaced out from
         * the last the move's wait for an RCU grace period (freezer.c),
         * about 10 ms. */
        struct proc__write *h = mem_alloc(sizeof *h);
        if (h == NULL) {
            return BERTH_ENOMEM;
        }
        h->req.data = h;
        h->data = frame->data;
        h->len = frame->len;
        h->budget = p->budget;
        h->counted = frame->cap;
        h->next = NULL;
        budget_add(h->budget, h->counted, false);
        *p->held_tail = h;
        p->held_tail = &h->next;
        buf_init(frame);
        return 0;
    }
    uv_buf_t b = uv_buf_init((char *)frame->data, (unsigned)frame->len);
    /* Most frames fit in the pipe at once: written now, they need no
     * request and no callback. libuv refuses while earlier writes are
     * queued, which keeps the order; the rest, or an error, goes to the
     * queue. */
    int n = uv_try_write((uv_stream_t *)&p->in, &b, 1);
    if (n >= 0 && (size_t)n == frame->len) {
        buf_free(frame);
        return 0;
    }
    if (n > 0) {
        b.base += n;
        b.len -= (size_t)n;
    }
    struct proc__write *w = mem_alloc(sizeof *w);
    if (w == NULL) {
        /* Part of the frame may be in the pipe already: the child would
         * read a broken stream. */
        if (n > 0) {
            proc_kill(p, "host out of memory writing to it");
            buf_free(frame);
            return 0;
        }
        return BERTH_ENOMEM;
    }
    w->req.data = w;
    w->data = frame->data;
    /* Queued until the child reads it, which it may not do while the host
     * holds its output back: counted like any byte held. */
    w->budget = p->budget;
    w->counted = frame->cap;
    int rv = uv_write(&w->req, (uv_stream_t *)&p->in, &b, 1, proc__write_cb);
    if (rv != 0) {
        mem_free(w);
        return BERTH_ESHUTDOWN;
    }
    budget_add(w->budget, w->counted, false);
    buf_init(frame);
    return 0;
}

pid_t proc_pid(const struct proc *p)
{
    return p->pid;
}

int proc_running(const struct proc *p)
{
    return p->state == PROC_RUNNING;
}

int proc_freeze(struct proc *p)
{
    if (p->state != PROC_RUNNING) {
        return BERTH_ESHUTDOWN;
    }
    if (p->starting) {
        return BERTH_EBUSY;
    }
    if (p->frozen) {
        return 0;
    }
    enum freezer_kind kind = p->fz;
    int rv = freezer_set(kind, p->pid, true);
    if (rv != 0 && kind != FREEZER_SIGSTOP) {
        /* The cgroup went away or became read-only under us; signals
         * still work, and this proc uses them from now on. */
        kind = FREEZER_SIGSTOP;
        p->fz = (uint8_t)kind;
        rv = freezer_set(kind, p->pid, true);
    }
    if (rv == 0) {
        p->frozen = true;
        p->frozen_fz = (uint8_t)kind;
    }
    return rv;
}

int proc_thaw(struct proc *p)
{
    if (p->state != PROC_RUNNING) {
        return BERTH_ESHUTDOWN;
    }
    if (!p->frozen) {
        return 0;
    }
    int rv = freezer_set(p->frozen_fz, p->pid, false);
    if (rv == 0) {
        p->frozen = false;
    }
    return rv;
}

const char *proc_freezer_name(void)
{
    return freezer_name(freezer_detect());
}

/* One /proc or cgroup file costs 5-6 us to read here (p50 of 10,000 reads
 * of a running cat's statm): fine for a sweep over the running programs
 * now and then, not for every event. */
int proc_memory(const struct proc *p, uint64_t *bytes)
{
    if (p->state != PROC_RUNNING) {
        return BERTH_ESHUTDOWN;
    }
    if (p->starting) {
        return BERTH_EBUSY;
    }
    if (p->attached && freezer_memory(p->pid, bytes) == 0) {
        return 0;
    }
    return tree_anon_bytes_below(p->pid, bytes);
}

int proc_cpu(struct proc *p, uint64_t *usec)
{
    if (p->exited) {
        *usec = p->cpu_final_us;
        return 0;
    }
    if (p->ending) {
        return BERTH_EBUSY; /* its cgroups are the end's; read once reaped */
    }
    if (p->pid <= 0) {
        return BERTH_EBUSY;
    }
    /* The caps' cgroups first: what the program started before its move
     * went there with it (cgcaps.h), not always into the freezer's. */
    char dir[PATH_MAX];
    uint64_t cg;
    if (p->capped && p->cpu_fd < 0 && freezer_pid_dir(p->pid, dir) == 0) {
        /* Kept open: this is read at the start of every event. */
        p->cpu_fd = cgcaps_cpu_open(p->pid, dir);
    }
    if (p->capped && p->cpu_fd >= 0 && cgcaps_cpu_read(p->cpu_fd, &cg) == 0 &&
        cg > 0) {
        *usec = cg;
        return 0;
    }
    if (p->attached && freezer_cpu(p->pid, usec) == 0) {
        return 0;
    }
    return tree_cpu_usec(p->pid, usec);
}

const char *proc_caps_name(void)
{
    return cgcaps_name(cgcaps_detect());
}

int proc_set_caps(struct proc *p, const struct caps *caps)
{
    if (p->state != PROC_RUNNING) {
        return BERTH_ESHUTDOWN;
    }
    if (cgcaps_detect() == CGCAPS_NONE) {
        return BERTH_ENOTFOUND;
    }
    p->caps = *caps;
    if (p->attach_pending || p->starting) {
        p->caps_dirty = true; /* the attach's copy is older */
        return 0;
    }
    char dir[PATH_MAX];
    if (!p->capped || freezer_pid_dir(p->pid, dir) != 0) {
        return BERTH_ENOTFOUND;
    }
    return cgcaps_set(p->pid, dir, caps);
}

int proc_caps_use(const struct proc *p, struct proc_caps_use *use)
{
    char dir[PATH_MAX];
    struct cgcaps_use u;
    memset(use, 0, sizeof *use);
    if (!p->capped || freezer_pid_dir(p->pid, dir) != 0 ||
        cgcaps_read(p->pid, dir, &u) != 0) {
        return BERTH_ENOTFOUND;
    }
    use->memory_bytes = u.memory_bytes;
    use->memory_peak_bytes = u.memory_peak_bytes;
    use->pids = u.pids;
    use->pids_peak = u.pids_peak;
    use->oom_kills = u.oom_kills;
    return 0;
}

bool proc_over_memory(const struct proc *p)
{
    return p->over_memory;
}

uint64_t proc_stderr_dropped(const struct proc *p)
{
    return p->err_dropped;
}

uint64_t proc_stderr_dropped_total(void)
{
    return atomic_load(&proc__err_dropped_total);
}

int proc_setup(const char *tag, unsigned *killed)
{
    *killed = 0;
    if (proc_count() != 0) {
        return BERTH_EBUSY;
    }
    cgcaps_cleanup(true);
    int rv = freezer_claim(tag, killed);
    if (rv == 0) {
        cgcaps_claim(tag);
        freezer_detect();
        cgcaps_detect();
    }
    return rv;
}

const char *proc_host_id(void)
{
    return freezer_host_id();
}

unsigned proc_count(void)
{
    return atomic_load(&proc__alive);
}

unsigned proc_fds_per_proc(void)
{
    return 4;
}

void proc_cleanup(void)
{
    cgcaps_cleanup(proc_count() == 0);
    freezer_cleanup(proc_count() == 0);
}
