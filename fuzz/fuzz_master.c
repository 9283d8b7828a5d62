/* libFuzzer target for the master key file and the key file: arbitrary
 * bytes are decoded as DATA/master.key is at a host's start, a key sealed
 * under a key file is opened with a fixed wrapping key (a passphrase's
 * Argon2id run would take the whole time), and the bytes are read as a key
 * file. Whatever decodes must point inside the input. */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/master.h"
#include "lib/err.h"

/* A sink the compiler cannot drop, so that touching memory really reads it. */
static volatile uint8_t fuzz_sink;

/* Read every byte of p[0..n). */
static void touch(const uint8_t *p, size_t n)
{
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++) {
        x ^= p[i];
    }
    fuzz_sink = x;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return sodium_init() < 0 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct master_file f;
    char why[ERRMSG_SIZE];
    uint8_t key[MASTER_KEY_SIZE];
    if (master_decode_file(data, size, &f, why) == 0) {
        if (f.header != data || f.key < data || f.key_len > size ||
            f.key + f.key_len != data + size) {
            abort();
        }
        touch(f.header, MASTER_HEADER_SIZE);
        touch(f.key, f.key_len);
        if (f.how == MASTER_KEY_FILE || f.how == MASTER_PASSPHRASE) {
            uint8_t wk[MASTER_KEY_SIZE];
            memset(wk, 0x42, sizeof wk);
            master_unseal(&f, wk, key);
        } else if (f.how != MASTER_PLAIN || f.key_len != MASTER_KEY_SIZE) {
            abort();
        }
    } else if (memchr(why, '\0', sizeof why) == NULL) {
        abort();
    }
    master_parse_key_file(data, size, key);
    return 0;
}
