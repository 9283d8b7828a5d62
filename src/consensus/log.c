#include "consensus/log.h"

#include <sodium.h>

#include <errno.h>
#include <fcntl.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "consensus/fsm.h"
#include "consensus/identity.h"
#include "consensus/segments.h"
#include "consensus/transport.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/mem.h"
#include "store/store.h"

/* The first host of a cluster is id 1; a one-host cluster with no peer
 * port names itself "local", an address never dialed. */
#define LOG__FIRST_ID 1
#define LOG__LOCAL "local"
/* The members file in raft's directory (log__members_save). */
#define LOG__MEMBERS "members"

/* How often the leader probes its peers and reconsiders their roles, and
 * how long a probe may take. */
#define LOG__ROLES_MS 1000
#define LOG__PROBE_MS 800
/* How long a new host keeps asking to join before it gives up. */
#define LOG__JOIN_MS 30000
/* A join's answer: the cluster id, the new host's id, the master key. */
#define LOG__JOINED_SIZE (TRANSPORT_CLUSTER_SIZE + 8 + LOG_MASTER_KEY_SIZE)
_Static_assert(TRANSPORT_SECRET_SIZE == LOG_CLUSTER_SECRET_SIZE,
               "the transport takes the cluster secret whole");

/* What this host knows of another host of its configuration, from probing
 * it. */
struct log__member {
    uint64_t id;
    bool online;
    bool probing;
    uint64_t applied;
    char *info;
};

struct log {
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct transport *peers;
    struct raft_barrier barrier;
    struct raft_barrier compact; /* the entry a compaction waits for */
    bool compact_pending;
    bool compact_wanted;      /* log one at the next loop iteration */
    unsigned compact_entries; /* logged for the compaction under way */
    struct raft_change change;
    struct log_call *change_call; /* the join waiting for change, if any */
    uint64_t change_id;           /* the host that join adds */
    bool changing;
    uv_timer_t watchdog; /* runs only while proposals are pending */
    uv_timer_t roles;    /* the leader's probes and role changes */
    uv_check_t check;    /* notices role changes and ack progress */
    uv_idle_t kick; /* keeps the loop from sleeping while after_head waits */
    /* On a host alone: entries applied in this loop iteration, answered
     * once the store has committed them (log__answer_applied). */
    struct log__req *after_head, *after_tail;
    uint64_t progress_ms;    /* loop time the applied index last grew */
    uint64_t progress_index; /* the applied index then */
    struct log_config cfg;
    char *dir;
    char *peer;
    char *info;
    uv_loop_t *loop;
    uint64_t id;
    uint8_t cluster[TRANSPORT_CLUSTER_SIZE];
    bool leading;         /* the host was told it leads */
    bool barrier_pending; /* a barrier of lead_term is in flight */
    raft_term lead_term;
    struct log__member *members;
    unsigned n_members;
    /* The members file as last written (consensus/identity.h), and the
     * index of the configuration it was written from. */
    char members_text[IDENTITY_REJOIN_TEXT_SIZE];
    uint64_t members_index;
    unsigned pending;
    bool fatal;
    bool closing;
    log_close_cb close_cb;
    void *close_arg;
};

/* A call from another host that waits for an answer from this one. */
struct log_call {
    struct transport_call *call;
};

struct log__req {
    struct raft_apply req;
    struct log *log;
    log_done_cb cb;
    void *arg;
    int result;            /* the apply's, while waiting on after_head */
    struct log__req *next; /* on after_head */
};

static void log__fatal(struct log *l, const char *what, int rv)
{
    char msg[ERRMSG_SIZE];
    if (l->fatal) {
        return;
    }
    l->fatal = true;
    snprintf(msg, sizeof msg, "%s: %s (%s)", what, raft_strerror(rv),
             raft_errmsg(&l->raft));
    l->cfg.fatal(l->cfg.arg, msg);
}

/* libraft 0.15 could stop for good after an I/O error without failing the
 * requests in flight (seen with a full disk: a segment could not be
 * prepared, and appends waited for it forever). On a host that is its own
 * cluster, a watchdog checks once a second, while proposals are pending,
 * that raft still leads and that some entry was applied in the last
 * LOG__STALL_MS; an idle host runs no timer. In a cluster, losing the lead
 * and waiting for a quorum are normal, and libraft fails the requests of a
 * leader that steps down. */
#define LOG__WATCHDOG_MS 1000
#define LOG__STALL_MS 10000

static void log__watchdog_cb(uv_timer_t *t)
{
    struct log *l = t->data;
    if (l->pending == 0 || l->closing || log_voters(l) > 1) {
        uv_timer_stop(t);
        return;
    }
    if (raft_last_applied(&l->raft) != l->progress_index) {
        l->progress_index = raft_last_applied(&l->raft);
        l->progress_ms = uv_now(l->loop);
    }
    if (raft_state(&l->raft) != RAFT_LEADER) {
        log__fatal(l, "log stopped leading with proposals pending", RAFT_IOERR);
    } else if (uv_now(l->loop) - l->progress_ms > LOG__STALL_MS) {
        log__fatal(l, "log made no progress for 10 s with proposals pending",
                   RAFT_IOERR);
    }
}

static void log__watch(struct log *l)
{
    if (!uv_is_active((uv_handle_t *)&l->watchdog)) {
        l->progress_ms = uv_now(l->loop);
        l->progress_index = raft_last_applied(&l->raft);
        uv_timer_start(&l->watchdog, log__watchdog_cb, LOG__WATCHDOG_MS,
                       LOG__WATCHDOG_MS);
    }
}

static void log__note(struct log *l, const char *level, const char *message,
                      const char *detail)
{
    if (l->cfg.note != NULL) {
        l->cfg.note(l->cfg.arg, level, message, detail);
    } else {
        fprintf(stderr, "berth: %s%s%s\n", message, detail ? ": " : "",
                detail ? detail : "");
    }
}

static void log__transport_note(void *arg, const char *level,
                                const char *message, const char *detail)
{
    log__note(arg, level, message, detail);
}

/* The members file: the peer addresses of the other members, written
 * whenever they change, for a host whose log is later damaged to find its
 * cluster again (consensus/identity.h). A hint only: failing to write it
 * is noted, not fatal. */
static void log__members_save(struct log *l)
{
    struct identity_rejoin m;
    char text[IDENTITY_REJOIN_TEXT_SIZE], path[4200], tmp[4300];
    char errmsg[ERRMSG_SIZE];
    memset(&m, 0, sizeof m);
    for (unsigned i = 0; i < l->raft.configuration.n; i++) {
        const struct raft_server *srv = &l->raft.configuration.servers[i];
        if (srv->id != l->id && strcmp(srv->address, LOG__LOCAL) != 0 &&
            m.n < IDENTITY_MEMBERS_MAX &&
            strlen(srv->address) <= IDENTITY_PEER_MAX) {
            snprintf(m.members[m.n++], sizeof m.members[0], "%s", srv->address);
        }
    }
    int n = identity_rejoin_format(&m, text, sizeof text);
    if (n < 0 || (size_t)n >= sizeof text ||
        strcmp(text, l->members_text) == 0) {
        return;
    }
    snprintf(path, sizeof path, "%s/%s", l->dir, LOG__MEMBERS);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (file_write_synced(tmp, text, (size_t)n, errmsg) != 0 ||
        file_rename_synced(tmp, path, errmsg) != 0) {
        log__note(l, "warn", "cannot keep the cluster's members", errmsg);
        return;
    }
    memcpy(l->members_text, text, (size_t)n + 1);
}

/* --- Leading. --- */

static void log__roles_start(struct log *l);

static void log__compact_entry(struct log *l);
static void log__compact_cb(struct raft_barrier *req, int status);

static void log__barrier_cb(struct raft_barrier *req, int status)
{
    struct log *l = req->data;
    l->barrier_pending = false;
    if (status != 0) {
        if (status != RAFT_SHUTDOWN && status != RAFT_CANCELED &&
            status != RAFT_LEADERSHIPLOST && status != RAFT_NOTLEADER) {
            log__fatal(l, "log barrier failed", status);
        }
        return;
    }
    if (l->closing || raft_state(&l->raft) != RAFT_LEADER ||
        l->raft.current_term != l->lead_term) {
        return;
    }
    l->leading = true;
    log__roles_start(l);
    l->cfg.lead(l->cfg.arg, true);
}

/* Commit the store once for every entry applied since the last call, then
 * answer their proposals: on a host alone, nothing is released before the
 * store holds it (fsm_alone). */
