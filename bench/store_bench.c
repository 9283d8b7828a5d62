/* The measurement behind the store's engine: SQLite (berth's store, through
 * the real apply path) against LMDB doing the same work, in one run.
 *
 *   apply   batches of K 100-byte events spread over S ships, one
 *           transaction per batch, each event also updating its ship's
 *           record; each engine with the durability berth's design needs
 *           (SQLite WAL + synchronous=NORMAL, LMDB MDB_NOSYNC: neither syncs
 *           per commit, because the raft log is the durable copy)
 *   wake    read one ship's record and its last 100 events, and (SQLite
 *           alone) one account's caps, which a wake reads too while some
 *           account has caps
 *   ships   disk bytes per registered ship with 100,000 fresh ships, and the
 *           time to open the store and count them
 *
 * Floor: write() + fdatasync() of each batch's bytes on the same disk.
 *
 * usage: store_bench DIR */
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/record.h"
#include "lib/err.h"
#include "store/apply.h"
#include "store/store.h"

#define SHIPS 1000
#define EVENT_BYTES 100
#define FRESH_SHIPS 100000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long dir_bytes(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "du -sb %s", path);
    FILE *f = popen(cmd, "r");
    long long n = 0;
    if (f == NULL || fscanf(f, "%lld", &n) != 1) {
        n = -1;
    }
    if (f) {
        pclose(f);
    }
    return n;
}

static void rmrf(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", path);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot remove %s\n", path);
    }
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "store_bench: %s: %s\n", what, msg);
    exit(1);
}

/* --- SQLite through berth's own store and apply. --- */

struct chain {
    uint64_t next[SHIPS + 1];
    uint8_t head[SHIPS + 1][RECORD_HASH_SIZE];
};

static struct store *sq_open(const char *dir)
{
    char path[4200], err[ERRMSG_SIZE];
    struct store *s;
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/store.db", dir);
    if (store_open(&s, path, err) != 0) {
        die("open", err);
    }
    return s;
}

static void sq_ships(struct store *s, int n)
{
    for (int i = 1; i <= n; i++) {
        char id[32];
        snprintf(id, sizeof id, "ship%06d", i);
        struct record_ship_new r = {.id = id, .name = "", .program = "/srv/kv"};
        struct buf e;
        int res;
        buf_init(&e);
        record_encode_ship_new(&e, &r);
        if (store_apply_entry(s, 0, e.data, e.len, NULL, &res) != 0) {
            die("ship", store_errmsg(s));
        }
        buf_free(&e);
    }
    if (store_flush(s) != 0) {
        die("flush", store_errmsg(s));
    }
}

static void sq_batch(struct store *s, struct chain *c, int k, unsigned *rng)
{
    struct buf e;
    uint8_t payload[EVENT_BYTES];
    memset(payload, 'x', sizeof payload);
    buf_init(&e);
    record_events_begin(&e);
    for (int i = 0; i < k; i++) {
        *rng = *rng * 1103515245 + 12345;
        uint64_t sid = 1 + (*rng >> 8) % SHIPS;
        struct record_event ev = {.sid = sid,
                                  .number = ++c->next[sid],
                                  .kind = 1,
                                  .payload = payload,
                                  .payload_len = sizeof payload};
        memcpy(ev.prev_hash, c->head[sid], RECORD_HASH_SIZE);
        struct buf r;
        buf_init(&r);
        record_encode_event(&r, &ev, NULL, NULL, NULL);
        record_hash(r.data, r.len, c->head[sid]);
        record_events_add(&e, r.data, r.len);
        buf_free(&r);
    }
    int res;
    /* One commit per entry, as LMDB's below: the cost of the commit is
     * part of what is compared. */
    if (store_apply_entry(s, 0, e.data, e.len, NULL, &res) != 0 ||
        store_flush(s) != 0) {
        die("apply", store_errmsg(s));
    }
    buf_free(&e);
}

