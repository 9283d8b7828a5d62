/* The fleet (core/fleet.h) driven without processes: an environment in
 * memory with a virtual clock, a store of committed records, a log whose
 * proposals the test decides, and a small program played by the test.
 *
 * The program: BOOT restores a counter from the snapshot (8 bytes) and
 * answers READY; an EVENT's payload says what to do: "w" adds one to the
 * counter (changed) and replies with it, "r" replies with it unchanged, "x"
 * rejects, "s" never answers, "a" + 8 bytes sets an alarm; a TIMER event
 * answers DONE. SNAP_REQ answers the counter; STOP exits cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "core/fleet.h"
#include "lib/err.h"
#include "lib/mem.h"

#define T_MAX_SHIPS 8
#define T_MAX_EVENTS 64
#define T_MAX_PROPOSALS 64
#define T_MAX_OUT 256
#define T_WALL0 1000000000000000000ULL

/* What the test's program and its store hold for one ship. */
struct tship {
    struct fleet_ship core;
    /* The program. */
    bool alive, dying, frozen;
    char kill_why[200];
    struct buf inbox; /* frames sent to it, not yet read */
    size_t inbox_off;
    uint64_t value;
    uint64_t memory;
    uint64_t cpu_us; /* its CPU time, as the test sets it */
    /* The timer. */
    bool armed;
    uint64_t due_ms;
};

/* Every test fleet seals, so that every replay and wake opens seals. */
static struct seal_keys t_keys;

struct tstore {
    uint64_t last_event, snapshot_event, first_event, alarm_ns;
    struct buf rec[T_MAX_EVENTS + 1]; /* by number */
    uint8_t hash[T_MAX_EVENTS + 1][RECORD_HASH_SIZE];
    uint64_t snap_value;
    bool removed;
};

struct tproposal {
    uint32_t slot;
    int kind; /* -1: event, else enum fleet_entry */
    uint64_t number;
    struct buf bytes;
};

/* One released job or answered request. */
struct tout {
    uintptr_t req;
    uint32_t slot;
    int status;
    char code[32];
    char body[32];
    uint64_t number;
    bool changed;
    int answer;       /* -1: a released job, else enum fleet_answer */
    size_t ws_fx_len; /* the WebSocket effects it carried out */
};

struct tenv {
    struct fleet fleet;
    struct registry reg;
    struct alarms alarms;
    struct budget budget;
    struct tstore store[T_MAX_SHIPS];
    struct tproposal prop[T_MAX_PROPOSALS];
    unsigned n_prop;
    struct tout out[T_MAX_OUT];
    unsigned n_out;
    uint64_t now_ms;
    struct buf fx;       /* the last effects item proposed */
    unsigned n_fx;       /* effects items proposed */
    unsigned n_effects;  /* effects turned into entries */
    bool refuse_effect;  /* effect_entry fails */
    int mail_status;     /* of the last mail job released; 0: taken */
    unsigned n_mail_out; /* mail jobs released */
    bool sweep_armed, alarm_armed;
    uint64_t sweep_due, alarm_due;
    /* Faults the environment injects. */
    bool fail_spawn, fail_freeze, disk_full, no_fds, corrupt_load;
    bool disabled_load; /* load says the ship's account is disabled */
    bool refuse_propose;
    bool refuse_snapshot; /* the program answers BOOT with READY 0 */
    bool corrupt_replay;  /* the log's tail fails its checks */
    bool corrupt_seal;    /* a snapshot's seal was altered */
    bool spawn_held;      /* the budget holds new programs back */
    unsigned spawns, kills, freezes, thaws;
    /* Tier changes the environment was told of, by from and to, and the
     * eviction lines it was asked to write. */
    unsigned tier_told[SHIP__STATE_COUNT][SHIP__STATE_COUNT];
    unsigned evicted_lines;
    uintptr_t next_req;
    unsigned n_tship_live;
};

static struct tenv *T;

/* Called around each input the test's hands give the fleet: the fault
 * test makes allocations fail inside inputs, never in the test's own
 * bookkeeping. */
static void (*in_before)(void);
static void (*in_after)(void);

static void in_begin(void)
{
    if (in_before != NULL) {
        in_before();
    }
}

static void in_end(void)
{
    if (in_after != NULL) {
        in_after();
    }
}

/* Every transition taken, over the whole suite (see test_transitions). */
static unsigned trail[SHIP__STATE_COUNT][SHIP__STATE_COUNT];

static struct tship *tship(struct fleet_ship *s)
{
    return (struct tship *)s;
}

/* --- The environment. --- */

static struct fleet_ship *t_alloc(void *data, uint32_t slot)
{
    struct tship *s = mem_calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    buf_init(&s->inbox);
    T->n_tship_live++;
    return &s->core;
}

static void t_free(void *data, struct fleet_ship *c)
{
    struct tship *s = tship(c);
    assert_false(s->alive);
    buf_free(&s->inbox);
    T->n_tship_live--;
    mem_free(s);
}

static int t_load(void *data, struct fleet_ship *c, struct fleet_load *out,
                  char *errmsg)
{
    struct tstore *st = &T->store[c->slot];
    if (T->corrupt_load) {
        snprintf(errmsg, ERRMSG_SIZE, "the snapshot at event %llu fails",
                 (unsigned long long)st->snapshot_event);
        return BERTH_ECORRUPT;
    }
    if (T->disabled_load) {
        snprintf(errmsg, ERRMSG_SIZE, "its account is disabled");
        return BERTH_EDISABLED;
    }
    out->last_event = st->last_event;
    out->snapshot_event = st->snapshot_event;
    out->first_event = st->first_event ? st->first_event : 1;
    out->acks = GATE_ACKS_QUORUM;
    memcpy(out->head_hash, st->hash[st->last_event], RECORD_HASH_SIZE);
    if (st->snapshot_event > 0) {
        memcpy(out->chain, st->hash[st->snapshot_event], RECORD_HASH_SIZE);
        out->snapshot_number = st->snapshot_event;
        /* Kept as the store keeps it: sealed, as a snapshot entry has it. */
        uint8_t value[8], nonce[SEAL_NONCE_SIZE] = {0};
        put_le64(value, st->snap_value);
        struct record_snapshot rs = {.sid = c->sid,
                                     .number = st->snapshot_event,
                                     .data = value,
                                     .len = sizeof value};
        struct record_snapshot d;
        struct buf e;
        buf_init(&e);
        int rv = record_encode_snapshot(&e, &rs, &t_keys, NULL, nonce);
        if (rv == 0) {
            record_decode_snapshot(e.data, e.len, &d);
            rv = buf_append(&out->snapshot, d.data, d.len);
        }
        buf_free(&e);
        if (rv != 0) {
            snprintf(errmsg, ERRMSG_SIZE, "out of memory");
            return BERTH_ENOMEM;
        }
        out->snapshot_sealed = true;
        if (T->corrupt_seal) {
            out->snapshot.data[out->snapshot.len - 1] ^= 1;
        }
    }
    return 0;
}

static int t_spawn(void *data, struct fleet_ship *c, struct buf *boot,
                   bool *held, char *errmsg)
{
    struct tship *s = tship(c);
    if (T->fail_spawn) {
        snprintf(errmsg, ERRMSG_SIZE, "cannot start the program");
        return BERTH_EIO;
    }
    s->inbox.len = 0;
    s->inbox_off = 0;
    if (buf_append(&s->inbox, boot->data, boot->len) != 0) {
        snprintf(errmsg, ERRMSG_SIZE, "out of memory");
        return BERTH_ENOMEM;
    }
    buf_free(boot);
    s->alive = true;
    s->dying = false;
    s->frozen = false;
    s->value = 0;
    s->memory = 1 << 20;
    T->spawns++;
    *held = T->spawn_held;
    return 0;
}

static int t_replay(void *data, struct fleet_ship *c, uint64_t start,
                    const uint8_t *chain, fleet_replay_cb cb, void *arg,
                    char *errmsg)
{
    struct tstore *st = &T->store[c->slot];
    if (T->corrupt_replay ||
        memcmp(chain, st->hash[start - 1], RECORD_HASH_SIZE) != 0) {
        snprintf(errmsg, ERRMSG_SIZE, "event %llu breaks the hash chain",
                 (unsigned long long)start);
        return BERTH_ECORRUPT;
    }
    for (uint64_t n = start; n <= st->last_event; n++) {
        int rv = cb(arg, n, st->rec[n].data, st->rec[n].len);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

static int t_send(void *data, struct fleet_ship *c, struct buf *frame)
{
    struct tship *s = tship(c);
    if (!s->alive || s->dying) {
        return BERTH_ESHUTDOWN;
    }
    int rv = buf_append(&s->inbox, frame->data, frame->len);
    buf_free(frame);
    return rv;
}

static void t_kill(void *data, struct fleet_ship *c, const char *why)
{
    struct tship *s = tship(c);
    if (s->alive && !s->dying) {
        s->dying = true;
        T->kills++;
        snprintf(s->kill_why, sizeof s->kill_why, "%s", why);
    }
}

static bool t_running(void *data, struct fleet_ship *c)
{
    return tship(c)->alive && !tship(c)->dying;
}

static int t_freeze(void *data, struct fleet_ship *c)
{
    if (T->fail_freeze) {
        return BERTH_EIO;
    }
    tship(c)->frozen = true;
    T->freezes++;
    return 0;
}

static int t_thaw(void *data, struct fleet_ship *c)
{
    tship(c)->frozen = false;
    T->thaws++;
    return 0;
}

static int t_measure(void *data, struct fleet_ship *c, uint64_t *bytes)
{
    *bytes = tship(c)->memory;
    return 0;
}

static int t_cpu(void *data, struct fleet_ship *c, uint64_t *usec)
{
    *usec = tship(c)->cpu_us;
    return 0;
}

static void *t_take_frame(void *data, struct fleet_ship *c, uint64_t *counted)
{
    return NULL;
}

static int t_propose(uint32_t slot, int kind, uint64_t number, const uint8_t *p,
                     size_t len)
{
    if (T->refuse_propose || T->n_prop == T_MAX_PROPOSALS) {
        return BERTH_ESHUTDOWN;
    }
    struct tproposal *pr = &T->prop[T->n_prop];
    buf_init(&pr->bytes);
    int rv = buf_append(&pr->bytes, p, len);
    if (rv != 0) {
        return rv;
    }
    pr->slot = slot;
    pr->kind = kind;
    pr->number = number;
    T->n_prop++;
    return 0;
}

static int t_propose_event(void *data, struct fleet_ship *c, uint64_t number,
                           const uint8_t *rec, size_t len, const uint8_t *fx,
                           size_t fx_len)
{
    int rv = t_propose(c->slot, -1, number, rec, len);
    if (rv == 0 && fx_len > 0) {
        T->fx.len = 0;
        assert_int_equal(buf_append(&T->fx, fx, fx_len), 0);
        T->n_fx++;
    }
    return rv;
}

/* A receipt becomes a MAIL entry for ship 98 holding the reply's status. */
static int t_receipt_entry(void *data, struct fleet_ship *c,
                           const struct fleet_job *j, struct buf *out)
{
    if (j->kind != FRAME_EVENT_MESSAGE) {
        return 0;
    }
    uint8_t st[2] = {(uint8_t)(j->status & 0xff), (uint8_t)(j->status >> 8)};
    struct record_mail m = {.target = 98, .kind = 6, .body = st, .len = 2};
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_mail(&e, &m), 0);
    int rv = record_effects_add(out, e.data, e.len);
    buf_free(&e);
    return rv;
}

/* Each effect becomes a MAIL entry for ship 99 holding the effect's kind. */
static int t_effect_entry(void *data, struct fleet_ship *c,
                          const struct fleet_job *j, uint8_t kind,
                          const uint8_t *p, size_t len, struct buf *out)
{
    if (T->refuse_effect) {
        return BERTH_ENOMEM;
    }
    struct record_mail m = {.target = 99, .kind = kind, .body = p, .len = len};
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_mail(&e, &m), 0);
    int rv = record_effects_add(out, e.data, e.len);
    buf_free(&e);
    T->n_effects++;
    return rv;
}

