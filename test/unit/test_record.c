/* Event records and log entries round-trip, and bad bytes are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "core/gate.h"
#include "core/account.h"
#include "core/record.h"
#include "core/ship.h"
#include "lib/err.h"
#include "lib/mem.h"

static void test_token_round_trip(void **state)
{
    struct buf b;
    struct record_token in = {.op = RECORD_TOKEN_ADD,
                              .scope = 2,
                              .account = 0,
                              .created_ns = 99,
                              .name = "ci",
                              .name_len = 2};
    struct record_token out;
    uint8_t type;
    memset(in.hash, 0x5a, sizeof in.hash);
    buf_init(&b);
    assert_int_equal(record_encode_token(&b, &in), 0);
    assert_int_equal(record_entry_type(b.data, b.len, &type), 0);
    assert_int_equal(type, RECORD_ENTRY_TOKEN);
    assert_int_equal(type, 7);
    assert_int_equal(record_decode_token(b.data, b.len, &out), 0);
    assert_int_equal(out.op, RECORD_TOKEN_ADD);
    assert_int_equal(out.scope, 2);
    assert_int_equal(out.created_ns, 99);
    assert_memory_equal(out.hash, in.hash, sizeof in.hash);
    assert_int_equal(out.name_len, 2);
    assert_memory_equal(out.name, "ci", 2);
    /* Cut short or longer: refused. */
    assert_int_equal(record_decode_token(b.data, b.len - 1, &out),
                     BERTH_EMALFORMED);
    buf_put_u8(&b, 0);
    assert_int_equal(record_decode_token(b.data, b.len, &out),
                     BERTH_EMALFORMED);
    buf_free(&b);

    struct record_token rv = {
        .op = RECORD_TOKEN_REVOKE, .name = "0123456789ab", .name_len = 12};
    buf_init(&b);
    assert_int_equal(record_encode_token(&b, &rv), 0);
    assert_int_equal(record_decode_token(b.data, b.len, &out), 0);
    assert_int_equal(out.op, RECORD_TOKEN_REVOKE);
    assert_int_equal(out.name_len, 12);
    assert_memory_equal(out.name, "0123456789ab", 12);
    b.data[2] = 9; /* no such op */
    assert_int_equal(record_decode_token(b.data, b.len, &out),
                     BERTH_EMALFORMED);
    buf_free(&b);
    struct record_token bad = {.op = 3};
    buf_init(&b);
    assert_int_equal(record_encode_token(&b, &bad), BERTH_EINVAL);
    buf_free(&b);
}

static void test_event_round_trip(void **state)
{
    struct record_event in = {
        .sid = 7, .number = 42, .time_ns = 123, .kind = 1};
    memset(in.entropy, 0xab, sizeof in.entropy);
    memset(in.prev_hash, 0xcd, sizeof in.prev_hash);
    in.payload = (const uint8_t *)"hello";
    in.payload_len = 5;
    struct buf b;
    buf_init(&b);
    assert_int_equal(record_encode_event(&b, &in, NULL, NULL, NULL), 0);
    struct record_event out;
    assert_int_equal(record_decode_event(b.data, b.len, &out), 0);
    assert_int_equal(out.sid, 7);
    assert_int_equal(out.number, 42);
    assert_int_equal(out.time_ns, 123);
    assert_memory_equal(out.entropy, in.entropy, sizeof in.entropy);
    assert_memory_equal(out.prev_hash, in.prev_hash, sizeof in.prev_hash);
    assert_int_equal(out.payload_len, 5);
    assert_memory_equal(out.payload, "hello", 5);
    assert_false(out.sealed);
    /* Unsealed, the payload is the record's rest: a cut short of the
     * inner part's fixed fields is refused (the hash chain catches the
     * others; a sealed record's tag catches every one). */
    for (size_t n = 0; n < RECORD_HEAD_SIZE + 4 + 8 + 32; n++) {
        assert_int_equal(record_decode_event(b.data, n, &out),
                         BERTH_EMALFORMED);
    }
    buf_free(&b);
}

static const uint8_t test_master[SEAL_KEY_SIZE] = {42};

/* A sealed record shows its identity, hides its event, and opens only as
 * it was written, for its ship, under the key that sealed it. */
