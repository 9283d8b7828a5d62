/* Forwarding to the leader: any host's doors serve the whole cluster.
 *
 * Only the leader runs ships, so a host that does not lead passes the
 * requests it cannot answer itself to the leader over the peer port
 * (log_forward) and relays the leader's answer to its client. A client
 * need not know who leads. On the leader a forwarded request becomes a
 * detached http_request (http/http.h) and goes through the same handler
 * as one that came in directly; its answer travels back with
 * log_forward_reply(). The request and the answer are encoded by
 * http/forward.h.
 *
 * A forwarded request is never forwarded again: a host that receives one
 * and does not lead (it just lost leadership, or is stopping) says so
 * before it does anything with it. Then, as when the leader cannot be
 * reached or none is known, nothing was done, so the forwarding host
 * waits for a leader and sends it there, for up to host_forward_wait_ms. It
 * answers 503 leader_changed when that runs out, when the leader does not
 * answer in time, or when it stops leading before it answers. Every 503
 * says Retry-After: 1; the client retries through any host. */
#include <string.h>

#include "consensus/log.h"
#include "daemon/host.h"
#include "http/forward.h"
#include "lib/err.h"
#include "lib/mem.h"

/* A forwarded request may take the event timeout on the leader, and a
 * little more for the trip and a wake there. */
#define FORWARD__MARGIN_MS 5000

/* Creating ships has no deadline of its own on the leader: a thousand
 * ships per entry, up to a million. */
#define FORWARD__CREATE_MS (10u * 60 * 1000)

/* A request sent to the leader, waiting for its answer. */
struct forward__pending {
    struct host *host;
    struct http_request *req;
    enum http_forward_server server;
    uint64_t deadline_ms; /* until when a leader that cannot be reached is
                             tried again */
    uint64_t leader;      /* the host it was sent to */
    uint64_t counted;     /* bytes counted as draining while it is out */
};

static void forward__out(struct host *h, struct http_request *req,
                         enum http_forward_server server, uint64_t deadline_ms);
static void forward__park(struct host *h, struct http_request *req,
                          enum http_forward_server server, uint64_t deadline_ms,
                          uint64_t refused_by);

bool host_admin_local(const char *method, const char *path)
{
    (void)method;
    /* What describes this host itself, and what must work with no
     * leader at all. */
    return strcmp(path, "/healthz") == 0 || strcmp(path, "/v1/stats") == 0 ||
           strcmp(path, "/metrics") == 0 || strcmp(path, "/v1/cluster") == 0 ||
           strcmp(path, "/v1/fsck") == 0 ||
           strcmp(path, "/v1/tls/reload") == 0 ||
           strcmp(path, "/v1/cluster/join") == 0;
}

static void forward__leader_changed(struct http_request *req, const char *why)
{
    host_reply_error(req, 503, "leader_changed", "%s; retry", why);
}

/* The leader's answer, or why there is none, on the host that forwarded
 * the request. */
static void forward__answered(void *arg, int status, const uint8_t *body,
                              size_t len)
{
    struct forward__pending *p = arg;
    struct http_request *req = p->req;
    struct host *h = p->host;
    enum http_forward_server server = p->server;
    uint64_t deadline = p->deadline_ms;
    uint64_t leader = p->leader;
    struct http_forward_answer a;
    budget_sub(&h->budget, p->counted, true);
    h->forwards--;
    mem_free(p);
    if ((status == BERTH_ENOCONNECT || status == BERTH_ENOTLEADER) &&
        uv_now(&h->loop) < deadline) {
        /* The leader this host knows is gone, or no longer leads, and did
         * nothing with the request: wait for the next one, as when no
         * leader is known. */
        forward__park(h, req, server, deadline, leader);
        return;
    }
    http_request_drop_body(req);
    if (status == BERTH_ETIMEOUT) {
        forward__leader_changed(req, "the leader did not answer in time");
        return;
    }
    if (status != 0) {
        forward__leader_changed(req, "the leader could not be reached or "
                                     "stopped leading");
        return;
    }
    if (http_forward_decode_answer(body, len, &a) != 0) {
        host_reply_error(req, 502, "bad_gateway",
                         "the leader's answer does not decode");
        return;
    }
    /* The decoder checked both: no NUL, CR or LF but where lines end. */
    char content_type[HTTP_FORWARD_MAX_CONTENT_TYPE + 1];
    char extra[HTTP_FORWARD_MAX_EXTRA + 1];
    memcpy(content_type, a.content_type, a.content_type_len);
    content_type[a.content_type_len] = '\0';
    memcpy(extra, a.extra, a.extra_len);
    extra[a.extra_len] = '\0';
    http_reply(req, a.status, a.content_type_len > 0 ? content_type : NULL,
               a.body, a.body_len, a.extra_len > 0 ? extra : NULL);
}