static int t_propose_entry(void *data, struct fleet_ship *c,
                           enum fleet_entry kind, uint64_t number,
                           struct buf *entry)
{
    int rv = t_propose(c->slot, (int)kind, number, entry->data, entry->len);
    if (rv == 0) {
        buf_free(entry);
    }
    return rv;
}

static bool t_disk_ok(void *data)
{
    return !T->disk_full;
}

static bool t_fds_room(void *data, unsigned procs, bool make)
{
    return !T->no_fds;
}

static void t_timer_start(void *data, enum fleet_timer which,
                          struct fleet_ship *c, uint64_t ms)
{
    uint64_t due = T->now_ms + ms;
    if (which == FLEET_TIMER_SHIP) {
        tship(c)->armed = true;
        tship(c)->due_ms = due;
    } else if (which == FLEET_TIMER_SWEEP) {
        T->sweep_armed = true;
        T->sweep_due = due;
    } else {
        T->alarm_armed = true;
        T->alarm_due = due;
    }
}

static void t_timer_stop(void *data, enum fleet_timer which,
                         struct fleet_ship *c)
{
    if (which == FLEET_TIMER_SHIP) {
        tship(c)->armed = false;
    } else if (which == FLEET_TIMER_SWEEP) {
        T->sweep_armed = false;
    } else {
        T->alarm_armed = false;
    }
}

static uint64_t t_mono_ns(void *data)
{
    return T->now_ms * 1000000;
}

static uint64_t t_now_ns(void *data)
{
    return T_WALL0 + T->now_ms * 1000000;
}

static void t_entropy(void *data, uint8_t *out, size_t n)
{
    memset(out, 0x5a, n);
}

static struct tout *t_out(void)
{
    assert_true(T->n_out < T_MAX_OUT);
    struct tout *o = &T->out[T->n_out++];
    memset(o, 0, sizeof *o);
    return o;
}

static void t_release(void *data, struct fleet_job *j)
{
    if (j->origin == FLEET_JOB_MAIL) {
        T->mail_status = j->error_code[0] ? j->status : 0;
        T->n_mail_out++;
    }
    if (j->req != NULL) {
        struct tout *o = t_out();
        o->req = (uintptr_t)j->req;
        o->slot = j->ship->slot;
        o->status = j->error_code[0] ? j->status : j->status ? j->status : 204;
        snprintf(o->code, sizeof o->code, "%s", j->error_code);
        snprintf(o->body, sizeof o->body, "%.*s", (int)j->body_len,
                 j->body ? (const char *)j->body : "");
        o->number = j->number;
        o->changed = j->changed;
        o->answer = -1;
        o->ws_fx_len = j->ws_fx.len;
    }
    fleet_job_free(&T->fleet, j);
}

static void t_answer(void *data, struct fleet_ship *c, void *req,
                     enum fleet_answer what, int status, const char *code,
                     const char *message)
{
    struct tout *o = t_out();
    o->req = (uintptr_t)req;
    o->slot = c->slot;
    o->status = status;
    snprintf(o->code, sizeof o->code, "%s", code ? code : "");
    o->answer = (int)what;
}

static void t_log(void *data, const char *level, const char *msg,
                  const char *ship, const char *k1, const char *v1,
                  const char *k2, const char *v2)
{
    if (strcmp(msg, "ship evicted") == 0) {
        T->evicted_lines++;
    }
}

static void t_tier(void *data, struct fleet_ship *c, enum ship_state from,
                   enum ship_state to)
{
    assert_int_equal(c->state, to);
    T->tier_told[from][to]++;
}

static const struct fleet_env t_env = {
    .ship_alloc = t_alloc,
    .ship_free = t_free,
    .load = t_load,
    .spawn = t_spawn,
    .replay = t_replay,
    .send = t_send,
    .kill = t_kill,
    .running = t_running,
    .freeze = t_freeze,
    .thaw = t_thaw,
    .measure = t_measure,
    .cpu = t_cpu,
    .take_frame = t_take_frame,
    .propose_event = t_propose_event,
    .effect_entry = t_effect_entry,
    .receipt_entry = t_receipt_entry,
    .propose_entry = t_propose_entry,
    .disk_ok = t_disk_ok,
    .fds_room = t_fds_room,
    .timer_start = t_timer_start,
    .timer_stop = t_timer_stop,
    .now_ns = t_now_ns,
    .mono_ns = t_mono_ns,
    .entropy = t_entropy,
    .release = t_release,
    .answer = t_answer,
    .log = t_log,
    .tier = t_tier,
};

static const struct fleet_config t_cfg = {
    .keys = &t_keys,
    .idle_timeout_ms = 10000,
    .freeze_timeout_ms = 1000,
    .event_timeout_ms = 2000,
    .snapshot_every = 1000,
    .max_queue = 4,
    .max_awake_bytes = 0,
};

/* --- Set up and tear down. --- */

static int t_setup(void **state)
{
    T = mem_calloc(1, sizeof *T);
    assert_non_null(T);
    static const uint8_t master[SEAL_KEY_SIZE] = {7};
    seal_keys_init(&t_keys, master, true);
    registry_init(&T->reg);
    alarms_init(&T->alarms);
    budget_init(&T->budget, 0, NULL, NULL);
    fleet_init(&T->fleet, &t_env, &t_cfg, &T->reg, &T->alarms, &T->budget);
    for (uint32_t i = 0; i < T_MAX_SHIPS; i++) {
        uint8_t key[REGISTRY_KEY_SIZE] = {0};
        char id[REGISTRY_ID_LEN + 1];
        char name[16];
        uint32_t slot;
        key[0] = (uint8_t)(i + 1);
        registry_id_encode(key, sizeof key, id);
        snprintf(name, sizeof name, "s%u", i);
        assert_int_equal(
            registry_add(&T->reg, i + 1, id, name, "/bin/prog", &slot), 0);
        assert_int_equal(slot, i);
        for (int n = 0; n <= T_MAX_EVENTS; n++) {
            buf_init(&T->store[i].rec[n]);
        }
    }
    fleet_lead(&T->fleet, true);
    T->next_req = 1;
    *state = T;
    return 0;
}

/* Count the transitions a ship went through; called after each input. */
static enum ship_state last_state[T_MAX_SHIPS];

static void t_note(void)
{
    for (uint32_t i = 0; i < T_MAX_SHIPS; i++) {
        struct fleet_ship *s = registry_get(&T->reg, i)->live;
        enum ship_state now = s != NULL ? s->state : SHIP_ASLEEP;
        if (registry_get(&T->reg, i)->flags & REGISTRY_REMOVED) {
            now = SHIP_REMOVED;
        }
        if (now != last_state[i]) {
            trail[last_state[i]][now]++;
            last_state[i] = now;
        }
    }
}

static int t_teardown(void **state)
{
    mem_fault_countdown(-1);
    fleet_shutdown(&T->fleet);
    for (uint32_t i = 0; i < T_MAX_SHIPS; i++) {
        struct fleet_ship *s = registry_get(&T->reg, i)->live;
        if (s != NULL) {
            tship(s)->alive = false;
        }
    }
    fleet_free_ships(&T->fleet);
    fleet_close(&T->fleet);
    assert_int_equal(T->n_tship_live, 0);
    for (unsigned i = 0; i < T->n_prop; i++) {
        buf_free(&T->prop[i].bytes);
    }
    buf_free(&T->fx);
    for (uint32_t i = 0; i < T_MAX_SHIPS; i++) {
        for (int n = 0; n <= T_MAX_EVENTS; n++) {
            buf_free(&T->store[i].rec[n]);
        }
        last_state[i] = SHIP_ASLEEP;
    }
    alarms_free(&T->alarms);
    registry_free(&T->reg);
    mem_free(T);
    T = NULL;
    return 0;
}

/* --- The test's hands: inputs to the fleet. --- */

static struct fleet_ship *live(uint32_t slot)
{
    struct fleet_ship *s = fleet_ship_live(&T->fleet, slot);
    assert_non_null(s);
    return s;
}

static struct fleet_ship *peek(uint32_t slot)
{
    return registry_get(&T->reg, slot)->live;
}

/* Deliver a front-door job to the ship in slot; returns its request. */
static uintptr_t send_job(uint32_t slot, const char *what)
{
    struct buf payload;
    uintptr_t req = T->next_req++;
    buf_init(&payload);
    assert_int_equal(buf_append(&payload, what, strlen(what)), 0);
    int rv = fleet_deliver(live(slot), FLEET_JOB_FRONT, (void *)req,
                           FRAME_EVENT_HTTP, &payload);
    assert_int_equal(rv, 0);
    t_note();
    return req;
}

/* Return the outcome of req, or NULL while it has none. */
static struct tout *outcome(uintptr_t req)
{
    struct tout *found = NULL;
    for (unsigned i = 0; i < T->n_out; i++) {
        if (T->out[i].req == req) {
            assert_null(found); /* answered once */
            found = &T->out[i];
        }
    }
    return found;
}

/* The program reads one frame and acts; returns false with nothing to
 * read. */
