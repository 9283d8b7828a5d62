/* The berth command: `berth serve` runs a host; every other command is a
 * client of a host's admin API. Data goes to stdout, messages to stderr, and
 * the exit status is 0 on success, 1 on an error from the host, 2 on bad
 * usage. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/host.h"
#include "http/http.h"
#include "lib/err.h"

#define BERTH_VERSION "0.1.0"

static const char usage[] =
    "usage: berth <command> [options]\n"
    "\n"
    "Host:\n"
    "  serve                      run a host in the foreground\n"
    "      --data DIR             data directory (default $BERTH_DATA or ./berth-data)\n"
    "      --listen HOST:PORT     front door (default 127.0.0.1:8080)\n"
    "      --admin HOST:PORT      admin API on TCP (default: DIR/admin.sock)\n"
    "      --freeze-timeout MS    freeze ships idle this long (default 10000; 0: never)\n"
    "      --idle-timeout MS      sleep ships idle this long (default 60000)\n"
    "      --max-awake-mb MB      memory budget of running programs; past it the\n"
    "                             least recently used idle ships sleep (default: none)\n"
    "      --max-awake N          running programs at most (default: what the\n"
    "                             descriptor limit allows)\n"
    "      --event-timeout MS     per-event time limit (default 10000)\n"
    "      --snapshot-every N     snapshot a ship every N events (default 1000)\n"
    "      --max-body BYTES       request body limit (default 8388608)\n"
    "      --max-queue N          requests waiting per ship before 503 (default 1024)\n"
    "      --reserve-disk MB      refuse writes (507) below this much free disk (default 64; 0: off)\n"
    "      --max-buffer-mb MB     bytes held for requests, replies and slow clients; past it\n"
    "                             programs and clients are held back (default 256; 0: no cap)\n"
    "      --header-timeout MS    a request's headers must arrive within this (default 10000)\n"
    "      --max-conns-per-addr N front-door connections per client address (default 256; 0: no cap)\n"
    "      --max-idle-conns N     idle front-door connections; the oldest close first\n"
    "                             (default 1024; 0: no cap)\n"
    "\n"
    "Ships (find the host with --data DIR, $BERTH_DATA or --admin ADDR):\n"
    "  ship new --program PATH [--name NAME] [--count N] [--idle-timeout MS]\n"
    "           [--freeze-timeout MS]\n"
    "                             with --count, N ships named NAME-1 ... NAME-N\n"
    "  ship ls [--limit N]        list ships (all, or the first N)\n"
    "  ship show SHIP             one ship, by id or name\n"
    "  ship send SHIP DATA        deliver DATA to the ship as an event\n"
    "  ship sleep SHIP            snapshot the ship and stop its program\n"
    "  ship wake SHIP             start the ship's program\n"
    "  ship rm SHIP               remove the ship and its data\n"
    "  stats                      host counters\n"
    "\n"
    "Every client command takes --json to print the API's JSON.\n"
    "  version                    print the version\n";

struct cli {
    const char *data;
    const char *admin;
    bool json;
    char endpoint[4200];
};

static int cli__usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "berth: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nRun 'berth --help' for usage.\n");
    return 2;
}

static int cli__parse_uint(const char *s, unsigned long long max,
                           unsigned long long *out)
{
    char *end;
    if (s == NULL || *s == '\0' || *s == '-') {
        return -1;
    }
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Parse a number of megabytes, decimals allowed ("512", "0.5"), into
 * bytes. */
static int cli__parse_mb(const char *s, uint64_t *out)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9') {
        return -1;
    }
    double mb = strtod(s, &end);
    if (*end != '\0' || mb < 0 || mb > 1e9) {
        return -1;
    }
    *out = (uint64_t)(mb * 1048576.0);
    return 0;
}

static void cli__endpoint(struct cli *c)
{
    if (c->admin != NULL) {
        snprintf(c->endpoint, sizeof c->endpoint, "%s", c->admin);
        return;
    }
    const char *data = c->data;
    if (data == NULL) {
        data = getenv("BERTH_DATA");
    }
    if (data == NULL || *data == '\0') {
        data = "berth-data";
    }
    snprintf(c->endpoint, sizeof c->endpoint, "unix:%s/admin.sock", data);
}

/* Perform one API call. On success returns 0 and *out holds the decoded
 * JSON (the caller frees it); on an API error prints it and returns 1. */
