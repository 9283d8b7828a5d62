/* The store on SQLite: one connection, used from the loop thread only, with
 * every statement prepared once at open. */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/record.h"
#include "core/sandbox.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/mem.h"
#include "store/heads.h"
#include "store/heap.h"

#define STORE__SCHEMA_VERSION 17

enum {
    ST_META_GET,
    ST_META_PUT,
    ST_SHIP_PUT,
    ST_SHIP_BY_ID,
    ST_SHIP_BY_NAME,
    ST_SHIP_BY_SID,
    ST_SHIP_DELETE,
    ST_SHIP_BLOCK,
    ST_HEAD_GET,
    ST_HEAD_PUT,
    ST_USAGE_SHIP,
    ST_USAGE_ACCOUNT,
    ST_USAGE_MEASURED,
    ST_USAGE_MEASURED_ACCOUNT,
    ST_SHIP_EVENTS_DELETE,
    ST_SHIP_SNAPSHOT_DELETE,
    ST_SHIP_PRIOR_DELETE,
    ST_SHIP_ALL,
    ST_SHIP_COUNT,
    ST_SHIP_BRIEF,
    ST_EVENT_PUT,
    ST_EVENT_FROM,
    ST_EVENT_TRUNCATE,
    ST_SWEEP_EVENTS,
    ST_SWEEP_MARKS,
    ST_EVENT_GET,
    ST_SNAPSHOT_PUT,
    ST_SNAPSHOT_GET,
    ST_PRIOR_KEEP,
    ST_PRIOR_GET,
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_ROLLBACK_TO,
    ST_RELEASE,
    ST_ACCOUNT_BY_ID,
    ST_SHIP_ACCOUNT,
    ST_ACCOUNT_CAPS,
    ST__COUNT
};

#define STORE__SHIP_COLUMNS                                                    \
    "sid, id, name, program, created_ns, idle_timeout_ms, last_event, "        \
    "first_event, snapshot_event, last_hash, public_key, secret_key, "         \
    "alarm_ns, freeze_timeout_ms, args, env, acks, account, parent, "          \
    "lifetime, lifetime_ms, spawn_tag, access, sandbox"

/* An account's columns, in the order store__row_account reads them. */
#define STORE__ACCOUNT_COLUMNS                                                 \
    "id, name, disabled, created_ns, usage_ships, usage_bytes, "               \
    "usage_events, usage_cpu_us, usage_mem_peak, usage_mem_byte_s, "           \
    "usage_wakes, usage_requests, limit_ships, limit_bytes, limit_awake, "     \
    "limit_cpu, limit_events, cap_memory, cap_cpu, cap_pids"

static const char *store__sql[ST__COUNT] = {
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ST_META_PUT] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
    /* An upsert on sid, not INSERT OR REPLACE: a clash on id or name must
     * fail, never delete the other ship. */
    [ST_SHIP_PUT] =
        "INSERT INTO ships (" STORE__SHIP_COLUMNS
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
        "?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24) ON CONFLICT "
        "(sid) DO UPDATE SET id = ?2, "
        "name = ?3, "
        "program = ?4, created_ns = ?5, idle_timeout_ms = ?6, "
        "last_event = ?7, first_event = ?8, snapshot_event = ?9, "
        "last_hash = ?10, public_key = ?11, secret_key = ?12, alarm_ns = ?13, "
        "freeze_timeout_ms = ?14, args = ?15, env = ?16, acks = ?17, "
        "account = ?18, parent = ?19, lifetime = ?20, lifetime_ms = ?21, "
        "spawn_tag = ?22, access = ?23, sandbox = ?24",
    [ST_SHIP_BY_ID] = "SELECT " STORE__SHIP_COLUMNS " FROM ships WHERE id = ?1",
    [ST_SHIP_BY_NAME] =
        "SELECT " STORE__SHIP_COLUMNS " FROM ships WHERE name = ?1",
    [ST_SHIP_BY_SID] =
        "SELECT " STORE__SHIP_COLUMNS " FROM ships WHERE sid = ?1",
    [ST_SHIP_DELETE] = "DELETE FROM ships WHERE sid = ?1",
    [ST_SHIP_BLOCK] = "UPDATE ships SET blocked = ?2 WHERE sid = ?1",
    /* The hot path of apply touches two columns and no index. */
    [ST_HEAD_GET] =
        "SELECT last_event, last_hash, alarm_ns FROM ships WHERE sid = ?1",
    [ST_HEAD_PUT] = "UPDATE ships SET last_event = ?2, last_hash = ?3, "
                    "alarm_ns = ?4, usage_bytes = usage_bytes + ?5 "
                    "WHERE sid = ?1 RETURNING account",
    /* Recorded usage (docs/store.md, "Usage"): added to, never set. */
    [ST_USAGE_SHIP] = "UPDATE ships SET usage_bytes = usage_bytes + ?2 "
                      "WHERE sid = ?1 RETURNING account",
    [ST_USAGE_ACCOUNT] =
        "UPDATE accounts SET usage_ships = usage_ships + ?2, "
        "usage_bytes = usage_bytes + ?3, usage_events = usage_events + ?4 "
        "WHERE id = ?1",
    [ST_USAGE_MEASURED] =
        "UPDATE ships SET usage_cpu_us = usage_cpu_us + ?2, "
        "usage_mem_peak = max(usage_mem_peak, ?3), "
        "usage_mem_byte_s = usage_mem_byte_s + ?4, "
        "usage_wakes = usage_wakes + ?5, usage_requests = usage_requests + ?6 "
        "WHERE sid = ?1 RETURNING account",
    [ST_USAGE_MEASURED_ACCOUNT] =
        "UPDATE accounts SET usage_cpu_us = usage_cpu_us + ?2, "
        "usage_mem_peak = max(usage_mem_peak, ?3), "
        "usage_mem_byte_s = usage_mem_byte_s + ?4, "
        "usage_wakes = usage_wakes + ?5, usage_requests = usage_requests + ?6 "
        "WHERE id = ?1",
    [ST_SHIP_EVENTS_DELETE] = "DELETE FROM events WHERE sid = ?1",
    [ST_SHIP_SNAPSHOT_DELETE] = "DELETE FROM snapshots WHERE sid = ?1",
    [ST_SHIP_PRIOR_DELETE] = "DELETE FROM prior_snapshots WHERE sid = ?1",
    [ST_SHIP_ALL] = "SELECT " STORE__SHIP_COLUMNS " FROM ships ORDER BY sid",
    [ST_SHIP_COUNT] = "SELECT count(*) FROM ships",
    /* What the host keeps in memory per ship: a narrow walk at start. */
    [ST_SHIP_BRIEF] = "SELECT sid, id, name, program, alarm_ns, account, "
                      "sandbox, blocked FROM ships "
                      "WHERE sid > ?1 ORDER BY sid",
    [ST_EVENT_PUT] =
        "INSERT OR REPLACE INTO events (sid, n, rec) VALUES (?1, ?2, ?3)",
    [ST_EVENT_FROM] =
        "SELECT n, rec FROM events WHERE sid = ?1 AND n >= ?2 ORDER BY n",
    [ST_EVENT_TRUNCATE] =
        "INSERT OR REPLACE INTO truncations (sid, upto) VALUES (?1, ?2)",
    [ST_SWEEP_EVENTS] =
        "DELETE FROM events WHERE rowid IN (SELECT events.rowid FROM "
        "(SELECT sid, upto FROM truncations ORDER BY sid LIMIT ?1) AS t "
        "JOIN events ON events.sid = t.sid AND events.n <= t.upto)",
    [ST_SWEEP_MARKS] = "DELETE FROM truncations WHERE sid IN "
                       "(SELECT sid FROM truncations ORDER BY sid LIMIT ?1)",
    [ST_EVENT_GET] = "SELECT rec FROM events WHERE sid = ?1 AND n = ?2",
    [ST_SNAPSHOT_PUT] =
        "INSERT OR REPLACE INTO snapshots (sid, n, epoch, data, chain, sum, "
        "sealed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_SNAPSHOT_GET] = "SELECT n, epoch, data, chain, sum, sealed FROM "
                        "snapshots WHERE sid = ?1",
    /* The snapshot a new one replaces is kept, with the events after it
     * (store_prior_snapshot_get). */
    [ST_PRIOR_KEEP] = "INSERT OR REPLACE INTO prior_snapshots (sid, n, epoch, "
                      "data, chain, sum, sealed) SELECT sid, n, epoch, data, "
                      "chain, sum, sealed FROM snapshots WHERE sid = ?1",
    [ST_PRIOR_GET] = "SELECT n, epoch, data, chain, sum, sealed FROM "
                     "prior_snapshots WHERE sid = ?1",
    [ST_BEGIN] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT entry",
    [ST_ROLLBACK_TO] = "ROLLBACK TO entry",
    [ST_RELEASE] = "RELEASE entry",
    /* Read by requests in an account's scope, and while an account is
     * disabled by the front door. */
    [ST_ACCOUNT_BY_ID] =
        "SELECT " STORE__ACCOUNT_COLUMNS " FROM accounts WHERE id = ?1",
    [ST_SHIP_ACCOUNT] = "SELECT account FROM ships WHERE sid = ?1",
    [ST_ACCOUNT_CAPS] =
        "SELECT cap_memory, cap_cpu, cap_pids FROM accounts WHERE id = ?1",
};

/* Ships, events and snapshots keyed by integers. Events sit in a rowid
 * table in the order they apply, found by an index on (sid, n): each insert
 * lands at the table's right edge, where a full page splits cheaply, and a
 * batch's events share pages, so a commit writes a page per dozen events
 * plus a few index pages. Keyed by (sid, n) WITHOUT ROWID, as before schema
 * version 6, every 300-byte record was a cell of an index b-tree, inserted
 * in the middle of it, one dirty page per ship per commit; 3 hosts with 256
 * writers did 9,260-9,644 events/s against 10,055-10,679 with this table
 * (alternate 10 s runs). The price: a ship's events are spread over pages,
 * so replaying many of them reads a page per event, which a wake after a
 * sleep does not do (a sleep takes a snapshot).
 *
 * The same spread makes deleting them dear: the thousand events a snapshot
 * stands for sit on pages shared with other ships' events, and deleting
 * them one ship at a time rewrote each page once per ship (with 16
 * writers, 13.3-13.5 KB written an event against 10.9-11.0 swept, and a
 * p99 of 11-13 ms against 3-5). So a snapshot only marks its events, in
 * truncations, in the transaction that stores it, and store_sweep deletes
 * the marked events of many ships at once, every few seconds: the rows of
 * a page then mostly go in one transaction, and a page emptied whole goes
 * to the free list without being written. Marked events are below their ship's
 * first_event, which every read starts from; a crash before the sweep loses no
 * mark. */
/* The admin API's tokens (core/auth.h): only their hashes, by id, each
 * with its scope, an optional name, the account it belongs to (0 for
 * none: the operator's) and when it was made. */
#define STORE__TOKENS_TABLE                                                    \
    "CREATE TABLE IF NOT EXISTS tokens ("                                      \
    "  id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE,"                        \
    "  scope INTEGER NOT NULL, name TEXT UNIQUE,"                              \
    "  account INTEGER NOT NULL DEFAULT 0, created_ns INTEGER NOT NULL)"       \
    " WITHOUT ROWID;"

/* The data keys (crypto/seal.h) by key id, each wrapped under the master
 * key (crypto/keywrap.h); none until the first key rotation, when data key
 * 1 is derived from the master key. */
#define STORE__DATA_KEYS_TABLE                                                 \
    "CREATE TABLE IF NOT EXISTS data_keys ("                                   \
    "  kid INTEGER PRIMARY KEY, wrapped BLOB NOT NULL);"

/* The accounts (core/account.h), by id, with the anonymous one, 0, from
 * the start: a unique name, whether it is disabled, and when it was made.
 * Whether ships may be made in the anonymous account is the meta row
 * "anonymous_closed" (absent: they may). Usage figures are for columns
 * added later. */
#define STORE__ACCOUNTS_TABLE                                                  \
    "CREATE TABLE IF NOT EXISTS accounts ("                                    \
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"                     \
    "  disabled INTEGER NOT NULL DEFAULT 0, created_ns INTEGER NOT NULL);"     \
    "INSERT OR IGNORE INTO accounts (id, name, disabled, created_ns)"          \
    "  VALUES (0, 'anonymous', 0, 0);"

/* Recorded usage (docs/store.md, "Usage"), in columns of their own beside
 * what they count, so that a walk of the store can recompute the storage
 * and ship figures and compare: a ship's storage bytes (its row, its
 * events from first_event on, its latest and prior snapshots), and what
 * its programs used as USAGE entries reported it (CPU microseconds, peak
 * memory, memory byte-seconds, wakes, requests). A ship's events are its
 * last_event. An account's figures add up its ships' (ships and storage
 * now; events, CPU, memory byte-seconds, wakes and requests ever, removed
 * ships included; the peak is its ships' highest). */
#define STORE__SHIP_USAGE_COLUMNS                                              \
    "ALTER TABLE ships ADD COLUMN usage_bytes INTEGER NOT NULL DEFAULT 0;"     \
    "ALTER TABLE ships ADD COLUMN usage_cpu_us INTEGER NOT NULL DEFAULT 0;"    \
    "ALTER TABLE ships ADD COLUMN usage_mem_peak INTEGER NOT NULL DEFAULT 0;"  \
    "ALTER TABLE ships ADD COLUMN usage_mem_byte_s INTEGER NOT NULL "          \
    "DEFAULT 0;"                                                               \
    "ALTER TABLE ships ADD COLUMN usage_wakes INTEGER NOT NULL DEFAULT 0;"     \
    "ALTER TABLE ships ADD COLUMN usage_requests INTEGER NOT NULL DEFAULT 0;"
#define STORE__ACCOUNT_USAGE_COLUMNS                                           \
    "ALTER TABLE accounts ADD COLUMN usage_ships INTEGER NOT NULL DEFAULT 0;"  \
    "ALTER TABLE accounts ADD COLUMN usage_bytes INTEGER NOT NULL DEFAULT 0;"  \
    "ALTER TABLE accounts ADD COLUMN usage_events INTEGER NOT NULL "           \
    "DEFAULT 0;"                                                               \
    "ALTER TABLE accounts ADD COLUMN usage_cpu_us INTEGER NOT NULL "           \
    "DEFAULT 0;"                                                               \
    "ALTER TABLE accounts ADD COLUMN usage_mem_peak INTEGER NOT NULL "         \
    "DEFAULT 0;"                                                               \
    "ALTER TABLE accounts ADD COLUMN usage_mem_byte_s INTEGER NOT NULL "       \
    "DEFAULT 0;"                                                               \
    "ALTER TABLE accounts ADD COLUMN usage_wakes INTEGER NOT NULL "            \
    "DEFAULT 0;"                                                               \
    "ALTER TABLE accounts ADD COLUMN usage_requests INTEGER NOT NULL "         \
    "DEFAULT 0;"                                                               \
    "ALTER TABLE accounts ADD COLUMN limit_ships INTEGER;"                     \
    "ALTER TABLE accounts ADD COLUMN limit_bytes INTEGER;"                     \
    "ALTER TABLE accounts ADD COLUMN limit_awake INTEGER;"                     \
    "ALTER TABLE accounts ADD COLUMN limit_cpu INTEGER;"                       \
    "ALTER TABLE accounts ADD COLUMN limit_events INTEGER;"