static void test_event_sealed(void **state)
{
    struct seal_keys keys, other;
    seal_keys_init(&keys, test_master, true);
    uint8_t master2[SEAL_KEY_SIZE] = {43};
    seal_keys_init(&other, master2, true);
    uint8_t nonce[SEAL_NONCE_SIZE] = {1};
    static const char value[] = "a distinctive value 0123456789";
    struct record_event in = {.sid = 7,
                              .number = 42,
                              .time_ns = 123,
                              .kind = 1,
                              .alarm_ns = 99,
                              .payload = (const uint8_t *)value,
                              .payload_len = sizeof value};
    memset(in.entropy, 0xab, sizeof in.entropy);
    memset(in.prev_hash, 0xcd, sizeof in.prev_hash);
    struct buf b, plain;
    buf_init(&b);
    buf_init(&plain);
    assert_int_equal(record_encode_event(&b, &in, &keys, NULL, nonce), 0);
    assert_int_equal(b.len, RECORD_HEADER_SIZE + sizeof value);
    assert_null(memmem(b.data, b.len, value, 8));
    assert_null(memmem(b.data, b.len, in.entropy, 8));

    struct record_event out;
    assert_int_equal(record_decode_event(b.data, b.len, &out), 0);
    assert_true(out.sealed);
    assert_int_equal(out.sid, 7);
    assert_int_equal(out.number, 42);
    assert_int_equal(out.kind, 1);
    assert_int_equal(out.alarm_ns, 99);
    assert_memory_equal(out.prev_hash, in.prev_hash, sizeof in.prev_hash);
    assert_null(out.payload);

    assert_int_equal(
        record_open_event(b.data, b.len, &keys, NULL, &plain, &out), 0);
    assert_false(out.sealed);
    assert_int_equal(out.time_ns, 123);
    assert_memory_equal(out.entropy, in.entropy, sizeof in.entropy);
    assert_int_equal(out.payload_len, sizeof value);
    assert_memory_equal(out.payload, value, sizeof value);

    /* Another master key, or none, does not open it. */
    assert_int_equal(
        record_open_event(b.data, b.len, &other, NULL, &plain, &out),
        BERTH_ECORRUPT);
    assert_int_equal(record_open_event(b.data, b.len, NULL, NULL, &plain, &out),
                     BERTH_ECORRUPT);
    /* Any changed byte, in the readable head (another ship, number, kind,
     * link or alarm) or in the seal, makes it fail to decode or open. */
    for (size_t i = 0; i < b.len; i++) {
        b.data[i] ^= 0x10;
        int rv = record_open_event(b.data, b.len, &keys, NULL, &plain, &out);
        assert_true(rv == BERTH_ECORRUPT || rv == BERTH_EMALFORMED);
        b.data[i] ^= 0x10;
    }
    for (size_t n = 0; n < b.len; n++) {
        assert_int_not_equal(
            record_open_event(b.data, n, &keys, NULL, &plain, &out), 0);
    }
    buf_free(&plain);
    buf_free(&b);
}

/* A snapshot's seal opens only for its ship, number and epoch. */
static void test_snapshot_sealed(void **state)
{
    struct seal_keys keys;
    seal_keys_init(&keys, test_master, true);
    uint8_t nonce[SEAL_NONCE_SIZE] = {2};
    static const char st[] = "the program's whole state";
    struct record_snapshot in = {
        .sid = 3, .number = 10, .data = (const uint8_t *)st, .len = sizeof st};
    memset(in.epoch, 5, sizeof in.epoch);
    struct buf e, out;
    buf_init(&e);
    buf_init(&out);
    assert_int_equal(record_encode_snapshot(&e, &in, &keys, NULL, nonce), 0);
    assert_null(memmem(e.data, e.len, st, 8));
    struct record_snapshot d;
    assert_int_equal(record_decode_snapshot(e.data, e.len, &d), 0);
    assert_true(d.sealed);
    assert_int_equal(
        record_open_snapshot(&out, &keys, NULL, 3, 10, in.epoch, d.data, d.len),
        0);
    assert_int_equal(out.len, sizeof st);
    assert_memory_equal(out.data, st, sizeof st);
    out.len = 0;
    uint8_t epoch2[RECORD_HASH_SIZE] = {6};
    assert_int_equal(
        record_open_snapshot(&out, &keys, NULL, 4, 10, in.epoch, d.data, d.len),
        BERTH_ECORRUPT);
    assert_int_equal(
        record_open_snapshot(&out, &keys, NULL, 3, 11, in.epoch, d.data, d.len),
        BERTH_ECORRUPT);
    assert_int_equal(
        record_open_snapshot(&out, &keys, NULL, 3, 10, epoch2, d.data, d.len),
        BERTH_ECORRUPT);
    buf_free(&out);
    buf_free(&e);
}

/* A batch's key is sealed in its entry; each ship's stored secret opens to
 * its own key pair, and to no other ship's. */
