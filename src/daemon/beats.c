/* Heartbeats: each host's liveness and load, told to the cluster.
 *
 * Every HOST_BEAT_MS a host measures itself (its resident memory, its
 * open descriptors, the programs it runs, the machine's load average) and
 * sends it to every other host of the configuration over the peer port
 * (log_beat). Each host keeps the last heartbeat of every other in a small
 * table in memory, with the loop time it arrived: `berth cluster ls` and
 * /metrics say how old each is, so a host that stopped, hangs or is cut
 * off shows as a heartbeat that ages while the others stay fresh. A
 * heartbeat is not an entry of the log: it matters now and never after,
 * and a leader with no quorum must still hear it.
 *
 * The message's bytes are core/beat.h's. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consensus/log.h"
#include "core/beat.h"
#include "daemon/host.h"
#include "proc/tree.h"

/* This host's heartbeat as of now. */
static void beats__measure(struct host *h, struct host_beat *b)
{
    memset(b, 0, sizeof *b);
    b->id = log_id(h->log);
    b->received_ms = uv_now(&h->loop);
    b->said.sent_ns = host_now_ns();
    b->said.rss_bytes = tree_self_rss();
    b->said.programs = h->fleet.n_procs;
    b->said.live = h->fleet.n_live;
    b->said.fds = tree_self_fds();
    double load[1];
    if (getloadavg(load, 1) == 1 && load[0] >= 0 && load[0] < 4e6) {
        b->said.load_milli = (uint32_t)(load[0] * 1000 + 0.5);
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    b->said.cpus = cpus > 0 ? (uint32_t)cpus : 0;
    b->said.leading = h->leading;
    b->said.front_port =
        h->front != NULL ? (uint16_t)http_server_port(h->front) : 0;
}

static void beats__tick(uv_timer_t *t)
{
    struct host *h = t->data;
    if (h->log == NULL || h->stopping) {
        return;
    }
    struct host_beat b;
    beats__measure(h, &b);
    uint8_t m[BEAT_SIZE];
    beat_encode(&b.said, m);
    if (log_beat(h->log, m, sizeof m) > 0) {
        h->beats.sent++;
    }
}

void host_beats_start(struct host *h)
{
    uv_timer_init(&h->loop, &h->beats.timer);
    h->beats.timer.data = h;
    uv_timer_start(&h->beats.timer, beats__tick, HOST_BEAT_MS, HOST_BEAT_MS);
}

void host_beats_stop(struct host *h)
{
    uv_timer_stop(&h->beats.timer);
}

void host_beat_received(void *arg, uint64_t sender, const uint8_t *body,
                        size_t len)
{
    struct host *h = arg;
    struct beat said;
    if (beat_decode(body, len, &said) != 0) {
        return; /* a version this host cannot read */
    }
    struct host_beats *bs = &h->beats;
    struct host_beat *b = NULL;
    for (unsigned i = 0; i < bs->n; i++) {
        if (bs->beat[i].id == sender) {
            b = &bs->beat[i];
        }
    }
    if (b == NULL) {
        if (bs->n < HOST_BEATS_MAX) {
            b = &bs->beat[bs->n++];
        } else {
            /* Full of hosts (some long gone): the oldest heartbeat goes. */
            b = &bs->beat[0];
            for (unsigned i = 1; i < bs->n; i++) {
                if (bs->beat[i].received_ms < b->received_ms) {
                    b = &bs->beat[i];
                }
            }
        }
    }
    b->id = sender;
    b->received_ms = uv_now(&h->loop);
    b->said = said;
    bs->received++;
}

const struct host_beat *host_beat_of(struct host *h, uint64_t id)
{
    static struct host_beat self;
    if (h->log != NULL && id == log_id(h->log)) {
        beats__measure(h, &self);
        return &self;
    }
    for (unsigned i = 0; i < h->beats.n; i++) {
        if (h->beats.beat[i].id == id) {
            return &h->beats.beat[i];
        }
    }
    return NULL;
}

void host_beat_json(struct host *h, uint64_t id, json_t *o)
{
    const struct host_beat *b = host_beat_of(h, id);
    if (b == NULL) {
        json_object_set_new(o, "heartbeat", json_null());
        return;
    }
    uint64_t now = uv_now(&h->loop);
    uint64_t age = now > b->received_ms ? now - b->received_ms : 0;
    json_object_set_new(
        o, "heartbeat",
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:b}", "age_ms",
                  (json_int_t)age, "rss_bytes", (json_int_t)b->said.rss_bytes,
                  "programs", (json_int_t)b->said.programs, "live",
                  (json_int_t)b->said.live, "fds", (json_int_t)b->said.fds,
                  "load1", b->said.load_milli / 1000.0, "cpus",
                  (json_int_t)b->said.cpus, "leading", b->said.leading));
}