/* An account's caps on its ships' programs (core/caps.h): memory bytes,
 * CPU milliseconds a second and pids, each 0 for none (the host's, and
 * each ship's own, still bound it). Set only by ACCOUNT entries. */
#define STORE__ACCOUNT_CAPS                                                    \
    "ALTER TABLE accounts ADD COLUMN cap_memory INTEGER NOT NULL DEFAULT 0;"   \
    "ALTER TABLE accounts ADD COLUMN cap_cpu INTEGER NOT NULL DEFAULT 0;"      \
    "ALTER TABLE accounts ADD COLUMN cap_pids INTEGER NOT NULL DEFAULT 0;"

/* A ship's storage bytes as the store holds them now: what schema 13
 * fills in, and what a walk of the store compares with the recorded
 * figures. STORE_USAGE_ROW is its row's fixed part. */
#define STORE__USAGE_BYTES_OF_SHIP                                             \
    "(" STORE__STR(STORE_USAGE_ROW) " + length(CAST(program AS BLOB)) + "      \
                                    "coalesce(length(CAST(name AS BLOB)), 0) " \
                                    "+ coalesce(length(args), 0) + "           \
                                    "coalesce(length(env), 0) + "              \
                                    "coalesce((SELECT sum(length(rec)) FROM "  \
                                    "events e WHERE e.sid = ships.sid AND "    \
                                    "e.n >= ships.first_event), 0) + "         \
                                    "coalesce((SELECT length(data) FROM "      \
                                    "snapshots p WHERE p.sid = "               \
                                    "ships.sid), 0) + coalesce((SELECT "       \
                                    "length(data) FROM prior_snapshots p "     \
                                    "WHERE p.sid = ships.sid), 0))"
#define STORE__STR2(x) #x
#define STORE__STR(x) STORE__STR2(x)

/* What the crawler's last whole pass found of each account (store.h,
 * "The crawler's walk"): its figures counted and as recorded then, and
 * when. Each host's own: the walk reads its own store. */
#define STORE__CRAWLS_TABLE                                                    \
    "CREATE TABLE IF NOT EXISTS crawls ("                                      \
    "  account INTEGER PRIMARY KEY, ships INTEGER NOT NULL,"                   \
    "  bytes INTEGER NOT NULL, recorded_ships INTEGER NOT NULL,"               \
    "  recorded_bytes INTEGER NOT NULL, passed_ns INTEGER NOT NULL);"

/* A spawned ship's parent (its sid; 0 for none), its lifetime
 * (proto/frame.h, FRAME_LIFETIME_*; 0 for a ship made by the operator, which
 * stays like a root one), the lifetime's time, the tag of the SPAWN that
 * made it, which its parent's CHILD events carry, its access list: the
 * ids of the ships that may send to it (a string list; NULL: the ships of
 * its own account), and its sandbox and budget (core/sandbox.h; NULL:
 * none). */
#define STORE__LINEAGE                                                         \
    "ALTER TABLE ships ADD COLUMN parent INTEGER NOT NULL DEFAULT 0;"          \
    "ALTER TABLE ships ADD COLUMN lifetime INTEGER NOT NULL DEFAULT 0;"        \
    "ALTER TABLE ships ADD COLUMN lifetime_ms INTEGER NOT NULL DEFAULT 0;"     \
    "ALTER TABLE ships ADD COLUMN spawn_tag INTEGER NOT NULL DEFAULT 0;"       \
    "ALTER TABLE ships ADD COLUMN access BLOB;"                                \
    "ALTER TABLE ships ADD COLUMN sandbox BLOB;"                               \
    "CREATE INDEX IF NOT EXISTS ships_by_parent ON ships (parent, sid) "       \
    "WHERE parent != 0;"                                                       \
    "CREATE INDEX IF NOT EXISTS ships_timed ON ships (lifetime) "              \
    "WHERE lifetime >= 4;"

/* Whether the operator has cut the ship off (a SHIP_BLOCK entry): kept out
 * of the ship's row codec, so that only that entry changes it. */
#define STORE__BLOCKED                                                         \
    "ALTER TABLE ships ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;"

/* Mail (docs/design.md, "Mail"): events for a ship that the log made and
 * the leader delivers, each exactly once, in seq order. seq comes from the
 * meta counter next_mail and is never given twice; body is the event's
 * payload. */
#define STORE__MAIL_TABLE                                                      \
    "CREATE TABLE IF NOT EXISTS mail ("                                        \
    "  seq INTEGER PRIMARY KEY, target INTEGER NOT NULL,"                      \
    "  kind INTEGER NOT NULL, body BLOB NOT NULL);"                            \
    "CREATE INDEX IF NOT EXISTS mail_by_target ON mail (target, seq);"

static const char store__schema[] =
    "CREATE TABLE IF NOT EXISTS meta ("
    "  key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS ships ("
    "  sid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT UNIQUE,"
    "  program TEXT NOT NULL, created_ns INTEGER NOT NULL,"
    "  idle_timeout_ms INTEGER NOT NULL, last_event INTEGER NOT NULL,"
    "  first_event INTEGER NOT NULL, snapshot_event INTEGER NOT NULL,"
    "  last_hash BLOB NOT NULL, public_key BLOB NOT NULL,"
    "  secret_key BLOB NOT NULL, alarm_ns INTEGER NOT NULL DEFAULT 0,"
    "  freeze_timeout_ms INTEGER NOT NULL DEFAULT 0, args BLOB, env BLOB,"
    "  acks INTEGER NOT NULL DEFAULT 255,"
    "  account INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS ships_by_account ON ships (account, "
    "sid);" STORE__SHIP_USAGE_COLUMNS STORE__LINEAGE STORE__BLOCKED
    "CREATE TABLE IF NOT EXISTS events ("
    "  sid INTEGER NOT NULL, n INTEGER NOT NULL, rec BLOB NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS events_by_ship ON events (sid, n);"
    "CREATE TABLE IF NOT EXISTS snapshots ("
    "  sid INTEGER PRIMARY KEY, n INTEGER NOT NULL, epoch BLOB NOT NULL,"
    "  data BLOB NOT NULL, chain BLOB NOT NULL, sum BLOB NOT NULL,"
    "  sealed INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS prior_snapshots ("
    "  sid INTEGER PRIMARY KEY, n INTEGER NOT NULL, epoch BLOB NOT NULL,"
    "  data BLOB NOT NULL, chain BLOB NOT NULL, sum BLOB NOT NULL,"
    "  sealed INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS truncations ("
    "  sid INTEGER PRIMARY KEY, upto INTEGER NOT NULL);" STORE__TOKENS_TABLE
        STORE__DATA_KEYS_TABLE STORE__ACCOUNTS_TABLE
            STORE__ACCOUNT_USAGE_COLUMNS STORE__ACCOUNT_CAPS STORE__CRAWLS_TABLE
                STORE__MAIL_TABLE;

#define STORE__ACCT_DELTA 32

/* A crawler's pass under way (store.h, "The crawler's walk"). */
struct store__crawl {
    bool active;
    bool whole;      /* begun at the first ship: its sums are whole */
    uint64_t cursor; /* the last sid walked */
    struct store_crawl_account *acc; /* sums by account, counted fields */
    size_t n_acc, cap_acc;
    struct store_crawl_report report;
};

struct store {
    sqlite3 *db;
    sqlite3_stmt *st[ST__COUNT];
    char *path; /* what store_image_restore writes next to */
    /* The database file, read-only, for images; -1 for a store in memory.
     * It is opened with the database and closed only after it: POSIX locks
     * belong to the process, so closing any descriptor of the file, such
     * as one opened for each image, would drop SQLite's lock on it. */
    int fd;
    bool pinned;        /* an image is being read: no checkpoint may run */
    bool shrink_wal;    /* store_compact ran: the next sync truncates the WAL */
    bool batch;         /* a batch's transaction is open */
    bool marked;        /* truncations may hold marks (store_sweep) */
    unsigned unflushed; /* entries in it */
    bool savepoint;     /* the open entry has one: it can be undone */
    struct heads heads; /* ship heads of the open batch (store/heads.h) */
    struct store__crawl crawl; /* the crawler's pass (store_crawl_begin) */
    bool no_usage;             /* store_set_accounting(s, false) */
    /* Usage the heads' events add to accounts, gathered while the heads
     * are written and added in one statement per account. */
    struct {
        uint64_t account;
        uint64_t bytes, events;
    } acct_delta[STORE__ACCT_DELTA];
    unsigned n_acct_delta;
    char errmsg[ERRMSG_SIZE];
};

/* Map an SQLite result to a berth code, keeping SQLite's message. */
static int store__fail(struct store *s, int rc, const char *what)
{
    int primary = rc & 0xff;
    int rv;
    switch (primary) {
    case SQLITE_FULL:
        err_printf(s->errmsg, "%s: disk full", what);
        return BERTH_EIO;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        rv = BERTH_ECORRUPT;
        break;
    case SQLITE_CONSTRAINT:
        rv = BERTH_EEXIST;
        break;
    case SQLITE_NOMEM:
        rv = BERTH_ENOMEM;
        break;
    default:
        rv = BERTH_EIO;
        break;
    }
    err_printf(s->errmsg, "%s: %s", what,
               s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    return rv;
}

static sqlite3_stmt *store__stmt(struct store *s, int which)
{
    sqlite3_stmt *st = s->st[which];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

/* Run a statement that returns no rows. */
static int store__exec(struct store *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        return store__fail(s, rc, what);
    }
    return 0;
}

void store_ship_clear(struct store_ship *ship)
{
    mem_free(ship->program);
    mem_free(ship->args);
    mem_free(ship->env);
    mem_free(ship->access);
    mem_free(ship->sandbox);
    memset(ship, 0, sizeof *ship);
}

static int store__pragma(struct store *s, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int rv = store__fail(s, rc, "opening the store");
        if (msg != NULL) {
            err_printf(s->errmsg, "opening the store: %s", msg);
            sqlite3_free(msg);
        }
        return rv;
    }
    return 0;
}

/* Read the integer a pragma answers. */
static int store__pragma_int(struct store *s, const char *sql, int *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return store__fail(s, rc, "opening the store");
    }
    rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE
               ? 0
               : store__fail(s, rc, "opening the store");
}

static void store__copy_blob(sqlite3_stmt *st, int col, uint8_t *out,
                             size_t size);

/* Give every snapshot stored before schema 3 its link to the log and its
 * checksum. The link is the hash of the snapshot's last event: the ship's
 * head hash when no event follows it, else what the next event's record
 * holds as its previous hash. What the store holds now is taken as right:
 * there is nothing to check it against. */
static int store__upgrade_snapshots(struct store *s)
{
    static const char *sql =
        "SELECT snapshots.sid, n, epoch, data, last_event, last_hash, "
        "(SELECT rec FROM events WHERE events.sid = snapshots.sid AND "
        "events.n = snapshots.n + 1) FROM snapshots JOIN ships ON "
        "ships.sid = snapshots.sid";
    sqlite3_stmt *q = NULL, *u = NULL;
    int rv = 0;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &q, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(
            s->db, "UPDATE snapshots SET chain = ?2, sum = ?3 WHERE sid = ?1",
            -1, &u, NULL);
    }
    while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        uint64_t sid = (uint64_t)sqlite3_column_int64(q, 0);
        uint64_t n = (uint64_t)sqlite3_column_int64(q, 1);
        uint8_t epoch[STORE_HASH_SIZE], chain[STORE_HASH_SIZE];
        uint8_t sum[STORE_HASH_SIZE];
        struct record_event next;
        store__copy_blob(q, 2, epoch, sizeof epoch);
        if (n == (uint64_t)sqlite3_column_int64(q, 4)) {
            store__copy_blob(q, 5, chain, sizeof chain);
        } else if (record_decode_event(sqlite3_column_blob(q, 6),
                                       (size_t)sqlite3_column_bytes(q, 6),
                                       &next) == 0) {
            memcpy(chain, next.prev_hash, sizeof chain);
        } else {
            memset(chain, 0, sizeof chain); /* fails its check on wake */
        }
        record_snapshot_sum(sid, n, epoch, chain, false,
                            sqlite3_column_blob(q, 3),
                            (size_t)sqlite3_column_bytes(q, 3), sum);
        sqlite3_bind_int64(u, 1, (sqlite3_int64)sid);
        sqlite3_bind_blob(u, 2, chain, sizeof chain, SQLITE_STATIC);
        sqlite3_bind_blob(u, 3, sum, sizeof sum, SQLITE_STATIC);
        rc = sqlite3_step(u);
        sqlite3_reset(u);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (rc != SQLITE_DONE) {
        rv = store__fail(s, rc, "upgrading snapshots");
    }
    sqlite3_finalize(q);
    sqlite3_finalize(u);
    return rv;
}

/* What each schema version added: the SQL that brings a store of the
 * version before up to it, and what must be filled in after it. A new
 * version appends its step here, bumps STORE__SCHEMA_VERSION and adds the
 * same columns to store__schema, which new stores get whole. */