static void test_ship_batch_sealed(void **state)
{
    struct seal_keys keys;
    seal_keys_init(&keys, test_master, true);
    uint8_t nonce[SEAL_NONCE_SIZE] = {3};
    uint8_t batch_key[32], pk[2 * 32], sk[64], seed[32];
    memset(batch_key, 0x5a, sizeof batch_key);
    for (uint32_t i = 0; i < 2; i++) {
        record_ship_seed(batch_key, 1 + i, seed);
        crypto_sign_seed_keypair(pk + 32 * i, sk, seed);
    }
    struct record_ship_batch in = {.program = "/bin/kv",
                                   .program_len = 7,
                                   .first = 1,
                                   .count = 2,
                                   .public_keys = pk};
    memcpy(in.key, batch_key, sizeof batch_key);
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_ship_batch(&e, &in, &keys, nonce), 0);
    assert_null(memmem(e.data, e.len, batch_key, 8));
    struct record_ship_batch out;
    assert_int_equal(record_decode_ship_batch(e.data, e.len, &out), 0);
    assert_true(out.flags & RECORD_BATCH_SEALED);
    assert_int_equal(out.key_seal_len, SEAL_OVERHEAD + 32);
    uint8_t secret[2][RECORD_SECRET_MAX];
    size_t len[2];
    for (uint32_t i = 0; i < 2; i++) {
        len[i] = record_ship_batch_secret(&out, i, secret[i]);
        assert_int_equal(len[i], RECORD_SECRET_MAX);
        assert_int_equal(
            record_ship_secret(&keys, secret[i], len[i], pk + 32 * i, sk), 0);
        record_ship_seed(batch_key, 1 + i, seed);
        assert_memory_equal(sk, seed, 32);
        assert_memory_equal(sk + 32, pk + 32 * i, 32);
    }
    /* Ship 0's secret under ship 1's public key, or without keys. */
    assert_int_equal(record_ship_secret(&keys, secret[0], len[0], pk + 32, sk),
                     BERTH_ECORRUPT);
    assert_int_equal(record_ship_secret(NULL, secret[0], len[0], pk, sk),
                     BERTH_ECORRUPT);
    secret[0][10] ^= 1;
    assert_int_equal(record_ship_secret(&keys, secret[0], len[0], pk, sk),
                     BERTH_ECORRUPT);
    buf_free(&e);
}

/* Ships with seeds of their own: each ship's secret is its alone, its own
 * key comes from it, and what is sealed under one ship's own key opens
 * neither without it nor under another's (crypto-shredding). */
static void test_ship_seeds(void **state)
{
    struct seal_keys keys;
    seal_keys_init(&keys, test_master, true);
    uint8_t nonce[SEAL_NONCE_SIZE] = {4};
    uint8_t seeds[3 * 32], pk[3 * 32], sk[64];
    for (uint32_t i = 0; i < 3; i++) {
        memset(seeds + 32 * i, 0x11 * (int)(i + 1), 32);
        crypto_sign_seed_keypair(pk + 32 * i, sk, seeds + 32 * i);
    }
    struct record_ship_batch in = {.program = "/bin/kv",
                                   .program_len = 7,
                                   .first = 1,
                                   .count = 3,
                                   .public_keys = pk,
                                   .seeds = seeds};
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_ship_batch(&e, &in, &keys, nonce), 0);
    uint8_t type = 0;
    assert_int_equal(record_entry_type(e.data, e.len, &type), 0);
    assert_int_equal(type, RECORD_ENTRY_SHIP_SEEDS);
    for (uint32_t i = 0; i < 3; i++) {
        assert_null(memmem(e.data, e.len, seeds + 32 * i, 8));
    }
    struct record_ship_batch out;
    assert_int_equal(record_decode_ship_batch(e.data, e.len, &out), 0);
    assert_non_null(out.seed_seals);
    assert_int_equal(out.seed_seal_len, SEAL_OVERHEAD + 32);
    uint8_t secret[3][RECORD_SECRET_MAX], own[3][SEAL_OWN_KEY_SIZE];
    size_t len[3];
    for (uint32_t i = 0; i < 3; i++) {
        len[i] = record_ship_batch_secret(&out, i, secret[i]);
        assert_int_equal(len[i], RECORD_SECRET_MAX);
        assert_int_equal(
            record_ship_secret(&keys, secret[i], len[i], pk + 32 * i, sk), 0);
        assert_memory_equal(sk, seeds + 32 * i, 32);
        assert_int_equal(
            record_ship_own_key(&keys, secret[i], len[i], pk + 32 * i, own[i]),
            0);
        uint8_t want[SEAL_OWN_KEY_SIZE];
        seal_own_key(seeds + 32 * i, want);
        assert_memory_equal(own[i], want, sizeof want);
    }
    /* Each ship's stored secret differs: no row holds another's. */
    assert_memory_not_equal(secret[0], secret[1], len[0]);
    /* A secret moved to another ship's row does not open there. */
    assert_int_equal(record_ship_secret(&keys, secret[0], len[0], pk + 32, sk),
                     BERTH_ECORRUPT);
    assert_int_equal(
        record_ship_own_key(&keys, secret[0], len[0], pk + 32, own[2]),
        BERTH_ECORRUPT);
    /* A ship from a batch key has no own key. */
    uint8_t old[RECORD_SECRET_MAX] = {1};
    assert_int_equal(record_ship_own_key(&keys, old, sizeof old, pk, own[2]),
                     BERTH_ENOTFOUND);

    /* An event sealed under ship 0's own key. */
    struct record_event ev = {.sid = 1,
                              .number = 1,
                              .kind = 1,
                              .payload = (const uint8_t *)"state",
                              .payload_len = 5};
    struct buf r, plain;
    buf_init(&r);
    buf_init(&plain);
    assert_int_equal(record_encode_event(&r, &ev, &keys, own[0], nonce), 0);
    struct record_event got;
    assert_int_equal(
        record_open_event(r.data, r.len, &keys, own[0], &plain, &got), 0);
    assert_memory_equal(got.payload, "state", 5);
    /* Without the ship's own key (its row destroyed) the data key alone
     * does not open it, nor does another ship's own key. */
    assert_int_equal(
        record_open_event(r.data, r.len, &keys, NULL, &plain, &got),
        BERTH_ECORRUPT);
    assert_int_equal(
        record_open_event(r.data, r.len, &keys, own[1], &plain, &got),
        BERTH_ECORRUPT);
    buf_free(&plain);
    buf_free(&r);

    /* Damage: a seal of another key id in the middle. */
    struct record_ship_batch bad;
    size_t at = e.len - 3 * 32 - 2 * (SEAL_OVERHEAD + 32);
    e.data[at] ^= 1;
    assert_int_equal(record_decode_ship_batch(e.data, e.len, &bad),
                     BERTH_EMALFORMED);
    buf_free(&e);
}

