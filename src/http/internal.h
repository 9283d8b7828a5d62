/* The request parser of the HTTP server, apart from any socket so that it
 * can be fuzzed and tested on bytes alone. */
#ifndef BERTH_HTTP_INTERNAL_H
#define BERTH_HTTP_INTERNAL_H

#include <llhttp.h>
#include <stdbool.h>

#include "http/http.h"

/* Where a scan of the raw bytes of a request's header block stands. llhttp
 * 8 folds obs-fold lines (a header line that begins with a space or a tab,
 * RFC 9112 5.2) into the value before it, with no flag to refuse them, so
 * the parser looks at the bytes itself before llhttp does. */
enum http_scan {
    HTTP_SCAN_START,  /* no byte of the request yet, or only empty lines */
    HTTP_SCAN_LINE,   /* inside the request line or a header line */
    HTTP_SCAN_BOL,    /* at the start of a header line */
    HTTP_SCAN_END_CR, /* a CR at the start of a line: the blank line */
    HTTP_SCAN_DONE,   /* the header block has ended */
};

struct http_parser {
    llhttp_t llhttp;
    llhttp_settings_t settings;
    struct buf in; /* bytes received and not yet parsed */
    size_t max_body;
    size_t max_header;
    struct http_request *req; /* the request being parsed */
    size_t header_bytes;
    struct buf target, field, value;
    bool in_value;
    int error_status;
    const char *error_why;
    bool keep_alive;
    bool paused_for_continue;
    uint8_t scan; /* enum http_scan */
    bool started; /* a byte of the current request has been parsed */
    /* Called once a request's headers are in and a body follows (see
     * http_server_config); NULL: not called. */
    void (*on_headers)(const struct http_request *req, void *arg);
    void *hook_arg;
};

enum {
    HTTP_PARSE_MORE = 0,     /* everything buffered is consumed */
    HTTP_PARSE_REQUEST,      /* *req is complete; the caller owns it */
    HTTP_PARSE_CONTINUE_100, /* the client waits for "100 Continue" */
    HTTP_PARSE_ERROR,        /* *status and *why say what to answer */
};

/* Initialize a parser for one connection; 0 or BERTH_ENOMEM. */
int http_parser_init(struct http_parser *p, size_t max_body, size_t max_header);

/* Free the parser and any request half parsed. */
void http_parser_free(struct http_parser *p);

/* Parse the bytes in p->in. Returns one of the HTTP_PARSE_* values; on
 * HTTP_PARSE_REQUEST sets *req (freed with http_request_free), and on
 * HTTP_PARSE_ERROR sets *status and *why (a static string). */
int http_parser_feed(struct http_parser *p, struct http_request **req,
                     int *status, const char **why);

/* Return whether some bytes of a request were parsed and the request is
 * not complete yet. */
bool http_parser_started(const struct http_parser *p);

/* Return whether the current request's header block is complete (its body
 * may still be arriving). */
bool http_parser_headers_done(const struct http_parser *p);

/* Free a request and everything it owns. */
void http_request_free(struct http_request *req);

#endif