static const struct {
    const char *sql;
    int (*fill)(struct store *s);
} store__steps[STORE__SCHEMA_VERSION + 1] = {
    /* 2: alarms and the freeze timeout. */
    [2] = {"ALTER TABLE ships ADD COLUMN alarm_ns INTEGER NOT NULL DEFAULT 0;"
           "ALTER TABLE ships ADD COLUMN freeze_timeout_ms INTEGER NOT NULL "
           "DEFAULT 0;",
           NULL},
    /* 3: each snapshot's link to the log and checksum. */
    [3] = {"ALTER TABLE snapshots ADD COLUMN chain BLOB NOT NULL DEFAULT x'';"
           "ALTER TABLE snapshots ADD COLUMN sum BLOB NOT NULL DEFAULT x'';",
           store__upgrade_snapshots},
    /* 4: the program's arguments and environment (NULL: none). */
    [4] = {"ALTER TABLE ships ADD COLUMN args BLOB;"
           "ALTER TABLE ships ADD COLUMN env BLOB;",
           NULL},
    /* 5: the ship's ack level (255: the host's default). */
    [5] = {"ALTER TABLE ships ADD COLUMN acks INTEGER NOT NULL DEFAULT 255;",
           NULL},
    /* 6: events in a rowid table, in the order they apply, found by an
     * index on (sid, n); see store__schema. */
    [6] = {"CREATE TABLE events6 ("
           "  sid INTEGER NOT NULL, n INTEGER NOT NULL, rec BLOB NOT NULL);"
           "INSERT INTO events6 (sid, n, rec) "
           "  SELECT sid, n, rec FROM events ORDER BY sid, n;"
           "DROP TABLE events;"
           "ALTER TABLE events6 RENAME TO events;"
           "CREATE UNIQUE INDEX events_by_ship ON events (sid, n);",
           NULL},
    /* 7: events a snapshot stands for, until they are swept; see
     * store__schema. */
    [7] = {"CREATE TABLE truncations ("
           "  sid INTEGER PRIMARY KEY, upto INTEGER NOT NULL);",
           NULL},
    /* 8: sealed snapshots (crypto/seal.h); the ones before are plain. */
    [8] = {"ALTER TABLE snapshots ADD COLUMN sealed INTEGER NOT NULL "
           "DEFAULT 0;",
           NULL},
    /* 9: the admin API's tokens; see STORE__TOKENS_TABLE. */
    [9] = {STORE__TOKENS_TABLE, NULL},
    /* 10: the wrapped data keys; see STORE__DATA_KEYS_TABLE. */
    [10] = {STORE__DATA_KEYS_TABLE, NULL},
    /* 11: each ship's prior snapshot, kept for fsck --replay. */
    [11] =
        {"CREATE TABLE IF NOT EXISTS prior_snapshots ("
         "  sid INTEGER PRIMARY KEY, n INTEGER NOT NULL, epoch BLOB NOT NULL,"
         "  data BLOB NOT NULL, chain BLOB NOT NULL, sum BLOB NOT NULL,"
         "  sealed INTEGER NOT NULL DEFAULT 0);",
         NULL},
    /* 12: accounts; every ship made before belongs to the anonymous one. */
    [12] = {"ALTER TABLE ships ADD COLUMN account INTEGER NOT NULL DEFAULT 0;"
            "CREATE INDEX IF NOT EXISTS ships_by_account ON ships "
            "(account, sid);" STORE__ACCOUNTS_TABLE,
            NULL},
    /* 13: recorded usage, filled in from what the store holds. */
    [13] = {STORE__SHIP_USAGE_COLUMNS STORE__ACCOUNT_USAGE_COLUMNS
            "UPDATE ships SET usage_bytes = " STORE__USAGE_BYTES_OF_SHIP ";"
            "UPDATE accounts SET usage_ships = (SELECT count(*) FROM ships "
            "WHERE account = accounts.id), usage_bytes = (SELECT "
            "coalesce(sum(usage_bytes), 0) FROM ships WHERE account = "
            "accounts.id), usage_events = (SELECT coalesce(sum(last_event), "
            "0) FROM ships WHERE account = accounts.id);",
            NULL},
    /* 14: the crawler's findings; see STORE__CRAWLS_TABLE. */
    [14] = {STORE__CRAWLS_TABLE, NULL},
    /* 15: children and their parents, and mail; see STORE__LINEAGE and
     * STORE__MAIL_TABLE. */
    [15] = {STORE__LINEAGE STORE__MAIL_TABLE, NULL},
    /* 16: ships the operator blocked; see STORE__BLOCKED. */
    [16] = {STORE__BLOCKED, NULL},
    /* 17: accounts' caps, none for every account; see STORE__ACCOUNT_CAPS. */
    [17] = {STORE__ACCOUNT_CAPS, NULL},
};

/* Bring a store of an older schema version up to this one, in place, one
 * version at a time, each step in one transaction (a failed step leaves the
 * store at the version before it); version 0 is a new store. */
static int store__upgrade(struct store *s, int version)
{
    char sql[64];
    int rv = 0;
    if (version == 0) {
        rv = store__pragma(s, "PRAGMA auto_vacuum=INCREMENTAL");
        if (rv == 0) {
            rv = store__pragma(s, store__schema);
        }
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d",
                 STORE__SCHEMA_VERSION);
        return rv != 0 ? rv : store__pragma(s, sql);
    }
    for (int v = version + 1; v <= STORE__SCHEMA_VERSION && rv == 0; v++) {
        rv = store__pragma(s, "BEGIN");
        if (rv != 0) {
            break;
        }
        rv = store__pragma(s, store__steps[v].sql);
        if (rv == 0 && store__steps[v].fill != NULL) {
            rv = store__steps[v].fill(s);
        }
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d; COMMIT", v);
        if (rv == 0) {
            rv = store__pragma(s, sql);
        }
        if (rv != 0) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    return rv;
}

/* Whether s lives in memory, with no file of its own. */
static bool store__in_memory(const struct store *s)
{
    return s->path[0] == '\0' || strcmp(s->path, ":memory:") == 0 ||
           strncmp(s->path, "file:", 5) == 0;
}

/* Open the database at path into s (s->db is NULL before), with every
 * statement prepared; on failure s->errmsg says why and the caller closes
 * what was opened with store__close_db. */
/* SQLite's checkpoint after this many WAL pages (40 MiB), set at open and
 * restored when an image is unpinned. */
#define STORE__AUTOCHECKPOINT 10000

static int store__open_db(struct store *s, const char *path)
{
    int rv;
    int rc = sqlite3_open_v2(
        path, &s->db,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        return store__fail(s, rc, "opening the store");
    }
    sqlite3_extended_result_codes(s->db, 1);
    /* WAL + NORMAL: commits do not fsync, and a crash leaves the database
     * consistent; the raft log replays what the last commits held. */
    /* One host per data directory (the host holds a lock file), so the
     * store is opened exclusive: no file locks per transaction, and, set
     * before WAL is first used, no shared memory for the WAL index. */
    /* secure_delete=FAST: Debian's SQLite zeroes every freed page by
     * default, which makes removing a ship write its whole size to the WAL
     * first, on a disk that may be nearly full. temp_store=MEMORY: each
     * applied entry's savepoint copies the pages it changes into a
     * statement journal, a temporary file by default (two pwrites a page);
     * in memory, 3 hosts with 256 writers did 7,510 and 6,785 events/s
     * against 6,541 and 6,129 (alternate 15 s runs). */
    rv = store__pragma(s, "PRAGMA locking_mode=EXCLUSIVE;"
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                          "PRAGMA foreign_keys=OFF; PRAGMA cache_size=-16384;"
                          "PRAGMA secure_delete=FAST;"
                          "PRAGMA temp_store=MEMORY;");
    if (rv != 0) {
        return rv;
    }
    sqlite3_wal_autocheckpoint(s->db, STORE__AUTOCHECKPOINT);
    int version;
    rv = store__pragma_int(s, "PRAGMA user_version", &version);
    if (rv != 0) {
        return rv;
    }
    if (version > STORE__SCHEMA_VERSION) {
        err_printf(s->errmsg,
                   "the store has schema version %d; this berth knows up to "
                   "%d (upgrade berth)",
                   version, STORE__SCHEMA_VERSION);
        return BERTH_ECORRUPT;
    }
    rv = store__upgrade(s, version);
    if (rv != 0) {
        return rv;
    }
    /* Removing a ship gives its pages back to the file system
     * (store_compact), which takes incremental auto-vacuum: a store made
     * without it is rewritten once, here. */
    int vacuum;
    rv = store__pragma_int(s, "PRAGMA auto_vacuum", &vacuum);
    if (rv == 0 && vacuum != 2) {
        rv = store__pragma(s, "PRAGMA auto_vacuum=INCREMENTAL; VACUUM;");
    }
    if (rv != 0) {
        return rv;
    }
    for (int i = 0; i < ST__COUNT; i++) {
        rc = sqlite3_prepare_v3(s->db, store__sql[i], -1,
                                SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
        if (rc != SQLITE_OK) {
            return store__fail(s, rc, "preparing statements");
        }
    }
    /* Marks left by a crash, or brought by a restored image. */
    s->marked = true;
    if (!store__in_memory(s)) {
        s->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (s->fd < 0) {
            err_printf(s->errmsg, "opening %s: %s", path, strerror(errno));
            return BERTH_EIO;
        }
    }
    return 0;
}

/* Finalize s's statements and close its database; s->db is NULL after. */
static int store__close_db(struct store *s)
{
    for (int i = 0; i < ST__COUNT; i++) {
        sqlite3_finalize(s->st[i]);
        s->st[i] = NULL;
    }
    int rc = sqlite3_close(s->db);
    s->db = NULL;
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    return rc;
}

int store_open(struct store **out, const char *path, char *errmsg)
{
    int rv;
    /* Before anything opens a database: SQLite then allocates through
     * lib/mem.h (store/heap.h). */
    store_install_heap();
    struct store *s = mem_calloc(1, sizeof *s);
    if (s == NULL) {
        err_printf(errmsg, "out of memory");
        return BERTH_ENOMEM;
    }
    heads_init(&s->heads);
    s->fd = -1;
    s->path = mem_strdup(path);
    if (s->path == NULL) {
        err_printf(s->errmsg, "out of memory");
        rv = BERTH_ENOMEM;
        goto err_after_db;
    }
    rv = store__open_db(s, path);
    if (rv != 0) {
        goto err_after_db;
    }
    *out = s;
    return 0;

err_after_db:
    err_printf(errmsg, "%s", s->errmsg);
    store_close(s);
    return rv;
}

void store_close(struct store *s)
{
    if (s == NULL) {
        return;
    }
    /* Every mark is swept, so that a stopped host's files hold no event a
     * snapshot stands for. What fails here is replayed from the log at the
     * next start, and marks a failed sweep leaves are swept then. */
    while (store_marked(s) && store_sweep(s) == 0) {
    }
    store_flush(s);
    store__close_db(s);
    heads_close(&s->heads);
    mem_free(s->crawl.acc);
    mem_free(s->path);
    mem_free(s);
}

const char *store_errmsg(const struct store *s)
{
    return s->errmsg;
}

int store_set_error(struct store *s, int rv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    return rv;
}

/* SQLite rolls a whole transaction back by itself after some errors (a full
 * disk, an I/O error, no memory): then the batch is gone. */
static int store__batch_lost(struct store *s, int rv)
{
    if (s->batch && sqlite3_get_autocommit(s->db)) {
        char why[ERRMSG_SIZE];
        memcpy(why, s->errmsg, sizeof why);
        s->batch = false;
        s->unflushed = 0;
        heads_clear(&s->heads);
        err_printf(s->errmsg,
                   "the entries applied since the last flush were rolled "
                   "back: %s",
                   why);
        return rv != 0 ? rv : BERTH_EIO;
    }
    return rv;
}

/* Add ships, bytes and events to account's recorded usage. */
static int store__account_usage(struct store *s, uint64_t account,
                                int64_t ships, int64_t bytes, uint64_t events)
{
    sqlite3_stmt *st = store__stmt(s, ST_USAGE_ACCOUNT);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)account);
    sqlite3_bind_int64(st, 2, ships);
    sqlite3_bind_int64(st, 3, bytes);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)events);
    return store__exec(s, st, "recording an account's usage");
}

/* Add the gathered deltas to their accounts. */
static int store__acct_delta_write(struct store *s)
{
    int rv = 0;
    for (unsigned i = 0; i < s->n_acct_delta && rv == 0; i++) {
        rv = store__account_usage(s, s->acct_delta[i].account, 0,
                                  (int64_t)s->acct_delta[i].bytes,
                                  s->acct_delta[i].events);
    }
    s->n_acct_delta = 0;
    return rv;
}

/* Gather bytes and events for account, writing the gathered deltas first
 * when there is no room. */
static int store__acct_delta_add(struct store *s, uint64_t account,
                                 uint64_t bytes, uint64_t events)
{
    for (unsigned i = 0; i < s->n_acct_delta; i++) {
        if (s->acct_delta[i].account == account) {
            s->acct_delta[i].bytes += bytes;
            s->acct_delta[i].events += events;
            return 0;
        }
    }
    if (s->n_acct_delta == STORE__ACCT_DELTA) {
        int rv = store__acct_delta_write(s);
        if (rv != 0) {
            return rv;
        }
    }
    s->acct_delta[s->n_acct_delta].account = account;
    s->acct_delta[s->n_acct_delta].bytes = bytes;
    s->acct_delta[s->n_acct_delta].events = events;
    s->n_acct_delta++;
    return 0;
}

/* Run st, an UPDATE ... RETURNING account, into *account; 0 with
 * *found false when no row changed. */
static int store__update_returning(struct store *s, sqlite3_stmt *st,
                                   uint64_t *account, bool *found,
                                   const char *what)
{
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (*found) {
        *account = (uint64_t)sqlite3_column_int64(st, 0);
        rc = sqlite3_step(st);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store__fail(s, rc, what);
}

/* Write a ship's head, adding the bytes and events applied since its row
 * was last written to its recorded usage and its account's (gathered: the
 * caller writes them with store__acct_delta_write). */
/* The sums of a crawler's pass by account: the entry of account, added if
 * missing; NULL when memory runs out (the pass then checks ships only). */
static struct store_crawl_account *store__crawl_acc(struct store *s,
                                                    uint64_t account)
{
    struct store__crawl *c = &s->crawl;
    for (size_t i = 0; i < c->n_acc; i++) {
        if (c->acc[i].account == account) {
            return &c->acc[i];
        }
    }
    if (c->n_acc == c->cap_acc) {
        size_t cap = c->cap_acc ? 2 * c->cap_acc : 16;
        void *p = mem_realloc(c->acc, cap * sizeof *c->acc);
        if (p == NULL) {
            c->whole = false;
            return NULL;
        }
        c->acc = p;
        c->cap_acc = cap;
    }
    struct store_crawl_account *a = &c->acc[c->n_acc++];
    memset(a, 0, sizeof *a);
    a->account = account;
    return a;
}

/* A ship's recorded ships or storage changed as an entry applied: when the
 * ship is behind a whole pass's cursor, its account's sums change too. */
static void store__crawl_note(struct store *s, uint64_t account, uint64_t sid,
                              int64_t ships, int64_t bytes)
{
    struct store__crawl *c = &s->crawl;
    if (!c->active || !c->whole || sid > c->cursor) {
        return;
    }
    struct store_crawl_account *a = store__crawl_acc(s, account);
    if (a != NULL) {
        a->ships += (uint64_t)ships;
        a->storage_bytes += (uint64_t)bytes;
    }
}

static int store__head_update(struct store *s, uint64_t sid,
                              uint64_t last_event, const uint8_t *last_hash,
                              uint64_t alarm_ns, uint64_t bytes,
                              uint64_t events)
{
    sqlite3_stmt *st = store__stmt(s, ST_HEAD_PUT);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)last_event);
    sqlite3_bind_blob(st, 3, last_hash, STORE_HASH_SIZE, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)alarm_ns);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)bytes);
    if (s->no_usage) {
        sqlite3_bind_int64(st, 5, 0);
        bytes = events = 0;
    }
    uint64_t account;
    bool found;
    int rv = store__update_returning(s, st, &account, &found, "writing a ship");
    if (rv == 0 && found && (bytes != 0 || events != 0)) {
        store__crawl_note(s, account, sid, 0, (int64_t)bytes);
        rv = store__acct_delta_add(s, account, bytes, events);
    }
    return rv;
}

