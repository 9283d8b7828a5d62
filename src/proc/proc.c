#include "proc/proc.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"
#include "lib/mem.h"

enum proc_state { PROC_RUNNING, PROC_DYING, PROC_GONE };

/* A child's stderr line longer than this is cut; the host log stays usable. */
#define PROC__LINE_MAX 4096

struct proc {
    uv_loop_t *loop;
    uv_process_t process;
    uv_pipe_t in;  /* the child's stdin */
    uv_pipe_t out; /* the child's stdout */
    uv_pipe_t err; /* the child's stderr */
    enum proc_state state;
    int open_handles;
    bool exited;
    int64_t exit_status;
    int term_signal;
    char why[160];
    bool killed;
    bool spawn_failed;
    struct buf rx;   /* unparsed bytes from stdout */
    struct buf line; /* partial stderr line */
    char *name;
    size_t max_frame;
    proc_frame_cb on_frame;
    proc_exit_cb on_exit;
    void *arg;
};

struct proc__write {
    uv_write_t req;
    uint8_t *data;
};

static void proc__write_cb(uv_write_t *req, int status)
{
    /* A failed write means the child closed stdin or died; its exit, or a
     * kill for not answering, ends the proc, so nothing is done here. */
    struct proc__write *w = req->data;
    mem_free(w->data);
    mem_free(w);
}

static void proc__maybe_gone(struct proc *p)
{
    if (p->state == PROC_GONE || p->open_handles > 0) {
        return;
    }
    p->state = PROC_GONE;
    if (p->spawn_failed) {
        goto free;
    }
    int clean = !p->killed && p->exited && p->exit_status == 0 &&
                p->term_signal == 0;
    if (p->why[0] == '\0') {
        if (p->term_signal != 0) {
            snprintf(p->why, sizeof p->why, "killed by signal %d",
                     p->term_signal);
        } else {
            snprintf(p->why, sizeof p->why, "exited with status %lld",
                     (long long)p->exit_status);
        }
    }
    p->on_exit(p, p->why, clean, p->arg);
free:
    buf_free(&p->rx);
    buf_free(&p->line);
    mem_free(p->name);
    mem_free(p);
}

static void proc__close_cb(uv_handle_t *h)
{
    struct proc *p = h->data;
    p->open_handles--;
    proc__maybe_gone(p);
}

static void proc__close(struct proc *p, uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        uv_close(h, proc__close_cb);
    }
}

/* Enter DYING: stop talking to the child. The process handle closes only once
 * the child is reaped, so no zombie is left behind. */
static void proc__die(struct proc *p)
{
    if (p->state != PROC_RUNNING) {
        return;
    }
    p->state = PROC_DYING;
    proc__close(p, (uv_handle_t *)&p->in);
    proc__close(p, (uv_handle_t *)&p->out);
    if (p->exited) {
        proc__close(p, (uv_handle_t *)&p->process);
    }
}

void proc_kill(struct proc *p, const char *why)
{
    if (p->state != PROC_RUNNING) {
        return;
    }
    p->killed = true;
    snprintf(p->why, sizeof p->why, "killed: %s", why);
    if (!p->exited) {
        /* The child leads its own process group; take its children too. */
        if (kill(-p->process.pid, SIGKILL) != 0) {
            uv_process_kill(&p->process, SIGKILL);
        }
    }
    proc__die(p);
}

static void proc__exit_cb(uv_process_t *h, int64_t status, int term_signal)
{
    struct proc *p = h->data;
    p->exited = true;
    p->exit_status = status;
    p->term_signal = term_signal;
    proc__die(p);
    proc__close(p, (uv_handle_t *)&p->process);
    /* A grandchild may hold stderr open forever; the log is not worth
     * waiting for once the program itself is gone. */
    proc__close(p, (uv_handle_t *)&p->err);
}

static void proc__alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct proc *p = h->data;
    struct buf *target = h == (uv_handle_t *)&p->out ? &p->rx : &p->line;
    size_t want = 64 * 1024;
    if (buf_reserve(target, want) != 0) {
        b->base = NULL;
        b->len = 0;
        return;
    }
    b->base = (char *)target->data + target->len;
    b->len = target->cap - target->len;
}

static void proc__read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct proc *p = s->data;
    if (n == UV_ENOBUFS) {
        proc_kill(p, "host out of memory reading its output");
        return;
    }
    if (n < 0) {
        /* EOF on stdout: the child is exiting; wait for its status. */
        uv_read_stop(s);
        return;
    }
    p->rx.len += (size_t)n;
    size_t off = 0;
    while (p->state == PROC_RUNNING) {
        struct frame f;
        size_t used;
        int rv = frame_split(p->rx.data + off, p->rx.len - off, p->max_frame,
                             &f, &used);
        if (rv == BERTH_EPARTIAL) {
            break;
        }
        if (rv != 0) {
            proc_kill(p, rv == BERTH_ETOOBIG ? "frame over the size limit"
                                             : "malformed frame");
            return;
        }
        off += used;
        p->on_frame(p, &f, p->arg);
    }
    if (p->state != PROC_RUNNING) {
        return;
    }
    memmove(p->rx.data, p->rx.data + off, p->rx.len - off);
    p->rx.len -= off;
}