static void test_hash_chains(void **state)
{
    uint8_t h1[RECORD_HASH_SIZE], h2[RECORD_HASH_SIZE];
    record_hash((const uint8_t *)"a", 1, h1);
    record_hash((const uint8_t *)"b", 1, h2);
    assert_memory_not_equal(h1, h2, RECORD_HASH_SIZE);
    record_hash((const uint8_t *)"a", 1, h2);
    assert_memory_equal(h1, h2, RECORD_HASH_SIZE);
}

static void test_events_entry(void **state)
{
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_events_begin(&e), 0);
    assert_int_equal(record_events_add(&e, (const uint8_t *)"one", 3), 0);
    assert_int_equal(record_events_add(&e, (const uint8_t *)"three", 5), 0);
    assert_int_equal(record_events_count(&e), 2);
    uint8_t type;
    assert_int_equal(record_entry_type(e.data, e.len, &type), 0);
    assert_int_equal(type, RECORD_ENTRY_EVENTS);
    size_t off = 0;
    const uint8_t *rec;
    size_t len;
    assert_int_equal(record_events_next(e.data, e.len, &off, &rec, &len), 0);
    assert_int_equal(len, 3);
    assert_int_equal(record_events_next(e.data, e.len, &off, &rec, &len), 0);
    assert_memory_equal(rec, "three", 5);
    assert_int_equal(record_events_next(e.data, e.len, &off, &rec, &len), 1);
    /* A length that runs past the end is malformed. */
    off = 0;
    assert_int_equal(record_events_next(e.data, e.len - 1, &off, &rec, &len),
                     0);
    assert_int_equal(record_events_next(e.data, e.len - 1, &off, &rec, &len),
                     BERTH_EMALFORMED);
    buf_free(&e);
}

static void test_ship_new_round_trip(void **state)
{
    struct record_ship_new in = {
        .id = "abc",
        .name = "ann",
        .program = "/bin/kv",
        .created_ns = 9,
        .idle_timeout_ms = 1000,
    };
    memset(in.public_key, 1, sizeof in.public_key);
    memset(in.secret_key, 2, sizeof in.secret_key);
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_ship_new(&e, &in), 0);
    struct record_ship_new out;
    assert_int_equal(record_decode_ship_new(e.data, e.len, &out), 0);
    assert_int_equal(out.id_len, 3);
    assert_memory_equal(out.name, "ann", 3);
    assert_int_equal(out.program_len, 7);
    assert_int_equal(out.idle_timeout_ms, 1000);
    assert_memory_equal(out.secret_key, in.secret_key, 64);
    for (size_t n = 0; n < e.len; n++) {
        assert_int_equal(record_decode_ship_new(e.data, n, &out),
                         BERTH_EMALFORMED);
    }
    /* Wrong type is refused. */
    uint64_t sid;
    assert_int_equal(record_decode_ship_remove(e.data, e.len, &sid),
                     BERTH_EMALFORMED);
    buf_free(&e);
}

/* A SHIP_BATCH carries the program's arguments and environment only when
 * there are some; an entry without them has the older layout, byte for
 * byte, and lists that do not end in a NUL are refused. */
