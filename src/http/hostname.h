/* Which ship a request's Host names, under the front door's domain.
 *
 * With `berth serve --domain example.org`, "ann.example.org" (any case,
 * any port, a trailing dot or none) names the ship ann: the label left of
 * the domain. Only one label: "a.b.example.org" names nothing, and
 * neither does the bare domain. The same rule reads a TLS client's server
 * name (SNI), which has no port. Pure: no I/O, no state. */
#ifndef BERTH_HTTP_HOSTNAME_H
#define BERTH_HTTP_HOSTNAME_H

#include <stddef.h>
#include <stdint.h>

/* What a Host value is, under a domain. */
enum hostname_kind {
    HOSTNAME_OTHER,  /* not under the domain (an address, another name) */
    HOSTNAME_DOMAIN, /* the bare domain */
    HOSTNAME_LABEL,  /* one label under the domain: a ship's name or id */
    HOSTNAME_DEEP,   /* more than one label under the domain: no ship */
};

/* Read host (a Host header's value, or a server name) under domain (no
 * trailing dot). For HOSTNAME_LABEL the label, in lower case, goes into
 * label (size bytes, the caller's); a label that does not fit is
 * HOSTNAME_DEEP. Returns the kind. */
enum hostname_kind hostname_label(const char *host, const char *domain,
                                  char *label, size_t size);

/* Read the host name out of the len bytes at ext, the body of a TLS
 * server_name extension (RFC 6066, 3: a list of 2-byte length, entries of
 * a type byte and a 2-byte length), as a ClientHello carries it: the first
 * entry of type host_name (0) goes into out (size bytes, the caller's),
 * NUL-terminated. Returns 0; BERTH_ENOTFOUND when the list has no host
 * name; BERTH_EMALFORMED when the bytes do not decode, or the name holds a
 * NUL or does not fit. */
int hostname_sni(const uint8_t *ext, size_t len, char *out, size_t size);

#endif