static int cli__call(struct cli *c, const char *method, const char *target,
                     const void *body, size_t len, json_t **out)
{
    struct buf resp;
    char errmsg[ERRMSG_SIZE];
    int status = 0;
    buf_init(&resp);
    int rv = http_client_request(c->endpoint, method, target, body, len, 0,
                                 &status, &resp, errmsg);
    if (rv != 0) {
        fprintf(stderr, "berth: %s\n", errmsg);
        fprintf(stderr, "berth: is a host running? Start one with 'berth "
                        "serve' or point --data/--admin at it.\n");
        buf_free(&resp);
        return 1;
    }
    json_error_t jerr;
    json_t *v = json_loadb((const char *)resp.data, resp.len, 0, &jerr);
    buf_free(&resp);
    if (v == NULL) {
        fprintf(stderr, "berth: host answered %d with a body that is not "
                        "JSON\n",
                status);
        return 1;
    }
    if (status >= 300) {
        json_t *e = json_object_get(v, "error");
        if (c->json) {
            json_dumpf(v, stdout, JSON_COMPACT);
            putchar('\n');
        }
        fprintf(stderr, "berth: %s (%s)\n",
                json_string_value(json_object_get(e, "message"))
                    ? json_string_value(json_object_get(e, "message"))
                    : "request failed",
                json_string_value(json_object_get(e, "code"))
                    ? json_string_value(json_object_get(e, "code"))
                    : "error");
        json_decref(v);
        return 1;
    }
    *out = v;
    return 0;
}

static void cli__print_json(json_t *v)
{
    json_dumpf(v, stdout, JSON_INDENT(2));
    putchar('\n');
}

static const char *cli__str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

