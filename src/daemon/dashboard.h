/* The dashboard: a web page on the admin listener, its files compiled into
 * the binary (cmake/embed.cmake writes them from web/dashboard/ as a
 * generated C file). The page holds no data: it is served without a token,
 * and every request it makes to /v1/ needs one, as any client's
 * (docs/dashboard.md). */
#ifndef BERTH_DAEMON_DASHBOARD_H
#define BERTH_DAEMON_DASHBOARD_H

#include <stdbool.h>
#include <stddef.h>

#include "http/http.h"

/* One file of the page: its name under web/dashboard/ and its bytes. */
struct dashboard_file {
    const char *name;
    const unsigned char *data;
    size_t len;
};

/* Every file of the page, ended by one whose name is NULL (generated). */
extern const struct dashboard_file dashboard_files[];

/* The Content-Security-Policy every answer of the dashboard carries: its
 * own origin only, and no inline script or style. */
#define DASHBOARD_CSP                                                          \
    "default-src 'none'; script-src 'self'; style-src 'self'; "                \
    "img-src 'self'; connect-src 'self'; base-uri 'none'; "                    \
    "form-action 'none'; frame-ancestors 'none'"

/* Return whether path (no query) is the dashboard's: /dashboard or under
 * /dashboard/. */
bool dashboard_path(const char *path);

/* Return the file path names (/dashboard and /dashboard/ name index.html),
 * or NULL when there is none. */
const struct dashboard_file *dashboard_find(const char *path);

/* Return the Content-Type of a file by its name's extension, or NULL for
 * an extension the dashboard does not serve. */
const char *dashboard_content_type(const char *name);

/* Answer req, a request for a path of the dashboard: the file with its
 * type and security headers, 404 or 405. */
void dashboard_serve(struct http_request *req, const char *path);

#endif