static void test_ship_batch_lists(void **state)
{
    static const char args[] = "-v\0a b\0";
    static const char env[] = "K=V\0";
    uint8_t pk[2 * 32];
    memset(pk, 7, sizeof pk);
    struct record_ship_batch in = {
        .program = "/bin/kv",
        .program_len = 7,
        .name = "p",
        .name_len = 1,
        .flags = RECORD_BATCH_PREFIX,
        .freeze_timeout_ms = UINT64_MAX,
        .first = 1,
        .count = 2,
        .public_keys = pk,
    };
    struct buf plain, full;
    buf_init(&plain);
    buf_init(&full);
    assert_int_equal(record_encode_ship_batch(&plain, &in, NULL, NULL), 0);
    in.args = args;
    in.args_len = sizeof args - 1;
    in.env = env;
    in.env_len = sizeof env - 1;
    assert_int_equal(record_encode_ship_batch(&full, &in, NULL, NULL), 0);
    /* u32 args_len + args + u32 env_len + env, nothing else. */
    assert_int_equal(full.len, plain.len + 4 + 7 + 4 + 4);

    struct record_ship_batch out;
    assert_int_equal(record_decode_ship_batch(plain.data, plain.len, &out), 0);
    assert_int_equal(out.flags, RECORD_BATCH_PREFIX | RECORD_BATCH_SEALED);
    assert_int_equal(out.args_len, 0);
    assert_int_equal(out.env_len, 0);
    assert_int_equal(out.freeze_timeout_ms, UINT64_MAX);
    assert_int_equal(record_decode_ship_batch(full.data, full.len, &out), 0);
    assert_int_equal(out.flags, RECORD_BATCH_PREFIX | RECORD_BATCH_ARGS |
                                    RECORD_BATCH_SEALED);
    assert_int_equal(out.args_len, 7);
    assert_memory_equal(out.args, args, 7);
    assert_int_equal(out.env_len, 4);
    assert_memory_equal(out.env, env, 4);
    assert_int_equal(out.count, 2);
    assert_memory_equal(out.public_keys, pk, sizeof pk);
    for (size_t n = 0; n < full.len; n++) {
        assert_int_equal(record_decode_ship_batch(full.data, n, &out),
                         BERTH_EMALFORMED);
    }
    /* The env's final NUL made into another byte. */
    size_t env_nul = plain.len - 8 - 36 - sizeof pk + 4 + 7 + 4 + 3;
    assert_int_equal(full.data[env_nul], 0);
    full.data[env_nul] = 'x';
    assert_int_equal(record_decode_ship_batch(full.data, full.len, &out),
                     BERTH_EMALFORMED);
    buf_free(&plain);
    buf_free(&full);
}

/* The ack level is carried only when the caller says so; without it a ship
 * takes the host's default, as ships from before ack levels do. */
static void test_ship_batch_acks(void **state)
{
    uint8_t pk[32];
    memset(pk, 3, sizeof pk);
    struct record_ship_batch in = {
        .program = "/bin/kv",
        .program_len = 7,
        .first = 1,
        .count = 1,
        .public_keys = pk,
    };
    struct buf plain, acked;
    buf_init(&plain);
    buf_init(&acked);
    assert_int_equal(record_encode_ship_batch(&plain, &in, NULL, NULL), 0);
    in.flags = RECORD_BATCH_ACKS;
    in.acks = GATE_ACKS_ALL;
    assert_int_equal(record_encode_ship_batch(&acked, &in, NULL, NULL), 0);
    assert_int_equal(acked.len, plain.len + 1);
    struct record_ship_batch out;
    assert_int_equal(record_decode_ship_batch(plain.data, plain.len, &out), 0);
    assert_int_equal(out.acks, GATE_ACKS_DEFAULT);
    assert_int_equal(record_decode_ship_batch(acked.data, acked.len, &out), 0);
    assert_int_equal(out.acks, GATE_ACKS_ALL);
    /* A level no version writes is malformed. */
    size_t at = acked.len - 8 - 36 - sizeof pk - 1;
    assert_int_equal(acked.data[at], GATE_ACKS_ALL);
    acked.data[at] = 200;
    assert_int_equal(record_decode_ship_batch(acked.data, acked.len, &out),
                     BERTH_EMALFORMED);
    acked.data[at] = 2;
    assert_int_equal(record_decode_ship_batch(acked.data, acked.len, &out), 0);
    assert_int_equal(out.acks, 2);
    buf_free(&plain);
    buf_free(&acked);
}

/* An ACCOUNT entry round-trips; cut short, longer or of an unknown op it
 * does not decode. */