static long long cli__int(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

/* Format how long ago a wall-clock time in ns was, as "12s", "5m", "3h",
 * "2d", or "-" for never. */
static void cli__ago(long long ns, char *out, size_t size)
{
    if (ns <= 0) {
        snprintf(out, size, "-");
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long now = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    long long s = (now - ns) / 1000000000LL;
    if (s < 0) {
        s = 0;
    }
    if (s < 120) {
        snprintf(out, size, "%llds ago", s);
    } else if (s < 7200) {
        snprintf(out, size, "%lldm ago", s / 60);
    } else if (s < 172800) {
        snprintf(out, size, "%lldh ago", s / 3600);
    } else {
        snprintf(out, size, "%lldd ago", s / 86400);
    }
}

static void cli__print_ship(json_t *s)
{
    printf("id:              %s\n", cli__str(s, "id"));
    printf("name:            %s\n", cli__str(s, "name"));
    printf("state:           %s\n", cli__str(s, "state"));
    printf("program:         %s\n", cli__str(s, "program"));
    char ago[32];
    cli__ago(cli__int(s, "last_active_ns"), ago, sizeof ago);
    printf("last event:      %lld\n", cli__int(s, "last_event"));
    printf("snapshot event:  %lld\n", cli__int(s, "snapshot_event"));
    printf("last active:     %s\n", ago);
    printf("wakes:           %lld\n", cli__int(s, "wake_count"));
    printf("freeze timeout:  %lld ms\n", cli__int(s, "freeze_timeout_ms"));
    printf("idle timeout:    %lld ms\n", cli__int(s, "idle_timeout_ms"));
    if (cli__int(s, "memory_bytes") > 0) {
        printf("memory:          %.1f KiB\n",
               (double)cli__int(s, "memory_bytes") / 1024.0);
    }
    if (cli__int(s, "alarm_ns") > 0) {
        time_t t = (time_t)(cli__int(s, "alarm_ns") / 1000000000LL);
        struct tm tm;
        char when[64];
        gmtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
        printf("alarm:           %s\n", when);
    }
}

/* List ships a page at a time, following the API's cursor, so that a host
 * with a million ships never builds one huge answer. */
static int cli__list(struct cli *c, unsigned long long limit)
{
    char target[128];
    char next[32] = "";
    unsigned long long shown = 0;
    json_t *all = c->json ? json_array() : NULL;
    if (!c->json) {
        printf("%-18s %-20s %-9s %10s %6s  %s\n", "ID", "NAME", "STATE",
               "EVENTS", "WAKES", "LAST ACTIVE");
    }
    for (;;) {
        unsigned long long page = 1000;
        if (limit != 0 && limit - shown < page) {
            page = limit - shown;
        }
        snprintf(target, sizeof target, "/v1/ships?limit=%llu%s%s", page,
                 next[0] ? "&after=" : "", next);
        json_t *v = NULL;
        int rv = cli__call(c, "GET", target, NULL, 0, &v);
        if (rv != 0) {
            json_decref(all);
            return rv;
        }
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(v, "ships"), i, s)
        {
            if (c->json) {
                json_array_append(all, s);
            } else {
                char ago[32];
                cli__ago(cli__int(s, "last_active_ns"), ago, sizeof ago);
                printf("%-18s %-20s %-9s %10lld %6lld  %s\n",
                       cli__str(s, "id"), cli__str(s, "name"),
                       cli__str(s, "state"), cli__int(s, "last_event"),
                       cli__int(s, "wake_count"), ago);
            }
            shown++;
        }
        const char *n = json_string_value(json_object_get(v, "next"));
        bool more = n != NULL && (limit == 0 || shown < limit);
        if (more) {
            snprintf(next, sizeof next, "%s", n);
        }
        json_decref(v);
        if (!more) {
            break;
        }
    }
    if (c->json) {
        json_t *o = json_object();
        json_object_set_new(o, "ships", all);
        cli__print_json(o);
        json_decref(o);
    }
    return 0;
}

/* Put the milliseconds given to option (value, NULL when absent) into spec
 * under key; returns 0, or 2 after a usage message for a bad value. */
static int cli__set_ms(json_t *spec, const char *key, const char *option,
                       const char *value)
{
    unsigned long long ms;
    if (value == NULL) {
        return 0;
    }
    if (cli__parse_uint(value, 1ULL << 40, &ms) != 0) {
        fprintf(stderr, "berth: %s wants milliseconds, not %s\n", option,
                value);
        fprintf(stderr, "Run 'berth --help' for usage.\n");
        return 2;
    }
    json_object_set_new(spec, key, json_integer((json_int_t)ms));
    return 0;
}

static int cli__ship(struct cli *c, int argc, char **argv)
{
    if (argc < 1) {
        return cli__usage_error("'ship' needs a subcommand: %s",
                                "new, ls, show, send, sleep, wake or rm");
    }
    const char *sub = argv[0];
    json_t *v = NULL;
    char target[512];
    int rv;

    if (strcmp(sub, "new") == 0) {
        const char *program = NULL, *name = NULL, *idle = NULL;
        const char *freeze = NULL, *count = NULL;
        for (int i = 1; i < argc; i++) {
            if (strcmp(argv[i], "--program") == 0 && i + 1 < argc) {
                program = argv[++i];
            } else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
                name = argv[++i];
            } else if (strcmp(argv[i], "--idle-timeout") == 0 && i + 1 < argc) {
                idle = argv[++i];
            } else if (strcmp(argv[i], "--freeze-timeout") == 0 &&
                       i + 1 < argc) {
                freeze = argv[++i];
            } else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
                count = argv[++i];
            } else {
                return cli__usage_error("unexpected argument to 'ship new': %s",
                                        argv[i]);
            }
        }
        if (program == NULL) {
            return cli__usage_error("%s", "'ship new' needs --program PATH");
        }
        json_t *spec = json_object();
        json_object_set_new(spec, "program", json_string(program));
        if (name != NULL) {
            json_object_set_new(spec, "name", json_string(name));
        }
        if (cli__set_ms(spec, "idle_timeout_ms", "--idle-timeout", idle) != 0 ||
            cli__set_ms(spec, "freeze_timeout_ms", "--freeze-timeout",
                        freeze) != 0) {
            json_decref(spec);
            return 2;
        }
        if (count != NULL) {
            unsigned long long n;
            if (cli__parse_uint(count, 1000000, &n) != 0 || n == 0) {
                json_decref(spec);
                return cli__usage_error("--count wants a number from 1 to "
                                        "1000000, not %s",
                                        count);
            }
            json_object_set_new(spec, "count", json_integer((json_int_t)n));
        }
        char *body = json_dumps(spec, JSON_COMPACT);
        json_decref(spec);
        rv = cli__call(c, "POST", "/v1/ships", body, strlen(body), &v);
        free(body);
        if (rv != 0) {
            return rv;
        }
        if (c->json) {
            cli__print_json(v);
        } else if (count != NULL) {
            /* One id a line, as for a single ship. */
            size_t i;
            json_t *id;
            json_array_foreach(json_object_get(v, "ids"), i, id)
            {
                printf("%s\n", json_string_value(id));
            }
        } else {
            printf("%s\n", cli__str(v, "id"));
        }
        json_decref(v);
        return 0;
    }

    if (strcmp(sub, "ls") == 0) {
        unsigned long long limit = 0; /* 0: all */
        for (int i = 1; i < argc; i++) {
            if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc &&
                cli__parse_uint(argv[i + 1], 1ULL << 32, &limit) == 0 &&
                limit > 0) {
                i++;
            } else {
                return cli__usage_error("unexpected argument to 'ship ls': %s",
                                        argv[i]);
            }
        }
        return cli__list(c, limit);
    }

    if (strcmp(sub, "stats") == 0) {
        return cli__usage_error("%s", "use 'berth stats'");
    }

    /* The rest take a ship. */
    static const struct {
        const char *name;
        const char *method;
        const char *suffix;
        int extra; /* positional arguments after the ship */
    } ops[] = {
        {"show", "GET", "", 0},        {"send", "POST", "/send", 1},
        {"sleep", "POST", "/sleep", 0}, {"wake", "POST", "/wake", 0},
        {"rm", "DELETE", "", 0},
    };
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        if (strcmp(sub, ops[k].name) != 0) {
            continue;
        }
        if (argc != 2 + ops[k].extra) {
            fprintf(stderr, "berth: usage: berth ship %s SHIP%s\n", sub,
                    ops[k].extra ? " DATA" : "");
            return 2;
        }
        const char *ship = argv[1];
        if (strlen(ship) > 100 || strpbrk(ship, "/?#% ") != NULL) {
            return cli__usage_error("not a ship id or name: %s", ship);
        }
        snprintf(target, sizeof target, "/v1/ships/%s%s", ship, ops[k].suffix);
        const char *data = ops[k].extra ? argv[2] : NULL;
        rv = cli__call(c, ops[k].method, target, data, data ? strlen(data) : 0,
                       &v);
        if (rv != 0) {
            return rv;
        }
        if (c->json) {
            cli__print_json(v);
        } else if (strcmp(sub, "send") == 0) {
            json_t *reply = json_object_get(v, "reply");
            if (json_is_object(reply)) {
                const char *body = json_string_value(json_object_get(reply, "body"));
                printf("%s", body ? body : "");
                if (body && *body && body[strlen(body) - 1] != '\n') {
                    putchar('\n');
                }
            } else {
                printf("event %lld\n", cli__int(v, "event"));
            }
        } else if (strcmp(sub, "rm") == 0) {
            printf("removed %s\n", cli__str(v, "removed"));
        } else if (strcmp(sub, "show") == 0) {
            cli__print_ship(v);
        } else {
            printf("%s %s\n", cli__str(v, "id"), cli__str(v, "state"));
        }
        json_decref(v);
        return 0;
    }
    return cli__usage_error("unknown ship command: %s", sub);
}

