/* Ships on the host: wake, serve, commit, release, sleep, remove.
 *
 * A ship runs at most one job in its program at a time; the next job is
 * sent as soon as the program answers, while the log commits the previous
 * one. Every answered job enters the ship's gate and leaves it (its HTTP
 * reply is written) only once every state-changing event before it is
 * durable. A single timer per ship holds whichever deadline applies. */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/record.h"
#include "daemon/host.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "proc/proc.h"

enum {
    SHIP__TIMER_NONE,
    SHIP__TIMER_EVENT, /* the current job's time limit */
    SHIP__TIMER_WAKE,  /* waking must make progress */
    SHIP__TIMER_IDLE,  /* idle past this: sleep */
    SHIP__TIMER_STOP,  /* STOP sent: must exit */
};

/* How long a program may take to exit after STOP before it is killed. */
#define SHIP__STOP_MS 5000

/* Waking must make progress (READY, or the next replayed DONE) within the
 * per-event limit, but never less than this: starting a process depends on
 * the host's load, not on the program. */
#define SHIP__WAKE_MIN_MS 5000

static uint64_t ship__wake_ms(const struct host *h)
{
    return h->cfg.event_timeout_ms > SHIP__WAKE_MIN_MS ? h->cfg.event_timeout_ms
                                                       : SHIP__WAKE_MIN_MS;
}

static void ship__pump(struct host_ship *s);
static void ship__release(struct host_ship *s);
static void ship__remove_step(struct host_ship *s);

static void ship__set_state(struct host_ship *s, enum ship_state next)
{
    int rv = ship_state_set(&s->state, next);
    if (rv != 0) {
        host_log("error", "ship state machine refused a transition", "ship",
                 s->id, "from", ship_state_name(s->state), "to",
                 ship_state_name(next), NULL);
        abort();
    }
}

static void ship__timer_cb(uv_timer_t *t);

static void ship__arm(struct host_ship *s, int kind, uint64_t ms)
{
    s->timer_kind = kind;
    uv_timer_start(&s->timer, ship__timer_cb, ms, 0);
}

static void ship__disarm(struct host_ship *s)
{
    s->timer_kind = SHIP__TIMER_NONE;
    uv_timer_stop(&s->timer);
}

struct host_ship *host_ship_add(struct host *h, const struct store_ship *rec)
{
    struct host_ship *s = mem_calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->program = mem_strdup(rec->program);
    if (s->program == NULL) {
        goto err_after_alloc;
    }
    s->host = h;
    s->sid = rec->sid;
    memcpy(s->id, rec->id, sizeof s->id);
    memcpy(s->name, rec->name, sizeof s->name);
    s->idle_timeout_ms = rec->idle_timeout_ms;
    s->created_ns = rec->created_ns;
    s->last_event = rec->last_event;
    s->snapshot_event = rec->snapshot_event;
    s->first_event = rec->first_event;
    s->state = SHIP_ASLEEP;
    gate_init(&s->gate);
    if (table_put(&h->ships, s->id, s) != 0) {
        goto err_after_program;
    }
    if (s->name[0] != '\0' && table_put(&h->ships, s->name, s) != 0) {
        table_del(&h->ships, s->id);
        goto err_after_program;
    }
    uv_timer_init(&h->loop, &s->timer);
    s->timer.data = s;
    h->n_ships++;
    return s;

err_after_program:
    mem_free(s->program);
err_after_alloc:
    mem_free(s);
    return NULL;
}

struct host_ship *host_ship_find(struct host *h, const char *id_or_name)
{
    return table_get(&h->ships, id_or_name);
}

json_t *host_ship_json(const struct host_ship *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(s->id));
    json_object_set_new(o, "name", s->name[0] ? json_string(s->name)
                                              : json_null());
    json_object_set_new(o, "state", json_string(ship_state_name(s->state)));
    json_object_set_new(o, "program", json_string(s->program));
    json_object_set_new(o, "last_event", json_integer((json_int_t)s->last_event));
    json_object_set_new(o, "snapshot_event",
                        json_integer((json_int_t)s->snapshot_event));
    json_object_set_new(o, "first_event",
                        json_integer((json_int_t)s->first_event));
    json_object_set_new(o, "idle_timeout_ms",
                        json_integer((json_int_t)(s->idle_timeout_ms
                                                      ? s->idle_timeout_ms
                                                      : s->host->cfg
                                                            .idle_timeout_ms)));
    json_object_set_new(o, "wake_count", json_integer((json_int_t)s->wake_count));
    json_object_set_new(o, "queued", json_integer(s->n_waiting));
    json_object_set_new(o, "created_ns", json_integer((json_int_t)s->created_ns));
    json_object_set_new(o, "last_active_ns",
                        json_integer((json_int_t)s->last_active_ns));
    return o;
}

