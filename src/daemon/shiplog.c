/* Ships' logs: what each program writes to its stderr, kept per ship.
 *
 * Every byte a program writes to stderr goes to a ring file of its ship,
 * DATA/logs/<sid>.log (lib/logring.h), which keeps the last
 * --ship-log-bytes of it (64 KiB by default). The ring lives on disk and is
 * opened only for each write and read, so a ship costs no memory and no
 * descriptor for its log, asleep or awake, and a program that writes
 * without end only turns its own ring over: storage stays bounded, and the
 * pipe is read once per loop iteration at most (proc.h). The file is made
 * at the first byte a program writes, and removed with the ship.
 *
 * Only the host that runs a ship's program has its log: in a cluster, the
 * leader (at the time the program ran). A ring is not replicated; after a
 * change of leader, the new leader's rings hold what programs wrote since
 * it leads.
 *
 * GET /v1/ships/ID/logs reads the ring: the bytes after an offset, or the
 * last ones, base64 in JSON with the offsets of the first byte and of the
 * end. With wait=MS and nothing new after the offset, the request waits
 * (long polling) until the program writes or the time is up: that is how
 * `berth ship logs -f` follows. */
#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "consensus/log.h"
#include "daemon/host.h"
#include "lib/err.h"
#include "lib/logring.h"
#include "lib/mem.h"

/* How often waiting requests are checked for their deadline. */
#define SHIPLOG__TICK_MS 100

struct host_logwait {
    struct http_request *req;
    uint64_t sid;
    uint64_t after;
    size_t max;
    uint64_t deadline_ms; /* loop time */
    char id[REGISTRY_ID_LEN + 1];
    struct host_logwait *next;
};

static void shiplog__path(const struct host *h, uint64_t sid, char *out,
                          size_t size)
{
    snprintf(out, size, "%s/logs/%llu.log", h->cfg.data_dir,
             (unsigned long long)sid);
}

/* Answer req with what the ring of sid holds from after on (UINT64_MAX:
 * its last max bytes). */
static void shiplog__answer(struct host *h, struct http_request *req,
                            uint64_t sid, const char *id, uint64_t after,
                            size_t max)
{
    char path[4200];
    shiplog__path(h, sid, path, sizeof path);
    struct buf b;
    buf_init(&b);
    uint64_t start, end;
    int rv = logring_read(path, after, max, &b, &start, &end);
    if (rv != 0) {
        buf_free(&b);
        host_reply_error(req, rv == BERTH_ENOMEM ? 503 : 500,
                         rv == BERTH_ENOMEM ? "unavailable" : "internal",
                         "cannot read the ship's log: %s", err_str(rv));
        return;
    }
    size_t n64 =
        sodium_base64_encoded_len(b.len, sodium_base64_VARIANT_ORIGINAL);
    char *text = mem_alloc(n64);
    if (text == NULL) {
        buf_free(&b);
        host_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    sodium_bin2base64(text, n64, b.data, b.len, sodium_base64_VARIANT_ORIGINAL);
    json_t *o = json_object();
    json_object_set_new(o, "ship", json_string(id));
    json_object_set_new(o, "host", json_integer((json_int_t)log_id(h->log)));
    json_object_set_new(o, "start", json_integer((json_int_t)start));
    json_object_set_new(o, "end", json_integer((json_int_t)(start + b.len)));
    json_object_set_new(o, "log_end", json_integer((json_int_t)end));
    json_object_set_new(o, "capacity",
                        json_integer((json_int_t)h->cfg.ship_log_bytes));
    json_object_set_new(o, "data", json_string(text));
    mem_free(text);
    buf_free(&b);
    host_reply_json(req, 200, o);
}

/* Answer the waiting requests for sid (every one for sid 0) when due is
 * false, else those whose time is up; arm or stop the tick. */
static void shiplog__wake(struct host *h, uint64_t sid, bool due)
{
    uint64_t now = uv_now(&h->loop);
    struct host_logwait **pp = &h->logwaits;
    while (*pp != NULL) {
        struct host_logwait *w = *pp;
        bool go = due ? w->deadline_ms <= now : (sid == 0 || w->sid == sid);
        if (!go) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        shiplog__answer(h, w->req, w->sid, w->id, w->after, w->max);
        mem_free(w);
    }
    if (h->logwaits == NULL) {
        uv_timer_stop(&h->logwait_timer);
    }
}

static void shiplog__tick(uv_timer_t *t)
{
    shiplog__wake(t->data, 0, true);
}

void host_shiplog_start(struct host *h)
{
    uv_timer_init(&h->loop, &h->logwait_timer);
    h->logwait_timer.data = h;
    char path[4200];
    snprintf(path, sizeof path, "%s/logs", h->cfg.data_dir);
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        host_log("warn", "cannot make the directory of ships' logs", "path",
                 path, "error", strerror(errno), NULL);
        return;
    }
    /* A ship removed while the host was down (a removal applied at start,
     * before the registry) leaves its log: it goes now. */
    DIR *d = opendir(path);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        errno = 0;
        unsigned long long sid = strtoull(e->d_name, &end, 10);
        if (e->d_name[0] < '1' || e->d_name[0] > '9' || errno != 0 ||
            strcmp(end, ".log") != 0) {
            continue;
        }
        uint32_t slot = registry_seek(&h->reg, sid - 1);
        if (slot < h->reg.n_slots && registry_get(&h->reg, slot)->sid == sid &&
            !(registry_get(&h->reg, slot)->flags & REGISTRY_REMOVED)) {
            continue;
        }
        char file[4500];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        unlink(file);
    }
    closedir(d);
}

