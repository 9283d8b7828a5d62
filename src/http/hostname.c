#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "http/hostname.h"

enum hostname_kind hostname_label(const char *host, const char *domain,
                                  char *label, size_t size)
{
    size_t n = strlen(host);
    /* An IPv6 literal ("[::1]:8080") is no name. */
    if (n == 0 || host[0] == '[') {
        return HOSTNAME_OTHER;
    }
    /* The port, then a trailing dot (the root's), are not the name. */
    const char *colon = memchr(host, ':', n);
    if (colon != NULL) {
        n = (size_t)(colon - host);
    }
    if (n > 0 && host[n - 1] == '.') {
        n--;
    }
    size_t d = strlen(domain);
    if (d == 0 || n < d || strncasecmp(host + n - d, domain, d) != 0) {
        return HOSTNAME_OTHER;
    }
    if (n == d) {
        return HOSTNAME_DOMAIN;
    }
    /* "xexample.org" is another name, not a label of example.org. */
    if (host[n - d - 1] != '.') {
        return HOSTNAME_OTHER;
    }
    size_t l = n - d - 1;
    if (l == 0 || memchr(host, '.', l) != NULL || l >= size) {
        return HOSTNAME_DEEP;
    }
    for (size_t i = 0; i < l; i++) {
        label[i] = (char)tolower((unsigned char)host[i]);
    }
    label[l] = '\0';
    return HOSTNAME_LABEL;
}