/* --- Jobs. --- */

static struct host_job *ship__job_new(struct host_ship *s,
                                      enum host_job_origin origin,
                                      struct http_request *req, uint8_t kind)
{
    struct host_job *j = mem_calloc(1, sizeof *j);
    if (j == NULL) {
        return NULL;
    }
    j->ship = s;
    j->origin = origin;
    j->req = req;
    j->kind = kind;
    buf_init(&j->payload);
    buf_init(&j->body);
    return j;
}

static void ship__job_free(struct host_job *j)
{
    buf_free(&j->payload);
    buf_free(&j->body);
    mem_free(j->content_type);
    mem_free(j->error_message);
    mem_free(j);
}

/* Record a failure as the job's outcome. */
static void ship__job_fail(struct host_job *j, int status, const char *code,
                           const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    j->status = status;
    snprintf(j->error_code, sizeof j->error_code, "%s", code);
    mem_free(j->error_message);
    j->error_message = mem_strdup(msg);
}

static json_t *ship__body_json(const struct buf *b)
{
    json_t *v = json_stringn((const char *)b->data, b->len);
    return v ? v : json_null();
}

/* Write the job's outcome to its client and free it. */
static void ship__answer(struct host_job *j)
{
    struct http_request *req = j->req;
    if (req == NULL) {
        ship__job_free(j);
        return;
    }
    if (j->error_code[0] != '\0') {
        host_reply_error(req, j->status, j->error_code, "%s",
                         j->error_message ? j->error_message : "failed");
    } else if (j->origin == HOST_JOB_FRONT) {
        if (j->status == 0) {
            http_reply(req, 204, NULL, NULL, 0, NULL);
        } else {
            http_reply(req, j->status, j->content_type, j->body.data,
                       j->body.len, NULL);
        }
    } else {
        json_t *o = json_object();
        json_object_set_new(o, "event", j->changed
                                            ? json_integer((json_int_t)j->number)
                                            : json_null());
        json_object_set_new(o, "changed", json_boolean(j->changed));
        if (j->status != 0) {
            json_t *r = json_object();
            json_object_set_new(r, "status", json_integer(j->status));
            json_object_set_new(r, "content_type",
                                j->content_type ? json_string(j->content_type)
                                                : json_null());
            json_object_set_new(r, "body", ship__body_json(&j->body));
            json_object_set_new(o, "reply", r);
        } else {
            json_object_set_new(o, "reply", json_null());
        }
        host_reply_json(req, 200, o);
    }
    ship__job_free(j);
}

/* Jobs that never reached the program leave at once: they reveal nothing
 * about state, so the gate has nothing to hold them for. */
static void ship__fail_waiting(struct host_ship *s, int status,
                               const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    while (s->wait_head != NULL) {
        struct host_job *j = s->wait_head;
        s->wait_head = j->next;
        ship__job_fail(j, status, code, "%s", msg);
        ship__answer(j);
    }
    s->wait_tail = NULL;
    s->n_waiting = 0;
}

/* Marks a waiter that asked for a wake (in http_request.data). */
static char ship__wake_waiter;

/* Answer the admin requests waiting for the ship to settle: awake, or
 * asleep with nothing of it still being committed (so that a ship reported
 * asleep has its snapshot recorded). */
static void ship__answer_waiters(struct host_ship *s)
{
    bool settled = s->state == SHIP_AWAKE ||
                   (s->state == SHIP_ASLEEP && s->inflight == 0) ||
                   s->state == SHIP_REMOVED;
    if (!settled) {
        return;
    }
    for (unsigned i = 0; i < s->n_waiters; i++) {
        struct http_request *req = s->waiters[i];
        if (req->data == &ship__wake_waiter && s->state != SHIP_AWAKE) {
            host_reply_error(req, 502, "wake_failed", "ship %s did not wake: %s",
                             s->id, s->last_failure[0] ? s->last_failure
                                                       : "unknown reason");
        } else {
            host_reply_json(req, 200, host_ship_json(s));
        }
    }
    mem_free(s->waiters);
    s->waiters = NULL;
    s->n_waiters = 0;
}