static void proc__flush_line(struct proc *p)
{
    fprintf(stderr, "[%s] %.*s\n", p->name, (int)p->line.len,
            (const char *)p->line.data);
    p->line.len = 0;
}

static void proc__err_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct proc *p = s->data;
    if (n < 0) {
        if (p->line.len > 0) {
            proc__flush_line(p);
        }
        proc__close(p, (uv_handle_t *)s);
        return;
    }
    /* The bytes were read in place at the end of p->line; split them. */
    size_t start = p->line.len;
    p->line.len += (size_t)n;
    size_t i = start;
    while (i < p->line.len) {
        if (p->line.data[i] == '\n') {
            size_t rest = p->line.len - i - 1;
            p->line.len = i;
            proc__flush_line(p);
            memmove(p->line.data, p->line.data + i + 1, rest);
            p->line.len = rest;
            i = 0;
            continue;
        }
        i++;
    }
    if (p->line.len > PROC__LINE_MAX) {
        proc__flush_line(p);
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
    p->name = mem_strdup(cfg->name);
    if (p->name == NULL) {
        err_printf(errmsg, "out of memory");
        rv = BERTH_ENOMEM;
        goto err_after_alloc;
    }
    p->loop = loop;
    p->max_frame = cfg->max_frame ? cfg->max_frame : FRAME_MAX_DEFAULT;
    p->on_frame = on_frame;
    p->on_exit = on_exit;
    p->arg = arg;
    buf_init(&p->rx);
    buf_init(&p->line);

    uv_pipe_init(loop, &p->in, 0);
    uv_pipe_init(loop, &p->out, 0);
    uv_pipe_init(loop, &p->err, 0);
    p->in.data = p->out.data = p->err.data = p->process.data = p;

    char ship_env[128];
    snprintf(ship_env, sizeof ship_env, "BERTH_SHIP=%s", cfg->ship_id);
    char *env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", ship_env, NULL};
    char *args[] = {(char *)cfg->path, NULL};
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = (uv_stream_t *)&p->in;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&p->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&p->err;
    uv_process_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.file = cfg->path;
    opts.args = args;
    opts.env = env;
    opts.exit_cb = proc__exit_cb;
    opts.stdio = stdio;
    opts.stdio_count = 3;
    opts.flags = UV_PROCESS_DETACHED;

    rv = uv_spawn(loop, &p->process, &opts);
    p->open_handles = 4;
    if (rv != 0) {
        err_printf(errmsg, "cannot start program %s: %s", cfg->path,
                   uv_strerror(rv));
        /* uv_spawn leaves every handle initialized; they live inside p, so
         * p is freed by the last close callback, without an exit callback. */
        p->spawn_failed = true;
        p->state = PROC_DYING;
        proc__close(p, (uv_handle_t *)&p->process);
        proc__close(p, (uv_handle_t *)&p->in);
        proc__close(p, (uv_handle_t *)&p->out);
        proc__close(p, (uv_handle_t *)&p->err);
        return rv == UV_ENOENT || rv == UV_EACCES ? BERTH_ENOTFOUND
                                                   : BERTH_EIO;
    }
    uv_read_start((uv_stream_t *)&p->out, proc__alloc_cb, proc__read_cb);
    uv_read_start((uv_stream_t *)&p->err, proc__alloc_cb, proc__err_cb);
    *out = p;
    return 0;

err_after_alloc:
    mem_free(p);
    return rv;
}

int proc_send(struct proc *p, struct buf *frame)
{
    if (p->state != PROC_RUNNING) {
        return BERTH_ESHUTDOWN;
    }
    struct proc__write *w = mem_alloc(sizeof *w);
    if (w == NULL) {
        return BERTH_ENOMEM;
    }
    uv_buf_t b = uv_buf_init((char *)frame->data, (unsigned)frame->len);
    w->req.data = w;
    w->data = frame->data;
    int rv = uv_write(&w->req, (uv_stream_t *)&p->in, &b, 1, proc__write_cb);
    if (rv != 0) {
        mem_free(w);
        return BERTH_ESHUTDOWN;
    }
    buf_init(frame);
    return 0;
}

pid_t proc_pid(const struct proc *p)
{
    return p->process.pid;
}

int proc_running(const struct proc *p)
{
    return p->state == PROC_RUNNING;
}