void host_shiplog_stop(struct host *h)
{
    shiplog__wake(h, 0, false);
    uv_timer_stop(&h->logwait_timer);
}

void host_shiplog_append(struct host_ship *s, const uint8_t *data, size_t n)
{
    struct host *h = s->host;
    if (h->cfg.ship_log_bytes == 0 || n == 0 || s->core.state == SHIP_REMOVED) {
        return;
    }
    char path[4200];
    shiplog__path(h, s->core.sid, path, sizeof path);
    int rv = logring_append(path, h->cfg.ship_log_bytes, data, n);
    if (rv != 0 && !s->log_failed) {
        /* Once per wake: a full disk would otherwise say it per read. */
        s->log_failed = true;
        host_log("warn", "cannot keep a program's stderr", "ship", s->core.id,
                 "path", path, "error",
                 rv == BERTH_EIO ? strerror(errno) : err_str(rv), NULL);
    }
    if (h->logwaits != NULL) {
        shiplog__wake(h, s->core.sid, false);
    }
}

void host_shiplog_remove(struct host *h, uint64_t sid)
{
    char path[4200];
    shiplog__path(h, sid, path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT) {
        host_log("warn", "cannot remove a ship's log", "path", path, "error",
                 strerror(errno), NULL);
    }
}

void host_shiplog_get(struct host *h, struct http_request *req, uint32_t slot,
                      uint64_t after, size_t max, unsigned wait_ms)
{
    const struct registry_ship *e = registry_get(&h->reg, slot);
    char id[REGISTRY_ID_LEN + 1];
    registry_id(&h->reg, slot, id);
    if (wait_ms > 0 && after != UINT64_MAX) {
        char path[4200];
        shiplog__path(h, e->sid, path, sizeof path);
        struct buf none;
        buf_init(&none);
        uint64_t start = 0, end = 0;
        /* Nothing new after the offset (and the offset is this ring's):
         * wait for the program to write. */
        if (logring_read(path, after, 0, &none, &start, &end) == 0 &&
            after == end) {
            struct host_logwait *w = mem_calloc(1, sizeof *w);
            if (w != NULL) {
                w->req = req;
                w->sid = e->sid;
                w->after = after;
                w->max = max;
                w->deadline_ms = uv_now(&h->loop) + wait_ms;
                memcpy(w->id, id, sizeof w->id);
                w->next = h->logwaits;
                h->logwaits = w;
                if (!uv_is_active((uv_handle_t *)&h->logwait_timer)) {
                    uv_timer_start(&h->logwait_timer, shiplog__tick,
                                   SHIPLOG__TICK_MS, SHIPLOG__TICK_MS);
                }
                return;
            }
        }
    }
    shiplog__answer(h, req, e->sid, id, after, max);
}