static int count_cb(uint64_t n, const void *rec, size_t len, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

/* --- LMDB doing the same. --- */

struct ship_rec {
    uint64_t last_event;
    uint8_t last_hash[32];
    uint8_t rest[200]; /* id, name, program, keys: the size of a record */
};

struct lm {
    MDB_env *env;
    MDB_dbi ships, events;
};

static void lm_check(int rc, const char *what)
{
    if (rc != 0) {
        die(what, mdb_strerror(rc));
    }
}

static void lm_open(struct lm *l, const char *dir)
{
    mkdir(dir, 0700);
    lm_check(mdb_env_create(&l->env), "env");
    mdb_env_set_mapsize(l->env, 8ULL << 30);
    mdb_env_set_maxdbs(l->env, 4);
    lm_check(mdb_env_open(l->env, dir, MDB_NOSYNC, 0600), "open");
    MDB_txn *t;
    lm_check(mdb_txn_begin(l->env, NULL, 0, &t), "txn");
    lm_check(mdb_dbi_open(t, "ships", MDB_CREATE | MDB_INTEGERKEY, &l->ships),
             "dbi");
    lm_check(mdb_dbi_open(t, "events", MDB_CREATE, &l->events), "dbi");
    lm_check(mdb_txn_commit(t), "commit");
}

static void lm_key(uint8_t *k, uint64_t sid, uint64_t n)
{
    for (int i = 0; i < 8; i++) {
        k[i] = (uint8_t)(sid >> (56 - 8 * i));
        k[8 + i] = (uint8_t)(n >> (56 - 8 * i));
    }
}

static void lm_ships(struct lm *l, int n)
{
    MDB_txn *t;
    lm_check(mdb_txn_begin(l->env, NULL, 0, &t), "txn");
    for (uint64_t sid = 1; sid <= (uint64_t)n; sid++) {
        struct ship_rec r;
        memset(&r, 0, sizeof r);
        MDB_val k = {sizeof sid, &sid}, v = {sizeof r, &r};
        lm_check(mdb_put(t, l->ships, &k, &v, 0), "put ship");
    }
    lm_check(mdb_txn_commit(t), "commit");
}

static void lm_batch(struct lm *l, struct chain *c, int k, unsigned *rng)
{
    MDB_txn *t;
    uint8_t payload[EVENT_BYTES];
    memset(payload, 'x', sizeof payload);
    lm_check(mdb_txn_begin(l->env, NULL, 0, &t), "txn");
    for (int i = 0; i < k; i++) {
        *rng = *rng * 1103515245 + 12345;
        uint64_t sid = 1 + (*rng >> 8) % SHIPS;
        struct record_event ev = {.sid = sid,
                                  .number = ++c->next[sid],
                                  .kind = 1,
                                  .payload = payload,
                                  .payload_len = sizeof payload};
        memcpy(ev.prev_hash, c->head[sid], RECORD_HASH_SIZE);
        struct buf r;
        buf_init(&r);
        record_encode_event(&r, &ev, NULL, NULL, NULL);
        record_hash(r.data, r.len, c->head[sid]);
        MDB_val sk = {sizeof sid, &sid}, sv;
        lm_check(mdb_get(t, l->ships, &sk, &sv), "get ship");
        struct ship_rec rec;
        memcpy(&rec, sv.mv_data, sizeof rec);
        uint8_t key[16];
        lm_key(key, sid, ev.number);
        MDB_val ek = {sizeof key, key}, evv = {r.len, r.data};
        lm_check(mdb_put(t, l->events, &ek, &evv, 0), "put event");
        rec.last_event = ev.number;
        memcpy(rec.last_hash, c->head[sid], 32);
        sv.mv_size = sizeof rec;
        sv.mv_data = &rec;
        lm_check(mdb_put(t, l->ships, &sk, &sv, 0), "put ship");
        buf_free(&r);
    }
    lm_check(mdb_txn_commit(t), "commit");
}

static int lm_read(struct lm *l, uint64_t sid, uint64_t last)
{
    MDB_txn *t;
    MDB_cursor *cur;
    int n = 0;
    lm_check(mdb_txn_begin(l->env, NULL, MDB_RDONLY, &t), "txn");
    MDB_val sk = {sizeof sid, &sid}, sv;
    lm_check(mdb_get(t, l->ships, &sk, &sv), "get ship");
    lm_check(mdb_cursor_open(t, l->events, &cur), "cursor");
    uint8_t key[16];
    lm_key(key, sid, last > 100 ? last - 99 : 1);
    MDB_val k = {sizeof key, key}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && memcmp(k.mv_data, key, 8) == 0) {
        n++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(t);
    return n;
}

/* --- The floor. --- */

static double floor_eps(const char *dir, int k, double secs)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/floor", dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    size_t bytes = (size_t)k * (RECORD_HEADER_SIZE + EVENT_BYTES);
    char *b = calloc(1, bytes);
    double t0 = now_s();
    long n = 0;
    off_t off = 0;
    while (now_s() - t0 < secs) {
        if (pwrite(fd, b, bytes, off) < 0 || fdatasync(fd) != 0) {
            die("floor", "write failed");
        }
        off = (off + (off_t)bytes) % (64 << 20);
        n++;
    }
    double eps = (double)n * k / (now_s() - t0);
    close(fd);
    unlink(path);
    free(b);
    return eps;
}