static void log__answer_applied(struct log *l)
{
    if (l->after_head == NULL) {
        return;
    }
    uv_idle_stop(&l->kick);
    int rv = fsm_flush(l->cfg.fsm) == 0 ? 0 : BERTH_EIO;
    struct log__req *r;
    while ((r = l->after_head) != NULL) {
        l->after_head = r->next;
        log_done_cb cb = r->cb;
        void *arg = r->arg;
        int result = r->result;
        mem_free(r);
        cb(arg, rv, rv == 0 ? result : 0);
    }
    l->after_tail = NULL;
}

static void log__kick_cb(uv_idle_t *i)
{
    (void)i; /* its being active is all: the check below runs at once */
}

/* Runs after every loop iteration's I/O: the moment raft steps down, the
 * host hears of it before anything else can release an effect; when raft
 * has just been elected, a barrier of the new term is proposed, and the
 * host leads once it commits (every earlier entry is then applied here). */
static void log__check_cb(uv_check_t *c)
{
    struct log *l = c->data;
    log__answer_applied(l);
    if (l->closing || l->fatal) {
        return;
    }
    bool leader = raft_state(&l->raft) == RAFT_LEADER;
    if (l->leading && (!leader || l->raft.current_term != l->lead_term)) {
        l->leading = false;
        uv_timer_stop(&l->roles);
        l->cfg.lead(l->cfg.arg, false);
    }
    if (leader && !l->leading && !l->barrier_pending) {
        l->lead_term = l->raft.current_term;
        l->barrier.data = l;
        if (raft_barrier(&l->raft, &l->barrier, log__barrier_cb) == 0) {
            l->barrier_pending = true;
        }
    }
    if (l->compact_wanted) {
        /* Here, not where it was asked for: that was inside raft's apply,
         * which must not append to the log it walks. */
        l->compact_wanted = false;
        log__compact_entry(l);
    }
    if (l->leading && l->cfg.progress != NULL) {
        l->cfg.progress(l->cfg.arg);
    }
    uint64_t conf = l->raft.configuration_uncommitted_index >
                            l->raft.configuration_committed_index
                        ? l->raft.configuration_uncommitted_index
                        : l->raft.configuration_committed_index;
    if (conf != l->members_index && l->peer != NULL) {
        l->members_index = conf;
        log__members_save(l);
    }
    /* raft's own timers wake the loop at least every heartbeat. */
    fsm_tick(l->cfg.fsm, uv_now(l->loop));
}

bool log_leading(const struct log *l)
{
    return l->leading;
}

static const char *log__leader_address(struct log *l);

uint64_t log_leader(const struct log *l)
{
    if (l->leading) {
        return l->id;
    }
    raft_id id;
    const char *address;
    raft_leader((struct raft *)&l->raft, &id, &address);
    return log__leader_address((struct log *)l) != NULL ? id : 0;
}

unsigned log_voters(const struct log *l)
{
    unsigned n = 0;
    for (unsigned i = 0; i < l->raft.configuration.n; i++) {
        n += l->raft.configuration.servers[i].role == RAFT_VOTER;
    }
    return n;
}

unsigned log_held(const struct log *l, uint64_t index)
{
    unsigned n = 0;
    if (!l->leading) {
        return 0;
    }
    for (unsigned i = 0; i < l->raft.configuration.n; i++) {
        const struct raft_server *srv = &l->raft.configuration.servers[i];
        raft_index match;
        if (srv->role == RAFT_SPARE ||
            raft_match_index(&l->raft, srv->id, &match) != 0) {
            continue;
        }
        n += match >= index;
    }
    return n;
}

/* --- Who is in the cluster: identity, members, probes and roles. --- */

static const struct raft_server *log__server(const struct log *l, uint64_t id)
{
    for (unsigned i = 0; i < l->raft.configuration.n; i++) {
        if (l->raft.configuration.servers[i].id == id) {
            return &l->raft.configuration.servers[i];
        }
    }
    return NULL;
}

static struct log__member *log__member(struct log *l, uint64_t id)
{
    for (unsigned i = 0; i < l->n_members; i++) {
        if (l->members[i].id == id) {
            return &l->members[i];
        }
    }
    struct log__member *m =
        mem_realloc(l->members, (l->n_members + 1) * sizeof *m);
    if (m == NULL) {
        return NULL;
    }
    l->members = m;
    m = &l->members[l->n_members++];
    memset(m, 0, sizeof *m);
    m->id = id;
    return m;
}

/* A probe's answer: id, applied index, last index, term, state (u64 each),
 * then the host's info text. */
#define LOG__PROBE_REPLY 40

static void log__probe_reply(struct log *l, struct transport_call *call)
{
    uint8_t head[LOG__PROBE_REPLY];
    size_t n = l->info ? strlen(l->info) : 0;
    uint8_t *b = mem_alloc(sizeof head + n);
    if (b == NULL) {
        transport_reply(call, TRANSPORT_UNAVAILABLE, "out of memory", 13);
        return;
    }
    put_le64(b, l->id);
    put_le64(b + 8, raft_last_applied(&l->raft));
    put_le64(b + 16, raft_last_index(&l->raft));
    put_le64(b + 24, l->raft.current_term);
    put_le64(b + 32, (uint64_t)raft_state(&l->raft));
    if (n > 0) {
        memcpy(b + LOG__PROBE_REPLY, l->info, n);
    }
    transport_reply(call, TRANSPORT_OK, b, LOG__PROBE_REPLY + n);
    mem_free(b);
}

struct log__probe {
    struct log *log;
    uint64_t id;
    void (*done)(struct log *l, void *arg);
    void *arg;
};

static void log__probe_cb(void *arg, int status, const uint8_t *body,
                          size_t len)
{
    struct log__probe *p = arg;
    struct log *l = p->log;
    if (l != NULL) {
        struct log__member *m = log__member(l, p->id);
        if (m != NULL) {
            m->probing = false;
            m->online = status == TRANSPORT_OK && len >= LOG__PROBE_REPLY &&
                        get_le64(body) == p->id;
            if (m->online) {
                m->applied = get_le64(body + 8);
                char *info = mem_alloc(len - LOG__PROBE_REPLY + 1);
                if (info != NULL) {
                    memcpy(info, body + LOG__PROBE_REPLY,
                           len - LOG__PROBE_REPLY);
                    info[len - LOG__PROBE_REPLY] = '\0';
                    mem_free(m->info);
                    m->info = info;
                }
            }
        }
        if (p->done != NULL) {
            p->done(l, p->arg);
        }
    }
    mem_free(p);
}

/* Probe every other member; done(l, arg) runs after each answer. */
static void log__probe_all(struct log *l,
                           void (*done)(struct log *l, void *arg), void *arg,
                           unsigned *started)
{
    *started = 0;
    for (unsigned i = 0; i < l->raft.configuration.n; i++) {
        const struct raft_server *srv = &l->raft.configuration.servers[i];
        struct log__member *m = log__member(l, srv->id);
        if (srv->id == l->id || m == NULL || (m->probing && done == NULL)) {
            continue;
        }
        struct log__probe *p = mem_alloc(sizeof *p);
        if (p == NULL) {
            continue;
        }
        p->log = l;
        p->id = srv->id;
        p->done = done;
        p->arg = arg;
        if (transport_request(l->peers, srv->address, TRANSPORT_PROBE, NULL, 0,
                              LOG__PROBE_MS, log__probe_cb, p) != 0) {
            mem_free(p);
            m->online = false;
            continue;
        }
        m->probing = true;
        (*started)++;
    }
}

static bool log__online(struct log *l, uint64_t id)
{
    if (id == l->id) {
        return true;
    }
    struct log__member *m = log__member(l, id);
    return m != NULL && m->online;
}

static void log__change_cb(struct raft_change *req, int status)
{
    struct log *l = req->data;
    l->changing = false;
    if (l->change_call != NULL) {
        struct log_call *c = l->change_call;
        l->change_call = NULL;
        if (status == 0) {
            /* The cluster, the new host's id, and the master key every
             * host of the cluster shares (inside the encrypted channel;
             * zeros when this host was given none). */
            uint8_t b[LOG__JOINED_SIZE] = {0};
            memcpy(b, l->cluster, TRANSPORT_CLUSTER_SIZE);
            put_le64(b + TRANSPORT_CLUSTER_SIZE, l->change_id);
            if (l->cfg.master_key != NULL) {
                memcpy(b + TRANSPORT_CLUSTER_SIZE + 8, l->cfg.master_key,
                       LOG_MASTER_KEY_SIZE);
            }
            transport_reply(c->call, TRANSPORT_OK, b, sizeof b);
            sodium_memzero(b, sizeof b);
        } else {
            const char *why = raft_strerror(status);
            transport_reply(c->call, TRANSPORT_UNAVAILABLE, why, strlen(why));
        }
        mem_free(c);
    }
    if (status != 0 && status != RAFT_LEADERSHIPLOST &&
        status != RAFT_SHUTDOWN && status != RAFT_CANCELED) {
        log__note(l, "warn", "cluster membership change failed",
                  raft_strerror(status));
    }
}