static bool prog_step(uint32_t slot)
{
    struct fleet_ship *c = peek(slot);
    if (c == NULL) {
        return false;
    }
    struct tship *s = tship(c);
    struct frame f;
    size_t used;
    if (!s->alive || s->dying || s->frozen ||
        frame_split(s->inbox.data + s->inbox_off, s->inbox.len - s->inbox_off,
                    FRAME_MAX_DEFAULT, &f, &used) != 0) {
        return false;
    }
    s->inbox_off += used;
    struct buf out;
    buf_init(&out);
    if (f.type == FRAME_BOOT) {
        struct frame_boot b;
        assert_int_equal(frame_decode_boot(&f, &b), 0);
        bool accept = !(T->refuse_snapshot && b.snapshot_len > 0);
        s->value = accept && b.snapshot_len == 8 ? get_le64(b.snapshot) : 0;
        assert_int_equal(frame_encode_ready(&out, accept), 0);
    } else if (f.type == FRAME_EVENT) {
        struct frame_event e;
        size_t mark;
        assert_int_equal(frame_decode_event(&f, &e), 0);
        char op = e.payload_len > 0 ? (char)e.payload[0] : 't';
        if (e.kind == FRAME_EVENT_TIMER) {
            op = 't';
        }
        if (op == 's') {
            return true; /* never answers */
        }
        if (op == 'x') {
            assert_int_equal(frame_encode_reject(&out, e.number, "no", 2), 0);
        } else {
            if (op == 'w' || op == 'u') {
                s->value++;
            }
            assert_int_equal(
                frame_done_begin(&out, e.number,
                                 op == 'w' || op == 'u' ? FRAME_DONE_CHANGED
                                 : op == 'R'            ? FRAME_DONE_REUSE
                                 : op == 'W'
                                     ? FRAME_DONE_CHANGED | FRAME_DONE_REUSE
                                     : 0,
                                 &mark),
                0);
            if (op == 'W') {
                s->value++;
            }
            if (op == 'w' || op == 'r' || op == 'h' || op == 'R' || op == 'W') {
                char body[24];
                struct buf r;
                buf_init(&r);
                snprintf(body, sizeof body, "%llu",
                         (unsigned long long)s->value);
                /* h: a content type that would add a header line. */
                const char *ctype =
                    op == 'h' ? "text/plain\r\nSet-Cookie: a=b" : "text/plain";
                struct frame_http_reply hr = {
                    .status = 200,
                    .content_type = ctype,
                    .content_type_len = strlen(ctype),
                    .body = (const uint8_t *)body,
                    .body_len = strlen(body),
                };
                assert_int_equal(frame_encode_http_reply(&r, &hr), 0);
                assert_int_equal(frame_done_add_effect(&out, mark,
                                                       FRAME_EFFECT_HTTP_REPLY,
                                                       r.data, r.len),
                                 0);
                buf_free(&r);
            }
            if (op == 'c') {
                struct buf sp;
                buf_init(&sp);
                struct frame_spawn fs = {.tag = 7,
                                         .lifetime = FRAME_LIFETIME_LINKED};
                assert_int_equal(frame_encode_spawn(&sp, &fs), 0);
                assert_int_equal(frame_done_add_effect(&out, mark,
                                                       FRAME_EFFECT_SPAWN,
                                                       sp.data, sp.len),
                                 0);
                buf_free(&sp);
            }
            if (op == 'k') {
                assert_int_equal(frame_done_add_effect(&out, mark,
                                                       FRAME_EFFECT_DESTROY,
                                                       "kid", 3),
                                 0);
            }
            if (op == 'u' || op == 'U') {
                /* u: a WS_SEND and a WS_CLOSE; U: a text send that is not
                 * UTF-8. */
                uint8_t ws[9 + 2];
                put_le64(ws, 5);
                ws[8] = 1;
                memcpy(ws + 9, op == 'u' ? "hi" : "\xff\xfe", 2);
                assert_int_equal(frame_done_add_effect(&out, mark,
                                                       FRAME_EFFECT_WS_SEND, ws,
                                                       sizeof ws),
                                 0);
                uint8_t cl[10];
                put_le64(cl, 5);
                put_le16(cl + 8, 1000);
                assert_int_equal(frame_done_add_effect(&out, mark,
                                                       FRAME_EFFECT_WS_CLOSE,
                                                       cl, sizeof cl),
                                 0);
            }
            if (op == 'i') {
                assert_int_equal(frame_done_add_effect(
                                     &out, mark, FRAME_EFFECT_IDLE, NULL, 0),
                                 0);
            }
            if (op == 'a') {
                struct buf a;
                buf_init(&a);
                assert_int_equal(
                    frame_encode_alarm(&a, get_le64(e.payload + 1)), 0);
                assert_int_equal(frame_done_add_effect(&out, mark,
                                                       FRAME_EFFECT_ALARM,
                                                       a.data, a.len),
                                 0);
                buf_free(&a);
            }
            frame_done_end(&out, mark);
        }
    } else if (f.type == FRAME_SNAP_REQ) {
        uint64_t n;
        uint8_t v[8];
        assert_int_equal(frame_decode_snap_req(&f, &n), 0);
        put_le64(v, s->value);
        assert_int_equal(frame_encode_snapshot(&out, n, v, sizeof v), 0);
    } else if (f.type == FRAME_STOP) {
        s->alive = false;
        s->inbox.len = s->inbox_off = 0;
        in_begin();
        fleet_on_exit(c, "exited with status 0", true, false);
        in_end();
        t_note();
        return true;
    }
    struct frame reply;
    assert_int_equal(
        frame_split(out.data, out.len, FRAME_MAX_DEFAULT, &reply, &used), 0);
    in_begin();
    fleet_on_frame(c, &reply);
    in_end();
    buf_free(&out);
    t_note();
    return true;
}

/* The program reads and acts until it has nothing to read. */
static void prog_run(uint32_t slot)
{
    while (prog_step(slot)) {
    }
}

/* A killed program's exit reaches the fleet. */
static bool reap(uint32_t slot)
{
    struct fleet_ship *c = peek(slot);
    if (c == NULL || !tship(c)->alive || !tship(c)->dying) {
        return false;
    }
    tship(c)->alive = false;
    tship(c)->inbox.len = tship(c)->inbox_off = 0;
    in_begin();
    fleet_on_exit(c, "was killed by signal 9", false, false);
    in_end();
    t_note();
    return true;
}

/* The program crashes by itself. */
static void crash(uint32_t slot)
{
    struct fleet_ship *c = peek(slot);
    assert_true(tship(c)->alive);
    tship(c)->alive = false;
    tship(c)->inbox.len = tship(c)->inbox_off = 0;
    fleet_on_exit(c, "exited with status 1", false, false);
    t_note();
}

/* Apply a proposal to the store, as a host applies a committed entry. */
static void store_apply(struct tproposal *p)
{
    struct tstore *st = &T->store[p->slot];
    if (p->kind == -1) {
        struct record_event ev;
        assert_int_equal(record_decode_event(p->bytes.data, p->bytes.len, &ev),
                         0);
        if (ev.number != st->last_event + 1) {
            return; /* idempotent */
        }
        assert_int_equal(
            buf_append(&st->rec[ev.number], p->bytes.data, p->bytes.len), 0);
        record_hash(p->bytes.data, p->bytes.len, st->hash[ev.number]);
        st->last_event = ev.number;
        st->alarm_ns = ev.alarm_ns;
    } else if (p->kind == FLEET_ENTRY_SNAPSHOT) {
        struct record_snapshot rs;
        assert_int_equal(
            record_decode_snapshot(p->bytes.data, p->bytes.len, &rs), 0);
        if (rs.number > st->snapshot_event) {
            struct buf v;
            buf_init(&v);
            assert_true(rs.sealed);
            assert_int_equal(seal_key_id(rs.data, rs.len), 1);
            assert_int_equal(record_open_snapshot(&v, &t_keys, NULL, rs.sid,
                                                  rs.number, rs.epoch, rs.data,
                                                  rs.len),
                             0);
            assert_int_equal(v.len, 8);
            st->snapshot_event = rs.number;
            st->first_event = rs.number + 1;
            st->snap_value = get_le64(v.data);
            buf_free(&v);
        }
    } else if (p->kind == FLEET_ENTRY_RESET) {
        for (int n = 0; n <= T_MAX_EVENTS; n++) {
            buf_free(&st->rec[n]);
        }
        st->last_event = st->snapshot_event = 0;
        st->first_event = 1;
        st->alarm_ns = 0;
        st->snap_value = 0;
    } else {
        st->removed = true;
    }
}

/* Decide the oldest proposal: committed (status 0, applied, and held
 * first when held is true) or failed. */
static void decide(int status, bool held)
{
    assert_true(T->n_prop > 0);
    struct tproposal p = T->prop[0];
    memmove(&T->prop[0], &T->prop[1], (T->n_prop - 1) * sizeof p);
    T->n_prop--;
    struct fleet_ship *c = peek(p.slot);
    assert_non_null(c); /* a ship with a proposal in flight stays live */
    if (status == 0) {
        store_apply(&p);
    }
    in_begin();
    if (p.kind == -1) {
        if (held && status == 0) {
            fleet_ship_held(c, p.number);
        }
        fleet_ship_committed(c, p.number, status);
    } else {
        fleet_ship_entry_done(c, (enum fleet_entry)p.kind, p.number, status);
    }
    in_end();
    buf_free(&p.bytes);
    t_note();
}

static void commit_all(void)
{
    while (T->n_prop > 0) {
        decide(0, true);
    }
}

/* Advance the virtual clock by ms, firing timers in order. */
static void advance(uint64_t ms)
{
    uint64_t end = T->now_ms + ms;
    for (;;) {
        uint64_t due = UINT64_MAX;
        int which = -1;
        struct fleet_ship *who = NULL;
        for (uint32_t i = 0; i < T_MAX_SHIPS; i++) {
            struct fleet_ship *c = peek(i);
            if (c != NULL && tship(c)->armed && tship(c)->due_ms < due) {
                due = tship(c)->due_ms;
                which = FLEET_TIMER_SHIP;
                who = c;
            }
        }
        if (T->sweep_armed && T->sweep_due < due) {
            due = T->sweep_due;
            which = FLEET_TIMER_SWEEP;
            who = NULL;
        }
        if (T->alarm_armed && T->alarm_due < due) {
            due = T->alarm_due;
            which = FLEET_TIMER_ALARM;
            who = NULL;
        }
        if (which < 0 || due > end) {
            break;
        }
        T->now_ms = due;
        if (who != NULL) {
            tship(who)->armed = false;
        } else if (which == FLEET_TIMER_SWEEP) {
            T->sweep_armed = false;
        } else {
            T->alarm_armed = false;
        }
        in_begin();
        fleet_on_timer(&T->fleet, (enum fleet_timer)which, who);
        in_end();
        t_note();
    }
    T->now_ms = end;
}

/* Everything settles: programs read, the log commits, exits are reaped. */
static void settle(uint32_t slot)
{
    bool moved = true;
    while (moved) {
        moved = false;
        while (prog_step(slot)) {
            moved = true;
        }
        if (T->n_prop > 0) {
            commit_all();
            moved = true;
        }
        if (reap(slot)) {
            moved = true;
        }
    }
}

static enum ship_state state_of(uint32_t slot)
{
    struct fleet_ship *s = peek(slot);
    if (registry_get(&T->reg, slot)->flags & REGISTRY_REMOVED) {
        return SHIP_REMOVED;
    }
    return s != NULL ? s->state : SHIP_ASLEEP;
}

/* Bring the ship in slot awake and idle, having served one write. */
static void awake_ship(uint32_t slot)
{
    uintptr_t r = send_job(slot, "w");
    settle(slot);
    assert_non_null(outcome(r));
    assert_int_equal(state_of(slot), SHIP_AWAKE);
}

/* --- Tests. --- */

/* One request, end to end: wake, boot, event, log, gate, release. */
static void test_request_path(void **state)
{
    uintptr_t r = send_job(0, "w");
    struct fleet_ship *s = peek(0);
    assert_int_equal(s->state, SHIP_WAKING);
    assert_int_equal(T->spawns, 1);
    prog_step(0); /* BOOT -> READY: nothing to replay */
    assert_int_equal(s->state, SHIP_AWAKE);
    /* The environment heard of each tier change, once. */
    assert_int_equal(T->tier_told[SHIP_ASLEEP][SHIP_WAKING], 1);
    assert_int_equal(T->tier_told[SHIP_WAKING][SHIP_AWAKE], 1);
    prog_step(0); /* EVENT 1 -> DONE changed */
    assert_int_equal(T->n_prop, 1);
    assert_int_equal(T->prop[0].number, 1);
    assert_null(outcome(r)); /* held by the gate until durable */
    decide(0, true);
    struct tout *o = outcome(r);
    assert_non_null(o);
    assert_int_equal(o->status, 200);
    assert_string_equal(o->body, "1");
    assert_int_equal(o->number, 1);
    assert_int_equal(T->store[0].last_event, 1);
    assert_int_equal(s->last_event, 1);
    /* A read leaves at once when nothing is held before it. */
    uintptr_t q = send_job(0, "r");
    prog_step(0);
    assert_int_equal(outcome(q)->status, 200);
    assert_string_equal(outcome(q)->body, "1");
    assert_int_equal(T->n_prop, 0);
}

