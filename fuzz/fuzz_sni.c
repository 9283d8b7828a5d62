/* libFuzzer target for the server_name extension's decoder and the Host
 * label reader (http/hostname.h): arbitrary bytes must decode or fail
 * cleanly, never read past the end, and a name decoded is a C string that
 * fits and whose label, if any, fits too. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/hostname.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[256];
    if (hostname_sni(data, size, name, sizeof name) == 0) {
        size_t n = strlen(name);
        if (n == 0 || n >= sizeof name) {
            abort();
        }
        char label[64];
        enum hostname_kind k =
            hostname_label(name, "example.org", label, sizeof label);
        if (k == HOSTNAME_LABEL &&
            (strlen(label) == 0 || strchr(label, '.') != NULL)) {
            abort();
        }
    }
    return 0;
}