static int store__head_write_cb(const struct heads_entry *e, void *arg)
{
    return store__head_update(arg, e->sid, e->last_event, e->hash, e->alarm_ns,
                              e->bytes, e->events);
}

/* Write the heads changed in memory to their rows: before the batch
 * commits, and before any statement that reads or writes ships' rows
 * other than through the heads. */
static int store__heads_write(struct store *s)
{
    if (s->heads.n == 0) {
        return 0;
    }
    int rv = heads_foreach_dirty(&s->heads, store__head_write_cb, s);
    if (rv == 0) {
        rv = store__acct_delta_write(s);
    }
    s->n_acct_delta = 0;
    if (rv == 0 && heads_mark_clean(&s->heads) != 0) {
        rv = store_set_error(s, BERTH_ENOMEM,
                             "writing ship heads: out of memory");
    }
    return rv;
}

/* As store__heads_write, and then forget the head of sid, whose row the
 * caller is about to replace or delete. */
static int store__heads_release(struct store *s, uint64_t sid)
{
    int rv = store__heads_write(s);
    if (rv == 0 && heads_remove(&s->heads, sid) != 0) {
        rv = store_set_error(s, BERTH_ENOMEM,
                             "writing ship heads: out of memory");
    }
    return rv;
}

/* Open the batch's transaction unless it is open. */
static int store__batch_begin(struct store *s)
{
    if (s->batch) {
        return 0;
    }
    int rv = store__exec(s, store__stmt(s, ST_BEGIN), "begin");
    s->batch = rv == 0;
    return rv;
}

int store_entry_begin(struct store *s, bool undoable)
{
    int rv = store__batch_begin(s);
    if (rv != 0) {
        return rv;
    }
    s->savepoint = false;
    if (!undoable) {
        return 0;
    }
    rv = store__exec(s, store__stmt(s, ST_SAVEPOINT), "savepoint");
    if (rv == 0) {
        s->savepoint = true;
        heads_entry_begin(&s->heads);
    }
    return store__batch_lost(s, rv);
}

int store_entry_undo(struct store *s)
{
    if (!s->savepoint) {
        return store_set_error(s, BERTH_EINVAL,
                               "this entry's changes cannot be undone");
    }
    heads_entry_undo(&s->heads);
    int rv = store__exec(s, store__stmt(s, ST_ROLLBACK_TO), "rollback");
    return store__batch_lost(s, rv);
}

int store_entry_end(struct store *s)
{
    int rv = 0;
    if (s->savepoint) {
        s->savepoint = false;
        heads_entry_end(&s->heads);
        rv = store__exec(s, store__stmt(s, ST_RELEASE), "release");
    }
    rv = store__batch_lost(s, rv);
    if (rv == 0) {
        s->unflushed++;
    }
    return rv;
}

int store_flush(struct store *s)
{
    if (!s->batch) {
        return 0;
    }
    int rv = store__heads_write(s);
    if (rv == 0) {
        rv = store__exec(s, store__stmt(s, ST_COMMIT), "commit");
    }
    if (rv != 0 && !sqlite3_get_autocommit(s->db)) {
        store__exec(s, store__stmt(s, ST_ROLLBACK), "rollback");
    }
    heads_clear(&s->heads);
    s->batch = false;
    s->unflushed = 0;
    return rv;
}

unsigned store_unflushed(const struct store *s)
{
    return s->unflushed;
}

int store_wal_writeback(const char *path)
{
    char wal[4096];
    int n = snprintf(wal, sizeof wal, "%s-wal", path);
    if (n < 0 || (size_t)n >= sizeof wal) {
        return BERTH_EIO;
    }
    int fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? 0 : BERTH_EIO;
    }
    /* Start writing, without waiting for the disk or flushing its cache:
     * the point is that little is left when SQLite syncs, and a flush
     * here would make raft's own fsync wait behind it. */
    int rv =
        sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) == 0 ? 0 : BERTH_EIO;
    close(fd);
    return rv;
}

int store_sync(struct store *s)
{
    int rv = store_flush(s);
    if (rv != 0) {
        return rv;
    }
    if (s->pinned) {
        /* A checkpoint would write the pinned file under the reader. */
        err_printf(s->errmsg, "checkpoint: an image of the store is being "
                              "taken");
        return BERTH_EBUSY;
    }
    /* With synchronous=NORMAL, SQLite syncs the WAL before a checkpoint and
     * the database file after a completed one; RESTART then has the next
     * commit write the WAL from its start. The WAL's file keeps its size:
     * truncating it took tens of milliseconds on the loop thread, and
     * every commit after then grew the file again, each growth a file
     * system journal update that can wait behind the journal's commit.
     * After a compaction, whose point is to give space back, TRUNCATE
     * empties the file too. A checkpoint blocked by a reader reports
     * busy = 1. */
    sqlite3_stmt *st;
    int rc =
        sqlite3_prepare_v2(s->db,
                           s->shrink_wal ? "PRAGMA wal_checkpoint(TRUNCATE)"
                                         : "PRAGMA wal_checkpoint(RESTART)",
                           -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return store__fail(s, rc, "checkpoint");
    }
    rc = sqlite3_step(st);
    int busy = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 1;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
        return store__fail(s, rc, "checkpoint");
    }
    if (busy) {
        err_printf(s->errmsg, "checkpoint: the database is busy");
        return BERTH_EBUSY;
    }
    s->shrink_wal = false;
    return 0;
}

int store_compact(struct store *s)
{
    /* Events a snapshot stands for are space to give back too. */
    int rv = store_sweep(s);
    if (rv == 0) {
        rv = store_flush(s);
    }
    if (rv != 0) {
        return rv;
    }
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, "PRAGMA incremental_vacuum", NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        rv = store__fail(s, rc, "giving free pages back");
        sqlite3_free(msg);
        return rv;
    }
    s->shrink_wal = true;
    return 0;
}

int store_meta_get(struct store *s, const char *key, uint64_t *value)
{
    sqlite3_stmt *st = store__stmt(s, ST_META_GET);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *value = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        return 0;
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) {
        *value = 0;
        return 0;
    }
    return store__fail(s, rc, "reading a counter");
}

int store_meta_put(struct store *s, const char *key, uint64_t value)
{
    sqlite3_stmt *st = store__stmt(s, ST_META_PUT);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)value);
    return store__exec(s, st, "writing a counter");
}

int store_ship_put(struct store *s, const struct store_ship *ship)
{
    int rv = store__heads_release(s, ship->sid);
    if (rv != 0) {
        return rv;
    }
    sqlite3_stmt *st = store__stmt(s, ST_SHIP_PUT);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ship->sid);
    sqlite3_bind_text(st, 2, ship->id, -1, SQLITE_STATIC);
    if (ship->name[0] != '\0') {
        sqlite3_bind_text(st, 3, ship->name, -1, SQLITE_STATIC);
    } /* else NULL: unnamed ships do not collide */
    sqlite3_bind_text(st, 4, ship->program ? ship->program : "", -1,
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)ship->created_ns);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)ship->idle_timeout_ms);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)ship->last_event);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)ship->first_event);
    sqlite3_bind_int64(st, 9, (sqlite3_int64)ship->snapshot_event);
    sqlite3_bind_blob(st, 10, ship->last_hash, sizeof ship->last_hash,
                      SQLITE_STATIC);
    sqlite3_bind_blob(st, 11, ship->public_key, sizeof ship->public_key,
                      SQLITE_STATIC);
    sqlite3_bind_blob(st, 12, ship->secret, (int)ship->secret_len,
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 13, (sqlite3_int64)ship->alarm_ns);
    sqlite3_bind_int64(st, 14, (sqlite3_int64)ship->freeze_timeout_ms);
    /* An empty list stays NULL, as in a store from before lists. */
    if (ship->args_len > 0) {
        sqlite3_bind_blob64(st, 15, ship->args, ship->args_len, SQLITE_STATIC);
    }
    if (ship->env_len > 0) {
        sqlite3_bind_blob64(st, 16, ship->env, ship->env_len, SQLITE_STATIC);
    }
    sqlite3_bind_int(st, 17, ship->acks);
    sqlite3_bind_int64(st, 18, (sqlite3_int64)ship->account);
    sqlite3_bind_int64(st, 19, (sqlite3_int64)ship->parent);
    sqlite3_bind_int(st, 20, ship->lifetime);
    sqlite3_bind_int64(st, 21, (sqlite3_int64)ship->lifetime_ms);
    sqlite3_bind_int64(st, 22, (sqlite3_int64)ship->spawn_tag);
    if (ship->access_len > 0) {
        sqlite3_bind_blob64(st, 23, ship->access, ship->access_len,
                            SQLITE_STATIC);
    }
    if (ship->sandbox_len > 0) {
        sqlite3_bind_blob64(st, 24, ship->sandbox, ship->sandbox_len,
                            SQLITE_STATIC);
    }
    return store__exec(s, st, "writing a ship");
}

static void store__copy_blob(sqlite3_stmt *st, int col, uint8_t *out,
                             size_t size)
{
    const void *p = sqlite3_column_blob(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    memset(out, 0, size);
    if (p != NULL) {
        memcpy(out, p, n < size ? n : size);
    }
}

static void store__copy_text(sqlite3_stmt *st, int col, char *out, size_t size)
{
    const unsigned char *p = sqlite3_column_text(st, col);
    snprintf(out, size, "%s", p ? (const char *)p : "");
}

/* Copy a blob column into a new allocation at *out with its length; a NULL
 * or empty column gives NULL and 0. Returns 0 or BERTH_ENOMEM. */
static int store__dup_blob(sqlite3_stmt *st, int col, char **out, size_t *len)
{
    const void *p = sqlite3_column_blob(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    *out = NULL;
    *len = 0;
    if (p == NULL || n == 0) {
        return 0;
    }
    *out = mem_alloc(n);
    if (*out == NULL) {
        return BERTH_ENOMEM;
    }
    memcpy(*out, p, n);
    *len = n;
    return 0;
}

/* Fill ship from the current row of a SELECT of STORE__SHIP_COLUMNS. */
static int store__row_ship(sqlite3_stmt *st, struct store_ship *ship)
{
    memset(ship, 0, sizeof *ship);
    ship->sid = (uint64_t)sqlite3_column_int64(st, 0);
    store__copy_text(st, 1, ship->id, sizeof ship->id);
    store__copy_text(st, 2, ship->name, sizeof ship->name);
    const unsigned char *program = sqlite3_column_text(st, 3);
    ship->program = mem_strdup(program ? (const char *)program : "");
    if (ship->program == NULL) {
        return BERTH_ENOMEM;
    }
    ship->created_ns = (uint64_t)sqlite3_column_int64(st, 4);
    ship->idle_timeout_ms = (uint64_t)sqlite3_column_int64(st, 5);
    ship->last_event = (uint64_t)sqlite3_column_int64(st, 6);
    ship->first_event = (uint64_t)sqlite3_column_int64(st, 7);
    ship->snapshot_event = (uint64_t)sqlite3_column_int64(st, 8);
    store__copy_blob(st, 9, ship->last_hash, sizeof ship->last_hash);
    store__copy_blob(st, 10, ship->public_key, sizeof ship->public_key);
    size_t secret_len = (size_t)sqlite3_column_bytes(st, 11);
    ship->secret_len =
        secret_len < sizeof ship->secret ? secret_len : sizeof ship->secret;
    store__copy_blob(st, 11, ship->secret, ship->secret_len);
    ship->alarm_ns = (uint64_t)sqlite3_column_int64(st, 12);
    ship->freeze_timeout_ms = (uint64_t)sqlite3_column_int64(st, 13);
    ship->acks = (uint8_t)sqlite3_column_int(st, 16);
    ship->account = (uint64_t)sqlite3_column_int64(st, 17);
    ship->parent = (uint64_t)sqlite3_column_int64(st, 18);
    ship->lifetime = (uint8_t)sqlite3_column_int(st, 19);
    ship->lifetime_ms = (uint64_t)sqlite3_column_int64(st, 20);
    ship->spawn_tag = (uint32_t)sqlite3_column_int64(st, 21);
    if (store__dup_blob(st, 14, &ship->args, &ship->args_len) != 0 ||
        store__dup_blob(st, 15, &ship->env, &ship->env_len) != 0 ||
        store__dup_blob(st, 22, &ship->access, &ship->access_len) != 0 ||
        store__dup_blob(st, 23, (char **)&ship->sandbox, &ship->sandbox_len) !=
            0) {
        store_ship_clear(ship);
        return BERTH_ENOMEM;
    }
    return 0;
}

/* Step a one-row ship query; 0, BERTH_ENOTFOUND or an error. */
static int store__one_ship(struct store *s, sqlite3_stmt *st,
                           struct store_ship *out)
{
    int rc = sqlite3_step(st);
    int rv;
    if (rc == SQLITE_ROW) {
        rv = store__row_ship(st, out);
        if (rv != 0) {
            err_printf(s->errmsg, "reading a ship: out of memory");
        }
    } else if (rc == SQLITE_DONE) {
        rv = BERTH_ENOTFOUND;
    } else {
        rv = store__fail(s, rc, "reading a ship");
    }
    sqlite3_reset(st);
    return rv;
}

int store_ship_get(struct store *s, const char *id_or_name,
                   struct store_ship *out)
{
    int rv = store__heads_write(s);
    if (rv != 0) {
        return rv;
    }
    sqlite3_stmt *st = store__stmt(s, ST_SHIP_BY_ID);
    sqlite3_bind_text(st, 1, id_or_name, -1, SQLITE_STATIC);
    rv = store__one_ship(s, st, out);
    if (rv != BERTH_ENOTFOUND) {
        return rv;
    }
    st = store__stmt(s, ST_SHIP_BY_NAME);
    sqlite3_bind_text(st, 1, id_or_name, -1, SQLITE_STATIC);
    return store__one_ship(s, st, out);
}

int store_ship_get_sid(struct store *s, uint64_t sid, struct store_ship *out)
{
    int rv = store__heads_write(s);
    if (rv != 0) {
        return rv;
    }
    sqlite3_stmt *st = store__stmt(s, ST_SHIP_BY_SID);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
    return store__one_ship(s, st, out);
}

uint64_t store_cache_bytes(struct store *s)
{
    int cur = 0, high = 0;
    if (sqlite3_db_status(s->db, SQLITE_DBSTATUS_CACHE_USED, &cur, &high, 0) !=
        SQLITE_OK) {
        return 0;
    }
    return cur > 0 ? (uint64_t)cur : 0;
}

int store_ship_block(struct store *s, uint64_t sid, bool blocked)
{
    sqlite3_stmt *st = store__stmt(s, ST_SHIP_BLOCK);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
    sqlite3_bind_int(st, 2, blocked ? 1 : 0);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        return store__fail(s, rc, "blocking a ship");
    }
    return sqlite3_changes(s->db) > 0 ? 0 : BERTH_ENOTFOUND;
}

int store_ship_head_get(struct store *s, uint64_t sid, uint64_t *last_event,
                        uint8_t *last_hash, uint64_t *alarm_ns)
{
    const struct heads_entry *e = heads_find(&s->heads, sid);
    if (e != NULL) {
        *last_event = e->last_event;
        memcpy(last_hash, e->hash, STORE_HASH_SIZE);
        *alarm_ns = e->alarm_ns;
        return 0;
    }
    sqlite3_stmt *st = store__stmt(s, ST_HEAD_GET);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
    int rc = sqlite3_step(st);
    int rv = 0;
    if (rc == SQLITE_ROW) {
        *last_event = (uint64_t)sqlite3_column_int64(st, 0);
        store__copy_blob(st, 1, last_hash, STORE_HASH_SIZE);
        *alarm_ns = (uint64_t)sqlite3_column_int64(st, 2);
    } else if (rc == SQLITE_DONE) {
        rv = BERTH_ENOTFOUND;
    } else {
        rv = store__fail(s, rc, "reading a ship");
    }
    sqlite3_reset(st);
    if (rv == 0 && s->batch) {
        /* Kept for the batch's next event of this ship; without memory,
         * the next read goes to the row again. */
        struct heads_entry keep = {
            .sid = sid, .last_event = *last_event, .alarm_ns = *alarm_ns};
        memcpy(keep.hash, last_hash, STORE_HASH_SIZE);
        heads_set(&s->heads, &keep);
    }
    return rv;
}

int store_ship_head_put(struct store *s, uint64_t sid, uint64_t last_event,
                        const uint8_t *last_hash, uint64_t alarm_ns,
                        uint64_t bytes, uint64_t events)
{
    if (!s->batch) {
        int rv = store__head_update(s, sid, last_event, last_hash, alarm_ns,
                                    bytes, events);
        int wv = store__acct_delta_write(s);
        return rv != 0 ? rv : wv;
    }
    const struct heads_entry *old = heads_find(&s->heads, sid);
    struct heads_entry e = {.sid = sid,
                            .last_event = last_event,
                            .alarm_ns = alarm_ns,
                            .bytes = bytes + (old ? old->bytes : 0),
                            .events = events + (old ? old->events : 0),
                            .dirty = true};
    memcpy(e.hash, last_hash, STORE_HASH_SIZE);
    if (heads_set(&s->heads, &e) != 0) {
        return store_set_error(s, BERTH_ENOMEM,
                               "writing a ship's head: out of memory");
    }
    return 0;
}

int store_ship_data_clear(struct store *s, uint64_t sid)
{
    static const int order[] = {ST_SHIP_EVENTS_DELETE, ST_SHIP_SNAPSHOT_DELETE,
                                ST_SHIP_PRIOR_DELETE};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        sqlite3_stmt *st = store__stmt(s, order[i]);
        sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
        int rv = store__exec(s, st, "clearing a ship's data");
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

static int store__token_stmt(struct store *s, const char *sql,
                             sqlite3_stmt **st);

int store_ship_delete(struct store *s, uint64_t sid)
{
    int rv = store__heads_release(s, sid);
    if (rv != 0) {
        return rv;
    }
    static const int order[] = {ST_SHIP_EVENTS_DELETE, ST_SHIP_SNAPSHOT_DELETE,
                                ST_SHIP_PRIOR_DELETE, ST_SHIP_DELETE};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        sqlite3_stmt *st = store__stmt(s, order[i]);
        sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
        rv = store__exec(s, st, "deleting a ship");
        if (rv != 0) {
            return rv;
        }
    }
    bool deleted = sqlite3_changes(s->db) > 0;
    sqlite3_stmt *st;
    static const char *const lineage[] = {
        "DELETE FROM mail WHERE target = ?1",
        "UPDATE ships SET parent = 0 WHERE parent = ?1",
    };
    for (size_t i = 0; i < sizeof lineage / sizeof lineage[0]; i++) {
        if ((rv = store__token_stmt(s, lineage[i], &st)) != 0) {
            return rv;
        }
        sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
            return store__fail(s, rc, "deleting a ship");
        }
    }
    return deleted ? 0 : BERTH_ENOTFOUND;
}