static int cli__stats(struct cli *c, int argc, char **argv)
{
    json_t *v = NULL;
    if (argc > 0) {
        return cli__usage_error("unexpected argument to 'stats': %s", argv[0]);
    }
    int rv = cli__call(c, "GET", "/v1/stats", NULL, 0, &v);
    if (rv != 0) {
        return rv;
    }
    if (c->json) {
        cli__print_json(v);
    } else {
        json_t *st = json_object_get(v, "states");
        json_t *wl = json_object_get(v, "wake_latency_ms");
        json_t *tl = json_object_get(v, "thaw_latency_ms");
        printf("ships:            %lld\n", cli__int(v, "ships"));
        printf("  awake:          %lld\n", cli__int(st, "awake"));
        printf("  frozen:         %lld\n", cli__int(st, "frozen"));
        printf("  asleep:         %lld\n", cli__int(st, "asleep"));
        printf("  waking:         %lld\n", cli__int(st, "waking"));
        printf("  sleeping:       %lld\n", cli__int(st, "sleeping"));
        printf("  queued to wake: %lld\n", cli__int(v, "wake_queue"));
        printf("programs memory:  %.1f MiB\n",
               (double)cli__int(v, "awake_memory_bytes") / 1048576.0);
        printf("host memory:      %.1f MiB\n",
               (double)cli__int(v, "rss_bytes") / 1048576.0);
        printf("events committed: %lld\n", cli__int(v, "events_committed"));
        printf("wakes:            %lld (p50 %.3f ms, p99 %.3f ms)\n",
               cli__int(v, "wakes"),
               json_real_value(json_object_get(wl, "p50")),
               json_real_value(json_object_get(wl, "p99")));
        printf("thaws:            %lld (p50 %.3f ms, p99 %.3f ms)\n",
               cli__int(v, "thaws"),
               json_real_value(json_object_get(tl, "p50")),
               json_real_value(json_object_get(tl, "p99")));
        printf("evictions:        %lld\n", cli__int(v, "evictions"));
        printf("alarms:           %lld set, %lld fired\n",
               cli__int(v, "alarms"), cli__int(v, "alarms_fired"));
    }
    json_decref(v);
    return 0;
}

