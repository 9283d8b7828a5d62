#include <ctype.h>
#include <string.h>

#include "http/internal.h"
#include "lib/err.h"
#include "lib/mem.h"

const char *http_request_header(const struct http_request *req,
                                const char *name)
{
    for (unsigned i = 0; i < req->n_headers; i++) {
        if (strcmp(req->headers[i].name, name) == 0) {
            return req->headers[i].value;
        }
    }
    return NULL;
}

int http_request_set_header(struct http_request *req, const char *name,
                            const char *value)
{
    http_request_remove_header(req, name);
    if (req->n_headers == HTTP_MAX_HEADERS) {
        return BERTH_ENOMEM;
    }
    char *n = mem_strdup(name);
    char *v = mem_strdup(value);
    if (n == NULL || v == NULL) {
        mem_free(n);
        mem_free(v);
        return BERTH_ENOMEM;
    }
    req->headers[req->n_headers].name = n;
    req->headers[req->n_headers].value = v;
    req->n_headers++;
    return 0;
}

void http_request_remove_header(struct http_request *req, const char *name)
{
    unsigned k = 0;
    for (unsigned i = 0; i < req->n_headers; i++) {
        if (strcmp(req->headers[i].name, name) == 0) {
            char *v = req->headers[i].value;
            /* Wiped through a volatile pointer, so that it is not optimized
             * away before the free. */
            for (volatile char *w = v; *w != '\0'; w++) {
                *w = '\0';
            }
            mem_free(v);
            mem_free(req->headers[i].name);
            continue;
        }
        req->headers[k++] = req->headers[i];
    }
    req->n_headers = k;
}

static struct http_parser *http__p(llhttp_t *l)
{
    return l->data;
}

static int http__error(struct http_parser *p, int status, const char *why)
{
    p->error_status = status;
    p->error_why = why;
    return HPE_USER;
}

/* Count request-line and header bytes against the limit. */
static int http__count(struct http_parser *p, size_t n)
{
    p->header_bytes += n;
    if (p->header_bytes > p->max_header) {
        return http__error(p, 431, "request headers too large");
    }
    return 0;
}

static int http__on_message_begin(llhttp_t *l)
{
    struct http_parser *p = http__p(l);
    p->req = mem_calloc(1, sizeof *p->req);
    if (p->req == NULL) {
        return http__error(p, 503, "out of memory");
    }
    buf_init(&p->req->body);
    p->header_bytes = 0;
    p->target.len = 0;
    p->field.len = 0;
    p->value.len = 0;
    p->in_value = false;
    return 0;
}

static int http__on_url(llhttp_t *l, const char *at, size_t n)
{
    struct http_parser *p = http__p(l);
    int rv = http__count(p, n);
    if (rv != 0) {
        return rv;
    }
    return buf_append(&p->target, at, n) ? http__error(p, 503, "out of memory")
                                         : 0;
}

static int http__push_header(struct http_parser *p)
{
    struct http_request *r = p->req;
    if (r->n_headers == HTTP_MAX_HEADERS) {
        return http__error(p, 431, "too many request headers");
    }
    char *name = mem_strndup((const char *)p->field.data, p->field.len);
    char *value = mem_strndup((const char *)p->value.data, p->value.len);
    if (name == NULL || value == NULL) {
        mem_free(name);
        mem_free(value);
        return http__error(p, 503, "out of memory");
    }
    for (char *c = name; *c; c++) {
        *c = (char)tolower((unsigned char)*c);
    }
    r->headers[r->n_headers].name = name;
    r->headers[r->n_headers].value = value;
    r->n_headers++;
    p->field.len = 0;
    p->value.len = 0;
    p->in_value = false;
    return 0;
}

static int http__on_header_field(llhttp_t *l, const char *at, size_t n)
{
    struct http_parser *p = http__p(l);
    int rv = http__count(p, n);
    if (rv != 0) {
        return rv;
    }
    return buf_append(&p->field, at, n) ? http__error(p, 503, "out of memory")
                                        : 0;
}

static int http__on_header_value(llhttp_t *l, const char *at, size_t n)
{
    struct http_parser *p = http__p(l);
    int rv = http__count(p, n);
    if (rv != 0) {
        return rv;
    }
    p->in_value = true;
    return buf_append(&p->value, at, n) ? http__error(p, 503, "out of memory")
                                        : 0;
}

static int http__on_header_value_complete(llhttp_t *l)
{
    return http__push_header(http__p(l));
}

static int http__on_headers_complete(llhttp_t *l)
{
    struct http_parser *p = http__p(l);
    struct http_request *r = p->req;
    r->target = mem_strndup((const char *)p->target.data, p->target.len);
    r->method = mem_strdup(llhttp_method_name(llhttp_get_method(l)));
    if (r->target == NULL || r->method == NULL) {
        return http__error(p, 503, "out of memory");
    }
    if ((l->flags & F_CONTENT_LENGTH) && l->content_length > p->max_body) {
        return http__error(p, 413, "request body too large");
    }
    /* A body of known length gets a buffer of its size, not twice it. */
    if ((l->flags & F_CONTENT_LENGTH) && l->content_length > 0 &&
        buf_reserve_exact(&r->body, (size_t)l->content_length) != 0) {
        return http__error(p, 503, "out of memory");
    }
    /* Whoever serves the request may start on it while its body comes
     * (a ship's wake); a request with no body is whole at once. */
    bool body = ((l->flags & F_CONTENT_LENGTH) && l->content_length > 0) ||
                (l->flags & F_CHUNKED);
    if (body && p->on_headers != NULL) {
        p->on_headers(r, p->hook_arg);
    }
    const char *expect = http_request_header(r, "expect");
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0) {
        p->paused_for_continue = true;
        return HPE_PAUSED;
    }
    return 0;
}