int store_ship_foreach(struct store *s, store_ship_cb cb, void *arg)
{
    int rv = store__heads_write(s);
    if (rv != 0) {
        return rv;
    }
    sqlite3_stmt *st = store__stmt(s, ST_SHIP_ALL);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_ship ship;
        rv = store__row_ship(st, &ship);
        if (rv == 0) {
            rv = cb(&ship, arg);
        }
        store_ship_clear(&ship);
        if (rv != 0) {
            break;
        }
    }
    if (rv == 0 && rc != SQLITE_DONE) {
        rv = store__fail(s, rc, "listing ships");
    }
    sqlite3_reset(st);
    return rv;
}

int store_ship_brief_foreach(struct store *s, uint64_t after_sid,
                             store_ship_brief_cb cb, void *arg)
{
    int rv = store__heads_write(s);
    if (rv != 0) {
        return rv;
    }
    sqlite3_stmt *st = store__stmt(s, ST_SHIP_BRIEF);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)after_sid);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_ship_brief b;
        const unsigned char *id = sqlite3_column_text(st, 1);
        const unsigned char *name = sqlite3_column_text(st, 2);
        const unsigned char *program = sqlite3_column_text(st, 3);
        b.sid = (uint64_t)sqlite3_column_int64(st, 0);
        b.id = id ? (const char *)id : "";
        b.name = name ? (const char *)name : "";
        b.program = program ? (const char *)program : "";
        b.alarm_ns = (uint64_t)sqlite3_column_int64(st, 4);
        b.account = (uint64_t)sqlite3_column_int64(st, 5);
        struct sandbox sb;
        b.hidden =
            sandbox_decode(sqlite3_column_blob(st, 6),
                           (size_t)sqlite3_column_bytes(st, 6), &sb) == 0 &&
            (sb.flags & SANDBOX_HIDDEN);
        b.blocked = sqlite3_column_int64(st, 7) != 0;
        rv = cb(&b, arg);
        if (rv != 0) {
            break;
        }
    }
    if (rv == 0 && rc != SQLITE_DONE) {
        rv = store__fail(s, rc, "listing ships");
    }
    sqlite3_reset(st);
    return rv;
}

int store_ship_count(struct store *s, uint64_t *count)
{
    sqlite3_stmt *st = store__stmt(s, ST_SHIP_COUNT);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return store__fail(s, rc, "counting ships");
    }
    *count = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return 0;
}

int store_event_put(struct store *s, uint64_t sid, uint64_t number,
                    const void *rec, size_t len)
{
    sqlite3_stmt *st = store__stmt(s, ST_EVENT_PUT);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)number);
    sqlite3_bind_blob64(st, 3, rec, len, SQLITE_STATIC);
    return store__exec(s, st, "writing an event");
}

int store_event_foreach(struct store *s, uint64_t sid, uint64_t from,
                        const uint8_t *prev_hash, store_event_cb cb, void *arg)
{
    uint64_t last_event, alarm;
    uint8_t head[STORE_HASH_SIZE], chain[STORE_HASH_SIZE];
    int rv = store_ship_head_get(s, sid, &last_event, head, &alarm);
    if (rv != 0) {
        return rv;
    }
    if (prev_hash != NULL) {
        memcpy(chain, prev_hash, sizeof chain);
    }
    from = from == 0 ? 1 : from; /* events are numbered from 1 */
    sqlite3_stmt *st = store__stmt(s, ST_EVENT_FROM);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)from);
    uint64_t expect = from;
    bool linked = prev_hash != NULL;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t n = (uint64_t)sqlite3_column_int64(st, 0);
        const uint8_t *rec = sqlite3_column_blob(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        struct record_event ev;
        const char *bad = NULL;
        if (n != expect) {
            bad = "is missing";
            n = expect;
        } else if (record_decode_event(rec, len, &ev) != 0) {
            bad = "does not decode";
        } else if (ev.sid != sid || ev.number != n) {
            bad = "belongs to another ship or place";
        } else if (linked &&
                   memcmp(ev.prev_hash, chain, STORE_HASH_SIZE) != 0) {
            /* The previous record is the one that changed, or this one's
             * link did. */
            bad = n == from ? "does not follow from the snapshot"
                            : "breaks the hash chain (it or the one before "
                              "it was altered)";
        }
        if (bad != NULL) {
            err_printf(s->errmsg, "event %llu %s", (unsigned long long)n, bad);
            rv = BERTH_ECORRUPT;
            break;
        }
        record_hash(rec, len, chain);
        linked = true;
        expect++;
        rv = cb(n, rec, len, arg);
        if (rv != 0) {
            break;
        }
    }
    if (rv == 0 && rc != SQLITE_DONE) {
        rv = store__fail(s, rc, "reading events");
    }
    sqlite3_reset(st);
    if (rv != 0) {
        return rv;
    }
    /* The walk reached the end: it must end at the ship's head. */
    uint64_t end = expect - 1;
    if (from <= last_event + 1 && end != last_event) {
        err_printf(s->errmsg,
                   "the ship's last event is %llu but its "
                   "events end at %llu",
                   (unsigned long long)last_event, (unsigned long long)end);
        return BERTH_ECORRUPT;
    }
    if (linked && end == last_event &&
        memcmp(chain, head, STORE_HASH_SIZE) != 0) {
        err_printf(s->errmsg,
                   "event %llu does not match the ship's head "
                   "hash (the event or the head was altered)",
                   (unsigned long long)last_event);
        return BERTH_ECORRUPT;
    }
    return 0;
}

int store_event_hash(struct store *s, uint64_t sid, uint64_t number,
                     uint8_t *out)
{
    struct buf rec;
    buf_init(&rec);
    int rv = store_event_get(s, sid, number, &rec);
    if (rv == 0) {
        record_hash(rec.data, rec.len, out);
    }
    buf_free(&rec);
    return rv;
}

int store_event_get(struct store *s, uint64_t sid, uint64_t number,
                    struct buf *out)
{
    sqlite3_stmt *st = store__stmt(s, ST_EVENT_GET);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)number);
    int rc = sqlite3_step(st);
    int rv = 0;
    if (rc == SQLITE_ROW) {
        rv = buf_append(out, sqlite3_column_blob(st, 0),
                        (size_t)sqlite3_column_bytes(st, 0));
        if (rv != 0) {
            err_printf(s->errmsg, "reading an event: out of memory");
        }
    } else if (rc == SQLITE_DONE) {
        err_printf(s->errmsg, "event %llu is missing",
                   (unsigned long long)number);
        rv = BERTH_ENOTFOUND;
    } else {
        rv = store__fail(s, rc, "reading an event");
    }
    sqlite3_reset(st);
    return rv;
}

int store_event_truncate(struct store *s, uint64_t sid, uint64_t upto)
{
    sqlite3_stmt *st = store__stmt(s, ST_EVENT_TRUNCATE);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)upto);
    s->marked = true;
    return store__exec(s, st, "marking events for deletion");
}

bool store_marked(const struct store *s)
{
    return s->marked;
}

int store_sweep(struct store *s)
{
    if (!s->marked) {
        return 0;
    }
    int rv = store__batch_begin(s);
    if (rv == 0) {
        sqlite3_stmt *st = store__stmt(s, ST_SWEEP_EVENTS);
        sqlite3_bind_int(st, 1, STORE_SWEEP_SHIPS);
        rv = store__exec(s, st, "deleting the events snapshots stand for");
    }
    if (rv == 0) {
        sqlite3_stmt *st = store__stmt(s, ST_SWEEP_MARKS);
        sqlite3_bind_int(st, 1, STORE_SWEEP_SHIPS);
        rv = store__exec(s, st, "deleting truncation marks");
    }
    if (rv == 0) {
        /* The same ships in both (the lowest sids); a full count may have
         * left more. */
        s->marked = sqlite3_changes(s->db) == STORE_SWEEP_SHIPS;
    }
    return store__batch_lost(s, rv);
}

int store_snapshot_put(struct store *s, uint64_t sid,
                       const struct store_snapshot *snap, const void *data,
                       size_t len)
{
    uint8_t sum[STORE_HASH_SIZE];
    sqlite3_stmt *keep = store__stmt(s, ST_PRIOR_KEEP);
    sqlite3_bind_int64(keep, 1, (sqlite3_int64)sid);
    int rv = store__exec(s, keep, "keeping the prior snapshot");
    if (rv != 0) {
        return rv;
    }
    record_snapshot_sum(sid, snap->number, snap->epoch, snap->chain,
                        snap->sealed, data, len, sum);
    sqlite3_stmt *st = store__stmt(s, ST_SNAPSHOT_PUT);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)snap->number);
    sqlite3_bind_blob(st, 3, snap->epoch, STORE_HASH_SIZE, SQLITE_STATIC);
    /* A zero-length blob must still be a blob, not NULL. */
    sqlite3_bind_blob64(st, 4, len ? data : "", len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, snap->chain, STORE_HASH_SIZE, SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, sum, sizeof sum, SQLITE_STATIC);
    sqlite3_bind_int(st, 7, snap->sealed ? 1 : 0);
    return store__exec(s, st, "writing a snapshot");
}

/* Read a snapshot row of sid with statement which (ST_SNAPSHOT_GET or
 * ST_PRIOR_GET), checking its checksum. */