/* --- Waiting for a leader. ---
 *
 * A host that has just started, or whose leader just went, knows no leader
 * for up to an election timeout. Rather than turn its clients away at once
 * (each would then retry a second later, and some twice), it holds their
 * requests that long, checking every FORWARD__POLL_MS. */
#define FORWARD__POLL_MS 20

/* A host that turned a request away is asked again this soon at the
 * earliest, unless another host is known to lead first: it may lead
 * again, but not at once. */
#define FORWARD__AGAIN_MS 200

struct forward__parked {
    struct http_request *req;
    enum http_forward_server server;
    uint64_t deadline_ms;
    uint64_t refused_by; /* the host that turned it away, or 0 */
    uint64_t again_ms;   /* when refused_by may be asked again */
    struct forward__parked *next;
};

static void forward__park_cb(uv_timer_t *t)
{
    struct host *h = t->data;
    struct forward__parked *list = h->parked;
    h->parked = NULL;
    uint64_t now = uv_now(&h->loop);
    uint64_t leader = log_leader(h->log);
    while (list != NULL) {
        struct forward__parked *p = list;
        list = p->next;
        bool ask = leader != 0 && leader != log_id(h->log) &&
                   (leader != p->refused_by || now >= p->again_ms);
        bool here = h->leading && !h->stopping;
        if (ask || here) {
            struct http_request *req = p->req;
            enum http_forward_server server = p->server;
            uint64_t deadline = p->deadline_ms;
            mem_free(p);
            if (here) {
                /* This host leads now: serve it here. */
                if (server == HTTP_FORWARD_FRONT) {
                    host_front_handle(req, h);
                } else {
                    host_admin_handle(req, h);
                }
            } else {
                forward__out(h, req, server, deadline);
            }
        } else if (now >= p->deadline_ms) {
            forward__leader_changed(p->req, "no host leads the cluster now");
            mem_free(p);
        } else {
            p->next = h->parked;
            h->parked = p;
        }
    }
    if (h->parked == NULL) {
        uv_timer_stop(t);
    }
}

static void forward__park(struct host *h, struct http_request *req,
                          enum http_forward_server server, uint64_t deadline_ms,
                          uint64_t refused_by)
{
    struct forward__parked *p =
        h->forward_stopped ? NULL : mem_alloc(sizeof *p);
    if (p == NULL) {
        forward__leader_changed(req, "no host leads the cluster now");
        return;
    }
    p->req = req;
    p->server = server;
    p->deadline_ms = deadline_ms;
    p->refused_by = refused_by;
    p->again_ms = uv_now(&h->loop) + FORWARD__AGAIN_MS;
    p->next = h->parked;
    h->parked = p;
    if (!uv_is_active((uv_handle_t *)&h->park_timer)) {
        uv_timer_start(&h->park_timer, forward__park_cb, FORWARD__POLL_MS,
                       FORWARD__POLL_MS);
    }
}

void host_forward_stop(struct host *h)
{
    h->forward_stopped = true;
    uv_timer_stop(&h->park_timer);
    while (h->parked != NULL) {
        struct forward__parked *p = h->parked;
        h->parked = p->next;
        host_reply_error(p->req, 503, "unavailable", "host is stopping");
        mem_free(p);
    }
}

void host_forward(struct host *h, struct http_request *req,
                  enum http_forward_server server)
{
    if (http_request_detached(req)) {
        /* It came from another host that took this one for the leader:
         * sending it on could go round in circles. */
        forward__leader_changed(req, "this host no longer leads the cluster");
        return;
    }
    forward__out(h, req, server, uv_now(&h->loop) + host_forward_wait_ms(h));
}