static int cli__serve(int argc, char **argv)
{
    struct host_config cfg;
    host_config_defaults(&cfg);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (v == NULL) {
            return cli__usage_error("serve: %s needs a value", a);
        }
        i++;
        if (strcmp(a, "--data") == 0) {
            cfg.data_dir = v;
        } else if (strcmp(a, "--listen") == 0) {
            cfg.listen = v;
        } else if (strcmp(a, "--admin") == 0) {
            cfg.admin = v;
        } else if (strcmp(a, "--idle-timeout") == 0 &&
                   cli__parse_uint(v, 1ULL << 31, &n) == 0) {
            cfg.idle_timeout_ms = (unsigned)n;
        } else if (strcmp(a, "--freeze-timeout") == 0 &&
                   cli__parse_uint(v, 1ULL << 31, &n) == 0) {
            cfg.freeze_timeout_ms = (unsigned)n;
        } else if (strcmp(a, "--max-awake") == 0 &&
                   cli__parse_uint(v, 1ULL << 24, &n) == 0) {
            cfg.max_awake = (unsigned)n;
        } else if (strcmp(a, "--max-awake-mb") == 0 &&
                   cli__parse_mb(v, &cfg.max_awake_bytes) == 0) {
        } else if (strcmp(a, "--event-timeout") == 0 &&
                   cli__parse_uint(v, 1ULL << 31, &n) == 0 && n > 0) {
            cfg.event_timeout_ms = (unsigned)n;
        } else if (strcmp(a, "--snapshot-every") == 0 &&
                   cli__parse_uint(v, 1ULL << 31, &n) == 0 && n > 0) {
            cfg.snapshot_every = (unsigned)n;
        } else if (strcmp(a, "--max-queue") == 0 &&
                   cli__parse_uint(v, 1ULL << 24, &n) == 0 && n > 0) {
            cfg.max_queue = (unsigned)n;
        } else if (strcmp(a, "--reserve-disk") == 0 &&
                   cli__parse_uint(v, 1ULL << 40, &n) == 0) {
            cfg.reserve_bytes = n * 1024 * 1024;
        } else if (strcmp(a, "--max-body") == 0 &&
                   cli__parse_uint(v, 1ULL << 30, &n) == 0) {
            cfg.max_body = (size_t)n;
        } else if (strcmp(a, "--max-buffer-mb") == 0 &&
                   cli__parse_mb(v, &cfg.max_buffer_bytes) == 0) {
        } else if (strcmp(a, "--header-timeout") == 0 &&
                   cli__parse_uint(v, 1ULL << 31, &n) == 0 && n > 0) {
            cfg.header_timeout_ms = (unsigned)n;
        } else if (strcmp(a, "--max-conns-per-addr") == 0 &&
                   cli__parse_uint(v, 1ULL << 24, &n) == 0) {
            cfg.max_conns_per_addr = (unsigned)n;
        } else if (strcmp(a, "--max-idle-conns") == 0 &&
                   cli__parse_uint(v, 1ULL << 24, &n) == 0) {
            cfg.max_idle_conns = (unsigned)n;
        } else {
            fprintf(stderr, "berth: serve: bad option or value: %s %s\n", a, v);
            fprintf(stderr, "Run 'berth --help' for usage.\n");
            return 2;
        }
    }
    return host_run(&cfg);
}

int main(int argc, char **argv)
{
    struct cli c = {0};
    char *rest[256];
    int n = 0;
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
        strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("berth %s\n", BERTH_VERSION);
        return 0;
    }
    if (strcmp(cmd, "serve") == 0) {
        return cli__serve(argc - 2, argv + 2);
    }
    /* Client options may stand anywhere after the command. */
    for (int i = 2; i < argc && n < 255; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            c.json = true;
        } else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
            c.data = argv[++i];
        } else if (strcmp(argv[i], "--admin") == 0 && i + 1 < argc) {
            c.admin = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 ||
                   strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else {
            rest[n++] = argv[i];
        }
    }
    rest[n] = NULL;
    cli__endpoint(&c);
    if (strcmp(cmd, "ship") == 0) {
        return cli__ship(&c, n, rest);
    }
    if (strcmp(cmd, "stats") == 0) {
        return cli__stats(&c, n, rest);
    }
    return cli__usage_error("unknown command: %s", cmd);
}