static int store__snapshot_read(struct store *s, int which, uint64_t sid,
                                struct store_snapshot *out, struct buf *data)
{
    sqlite3_stmt *st = store__stmt(s, which);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
    int rc = sqlite3_step(st);
    int rv = 0;
    if (rc == SQLITE_ROW) {
        uint8_t want[STORE_HASH_SIZE], sum[STORE_HASH_SIZE];
        const uint8_t *bytes = sqlite3_column_blob(st, 2);
        size_t len = (size_t)sqlite3_column_bytes(st, 2);
        out->number = (uint64_t)sqlite3_column_int64(st, 0);
        store__copy_blob(st, 1, out->epoch, STORE_HASH_SIZE);
        store__copy_blob(st, 3, out->chain, STORE_HASH_SIZE);
        store__copy_blob(st, 4, want, sizeof want);
        out->sealed = sqlite3_column_int(st, 5) != 0;
        record_snapshot_sum(sid, out->number, out->epoch, out->chain,
                            out->sealed, bytes, len, sum);
        if (sqlite3_column_bytes(st, 1) != STORE_HASH_SIZE ||
            sqlite3_column_bytes(st, 3) != STORE_HASH_SIZE ||
            sodium_memcmp(sum, want, sizeof sum) != 0) {
            err_printf(s->errmsg,
                       "the %ssnapshot at event %llu fails its checksum",
                       which == ST_PRIOR_GET ? "prior " : "",
                       (unsigned long long)out->number);
            rv = BERTH_ECORRUPT;
        } else if ((rv = buf_append(data, bytes, len)) != 0) {
            err_printf(s->errmsg, "reading a snapshot: out of memory");
        }
    } else if (rc == SQLITE_DONE) {
        rv = BERTH_ENOTFOUND;
    } else {
        rv = store__fail(s, rc, "reading a snapshot");
    }
    sqlite3_reset(st);
    return rv;
}

int store_snapshot_get(struct store *s, uint64_t sid,
                       struct store_snapshot *out, struct buf *data)
{
    return store__snapshot_read(s, ST_SNAPSHOT_GET, sid, out, data);
}

int store_prior_snapshot_get(struct store *s, uint64_t sid,
                             struct store_snapshot *out, struct buf *data)
{
    return store__snapshot_read(s, ST_PRIOR_GET, sid, out, data);
}

/* --- Images. --- */

int store_bytes(struct store *s, uint64_t *bytes)
{
    int pages, page_size;
    int rv = store__pragma_int(s, "PRAGMA page_count", &pages);
    if (rv == 0) {
        rv = store__pragma_int(s, "PRAGMA page_size", &page_size);
    }
    if (rv == 0) {
        *bytes = (uint64_t)pages * (uint64_t)page_size;
    }
    return rv;
}

int store_image_begin(struct store *s, struct store_image *img)
{
    if (s->pinned) {
        err_printf(s->errmsg, "an image of the store is being taken already");
        return BERTH_EBUSY;
    }
    if (store__in_memory(s)) {
        err_printf(s->errmsg, "a store in memory has no file to copy");
        return BERTH_EINVAL;
    }
    /* After a full checkpoint the file alone holds every commit. */
    int rv = store_sync(s);
    if (rv != 0) {
        return rv;
    }
    rv = store_meta_get(s, "applied_index", &img->index);
    if (rv != 0) {
        return rv;
    }
    img->fd = s->fd;
    struct stat st;
    if (fstat(img->fd, &st) != 0) {
        err_printf(s->errmsg, "reading %s for an image: %s", s->path,
                   strerror(errno));
        return BERTH_EIO;
    }
    img->size = (uint64_t)st.st_size;
    /* In WAL mode only a checkpoint writes the database file: with none,
     * the file stays what it is now while commits go on into the WAL. */
    sqlite3_wal_autocheckpoint(s->db, 0);
    s->pinned = true;
    return 0;
}

/* Hash what the image's checksum covers: the header's first 32 bytes and
 * the file's bytes. */
static void store__image_sum(const uint8_t *image, uint64_t size, uint8_t *out)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, STORE_HASH_SIZE);
    crypto_generichash_update(&st, image, 32);
    crypto_generichash_update(&st, image + STORE_IMAGE_HEADER, size);
    crypto_generichash_final(&st, out, STORE_HASH_SIZE);
}

/* The header's own check: the first 4 bytes of BLAKE2b over its fields
 * (bytes 0-11 and 16-31), so that the index can be trusted without hashing
 * the whole image. */
static uint32_t store__header_sum(const uint8_t *image)
{
    uint8_t fields[28], sum[16];
    memcpy(fields, image, 12);
    memcpy(fields + 12, image + 16, 16);
    crypto_generichash(sum, sizeof sum, fields, sizeof fields, NULL, 0);
    return get_le32(sum);
}

int store_image_read(const struct store_image *img, uint8_t *out)
{
    uint8_t *data = out + STORE_IMAGE_HEADER;
    uint64_t off = 0;
    while (off < img->size) {
        ssize_t n = pread(img->fd, data + off, img->size - off, (off_t)off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return BERTH_EIO; /* an error, or the file shrank under us */
        }
        off += (uint64_t)n;
    }
    put_le64(out, STORE_IMAGE_MAGIC);
    put_le32(out + 8, STORE_IMAGE_FORMAT);
    put_le64(out + 16, img->index);
    put_le64(out + 24, img->size);
    put_le32(out + 12, store__header_sum(out));
    store__image_sum(out, img->size, out + 32);
    return 0;
}

void store_image_end(struct store *s, struct store_image *img)
{
    img->fd = -1; /* the store's own: it stays open */
    s->pinned = false;
    sqlite3_wal_autocheckpoint(s->db, STORE__AUTOCHECKPOINT);
}

/* The first bytes of every SQLite database file. */
static const char store__sqlite_magic[16] = "SQLite format 3";

int store_image_index(const uint8_t *image, size_t len, uint64_t *index)
{
    if (len < STORE_IMAGE_HEADER + sizeof store__sqlite_magic ||
        get_le64(image) != STORE_IMAGE_MAGIC ||
        get_le32(image + 8) != STORE_IMAGE_FORMAT ||
        get_le32(image + 12) != store__header_sum(image) ||
        get_le64(image + 24) != len - STORE_IMAGE_HEADER ||
        memcmp(image + STORE_IMAGE_HEADER, store__sqlite_magic,
               sizeof store__sqlite_magic) != 0) {
        return BERTH_ECORRUPT;
    }
    *index = get_le64(image + 16);
    return 0;
}

int store_image_check(const uint8_t *image, size_t len, uint64_t *index)
{
    uint8_t sum[STORE_HASH_SIZE];
    int rv = store_image_index(image, len, index);
    if (rv != 0) {
        return rv;
    }
    store__image_sum(image, len - STORE_IMAGE_HEADER, sum);
    return sodium_memcmp(sum, image + 32, sizeof sum) == 0 ? 0 : BERTH_ECORRUPT;
}

/* Remove path with suffix appended, if it exists. */
static void store__unlink_suffix(const char *path, const char *suffix)
{
    char p[4096];
    snprintf(p, sizeof p, "%s%s", path, suffix);
    unlink(p);
}

int store_image_restore(struct store *s, const uint8_t *image, size_t len,
                        bool *replaced)
{
    uint64_t index, applied;
    *replaced = false;
    if (store_image_index(image, len, &index) != 0) {
        err_printf(s->errmsg, "the store image's header fails its checks");
        return BERTH_ECORRUPT;
    }
    int rv = store_flush(s);
    if (rv != 0) {
        return rv;
    }
    if (s->pinned || sqlite3_get_autocommit(s->db) == 0) {
        err_printf(s->errmsg, "the store is busy: it cannot be replaced now");
        return BERTH_EBUSY;
    }
    if (store__in_memory(s)) {
        err_printf(s->errmsg, "a store in memory has no file to replace");
        return BERTH_EINVAL;
    }
    rv = store_meta_get(s, "applied_index", &applied);
    if (rv != 0 || applied >= index) {
        return rv;
    }
    /* Only an image that is used is hashed whole: on a restart the store
     * holds its latest snapshot already, which may be hundreds of MB. */
    if (store_image_check(image, len, &index) != 0) {
        err_printf(s->errmsg, "the store image fails its checksum");
        return BERTH_ECORRUPT;
    }
    size_t n = strlen(s->path) + sizeof ".restore";
    char *tmp = mem_alloc(n);
    if (tmp == NULL) {
        err_printf(s->errmsg, "replacing the store: out of memory");
        return BERTH_ENOMEM;
    }
    snprintf(tmp, n, "%s.restore", s->path);
    rv = file_write_synced(tmp, image + STORE_IMAGE_HEADER,
                           len - STORE_IMAGE_HEADER, s->errmsg);
    if (rv != 0) {
        goto out;
    }
    /* Empty the WAL into the old file first: once the WAL is removed below,
     * the old file must stand alone should the rename not happen. */
    rv = store_sync(s);
    if (rv != 0) {
        unlink(tmp);
        goto out;
    }
    store__close_db(s);
    /* A WAL left next to the new file would be replayed into it. */
    store__unlink_suffix(s->path, "-wal");
    store__unlink_suffix(s->path, "-shm");
    if (rename(tmp, s->path) != 0) {
        err_printf(s->errmsg, "renaming %s: %s", tmp, strerror(errno));
        unlink(tmp);
        rv = store__open_db(s, s->path);
        rv = rv != 0 ? rv : BERTH_EIO;
        goto out;
    }
    /* The new contents are in place: reopen them even if the directory
     * cannot be synced, so that s stays usable either way. */
    rv = file_sync_dir(s->path, s->errmsg);
    int reopened = store__open_db(s, s->path);
    *replaced = reopened == 0;
    rv = reopened != 0 ? reopened : rv;
out:
    mem_free(tmp);
    return rv;
}

/* --- Tokens of the admin API. ---
 *
 * Few and rarely touched: their statements are prepared at each call. */

/* Prepare sql into *st; 0 or a negative code with the store's message. */
static int store__token_stmt(struct store *s, const char *sql,
                             sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? 0 : store__fail(s, rc, "tokens");
}

#define STORE__TOKEN_COLUMNS "id, hash, scope, name, account, created_ns"

static void store__row_token(sqlite3_stmt *st, struct store_token *t)
{
    memset(t, 0, sizeof *t);
    store__copy_text(st, 0, t->id, sizeof t->id);
    store__copy_blob(st, 1, t->hash, sizeof t->hash);
    t->scope = (uint8_t)sqlite3_column_int(st, 2);
    store__copy_text(st, 3, t->name, sizeof t->name);
    t->account = (uint64_t)sqlite3_column_int64(st, 4);
    t->created_ns = (uint64_t)sqlite3_column_int64(st, 5);
}

int store_token_put(struct store *s, const struct store_token *t)
{
    sqlite3_stmt *st;
    int rv = store__token_stmt(s,
                               "INSERT INTO tokens (" STORE__TOKEN_COLUMNS
                               ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                               &st);
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, t->hash, sizeof t->hash, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, t->scope);
    if (t->name[0] != '\0') {
        sqlite3_bind_text(st, 4, t->name, -1, SQLITE_STATIC);
    } /* else NULL: unnamed tokens do not collide */
    sqlite3_bind_int64(st, 5, (sqlite3_int64)t->account);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)t->created_ns);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : store__fail(s, rc, "writing a token");
}

int store_token_get(struct store *s, const char *id_or_name,
                    struct store_token *out)
{
    sqlite3_stmt *st;
    int rv = store__token_stmt(
        s,
        "SELECT " STORE__TOKEN_COLUMNS " FROM tokens WHERE id = ?1 "
        "UNION ALL SELECT " STORE__TOKEN_COLUMNS " FROM tokens WHERE name = ?1 "
        "AND id <> ?1 LIMIT 1",
        &st);
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_text(st, 1, id_or_name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        store__row_token(st, out);
        rv = 0;
    } else if (rc == SQLITE_DONE) {
        rv = BERTH_ENOTFOUND;
    } else {
        rv = store__fail(s, rc, "reading a token");
    }
    sqlite3_finalize(st);
    return rv;
}

int store_token_delete(struct store *s, const char *id)
{
    sqlite3_stmt *st;
    int rv = store__token_stmt(s, "DELETE FROM tokens WHERE id = ?1", &st);
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return store__fail(s, rc, "deleting a token");
    }
    return sqlite3_changes(s->db) > 0 ? 0 : BERTH_ENOTFOUND;
}

int store_token_foreach(struct store *s, store_token_cb cb, void *arg)
{
    sqlite3_stmt *st;
    int rv = store__token_stmt(s,
                               "SELECT " STORE__TOKEN_COLUMNS
                               " FROM tokens ORDER BY created_ns, id",
                               &st);
    if (rv != 0) {
        return rv;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_token t;
        store__row_token(st, &t);
        rv = cb(&t, arg);
        if (rv != 0) {
            break;
        }
    }
    if (rv == 0 && rc != SQLITE_DONE) {
        rv = store__fail(s, rc, "reading tokens");
    }
    sqlite3_finalize(st);
    return rv;
}

/* --- Wrapped data keys. --- */

int store_data_keys_put(struct store *s, const uint8_t *wrapped, size_t size,
                        uint32_t count)
{
    sqlite3_stmt *st;
    int rv = store__pragma(s, "DELETE FROM data_keys");
    if (rv != 0) {
        return rv;
    }
    int rc = sqlite3_prepare_v2(
        s->db, "INSERT INTO data_keys (kid, wrapped) VALUES (?1, ?2)", -1, &st,
        NULL);
    if (rc != SQLITE_OK) {
        return store__fail(s, rc, "data keys");
    }
    for (uint32_t i = 0; i < count && rv == 0; i++) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)i + 1);
        sqlite3_bind_blob(st, 2, wrapped + (size_t)i * size, (int)size,
                          SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) {
            rv = store__fail(s, rc, "writing the data keys");
        }
    }
    sqlite3_finalize(st);
    return rv;
}

int store_data_keys_get(struct store *s, uint8_t *out, size_t size,
                        uint32_t max, uint32_t *count)
{
    sqlite3_stmt *st;
    *count = 0;
    int rc = sqlite3_prepare_v2(
        s->db, "SELECT kid, wrapped FROM data_keys ORDER BY kid", -1, &st,
        NULL);
    if (rc != SQLITE_OK) {
        return store__fail(s, rc, "data keys");
    }
    int rv = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_int64(st, 0) != (sqlite3_int64)*count + 1 ||
            (size_t)sqlite3_column_bytes(st, 1) != size || *count == max) {
            rv = store_set_error(s, BERTH_ECORRUPT,
                                 "the data keys table is not keys 1..n of "
                                 "%zu bytes, at most %u",
                                 size, (unsigned)max);
            break;
        }
        memcpy(out + (size_t)*count * size, sqlite3_column_blob(st, 1), size);
        (*count)++;
    }
    if (rv == 0 && rc != SQLITE_DONE) {
        rv = store__fail(s, rc, "reading the data keys");
    }
    sqlite3_finalize(st);
    return rv;
}

/* --- Accounts. ---
 *
 * Few and rarely changed: their statements are prepared at each call, but
 * for the ones a request may run (store_ship_account). */

/* Read a usage from columns first to first + 7 of st, in the order of
 * struct store_usage. */
static void store__row_usage(sqlite3_stmt *st, int first, struct store_usage *u)
{
    uint64_t *f[] = {&u->ships,  &u->storage_bytes,     &u->events,
                     &u->cpu_us, &u->memory_peak_bytes, &u->memory_byte_seconds,
                     &u->wakes,  &u->requests};
    for (int i = 0; i < 8; i++) {
        *f[i] = (uint64_t)sqlite3_column_int64(st, first + i);
    }
}

