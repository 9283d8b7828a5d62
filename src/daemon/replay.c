#include "daemon/replay.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/record.h"
#include "daemon/host.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "proc/proc.h"
#include "store/shipkey.h"

struct replay {
    struct host *h;
    struct replay *next; /* in the host's list of replays under way */
    uint32_t slot;
    replay_done_cb done;
    void *arg;
    enum replay_verdict verdict;
    bool decided;
    char detail[ERRMSG_SIZE];
    struct proc *proc;
    uv_timer_t timer;  /* the deadline, or the deferred end */
    struct buf frames; /* the events and SNAP_REQ, sent after READY */
    struct buf want;   /* the stored snapshot's bytes */
    uint64_t want_number;
    uint64_t events;    /* events in frames */
    const uint8_t *own; /* own_key, or NULL: the ship has none */
    uint8_t own_key[SEAL_OWN_KEY_SIZE];
};

const char *replay_verdict_name(enum replay_verdict verdict)
{
    switch (verdict) {
    case REPLAY_SAME:
        return "same";
    case REPLAY_DIFFERENT:
        return "different";
    case REPLAY_SKIPPED:
        return "skipped";
    default:
        return "failed";
    }
}

static void replay__wipe(struct buf *b)
{
    if (b->data != NULL) {
        sodium_memzero(b->data, b->cap);
    }
    buf_free(b);
}

static void replay__closed(uv_handle_t *t)
{
    mem_free(t->data);
}

/* The replay is over and its program gone: say so, and free it. */
static void replay__finish(struct replay *r)
{
    struct replay **p = &r->h->replays;
    while (*p != r) {
        p = &(*p)->next;
    }
    *p = r->next;
    uv_timer_stop(&r->timer);
    r->done(r->arg, r->verdict, r->detail);
    replay__wipe(&r->frames);
    replay__wipe(&r->want);
    uv_close((uv_handle_t *)&r->timer, replay__closed);
}

static void replay__decide(struct replay *r, enum replay_verdict verdict,
                           const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void replay__timer_cb(uv_timer_t *t);

/* Settle the verdict (the first one stands); the program, if any, is
 * killed, and the end follows its exit. */
static void replay__decide(struct replay *r, enum replay_verdict verdict,
                           const char *fmt, ...)
{
    if (!r->decided) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->detail, sizeof r->detail, fmt, ap);
        va_end(ap);
        r->verdict = verdict;
        r->decided = true;
    }
    if (r->proc != NULL) {
        proc_kill(r->proc, "fsck: replay over");
    } else {
        /* Never from within replay_start: on the loop's next turn. */
        uv_timer_start(&r->timer, replay__timer_cb, 0, 0);
    }
}

static void replay__timer_cb(uv_timer_t *t)
{
    struct replay *r = t->data;
    if (r->proc != NULL) {
        replay__decide(r, REPLAY_FAILED,
                       "its program took longer than %d s to replay",
                       REPLAY_TIMEOUT_MS / 1000);
        return;
    }
    replay__finish(r);
}

static void replay__on_frame(struct proc *p, const struct frame *f, void *arg)
{
    struct replay *r = arg;
    if (r->decided) {
        return;
    }
    switch (f->type) {
    case FRAME_READY: {
        bool accepted;
        if (frame_decode_ready(f, &accepted) != 0 || !accepted) {
            replay__decide(r, REPLAY_FAILED,
                           "its program refused the prior snapshot");
            return;
        }
        if (proc_send(p, &r->frames) != 0) {
            replay__decide(r, REPLAY_FAILED, "cannot send the events");
        }
        return;
    }
    case FRAME_REJECT: {
        struct frame_reject rj;
        uint64_t n = frame_decode_reject(f, &rj) == 0 ? rj.number : 0;
        replay__decide(r, REPLAY_DIFFERENT,
                       "its program rejected event %llu, which it took when "
                       "it was logged",
                       (unsigned long long)n);
        return;
    }
    case FRAME_SNAPSHOT: {
        struct frame_snapshot s;
        if (frame_decode_snapshot(f, &s) != 0 || s.number != r->want_number) {
            replay__decide(r, REPLAY_FAILED,
                           "its program answered with a malformed snapshot");
        } else if (s.len != r->want.len ||
                   (s.len > 0 && memcmp(s.data, r->want.data, s.len) != 0)) {
            replay__decide(r, REPLAY_DIFFERENT,
                           "replayed through %llu events, its program made a "
                           "snapshot at event %llu other than the stored one "
                           "(%zu bytes, stored %zu): its state depends on more "
                           "than its events",
                           (unsigned long long)r->events,
                           (unsigned long long)s.number, s.len, r->want.len);
        } else {
            replay__decide(r, REPLAY_SAME,
                           "replayed through %llu events, its program made the "
                           "stored snapshot at event %llu again",
                           (unsigned long long)r->events,
                           (unsigned long long)s.number);
        }
        return;
    }
    default:
        return; /* DONE and its effects: nothing leaves a replay */
    }
}