static void forward__out(struct host *h, struct http_request *req,
                         enum http_forward_server server, uint64_t deadline_ms)
{
    uint64_t leader = log_leader(h->log);
    if (leader == 0 || leader == log_id(h->log)) {
        /* None known, or this host, stopping, still leads: wait for the
         * one it hands over to. */
        forward__park(h, req, server, deadline_ms, 0);
        return;
    }
    struct http_forward_request f;
    struct buf msg;
    buf_init(&msg);
    http_forward_view(&f, server, req);
    int rv = http_forward_encode_request(&msg, &f);
    if (rv != 0) {
        buf_free(&msg);
        if (rv == BERTH_EINVAL) {
            host_reply_error(req, 400, "invalid",
                             "the request cannot be passed to the leader");
        } else {
            host_reply_error(req, 503, "unavailable", "out of memory");
        }
        return;
    }
    struct forward__pending *p = mem_alloc(sizeof *p);
    if (p == NULL) {
        buf_free(&msg);
        host_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    p->host = h;
    p->req = req;
    p->server = server;
    p->deadline_ms = deadline_ms;
    p->leader = leader;
    p->counted = msg.len;
    bool create = server == HTTP_FORWARD_ADMIN &&
                  strcmp(req->method, "POST") == 0 &&
                  strncmp(req->target, "/v1/ships", 9) == 0 &&
                  (req->target[9] == '\0' || req->target[9] == '?');
    unsigned timeout = create ? FORWARD__CREATE_MS
                              : h->cfg.event_timeout_ms + FORWARD__MARGIN_MS;
    rv = log_forward(h->log, msg.data, msg.len, timeout, forward__answered, p);
    buf_free(&msg);
    if (rv != 0) {
        mem_free(p);
        if (rv == BERTH_ENOTLEADER) {
            forward__leader_changed(req, "no host leads the cluster now");
        } else if (rv == BERTH_ETOOBIG) {
            host_reply_error(req, 413, "too_big",
                             "a request passed to the leader carries at most "
                             "%u bytes with its headers",
                             LOG_FORWARD_MAX);
        } else {
            host_reply_error(req, 503, "unavailable",
                             "cannot reach the leader: %s", err_str(rv));
        }
        return;
    }
    /* The peer port holds the request's bytes now (a copy); they leave
     * with the answer or the deadline, whatever programs do. The body is
     * kept until the answer: should the leader turn out to be gone before
     * anything was sent, it goes to the next one. */
    budget_add(&h->budget, p->counted, true);
    h->forwards++;
}

/* --- On the leader. --- */

/* Send an answer back to the host that forwarded the request. */
static void forward__send(struct log_call *call, int status,
                          const char *content_type, const void *body,
                          size_t len, const char *extra)
{
    struct buf b;
    buf_init(&b);
    int rv =
        http_forward_encode_answer(&b, status, content_type, extra, body, len);
    if (rv == BERTH_EINVAL || (rv == 0 && b.len > LOG_FORWARD_MAX)) {
        /* Say so rather than leave the client guessing: a program's
         * content type can be anything, and its reply as big as a
         * frame. */
        static const char bad[] =
            "{\"error\":{\"code\":\"bad_gateway\",\"message\":\"the "
            "leader's answer cannot be passed on (too big, or a content type "
            "that is not one)\"}}\n";
        buf_free(&b);
        rv = http_forward_encode_answer(&b, 502, "application/json", NULL, bad,
                                        sizeof bad - 1);
    }
    if (rv != 0) {
        buf_free(&b);
        log_forward_reply(call, rv, NULL, 0);
        return;
    }
    log_forward_reply(call, 0, b.data, b.len);
    buf_free(&b);
}

/* A detached request's answer (http_answer_cb); arg is the call. */
static void forward__answer_cb(void *arg, int status, const char *content_type,
                               const void *body, size_t len,
                               const char *extra_headers)
{
    forward__send(arg, status, content_type, body, len, extra_headers);
}

void host_forwarded(void *arg, struct log_call *call, const uint8_t *body,
                    size_t len)
{
    struct host *h = arg;
    struct http_forward_request f;
    if (!h->leading || h->stopping) {
        log_forward_reply(call, BERTH_ENOTLEADER, NULL, 0);
        return;
    }
    if (http_forward_decode_request(body, len, &f) != 0) {
        static const char bad[] =
            "{\"error\":{\"code\":\"invalid\",\"message\":\"the "
            "forwarded request does not decode\"}}\n";
        forward__send(call, 400, "application/json", bad, sizeof bad - 1, NULL);
        return;
    }
    if (budget_over(&h->budget)) {
        /* The peer port is not held back like a client's connection is:
         * over the buffer budget, a forwarded request is turned away. */
        static const char busy[] =
            "{\"error\":{\"code\":\"busy\",\"message\":\"the leader holds "
            "too many bytes for requests; retry\"}}\n";
        forward__send(call, 503, "application/json", busy, sizeof busy - 1,
                      "Retry-After: 1\r\n");
        return;
    }
    struct http_request *req;
    if (http_request_new_detached(&req, &f, &h->budget, forward__answer_cb,
                                  call) != 0) {
        static const char oom[] =
            "{\"error\":{\"code\":\"unavailable\",\"message\":\"out "
            "of memory\"}}\n";
        forward__send(call, 503, "application/json", oom, sizeof oom - 1,
                      "Retry-After: 1\r\n");
        return;
    }
    if (f.server == HTTP_FORWARD_FRONT) {
        host_front_handle(req, h);
    } else {
        host_admin_handle(req, h);
    }
}