static void test_account_round_trip(void **state)
{
    struct buf b;
    struct record_account in = {.op = ACCOUNT_OP_NEW,
                                .account = 0,
                                .value = 1,
                                .created_ns = 77,
                                .name = "alice",
                                .name_len = 5};
    struct record_account out;
    uint8_t type;
    memset(in.hash, 0x3c, sizeof in.hash);
    buf_init(&b);
    assert_int_equal(record_encode_account(&b, &in), 0);
    assert_int_equal(record_entry_type(b.data, b.len, &type), 0);
    assert_int_equal(type, RECORD_ENTRY_ACCOUNT);
    assert_int_equal(type, 9);
    assert_int_equal(record_decode_account(b.data, b.len, &out), 0);
    assert_int_equal(out.op, ACCOUNT_OP_NEW);
    assert_int_equal(out.value, 1);
    assert_int_equal(out.created_ns, 77);
    assert_memory_equal(out.hash, in.hash, sizeof in.hash);
    assert_int_equal(out.name_len, 5);
    assert_memory_equal(out.name, "alice", 5);
    assert_int_equal(record_decode_account(b.data, b.len - 1, &out),
                     BERTH_EMALFORMED);
    buf_put_u8(&b, 0);
    assert_int_equal(record_decode_account(b.data, b.len, &out),
                     BERTH_EMALFORMED);
    /* The op is the byte after the entry's header. */
    b.len--;
    b.data[2] = 99;
    assert_int_equal(record_decode_account(b.data, b.len, &out),
                     BERTH_EMALFORMED);
    buf_free(&b);
    buf_init(&b);
    in.op = 0;
    assert_int_equal(record_encode_account(&b, &in), BERTH_EINVAL);
    in.op = ACCOUNT_OP_DISABLE;
    in.account = 12;
    in.name_len = 0;
    assert_int_equal(record_encode_account(&b, &in), 0);
    assert_int_equal(record_decode_account(b.data, b.len, &out), 0);
    assert_int_equal(out.op, ACCOUNT_OP_DISABLE);
    assert_int_equal(out.account, 12);
    /* LIMIT carries the limits after the name; other ops do not. */
    buf_free(&b);
    buf_init(&b);
    in.op = ACCOUNT_OP_LIMIT;
    for (int i = 0; i < QUOTA__COUNT; i++) {
        in.limits[i] = i == 0   ? QUOTA_KEEP
                       : i == 1 ? QUOTA_DEFAULT
                                : 100u + (unsigned)i;
    }
    assert_int_equal(record_encode_account(&b, &in), 0);
    assert_int_equal(record_decode_account(b.data, b.len, &out), 0);
    assert_int_equal(out.op, ACCOUNT_OP_LIMIT);
    assert_memory_equal(out.limits, in.limits, sizeof in.limits);
    assert_int_equal(record_decode_account(b.data, b.len - 8, &out),
                     BERTH_EMALFORMED);
    b.data[2] = ACCOUNT_OP_DISABLE; /* the limits are then left over */
    assert_int_equal(record_decode_account(b.data, b.len, &out),
                     BERTH_EMALFORMED);
    b.data[2] = ACCOUNT_OP_LIMIT;
    /* A LIMIT that sets no cap is written as before caps: no caps part. */
    size_t bare = b.len;
    assert_int_equal(record_decode_account(b.data, b.len, &out), 0);
    assert_int_equal(out.caps_which, 0);
    /* One that sets caps carries them after the limits; those not named
     * stay. */
    in.caps_which = RECORD_ACCOUNT_CAPS_MEMORY | RECORD_ACCOUNT_CAPS_PIDS;
    in.caps = (struct caps){64 << 20, 0, 32};
    buf_free(&b);
    buf_init(&b);
    assert_int_equal(record_encode_account(&b, &in), 0);
    assert_int_equal(b.len, bare + 1 + 8 + 4 + 4);
    assert_int_equal(record_decode_account(b.data, b.len, &out), 0);
    assert_int_equal(out.caps_which, in.caps_which);
    assert_int_equal(out.caps.memory_bytes, 64 << 20);
    assert_int_equal(out.caps.pids, 32);
    assert_memory_equal(out.limits, in.limits, sizeof in.limits);
    /* Cut, with no or an unknown cap named: malformed. */
    assert_int_equal(record_decode_account(b.data, b.len - 1, &out),
                     BERTH_EMALFORMED);
    assert_int_equal(record_decode_account(b.data, bare + 1, &out),
                     BERTH_EMALFORMED);
    b.data[bare] = 0;
    assert_int_equal(record_decode_account(b.data, b.len, &out),
                     BERTH_EMALFORMED);
    b.data[bare] = 0x08;
    assert_int_equal(record_decode_account(b.data, b.len, &out),
                     BERTH_EMALFORMED);
    b.data[bare] = RECORD_ACCOUNT_CAPS_ALL;
    assert_int_equal(record_decode_account(b.data, b.len, &out), 0);
    /* Only a LIMIT has a caps part. */
    b.data[2] = ACCOUNT_OP_ENABLE;
    assert_int_equal(record_decode_account(b.data, b.len, &out),
                     BERTH_EMALFORMED);
    in.caps_which = 0x10;
    assert_int_equal(record_encode_account(&b, &in), BERTH_EINVAL);
    /* Another entry type is not an account entry. */
    struct buf t;
    buf_init(&t);
    assert_int_equal(record_encode_ship_remove(&t, 3), 0);
    assert_int_equal(record_decode_account(t.data, t.len, &out),
                     BERTH_EMALFORMED);
    buf_free(&t);
    buf_free(&b);
}

/* A LIMIT entry as hosts wrote it before accounts had caps (its bytes
 * written out here) still decodes, setting no cap, and a LIMIT that sets
 * no cap is encoded to the same bytes. */
static void test_account_limit_before_caps(void **state)
{
    (void)state;
    uint8_t old[2 + 1 + 8 + 1 + 8 + 32 + 2 + 8 * QUOTA__COUNT] = {1, 9, 6, 7};
    size_t off = 2 + 1 + 8 + 1 + 8 + 32 + 2;
    uint64_t limits[QUOTA__COUNT] = {3, QUOTA_DEFAULT, QUOTA_KEEP, 0, 50};
    for (int i = 0; i < QUOTA__COUNT; i++) {
        for (int k = 0; k < 8; k++) {
            old[off + 8 * (size_t)i + (size_t)k] =
                (uint8_t)(limits[i] >> (8 * k));
        }
    }
    struct record_account out;
    assert_int_equal(record_decode_account(old, sizeof old, &out), 0);
    assert_int_equal(out.op, ACCOUNT_OP_LIMIT);
    assert_int_equal(out.account, 7);
    assert_memory_equal(out.limits, limits, sizeof limits);
    assert_int_equal(out.caps_which, 0);
    assert_true(caps_none(&out.caps));
    struct buf b;
    buf_init(&b);
    assert_int_equal(record_encode_account(&b, &out), 0);
    assert_int_equal(b.len, sizeof old);
    assert_memory_equal(b.data, old, sizeof old);
    buf_free(&b);
}