static void ship__add_waiter(struct host_ship *s, struct http_request *req)
{
    struct http_request **w =
        mem_realloc(s->waiters, (s->n_waiters + 1) * sizeof *w);
    if (w == NULL) {
        host_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    s->waiters = w;
    s->waiters[s->n_waiters++] = req;
}

static void ship__submit(struct host_ship *s, struct host_job *job)
{
    struct host *h = s->host;
    s->last_active_ns = host_now_ns();
    if (s->removing || s->state == SHIP_REMOVED) {
        ship__job_fail(job, 404, "not_found", "ship %s is being removed",
                       s->id);
        ship__answer(job);
        return;
    }
    if (h->stopping) {
        ship__job_fail(job, 503, "unavailable", "host is stopping");
        ship__answer(job);
        return;
    }
    if (s->n_waiting >= h->cfg.max_queue) {
        ship__job_fail(job, 503, "busy",
                       "ship %s has %u requests waiting; try again", s->id,
                       s->n_waiting);
        ship__answer(job);
        return;
    }
    job->next = NULL;
    if (s->wait_tail != NULL) {
        s->wait_tail->next = job;
    } else {
        s->wait_head = job;
    }
    s->wait_tail = job;
    s->n_waiting++;
    ship__pump(s);
}

void host_ship_deliver(struct host_ship *s, enum host_job_origin origin,
                       struct http_request *req, uint8_t kind,
                       struct buf *payload)
{
    struct host_job *j = ship__job_new(s, origin, req, kind);
    if (j == NULL) {
        buf_free(payload);
        host_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    j->payload = *payload;
    buf_init(payload);
    ship__submit(s, j);
}

/* --- Talking to the program. --- */

static int ship__send(struct host_ship *s, struct buf *frame)
{
    int rv = proc_send(s->proc, frame);
    buf_free(frame);
    return rv;
}

static int ship__send_event(struct host_ship *s, const struct frame_event *ev)
{
    struct buf f;
    buf_init(&f);
    int rv = frame_encode_event(&f, ev);
    if (rv != 0) {
        buf_free(&f);
        return rv;
    }
    return ship__send(s, &f);
}

static void ship__on_frame(struct proc *p, const struct frame *f, void *arg);
static void ship__on_exit(struct proc *p, const char *why, int clean,
                          void *arg);

/* The epoch of a program is the hash of its executable, so a changed binary
 * starts a new epoch of the ship's log. The hash is kept with the file's
 * identity (device, inode, size, change time) and computed again only when
 * that changes, so a wake costs a stat, not a read of the binary. */
static int ship__hash_program(struct host_ship *s)
{
    struct stat st;
    if (stat(s->program, &st) != 0) {
        return BERTH_ENOTFOUND;
    }
    uint64_t id[4] = {(uint64_t)st.st_dev, (uint64_t)st.st_ino,
                      (uint64_t)st.st_size,
                      (uint64_t)st.st_ctim.tv_sec * 1000000000ULL +
                          (uint64_t)st.st_ctim.tv_nsec};
    if (memcmp(id, s->program_id, sizeof id) == 0) {
        return 0;
    }
    FILE *f = fopen(s->program, "rb");
    if (f == NULL) {
        return BERTH_ENOTFOUND;
    }
    crypto_generichash_state hs;
    crypto_generichash_init(&hs, NULL, 0, STORE_HASH_SIZE);
    uint8_t chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        crypto_generichash_update(&hs, chunk, n);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        return BERTH_EIO;
    }
    crypto_generichash_final(&hs, s->epoch, STORE_HASH_SIZE);
    memcpy(s->program_id, id, sizeof id);
    return 0;
}

static void ship__wake(struct host_ship *s)
{
    struct host *h = s->host;
    struct store_ship rec;
    char errmsg[ERRMSG_SIZE];
    struct buf snap;
    uint64_t snap_number = 0;
    uint8_t snap_epoch[STORE_HASH_SIZE];
    int rv;

    ship__set_state(s, SHIP_WAKING);
    s->wake_count++;
    h->wakes++;
    rv = store_ship_get_sid(h->store, s->sid, &rec);
    if (rv != 0) {
        snprintf(errmsg, sizeof errmsg, "cannot read ship record: %s",
                 store_errmsg(h->store));
        goto err;
    }
    s->last_event = rec.last_event;
    s->snapshot_event = rec.snapshot_event;
    s->first_event = rec.first_event;
    memcpy(s->head_hash, rec.last_hash, sizeof s->head_hash);
    store_ship_clear(&rec);

    if (ship__hash_program(s) != 0) {
        snprintf(errmsg, sizeof errmsg, "cannot read program %s", s->program);
        goto err;
    }
    buf_init(&snap);
    if (s->snapshot_event > 0) {
        rv = store_snapshot_get(h->store, s->sid, &snap_number, snap_epoch,
                                &snap);
        if (rv != 0) {
            buf_free(&snap);
            snprintf(errmsg, sizeof errmsg, "cannot read snapshot: %s",
                     store_errmsg(h->store));
            goto err;
        }
    }

    struct proc_config pc = {
        .path = s->program,
        .name = s->name[0] ? s->name : s->id,
        .ship_id = s->id,
        .max_frame = h->cfg.max_frame,
    };
    rv = proc_spawn(&s->proc, &h->loop, &pc, ship__on_frame, ship__on_exit, s,
                    errmsg);
    if (rv != 0) {
        buf_free(&snap);
        goto err;
    }
    struct frame_boot boot = {
        .id = s->id,
        .id_len = strlen(s->id),
        .snapshot_event = snap_number,
        .snapshot = snap.data,
        .snapshot_len = snap.len,
    };
    struct buf f;
    buf_init(&f);
    rv = frame_encode_boot(&f, &boot);
    buf_free(&snap);
    if (rv != 0 || ship__send(s, &f) != 0) {
        buf_free(&f);
        proc_kill(s->proc, "cannot send boot frame");
        return;
    }
    s->replay_next = 0;
    ship__arm(s, SHIP__TIMER_WAKE, ship__wake_ms(h));
    return;

err:
    host_log("warn", "ship failed to wake", "ship", s->id, "error", errmsg,
             NULL);
    snprintf(s->last_failure, sizeof s->last_failure, "%s", errmsg);
    ship__set_state(s, SHIP_ASLEEP);
    ship__fail_waiting(s, 502, "wake_failed", "ship %s failed to wake: %s",
                       s->id, errmsg);
    ship__answer_waiters(s);
}

static void ship__awake(struct host_ship *s)
{
    ship__set_state(s, SHIP_AWAKE);
    s->next_number = s->last_event + 1;
    s->since_snapshot = s->last_event - s->snapshot_event;
    ship__disarm(s);
    ship__answer_waiters(s);
    ship__pump(s);
}

struct ship__replay {
    struct host_ship *ship;
    uint64_t expect;
    int err;
};

static int ship__replay_one(uint64_t number, const void *rec, size_t len,
                            void *arg)
{
    struct ship__replay *r = arg;
    struct record_event ev;
    if (number != r->expect || record_decode_event(rec, len, &ev) != 0 ||
        ev.number != number) {
        r->err = BERTH_ECORRUPT;
        return 1;
    }
    struct frame_event fe = {
        .number = ev.number,
        .time_ns = ev.time_ns,
        .kind = ev.kind,
        .payload = ev.payload,
        .payload_len = ev.payload_len,
    };
    memcpy(fe.entropy, ev.entropy, sizeof fe.entropy);
    r->expect++;
    if (ship__send_event(r->ship, &fe) != 0) {
        r->err = BERTH_ESHUTDOWN;
        return 1;
    }
    return 0;
}

static void ship__on_ready(struct host_ship *s, bool accepted)
{
    uint64_t start;
    if (s->snapshot_event > 0 && accepted) {
        start = s->snapshot_event + 1;
    } else if (s->first_event <= 1) {
        start = 1;
    } else {
        char why[200];
        snprintf(why, sizeof why,
                 "program refused the snapshot at event %llu and the log "
                 "before it was truncated",
                 (unsigned long long)s->snapshot_event);
        proc_kill(s->proc, why);
        return;
    }
    if (start > s->last_event) {
        ship__awake(s);
        return;
    }
    s->replay_next = start;
    s->replay_last = s->last_event;
    struct ship__replay r = {.ship = s, .expect = start};
    int rv = store_event_foreach(s->host->store, s->sid, start,
                                 ship__replay_one, &r);
    if (rv == 0 && r.err == 0 && r.expect != s->last_event + 1) {
        r.err = BERTH_ECORRUPT;
    }
    if (rv != 0 || r.err != 0) {
        proc_kill(s->proc, r.err == BERTH_ECORRUPT
                               ? "the ship's log has a gap or a bad record"
                               : "cannot replay the log");
        return;
    }
    ship__arm(s, SHIP__TIMER_WAKE, ship__wake_ms(s->host));
}

static void ship__dispatch(struct host_ship *s)
{
    struct host_job *j = s->wait_head;
    s->wait_head = j->next;
    if (s->wait_head == NULL) {
        s->wait_tail = NULL;
    }
    s->n_waiting--;
    j->next = NULL;
    j->number = s->next_number;

    struct frame_event ev = {
        .number = j->number,
        .time_ns = host_now_ns(),
        .kind = j->kind,
        .payload = j->payload.data,
        .payload_len = j->payload.len,
    };
    randombytes_buf(ev.entropy, sizeof ev.entropy);
    /* Keep what the record needs: the same event must replay exactly. */
    s->current = j;
    j->time_ns = ev.time_ns;
    memcpy(j->entropy, ev.entropy, sizeof j->entropy);
    if (ship__send_event(s, &ev) != 0) {
        proc_kill(s->proc, "cannot write to the program");
        return;
    }
    ship__arm(s, SHIP__TIMER_EVENT, s->host->cfg.event_timeout_ms);
}

static void ship__request_snapshot(struct host_ship *s)
{
    struct buf f;
    buf_init(&f);
    if (frame_encode_snap_req(&f, s->next_number - 1) != 0 ||
        ship__send(s, &f) != 0) {
        buf_free(&f);
        proc_kill(s->proc, "cannot request a snapshot");
        return;
    }
    s->snapshot_pending = true;
    s->since_snapshot = 0;
}

static void ship__stop(struct host_ship *s)
{
    struct buf f;
    buf_init(&f);
    if (frame_encode_stop(&f) != 0 || ship__send(s, &f) != 0) {
        buf_free(&f);
        proc_kill(s->proc, "cannot send stop");
        return;
    }
    s->stop_sent = true;
    ship__arm(s, SHIP__TIMER_STOP, SHIP__STOP_MS);
}

static void ship__begin_sleep(struct host_ship *s)
{
    ship__set_state(s, SHIP_SLEEPING);
    s->sleep_wanted = false;
    ship__disarm(s);
    if (s->snapshot_pending) {
        return; /* the snapshot on its way ends in STOP */
    }
    if (s->next_number - 1 > s->snapshot_event) {
        ship__request_snapshot(s);
    } else {
        ship__stop(s);
    }
}

static void ship__pump(struct host_ship *s)
{
    struct host *h = s->host;
    if (h->stopping) {
        return;
    }
    if (s->proc != NULL && !proc_running(s->proc)) {
        return; /* being killed: its exit callback pumps again */
    }
    switch (s->state) {
    case SHIP_ASLEEP:
        /* Events still being committed must land before the log is read
         * back into a new process. */
        if ((s->n_waiting > 0 || s->wake_wanted) && s->inflight == 0 &&
            s->proc == NULL && !s->removing) {
            s->wake_wanted = false;
            ship__wake(s);
        }
        break;
    case SHIP_SLEEPING:
        if (s->n_waiting > 0 && !s->stop_sent) {
            /* A new event interrupts the sleep instead of waiting for it. */
            ship__set_state(s, SHIP_AWAKE);
            ship__pump(s);
        }
        break;
    case SHIP_AWAKE:
        if (s->current != NULL) {
            break;
        }
        if (s->n_waiting > 0) {
            ship__dispatch(s);
        } else if (s->sleep_wanted) {
            ship__begin_sleep(s);
        } else {
            uint64_t idle = s->idle_timeout_ms ? s->idle_timeout_ms
                                               : h->cfg.idle_timeout_ms;
            ship__arm(s, SHIP__TIMER_IDLE, idle);
        }
        break;
    default:
        break;
    }
}

/* Release every job at the head of the gate that may leave. */
static void ship__release(struct host_ship *s)
{
    struct gate_item *i;
    while ((i = gate_pop(&s->gate)) != NULL) {
        ship__answer((struct host_job *)i);
    }
}

static int ship__copy_reply(struct host_job *j, const struct frame_effect *e)
{
    struct frame_http_reply r;
    if (frame_decode_http_reply(e->data, e->len, &r) != 0 || r.status < 100 ||
        r.status > 599) {
        return BERTH_EMALFORMED;
    }
    j->status = r.status;
    mem_free(j->content_type);
    j->content_type = NULL;
    if (r.content_type_len > 0) {
        j->content_type = mem_strndup(r.content_type, r.content_type_len);
        if (j->content_type == NULL) {
            return BERTH_ENOMEM;
        }
    }
    j->body.len = 0;
    return buf_append(&j->body, r.body, r.body_len);
}

/* A changed event that will not be logged: its job leaves with the failure
 * already recorded in it, and the program, whose state has moved past the
 * log, is restarted from the log. */
static void ship__unlogged(struct host_ship *s, struct host_job *j,
                           const char *why)
{
    j->changed = false;
    j->gate.needs_log = false;
    gate_push(&s->gate, &j->gate);
    proc_kill(s->proc, why);
    ship__release(s);
}

static void ship__on_done(struct host_ship *s, const struct frame *f)
{
    struct frame_done d;
    struct host_job *j = s->current;
    if (frame_decode_done(f, &d) != 0 || j == NULL || d.number != j->number) {
        proc_kill(s->proc, "unexpected or malformed DONE frame");
        return;
    }
    struct frame_effect e;
    size_t off = 0;
    int rv;
    while ((rv = frame_effects_next(&d, &off, &e)) == 0) {
        if (e.kind == FRAME_EFFECT_HTTP_REPLY) {
            if (ship__copy_reply(j, &e) != 0) {
                proc_kill(s->proc, "malformed HTTP reply effect");
                return;
            }
        } else if (e.kind == FRAME_EFFECT_LOG) {
            char n[24];
            snprintf(n, sizeof n, "%llu", (unsigned long long)j->number);
            char *line = mem_strndup((const char *)e.data, e.len);
            if (line != NULL) {
                host_log("info", "program log", "ship", s->id, "event", n,
                         "line", line, NULL);
                mem_free(line);
            }
        }
    }
    if (rv < 0) {
        proc_kill(s->proc, "malformed effects");
        return;
    }
    ship__disarm(s);
    s->current = NULL;
    j->changed = (d.flags & FRAME_DONE_CHANGED) != 0;
    j->gate.needs_log = j->changed;
    j->gate.number = j->number;
    if (j->changed && !host_disk_ok(s->host)) {
        ship__job_fail(j, 507, "insufficient_storage",
                       "the host's disk is nearly full; writes are refused "
                       "until space is freed");
        ship__unlogged(s, j, "event refused: disk nearly full");
        return;
    }
    if (j->changed) {
        struct record_event rec = {
            .sid = s->sid,
            .number = j->number,
            .time_ns = j->time_ns,
            .kind = j->kind,
            .payload = j->payload.data,
            .payload_len = j->payload.len,
        };
        memcpy(rec.entropy, j->entropy, sizeof rec.entropy);
        memcpy(rec.prev_hash, s->head_hash, sizeof rec.prev_hash);
        struct buf b;
        buf_init(&b);
        rv = record_encode_event(&b, &rec);
        if (rv == 0) {
            rv = host_propose_event(s->host, s, j->number, b.data, b.len);
        }
        if (rv != 0) {
            buf_free(&b);
            ship__job_fail(j, 503, "unavailable", "cannot log the event: %s",
                           err_str(rv));
            ship__unlogged(s, j, "event could not be logged");
            return;
        }
        record_hash(b.data, b.len, s->head_hash);
        buf_free(&b);
        s->next_number++;
        s->since_snapshot++;
    }
    bool changed = j->changed;
    gate_push(&s->gate, &j->gate);
    ship__release(s); /* j may be answered and freed here */
    if (changed && s->since_snapshot >= s->host->cfg.snapshot_every &&
        !s->snapshot_pending) {
        ship__request_snapshot(s);
    }
    ship__pump(s);
}

static void ship__on_reject(struct host_ship *s, const struct frame *f)
{
    struct frame_reject r;
    struct host_job *j = s->current;
    if (frame_decode_reject(f, &r) != 0 || j == NULL || r.number != j->number) {
        proc_kill(s->proc, "unexpected or malformed REJECT frame");
        return;
    }
    ship__disarm(s);
    s->current = NULL;
    ship__job_fail(j, 422, "rejected", "%.*s", (int)r.reason_len, r.reason);
    j->gate.needs_log = false;
    gate_push(&s->gate, &j->gate);
    ship__release(s);
    ship__pump(s);
}

static void ship__snapshot_done(void *arg, int status, int result);

struct ship__snap {
    struct host_ship *ship;
    uint64_t number;
};

static void ship__on_snapshot(struct host_ship *s, const struct frame *f)
{
    struct frame_snapshot fs;
    if (frame_decode_snapshot(f, &fs) != 0 || !s->snapshot_pending ||
        fs.number > s->next_number - 1) {
        proc_kill(s->proc, "unexpected or malformed SNAPSHOT frame");
        return;
    }
    s->snapshot_pending = false;
    if (!host_disk_ok(s->host)) {
        /* A snapshot only saves replay time; skip it on a full disk. */
        if (s->state == SHIP_SLEEPING) {
            ship__stop(s);
        }
        return;
    }
    struct record_snapshot rs = {
        .sid = s->sid,
        .number = fs.number,
        .data = fs.data,
        .len = fs.len,
    };
    memcpy(rs.epoch, s->epoch, sizeof rs.epoch);
    struct buf e;
    buf_init(&e);
    struct ship__snap *ctx = mem_alloc(sizeof *ctx);
    int rv = ctx ? record_encode_snapshot(&e, &rs) : BERTH_ENOMEM;
    if (rv == 0) {
        ctx->ship = s;
        ctx->number = fs.number;
        rv = host_propose_entry(s->host, &e, ship__snapshot_done, ctx);
    }
    if (rv != 0) {
        /* A snapshot is an optimization: the log still has every event. */
        buf_free(&e);
        mem_free(ctx);
        host_log("warn", "cannot log snapshot", "ship", s->id, "error",
                 err_str(rv), NULL);
    } else {
        s->inflight++;
    }
    if (s->state == SHIP_SLEEPING) {
        ship__stop(s);
    }
}

static void ship__snapshot_done(void *arg, int status, int result)
{
    struct ship__snap *ctx = arg;
    struct host_ship *s = ctx->ship;
    s->inflight--;
    if (status == 0 && ctx->number > s->snapshot_event) {
        s->snapshot_event = ctx->number;
        s->first_event = ctx->number + 1;
    }
    mem_free(ctx);
    ship__answer_waiters(s);
    if (s->removing) {
        ship__remove_step(s);
    } else {
        ship__pump(s);
    }
}

static void ship__on_frame(struct proc *p, const struct frame *f, void *arg)
{
    struct host_ship *s = arg;
    if (s->state == SHIP_WAKING) {
        if (s->replay_next == 0) {
            bool accepted;
            if (frame_decode_ready(f, &accepted) != 0) {
                proc_kill(p, "expected a READY frame after BOOT");
                return;
            }
            ship__on_ready(s, accepted);
            return;
        }
        struct frame_done d;
        if (f->type == FRAME_REJECT) {
            proc_kill(p, "program rejected a logged event during replay; "
                         "programs must be deterministic");
            return;
        }
        if (frame_decode_done(f, &d) != 0 || d.number != s->replay_next) {
            proc_kill(p, "unexpected frame during replay");
            return;
        }
        if (s->replay_next++ == s->replay_last) {
            ship__awake(s);
        } else {
            ship__arm(s, SHIP__TIMER_WAKE, ship__wake_ms(s->host));
        }
        return;
    }
    switch (f->type) {
    case FRAME_DONE:
        ship__on_done(s, f);
        break;
    case FRAME_REJECT:
        ship__on_reject(s, f);
        break;
    case FRAME_SNAPSHOT:
        ship__on_snapshot(s, f);
        break;
    default:
        proc_kill(p, "unexpected frame type");
        break;
    }
}

static void ship__on_exit(struct proc *p, const char *why, int clean,
                          void *arg)
{
    struct host_ship *s = arg;
    bool expected = s->stop_sent && clean;
    s->proc = NULL;
    ship__disarm(s);
    if (!expected) {
        host_log(s->host->stopping ? "info" : "warn", "program ended", "ship",
                 s->id, "why", why, NULL);
        snprintf(s->last_failure, sizeof s->last_failure, "program %s", why);
    }
    if (s->current != NULL) {
        struct host_job *j = s->current;
        s->current = NULL;
        if (j->timed_out) {
            ship__job_fail(j, 504, "timeout", "ship %s: %s", s->id, why);
        } else {
            ship__job_fail(j, 502, "program_failed", "ship %s: program %s",
                           s->id, why);
        }
        j->gate.needs_log = false;
        gate_push(&s->gate, &j->gate);
    }
    if (s->state == SHIP_WAKING) {
        ship__fail_waiting(s, 502, "wake_failed",
                           "ship %s failed to wake: program %s", s->id, why);
    }
    s->snapshot_pending = false;
    s->stop_sent = false;
    s->sleep_wanted = false;
    if (s->state != SHIP_ASLEEP && s->state != SHIP_REMOVED) {
        ship__set_state(s, SHIP_ASLEEP);
    }
    ship__answer_waiters(s);
    ship__release(s);
    if (s->removing) {
        ship__remove_step(s);
    } else {
        ship__pump(s);
    }
}

static void ship__timer_cb(uv_timer_t *t)
{
    struct host_ship *s = t->data;
    if (s->proc == NULL && s->timer_kind != SHIP__TIMER_IDLE) {
        return;
    }
    char why[128];
    int kind = s->timer_kind;
    s->timer_kind = SHIP__TIMER_NONE;
    switch (kind) {
    case SHIP__TIMER_EVENT:
        snprintf(why, sizeof why, "event %llu took longer than %u ms",
                 (unsigned long long)(s->current ? s->current->number : 0),
                 s->host->cfg.event_timeout_ms);
        if (s->current != NULL) {
            s->current->timed_out = true;
        }
        proc_kill(s->proc, why);
        break;
    case SHIP__TIMER_WAKE:
        snprintf(why, sizeof why, "no progress while waking for %u ms",
                 s->host->cfg.event_timeout_ms);
        proc_kill(s->proc, why);
        break;
    case SHIP__TIMER_IDLE:
        if (s->state == SHIP_AWAKE && s->current == NULL &&
            s->n_waiting == 0) {
            ship__begin_sleep(s);
        }
        break;
    case SHIP__TIMER_STOP:
        proc_kill(s->proc, "did not exit after STOP");
        break;
    default:
        break;
    }
}

void host_ship_durable(struct host_ship *s, uint64_t number, int status)
{
    s->inflight--;
    if (status == 0) {
        if (number > s->last_event) {
            s->last_event = number;
        }
        gate_mark_durable(&s->gate, number);
    } else {
        /* Not committed: answer with an error, never with the effects. */
        for (struct gate_item *i = s->gate.head; i != NULL; i = i->next) {
            struct host_job *j = (struct host_job *)i;
            if (i->needs_log && i->number <= number && !i->durable) {
                ship__job_fail(j, 503, "unavailable",
                               "event %llu was not committed: %s",
                               (unsigned long long)i->number, err_str(status));
                i->durable = true;
            }
        }
        /* The program is ahead of the log now: restart it from the log. */
        if (s->proc != NULL) {
            proc_kill(s->proc, "an event of this ship was not committed");
        }
    }
    ship__release(s);
    ship__answer_waiters(s);
    if (s->removing) {
        ship__remove_step(s);
    } else {
        ship__pump(s);
    }
}

/* --- Admin operations. --- */

void host_ship_sleep(struct host_ship *s, struct http_request *req)
{
    if (s->state == SHIP_ASLEEP && s->inflight == 0) {
        host_reply_json(req, 200, host_ship_json(s));
        return;
    }
    ship__add_waiter(s, req);
    if (s->state == SHIP_AWAKE) {
        s->sleep_wanted = true;
        ship__pump(s);
    } else if (s->state == SHIP_WAKING) {
        s->sleep_wanted = true;
    }
}

void host_ship_wake(struct host_ship *s, struct http_request *req)
{
    if (s->state == SHIP_AWAKE) {
        host_reply_json(req, 200, host_ship_json(s));
        return;
    }
    req->data = &ship__wake_waiter;
    ship__add_waiter(s, req);
    s->wake_wanted = true;
    ship__pump(s);
}

static void ship__timer_closed(uv_handle_t *h)
{
    struct host_ship *s = h->data;
    mem_free(s->program);
    mem_free(s);
}

static void ship__removed(void *arg, int status, int result)
{
    struct host_ship *s = arg;
    struct host *h = s->host;
    s->inflight--;
    if (status != 0) {
        s->removing = false;
        if (s->remove_req) {
            host_reply_error(s->remove_req, 503, "unavailable",
                             "removal was not committed: %s", err_str(status));
            s->remove_req = NULL;
        }
        return;
    }
    table_del(&h->ships, s->id);
    if (s->name[0] != '\0') {
        table_del(&h->ships, s->name);
    }
    h->n_ships--;
    ship__set_state(s, SHIP_REMOVED);
    if (s->remove_req) {
        json_t *o = json_object();
        json_object_set_new(o, "removed", json_string(s->id));
        host_reply_json(s->remove_req, 200, o);
        s->remove_req = NULL;
    }
    ship__answer_waiters(s);
    uv_close((uv_handle_t *)&s->timer, ship__timer_closed);
}

static void ship__remove_step(struct host_ship *s)
{
    if (s->proc != NULL || s->inflight > 0 || s->state == SHIP_REMOVED ||
        s->remove_req == NULL) {
        return;
    }
    ship__release(s);
    struct buf e;
    buf_init(&e);
    int rv = record_encode_ship_remove(&e, s->sid);
    if (rv == 0) {
        rv = host_propose_entry(s->host, &e, ship__removed, s);
    }
    if (rv != 0) {
        buf_free(&e);
        s->removing = false;
        host_reply_error(s->remove_req, 503, "unavailable",
                         "cannot log the removal: %s", err_str(rv));
        s->remove_req = NULL;
        return;
    }
    s->inflight++;
}

void host_ship_remove(struct host_ship *s, struct http_request *req)
{
    if (s->removing) {
        host_reply_error(req, 409, "conflict", "ship %s is being removed",
                         s->id);
        return;
    }
    s->removing = true;
    s->remove_req = req;
    ship__fail_waiting(s, 404, "not_found", "ship %s was removed", s->id);
    if (s->proc != NULL) {
        proc_kill(s->proc, "ship removed");
        return;
    }
    ship__remove_step(s);
}

void host_ship_shutdown(struct host_ship *s)
{
    ship__disarm(s);
    ship__fail_waiting(s, 503, "unavailable", "host is stopping");
    if (s->proc != NULL) {
        proc_kill(s->proc, "host stopping");
    }
}

static void ship__free_one(const char *key, void *value, void *arg)
{
    struct host_ship *s = value;
    /* Both the id and the name point at s; free it once, by its id. */
    if (key != s->id) {
        return;
    }
    struct gate_item *i;
    while ((i = gate_pop_any(&s->gate)) != NULL) {
        struct host_job *j = (struct host_job *)i;
        if (!i->durable) {
            ship__job_fail(j, 503, "unavailable", "host is stopping");
        }
        ship__answer(j);
    }
    for (unsigned k = 0; k < s->n_waiters; k++) {
        host_reply_error(s->waiters[k], 503, "unavailable", "host is stopping");
    }
    mem_free(s->waiters);
    s->waiters = NULL;
    s->n_waiters = 0;
    if (s->remove_req) {
        host_reply_error(s->remove_req, 503, "unavailable", "host is stopping");
        s->remove_req = NULL;
    }
    uv_close((uv_handle_t *)&s->timer, ship__timer_closed);
}

void host_ships_free(struct host *h)
{
    /* Collect first: the walk must not see the table change under it. */
    table_foreach(&h->ships, ship__free_one, h);
    table_free(&h->ships);
}