/* Within 10% of want (a histogram bucket is within about 3%). */
static void near_ms(const struct hist *h, double want)
{
    double got = (double)hist_quantile(h, 0.5) / 1e6;
    if (got < want * 0.9 || got > want * 1.1) {
        fail_msg("p50 %.3f ms, want about %.3f", got, want);
    }
}

/* A logged event's time splits into waiting for its ship, computing and
 * waiting for its ack level; a read is not counted. */
static void test_event_latency_parts(void **state)
{
    awake_ship(0);
    struct fleet *f = &T->fleet;
    uint64_t before = f->durable_latency.count;
    uintptr_t w1 = send_job(0, "w");
    uintptr_t w2 = send_job(0, "w"); /* waits while w1 computes */
    advance(4);
    prog_step(0); /* w1 answered after 4 ms; w2 goes to the program */
    advance(6);
    prog_step(0); /* w2 answered after 6 ms */
    advance(10);
    commit_all(); /* both durable: w1 16 ms after its answer, w2 10 */
    assert_non_null(outcome(w1));
    assert_non_null(outcome(w2));
    assert_int_equal(f->durable_latency.count, before + 2);
    assert_int_equal(f->queue_latency.max, 4 * 1000000);
    assert_int_equal(f->compute_latency.max, 6 * 1000000);
    assert_int_equal(f->durable_latency.max, 16 * 1000000);
    near_ms(&f->queue_latency, 0);
    uintptr_t r = send_job(0, "r");
    prog_step(0);
    assert_non_null(outcome(r));
    assert_int_equal(f->durable_latency.count, before + 2);
    assert_int_equal(f->compute_latency.count, before + 2);
}

/* A read waits behind a write that is not yet durable. */
static void test_read_waits_for_write(void **state)
{
    awake_ship(0);
    uintptr_t w = send_job(0, "w");
    uintptr_t r = send_job(0, "r");
    prog_run(0);
    assert_null(outcome(w));
    assert_null(outcome(r));
    decide(0, true);
    assert_non_null(outcome(w));
    assert_string_equal(outcome(r)->body, "2");
}

/* Whether the ship's program has frames it has not read. */
static bool unread(uint32_t slot)
{
    struct tship *t = tship(peek(slot));
    return t->inbox.len > t->inbox_off;
}

/* A reply marked REUSE answers the same request again without the program,
 * and only the same request. */
static void test_reuse_answers_again(void **state)
{
    awake_ship(0);
    uintptr_t r1 = send_job(0, "R");
    assert_null(outcome(r1));
    prog_step(0);
    assert_string_equal(outcome(r1)->body, "1");
    uintptr_t r2 = send_job(0, "R");
    assert_false(unread(0)); /* answered without the program */
    assert_int_equal(outcome(r2)->status, 200);
    assert_string_equal(outcome(r2)->body, "1");
    assert_int_equal(T->fleet.reuse.hits, 1);
    assert_true(T->fleet.reuse.bytes > 0);
    uintptr_t other = send_job(0, "R2"); /* another request */
    assert_null(outcome(other));
    assert_true(unread(0));
    prog_step(0);
    assert_non_null(outcome(other));
    /* Unmarked reads and admin requests are never answered again. */
    uintptr_t plain = send_job(0, "r");
    prog_step(0);
    uintptr_t plain2 = send_job(0, "r");
    assert_null(outcome(plain2));
    prog_step(0);
    assert_non_null(outcome(plain));
    assert_non_null(outcome(plain2));
    for (int i = 0; i < 2; i++) {
        struct buf payload;
        buf_init(&payload);
        assert_int_equal(buf_append(&payload, "R", 1), 0);
        uintptr_t req = T->next_req++;
        assert_int_equal(fleet_deliver(peek(0), FLEET_JOB_ADMIN, (void *)req,
                                       FRAME_EVENT_POKE, &payload),
                         0);
        assert_true(unread(0));
        prog_step(0);
    }
    assert_int_equal(T->fleet.reuse.hits, 1);
    /* A hit is a use: the ship becomes the last one to be evicted. */
    awake_ship(1);
    assert_ptr_equal(T->fleet.lru_tail, peek(1));
    send_job(0, "R");
    assert_int_equal(T->fleet.reuse.hits, 2);
    assert_ptr_equal(T->fleet.lru_tail, peek(0));
    /* A request too big to be a key is never kept. */
    static char big[REUSE_ENTRY_MAX + 2];
    memset(big, 'R', REUSE_ENTRY_MAX + 1);
    send_job(0, big);
    prog_step(0);
    uintptr_t again = send_job(0, big);
    assert_null(outcome(again));
    prog_step(0);
    assert_non_null(outcome(again));
    assert_int_equal(T->fleet.reuse.hits, 2);
}

/* A change of state clears the kept replies at once, before it is durable:
 * a read that comes after it goes to the program and waits in the gate. */
static void test_reuse_cleared_by_change(void **state)
{
    awake_ship(0);
    send_job(0, "R");
    prog_step(0);
    uintptr_t w = send_job(0, "w");
    prog_step(0); /* computed, not durable */
    assert_int_equal(peek(0)->reuse.n, 0);
    assert_int_equal(T->fleet.reuse.bytes, 0);
    uintptr_t r = send_job(0, "R");
    assert_null(outcome(r));
    prog_step(0);
    assert_null(outcome(r)); /* behind the write */
    decide(0, true);
    assert_non_null(outcome(w));
    assert_string_equal(outcome(r)->body, "2");
    /* Kept once released: the next one is answered from it. */
    uintptr_t again = send_job(0, "R");
    assert_false(unread(0));
    assert_string_equal(outcome(again)->body, "2");
    /* A change marked REUSE is a change all the same. */
    send_job(0, "W");
    prog_step(0);
    uintptr_t after = send_job(0, "R");
    assert_null(outcome(after));
    assert_true(unread(0));
    settle(0);
    assert_string_equal(outcome(after)->body, "3");
}

/* A reply computed before a change that was computed before the reply
 * left the gate is not kept: it shows a state that is gone. */
static void test_reuse_stale_not_kept(void **state)
{
    awake_ship(0);
    send_job(0, "w");
    uintptr_t r = send_job(0, "R");
    send_job(0, "w");
    prog_run(0); /* w, R (value 2), w (value 3), none durable */
    commit_all();
    assert_string_equal(outcome(r)->body, "2");
    assert_int_equal(peek(0)->reuse.n, 0);
    uintptr_t r2 = send_job(0, "R");
    assert_null(outcome(r2));
    prog_step(0);
    assert_string_equal(outcome(r2)->body, "3");
}

/* Kept replies live only while the program runs: freezing, sleeping and a
 * crash drop them, and the requests after go to the program again. */
static void test_reuse_dropped_with_program(void **state)
{
    awake_ship(0);
    send_job(0, "R");
    prog_step(0);
    assert_int_equal(peek(0)->reuse.n, 1);
    advance(1000);
    assert_int_equal(state_of(0), SHIP_FROZEN);
    assert_int_equal(peek(0)->reuse.n, 0);
    uintptr_t r = send_job(0, "R"); /* thaws */
    assert_null(outcome(r));
    prog_step(0);
    assert_string_equal(outcome(r)->body, "1");
    assert_int_equal(peek(0)->reuse.n, 1);
    crash(0);
    assert_int_equal(T->fleet.reuse.bytes, 0);
    uintptr_t r2 = send_job(0, "R"); /* wakes */
    assert_null(outcome(r2));
    settle(0);
    assert_string_equal(outcome(r2)->body, "1");
    /* A hit keeps the ship awake as any request does. */
    advance(900);
    send_job(0, "R");
    advance(900);
    assert_int_equal(state_of(0), SHIP_AWAKE);
    assert_int_equal(T->fleet.reuse.hits, 1);
    /* Losing the lead ends the program, and its replies with it. */
    in_begin();
    fleet_lead(&T->fleet, false);
    in_end();
    settle(0);
    assert_int_equal(T->fleet.reuse.bytes, 0);
    uintptr_t r3 = send_job(0, "R");
    assert_string_equal(outcome(r3)->code, "leader_changed");
}

/* A wake replays the log after the snapshot, effects discarded. */
/* The types of the frames in slot's program's stdin, not yet read, in
 * order; returns how many. */
static unsigned inbox_types(uint32_t slot, uint8_t *types, unsigned max)
{
    struct tship *s = tship(peek(slot));
    size_t off = s->inbox_off, used;
    struct frame f;
    unsigned n = 0;
    while (n < max && frame_split(s->inbox.data + off, s->inbox.len - off,
                                  FRAME_MAX_DEFAULT, &f, &used) == 0) {
        types[n++] = f.type;
        off += used;
    }
    return n;
}

/* Asleep with nothing after its snapshot, the ship's first job goes to the
 * program right behind BOOT, before READY comes back. */
static void test_wake_sends_first_job_with_boot(void **state)
{
    awake_ship(0);
    advance(10000);
    settle(0);
    assert_int_equal(state_of(0), SHIP_ASLEEP);
    uintptr_t r = send_job(0, "w");
    assert_int_equal(state_of(0), SHIP_WAKING);
    uint8_t types[4];
    assert_int_equal(inbox_types(0, types, 4), 2);
    assert_int_equal(types[0], FRAME_BOOT);
    assert_int_equal(types[1], FRAME_EVENT);
    /* A second job waits for the first, as on an awake ship. */
    uintptr_t r2 = send_job(0, "r");
    assert_int_equal(inbox_types(0, types, 4), 2);
    assert_true(prog_step(0)); /* READY: awake, its event in flight */
    assert_int_equal(state_of(0), SHIP_AWAKE);
    assert_null(outcome(r));
    settle(0);
    assert_string_equal(outcome(r)->body, "2");
    assert_int_equal(outcome(r)->number, 2);
    assert_string_equal(outcome(r2)->body, "2");
    assert_int_equal(T->spawns, 2);
}

/* An early job's program that stops answering is killed at the event's
 * deadline once awake, as any other. */
static void test_early_job_times_out(void **state)
{
    awake_ship(0);
    advance(10000);
    settle(0);
    uintptr_t r = send_job(0, "s");
    assert_true(prog_step(0)); /* READY */
    assert_int_equal(state_of(0), SHIP_AWAKE);
    prog_run(0);
    advance(t_cfg.event_timeout_ms + 1);
    assert_true(tship(peek(0))->dying);
    reap(0);
    assert_int_equal(outcome(r)->status, 504);
}

/* With a per-event CPU limit, a program that computes past it is killed
 * and its event answered 504 cpu_limit, even before the wall-clock limit;
 * one that waits without using the CPU is held to the wall-clock limit. */