static void store__row_account(sqlite3_stmt *st, struct store_account *a)
{
    memset(a, 0, sizeof *a);
    a->id = (uint64_t)sqlite3_column_int64(st, 0);
    store__copy_text(st, 1, a->name, sizeof a->name);
    a->disabled = sqlite3_column_int(st, 2) != 0;
    a->created_ns = (uint64_t)sqlite3_column_int64(st, 3);
    store__row_usage(st, 4, &a->usage);
    for (int i = 0; i < QUOTA__COUNT; i++) {
        a->limits[i] = sqlite3_column_type(st, 12 + i) == SQLITE_NULL
                           ? QUOTA_DEFAULT
                           : (uint64_t)sqlite3_column_int64(st, 12 + i);
    }
    a->caps.memory_bytes = (uint64_t)sqlite3_column_int64(st, 17);
    a->caps.cpu_millis = (uint32_t)sqlite3_column_int64(st, 18);
    a->caps.pids = (uint32_t)sqlite3_column_int64(st, 19);
}

/* Run st, prepared, to its one row of an account into *out (may be NULL
 * for a count), and finalize it; 0, BERTH_ENOTFOUND or a store error. */
static int store__account_one(struct store *s, sqlite3_stmt *st,
                              struct store_account *out)
{
    int rc = sqlite3_step(st);
    int rv;
    if (rc == SQLITE_ROW) {
        store__row_account(st, out);
        rv = 0;
    } else if (rc == SQLITE_DONE) {
        rv = BERTH_ENOTFOUND;
    } else {
        rv = store__fail(s, rc, "reading an account");
    }
    sqlite3_finalize(st);
    return rv;
}

int store_account_new(struct store *s, const char *name, uint64_t created_ns,
                      uint64_t *id)
{
    /* Ids are never given twice, so that nothing that named a removed
     * account (a scope on its way to the leader) names a new one. */
    uint64_t last;
    int rv = store_meta_get(s, "last_account", &last);
    if (rv != 0) {
        return rv;
    }
    sqlite3_stmt *st;
    rv = store__token_stmt(s,
                           "INSERT INTO accounts (id, name, disabled, "
                           "created_ns) VALUES (?1, ?2, 0, ?3)",
                           &st);
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)(last + 1));
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)created_ns);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return store__fail(s, rc, "writing an account");
    }
    *id = last + 1;
    return store_meta_put(s, "last_account", last + 1);
}

int store_account_get(struct store *s, const char *name,
                      struct store_account *out)
{
    if (store__heads_write(s) != 0) {
        return BERTH_EIO;
    }
    sqlite3_stmt *st;
    int rv = store__token_stmt(
        s, "SELECT " STORE__ACCOUNT_COLUMNS " FROM accounts WHERE name = ?1",
        &st);
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    return store__account_one(s, st, out);
}

int store_account_get_id(struct store *s, uint64_t id,
                         struct store_account *out)
{
    if (store__heads_write(s) != 0) {
        return BERTH_EIO;
    }
    sqlite3_stmt *st = store__stmt(s, ST_ACCOUNT_BY_ID);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    int rc = sqlite3_step(st);
    int rv;
    if (rc == SQLITE_ROW) {
        store__row_account(st, out);
        rv = 0;
    } else if (rc == SQLITE_DONE) {
        rv = BERTH_ENOTFOUND;
    } else {
        rv = store__fail(s, rc, "reading an account");
    }
    sqlite3_reset(st);
    return rv;
}

/* Run st, prepared, which changes rows, and finalize it; 0, or
 * BERTH_ENOTFOUND when it changed none. */
static int store__account_change(struct store *s, sqlite3_stmt *st,
                                 const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return store__fail(s, rc, what);
    }
    return sqlite3_changes(s->db) > 0 ? 0 : BERTH_ENOTFOUND;
}

int store_account_set_disabled(struct store *s, uint64_t id, bool disabled)
{
    sqlite3_stmt *st;
    int rv = store__token_stmt(
        s, "UPDATE accounts SET disabled = ?2 WHERE id = ?1", &st);
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    sqlite3_bind_int(st, 2, disabled ? 1 : 0);
    return store__account_change(s, st, "changing an account");
}

int store_account_delete(struct store *s, uint64_t id)
{
    if (id == 0) {
        /* Tokens of account 0 are the operator's: never deleted here. */
        return BERTH_EINVAL;
    }
    sqlite3_stmt *st;
    int rv = store__token_stmt(s, "DELETE FROM tokens WHERE account = ?1", &st);
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    rv = store__account_change(s, st, "deleting an account's tokens");
    if (rv != 0 && rv != BERTH_ENOTFOUND) {
        return rv;
    }
    rv = store__token_stmt(s, "DELETE FROM accounts WHERE id = ?1", &st);
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    return store__account_change(s, st, "deleting an account");
}

int store_account_foreach(struct store *s, store_account_cb cb, void *arg)
{
    if (store__heads_write(s) != 0) {
        return BERTH_EIO;
    }
    sqlite3_stmt *st;
    int rv = store__token_stmt(
        s, "SELECT " STORE__ACCOUNT_COLUMNS " FROM accounts ORDER BY id", &st);
    if (rv != 0) {
        return rv;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_account a;
        store__row_account(st, &a);
        rv = cb(&a, arg);
        if (rv != 0) {
            break;
        }
    }
    if (rv == 0 && rc != SQLITE_DONE) {
        rv = store__fail(s, rc, "reading accounts");
    }
    sqlite3_finalize(st);
    return rv;
}

/* Run st, prepared, to its one integer into *out, and finalize it. */
static int store__account_int(struct store *s, sqlite3_stmt *st, uint64_t *out)
{
    int rc = sqlite3_step(st);
    int rv = 0;
    if (rc == SQLITE_ROW) {
        *out = (uint64_t)sqlite3_column_int64(st, 0);
    } else if (rc == SQLITE_DONE) {
        rv = BERTH_ENOTFOUND;
    } else {
        rv = store__fail(s, rc, "reading accounts");
    }
    sqlite3_finalize(st);
    return rv;
}

int store_account_disabled_count(struct store *s, uint64_t *n)
{
    sqlite3_stmt *st;
    int rv = store__token_stmt(
        s, "SELECT count(*) FROM accounts WHERE disabled <> 0", &st);
    return rv != 0 ? rv : store__account_int(s, st, n);
}

int store_account_ship_count(struct store *s, uint64_t account, uint64_t *n)
{
    sqlite3_stmt *st;
    int rv = store__token_stmt(
        s, "SELECT count(*) FROM ships WHERE account = ?1", &st);
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)account);
    return store__account_int(s, st, n);
}

int store_ship_account(struct store *s, uint64_t sid, uint64_t *account)
{
    sqlite3_stmt *st = store__stmt(s, ST_SHIP_ACCOUNT);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
    int rc = sqlite3_step(st);
    int rv = 0;
    if (rc == SQLITE_ROW) {
        *account = (uint64_t)sqlite3_column_int64(st, 0);
    } else if (rc == SQLITE_DONE) {
        rv = BERTH_ENOTFOUND;
    } else {
        rv = store__fail(s, rc, "reading a ship's account");
    }
    sqlite3_reset(st);
    return rv;
}

int store_account_ships(struct store *s, uint64_t account, uint64_t after_sid,
                        store_account_ship_cb cb, void *arg)
{
    sqlite3_stmt *st;
    int rv = store__token_stmt(s,
                               "SELECT sid, alarm_ns FROM ships WHERE "
                               "account = ?1 AND sid > ?2 ORDER BY sid",
                               &st);
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)account);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)after_sid);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        rv = cb((uint64_t)sqlite3_column_int64(st, 0),
                (uint64_t)sqlite3_column_int64(st, 1), arg);
        if (rv != 0) {
            break;
        }
    }
    if (rv == 0 && rc != SQLITE_DONE) {
        rv = store__fail(s, rc, "reading an account's ships");
    }
    sqlite3_finalize(st);
    return rv;
}

/* --- Recorded usage. --- */

int store_usage_add(struct store *s, uint64_t sid, int64_t bytes)
{
    if (s->no_usage) {
        return 0;
    }
    int rv = store__heads_write(s);
    if (rv != 0) {
        return rv;
    }
    sqlite3_stmt *st = store__stmt(s, ST_USAGE_SHIP);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
    sqlite3_bind_int64(st, 2, bytes);
    uint64_t account;
    bool found;
    rv = store__update_returning(s, st, &account, &found,
                                 "recording a ship's usage");
    if (rv != 0) {
        return rv;
    }
    if (found) {
        store__crawl_note(s, account, sid, 0, bytes);
    }
    return found ? store__account_usage(s, account, 0, bytes, 0)
                 : BERTH_ENOTFOUND;
}

int store_usage_ships(struct store *s, uint64_t account, int64_t ships,
                      int64_t bytes, uint64_t events)
{
    if (s->no_usage) {
        return 0;
    }
    return store__account_usage(s, account, ships, bytes, events);
}

int store_usage_measured(struct store *s, const struct store_measured *m)
{
    if (s->no_usage) {
        return 0;
    }
    int rv = store__heads_write(s);
    if (rv != 0) {
        return rv;
    }
    sqlite3_stmt *st = store__stmt(s, ST_USAGE_MEASURED);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)m->sid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)m->cpu_us);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)m->memory_peak_bytes);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)m->memory_byte_seconds);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)m->wakes);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)m->requests);
    uint64_t account;
    bool found;
    rv = store__update_returning(s, st, &account, &found,
                                 "recording a ship's usage");
    if (rv != 0 || !found) {
        return rv; /* a ship removed since: nothing to record */
    }
    st = store__stmt(s, ST_USAGE_MEASURED_ACCOUNT);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)account);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)m->cpu_us);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)m->memory_peak_bytes);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)m->memory_byte_seconds);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)m->wakes);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)m->requests);
    return store__exec(s, st, "recording an account's usage");
}

/* Run st, prepared, to its one row of integers into out[0..n-1] (0 for a
 * NULL; all 0 without a row), and finalize it. */
static int store__ints(struct store *s, sqlite3_stmt *st, uint64_t *out, int n,
                       bool *found, const char *what)
{
    int rc = sqlite3_step(st);
    for (int i = 0; i < n; i++) {
        out[i] = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, i) : 0;
    }
    if (found != NULL) {
        *found = rc == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store__fail(s, rc, what);
}

int store_usage_ship_gone(struct store *s, uint64_t sid)
{
    if (s->no_usage) {
        return 0;
    }
    int rv = store__heads_write(s);
    sqlite3_stmt *st;
    if (rv != 0 ||
        (rv = store__token_stmt(s,
                                "SELECT account, usage_bytes FROM ships "
                                "WHERE sid = ?1",
                                &st)) != 0) {
        return rv;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
    uint64_t v[2];
    bool found;
    rv = store__ints(s, st, v, 2, &found, "reading a ship's usage");
    if (rv != 0 || !found) {
        return rv;
    }
    store__crawl_note(s, v[0], sid, -1, -(int64_t)v[1]);
    return store__account_usage(s, v[0], -1, -(int64_t)v[1], 0);
}

int store_event_bytes(struct store *s, uint64_t sid, uint64_t from, uint64_t to,
                      uint64_t *bytes)
{
    sqlite3_stmt *st;
    int rv = store__token_stmt(s,
                               "SELECT coalesce(sum(length(rec)), 0) FROM "
                               "events WHERE sid = ?1 AND n >= ?2 AND n <= ?3",
                               &st);
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)from);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)to);
    return store__ints(s, st, bytes, 1, NULL, "reading events' sizes");
}

int store_snapshot_bytes(struct store *s, uint64_t sid, uint64_t *latest,
                         uint64_t *prior)
{
    sqlite3_stmt *st;
    int rv = store__token_stmt(
        s,
        "SELECT coalesce((SELECT length(data) FROM snapshots WHERE sid = ?1), "
        "0), coalesce((SELECT length(data) FROM prior_snapshots WHERE sid = "
        "?1), 0)",
        &st);
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
    uint64_t v[2];
    rv = store__ints(s, st, v, 2, NULL, "reading snapshots' sizes");
    *latest = v[0];
    *prior = v[1];
    return rv;
}

int store_account_set_limits(struct store *s, uint64_t id,
                             const uint64_t *limits)
{
    static const char *const cols[QUOTA__COUNT] = {
        [QUOTA_SHIPS] = "limit_ships",   [QUOTA_STORAGE] = "limit_bytes",
        [QUOTA_AWAKE] = "limit_awake",   [QUOTA_CPU] = "limit_cpu",
        [QUOTA_EVENTS] = "limit_events",
    };
    struct store_account a;
    int rv = store_account_get_id(s, id, &a);
    for (int i = 0; rv == 0 && i < QUOTA__COUNT; i++) {
        if (limits[i] == QUOTA_KEEP) {
            continue;
        }
        char sql[96];
        snprintf(sql, sizeof sql, "UPDATE accounts SET %s = ?2 WHERE id = ?1",
                 cols[i]);
        sqlite3_stmt *st;
        if ((rv = store__token_stmt(s, sql, &st)) != 0) {
            break;
        }
        sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
        if (limits[i] == QUOTA_DEFAULT) {
            sqlite3_bind_null(st, 2);
        } else {
            sqlite3_bind_int64(st, 2, (sqlite3_int64)limits[i]);
        }
        rv = store__account_change(s, st, "setting an account's limits");
    }
    return rv;
}

int store_account_set_caps(struct store *s, uint64_t id, uint8_t which,
                           const struct caps *caps)
{
    sqlite3_stmt *st;
    int rv = store__token_stmt(
        s,
        "UPDATE accounts SET cap_memory = CASE WHEN ?2 & 1 THEN ?3 ELSE "
        "cap_memory END, cap_cpu = CASE WHEN ?2 & 2 THEN ?4 ELSE cap_cpu END, "
        "cap_pids = CASE WHEN ?2 & 4 THEN ?5 ELSE cap_pids END WHERE id = ?1",
        &st);
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    sqlite3_bind_int(st, 2, which);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)caps->memory_bytes);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)caps->cpu_millis);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)caps->pids);
    return store__account_change(s, st, "setting an account's caps");
}

int store_account_caps(struct store *s, uint64_t id, struct caps *out)
{
    sqlite3_stmt *st = store__stmt(s, ST_ACCOUNT_CAPS);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    int rc = sqlite3_step(st);
    int rv = 0;
    memset(out, 0, sizeof *out);
    if (rc == SQLITE_ROW) {
        out->memory_bytes = (uint64_t)sqlite3_column_int64(st, 0);
        out->cpu_millis = (uint32_t)sqlite3_column_int64(st, 1);
        out->pids = (uint32_t)sqlite3_column_int64(st, 2);
    } else if (rc == SQLITE_DONE) {
        rv = BERTH_ENOTFOUND;
    } else {
        rv = store__fail(s, rc, "reading an account's caps");
    }
    sqlite3_reset(st);
    return rv;
}

