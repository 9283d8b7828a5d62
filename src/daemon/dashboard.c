/* The dashboard's files, served on the admin listener (daemon/dashboard.h).
 * The files are bytes in the binary, so a host serves the page of its own
 * version with nothing to install or find at run time. */
#include <string.h>

#include "daemon/dashboard.h"
#include "daemon/host.h"

/* Headers of every file: the policy, no sniffing of types, no referrer
 * (a URL may hold a token in its fragment, which browsers never send, but
 * nothing else leaks either), and a check with the host before reuse, so
 * that a new binary's page is seen at once. */
#define DASHBOARD__HEADERS                                                     \
    "Content-Security-Policy: " DASHBOARD_CSP "\r\n"                           \
    "X-Content-Type-Options: nosniff\r\n"                                      \
    "Referrer-Policy: no-referrer\r\n"                                         \
    "Cache-Control: no-cache\r\n"

bool dashboard_path(const char *path)
{
    return strcmp(path, "/dashboard") == 0 ||
           strncmp(path, "/dashboard/", 11) == 0;
}

const struct dashboard_file *dashboard_find(const char *path)
{
    const char *name;
    if (strcmp(path, "/dashboard") == 0 || strcmp(path, "/dashboard/") == 0) {
        name = "index.html";
    } else if (strncmp(path, "/dashboard/", 11) == 0) {
        name = path + 11;
    } else {
        return NULL;
    }
    /* Names are matched whole against the table: nothing is looked up on
     * disk, so no path can reach outside it. */
    for (const struct dashboard_file *f = dashboard_files; f->name != NULL;
         f++) {
        if (strcmp(f->name, name) == 0) {
            return f;
        }
    }
    return NULL;
}

const char *dashboard_content_type(const char *name)
{
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
    };
    const char *dot = strrchr(name, '.');
    if (dot == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(dot, types[i][0]) == 0) {
            return types[i][1];
        }
    }
    return NULL;
}

void dashboard_serve(struct http_request *req, const char *path)
{
    const struct dashboard_file *f = dashboard_find(path);
    const char *type = f != NULL ? dashboard_content_type(f->name) : NULL;
    if (f == NULL || type == NULL) {
        host_reply_error(req, 404, "not_found", "no file %.200s", path);
        return;
    }
    if (strcmp(req->method, "GET") != 0) {
        host_reply_error(req, 405, "method_not_allowed",
                         "%.16s is not allowed on %.200s", req->method, path);
        return;
    }
    http_reply(req, 200, type, f->data, f->len, DASHBOARD__HEADERS);
}