static void test_event_cpu_limit(void **state)
{
    T->fleet.cfg.event_cpu_ms = 500;
    awake_ship(0);
    settle(0);
    tship(peek(0))->cpu_us = 7000000; /* what it used before the event */
    uintptr_t r = send_job(0, "s");
    prog_run(0);
    /* Half a second later it used 300 ms: it goes on. */
    tship(peek(0))->cpu_us += 300000;
    advance(500);
    assert_false(tship(peek(0))->dying);
    /* At most 200 ms more can pass before it could be over: then it is. */
    tship(peek(0))->cpu_us += 200000;
    advance(199);
    assert_false(tship(peek(0))->dying);
    advance(1);
    assert_true(tship(peek(0))->dying);
    reap(0);
    assert_int_equal(outcome(r)->status, 504);
    assert_string_equal(outcome(r)->code, "cpu_limit");
    /* A waiting program: the wall-clock limit, whole, then 504 timeout. */
    uintptr_t w = send_job(0, "s");
    settle(0);
    prog_run(0);
    for (uint64_t t = 0; t + 100 < t_cfg.event_timeout_ms; t += 100) {
        advance(100);
        assert_false(tship(peek(0))->dying);
    }
    advance(100);
    assert_true(tship(peek(0))->dying);
    reap(0);
    assert_int_equal(outcome(w)->status, 504);
    assert_string_equal(outcome(w)->code, "timeout");
}

/* A program killed by the kernel over its memory cap: its event is
 * answered 503 memory_limit, and the ship wakes on its next event from
 * its last committed state. */
static void test_memory_limit_kill(void **state)
{
    awake_ship(0);
    uintptr_t w = send_job(0, "w");
    settle(0);
    assert_string_equal(outcome(w)->body, "2");
    uintptr_t r = send_job(0, "s");
    prog_run(0);
    struct fleet_ship *c = peek(0);
    tship(c)->alive = false;
    tship(c)->inbox.len = tship(c)->inbox_off = 0;
    fleet_on_exit(c, "killed: over its memory cap", false, true);
    assert_int_equal(outcome(r)->status, 503);
    assert_string_equal(outcome(r)->code, "memory_limit");
    assert_int_equal(state_of(0), SHIP_ASLEEP);
    uintptr_t next = send_job(0, "w");
    settle(0);
    assert_string_equal(outcome(next)->body, "3");
}

/* A program that refuses its snapshot after its early job was sent is
 * killed and woken again the usual way: the whole log replayed, then the
 * job, answered once. */
static void test_refused_snapshot_wakes_again(void **state)
{
    awake_ship(0);
    send_job(0, "w");
    settle(0);
    advance(10000);
    settle(0);
    assert_int_equal(T->store[0].snapshot_event, 2);
    T->store[0].first_event = 1; /* the log is whole */
    T->refuse_snapshot = true;
    unsigned before = T->n_out;
    uintptr_t r = send_job(0, "w");
    assert_true(prog_step(0)); /* READY 0 */
    assert_true(tship(peek(0))->dying);
    assert_null(outcome(r));
    settle(0);
    assert_int_equal(T->spawns, 3);
    assert_int_equal(state_of(0), SHIP_AWAKE);
    assert_int_equal(T->n_out, before + 1);
    assert_string_equal(outcome(r)->body, "3");
    assert_int_equal(outcome(r)->number, 3);
    /* Woken again later, that ship still sends no early job. */
    uint8_t types[4];
    crash(0);
    send_job(0, "r");
    assert_int_equal(inbox_types(0, types, 4), 1);
}

/* With the log behind the snapshot gone, a refusal ends the wake at once,
 * the early job failed with the reason. */
static void test_refused_snapshot_without_log(void **state)
{
    awake_ship(0);
    advance(10000);
    settle(0);
    assert_true(T->store[0].first_event > 1);
    T->refuse_snapshot = true;
    uintptr_t r = send_job(0, "w");
    uintptr_t r2 = send_job(0, "r");
    settle(0);
    assert_int_equal(T->spawns, 2);
    assert_int_equal(outcome(r)->status, 502);
    assert_string_equal(outcome(r)->code, "wake_failed");
    assert_string_equal(outcome(r2)->code, "wake_failed");
    assert_int_equal(state_of(0), SHIP_ASLEEP);
    assert_int_equal(T->n_prop, 0);
}

/* A damaged log tail is found before any early job is sent. */
static void test_early_job_waits_for_the_check(void **state)
{
    awake_ship(0);
    advance(10000);
    settle(0);
    T->corrupt_replay = true;
    uintptr_t r = send_job(0, "w");
    assert_int_equal(inbox_types(0, (uint8_t[4]){0}, 4), 1); /* BOOT alone */
    settle(0);
    assert_string_equal(outcome(r)->code, "corrupt");
    assert_int_equal(state_of(0), SHIP_ASLEEP);
}

static void test_wake_replays(void **state)
{
    awake_ship(0);
    send_job(0, "w");
    send_job(0, "w");
    settle(0);
    crash(0);
    assert_int_equal(state_of(0), SHIP_ASLEEP);
    unsigned before = T->n_out;
    uintptr_t r = send_job(0, "w");
    assert_int_equal(state_of(0), SHIP_WAKING);
    /* Events to replay first: the job waits for READY. */
    uint8_t types[4];
    assert_int_equal(inbox_types(0, types, 4), 1);
    settle(0);
    assert_int_equal(T->n_out, before + 1); /* replayed events answer no one */
    assert_string_equal(outcome(r)->body, "4");
    assert_int_equal(outcome(r)->number, 4);
}

/* Idle past the freeze timeout: frozen; an event thaws it and is served. */
static void test_freeze_event_thaw(void **state)
{
    awake_ship(0);
    advance(999);
    assert_int_equal(state_of(0), SHIP_AWAKE);
    advance(1);
    assert_int_equal(state_of(0), SHIP_FROZEN);
    assert_true(tship(peek(0))->frozen);
    uintptr_t r = send_job(0, "w");
    assert_int_equal(state_of(0), SHIP_AWAKE);
    assert_int_equal(T->fleet.thaws, 1);
    settle(0);
    assert_string_equal(outcome(r)->body, "2");
    assert_int_equal(T->spawns, 1); /* the same process */
}

/* Idle past the idle timeout: snapshot, STOP, asleep, live object gone. */
static void test_sleep(void **state)
{
    awake_ship(0);
    advance(10000);
    assert_int_equal(state_of(0), SHIP_SLEEPING);
    settle(0);
    assert_int_equal(state_of(0), SHIP_ASLEEP);
    assert_null(peek(0));
    assert_int_equal(T->store[0].snapshot_event, 1);
    /* It wakes from its snapshot. */
    uintptr_t r = send_job(0, "w");
    settle(0);
    assert_string_equal(outcome(r)->body, "2");
}

/* A sleep in progress is interrupted by a new event, which the same
 * process serves. */
static void test_sleep_interrupted(void **state)
{
    awake_ship(0);
    advance(10000);
    assert_int_equal(state_of(0), SHIP_SLEEPING);
    uintptr_t r = send_job(0, "w");
    /* Awake again at once: the snapshot on its way is still logged. */
    assert_int_equal(state_of(0), SHIP_AWAKE);
    settle(0);
    assert_string_equal(outcome(r)->body, "2");
    assert_int_equal(T->spawns, 1);
    assert_int_equal(T->store[0].snapshot_event, 1);
}

/* The program crashes while its reply waits for the log: the reply is
 * still released once the event commits, and no wake starts before. */
static void test_crash_while_held(void **state)
{
    awake_ship(0);
    uintptr_t w = send_job(0, "w");
    prog_run(0);
    assert_int_equal(T->n_prop, 1);
    crash(0);
    assert_int_equal(state_of(0), SHIP_ASLEEP);
    assert_null(outcome(w));
    uintptr_t next = send_job(0, "w");
    assert_int_equal(state_of(0), SHIP_ASLEEP); /* waits for the log */
    assert_int_equal(T->spawns, 1);
    decide(0, true);
    assert_int_equal(outcome(w)->status, 200);
    assert_string_equal(outcome(w)->body, "2");
    assert_int_equal(state_of(0), SHIP_WAKING);
    settle(0);
    assert_string_equal(outcome(next)->body, "3");
}

/* A wake asked for while a proposal fails: the wake waits for the
 * failure, the failed event's reply is an error, and the ship wakes
 * from the store without it. */
static void test_wake_while_proposal_fails(void **state)
{
    awake_ship(0);
    uintptr_t w = send_job(0, "w");
    prog_run(0);
    crash(0);
    uintptr_t next = send_job(0, "w");
    assert_int_equal(state_of(0), SHIP_ASLEEP);
    decide(BERTH_ESHUTDOWN, false);
    assert_int_equal(outcome(w)->status, 503);
    assert_string_equal(outcome(w)->code, "unavailable");
    settle(0);
    assert_string_equal(outcome(next)->body, "2"); /* event 2 again */
    assert_int_equal(outcome(next)->number, 2);
    assert_int_equal(T->store[0].last_event, 2);
}

/* A proposal that failed because the lead was lost is answered as one a
 * client should retry: leader_changed, not a generic failure. */
static void test_commit_fails_on_lost_lead(void **state)
{
    awake_ship(0);
    uintptr_t w = send_job(0, "w");
    prog_run(0);
    decide(BERTH_ENOTLEADER, false);
    assert_int_equal(outcome(w)->status, 503);
    assert_string_equal(outcome(w)->code, "leader_changed");
    assert_true(tship(peek(0))->dying);
    reap(0);
}

/* A proposal fails while the program runs: it is killed (it is ahead of
 * the log) and the next event replays from the store. */
static void test_commit_fails_kills(void **state)
{
    awake_ship(0);
    uintptr_t w = send_job(0, "w");
    prog_run(0);
    decide(BERTH_EIO, false);
    assert_int_equal(outcome(w)->status, 503);
    assert_true(tship(peek(0))->dying);
    reap(0);
    uintptr_t r = send_job(0, "r");
    settle(0);
    assert_string_equal(outcome(r)->body, "1");
}

/* A reply whose content type holds a line break is malformed: the program
 * is killed and the client gets an error, never the injected header. */
static void test_reply_header_injection_kills(void **state)
{
    awake_ship(0);
    uintptr_t h = send_job(0, "h");
    prog_run(0);
    assert_true(tship(peek(0))->dying);
    assert_string_equal(tship(peek(0))->kill_why,
                        "malformed HTTP reply effect");
    reap(0);
    settle(0);
    assert_non_null(outcome(h));
    assert_int_not_equal(outcome(h)->status, 200);
    uintptr_t r = send_job(0, "r");
    settle(0);
    assert_int_equal(outcome(r)->status, 200);
}

/* WebSocket effects stay on their job until it is released, after its
 * event is durable; a malformed one kills the program and fails the
 * event, whose effects never leave. */
static void test_websocket_effects_wait_for_the_gate(void **state)
{
    awake_ship(0);
    uintptr_t u = send_job(0, "u");
    prog_step(0);
    assert_int_equal(T->n_prop, 1);
    assert_null(outcome(u));
    decide(0, true);
    assert_non_null(outcome(u));
    assert_int_equal(outcome(u)->ws_fx_len, 2 * 5 + 11 + 10);
    uintptr_t b = send_job(0, "U");
    prog_run(0);
    assert_true(tship(peek(0))->dying);
    assert_string_equal(tship(peek(0))->kill_why,
                        "malformed WS_SEND or WS_CLOSE effect");
    reap(0);
    settle(0);
    assert_non_null(outcome(b));
    assert_string_not_equal(outcome(b)->code, "");
    assert_int_equal(outcome(b)->ws_fx_len, 0);
}

/* Leadership lost while effects are held: nothing is released, every job
 * fails with leader_changed, programs stop, wakes are refused. */