int store_account_limited_count(struct store *s, uint64_t *n)
{
    sqlite3_stmt *st;
    int rv = store__token_stmt(
        s,
        "SELECT count(*) FROM accounts WHERE limit_ships IS NOT NULL OR "
        "limit_bytes IS NOT NULL OR limit_awake IS NOT NULL OR limit_cpu IS "
        "NOT NULL OR limit_events IS NOT NULL",
        &st);
    return rv != 0 ? rv : store__ints(s, st, n, 1, NULL, "reading accounts");
}

int store_usage_recount(struct store *s, uint64_t sid, uint64_t *bytes)
{
    int rv = store__heads_write(s);
    sqlite3_stmt *st;
    if (rv != 0 || (rv = store__token_stmt(s,
                                           "SELECT " STORE__USAGE_BYTES_OF_SHIP
                                           " FROM ships WHERE sid = ?1",
                                           &st)) != 0) {
        return rv;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
    bool found;
    rv = store__ints(s, st, bytes, 1, &found, "counting a ship's storage");
    return rv == 0 && !found ? BERTH_ENOTFOUND : rv;
}

int store_ship_usage(struct store *s, uint64_t sid, struct store_usage *out)
{
    int rv = store__heads_write(s);
    sqlite3_stmt *st;
    if (rv != 0 ||
        (rv = store__token_stmt(
             s,
             "SELECT 1, usage_bytes, last_event, usage_cpu_us, "
             "usage_mem_peak, usage_mem_byte_s, usage_wakes, usage_requests "
             "FROM ships WHERE sid = ?1",
             &st)) != 0) {
        return rv;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sid);
    uint64_t v[8];
    bool found;
    rv = store__ints(s, st, v, 8, &found, "reading a ship's usage");
    if (rv == 0 && !found) {
        rv = BERTH_ENOTFOUND;
    }
    memcpy(out, v, sizeof v);
    return rv;
}

/* --- The crawler's walk. --- */

int store_crawl_begin(struct store *s, uint64_t after)
{
    struct store__crawl *c = &s->crawl;
    c->active = true;
    c->whole = after == 0;
    c->cursor = after;
    c->n_acc = 0;
    memset(&c->report, 0, sizeof c->report);
    return 0;
}

/* This thread's CPU time, in ns. */
static uint64_t store__cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A ship whose recorded storage the walk corrects. */
struct store__crawl_fix {
    uint64_t sid;
    int64_t bytes;
};

int store_crawl_step(struct store *s, unsigned max, uint64_t budget_ns,
                     uint64_t *cursor, unsigned *walked_out, bool *done)
{
    struct store__crawl *c = &s->crawl;
    struct store__crawl_fix fixes[256];
    size_t n_fix = 0;
    sqlite3_stmt *st;
    *done = false;
    if (!c->active) {
        return store_set_error(s, BERTH_EINVAL, "no crawl under way");
    }
    if (max > sizeof fixes / sizeof fixes[0]) {
        max = sizeof fixes / sizeof fixes[0];
    }
    /* Heads and account deltas waiting in memory first: the rows are then
     * what the entries applied so far make them. */
    int rv = store__heads_write(s);
    if (rv == 0) {
        rv = store__token_stmt(
            s,
            "SELECT sid, account, usage_bytes, " STORE__USAGE_BYTES_OF_SHIP
            " FROM ships WHERE sid > ?1 ORDER BY sid LIMIT ?2",
            &st);
    }
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)c->cursor);
    sqlite3_bind_int64(st, 2, max);
    uint64_t start = store__cpu_ns();
    unsigned walked = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t sid = (uint64_t)sqlite3_column_int64(st, 0);
        uint64_t account = (uint64_t)sqlite3_column_int64(st, 1);
        int64_t recorded = sqlite3_column_int64(st, 2);
        int64_t counted = sqlite3_column_int64(st, 3);
        if (recorded != counted) {
            fixes[n_fix].sid = sid;
            fixes[n_fix].bytes = counted - recorded;
            n_fix++;
        }
        if (c->whole) {
            struct store_crawl_account *a = store__crawl_acc(s, account);
            if (a != NULL) {
                a->ships++;
                a->storage_bytes += (uint64_t)counted;
            }
        }
        c->cursor = sid;
        c->report.ships_walked++;
        walked++;
        if (store__cpu_ns() - start >= budget_ns) {
            break;
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rv = store__fail(s, rc, "walking the ships");
    }
    *done = rv == 0 && rc == SQLITE_DONE && walked < max;
    sqlite3_finalize(st);
    if (rv == 0 && n_fix > 0) {
        rv = store__batch_begin(s);
    }
    /* The ship alone: its account's figure is checked at the end. */
    for (size_t i = 0; i < n_fix && rv == 0; i++) {
        rv = store__token_stmt(s,
                               "UPDATE ships SET usage_bytes = usage_bytes "
                               "+ ?2 WHERE sid = ?1",
                               &st);
        if (rv == 0) {
            sqlite3_bind_int64(st, 1, (sqlite3_int64)fixes[i].sid);
            sqlite3_bind_int64(st, 2, fixes[i].bytes);
            rc = sqlite3_step(st);
            sqlite3_finalize(st);
            rv =
                rc == SQLITE_DONE ? 0 : store__fail(s, rc, "correcting a ship");
        }
        c->report.ships_fixed++;
        c->report.bytes_fixed += fixes[i].bytes;
    }
    *cursor = c->cursor;
    *walked_out = walked;
    return rv;
}

int store_crawl_finish(struct store *s, struct store_crawl_report *report)
{
    struct store__crawl *c = &s->crawl;
    sqlite3_stmt *st;
    int rv = store__heads_write(s);
    c->report.accounts_checked = c->whole;
    if (rv != 0 || !c->whole) {
        goto out;
    }
    /* Every account, those with no ship counted included. */
    rv = store__token_stmt(
        s, "SELECT id, usage_ships, usage_bytes FROM accounts ORDER BY id",
        &st);
    if (rv != 0) {
        goto out;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_crawl_account *a =
            store__crawl_acc(s, (uint64_t)sqlite3_column_int64(st, 0));
        if (a == NULL) {
            break;
        }
        a->recorded_ships = (uint64_t)sqlite3_column_int64(st, 1);
        a->recorded_storage_bytes = (uint64_t)sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    if (!c->whole) {
        rv = store_set_error(s, BERTH_ENOMEM, "crawl: out of memory");
        goto out;
    }
    for (size_t i = 0; i < c->n_acc && rv == 0; i++) {
        struct store_crawl_account *a = &c->acc[i];
        if (a->ships == a->recorded_ships &&
            a->storage_bytes == a->recorded_storage_bytes) {
            continue;
        }
        rv = store__batch_begin(s);
        if (rv == 0) {
            /* Added, not set, as every writer of the figure does. */
            rv = store__account_usage(
                s, a->account, (int64_t)(a->ships - a->recorded_ships),
                (int64_t)(a->storage_bytes - a->recorded_storage_bytes), 0);
        }
    }
    c->report.n_accounts = c->n_acc;
    c->report.accounts = c->acc;
out:
    c->active = false;
    *report = c->report;
    return rv;
}

int store_crawl_result_put(struct store *s, const struct store_crawl_account *a,
                           uint64_t passed_ns)
{
    sqlite3_stmt *st;
    int rv = store__batch_begin(s);
    if (rv == 0) {
        rv = store__token_stmt(s,
                               "INSERT OR REPLACE INTO crawls (account, ships, "
                               "bytes, recorded_ships, recorded_bytes, "
                               "passed_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                               &st);
    }
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)a->account);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)a->ships);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)a->storage_bytes);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)a->recorded_ships);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)a->recorded_storage_bytes);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)passed_ns);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : store__fail(s, rc, "keeping a crawl");
}

int store_crawl_result_get(struct store *s, uint64_t account,
                           struct store_crawl_account *out, uint64_t *passed_ns)
{
    sqlite3_stmt *st;
    int rv = store__token_stmt(s,
                               "SELECT ships, bytes, recorded_ships, "
                               "recorded_bytes, passed_ns FROM crawls WHERE "
                               "account = ?1",
                               &st);
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)account);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        out->account = account;
        out->ships = (uint64_t)sqlite3_column_int64(st, 0);
        out->storage_bytes = (uint64_t)sqlite3_column_int64(st, 1);
        out->recorded_ships = (uint64_t)sqlite3_column_int64(st, 2);
        out->recorded_storage_bytes = (uint64_t)sqlite3_column_int64(st, 3);
        *passed_ns = (uint64_t)sqlite3_column_int64(st, 4);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW    ? 0
           : rc == SQLITE_DONE ? BERTH_ENOTFOUND
                               : store__fail(s, rc, "reading a crawl");
}

void store_set_accounting(struct store *s, bool on)
{
    s->no_usage = !on;
}

bool store_accounting(const struct store *s)
{
    return !s->no_usage;
}

/* --- Lineage and mail. ---
 *
 * Touched at spawns, destroys and deliveries, far from the hot path: their
 * statements are prepared at each call. */

/* Read every row of sql (its ?1 bound to arg when has_arg) into a new
 * array at *out of elements of size bytes, each filled from the row by
 * fill, and set *n to their count; on failure *out is NULL and *n 0, and
 * what names the rows in the store's message. */
static int store__collect(struct store *s, const char *sql, bool has_arg,
                          uint64_t arg, size_t size,
                          void (*fill)(sqlite3_stmt *st, void *elem),
                          void **out, size_t *n, const char *what)
{
    *out = NULL;
    *n = 0;
    int rv = store__heads_write(s);
    sqlite3_stmt *st;
    if (rv != 0 || (rv = store__token_stmt(s, sql, &st)) != 0) {
        return rv;
    }
    if (has_arg) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)arg);
    }
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            void *p = mem_realloc(*out, ncap * size);
            if (p == NULL) {
                rv = BERTH_ENOMEM;
                break;
            }
            *out = p;
            cap = ncap;
        }
        fill(st, (char *)*out + (*n)++ * size);
    }
    if (rv == 0 && rc != SQLITE_DONE) {
        rv = store__fail(s, rc, what);
    }
    sqlite3_finalize(st);
    if (rv != 0) {
        mem_free(*out);
        *out = NULL;
        *n = 0;
    }
    return rv;
}

static void store__fill_child(sqlite3_stmt *st, void *elem)
{
    struct store_child *c = elem;
    c->sid = (uint64_t)sqlite3_column_int64(st, 0);
    c->lifetime = (uint8_t)sqlite3_column_int(st, 1);
}

int store_ship_children(struct store *s, uint64_t parent,
                        struct store_child **out, size_t *n)
{
    void *p;
    int rv = store__collect(
        s, "SELECT sid, lifetime FROM ships WHERE parent = ?1 ORDER BY sid",
        true, parent, sizeof **out, store__fill_child, &p, n,
        "listing a ship's children");
    *out = p;
    return rv;
}

static void store__fill_sid(sqlite3_stmt *st, void *elem)
{
    *(uint64_t *)elem = (uint64_t)sqlite3_column_int64(st, 0);
}

int store_mail_targets(struct store *s, uint64_t **out, size_t *n)
{
    void *p;
    int rv = store__collect(
        s, "SELECT DISTINCT target FROM mail ORDER BY target", false, 0,
        sizeof **out, store__fill_sid, &p, n, "listing mail");
    *out = p;
    return rv;
}

static void store__fill_timed(sqlite3_stmt *st, void *elem)
{
    struct store_timed *t = elem;
    t->sid = (uint64_t)sqlite3_column_int64(st, 0);
    t->lifetime = (uint8_t)sqlite3_column_int(st, 1);
    t->lifetime_ms = (uint64_t)sqlite3_column_int64(st, 2);
    t->last_event = (uint64_t)sqlite3_column_int64(st, 3);
    t->parent = (uint64_t)sqlite3_column_int64(st, 4);
}

int store_ship_timed(struct store *s, struct store_timed **out, size_t *n)
{
    void *p;
    int rv = store__collect(
        s,
        "SELECT sid, lifetime, lifetime_ms, last_event, parent FROM ships "
        "WHERE lifetime >= 4 ORDER BY sid",
        false, 0, sizeof **out, store__fill_timed, &p, n,
        "listing ships with timed lifetimes");
    *out = p;
    return rv;
}

void store_mail_clear(struct store_mail *m)
{
    mem_free(m->body);
    memset(m, 0, sizeof *m);
}

int store_mail_put(struct store *s, uint64_t target, uint8_t kind,
                   const void *body, size_t len, uint64_t *seq)
{
    uint64_t next;
    int rv = store_meta_get(s, "next_mail", &next);
    if (rv != 0) {
        return rv;
    }
    sqlite3_stmt *st;
    rv = store__token_stmt(s,
                           "INSERT INTO mail (seq, target, kind, body) "
                           "VALUES (?1, ?2, ?3, ?4)",
                           &st);
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)(next + 1));
    sqlite3_bind_int64(st, 2, (sqlite3_int64)target);
    sqlite3_bind_int(st, 3, kind);
    sqlite3_bind_blob64(st, 4, len ? body : "", len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return store__fail(s, rc, "writing mail");
    }
    if (seq != NULL) {
        *seq = next + 1;
    }
    return store_meta_put(s, "next_mail", next + 1);
}

int store_mail_take(struct store *s, uint64_t target, uint64_t seq)
{
    sqlite3_stmt *st;
    int rv = store__token_stmt(
        s, "DELETE FROM mail WHERE seq = ?1 AND target = ?2", &st);
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)target);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return store__fail(s, rc, "taking mail");
    }
    return sqlite3_changes(s->db) > 0 ? 0 : BERTH_ENOTFOUND;
}

int store_mail_next(struct store *s, uint64_t target, uint64_t after,
                    struct store_mail *out)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rv = store__token_stmt(s,
                               "SELECT seq, kind, body FROM mail WHERE "
                               "target = ?1 AND seq > ?2 ORDER BY seq LIMIT 1",
                               &st);
    if (rv != 0) {
        return rv;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)target);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)after);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->seq = (uint64_t)sqlite3_column_int64(st, 0);
        out->target = target;
        out->kind = (uint8_t)sqlite3_column_int(st, 1);
        char *body;
        rv = store__dup_blob(st, 2, &body, &out->len);
        out->body = (uint8_t *)body;
    } else if (rc == SQLITE_DONE) {
        rv = BERTH_ENOTFOUND;
    } else {
        rv = store__fail(s, rc, "reading mail");
    }
    sqlite3_finalize(st);
    return rv;
}