/* A batch of ships carries its account only when it is not the anonymous
 * one, so that entries of anonymous ships are as before. */
static void test_ship_batch_account(void **state)
{
    uint8_t pk[32];
    memset(pk, 4, sizeof pk);
    struct record_ship_batch in = {
        .program = "/bin/kv",
        .program_len = 7,
        .first = 1,
        .count = 1,
        .public_keys = pk,
    };
    struct buf plain, owned;
    buf_init(&plain);
    buf_init(&owned);
    assert_int_equal(record_encode_ship_batch(&plain, &in, NULL, NULL), 0);
    in.account = 0x0102030405060708ULL;
    in.flags = RECORD_BATCH_ACKS;
    in.acks = 1;
    assert_int_equal(record_encode_ship_batch(&owned, &in, NULL, NULL), 0);
    assert_int_equal(owned.len, plain.len + 1 + 8);
    struct record_ship_batch out;
    assert_int_equal(record_decode_ship_batch(plain.data, plain.len, &out), 0);
    assert_int_equal(out.account, 0);
    assert_false(out.flags & RECORD_BATCH_ACCOUNT);
    assert_int_equal(record_decode_ship_batch(owned.data, owned.len, &out), 0);
    assert_true(out.flags & RECORD_BATCH_ACCOUNT);
    assert_true(out.account == 0x0102030405060708ULL);
    assert_int_equal(out.acks, 1);
    assert_int_equal(out.count, 1);
    assert_memory_equal(out.public_keys, pk, sizeof pk);
    /* Cut short: refused. */
    assert_int_equal(record_decode_ship_batch(owned.data, owned.len - 1, &out),
                     BERTH_EMALFORMED);
    buf_free(&plain);
    buf_free(&owned);
}

/* A resize gives back what was put in; a cut, long or unknown-bit entry
 * is refused. */
static void test_ship_resize_round_trip(void **state)
{
    struct record_resize in = {.sid = 42,
                               .which =
                                   RECORD_RESIZE_MEMORY | RECORD_RESIZE_STORAGE,
                               .memory_bytes = 64 << 20,
                               .cpu_millis = 500,
                               .pids = 32,
                               .storage_bytes = UINT64_MAX};
    struct buf b;
    buf_init(&b);
    assert_int_equal(record_encode_ship_resize(&b, &in), 0);
    uint8_t type;
    assert_int_equal(record_entry_type(b.data, b.len, &type), 0);
    assert_int_equal(type, RECORD_ENTRY_SHIP_RESIZE);
    struct record_resize out;
    assert_int_equal(record_decode_ship_resize(b.data, b.len, &out), 0);
    assert_int_equal(out.sid, 42);
    assert_int_equal(out.which, in.which);
    assert_int_equal(out.memory_bytes, in.memory_bytes);
    assert_int_equal(out.cpu_millis, 500);
    assert_int_equal(out.pids, 32);
    assert_true(out.storage_bytes == UINT64_MAX);
    for (size_t n = 0; n < b.len; n++) {
        assert_int_equal(record_decode_ship_resize(b.data, n, &out),
                         BERTH_EMALFORMED);
    }
    assert_int_equal(buf_put_u8(&b, 0), 0);
    assert_int_equal(record_decode_ship_resize(b.data, b.len, &out),
                     BERTH_EMALFORMED);
    b.len--;
    in.which = 0x10;
    buf_free(&b);
    assert_int_equal(record_encode_ship_resize(&b, &in), 0);
    assert_int_equal(record_decode_ship_resize(b.data, b.len, &out),
                     BERTH_EMALFORMED);
    buf_free(&b);
}

static void test_usage_entry(void **state)
{
    struct record_usage_item in[2] = {
        {.sid = 7,
         .cpu_us = 1,
         .memory_peak_bytes = 2,
         .memory_byte_seconds = 3,
         .wakes = 4,
         .requests = 5},
        {.sid = UINT64_MAX, .cpu_us = UINT64_MAX, .wakes = UINT32_MAX},
    };
    struct buf b;
    buf_init(&b);
    assert_int_equal(record_encode_usage(&b, in, 0), BERTH_EINVAL);
    assert_int_equal(record_encode_usage(&b, in, RECORD_USAGE_MAX + 1),
                     BERTH_EINVAL);
    assert_int_equal(record_encode_usage(&b, in, 2), 0);
    uint8_t type;
    assert_int_equal(record_entry_type(b.data, b.len, &type), 0);
    assert_int_equal(type, RECORD_ENTRY_USAGE);
    size_t n;
    assert_int_equal(record_decode_usage(b.data, b.len, &n), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        struct record_usage_item out;
        record_usage_item(b.data, i, &out);
        assert_memory_equal(&out, &in[i], sizeof out);
    }
    /* Cut short, or with a count that does not match: refused. */
    assert_int_equal(record_decode_usage(b.data, b.len - 1, &n),
                     BERTH_EMALFORMED);
    b.data[2] = 3;
    assert_int_equal(record_decode_usage(b.data, b.len, &n), BERTH_EMALFORMED);
    b.data[2] = 0;
    assert_int_equal(record_decode_usage(b.data, b.len, &n), BERTH_EMALFORMED);
    buf_free(&b);
}