static int http__on_body(llhttp_t *l, const char *at, size_t n)
{
    struct http_parser *p = http__p(l);
    if (p->req->body.len + n > p->max_body) {
        return http__error(p, 413, "request body too large");
    }
    return buf_append(&p->req->body, at, n)
               ? http__error(p, 503, "out of memory")
               : 0;
}

/* Keep a connection's scratch buffers only while they are small: a large
 * header once must not cost memory for the rest of the connection. */
static void http__shrink(struct buf *b)
{
    if (b->cap > 4096) {
        buf_free(b);
    }
}

static int http__on_message_complete(llhttp_t *l)
{
    struct http_parser *p = http__p(l);
    p->keep_alive = llhttp_should_keep_alive(l);
    http__shrink(&p->target);
    http__shrink(&p->field);
    http__shrink(&p->value);
    /* Stop here: the request is served before the next one is parsed. */
    return HPE_PAUSED;
}

int http_parser_init(struct http_parser *p, size_t max_body, size_t max_header)
{
    memset(p, 0, sizeof *p);
    llhttp_settings_init(&p->settings);
    p->settings.on_message_begin = http__on_message_begin;
    p->settings.on_url = http__on_url;
    p->settings.on_header_field = http__on_header_field;
    p->settings.on_header_value = http__on_header_value;
    p->settings.on_header_value_complete = http__on_header_value_complete;
    p->settings.on_headers_complete = http__on_headers_complete;
    p->settings.on_body = http__on_body;
    p->settings.on_message_complete = http__on_message_complete;
    llhttp_init(&p->llhttp, HTTP_REQUEST, &p->settings);
    p->llhttp.data = p;
    p->max_body = max_body;
    p->max_header = max_header;
    buf_init(&p->in);
    buf_init(&p->target);
    buf_init(&p->field);
    buf_init(&p->value);
    return 0;
}

void http_request_free(struct http_request *req)
{
    if (req == NULL) {
        return;
    }
    for (unsigned i = 0; i < req->n_headers; i++) {
        mem_free(req->headers[i].name);
        mem_free(req->headers[i].value);
    }
    mem_free(req->method);
    mem_free(req->target);
    buf_free(&req->body);
    mem_free(req);
}

void http_parser_free(struct http_parser *p)
{
    http_request_free(p->req);
    p->req = NULL;
    buf_free(&p->in);
    buf_free(&p->target);
    buf_free(&p->field);
    buf_free(&p->value);
}

bool http_parser_started(const struct http_parser *p)
{
    return p->started;
}

bool http_parser_headers_done(const struct http_parser *p)
{
    return p->scan == HTTP_SCAN_DONE;
}

/* Scan the header block in the n bytes at in, up to its end, for a line
 * that begins with a space or a tab. Returns 0, or -1 on an obs-fold. Bytes
 * after the header block (the body, the next request) are left to llhttp,
 * which stops at the end of each request: the scan starts over with the
 * next one. */
static int http__scan(struct http_parser *p, const uint8_t *in, size_t n)
{
    for (size_t i = 0; i < n && p->scan != HTTP_SCAN_DONE; i++) {
        uint8_t c = in[i];
        p->started = true;
        switch (p->scan) {
        case HTTP_SCAN_START:
            /* Empty lines before the request line are ignored (RFC 9112
             * 2.2); llhttp does the same. */
            if (c != '\r' && c != '\n') {
                p->scan = HTTP_SCAN_LINE;
            }
            break;
        case HTTP_SCAN_LINE:
            if (c == '\n') {
                p->scan = HTTP_SCAN_BOL;
            }
            break;
        case HTTP_SCAN_BOL:
            if (c == ' ' || c == '\t') {
                return -1;
            }
            p->scan = c == '\r'   ? HTTP_SCAN_END_CR
                      : c == '\n' ? HTTP_SCAN_DONE
                                  : HTTP_SCAN_LINE;
            break;
        case HTTP_SCAN_END_CR:
            /* A CR not followed by LF is llhttp's to refuse. */
            p->scan = c == '\n' ? HTTP_SCAN_DONE : HTTP_SCAN_LINE;
            break;
        default:
            break;
        }
    }
    return 0;
}

int http_parser_feed(struct http_parser *p, struct http_request **req,
                     int *status, const char **why)
{
    if (p->in.len == 0) {
        return HTTP_PARSE_MORE;
    }
    if (http__scan(p, p->in.data, p->in.len) != 0) {
        *status = 400;
        *why = "obs-folded header line (a line that begins with a space or "
               "a tab)";
        p->in.len = 0;
        return HTTP_PARSE_ERROR;
    }
    const char *data = (const char *)p->in.data;
    llhttp_errno_t e = llhttp_execute(&p->llhttp, data, p->in.len);
    size_t used = p->in.len;
    if (e == HPE_PAUSED) {
        used = (size_t)(llhttp_get_error_pos(&p->llhttp) - data);
        llhttp_resume(&p->llhttp);
    }
    memmove(p->in.data, p->in.data + used, p->in.len - used);
    p->in.len -= used;
    if (e == HPE_OK) {
        return HTTP_PARSE_MORE;
    }
    if (e == HPE_PAUSED) {
        if (p->paused_for_continue) {
            p->paused_for_continue = false;
            return HTTP_PARSE_CONTINUE_100;
        }
        *req = p->req;
        p->req = NULL;
        /* What is left in p->in is the next request's, and unscanned. */
        p->scan = HTTP_SCAN_START;
        p->started = false;
        return HTTP_PARSE_REQUEST;
    }
    *status = p->error_status ? p->error_status : 400;
    *why = p->error_why ? p->error_why : "malformed request";
    p->in.len = 0;
    return HTTP_PARSE_ERROR;
}