static void test_lead_lost_while_held(void **state)
{
    awake_ship(0);
    awake_ship(1);
    uintptr_t w = send_job(0, "w");
    prog_run(0);                      /* held: proposed, not durable */
    uintptr_t cur = send_job(0, "s"); /* in the program, never answered */
    prog_run(0);
    uintptr_t waiting = send_job(0, "r");
    fleet_lead(&T->fleet, false);
    t_note();
    assert_int_equal(outcome(w)->status, 503);
    assert_string_equal(outcome(w)->code, "leader_changed");
    assert_string_equal(outcome(waiting)->code, "leader_changed");
    assert_null(outcome(cur)); /* until its program is gone */
    assert_true(tship(peek(0))->dying);
    assert_true(tship(peek(1))->dying);
    reap(0);
    reap(1);
    assert_string_equal(outcome(cur)->code, "leader_changed");
    assert_int_equal(state_of(0), SHIP_ASLEEP);
    /* The proposal's fate comes later and releases nothing. */
    unsigned n = T->n_out;
    decide(0, true);
    assert_int_equal(T->n_out, n);
    assert_null(peek(0));
    /* No wake while following. */
    uintptr_t late = send_job(1, "r");
    assert_string_equal(outcome(late)->code, "leader_changed");
    assert_int_equal(state_of(1), SHIP_ASLEEP);
    assert_int_equal(T->spawns, 2);
    /* Leading again, it serves, from the store. */
    fleet_lead(&T->fleet, true);
    uintptr_t again = send_job(0, "r");
    settle(0);
    assert_string_equal(outcome(again)->body, "2");
}

/* Losing the lead while frozen or waking stops those too. */
static void test_lead_lost_frozen_and_waking(void **state)
{
    awake_ship(0);
    advance(1000);
    assert_int_equal(state_of(0), SHIP_FROZEN);
    uintptr_t r = send_job(1, "r");
    assert_int_equal(state_of(1), SHIP_WAKING);
    fleet_lead(&T->fleet, false);
    assert_false(tship(peek(0))->frozen);
    assert_true(tship(peek(0))->dying);
    /* r went to the waking program with its BOOT: it is answered when the
     * program is gone. */
    assert_null(outcome(r));
    reap(0);
    reap(1);
    assert_string_equal(outcome(r)->code, "leader_changed");
    assert_int_equal(state_of(0), SHIP_ASLEEP);
    assert_int_equal(state_of(1), SHIP_ASLEEP);
    assert_null(peek(0));
    assert_null(peek(1));
}

/* Ack level 0 or 1: an event is held before it commits, so its reply
 * leaves first; a failed commit then kills the ship, which replays from
 * the store, and the loss is counted. */
static void test_early_release_then_failed_commit(void **state)
{
    awake_ship(0);
    struct fleet_ship *s = peek(0);
    s->acks = 1;
    uintptr_t w = send_job(0, "w");
    prog_run(0);
    fleet_ship_held(s, 2);
    assert_int_equal(outcome(w)->status, 200);
    assert_string_equal(outcome(w)->body, "2");
    assert_false(tship(s)->dying);
    /* The commit fails after the release. */
    struct tproposal p = T->prop[0];
    T->n_prop = 0;
    fleet_ship_committed(s, p.number, BERTH_ESHUTDOWN);
    buf_free(&p.bytes);
    assert_int_equal(T->fleet.released_lost, 1);
    assert_true(tship(s)->dying);
    reap(0);
    uintptr_t r = send_job(0, "r");
    settle(0);
    assert_string_equal(outcome(r)->body, "1"); /* the store's state */
}

/* Held and committed in either order release once. */
static void test_committed_before_held(void **state)
{
    awake_ship(0);
    struct fleet_ship *s = peek(0);
    s->acks = GATE_ACKS_ALL;
    uintptr_t w = send_job(0, "w");
    prog_run(0);
    struct tproposal p = T->prop[0];
    T->n_prop = 0;
    store_apply(&p);
    fleet_ship_committed(s, p.number, 0);
    assert_null(outcome(w)); /* committed, not yet held by every voter */
    fleet_ship_held(s, p.number);
    assert_int_equal(outcome(w)->status, 200);
    buf_free(&p.bytes);
}

/* Wakes wait for room; the least recently used idle ship is evicted to
 * make it, and the queued wake starts when its process exits. */
static void test_eviction_for_admission(void **state)
{
    T->fleet.max_awake = 2;
    awake_ship(0);
    awake_ship(1);
    uintptr_t r = send_job(2, "w");
    assert_int_equal(state_of(2), SHIP_ASLEEP);
    assert_int_equal(T->fleet.n_wake_queue, 1);
    assert_int_equal(T->fleet.evictions, 1);
    assert_int_equal(T->evicted_lines, 1);
    assert_int_equal(state_of(0), SHIP_SLEEPING); /* least recently used */
    assert_int_equal(state_of(1), SHIP_AWAKE);
    settle(0);
    assert_int_equal(state_of(0), SHIP_ASLEEP);
    assert_int_equal(state_of(2), SHIP_WAKING);
    assert_int_equal(T->fleet.n_wake_queue, 0);
    settle(2);
    assert_string_equal(outcome(r)->body, "1");
}

/* A busy ship is never evicted: the wake waits. */
static void test_busy_not_evicted(void **state)
{
    T->fleet.max_awake = 1;
    awake_ship(0);
    send_job(0, "s"); /* busy */
    prog_run(0);
    send_job(1, "r");
    assert_int_equal(T->fleet.evictions, 0);
    assert_int_equal(state_of(0), SHIP_AWAKE);
    assert_int_equal(T->fleet.n_wake_queue, 1);
}

/* Over the memory budget, the sweep evicts the idle ships. */
static void test_memory_budget_sweep(void **state)
{
    T->fleet.cfg.max_awake_bytes = 3 << 20;
    T->fleet.cfg.freeze_timeout_ms = 0; /* frozen programs are not swept */
    awake_ship(0);
    awake_ship(1);
    assert_int_equal(T->fleet.awake_memory, 2 << 20);
    tship(peek(0))->memory = 4 << 20;
    advance(FLEET_MEMORY_EVERY_MS + FLEET_MEASURE_TICK_MS);
    assert_int_equal(T->fleet.evictions, 1);
    assert_int_equal(state_of(0), SHIP_SLEEPING);
    assert_int_equal(state_of(1), SHIP_AWAKE);
}

/* Descriptors short: a wake waits in the queue. */
static void test_no_fds(void **state)
{
    awake_ship(0);
    T->no_fds = true;
    send_job(1, "r");
    assert_int_equal(T->fleet.n_wake_queue, 1);
    assert_int_equal(state_of(0), SHIP_SLEEPING);
    T->no_fds = false;
    settle(0);
    assert_int_equal(state_of(1), SHIP_WAKING);
}

/* An alarm set by an event takes effect once durable, fires as a TIMER
 * event (waking the ship), and is consumed durably. */
static void test_alarm(void **state)
{
    awake_ship(0);
    uint8_t p[9] = {'a'};
    uint64_t when = T_WALL0 + (T->now_ms + 60000) * 1000000;
    put_le64(p + 1, when);
    struct buf payload;
    buf_init(&payload);
    assert_int_equal(buf_append(&payload, p, sizeof p), 0);
    assert_int_equal(fleet_deliver(peek(0), FLEET_JOB_FRONT, (void *)999,
                                   FRAME_EVENT_HTTP, &payload),
                     0);
    prog_run(0);
    assert_int_equal(alarms_get(&T->alarms, 0), 0); /* not durable yet */
    commit_all();
    assert_int_equal(alarms_get(&T->alarms, 0), when);
    assert_true(T->alarm_armed);
    advance(10000); /* asleep by then */
    settle(0);
    assert_int_equal(state_of(0), SHIP_ASLEEP);
    advance(50000);
    assert_int_equal(T->fleet.alarms_fired, 1);
    assert_int_equal(state_of(0), SHIP_WAKING);
    settle(0);
    assert_int_equal(alarms_get(&T->alarms, 0), 0);
    assert_int_equal(T->store[0].alarm_ns, 0); /* consumed in the log */
    assert_int_equal(T->store[0].last_event, 3);
}

/* Effects that act beyond the program (SPAWN, DESTROY) become entries in
 * an effects item right behind their event's record, and log the event
 * even though the program said it changed nothing. */
static void test_effects_log_their_event(void **state)
{
    awake_ship(0);
    unsigned props = T->n_prop;
    uintptr_t r = send_job(0, "c");
    prog_run(0);
    assert_int_equal(T->n_prop, props + 1); /* logged */
    assert_int_equal(T->n_fx, 1);
    struct record_effects fx;
    assert_int_equal(record_decode_effects(T->fx.data, T->fx.len, &fx), 0);
    assert_int_equal(fx.sid, peek(0)->sid);
    assert_int_equal(fx.number, 2);
    assert_int_equal(fx.mail_taken, 0);
    size_t off = 0;
    const uint8_t *e;
    size_t n;
    struct record_mail m;
    assert_int_equal(record_effects_next(&fx, &off, &e, &n), 0);
    assert_int_equal(record_decode_mail(e, n, &m), 0);
    assert_int_equal(m.kind, FRAME_EFFECT_SPAWN);
    assert_int_equal(record_effects_next(&fx, &off, &e, &n), 1);
    assert_null(outcome(r)); /* its reply waits for the log */
    commit_all();
    assert_non_null(outcome(r));
    assert_string_equal(outcome(r)->code, "");
    /* A destroy the same way. */
    send_job(0, "k");
    prog_run(0);
    assert_int_equal(T->n_fx, 2);
    assert_int_equal(T->n_effects, 2);
    commit_all();
    /* An effect that cannot be made fails the event, unlogged, and the
     * program, whose state is ahead, goes. */
    T->refuse_effect = true;
    props = T->n_prop;
    r = send_job(0, "c");
    prog_run(0);
    assert_int_equal(T->n_prop, props);
    assert_int_equal(outcome(r)->status, 503);
    settle(0);
    assert_int_equal(state_of(0), SHIP_ASLEEP);
}

/* IDLE puts the ship to sleep once its event has left, before the idle
 * timeout. */
static void test_idle_effect_sleeps(void **state)
{
    awake_ship(0);
    uintptr_t r = send_job(0, "i");
    settle(0);
    assert_non_null(outcome(r));
    assert_int_equal(state_of(0), SHIP_ASLEEP);
    assert_true(T->now_ms < 1000); /* no timeout ran */
}

/* Mail is logged whatever the program says, and its effects item takes
 * it; a refused piece is not logged. */