static void log__assign(struct log *l, uint64_t id, int role, const char *why)
{
    char d[96];
    l->change.data = l;
    l->change_call = NULL;
    if (raft_assign(&l->raft, &l->change, id, role, log__change_cb) == 0) {
        l->changing = true;
        snprintf(d, sizeof d, "host %llu becomes %s (%s)",
                 (unsigned long long)id, raft_role_name(role), why);
        log__note(l, "info", "cluster role change", d);
    }
}

/* Keep cfg.voters voters that answer, when there are hosts enough: promote
 * a standby (or spare) when a voter is missing, demote a voter that does
 * not answer once another took its place, and let every other answering
 * host replicate as a standby. One change at a time, as raft requires. */
static void log__roles_decide(struct log *l)
{
    const struct raft_configuration *conf = &l->raft.configuration;
    unsigned target = l->cfg.voters ? l->cfg.voters : 3;
    unsigned voters = 0, online_voters = 0;
    uint64_t candidate = 0, offline_voter = 0, spare = 0, extra = 0;
    if (l->changing || !l->leading) {
        return;
    }
    for (unsigned i = 0; i < conf->n; i++) {
        const struct raft_server *srv = &conf->servers[i];
        bool on = log__online(l, srv->id);
        if (srv->role == RAFT_VOTER) {
            voters++;
            online_voters += on;
            if (!on) {
                offline_voter = srv->id;
            } else if (srv->id != l->id) {
                extra = srv->id;
            }
        } else if (on && candidate == 0) {
            candidate = srv->id;
        }
        if (srv->role == RAFT_SPARE && on) {
            spare = srv->id;
        }
    }
    if (online_voters < target && candidate != 0) {
        log__assign(l, candidate, RAFT_VOTER, "a voter is missing");
    } else if (voters > target && offline_voter != 0) {
        log__assign(l, offline_voter, RAFT_SPARE, "it does not answer");
    } else if (voters > target && extra != 0) {
        log__assign(l, extra, RAFT_STANDBY, "more voters than wanted");
    } else if (spare != 0) {
        log__assign(l, spare, RAFT_STANDBY, "it answers");
    }
}

static void log__roles_cb(uv_timer_t *t)
{
    struct log *l = t->data;
    unsigned started;
    log__roles_decide(l);
    log__probe_all(l, NULL, NULL, &started);
}

static void log__roles_start(struct log *l)
{
    if (l->raft.configuration.n > 1 || l->peer != NULL) {
        uv_timer_start(&l->roles, log__roles_cb, 0, LOG__ROLES_MS);
    }
}

/* The peer address of the leader this host knows of, or NULL. */
static const char *log__leader_address(struct log *l)
{
    raft_id id;
    const char *address;
    raft_leader(&l->raft, &id, &address);
    if (id == 0 || id == l->id || address == NULL ||
        strcmp(address, LOG__LOCAL) == 0) {
        return NULL;
    }
    return address;
}

/* A host whose log was damaged joins again at the address of its old
 * member (id), which it names as replaced: that member is removed first,
 * and the host, asking again, is added as a new one. Its old copy never
 * counts again: a member that lost entries it acknowledged must not vote
 * or make a quorum as if it held them (docs/design.md, "A damaged
 * log"). */
static void log__replace(struct log *l, struct transport_call *call,
                         uint64_t id, uint64_t replaces, const char *address)
{
    char d[400];
    if (l->changing) {
        transport_reply(call, TRANSPORT_UNAVAILABLE,
                        "another membership change is in progress", 40);
        return;
    }
    l->change.data = l;
    l->change_call = NULL;
    int rv = raft_remove(&l->raft, &l->change, id, log__change_cb);
    if (rv != 0) {
        const char *why = raft_strerror(rv);
        transport_reply(call, TRANSPORT_UNAVAILABLE, why, strlen(why));
        return;
    }
    l->changing = true;
    snprintf(d, sizeof d, "host %llu at %s (it was %llu)",
             (unsigned long long)id, address, (unsigned long long)replaces);
    log__note(l, "warn",
              "a host whose log was damaged joins again: its old member "
              "is removed first",
              d);
    static const char wait[] = "its old member is being removed";
    transport_reply(call, TRANSPORT_UNAVAILABLE, wait, sizeof wait - 1);
}

static void log__serve_join(struct log *l, struct transport_call *call,
                            const uint8_t *body, size_t len)
{
    if (!l->leading) {
        const char *leader = log__leader_address(l);
        if (leader != NULL) {
            transport_reply(call, TRANSPORT_NOT_LEADER, leader, strlen(leader));
        } else {
            transport_reply(call, TRANSPORT_UNAVAILABLE, "no leader yet", 13);
        }
        return;
    }
    /* The body is the new host's peer address; a host that joins again
     * after its log was damaged adds a NUL and the id it had. */
    char address[256];
    const uint8_t *nul = len > 0 ? memchr(body, 0, len) : NULL;
    size_t alen = nul != NULL ? (size_t)(nul - body) : len;
    uint64_t replaces = 0;
    if (nul != NULL) {
        replaces = len == alen + 9 ? get_le64(nul + 1) : 0;
        if (replaces == 0) {
            transport_reply(call, TRANSPORT_BAD_REQUEST, NULL, 0);
            return;
        }
    }
    if (alen == 0 || alen >= sizeof address) {
        transport_reply(call, TRANSPORT_BAD_REQUEST, NULL, 0);
        return;
    }
    memcpy(address, body, alen);
    address[alen] = '\0';
    struct sockaddr_storage ss;
    if (transport_parse_address(address, &ss) != 0) {
        transport_reply(call, TRANSPORT_BAD_REQUEST, "bad address", 11);
        return;
    }
    for (unsigned i = 0; i < l->raft.configuration.n; i++) {
        const struct raft_server *srv = &l->raft.configuration.servers[i];
        if (strcmp(srv->address, address) == 0 && replaces != 0 &&
            srv->id != l->id) {
            log__replace(l, call, srv->id, replaces, address);
            return;
        }
        if (strcmp(srv->address, address) == 0) {
            char why[160];
            int n = snprintf(why, sizeof why,
                             "a host at %s is a member already (id %llu); "
                             "remove it first",
                             address, (unsigned long long)srv->id);
            transport_reply(call, TRANSPORT_REFUSED, why, (size_t)n);
            return;
        }
    }
    if (l->changing) {
        transport_reply(call, TRANSPORT_UNAVAILABLE,
                        "another membership change is in progress", 40);
        return;
    }
    struct log_call *c = mem_alloc(sizeof *c);
    if (c == NULL) {
        transport_reply(call, TRANSPORT_UNAVAILABLE, "out of memory", 13);
        return;
    }
    /* Ids are random, so that an id is never given twice, even after the
     * host that had it was removed; 48 bits print and parse everywhere. */
    uint64_t id = 0;
    while (id <= LOG__FIRST_ID || log__server(l, id) != NULL) {
        uv_random(NULL, NULL, &id, sizeof id, 0, NULL);
        id &= (1ULL << 48) - 1;
    }
    c->call = call;
    l->change.data = l;
    int rv = raft_add(&l->raft, &l->change, id, address, log__change_cb);
    if (rv != 0) {
        const char *why = raft_strerror(rv);
        transport_reply(call, TRANSPORT_UNAVAILABLE, why, strlen(why));
        mem_free(c);
        return;
    }
    l->change_id = id;
    l->changing = true;
    l->change_call = c;
    char d[320];
    snprintf(d, sizeof d, "host %llu at %s", (unsigned long long)id, address);
    log__note(l, "info", "a host joins the cluster", d);
}

