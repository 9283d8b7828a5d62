#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "http/hostname.h"
#include "lib/err.h"

int hostname_sni(const uint8_t *ext, size_t len, char *out, size_t size)
{
    if (len < 2 || (size_t)(ext[0] << 8 | ext[1]) != len - 2) {
        return BERTH_EMALFORMED;
    }
    size_t i = 2;
    while (i < len) {
        if (len - i < 3) {
            return BERTH_EMALFORMED;
        }
        uint8_t type = ext[i];
        size_t n = (size_t)(ext[i + 1] << 8 | ext[i + 2]);
        i += 3;
        if (n > len - i) {
            return BERTH_EMALFORMED;
        }
        if (type == 0) {
            if (n == 0 || n >= size || memchr(ext + i, '\0', n) != NULL) {
                return BERTH_EMALFORMED;
            }
            memcpy(out, ext + i, n);
            out[n] = '\0';
            return 0;
        }
        i += n;
    }
    return BERTH_ENOTFOUND;
}

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