static void test_mail_is_logged_and_taken(void **state)
{
    awake_ship(0);
    struct buf payload;
    buf_init(&payload);
    assert_int_equal(buf_append(&payload, "r", 1), 0);
    unsigned props = T->n_prop;
    assert_int_equal(
        fleet_deliver_mail(peek(0), 5, FRAME_EVENT_CHILD, &payload), 0);
    prog_run(0);
    assert_int_equal(T->n_prop, props + 1);
    struct record_effects fx;
    assert_int_equal(record_decode_effects(T->fx.data, T->fx.len, &fx), 0);
    assert_int_equal(fx.mail_taken, 5);
    assert_int_equal(fx.entries_len, 0);
    assert_int_equal(T->n_mail_out, 0); /* waits for the log */
    commit_all();
    assert_int_equal(T->n_mail_out, 1);
    assert_int_equal(T->mail_status, 0);
    /* Refused: left unlogged for the environment to drop. */
    buf_init(&payload);
    assert_int_equal(buf_append(&payload, "x", 1), 0);
    props = T->n_prop;
    assert_int_equal(
        fleet_deliver_mail(peek(0), 6, FRAME_EVENT_CHILD, &payload), 0);
    prog_run(0);
    assert_int_equal(T->n_prop, props);
    assert_int_equal(T->n_mail_out, 2);
    assert_int_equal(T->mail_status, 422);
    /* A MESSAGE's answer carries its receipt for the sender. */
    buf_init(&payload);
    assert_int_equal(buf_append(&payload, "r", 1), 0);
    assert_int_equal(
        fleet_deliver_mail(peek(0), 7, FRAME_EVENT_MESSAGE, &payload), 0);
    prog_run(0);
    assert_int_equal(record_decode_effects(T->fx.data, T->fx.len, &fx), 0);
    assert_int_equal(fx.mail_taken, 7);
    size_t off = 0;
    const uint8_t *e;
    size_t n;
    struct record_mail m;
    assert_int_equal(record_effects_next(&fx, &off, &e, &n), 0);
    assert_int_equal(record_decode_mail(e, n, &m), 0);
    assert_int_equal(m.target, 98);
    assert_int_equal(m.len, 2);
    assert_int_equal(get_le16(m.body), 200);
    commit_all();
}

/* A ship removed by the log while awake: its program goes, what waits
 * fails with 404, and it leaves the registry. */
static void test_ship_gone(void **state)
{
    awake_ship(0);
    uintptr_t r = send_job(0, "s"); /* never answered */
    prog_run(0);
    uintptr_t w = send_job(0, "r");
    in_begin();
    fleet_ship_gone(peek(0));
    in_end();
    t_note();
    assert_int_equal(outcome(w)->status, 404);
    settle(0);
    assert_int_equal(state_of(0), SHIP_REMOVED);
    assert_non_null(outcome(r));
    assert_null(peek(0));
}

/* A resetting lifetime: an idle awake ship sleeps first; an asleep one is
 * reset by an entry, and a request that comes meanwhile waits for it. */
static void test_reset_waits_for_sleep(void **state)
{
    awake_ship(0);
    in_begin();
    assert_int_equal(fleet_ship_reset(peek(0), 1), BERTH_EBUSY);
    in_end();
    settle(0);
    assert_int_equal(state_of(0), SHIP_ASLEEP);
    unsigned props = T->n_prop;
    in_begin();
    assert_int_equal(fleet_ship_reset(live(0), 1), 0);
    in_end();
    assert_int_equal(T->n_prop, props + 1);
    assert_int_equal(T->prop[T->n_prop - 1].kind, FLEET_ENTRY_RESET);
    uintptr_t r = send_job(0, "w");
    assert_int_equal(state_of(0), SHIP_ASLEEP); /* no wake yet */
    settle(0);
    assert_non_null(outcome(r));
    assert_string_equal(outcome(r)->code, "");
}

/* A TIMER event that fails leaves the alarm set, to try again later. */
static void test_alarm_retry(void **state)
{
    alarms_set(&T->alarms, 0, T_WALL0 + 1000000);
    fleet_alarms_rearm(&T->fleet);
    T->fail_spawn = true;
    advance(1);
    assert_int_equal(T->fleet.alarms_fired, 1);
    assert_int_equal(alarms_get(&T->alarms, 0),
                     T_WALL0 + 1000000 + FLEET_ALARM_RETRY_NS);
    T->fail_spawn = false;
    advance(FLEET_ALARM_RETRY_NS / 1000000);
    assert_int_equal(T->fleet.alarms_fired, 2);
    settle(0);
    assert_int_equal(alarms_get(&T->alarms, 0), 0);
}

/* Deadlines: an event that takes too long is answered 504 and its
 * program killed; a wake that makes no progress is killed; a program
 * that ignores STOP is killed. */
static void test_deadlines(void **state)
{
    awake_ship(0);
    uintptr_t slow = send_job(0, "s");
    prog_run(0);
    advance(2000);
    assert_true(tship(peek(0))->dying);
    reap(0);
    assert_int_equal(outcome(slow)->status, 504);
    /* A wake with no READY. */
    uintptr_t r = send_job(0, "r");
    assert_int_equal(state_of(0), SHIP_WAKING);
    advance(FLEET_WAKE_MIN_MS);
    reap(0);
    assert_int_equal(outcome(r)->status, 502);
    assert_string_equal(outcome(r)->code, "wake_failed");
    /* STOP ignored. */
    awake_ship(0);
    advance(10000);
    prog_step(0); /* SNAPSHOT; STOP follows, never read */
    commit_all();
    assert_int_equal(state_of(0), SHIP_SLEEPING);
    advance(FLEET_STOP_MS);
    assert_true(tship(peek(0))->dying);
    reap(0);
    assert_int_equal(state_of(0), SHIP_ASLEEP);
}

/* Failures of a wake: the program cannot start; the stored data fails
 * its checks (the ship is marked corrupt and refused until restart). */
static void test_wake_failures(void **state)
{
    T->fail_spawn = true;
    uintptr_t r = send_job(0, "r");
    assert_int_equal(outcome(r)->status, 502);
    assert_string_equal(outcome(r)->code, "wake_failed");
    assert_null(peek(0));
    T->fail_spawn = false;
    T->corrupt_load = true;
    r = send_job(1, "r");
    assert_string_equal(outcome(r)->code, "corrupt");
    T->corrupt_load = false;
    r = send_job(1, "r");
    assert_string_equal(outcome(r)->code, "corrupt");
    assert_string_equal(fleet_corrupt_detail(&T->fleet, 1),
                        "the snapshot at event 0 fails");
    /* Repaired: it wakes again on its next event. */
    fleet_clear_corrupt(&T->fleet, 1);
    fleet_clear_corrupt(&T->fleet, 1); /* not marked: nothing */
    r = send_job(1, "r");
    settle(1);
    assert_int_equal(outcome(r)->status, 200);
    assert_int_equal(T->fleet.n_damaged, 0);
    /* A ship of a disabled account is refused with 403, not marked, and
     * wakes once the account is enabled. */
    T->disabled_load = true;
    r = send_job(2, "r");
    assert_int_equal(outcome(r)->status, 403);
    assert_string_equal(outcome(r)->code, "account_disabled");
    assert_int_equal(T->fleet.n_damaged, 0);
    T->disabled_load = false;
    r = send_job(2, "r");
    settle(2);
    assert_int_equal(outcome(r)->status, 200);
}

/* Events and snapshots leave the fleet sealed; one whose seal was altered
 * (its hash chain intact, as when the chain itself was rewritten) marks
 * its ship corrupt with the event's number, and the snapshot's. */
static void test_sealed_records(void **state)
{
    awake_ship(0);
    struct tstore *st = &T->store[0];
    struct record_event ev;
    assert_int_equal(record_decode_event(st->rec[1].data, st->rec[1].len, &ev),
                     0);
    assert_true(ev.sealed);
    /* Asleep: its snapshot was sealed (the store checks it opens), and it
     * wakes from it. */
    advance(10000);
    settle(0);
    assert_int_equal(st->snapshot_event, 1);
    uintptr_t r = send_job(0, "w");
    settle(0);
    assert_string_equal(outcome(r)->body, "2");
    advance(10000);
    settle(0);
    assert_int_equal(state_of(0), SHIP_ASLEEP);
    /* An altered snapshot seal. */
    T->corrupt_seal = true;
    r = send_job(0, "r");
    T->corrupt_seal = false;
    assert_string_equal(outcome(r)->code, "corrupt");
    assert_non_null(
        strstr(fleet_corrupt_detail(&T->fleet, 0), "does not open"));
    /* An altered event seal, found on replay: ship 1 crashed after its
     * first event, so its log has no snapshot. */
    awake_ship(1);
    crash(1);
    assert_int_equal(state_of(1), SHIP_ASLEEP);
    st = &T->store[1];
    assert_int_equal(st->last_event, 1);
    st->rec[1].data[st->rec[1].len - 1] ^= 1;
    r = send_job(1, "r");
    settle(1);
    assert_string_equal(outcome(r)->code, "corrupt");
    assert_non_null(
        strstr(fleet_corrupt_detail(&T->fleet, 1), "event 1 does not open"));
}

/* A program that rejects, and a disk that is full. */
static void test_reject_and_full_disk(void **state)
{
    awake_ship(0);
    uintptr_t x = send_job(0, "x");
    prog_run(0);
    assert_int_equal(outcome(x)->status, 422);
    T->disk_full = true;
    uintptr_t w = send_job(0, "w");
    prog_run(0);
    assert_int_equal(outcome(w)->status, 507);
    assert_int_equal(T->n_prop, 0);
    assert_true(tship(peek(0))->dying); /* ahead of the log */
    uintptr_t r = send_job(0, "r");
    T->disk_full = false;
    reap(0);
    settle(0);
    assert_string_equal(outcome(r)->body, "1");
}

/* The per-ship queue is bounded. */
static void test_queue_full(void **state)
{
    awake_ship(0);
    send_job(0, "s");
    for (int i = 0; i < 4; i++) {
        send_job(0, "r");
    }
    uintptr_t r = send_job(0, "r");
    assert_int_equal(outcome(r)->status, 503);
    assert_string_equal(outcome(r)->code, "busy");
}

/* Admin sleep and wake answer once the state settles; removal. */
static void test_admin(void **state)
{
    uintptr_t req = 500;
    fleet_ship_wake(live(0), (void *)req);
    assert_null(outcome(req));
    settle(0);
    assert_int_equal(outcome(req)->answer, FLEET_ANSWER_SHIP);
    assert_int_equal(state_of(0), SHIP_AWAKE);
    fleet_ship_sleep(live(0), (void *)(req + 1));
    assert_int_equal(state_of(0), SHIP_SLEEPING);
    settle(0);
    assert_int_equal(outcome(req + 1)->answer, FLEET_ANSWER_SHIP);
    assert_null(peek(0));
    /* A frozen ship thaws for a wake. */
    awake_ship(1);
    advance(1000);
    assert_int_equal(state_of(1), SHIP_FROZEN);
    fleet_ship_wake(live(1), (void *)(req + 2));
    assert_int_equal(state_of(1), SHIP_AWAKE);
    assert_int_equal(outcome(req + 2)->answer, FLEET_ANSWER_SHIP);
    /* A frozen ship asked to sleep thaws, snapshots and stops. */
    advance(1000);
    fleet_ship_sleep(live(1), (void *)(req + 3));
    settle(1);
    assert_int_equal(state_of(1), SHIP_ASLEEP);
    /* Remove an awake ship: its program is killed first. */
    awake_ship(2);
    fleet_ship_remove(live(2), (void *)(req + 4));
    fleet_ship_remove(live(2), (void *)(req + 5));
    assert_int_equal(outcome(req + 5)->status, 409);
    settle(2);
    assert_int_equal(outcome(req + 4)->answer, FLEET_ANSWER_REMOVED);
    assert_int_equal(state_of(2), SHIP_REMOVED);
    assert_true(T->store[2].removed);
    assert_null(peek(2));
}

/* A request on its way wakes or thaws its ship with no one to answer;
 * the request then finds it awake. A host that does not lead wakes
 * nothing. */