static void log__serve(void *arg, struct transport_call *call, unsigned kind,
                       uint64_t sender, const uint8_t *body, size_t len)
{
    struct log *l = arg;
    if (l->closing || l->fatal) {
        transport_reply(call, TRANSPORT_UNAVAILABLE, "closing", 7);
        return;
    }
    switch (kind) {
    case TRANSPORT_PROBE:
        log__probe_reply(l, call);
        return;
    case TRANSPORT_JOIN:
        log__serve_join(l, call, body, len);
        return;
    case TRANSPORT_SHIP_COPY: {
        if (l->cfg.ship_copy == NULL || len != 8) {
            break;
        }
        struct log_call *c = mem_alloc(sizeof *c);
        if (c == NULL) {
            transport_reply(call, TRANSPORT_UNAVAILABLE, "out of memory", 13);
            return;
        }
        c->call = call;
        l->cfg.ship_copy(l->cfg.arg, c, get_le64(body));
        return;
    }
    case TRANSPORT_BEAT:
        /* A heartbeat is only news: the answer says nothing. */
        if (l->cfg.beat != NULL && sender != 0 && len <= LOG_BEAT_MAX) {
            l->cfg.beat(l->cfg.arg, sender, body, len);
        }
        transport_reply(call, TRANSPORT_OK, NULL, 0);
        return;
    case TRANSPORT_FORWARD:
        if (l->cfg.forwarded == NULL) {
            break;
        }
        if (!l->leading) {
            transport_reply(call, TRANSPORT_NOT_LEADER, NULL, 0);
            return;
        }
        struct log_call *c = mem_alloc(sizeof *c);
        if (c == NULL) {
            transport_reply(call, TRANSPORT_UNAVAILABLE, "out of memory", 13);
            return;
        }
        c->call = call;
        l->cfg.forwarded(l->cfg.arg, c, body, len);
        return;
    default:
        break;
    }
    transport_reply(call, TRANSPORT_BAD_REQUEST, NULL, 0);
}

/* --- Forwarding to the leader. --- */

_Static_assert(LOG_FORWARD_MAX == TRANSPORT_MAX_FORWARD,
               "the peer port carries what log_forward may send");

struct log__forward {
    log_forward_cb cb;
    void *arg;
};

static void log__forward_cb(void *arg, int status, const uint8_t *body,
                            size_t len)
{
    struct log__forward *f = arg;
    int rv = status == TRANSPORT_OK           ? 0
             : status == TRANSPORT_NOT_LEADER ? BERTH_ENOTLEADER
             : status == BERTH_ETIMEOUT       ? BERTH_ETIMEOUT
             : status == BERTH_ESHUTDOWN      ? BERTH_ESHUTDOWN
             : status == BERTH_ENOCONNECT     ? BERTH_ENOCONNECT
             : status < 0                     ? BERTH_EIO
                                              : BERTH_EIO;
    f->cb(f->arg, rv, rv == 0 ? body : NULL, rv == 0 ? len : 0);
    mem_free(f);
}

int log_forward(struct log *l, const void *body, size_t len,
                unsigned timeout_ms, log_forward_cb cb, void *arg)
{
    const char *leader = log__leader_address(l);
    if (leader == NULL || l->closing) {
        return BERTH_ENOTLEADER;
    }
    if (len > LOG_FORWARD_MAX) {
        return BERTH_ETOOBIG;
    }
    struct log__forward *f = mem_alloc(sizeof *f);
    if (f == NULL) {
        return BERTH_ENOMEM;
    }
    f->cb = cb;
    f->arg = arg;
    int rv = transport_request(l->peers, leader, TRANSPORT_FORWARD, body, len,
                               timeout_ms, log__forward_cb, f);
    if (rv != 0) {
        mem_free(f);
    }
    return rv;
}

int log_ship_copy(struct log *l, const char *address, uint64_t sid,
                  unsigned timeout_ms, log_forward_cb cb, void *arg)
{
    if (l->closing) {
        return BERTH_ESHUTDOWN;
    }
    struct log__forward *f = mem_alloc(sizeof *f);
    if (f == NULL) {
        return BERTH_ENOMEM;
    }
    uint8_t body[8];
    put_le64(body, sid);
    f->cb = cb;
    f->arg = arg;
    int rv = transport_request(l->peers, address, TRANSPORT_SHIP_COPY, body,
                               sizeof body, timeout_ms, log__forward_cb, f);
    if (rv != 0) {
        mem_free(f);
    }
    return rv;
}

const char *log_member(const struct log *l, unsigned i)
{
    for (unsigned k = 0; k < l->raft.configuration.n; k++) {
        const struct raft_server *srv = &l->raft.configuration.servers[k];
        if (srv->id != l->id && i-- == 0) {
            return srv->address;
        }
    }
    return NULL;
}

void log_forward_reply(struct log_call *call, int status, const void *body,
                       size_t len)
{
    if (status == 0) {
        transport_reply(call->call, TRANSPORT_OK, body, len);
    } else if (status == BERTH_ENOTLEADER) {
        transport_reply(call->call, TRANSPORT_NOT_LEADER, NULL, 0);
    } else {
        const char *why = err_str(status);
        transport_reply(call->call, TRANSPORT_UNAVAILABLE, why, strlen(why));
    }
    mem_free(call);
}

/* --- Describing the cluster. --- */

struct log__describe {
    struct log *log;
    unsigned waiting;
    log_cluster_cb cb;
    void *arg;
};

static void log__describe_finish(struct log__describe *d)
{
    struct log *l = d->log;
    const struct raft_configuration *conf = &l->raft.configuration;
    struct log_host *hosts = mem_calloc(conf->n ? conf->n : 1, sizeof *hosts);
    struct log_cluster c;
    memset(&c, 0, sizeof c);
    raft_id leader;
    const char *leader_address;
    raft_leader(&l->raft, &leader, &leader_address);
    c.self = l->id;
    c.leader = leader;
    c.term = l->raft.current_term;
    c.last_index = raft_last_index(&l->raft);
    memcpy(c.cluster, l->cluster, sizeof c.cluster);
    c.refused = transport_refused(l->peers);
    c.hosts = hosts;
    uint64_t top = raft_last_applied(&l->raft);
    for (unsigned i = 0; hosts != NULL && i < conf->n; i++) {
        const struct log__member *m = log__member(l, conf->servers[i].id);
        if (m != NULL && m->online && m->applied > top) {
            top = m->applied;
        }
    }
    for (unsigned i = 0; hosts != NULL && i < conf->n; i++) {
        const struct raft_server *srv = &conf->servers[i];
        struct log_host *h = &hosts[c.n_hosts++];
        h->id = srv->id;
        h->peer = srv->address;
        h->role = srv->role == RAFT_VOTER     ? "voter"
                  : srv->role == RAFT_STANDBY ? "standby"
                                              : "spare";
        h->leader = srv->id == leader;
        if (srv->id == l->id) {
            h->online = true;
            h->applied = raft_last_applied(&l->raft);
            h->info = l->info;
        } else {
            const struct log__member *m = log__member(l, srv->id);
            h->online = m != NULL && m->online;
            h->applied = m != NULL ? m->applied : 0;
            h->info = m != NULL ? m->info : NULL;
        }
        h->lag = top > h->applied ? top - h->applied : 0;
    }
    d->cb(d->arg, hosts == NULL ? BERTH_ENOMEM : 0, &c);
    mem_free(hosts);
    mem_free(d);
}

static void log__describe_step(struct log *l, void *arg)
{
    struct log__describe *d = arg;
    (void)l;
    if (--d->waiting == 0) {
        log__describe_finish(d);
    }
}

int log_cluster(struct log *l, log_cluster_cb cb, void *arg)
{
    struct log__describe *d = mem_calloc(1, sizeof *d);
    if (d == NULL) {
        return BERTH_ENOMEM;
    }
    d->log = l;
    d->cb = cb;
    d->arg = arg;
    /* One extra count, dropped below, so that answers arriving at once do
     * not finish before every probe is out. */
    d->waiting = 1;
    unsigned started;
    log__probe_all(l, log__describe_step, d, &started);
    d->waiting += started;
    log__describe_step(l, d);
    return 0;
}

bool log_address_valid(const char *address)
{
    struct sockaddr_storage ss;
    return transport_parse_address(address, &ss) == 0;
}

unsigned log_hosts(const struct log *l)
{
    return l->raft.configuration.n;
}

uint64_t log_host_by_peer(const struct log *l, const char *peer)
{
    for (unsigned i = 0; i < l->raft.configuration.n; i++) {
        if (strcmp(l->raft.configuration.servers[i].address, peer) == 0) {
            return l->raft.configuration.servers[i].id;
        }
    }
    return 0;
}