int main(int argc, char **argv)
{
    const char *base = argc > 1 ? argv[1] : "store-bench";
    char dir[1024];
    static struct chain c;
    static const int ks[] = {1, 16, 256};
    const double secs = 2.0;
    mkdir(base, 0700);

    printf(
        "store: apply batches of 100-byte events over %d ships, %.0f s each\n",
        SHIPS, secs);
    printf("%-7s %-7s %14s %16s | %14s\n", "engine", "batch", "events/s",
           "batches/s", "floor ev/s");
    for (int e = 0; e < 2; e++) {
        for (size_t i = 0; i < 3; i++) {
            memset(&c, 0, sizeof c);
            unsigned rng = 1;
            snprintf(dir, sizeof dir, "%s/%s-%d", base, e ? "lmdb" : "sqlite",
                     ks[i]);
            struct store *s = NULL;
            struct lm l;
            if (e == 0) {
                s = sq_open(dir);
                sq_ships(s, SHIPS);
            } else {
                lm_open(&l, dir);
                lm_ships(&l, SHIPS);
            }
            long batches = 0;
            double t0 = now_s();
            while (now_s() - t0 < secs) {
                if (e == 0) {
                    sq_batch(s, &c, ks[i], &rng);
                } else {
                    lm_batch(&l, &c, ks[i], &rng);
                }
                batches++;
            }
            double dt = now_s() - t0;
            double fl = floor_eps(dir, ks[i], 1.0);
            printf("%-7s %-7d %14.0f %16.0f | %14.0f\n", e ? "lmdb" : "sqlite",
                   ks[i], batches * ks[i] / dt, batches / dt, fl);
            fflush(stdout);
            /* Wake path: one ship's record and last 100 events. */
            if (i == 2) {
                int reads = 0;
                double r0 = now_s();
                while (now_s() - r0 < 1.0) {
                    uint64_t sid = 1 + (uint64_t)(reads % SHIPS);
                    int n = 0;
                    if (e == 0) {
                        struct store_ship sh;
                        store_ship_get_sid(s, sid, &sh);
                        uint64_t from =
                            sh.last_event > 100 ? sh.last_event - 99 : 1;
                        store_event_foreach(s, sid, from, NULL, count_cb, &n);
                        store_ship_clear(&sh);
                    } else {
                        n = lm_read(&l, sid, c.next[sid]);
                    }
                    reads++;
                }
                printf("%-7s wake read (record + last 100 events): %.1f us\n",
                       e ? "lmdb" : "sqlite", (now_s() - r0) / reads * 1e6);
            }
            /* What a wake reads more while some account has caps: its
             * ship's account's caps, by key, among 1,000 accounts. */
            if (i == 2 && e == 0) {
                struct caps caps = {64 << 20, 500, 32}, got;
                for (int a = 0; a < 1000; a++) {
                    char name[16];
                    uint64_t id;
                    snprintf(name, sizeof name, "a%d", a);
                    if (store_account_new(s, name, 1, &id) != 0 ||
                        store_account_set_caps(s, id, 7, &caps) != 0) {
                        die("accounts", store_errmsg(s));
                    }
                }
                int reads = 0;
                double r0 = now_s();
                while (now_s() - r0 < 1.0) {
                    store_account_caps(s, 1 + (uint64_t)(reads % 1000), &got);
                    reads++;
                }
                printf("%-7s wake read of an account's caps: %.2f us\n",
                       "sqlite", (now_s() - r0) / reads * 1e6);
            }
            if (e == 0) {
                store_close(s);
            } else {
                mdb_env_close(l.env);
            }
            rmrf(dir);
        }
    }

    /* Fresh ships: disk per ship, and open + count. */
    for (int e = 0; e < 2; e++) {
        snprintf(dir, sizeof dir, "%s/%s-fresh", base, e ? "lmdb" : "sqlite");
        uint64_t count = 0;
        double t0;
        if (e == 0) {
            struct store *s = sq_open(dir);
            sq_ships(s, FRESH_SHIPS);
            store_sync(s);
            store_close(s);
            t0 = now_s();
            s = sq_open(dir);
            store_ship_count(s, &count);
            store_close(s);
        } else {
            struct lm l;
            lm_open(&l, dir);
            lm_ships(&l, FRESH_SHIPS);
            mdb_env_sync(l.env, 1);
            mdb_env_close(l.env);
            t0 = now_s();
            lm_open(&l, dir);
            MDB_txn *t;
            MDB_stat st;
            mdb_txn_begin(l.env, NULL, MDB_RDONLY, &t);
            mdb_stat(t, l.ships, &st);
            count = st.ms_entries;
            mdb_txn_abort(t);
            mdb_env_close(l.env);
        }
        double open_ms = (now_s() - t0) * 1e3;
        printf("%-7s %d fresh ships: %.0f bytes/ship on disk, open + count "
               "%.1f ms (%llu)\n",
               e ? "lmdb" : "sqlite", FRESH_SHIPS,
               (double)dir_bytes(dir) / FRESH_SHIPS, open_ms,
               (unsigned long long)count);
        rmrf(dir);
    }
    rmdir(base);
    return 0;
}