static void test_prewake(void **state)
{
    unsigned spawns = T->spawns;
    fleet_ship_prewake(live(0));
    assert_int_equal(state_of(0), SHIP_WAKING);
    settle(0);
    assert_int_equal(state_of(0), SHIP_AWAKE);
    assert_int_equal(T->spawns, spawns + 1);
    uintptr_t r = send_job(0, "w");
    settle(0);
    assert_non_null(outcome(r));
    assert_int_equal(T->spawns, spawns + 1);
    /* Awake already: nothing more. */
    fleet_ship_prewake(live(0));
    assert_int_equal(state_of(0), SHIP_AWAKE);
    /* Frozen: thawed at once, and frozen again once idle. */
    advance(1000);
    assert_int_equal(state_of(0), SHIP_FROZEN);
    fleet_ship_prewake(live(0));
    assert_int_equal(state_of(0), SHIP_AWAKE);
    advance(1000);
    assert_int_equal(state_of(0), SHIP_FROZEN);
    /* Not leading: the ship sleeps on. */
    fleet_lead(&T->fleet, false);
    fleet_ship_prewake(live(1));
    assert_int_equal(state_of(1), SHIP_ASLEEP);
    assert_int_equal(T->spawns, spawns + 1);
}

/* Held back by the budget: no event is sent, and the event's deadline
 * keeps the time it had left. */
static void test_hold(void **state)
{
    awake_ship(0);
    struct fleet_ship *s = peek(0);
    fleet_ship_hold(s, true);
    uintptr_t r = send_job(0, "r");
    assert_false(prog_step(0));
    fleet_ship_hold(s, false);
    prog_run(0);
    assert_non_null(outcome(r));
    uintptr_t slow = send_job(0, "s");
    prog_run(0);
    advance(1500);
    fleet_ship_hold(s, true);
    assert_true(fleet_ship_has_work(s));
    advance(10000);
    assert_false(tship(s)->dying);
    fleet_ship_hold(s, false);
    advance(499);
    assert_false(tship(s)->dying);
    advance(1);
    assert_true(tship(s)->dying);
    reap(0);
    assert_int_equal(outcome(slow)->status, 504);
}

/* A program that starts while the budget is over starts held back: its
 * wake deadline waits until it is let on. */
static void test_spawn_held(void **state)
{
    T->spawn_held = true;
    uintptr_t r = send_job(0, "w");
    struct fleet_ship *s = peek(0);
    assert_true(s->held);
    advance(3 * FLEET_WAKE_MIN_MS);
    assert_false(tship(s)->dying);
    prog_step(0); /* READY: awake, but the event waits */
    assert_int_equal(s->state, SHIP_AWAKE);
    assert_false(prog_step(0));
    fleet_ship_hold(s, false);
    settle(0);
    assert_string_equal(outcome(r)->body, "1");
}

/* Stopping fails what waits and kills every program. */
static void test_shutdown(void **state)
{
    awake_ship(0);
    uintptr_t w = send_job(0, "w");
    prog_run(0);
    uintptr_t s = send_job(0, "s");
    prog_run(0);
    uintptr_t q = send_job(0, "r");
    fleet_shutdown(&T->fleet);
    assert_string_equal(outcome(q)->code, "unavailable");
    assert_true(tship(peek(0))->dying);
    reap(0);
    /* Both wait behind the write in the gate; the host frees them (503). */
    assert_null(outcome(w));
    assert_null(outcome(s));
    fleet_free_ships(&T->fleet);
    assert_string_equal(outcome(w)->code, "unavailable");
    assert_string_equal(outcome(s)->code, "program_failed");
    assert_null(peek(0));
}

/* Every transition drawn in core/ship.h was taken by the tests above. */
static void test_transitions(void **state)
{
    static const int drawn[][2] = {
        {SHIP_ASLEEP, SHIP_WAKING},   {SHIP_WAKING, SHIP_AWAKE},
        {SHIP_WAKING, SHIP_ASLEEP},   {SHIP_AWAKE, SHIP_SLEEPING},
        {SHIP_SLEEPING, SHIP_ASLEEP}, {SHIP_SLEEPING, SHIP_AWAKE},
        {SHIP_AWAKE, SHIP_ASLEEP},    {SHIP_AWAKE, SHIP_FROZEN},
        {SHIP_FROZEN, SHIP_AWAKE},    {SHIP_FROZEN, SHIP_ASLEEP},
        {SHIP_ASLEEP, SHIP_REMOVED},
    };
    for (size_t i = 0; i < sizeof drawn / sizeof drawn[0]; i++) {
        if (trail[drawn[i][0]][drawn[i][1]] == 0) {
            fail_msg("transition %s -> %s never taken",
                     ship_state_name(drawn[i][0]),
                     ship_state_name(drawn[i][1]));
        }
    }
}

/* --- Faults: every allocation of the fleet's inputs may fail. --- */

/* A whole life under faults: two ships, writes, reads, an alarm, freeze,
 * sleep, eviction; the n-th allocation of the k-th input fails. Every
 * request is answered exactly once and nothing leaks (ASan checks). */
static int fault_input, fault_k, fault_n;

static void fault_arm(void)
{
    if (fault_input++ == fault_k) {
        mem_fault_countdown(fault_n);
    }
}

static void fault_off(void)
{
    mem_fault_countdown(-1);
}

/* Programs read, the log commits, exits are reaped, for a while. */
static void drive(void)
{
    for (int i = 0; i < 20; i++) {
        for (uint32_t k = 0; k < 2; k++) {
            if (!prog_step(k) && T->n_prop > 0) {
                decide(0, true);
            }
            reap(k);
        }
    }
}

static uintptr_t life_reqs[32];
static unsigned life_n;

/* Deliver a job as an input that may fail; remember its request if the
 * fleet took it. */
static void life_job(uint32_t slot, const void *p, size_t len)
{
    struct buf payload;
    uintptr_t req = T->next_req++;
    buf_init(&payload);
    assert_int_equal(buf_append(&payload, p, len), 0);
    in_begin();
    struct fleet_ship *s = fleet_ship_live(&T->fleet, slot);
    int rv = s ? fleet_deliver(s, FLEET_JOB_FRONT, (void *)req,
                               FRAME_EVENT_HTTP, &payload)
               : BERTH_ENOMEM;
    in_end();
    buf_free(&payload);
    if (rv == 0) {
        life_reqs[life_n++] = req;
    }
}

/* An admin request as an input that may fail: 'w' wake, 's' sleep, 'r'
 * remove. */
static void life_admin(uint32_t slot, char op)
{
    uintptr_t req = T->next_req++;
    in_begin();
    struct fleet_ship *s = fleet_ship_live(&T->fleet, slot);
    if (s != NULL && op == 'w') {
        fleet_ship_wake(s, (void *)req);
    } else if (s != NULL && op == 's') {
        fleet_ship_sleep(s, (void *)req);
    } else if (s != NULL) {
        fleet_ship_remove(s, (void *)req);
    }
    in_end();
    if (s != NULL) {
        life_reqs[life_n++] = req;
    }
}

/* A life of two ships on a host with room for one program: reads, writes,
 * an alarm, freezes, sleeps, evictions, admin requests, the lead lost and
 * regained, a removal. */
static void faulty_life(void)
{
    uint8_t alarm[9] = {'a'};
    life_n = 0;
    T->fleet.max_awake = 1;
    for (int round = 0; round < 3; round++) {
        for (uint32_t slot = 0; slot < 2; slot++) {
            life_job(slot, round ? "w" : "r", 1);
            drive();
        }
        advance(20000);
        drive();
    }
    put_le64(alarm + 1, T_WALL0 + (T->now_ms + 1000) * 1000000);
    life_job(0, alarm, sizeof alarm);
    life_job(0, "r", 1);
    life_job(0, "R", 1);
    life_admin(1, 'w');
    drive();
    life_job(0, "R", 1); /* kept by the first, unless it failed */
    life_job(1, "R", 1);
    drive();
    advance(1500);
    drive();
    life_job(0, "w", 1);
    life_job(1, "w", 1);
    in_begin();
    fleet_lead(&T->fleet, false);
    in_end();
    drive();
    in_begin();
    fleet_lead(&T->fleet, true);
    in_end();
    life_admin(0, 'w');
    life_admin(0, 's');
    drive();
    life_admin(1, 'r');
    drive();
    advance(20000);
    in_before = NULL;
    for (uint32_t k = 0; k < 2; k++) {
        settle(k);
    }
    for (unsigned i = 0; i < life_n; i++) {
        assert_non_null(outcome(life_reqs[i]));
    }
    unsigned sum = 0;
    for (int st = 0; st < SHIP__STATE_COUNT; st++) {
        sum += T->fleet.tiers[st];
    }
    assert_int_equal(sum, T->fleet.n_live);
    /* Every program ended, so no reply is kept. */
    assert_int_equal(T->fleet.reuse.bytes, 0);
}

static void test_faults(void **state)
{
    /* A clean life first, to count its inputs. */
    fault_input = 0;
    fault_k = -1;
    in_before = fault_arm;
    in_after = fault_off;
    faulty_life();
    int inputs = fault_input;
    assert_true(inputs > 50);
    /* The clean life did what it says. */
    assert_int_equal(state_of(1), SHIP_REMOVED);
    assert_int_equal(T->fleet.alarms_fired, 1);
    assert_true(T->fleet.evictions > 0);
    assert_true(T->freezes > 0);
    unsigned lost = 0;
    for (unsigned i = 0; i < T->n_out; i++) {
        lost += strcmp(T->out[i].code, "leader_changed") == 0;
    }
    assert_true(lost > 0);
    for (fault_k = 0; fault_k < inputs; fault_k++) {
        for (fault_n = 0; fault_n < 3; fault_n++) {
            t_teardown(state);
            t_setup(state);
            fault_input = 0;
            in_before = fault_arm;
            in_after = fault_off;
            faulty_life();
        }
    }
    in_before = in_after = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_request_path, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_event_latency_parts, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_read_waits_for_write, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_wake_sends_first_job_with_boot,
                                        t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_event_cpu_limit, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_memory_limit_kill, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_early_job_times_out, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_refused_snapshot_wakes_again,
                                        t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_refused_snapshot_without_log,
                                        t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_early_job_waits_for_the_check,
                                        t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_wake_replays, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_freeze_event_thaw, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_sleep, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_sleep_interrupted, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_crash_while_held, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_wake_while_proposal_fails, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_commit_fails_kills, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_reply_header_injection_kills,
                                        t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(
            test_websocket_effects_wait_for_the_gate, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_commit_fails_on_lost_lead, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_lead_lost_while_held, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_lead_lost_frozen_and_waking,
                                        t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_early_release_then_failed_commit,
                                        t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_committed_before_held, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_eviction_for_admission, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_busy_not_evicted, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_memory_budget_sweep, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_no_fds, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_alarm, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_effects_log_their_event, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_idle_effect_sleeps, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_mail_is_logged_and_taken, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_ship_gone, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_reset_waits_for_sleep, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_alarm_retry, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_deadlines, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_sealed_records, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_wake_failures, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_reject_and_full_disk, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_admin, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_prewake, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_hold, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_spawn_held, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_shutdown, t_setup, t_teardown),
        cmocka_unit_test(test_transitions),
        cmocka_unit_test_setup_teardown(test_reuse_answers_again, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_reuse_cleared_by_change, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_reuse_stale_not_kept, t_setup,
                                        t_teardown),
        cmocka_unit_test_setup_teardown(test_reuse_dropped_with_program,
                                        t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_faults, t_setup, t_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