int log_remove(struct log *l, uint64_t id, char *errmsg)
{
    if (!l->leading) {
        err_printf(errmsg, "this host does not lead");
        return BERTH_ENOTLEADER;
    }
    if (log__server(l, id) == NULL) {
        err_printf(errmsg, "no host %llu in the cluster",
                   (unsigned long long)id);
        return BERTH_ENOTFOUND;
    }
    if (l->changing) {
        err_printf(errmsg, "another membership change is in progress");
        return BERTH_EBUSY;
    }
    l->change.data = l;
    l->change_call = NULL;
    int rv = raft_remove(&l->raft, &l->change, id, log__change_cb);
    if (rv != 0) {
        err_printf(errmsg, "%s", raft_strerror(rv));
        return rv == RAFT_NOTLEADER ? BERTH_ENOTLEADER : BERTH_EBUSY;
    }
    l->changing = true;
    return 0;
}

/* --- Opening. --- */

static int log__mkdir(const char *dir, char *errmsg)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        err_printf(errmsg, "cannot create %s: %s", dir, strerror(errno));
        return BERTH_EIO;
    }
    return 0;
}

/* A log whose open failed after raft took it over; see log_open. */
static struct log *log__abandoned;

/* Refuse a log in dir that ends below applied, what the state machine has
 * applied: its next entries would take the numbers of entries already
 * applied. */
static int log__check_end(const char *dir, uint64_t applied, uint64_t last,
                          char *errmsg)
{
    if (last >= applied) {
        return 0;
    }
    err_printf(errmsg,
               "raft log in %s ends at entry %llu, but entries up to "
               "%llu were applied: entries are missing",
               dir, (unsigned long long)last, (unsigned long long)applied);
    return BERTH_ECORRUPT;
}

/* Check the contents of snapshot name in dir, the store's image, whole:
 * libraft checks only its metadata, and a damaged image would be sent to
 * every host that needs a snapshot, to fail there. Mapped, not copied:
 * libraft reads it again right after. */
static int log__check_snapshot(const char *dir, const char *name, char *errmsg)
{
    char path[4300];
    struct stat st;
    uint64_t index;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        err_printf(errmsg, "cannot read raft snapshot %s: %s", path,
                   strerror(e));
        if (fd >= 0) {
            close(fd);
        }
        return e == ENOENT ? BERTH_ECORRUPT : BERTH_EIO;
    }
    void *p = st.st_size > 0 ? mmap(NULL, (size_t)st.st_size, PROT_READ,
                                    MAP_PRIVATE, fd, 0)
                             : MAP_FAILED;
    close(fd);
    if (st.st_size > 0 && p == MAP_FAILED) {
        err_printf(errmsg, "cannot read raft snapshot %s: %s", path,
                   strerror(errno));
        return BERTH_EIO;
    }
    int rv = p == MAP_FAILED ? BERTH_ECORRUPT
                             : store_image_check(p, (size_t)st.st_size, &index);
    if (p != MAP_FAILED) {
        munmap(p, (size_t)st.st_size);
    }
    if (rv != 0) {
        err_printf(errmsg,
                   "raft snapshot %s is damaged (its checksum does "
                   "not match)",
                   path);
    }
    return rv;
}

/* Refuse a log that libraft would load with applied entries missing; let
 * it drop a torn last write that was never applied, and say so when
 * told. */
static int log__check(const char *dir, uint64_t applied, bool say, char *errmsg)
{
    struct segments_report r;
    int rv = segments_check(dir, applied, &r, errmsg);
    if (rv != 0) {
        return rv;
    }
    rv = log__check_end(dir, applied, r.last_index, errmsg);
    if (rv == 0 && r.snapshot_file[0] != '\0') {
        rv = log__check_snapshot(dir, r.snapshot_file, errmsg);
    }
    if (rv != 0) {
        return rv;
    }
    if (r.torn_index != 0 && say) {
        fprintf(stderr,
                "berth: raft segment %s/%s ends in a torn write at "
                "byte %llu (entry %llu, never applied); it is dropped\n",
                dir, r.torn_file, (unsigned long long)r.torn_offset,
                (unsigned long long)r.torn_index);
    }
    return 0;
}

/* The identity file (consensus/identity.h). */
#define LOG__IDENTITY "cluster"

static int log__identity_read(const char *dir, struct identity *who,
                              bool *found, char *errmsg)
{
    char path[4096], text[IDENTITY_TEXT_SIZE];
    snprintf(path, sizeof path, "%s/%s", dir, LOG__IDENTITY);
    *found = false;
    int rv = file_read_text(path, text, sizeof text, errmsg);
    if (rv != 0) {
        return rv == BERTH_ENOTFOUND ? 0 : rv;
    }
    if (identity_parse(text, who) != 0) {
        err_printf(errmsg, "%s is damaged", path);
        return BERTH_ECORRUPT;
    }
    *found = true;
    return 0;
}