static void test_snapshot_and_remove(void **state)
{
    struct record_snapshot in = {
        .sid = 3, .number = 10, .data = (const uint8_t *)"st", .len = 2};
    memset(in.epoch, 5, sizeof in.epoch);
    struct buf e;
    buf_init(&e);
    assert_int_equal(record_encode_snapshot(&e, &in, NULL, NULL, NULL), 0);
    struct record_snapshot out;
    assert_int_equal(record_decode_snapshot(e.data, e.len, &out), 0);
    assert_int_equal(out.sid, 3);
    assert_int_equal(out.number, 10);
    assert_true(out.sealed);
    assert_int_equal(out.len, SEAL_PLAIN_OVERHEAD + 2);
    assert_int_equal(record_decode_snapshot(e.data, 10, &out),
                     BERTH_EMALFORMED);
    buf_free(&e);
    buf_init(&e);
    assert_int_equal(record_encode_ship_remove(&e, 77), 0);
    uint64_t sid;
    assert_int_equal(record_decode_ship_remove(e.data, e.len, &sid), 0);
    assert_int_equal(sid, 77);
    buf_free(&e);
}

static void test_encode_out_of_memory(void **state)
{
    struct record_event in = {.sid = 1, .number = 1};
    struct buf b;
    buf_init(&b);
    mem_fault_countdown(0);
    assert_int_equal(record_encode_event(&b, &in, NULL, NULL, NULL),
                     BERTH_ENOMEM);
    assert_int_equal(record_events_begin(&b), BERTH_ENOMEM);
    mem_fault_countdown(-1);
    buf_free(&b);
}

static void test_ship_states(void **state)
{
    enum ship_state s = SHIP_ASLEEP;
    assert_int_equal(ship_state_set(&s, SHIP_AWAKE), BERTH_EINVAL);
    assert_int_equal(s, SHIP_ASLEEP);
    assert_int_equal(ship_state_set(&s, SHIP_WAKING), 0);
    assert_int_equal(ship_state_set(&s, SHIP_AWAKE), 0);
    assert_int_equal(ship_state_set(&s, SHIP_SLEEPING), 0);
    assert_int_equal(ship_state_set(&s, SHIP_AWAKE), 0);
    assert_int_equal(ship_state_set(&s, SHIP_ASLEEP), 0);
    assert_int_equal(ship_state_set(&s, SHIP_REMOVED), 0);
    assert_int_equal(ship_state_set(&s, SHIP_ASLEEP), BERTH_EINVAL);
    assert_string_equal(ship_state_name(SHIP_SLEEPING), "sleeping");
    assert_true(ship_name_valid("ann-2"));
    assert_false(ship_name_valid("-ann"));
    assert_false(ship_name_valid("Ann"));
    assert_false(ship_name_valid(""));
    assert_false(ship_name_valid("a/b"));
}

static void test_ship_lifetimes(void **state)
{
    uint8_t l = 0;
    const char *names[] = {"root", "linked", "ephemeral", "resetting",
                           "leased"};
    for (uint8_t i = 0; i < 5; i++) {
        assert_int_equal(ship_lifetime_parse(names[i], &l), 0);
        assert_int_equal(l, i + 1);
        assert_string_equal(ship_lifetime_name(l), names[i]);
    }
    /* 0 is a ship the operator made: it has no lifetime's name. */
    assert_null(ship_lifetime_name(0));
    assert_null(ship_lifetime_name(6));
    assert_null(ship_lifetime_name(255));
    assert_int_equal(ship_lifetime_parse("Root", &l), BERTH_EINVAL);
    assert_int_equal(ship_lifetime_parse("", &l), BERTH_EINVAL);
    assert_int_equal(l, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_round_trip),
        cmocka_unit_test(test_ship_lifetimes),
        cmocka_unit_test(test_event_sealed),
        cmocka_unit_test(test_snapshot_sealed),
        cmocka_unit_test(test_ship_batch_sealed),
        cmocka_unit_test(test_ship_seeds),
        cmocka_unit_test(test_hash_chains),
        cmocka_unit_test(test_events_entry),
        cmocka_unit_test(test_ship_new_round_trip),
        cmocka_unit_test(test_ship_batch_lists),
        cmocka_unit_test(test_ship_batch_acks),
        cmocka_unit_test(test_usage_entry),
        cmocka_unit_test(test_ship_resize_round_trip),
        cmocka_unit_test(test_snapshot_and_remove),
        cmocka_unit_test(test_encode_out_of_memory),
        cmocka_unit_test(test_ship_states),
        cmocka_unit_test(test_token_round_trip),
        cmocka_unit_test(test_account_round_trip),
        cmocka_unit_test(test_account_limit_before_caps),
        cmocka_unit_test(test_ship_batch_account),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