static void replay__on_exit(struct proc *p, const char *why, int clean,
                            void *arg)
{
    struct replay *r = arg;
    r->proc = NULL;
    if (!r->decided) {
        replay__decide(r, REPLAY_FAILED, "its program %s before the end", why);
    }
    replay__finish(r);
}

/* What a walk of the events to replay needs. */
struct replay__walk {
    struct replay *r;
    uint64_t upto;
    struct buf plain;
};

static int replay__event(uint64_t number, const void *rec, size_t len,
                         void *arg)
{
    struct replay__walk *w = arg;
    if (number > w->upto) {
        return 1; /* past the snapshot: done */
    }
    struct record_event ev;
    int rv =
        record_open_event(rec, len, &w->r->h->keys, w->r->own, &w->plain, &ev);
    if (rv != 0) {
        return rv;
    }
    struct frame_event fe = {.number = ev.number,
                             .time_ns = ev.time_ns,
                             .kind = ev.kind,
                             .payload = ev.payload,
                             .payload_len = ev.payload_len};
    memcpy(fe.entropy, ev.entropy, sizeof fe.entropy);
    rv = frame_encode_event(&w->r->frames, &fe);
    w->r->events++;
    return rv;
}

/* Read what the replay needs and start the program; or decide why not.
 * Returns 0, or BERTH_ENOMEM. */