static int log__identity_write(const char *dir, const struct identity *who,
                               char *errmsg)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, LOG__IDENTITY);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        err_printf(errmsg, "cannot write %s: %s", tmp, strerror(errno));
        return BERTH_EIO;
    }
    char text[IDENTITY_TEXT_SIZE];
    int n = identity_format(who, text, sizeof text);
    bool ok = write(fd, text, (size_t)n) == n && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        err_printf(errmsg, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return BERTH_EIO;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int log_check_dir(const char *dir, uint64_t applied,
                  struct identity_rejoin *rejoin, char *errmsg)
{
    char path[4200], text[IDENTITY_REJOIN_TEXT_SIZE], ignored[ERRMSG_SIZE];
    struct identity who;
    bool found;
    memset(rejoin, 0, sizeof *rejoin);
    int rv = log__check(dir, applied, false, errmsg);
    if (rv != BERTH_ECORRUPT) {
        return rv;
    }
    /* Who this host was, and who else holds the log, if it can tell. */
    if (log__identity_read(dir, &who, &found, ignored) != 0 || !found ||
        strcmp(who.peer, LOG__LOCAL) == 0) {
        return rv;
    }
    snprintf(path, sizeof path, "%s/%s", dir, LOG__MEMBERS);
    if (file_read_text(path, text, sizeof text, ignored) != 0 ||
        identity_rejoin_parse(text, rejoin) != 0 || rejoin->n == 0) {
        memset(rejoin, 0, sizeof *rejoin);
        return rv;
    }
    rejoin->replaces = who.id;
    snprintf(rejoin->peer, sizeof rejoin->peer, "%s", who.peer);
    return rv;
}

/* Whether raft has ever written in dir: its metadata files exist. */
static bool log__has_state(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/metadata1", dir);
    if (access(path, F_OK) == 0) {
        return true;
    }
    snprintf(path, sizeof path, "%s/metadata2", dir);
    return access(path, F_OK) == 0;
}

/* Joining: ask the host at address, follow the leader it names, and retry
 * while the cluster is busy, until LOG__JOIN_MS has passed. */
struct log__join {
    struct log *log;
    char address[256];
    /* The members to try in turn when the one asked does not answer, and
     * the id this host had (a host joining again; 0: none). */
    const struct identity_rejoin *rejoin;
    unsigned next;
    uint64_t deadline;
    bool done;
    int rv;
    char errmsg[ERRMSG_SIZE];
    struct identity *who;
    uint8_t *master_key; /* LOG_MASTER_KEY_SIZE bytes, from the answer */
    uv_timer_t retry;
};

static void log__join_send(struct log__join *j);

static void log__join_retry_cb(uv_timer_t *t)
{
    log__join_send(t->data);
}

static void log__join_later(struct log__join *j, const char *why)
{
    if (uv_now(j->log->loop) >= j->deadline) {
        j->done = true;
        j->rv = BERTH_ETIMEOUT;
        err_printf(j->errmsg, "cannot join the cluster through %s: %s",
                   j->address, why);
        return;
    }
    if (j->rejoin != NULL && j->rejoin->n > 0) {
        snprintf(j->address, sizeof j->address, "%s",
                 j->rejoin->members[j->next++ % j->rejoin->n]);
    }
    uv_timer_start(&j->retry, log__join_retry_cb, 500, 0);
}

static void log__join_cb(void *arg, int status, const uint8_t *body, size_t len)
{
    struct log__join *j = arg;
    char why[256];
    size_t n = len < sizeof why - 1 ? len : sizeof why - 1;
    if (body != NULL) {
        memcpy(why, body, n);
    }
    why[body != NULL ? n : 0] = '\0';
    if (status == TRANSPORT_OK && len == LOG__JOINED_SIZE) {
        memcpy(j->who->cluster, body, TRANSPORT_CLUSTER_SIZE);
        j->who->id = get_le64(body + TRANSPORT_CLUSTER_SIZE);
        memcpy(j->master_key, body + TRANSPORT_CLUSTER_SIZE + 8,
               LOG_MASTER_KEY_SIZE);
        j->done = true;
        return;
    }
    if (status == BERTH_EREJECTED) {
        j->done = true;
        j->rv = BERTH_EINVAL;
        err_printf(j->errmsg,
                   "the cluster at %s refused this host: it does not have "
                   "the cluster's secret (give the secret `berth cluster "
                   "secret` prints on a member, with --cluster-secret-file "
                   "or BERTH_CLUSTER_SECRET)",
                   j->address);
        return;
    }
    if (status == TRANSPORT_NOT_LEADER && len > 0 && len < sizeof j->address) {
        memcpy(j->address, body, len);
        j->address[len] = '\0';
        log__join_send(j);
        return;
    }
    if (status == TRANSPORT_REFUSED || status == TRANSPORT_BAD_REQUEST ||
        status == TRANSPORT_WRONG_CLUSTER) {
        j->done = true;
        j->rv = BERTH_EINVAL;
        err_printf(j->errmsg, "the cluster at %s refused this host: %s",
                   j->address,
                   status == TRANSPORT_WRONG_CLUSTER ? "another cluster" : why);
        return;
    }
    log__join_later(j, status == TRANSPORT_UNAVAILABLE ? why
                       : status == BERTH_ETIMEOUT      ? "no answer"
                       : status == BERTH_EMALFORMED    ? "not a berth peer port"
                                                       : "cannot connect");
}

static void log__join_send(struct log__join *j)
{
    struct log *l = j->log;
    uint8_t body[IDENTITY_PEER_MAX + 1 + 8];
    size_t len = strlen(l->peer);
    if (len > IDENTITY_PEER_MAX) {
        len = IDENTITY_PEER_MAX; /* refused by the leader as a bad address */
    }
    memcpy(body, l->peer, len);
    if (j->rejoin != NULL) {
        body[len] = 0;
        put_le64(body + len + 1, j->rejoin->replaces);
        len += 9;
    }
    int rv = transport_request(l->peers, j->address, TRANSPORT_JOIN, body, len,
                               5000, log__join_cb, j);
    if (rv != 0) {
        j->done = true;
        j->rv = rv;
        err_printf(j->errmsg, "cannot join through %s: %s", j->address,
                   rv == BERTH_EINVAL ? "not an IP address and port"
                                      : err_str(rv));
    }
}

static int log__join(struct log *l, struct identity *who, uint8_t *master_key,
                     char *errmsg)
{
    struct log__join j;
    memset(&j, 0, sizeof j);
    j.log = l;
    j.who = who;
    j.master_key = master_key;
    j.rejoin = l->cfg.rejoin;
    snprintf(j.address, sizeof j.address, "%s",
             l->cfg.join != NULL ? l->cfg.join : j.rejoin->members[j.next++]);
    j.deadline = uv_now(l->loop) + LOG__JOIN_MS;
    uv_timer_init(l->loop, &j.retry);
    j.retry.data = &j;
    log__join_send(&j);
    /* Nothing else runs on the loop yet: the host starts its servers only
     * once the log is open. */
    while (!j.done) {
        uv_run(l->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&j.retry, NULL);
    uv_run(l->loop, UV_RUN_NOWAIT);
    if (j.rv != 0) {
        err_printf(errmsg, "%s", j.errmsg);
    }
    return j.rv;
}

/* Settle who this host is before raft starts: read the identity file, or
 * make one (a new cluster, or one joined through cfg.join). *bootstrap
 * says whether raft's directory is new and this host starts a cluster;
 * *recover whether a cluster of one must take a new address. */
static int log__identity(struct log *l, bool *bootstrap, bool *recover,
                         char *errmsg)
{
    struct identity who;
    bool found;
    const char *address = l->peer != NULL ? l->peer : LOG__LOCAL;
    memset(&who, 0, sizeof who);
    *bootstrap = *recover = false;
    int rv = log__identity_read(l->dir, &who, &found, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (found) {
        if (l->cfg.join != NULL) {
            log__note(l, "info", "--join is ignored: this host is a member",
                      NULL);
        }
        if (strcmp(who.peer, address) != 0) {
            if (strcmp(who.peer, LOG__LOCAL) != 0) {
                err_printf(errmsg,
                           "this host is a member of a cluster at peer "
                           "address %s; start it with --peer %s (to move "
                           "it, remove it and join again from a new data "
                           "directory)",
                           who.peer, who.peer);
                return BERTH_EINVAL;
            }
            /* A host that was alone takes a peer address: it stays a
             * cluster of one, under its new name. */
            *recover = true;
        }
    } else if (log__has_state(l->dir)) {
        /* A data directory from before clusters: one host, id 1. */
        who.id = LOG__FIRST_ID;
        uv_random(NULL, NULL, who.cluster, sizeof who.cluster, 0, NULL);
        *recover = l->peer != NULL;
        if (l->cfg.join != NULL) {
            err_printf(errmsg, "this data directory holds a log already; a "
                               "host joins a cluster only from a new one");
            return BERTH_EINVAL;
        }
    } else if (l->cfg.join != NULL ||
               (l->cfg.rejoin != NULL && l->cfg.rejoin->n > 0)) {
        if (l->peer == NULL) {
            err_printf(errmsg, "--join needs --peer: the address the "
                               "cluster reaches this host at");
            return BERTH_EINVAL;
        }
        if (l->cfg.rejoin != NULL && strcmp(l->cfg.rejoin->peer, l->peer)) {
            err_printf(errmsg,
                       "this host joins its cluster again at peer address "
                       "%s; start it with --peer %s",
                       l->cfg.rejoin->peer, l->cfg.rejoin->peer);
            return BERTH_EINVAL;
        }
        uint8_t master_key[LOG_MASTER_KEY_SIZE] = {0};
        rv = log__join(l, &who, master_key, errmsg);
        if (rv == 0 && l->cfg.joined != NULL) {
            rv = l->cfg.joined(l->cfg.arg, master_key, errmsg);
        }
        sodium_memzero(master_key, sizeof master_key);
        if (rv != 0) {
            return rv;
        }
    } else {
        who.id = LOG__FIRST_ID;
        uv_random(NULL, NULL, who.cluster, sizeof who.cluster, 0, NULL);
        *bootstrap = true;
    }
    snprintf(who.peer, sizeof who.peer, "%s", address);
    rv = log__identity_write(l->dir, &who, errmsg);
    if (rv != 0) {
        return rv;
    }
    l->id = who.id;
    memcpy(l->cluster, who.cluster, sizeof l->cluster);
    transport_set_cluster(l->peers, l->cluster);
    transport_set_id(l->peers, l->id);
    return 0;
}

static void log__handle_closed(uv_handle_t *h)
{
    (void)h;
}

/* --- libraft's memory. ---
 *
 * libraft allocates through berth's wrapper, so that tests can fail its
 * allocations like berth's own. A peer's message says how long it is, and
 * libraft allocates that much before reading it: one allocation bigger
 * than half the machine's memory is refused here (libraft then drops that
 * connection), so that a claimed length cannot exhaust the host. */
static size_t log__alloc_max;

static bool log__too_big(size_t n)
{
    return n > log__alloc_max;
}

static void *log__heap_malloc(void *data, size_t n)
{
    (void)data;
    return log__too_big(n) ? NULL : mem_alloc(n);
}

static void log__heap_free(void *data, void *p)
{
    (void)data;
    mem_free(p);
}

static void *log__heap_calloc(void *data, size_t n, size_t size)
{
    (void)data;
    return size != 0 && log__too_big(n * size) ? NULL : mem_calloc(n, size);
}

static void *log__heap_realloc(void *data, void *p, size_t n)
{
    (void)data;
    return log__too_big(n) ? NULL : mem_realloc(p, n);
}

static void *log__heap_aligned_alloc(void *data, size_t alignment, size_t n)
{
    void *p = NULL;
    (void)data;
    if (log__too_big(n) || posix_memalign(&p, alignment, n) != 0) {
        return NULL;
    }
    return p;
}

static void log__heap_aligned_free(void *data, size_t alignment, void *p)
{
    (void)data;
    (void)alignment;
    free(p);
}

static struct raft_heap log__heap = {
    .malloc = log__heap_malloc,
    .free = log__heap_free,
    .calloc = log__heap_calloc,
    .realloc = log__heap_realloc,
    .aligned_alloc = log__heap_aligned_alloc,
    .aligned_free = log__heap_aligned_free,
};

static void log__heap_install(void)
{
    if (log__alloc_max != 0) {
        return;
    }
    long pages = sysconf(_SC_PHYS_PAGES);
    long page = sysconf(_SC_PAGESIZE);
    log__alloc_max = pages > 0 && page > 0 ? (size_t)pages * (size_t)page / 2
                                           : (size_t)1 << 32;
    raft_heap_set(&log__heap);
}

int log_open(struct log **out, uv_loop_t *loop, const struct log_config *cfg,
             char *errmsg)
{
    log__heap_install();
    struct raft_configuration conf;
    bool bootstrap, recover;
    int rv;

    struct log *l = mem_calloc(1, sizeof *l);
    if (l == NULL) {
        err_printf(errmsg, "out of memory");
        return BERTH_ENOMEM;
    }
    l->cfg = *cfg;
    l->loop = loop;
    l->dir = mem_strdup(cfg->dir);
    l->peer = cfg->peer != NULL ? mem_strdup(cfg->peer) : NULL;
    l->info = mem_strdup(cfg->info != NULL ? cfg->info : "");
    if (l->dir == NULL || (cfg->peer != NULL && l->peer == NULL) ||
        l->info == NULL) {
        err_printf(errmsg, "out of memory");
        rv = BERTH_ENOMEM;
        goto err_after_alloc;
    }
    rv = log__mkdir(l->dir, errmsg);
    if (rv != 0) {
        goto err_after_alloc;
    }
    rv = log__check(l->dir, cfg->applied_index, true, errmsg);
    if (rv != 0) {
        goto err_after_alloc;
    }
    /* A peer port that cannot be had fails the start before the identity
     * file names it: a new data directory must not stay tied to an address
     * it never served on (a port in use, then another one chosen). */
    if (l->peer != NULL) {
        char why[ERRMSG_SIZE];
        rv = transport_check_listen(l->peer, why);
        if (rv != 0) {
            err_printf(errmsg, "peer port: %s", why);
            goto err_after_alloc;
        }
    }
    rv = transport_init(&l->peers, &l->transport, loop, l->peer, log__serve,
                        log__transport_note, l, errmsg);
    if (rv != 0) {
        goto err_after_alloc;
    }
    if (cfg->cluster_secret != NULL) {
        transport_set_secret(l->peers, cfg->cluster_secret);
    }
    transport_set_plaintext(l->peers, cfg->peer_plaintext);
    rv = log__identity(l, &bootstrap, &recover, errmsg);
    if (rv != 0) {
        goto err_after_transport;
    }

    rv = raft_uv_init(&l->io, loop, l->dir, &l->transport);
    if (rv != 0) {
        err_printf(errmsg, "raft log in %s: %s", l->dir, l->io.errmsg);
        rv = BERTH_EIO;
        goto err_after_transport;
    }

    /* A damaged segment must stop the host with a clear error, never be set
     * aside silently with the entries in it. */
    raft_uv_set_auto_recovery(&l->io, false);

    uv_timer_init(loop, &l->watchdog);
    l->watchdog.data = l;
    uv_timer_init(loop, &l->roles);
    l->roles.data = l;
    uv_check_init(loop, &l->check);
    l->check.data = l;
    uv_idle_init(loop, &l->kick);
    l->kick.data = l;
    const char *address = l->peer != NULL ? l->peer : LOG__LOCAL;
    rv = raft_init(&l->raft, &l->io, fsm_raft_fsm(cfg->fsm), l->id, address);
    if (rv != 0) {
        err_printf(errmsg, "raft init: %s", raft_errmsg(&l->raft));
        rv = BERTH_EIO;
        goto err_after_io;
    }
    l->raft.data = l;
    fsm_attach(cfg->fsm, &l->raft, cfg->snapshot_every);
    /* A host that was cut off and comes back must not depose a healthy
     * leader by starting elections of its own. */
    raft_set_pre_vote(&l->raft, true);
    if (cfg->heartbeat_ms != 0) {
        raft_set_heartbeat_timeout(&l->raft, cfg->heartbeat_ms);
    }
    if (cfg->election_ms != 0) {
        raft_set_election_timeout(&l->raft, cfg->election_ms);
    }

    if (bootstrap || recover) {
        raft_configuration_init(&conf);
        rv = raft_configuration_add(&conf, l->id, address, RAFT_VOTER);
        if (rv != 0) {
            raft_configuration_close(&conf);
            err_printf(errmsg, "raft configuration: %s", raft_strerror(rv));
            rv = BERTH_ENOMEM;
            goto err_after_raft;
        }
        rv = bootstrap ? raft_bootstrap(&l->raft, &conf)
                       : raft_recover(&l->raft, &conf);
        raft_configuration_close(&conf);
        if (rv != 0 && !(bootstrap && rv == RAFT_CANTBOOTSTRAP)) {
            err_printf(errmsg, "raft %s in %s: %s",
                       bootstrap ? "bootstrap" : "recover", l->dir,
                       raft_errmsg(&l->raft));
            rv = BERTH_EIO;
            goto err_after_raft;
        }
    }

    rv = raft_start(&l->raft);
    if (rv != 0 && transport_listen_failed(l->peers)) {
        err_printf(errmsg, "peer port: %s", l->transport.errmsg);
        rv = BERTH_EBUSY;
        goto err_after_raft;
    }
    if (rv != 0) {
        err_printf(errmsg, "raft log in %s cannot be loaded: %s", l->dir,
                   raft_errmsg(&l->raft));
        rv = rv == RAFT_CORRUPT ? BERTH_ECORRUPT : BERTH_EIO;
        goto err_after_raft;
    }
    /* The check above reads what libraft will load; this catches the rest,
     * such as a segment file that is missing altogether. */
    rv = log__check_end(l->dir, cfg->applied_index, raft_last_index(&l->raft),
                        errmsg);
    if (rv != 0) {
        goto err_after_raft;
    }
    uv_check_start(&l->check, log__check_cb);
    uv_unref((uv_handle_t *)&l->check);
    *out = l;
    return 0;

err_after_raft:
    /* raft now owns io and closes it asynchronously, referencing l until it
     * is done; a failed open is followed by process exit, so l is left to
     * the OS rather than freed under raft's feet, and kept reachable so
     * that leak checkers agree. */
    l->closing = true;
    raft_close(&l->raft, NULL);
    log__abandoned = l;
    return rv;
err_after_io:
    raft_uv_close(&l->io);
    uv_close((uv_handle_t *)&l->watchdog, log__handle_closed);
    uv_close((uv_handle_t *)&l->roles, log__handle_closed);
    uv_close((uv_handle_t *)&l->check, log__handle_closed);
    uv_close((uv_handle_t *)&l->kick, log__handle_closed);
    /* libraft never started the transport; the failed open ends the
     * process, so l is kept reachable rather than freed under libuv. */
    l->closing = true;
    log__abandoned = l;
    return rv;
err_after_transport:
    transport_close(l->peers, NULL, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
err_after_alloc:
    mem_free(l->info);
    mem_free(l->peer);
    mem_free(l->dir);
    mem_free(l);
    return rv;
}

static void log__apply_cb(struct raft_apply *req, int status, void *result)
{
    struct log__req *r = req->data;
    struct log *l = r->log;
    l->pending--;
    int rv = 0;
    if (status != 0) {
        if (status == RAFT_SHUTDOWN || status == RAFT_CANCELED) {
            rv = BERTH_ESHUTDOWN;
        } else if ((status == RAFT_LEADERSHIPLOST ||
                    status == RAFT_NOTLEADER) &&
                   log_voters(l) > 1) {
            /* The entry may still commit under the next leader: apply is
             * idempotent, and the proposer must not count on either. */
            rv = BERTH_ENOTLEADER;
        } else {
            /* With one voter, losing leadership can only follow an I/O
             * error (libraft steps down after a failed write), so it is as
             * fatal as the error itself. */
            log__fatal(l, "log write failed", status);
            rv = BERTH_EIO;
        }
    }
    if (rv == 0 && !l->closing && fsm_alone(l->cfg.fsm)) {
        /* Every entry this iteration applies shares one commit of the
         * store, at its end: a commit per entry wrote the store's pages
         * once an entry (about 6 pages). */
        r->result = (int)(intptr_t)result;
        r->next = NULL;
        if (l->after_tail != NULL) {
            l->after_tail->next = r;
        } else {
            l->after_head = r;
            uv_idle_start(&l->kick, log__kick_cb);
        }
        l->after_tail = r;
        return;
    }
    log_done_cb cb = r->cb;
    void *arg = r->arg;
    mem_free(r);
    cb(arg, rv, rv == 0 ? (int)(intptr_t)result : 0);
}

int log_propose(struct log *l, struct buf *entry, log_done_cb cb, void *arg,
                uint64_t *index)
{
    if (l->fatal || l->closing) {
        return BERTH_ESHUTDOWN;
    }
    if (!l->leading) {
        return BERTH_ENOTLEADER;
    }
    struct log__req *r = mem_alloc(sizeof *r);
    if (r == NULL) {
        return BERTH_ENOMEM;
    }
    /* raft wants memory from raft_malloc; copying once keeps buf's
     * allocator private to berth. */
    struct raft_buffer b;
    b.len = fsm_framed_len(entry->len);
    b.base = raft_calloc(1, b.len);
    if (b.base == NULL) {
        mem_free(r);
        return BERTH_ENOMEM;
    }
    fsm_frame(b.base, entry->data, entry->len);
    r->log = l;
    r->cb = cb;
    r->arg = arg;
    r->req.data = r;
    int rv = raft_apply(&l->raft, &r->req, &b, 1, log__apply_cb);
    if (rv != 0) {
        raft_free(b.base);
        mem_free(r);
        if (rv == RAFT_NOTLEADER) {
            if (log_voters(l) <= 1) {
                /* A one-voter cluster that does not lead has failed. */
                log__fatal(l, "log no longer leads", rv);
                return BERTH_EIO;
            }
            return BERTH_ENOTLEADER;
        }
        return rv == RAFT_NOMEM ? BERTH_ENOMEM : BERTH_EIO;
    }
    if (index != NULL) {
        *index = r->req.index;
    }
    buf_free(entry);
    l->pending++;
    log__watch(l);
    return 0;
}

/* Log an empty entry for the compaction under way, if this host leads. */
static void log__compact_entry(struct log *l)
{
    if (l->compact_pending || l->closing || l->fatal ||
        raft_state(&l->raft) != RAFT_LEADER) {
        return;
    }
    l->compact.data = l;
    if (raft_barrier(&l->raft, &l->compact, log__compact_cb) == 0) {
        l->compact_pending = true;
        l->compact_entries++;
    }
}

static void log__compact_cb(struct raft_barrier *req, int status)
{
    struct log *l = req->data;
    l->compact_pending = false;
    /* A snapshot is written in the background, and raft considers taking
     * the next only as an entry applies: so entries go on until both
     * snapshots are taken (a bound keeps a compaction that cannot finish,
     * a snapshot failing, from logging without end). */
    if (status == 0 && fsm_compacting(l->cfg.fsm) && l->compact_entries < 64) {
        l->compact_wanted = true;
    }
}

void log_compact(struct log *l)
{
    if (l->fatal || l->closing) {
        return;
    }
    fsm_compact(l->cfg.fsm);
    /* The snapshots come with applied entries; on a host with nothing
     * more to do there would be none, and what was deleted would stay in
     * the segments (a destroyed ship's seed among it). So the leader logs
     * empty entries, which every host applies. */
    l->compact_entries = 0;
    l->compact_wanted = true;
}

unsigned log_pending(const struct log *l)
{
    return l->pending;
}

uint64_t log_applied_index(const struct log *l)
{
    return raft_last_applied((struct raft *)&l->raft);
}

uint64_t log_id(const struct log *l)
{
    return l->id;
}

/* A heartbeat's answer: nothing to do but let the call go. */
static void log__beat_cb(void *arg, int status, const uint8_t *body, size_t len)
{
    (void)arg;
    (void)status;
    (void)body;
    (void)len;
}

int log_beat(struct log *l, const void *body, size_t len)
{
    if (l->closing || l->fatal) {
        return BERTH_ESHUTDOWN;
    }
    if (len > LOG_BEAT_MAX) {
        return BERTH_ETOOBIG;
    }
    int sent = 0;
    for (unsigned i = 0; i < l->raft.configuration.n; i++) {
        const struct raft_server *srv = &l->raft.configuration.servers[i];
        if (srv->id == l->id) {
            continue;
        }
        /* A beat late by more than a second says nothing a newer one
         * will not. */
        if (transport_request(l->peers, srv->address, TRANSPORT_BEAT, body, len,
                              1000, log__beat_cb, NULL) == 0) {
            sent++;
        }
    }
    return sent;
}

uint64_t log_term(const struct log *l)
{
    return l->raft.current_term;
}

uint64_t log_last_index(const struct log *l)
{
    return raft_last_index((struct raft *)&l->raft);
}

int log_match(const struct log *l, unsigned i, uint64_t *id, uint64_t *match)
{
    const struct raft_configuration *conf = &l->raft.configuration;
    if (i >= conf->n) {
        return BERTH_ENOTFOUND;
    }
    *id = conf->servers[i].id;
    if (!l->leading || raft_state((struct raft *)&l->raft) != RAFT_LEADER) {
        return BERTH_ENOTLEADER;
    }
    if (*id == l->id) {
        *match = raft_last_index((struct raft *)&l->raft);
        return 0;
    }
    raft_index m = 0;
    if (raft_match_index(&l->raft, *id, &m) != 0) {
        return BERTH_ENOTFOUND;
    }
    *match = m;
    return 0;
}

/* --- Handing over and closing. --- */

struct log__handoff {
    struct raft_transfer req;
    struct log *log;
    log_handoff_cb cb;
    void *arg;
};

static void log__handoff_cb(struct raft_transfer *req)
{
    struct log__handoff *h = req->data;
    h->cb(h->arg);
    mem_free(h);
}

int log_handoff(struct log *l, log_handoff_cb cb, void *arg)
{
    if (!l->leading || log_voters(l) < 2) {
        return BERTH_ENOTLEADER;
    }
    /* With no other voter answering, nobody could take over: stop now
     * rather than wait for the transfer to time out. */
    bool other = false;
    for (unsigned i = 0; i < l->raft.configuration.n; i++) {
        const struct raft_server *srv = &l->raft.configuration.servers[i];
        other |= srv->role == RAFT_VOTER && srv->id != l->id &&
                 log__online(l, srv->id);
    }
    if (!other) {
        return BERTH_ENOTLEADER;
    }
    struct log__handoff *h = mem_calloc(1, sizeof *h);
    if (h == NULL) {
        return BERTH_ENOMEM;
    }
    h->log = l;
    h->cb = cb;
    h->arg = arg;
    h->req.data = h;
    /* id 0: libraft picks the voter whose log is most caught up. */
    int rv = raft_transfer(&l->raft, &h->req, 0, log__handoff_cb);
    if (rv != 0) {
        mem_free(h);
        return BERTH_EBUSY;
    }
    return 0;
}

static void log__free(struct log *l)
{
    log_close_cb cb = l->close_cb;
    void *arg = l->close_arg;
    for (unsigned i = 0; i < l->n_members; i++) {
        mem_free(l->members[i].info);
    }
    mem_free(l->members);
    mem_free(l->info);
    mem_free(l->peer);
    mem_free(l->dir);
    mem_free(l);
    if (cb != NULL) {
        cb(arg);
    }
}

static void log__transport_closed(void *arg)
{
    log__free(arg);
}

static void log__last_handle_closed(uv_handle_t *h)
{
    struct log *l = h->data;
    transport_close(l->peers, log__transport_closed, l);
}

static void log__close_cb(struct raft *raft)
{
    struct log *l = raft->data;
    raft_uv_close(&l->io);
    uv_close((uv_handle_t *)&l->roles, log__handle_closed);
    uv_close((uv_handle_t *)&l->check, log__handle_closed);
    uv_close((uv_handle_t *)&l->kick, log__handle_closed);
    /* The watchdog closes last: handles close in order, so by its callback
     * libuv is done with every handle inside l. */
    uv_close((uv_handle_t *)&l->watchdog, log__last_handle_closed);
}

void log_close(struct log *l, log_close_cb cb, void *arg)
{
    log__answer_applied(l);
    l->closing = true;
    l->close_cb = cb;
    l->close_arg = arg;
    uv_timer_stop(&l->watchdog);
    uv_timer_stop(&l->roles);
    if (l->change_call != NULL) {
        transport_reply(l->change_call->call, TRANSPORT_UNAVAILABLE, "closing",
                        7);
        mem_free(l->change_call);
        l->change_call = NULL;
    }
    raft_close(&l->raft, log__close_cb);
}

int log_peer_address(const struct log *l, uint64_t id, char *out, size_t size)
{
    for (unsigned i = 0; i < l->raft.configuration.n; i++) {
        const struct raft_server *srv = &l->raft.configuration.servers[i];
        if (srv->id == id && srv->address != NULL &&
            strlen(srv->address) < size) {
            memcpy(out, srv->address, strlen(srv->address) + 1);
            return 0;
        }
    }
    return BERTH_ENOTFOUND;
}