static int replay__begin(struct replay *r)
{
    struct host *h = r->h;
    const struct registry_ship *e = registry_get(&h->reg, r->slot);
    struct store_ship ship;
    struct store_snapshot latest, prior;
    struct buf data, boot_state, boot;
    uint8_t epoch[STORE_HASH_SIZE], zeros[STORE_HASH_SIZE] = {0};
    int rv = store_ship_get_sid(h->store, e->sid, &ship);
    if (rv != 0) {
        replay__decide(r, REPLAY_FAILED, "cannot read the ship: %s",
                       store_errmsg(h->store));
        return 0;
    }
    buf_init(&data);
    buf_init(&boot_state);
    buf_init(&boot);
    bool has_own = false;
    if (shipkey_open(h->store, &h->keys, &ship, NULL, r->own_key, &has_own) ==
            0 &&
        has_own) {
        r->own = r->own_key;
    }
    if (ship.snapshot_event == 0) {
        replay__decide(r, REPLAY_SKIPPED, "it has no snapshot to compare with");
        goto out;
    }
    rv = store_snapshot_get(h->store, ship.sid, &latest, &data);
    if (rv == 0 && latest.sealed) {
        rv = record_open_snapshot(&r->want, &h->keys, r->own, ship.sid,
                                  latest.number, latest.epoch, data.data,
                                  data.len);
    } else if (rv == 0) {
        rv = buf_append(&r->want, data.data, data.len);
    }
    if (rv != 0) {
        replay__decide(r, REPLAY_FAILED, "its snapshot does not read or open");
        goto out;
    }
    r->want_number = latest.number;
    if (host_ship_epoch(h, r->slot, epoch) != 0 ||
        memcmp(epoch, latest.epoch, sizeof epoch) != 0) {
        replay__decide(r, REPLAY_SKIPPED,
                       "its program changed since the snapshot was made");
        goto out;
    }
    uint64_t boot_number = 0, start = 1;
    const uint8_t *chain = zeros;
    if (ship.first_event > 1) {
        data.len = 0;
        rv = ship.first_event > latest.number
                 ? BERTH_ENOTFOUND
                 : store_prior_snapshot_get(h->store, ship.sid, &prior, &data);
        if (rv == BERTH_ENOTFOUND) {
            replay__decide(r, REPLAY_SKIPPED,
                           "the events its snapshot stands for are gone (it "
                           "was taken before prior snapshots were kept)");
            goto out;
        }
        if (rv == 0 && prior.sealed) {
            rv = record_open_snapshot(&boot_state, &h->keys, r->own, ship.sid,
                                      prior.number, prior.epoch, data.data,
                                      data.len);
        } else if (rv == 0) {
            rv = buf_append(&boot_state, data.data, data.len);
        }
        if (rv != 0) {
            replay__decide(r, REPLAY_FAILED,
                           "its prior snapshot does not read or open");
            goto out;
        }
        boot_number = prior.number;
        start = prior.number + 1;
        chain = prior.chain;
    }
    struct replay__walk w = {.r = r, .upto = latest.number};
    buf_init(&w.plain);
    rv = store_event_foreach(h->store, ship.sid, start, chain, replay__event,
                             &w);
    replay__wipe(&w.plain);
    if (rv != 0 && rv != 1) {
        replay__decide(r, REPLAY_FAILED, "its events do not read or open: %s",
                       rv == BERTH_ECORRUPT ? store_errmsg(h->store)
                                            : err_str(rv));
        rv = 0;
        goto out;
    }
    rv = frame_encode_snap_req(&r->frames, latest.number);
    struct frame_boot fb = {.id = ship.id,
                            .id_len = strlen(ship.id),
                            .snapshot_event = boot_number,
                            .snapshot = boot_state.data,
                            .snapshot_len = boot_state.len};
    if (rv == 0) {
        rv = frame_encode_boot(&boot, &fb);
    }
    if (rv != 0) {
        goto out;
    }
    char name[STORE_NAME_MAX + 16], errmsg[ERRMSG_SIZE];
    snprintf(name, sizeof name, "fsck %s", ship.name[0] ? ship.name : ship.id);
    struct proc_config pc = {
        .path = registry_program(&h->reg, r->slot),
        .name = name,
        .ship_id = ship.id,
        .max_frame = h->cfg.max_frame,
        .budget = &h->budget,
        .args = ship.args,
        .args_len = ship.args_len,
        .env = ship.env,
        .env_len = ship.env_len,
        .first = &boot,
    };
    if (proc_spawn(&r->proc, &h->loop, &pc, replay__on_frame, replay__on_exit,
                   r, errmsg) != 0) {
        r->proc = NULL;
        replay__decide(r, REPLAY_FAILED, "%s", errmsg);
        goto out;
    }
    uv_timer_start(&r->timer, replay__timer_cb, REPLAY_TIMEOUT_MS, 0);
out:
    replay__wipe(&boot);
    replay__wipe(&boot_state);
    buf_free(&data);
    store_ship_clear(&ship);
    return rv == BERTH_ENOMEM ? rv : 0;
}

int replay_start(struct host *h, uint32_t slot, replay_done_cb done, void *arg)
{
    struct replay *r = mem_calloc(1, sizeof *r);
    if (r == NULL) {
        return BERTH_ENOMEM;
    }
    r->h = h;
    r->slot = slot;
    r->done = done;
    r->arg = arg;
    buf_init(&r->frames);
    buf_init(&r->want);
    uv_timer_init(&h->loop, &r->timer);
    r->timer.data = r;
    r->next = h->replays;
    h->replays = r;
    if (replay__begin(r) != 0) {
        h->replays = r->next;
        replay__wipe(&r->frames);
        replay__wipe(&r->want);
        uv_close((uv_handle_t *)&r->timer, replay__closed);
        return BERTH_ENOMEM;
    }
    return 0;
}

void replay_stop_all(struct host *h)
{
    for (struct replay *r = h->replays; r != NULL; r = r->next) {
        replay__decide(r, REPLAY_FAILED, "the host is stopping");
    }
}
