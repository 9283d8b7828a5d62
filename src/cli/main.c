/* The berth command: `berth serve` runs a host; every other command is a
 * client of a host's admin API. Data goes to stdout, messages to stderr, and
 * the exit status is 0 on success, 1 on an error from the host (or no host),
 * 2 on bad usage; a command that fails prints nothing on stdout.
 *
 * Every command is a row of a table with its options, so that one parser
 * reads them all (`--flag value` and `--flag=value`, in any order, the
 * client options before the command as well as after) and one printer
 * writes every command's --help from the same rows. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "consensus/transport.h"
#include "core/caps.h"
#include "core/gate.h"
#include "core/quota.h"
#include "core/ship.h"
#include "daemon/host.h"
#include "http/http.h"
#include "http/tls.h"
#include "lib/err.h"
#include "lib/loglevel.h"
#include "lib/mem.h"
#include "proto/frame.h"

#define BERTH_VERSION "0.1.0"

/* The client's view of where the host is and how to print. */
struct cli {
    const char *data;
    const char *admin;
    const char *token; /* --token, else $BERTH_TOKEN; NULL: none */
    bool json;
    int status; /* of the last answer cli__call got; 0: none came */
    char endpoint[4200];
};

/* How an option's value is read. */
enum cli__kind {
    CLI__FLAG, /* no value */
    CLI__STR,  /* any text */
    CLI__NUM,  /* a whole number from min to max */
    CLI__MS,   /* milliseconds: a whole number from min to max */
    CLI__MB,   /* megabytes, decimals allowed */
    CLI__LIST, /* text, and the option may be given many times */
};

struct cli__opt {
    const char *name;  /* "--program" */
    const char *value; /* what the value is called in help, "PATH" */
    enum cli__kind kind;
    unsigned long long min, max;
    const char *help;
};

/* Options and positional arguments at most. */
#define CLI__OPTS_MAX 56
#define CLI__ITEMS_MAX 1024
#define CLI__POS_MAX 64

/* What the parser read from a command line, by option index. */
struct cli__args {
    const char *val[CLI__OPTS_MAX];        /* last value given, "" for a flag;
                                              NULL when absent */
    unsigned long long num[CLI__OPTS_MAX]; /* CLI__NUM, CLI__MS, CLI__MB
                                              (bytes) */
    const char *items[CLI__ITEMS_MAX];     /* values of CLI__LIST options */
    int item_opt[CLI__ITEMS_MAX];
    int n_items;
    const char *pos[CLI__POS_MAX];
    int n_pos;
};

struct cli__cmd;
typedef int (*cli__run_fn)(const struct cli__cmd *cmd, struct cli *c,
                           struct cli__args *a);

struct cli__cmd {
    const char *name;     /* "ship new" */
    const char *synopsis; /* after the name in the usage line */
    const char *summary;  /* one line for the command list */
    const char *about;    /* a paragraph for --help */
    const struct cli__opt *opts;
    int pos_min, pos_max;
    bool client; /* takes --data, --admin and --json */
    cli__run_fn run;
};

/* --- Messages. --- */

/* Print a usage error about cmd (NULL: berth itself) and return 2. */
static int cli__usage(const struct cli__cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int cli__usage(const struct cli__cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "berth%s%s: ", cmd ? " " : "", cmd ? cmd->name : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun 'berth %s%s--help' for usage.\n",
            cmd ? cmd->name : "", cmd ? " " : "");
    return 2;
}

/* Print text at column indent, wrapped before column 80; the first line
 * continues where the cursor is, at column col. */
static void cli__wrap(FILE *f, const char *text, int col, int indent)
{
    while (*text != '\0') {
        size_t word = strcspn(text, " ");
        if (col > indent && col + 1 + (int)word > 79) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', f);
            col++;
        }
        fwrite(text, 1, word, f);
        col += (int)word;
        text += word;
        while (*text == ' ') {
            text++;
        }
    }
    fputc('\n', f);
}

/* Print one option row of a help text. */
static void cli__help_row(FILE *f, const char *left, const char *help)
{
    int col = fprintf(f, "  %s", left);
    if (col < 25) {
        fprintf(f, "%*s", 25 - col, "");
        col = 25;
    } else {
        fprintf(f, "\n%25s", "");
        col = 25;
    }
    cli__wrap(f, help, col, 25);
}

static const struct cli__opt cli__client_opts[] = {
    {"--data", "DIR", CLI__STR, 0, 0,
     "the host's data directory: its admin.sock, or the address in its "
     "admin.addr (default $BERTH_DATA, else ./berth-data)"},
    {"--admin", "ADDR", CLI__STR, 0, 0,
     "the admin API's address instead: HOST:PORT or unix:PATH"},
    {"--json", NULL, CLI__FLAG, 0, 0, "print the API's JSON"},
    {"--token", "TOKEN", CLI__STR, 0, 0,
     "the admin API's token, for a host on TCP (default $BERTH_TOKEN, which "
     "keeps it out of the process list); the socket needs none"},
    {NULL, NULL, 0, 0, 0, NULL},
};

/* Short forms of some commands' options: "berth ship logs -f". */
static const struct {
    const char *cmd, *alias, *name;
} cli__aliases[] = {
    {"ship logs", "-f", "--follow"},
};

/* Return the option that alias stands for in command cmd, or NULL. */
static const char *cli__alias(const char *cmd, const char *alias)
{
    for (size_t i = 0; i < sizeof cli__aliases / sizeof cli__aliases[0]; i++) {
        if (strcmp(cli__aliases[i].cmd, cmd) == 0 &&
            strcmp(cli__aliases[i].alias, alias) == 0) {
            return cli__aliases[i].name;
        }
    }
    return NULL;
}

/* Print the options of opts, with their short forms in command cmd (NULL:
 * none). */
static void cli__help_opts(FILE *f, const struct cli__opt *opts,
                           const char *cmd)
{
    for (const struct cli__opt *o = opts; o->name != NULL; o++) {
        char left[64];
        const char *alias = "";
        for (size_t i = 0;
             cmd != NULL && i < sizeof cli__aliases / sizeof cli__aliases[0];
             i++) {
            if (strcmp(cli__aliases[i].cmd, cmd) == 0 &&
                strcmp(cli__aliases[i].name, o->name) == 0) {
                alias = cli__aliases[i].alias;
            }
        }
        snprintf(left, sizeof left, "%s%s%s%s%s", alias, alias[0] ? ", " : "",
                 o->name, o->value ? " " : "", o->value ? o->value : "");
        cli__help_row(f, left, o->help);
    }
}

static void cli__help(const struct cli__cmd *cmd)
{
    printf("usage: berth %s%s%s\n\n", cmd->name, cmd->synopsis[0] ? " " : "",
           cmd->synopsis);
    cli__wrap(stdout, cmd->about, 0, 0);
    if (cmd->opts != NULL && cmd->opts[0].name != NULL) {
        printf("\nOptions:\n");
        cli__help_opts(stdout, cmd->opts, cmd->name);
    }
    if (cmd->client) {
        printf("\nFinding the host, and output:\n");
        cli__help_opts(stdout, cli__client_opts, NULL);
    }
    cli__help_row(stdout, "-h, --help", "print this help");
}

/* --- Parsing. --- */

/* Read the value of option o into slot i of a; returns 0, or 2 after a
 * usage message. */
static int cli__value(const struct cli__cmd *cmd, const struct cli__opt *o,
                      int i, const char *v, struct cli__args *a)
{
    char *end;
    if (o->kind == CLI__LIST) {
        if (a->n_items == CLI__ITEMS_MAX) {
            return cli__usage(cmd, "too many %s options", o->name);
        }
        a->items[a->n_items] = v;
        a->item_opt[a->n_items++] = i;
    } else if (o->kind == CLI__NUM || o->kind == CLI__MS) {
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 || n < o->min ||
            n > o->max) {
            return cli__usage(
                cmd, "%s needs a %s from %llu to %llu, not %s", o->name,
                o->kind == CLI__MS ? "number of milliseconds" : "number",
                o->min, o->max, v);
        }
        a->num[i] = n;
    } else if (o->kind == CLI__MB) {
        double mb = strtod(v, &end);
        if (*v < '0' || *v > '9' || *end != '\0' || mb > 1e9) {
            return cli__usage(cmd,
                              "%s needs a number of megabytes (decimals "
                              "allowed), not %s",
                              o->name, v);
        }
        a->num[i] = (unsigned long long)(mb * 1048576.0);
    }
    a->val[i] = v;
    return 0;
}

/* Find the option called name (up to len bytes) in opts; -1 if none. */
static int cli__find(const struct cli__opt *opts, const char *name, size_t len)
{
    for (int i = 0; opts != NULL && opts[i].name != NULL; i++) {
        if (strlen(opts[i].name) == len &&
            strncmp(opts[i].name, name, len) == 0) {
            return i;
        }
    }
    return -1;
}

/* Parse a command's arguments into a (and the client options into c).
 * Returns 0; 1 after printing the help (the caller exits 0); or 2 after a
 * usage message. */
static int cli__parse(const struct cli__cmd *cmd, int argc, char **argv,
                      struct cli *c, struct cli__args *a)
{
    bool options = true;
    memset(a, 0, sizeof *a);
    for (int k = 0; k < argc; k++) {
        const char *arg = argv[k];
        if (options && cli__alias(cmd->name, arg) != NULL) {
            arg = cli__alias(cmd->name, arg);
        }
        if (!options || strncmp(arg, "--", 2) != 0 || strcmp(arg, "--") == 0) {
            if (options && strcmp(arg, "--") == 0) {
                options = false;
            } else if (options && strcmp(arg, "-h") == 0) {
                cli__help(cmd);
                return 1;
            } else if (a->n_pos == cmd->pos_max) {
                return cli__usage(cmd, "unexpected argument %s", arg);
            } else {
                a->pos[a->n_pos++] = arg;
            }
            continue;
        }
        if (strcmp(arg, "--help") == 0) {
            cli__help(cmd);
            return 1;
        }
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const struct cli__opt *table = cmd->opts;
        int i = cli__find(table, arg, len);
        if (i < 0 && cmd->client) {
            table = cli__client_opts;
            i = cli__find(table, arg, len);
        }
        if (i < 0) {
            return cli__usage(cmd, "unknown option %.*s", (int)len, arg);
        }
        const struct cli__opt *o = &table[i];
        const char *v = "";
        if (o->kind == CLI__FLAG && eq != NULL) {
            return cli__usage(cmd, "%s takes no value", o->name);
        }
        if (o->kind != CLI__FLAG) {
            if (eq != NULL) {
                v = eq + 1;
            } else if (k + 1 < argc) {
                v = argv[++k];
            } else {
                return cli__usage(cmd, "%s needs a value: %s %s", o->name,
                                  o->name, o->value);
            }
        }
        if (table == cli__client_opts) {
            if (i == 0) {
                c->data = v;
            } else if (i == 1) {
                /* The form only: whether a host answers there is the
                 * request's to find out. */
                const char *colon = strrchr(v, ':');
                if (strncmp(v, "unix:", 5) != 0 &&
                    (colon == NULL || colon == v || colon[1] == '\0' ||
                     strspn(colon + 1, "0123456789") != strlen(colon + 1))) {
                    return cli__usage(cmd,
                                      "--admin needs HOST:PORT or unix:PATH, "
                                      "not %s",
                                      v);
                }
                c->admin = v;
            } else if (i == 2) {
                c->json = true;
            } else {
                c->token = v;
            }
            continue;
        }
        int rv = cli__value(cmd, o, i, v, a);
        if (rv != 0) {
            return rv;
        }
    }
    if (a->n_pos < cmd->pos_min) {
        return cli__usage(cmd, "needs %s", cmd->synopsis);
    }
    return 0;
}

/* --- Talking to the host. --- */

/* Find the host: --admin, else the data directory's admin.sock, else the
 * address its host wrote to admin.addr when it serves the API on TCP. */
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
    char path[4200];
    struct stat st;
    snprintf(c->endpoint, sizeof c->endpoint, "unix:%s/admin.sock", data);
    if (stat(c->endpoint + 5, &st) == 0) {
        return;
    }
    snprintf(path, sizeof path, "%s/admin.addr", data);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return;
    }
    char addr[256];
    if (fgets(addr, sizeof addr, f) != NULL) {
        addr[strcspn(addr, "\r\n")] = '\0';
        if (addr[0] != '\0') {
            snprintf(c->endpoint, sizeof c->endpoint, "%s", addr);
        }
    }
    fclose(f);
}

/* Send one API request; on success returns 0 with the status in *status
 * and the body in resp (the caller's, emptied first), else prints why and
 * returns 1. */
static int cli__request(struct cli *c, const char *method, const char *target,
                        const void *body, size_t len, int *status,
                        struct buf *resp)
{
    char errmsg[ERRMSG_SIZE];
    char auth[600] = "";
    /* A token goes over TCP only: the socket needs none. */
    const char *token = c->token ? c->token : getenv("BERTH_TOKEN");
    bool tcp = strncmp(c->endpoint, "unix:", 5) != 0;
    if (tcp && token != NULL && *token != '\0') {
        size_t n = strlen(token);
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)token[i] <= ' ' || token[i] == 0x7f) {
                fprintf(stderr, "berth: the token holds a space or a control "
                                "character: it is not a token\n");
                return 1;
            }
        }
        if (n > 500) {
            fprintf(stderr, "berth: the token is too long to be a token\n");
            return 1;
        }
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
    }
    resp->len = 0;
    c->status = 0;
    int rv = http_client_request_ex(c->endpoint, method, target,
                                    auth[0] ? auth : NULL, body, len, 0, status,
                                    resp, errmsg);
    if (rv != 0) {
        fprintf(stderr, "berth: %s\n", errmsg);
        fprintf(stderr, "berth: is a host running? Start one with 'berth "
                        "serve' or point --data/--admin at it.\n");
        return 1;
    }
    return 0;
}

/* Print the API's error answer v (status, JSON) to stderr. */
static void cli__print_error(struct cli *c, int status, json_t *v)
{
    const char *token = c->token ? c->token : getenv("BERTH_TOKEN");
    json_t *e = json_object_get(v, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *code = json_string_value(json_object_get(e, "code"));
    fprintf(stderr, "berth: %s (%s)\n", msg ? msg : "request failed",
            code ? code : "error");
    if (status == 401 && (token == NULL || *token == '\0')) {
        fprintf(stderr,
                "berth: %s is the admin API on TCP: give a token "
                "with BERTH_TOKEN or --token, or use the host's "
                "socket (--data DIR)\n",
                c->endpoint);
    }
}

/* Perform one API call. On success returns 0 and *out holds the decoded
 * JSON (the caller frees it); on an error prints it to stderr and returns
 * 1. */
static int cli__call(struct cli *c, const char *method, const char *target,
                     const void *body, size_t len, json_t **out)
{
    struct buf resp;
    int status = 0;
    buf_init(&resp);
    if (cli__request(c, method, target, body, len, &status, &resp) != 0) {
        buf_free(&resp);
        return 1;
    }
    c->status = status;
    json_error_t jerr;
    json_t *v = json_loadb((const char *)resp.data, resp.len, 0, &jerr);
    buf_free(&resp);
    if (v == NULL) {
        fprintf(stderr,
                "berth: host answered %d with a body that is not "
                "JSON\n",
                status);
        return 1;
    }
    if (status >= 300) {
        cli__print_error(c, status, v);
        json_decref(v);
        return 1;
    }
    *out = v;
    return 0;
}

/* Perform one API call whose answer is bytes, not JSON, into out (the
 * caller's); as cli__call. */
static int cli__call_bytes(struct cli *c, const char *method,
                           const char *target, struct buf *out)
{
    int status = 0;
    if (cli__request(c, method, target, NULL, 0, &status, out) != 0) {
        return 1;
    }
    if (status >= 300) {
        json_error_t jerr;
        json_t *v = json_loadb((const char *)out->data, out->len, 0, &jerr);
        if (v == NULL) {
            fprintf(stderr, "berth: host answered %d\n", status);
        } else {
            cli__print_error(c, status, v);
            json_decref(v);
        }
        return 1;
    }
    return 0;
}

/* Send spec, which this takes, as the JSON body of a request; as
 * cli__call. */
static int cli__call_json(struct cli *c, const char *method, const char *target,
                          json_t *spec, json_t **out)
{
    char *body = json_dumps(spec, JSON_COMPACT);
    json_decref(spec);
    if (body == NULL) {
        fprintf(stderr, "berth: out of memory\n");
        return 1;
    }
    int rv = cli__call(c, method, target, body, strlen(body), out);
    mem_free(body); /* jansson allocates through lib/mem.h */
    return rv;
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

/* Print a timeout in ms, where 0 means never. */
static void cli__print_timeout(const char *label, long long ms)
{
    if (ms == 0) {
        printf("%-16s never\n", label);
    } else {
        printf("%-16s %lld ms\n", label, ms);
    }
}

/* Print the usage figures of a ship or an account (docs/api.md, "Usage"). */
static void cli__print_usage(json_t *u)
{
    if (u == NULL) {
        return;
    }
    if (json_object_get(u, "ships") != NULL) {
        printf("ships:           %lld (%lld awake)\n", cli__int(u, "ships"),
               cli__int(u, "ships_awake"));
    }
    printf("storage:         %lld bytes\n", cli__int(u, "storage_bytes"));
    printf("events:          %lld\n", cli__int(u, "events"));
    printf("cpu:             %.3f s\n", (double)cli__int(u, "cpu_us") / 1e6);
    printf("memory peak:     %lld bytes\n", cli__int(u, "memory_peak_bytes"));
    printf("memory:          %lld byte-seconds\n",
           cli__int(u, "memory_byte_seconds"));
    printf("recorded wakes:  %lld\n", cli__int(u, "wakes"));
    printf("requests:        %lld\n", cli__int(u, "requests"));
}

/* Write a CPU cap in ms a second as cores ("0.500"; "none" for 0) into
 * out (n bytes). */
static void cli__format_cores(long long millis, char *out, size_t n)
{
    if (millis == 0) {
        snprintf(out, n, "none");
    } else {
        snprintf(out, n, "%lld.%03lld", millis / 1000, millis % 1000);
    }
}

/* Write a pids cap ("32"; "none" for 0) into out (n bytes). */
static void cli__format_pids(long long pids, char *out, size_t n)
{
    if (pids == 0) {
        snprintf(out, n, "none");
    } else {
        snprintf(out, n, "%lld", pids);
    }
}

static void cli__print_ship(json_t *s)
{
    printf("id:              %s\n", cli__str(s, "id"));
    printf("name:            %s\n", cli__str(s, "name"));
    printf("state:           %s%s\n", cli__str(s, "state"),
           json_is_true(json_object_get(s, "killed"))
               ? " (its program was killed by the operator)"
               : "");
    if (json_is_true(json_object_get(s, "blocked"))) {
        printf("blocked:         yes (the front door answers 403; no "
               "message reaches it or leaves it)\n");
    }
    printf("account:         %s%s\n", cli__str(s, "account"),
           json_is_true(json_object_get(s, "account_disabled")) ? " (disabled)"
                                                                : "");
    printf("program:         %s\n", cli__str(s, "program"));
    printf("parent:          %s\n", cli__str(s, "parent"));
    printf("lifetime:        %s", cli__str(s, "lifetime"));
    if (cli__int(s, "lifetime_ms") > 0) {
        printf(" (%lld ms)", cli__int(s, "lifetime_ms"));
    }
    putchar('\n');
    printf("children:        %lld\n", cli__int(s, "children"));
    printf("network:         %s\n",
           json_is_true(json_object_get(s, "network")) ? "yes" : "no");
    size_t i;
    json_t *v;
    const char *key;
    json_array_foreach(json_object_get(s, "args"), i, v)
    {
        printf("arg:             %s\n", json_string_value(v));
    }
    json_object_foreach(json_object_get(s, "env"), key, v)
    {
        printf("env:             %s=%s\n", key, json_string_value(v));
    }
    char ago[32];
    cli__ago(cli__int(s, "last_active_ns"), ago, sizeof ago);
    printf("last event:      %lld\n", cli__int(s, "last_event"));
    printf("snapshot event:  %lld\n", cli__int(s, "snapshot_event"));
    printf("last active:     %s\n", ago);
    printf("wakes:           %lld\n", cli__int(s, "wake_count"));
    cli__print_usage(json_object_get(s, "usage"));
    cli__print_timeout("freeze timeout:", cli__int(s, "freeze_timeout_ms"));
    cli__print_timeout("idle timeout:", cli__int(s, "idle_timeout_ms"));
    json_t *acks_j = json_object_get(s, "acks");
    if (json_is_integer(acks_j)) {
        printf(
            "acks:            %lld%s\n", (long long)json_integer_value(acks_j),
            json_is_true(json_object_get(s, "acks_default")) ? " (host default)"
                                                             : "");
    } else if (json_is_string(acks_j)) {
        printf("acks:            %s%s\n", json_string_value(acks_j),
               json_is_true(json_object_get(s, "acks_default"))
                   ? " (host default)"
                   : "");
    }
    if (cli__int(s, "memory_bytes") > 0) {
        printf("memory:          %.1f KiB\n",
               (double)cli__int(s, "memory_bytes") / 1024.0);
    }
    json_t *caps = json_object_get(s, "caps");
    if (json_is_object(caps)) {
        json_t *in = json_object_get(caps, "in_force");
        json_t *from = json_object_get(caps, "from");
        char mem[24], cores[32], pids[24];
        caps_format_memory((uint64_t)cli__int(in, "memory_bytes"), mem,
                           sizeof mem);
        cli__format_cores(cli__int(in, "cpu_millis"), cores, sizeof cores);
        cli__format_pids(cli__int(in, "pids"), pids, sizeof pids);
        /* Each in force, and whose it is: the host's, the account's or the
         * ship's own (docs/api.md, "Caps"). */
        printf("caps:            memory %s (%s), cpu %s (%s), pids %s (%s)\n",
               mem, cli__str(from, "memory_bytes"), cores,
               cli__str(from, "cpu_millis"), pids, cli__str(from, "pids"));
        json_t *use = json_object_get(caps, "use");
        if (json_is_object(use)) {
            printf(
                "cgroup:          memory %.1f MiB (peak %.1f MiB), pids %lld "
                "(peak %lld), oom kills %lld\n",
                (double)cli__int(use, "memory_bytes") / 1048576.0,
                (double)cli__int(use, "memory_peak_bytes") / 1048576.0,
                cli__int(use, "pids"), cli__int(use, "pids_peak"),
                cli__int(use, "oom_kills"));
        }
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

/* --- ship new. --- */

enum {
    CLI__NEW_PROGRAM,
    CLI__NEW_NAME,
    CLI__NEW_COUNT,
    CLI__NEW_ARG,
    CLI__NEW_ENV,
    CLI__NEW_IDLE,
    CLI__NEW_FREEZE,
    CLI__NEW_IDS,
    CLI__NEW_ACKS,
    CLI__NEW_ACCOUNT,
    CLI__NEW_PARENT,
    CLI__NEW_LIFETIME,
    CLI__NEW_LIFETIME_MS,
    CLI__NEW_NETWORK,
    CLI__NEW_MEMORY,
    CLI__NEW_CPU,
    CLI__NEW_PIDS,
};

#define CLI__YEAR_MS (365ULL * 24 * 3600 * 1000)

static const struct cli__opt cli__new_opts[] = {
    [CLI__NEW_PROGRAM] = {"--program", "PATH", CLI__STR, 0, 0,
                          "the program to run: an executable file. A "
                          "relative path is made absolute here, in the "
                          "current directory; symbolic links in it are "
                          "kept, and followed at each start"},
    [CLI__NEW_NAME] = {"--name", "NAME", CLI__STR, 0, 0,
                       "the ship's name: 1 to 63 of a-z, 0-9 and '-', not "
                       "starting with '-' (default: none, the id only); with "
                       "--count, ships are named NAME-1 ... NAME-N"},
    [CLI__NEW_COUNT] = {"--count", "N", CLI__NUM, 1, 1000000,
                        "create N ships in one call"},
    [CLI__NEW_ARG] = {"--arg", "ARG", CLI__LIST, 0, 0,
                      "an argument for the program, after its path; give it "
                      "once per argument, in order"},
    [CLI__NEW_ENV] = {"--env", "KEY=VALUE", CLI__LIST, 0, 0,
                      "a variable for the program's environment, besides "
                      "BERTH_SHIP, BERTH_HOST and PATH (a PATH here "
                      "replaces the default); give it once per variable"},
    [CLI__NEW_IDLE] = {"--idle-timeout", "MS", CLI__MS, 1, CLI__YEAR_MS,
                       "sleep the ship after MS idle (default: the host's "
                       "--idle-timeout)"},
    [CLI__NEW_FREEZE] = {"--freeze-timeout", "MS", CLI__MS, 0, CLI__YEAR_MS,
                         "freeze the ship after MS idle; 0: never (default: "
                         "the host's --freeze-timeout)"},
    [CLI__NEW_IDS] = {"--ids", NULL, CLI__FLAG, 0, 0,
                      "with --count, print the new ships' ids, one a line, "
                      "rather than a summary"},
    [CLI__NEW_ACKS] = {"--acks", "LEVEL", CLI__STR, 0, 0,
                       "how many hosts must hold an event before its "
                       "effects leave: 0, 1, 2, ..., quorum or all "
                       "(default: the host's --acks)"},
    [CLI__NEW_ACCOUNT] = {"--account", "NAME", CLI__STR, 0, 0,
                          "the account the ships belong to (default: the "
                          "token's account, else anonymous); an account's "
                          "token may name only its own"},
    [CLI__NEW_PARENT] = {"--parent", "SHIP", CLI__STR, 0, 0,
                         "make the ship a child of SHIP (an id or name), in "
                         "SHIP's account; one ship only (no --count above "
                         "1). SHIP gets a CHILD event saying so"},
    [CLI__NEW_LIFETIME] = {"--lifetime", "LIFETIME", CLI__STR, 0, 0,
                           "with --parent, when the child goes: root (only "
                           "when removed itself), linked (also with its "
                           "parent; the default), ephemeral (also when "
                           "its parent releases it), resetting (as root, "
                           "but its state empties after --lifetime-ms "
                           "without an event) or leased (kept while its "
                           "parent renews its lease every --lifetime-ms)"},
    [CLI__NEW_LIFETIME_MS] = {"--lifetime-ms", "MS", CLI__MS, 1000,
                              CLI__YEAR_MS,
                              "with --lifetime resetting, the time without "
                              "an event after which the child's state "
                              "empties; with leased, the lease's (at least "
                              "1000)"},
    [CLI__NEW_NETWORK] = {"--network", NULL, CLI__FLAG, 0, 0,
                          "let the program use the network: it keeps the "
                          "host's, where programs otherwise have none (an "
                          "empty network namespace); with --parent, only "
                          "if the parent may"},
    [CLI__NEW_MEMORY] = {"--memory", "SIZE", CLI__STR, 0, 0,
                         "memory cap of its program and what it starts "
                         "(64M, 1G): over it the program is killed and its "
                         "event answered 503 memory_limit (default: the "
                         "host's; a smaller cap of the host or a parent "
                         "wins)"},
    [CLI__NEW_CPU] = {"--cpu", "CORES", CLI__STR, 0, 0,
                      "CPU share of its program (0.5: half a core)"},
    [CLI__NEW_PIDS] = {"--pids", "N", CLI__STR, 0, 0,
                       "processes and threads its program may have at once"},
    {NULL, NULL, 0, 0, 0, NULL},
};

/* Check caps given on the command line (each NULL when absent) as the
 * host will read them; 0, or 2 after a usage message. */
static int cli__check_caps(const struct cli__cmd *cmd, const char *memory,
                           const char *cpu, const char *pids)
{
    uint64_t bytes;
    uint32_t n;
    if (memory != NULL && caps_parse_memory(memory, &bytes) != 0) {
        return cli__usage(cmd,
                          "--memory needs a size of at least 4M, such as 64M "
                          "or 1G, or none, not %s",
                          memory);
    }
    if (cpu != NULL && caps_parse_cpu(cpu, &n) != 0) {
        return cli__usage(cmd,
                          "--cpu needs a number of cores from 0.01 to 1024, "
                          "such as 0.5, or none, not %s",
                          cpu);
    }
    if (pids != NULL && caps_parse_pids(pids, &n) != 0) {
        return cli__usage(cmd,
                          "--pids needs a whole number of at least 2, or "
                          "none, not %s",
                          pids);
    }
    return 0;
}

/* Make a relative program path absolute in the current directory, into
 * out (PATH_MAX bytes); 0, or 2 after a usage message. */
static int cli__absolute(const struct cli__cmd *cmd, const char *path,
                         char *out)
{
    char cwd[PATH_MAX];
    if (path[0] == '\0') {
        return cli__usage(cmd, "--program needs a path");
    }
    if (path[0] == '/') {
        snprintf(out, PATH_MAX, "%s", path);
        return 0;
    }
    if (getcwd(cwd, sizeof cwd) == NULL) {
        fprintf(stderr, "berth: cannot read the current directory: %s\n",
                strerror(errno));
        return 1;
    }
    while (strncmp(path, "./", 2) == 0) {
        path += 2;
        path += strspn(path, "/");
    }
    int n = snprintf(out, PATH_MAX, "%s%s%s", cwd,
                     strcmp(cwd, "/") == 0 ? "" : "/", path);
    if (n < 0 || n >= PATH_MAX) {
        return cli__usage(cmd, "--program %s is too long", path);
    }
    return 0;
}

/* Check a ship name, or with a count (0: none) the longest of NAME-1 ...
 * NAME-N, as the host will; 0, or 2 after a usage message. */
static int cli__check_name(const struct cli__cmd *cmd, const char *name,
                           unsigned long long count)
{
    char longest[128];
    if (name[0] == '\0') {
        return cli__usage(cmd, "--name must not be empty: leave it out for "
                               "an unnamed ship");
    }
    if (count > 0) {
        snprintf(longest, sizeof longest, "%s-%llu", name, count);
    } else {
        snprintf(longest, sizeof longest, "%s", name);
    }
    if (!ship_name_valid(longest)) {
        return cli__usage(cmd,
                          "ship name \"%s\" is not valid: use 1 to 63 of "
                          "a-z, 0-9 and '-', not starting with '-'",
                          longest);
    }
    return 0;
}

/* Whether name can be an account's name, new or not (the host checks the
 * rest): 1 to 63 of a-z, 0-9 and '-'. */
static bool cli__account_name_ok(const char *name)
{
    size_t n = strlen(name);
    return n > 0 && n <= 63 &&
           strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

/* Check --parent, --lifetime and --lifetime-ms of `ship new` as the host
 * will; 0, or 2 after a usage message. */
static int cli__new_lineage(const struct cli__cmd *cmd, struct cli__args *a)
{
    const char *parent = a->val[CLI__NEW_PARENT];
    const char *lifetime = a->val[CLI__NEW_LIFETIME];
    uint8_t l;
    if ((lifetime != NULL || a->val[CLI__NEW_LIFETIME_MS] != NULL) &&
        parent == NULL) {
        return cli__usage(cmd, "--lifetime goes with --parent: only a child "
                               "has a lifetime");
    }
    if (parent == NULL) {
        return 0;
    }
    if (!ship_name_valid(parent)) {
        return cli__usage(cmd, "--parent needs a ship's id or name, not %s",
                          parent);
    }
    if (a->val[CLI__NEW_COUNT] != NULL && a->num[CLI__NEW_COUNT] != 1) {
        return cli__usage(cmd, "--parent makes one ship: leave --count out");
    }
    if (lifetime != NULL && ship_lifetime_parse(lifetime, &l) != 0) {
        return cli__usage(cmd,
                          "--lifetime needs root, linked, ephemeral, "
                          "resetting or leased, not %s",
                          lifetime);
    }
    bool timed = lifetime != NULL && l >= FRAME_LIFETIME_RESETTING;
    if (timed != (a->val[CLI__NEW_LIFETIME_MS] != NULL)) {
        return cli__usage(cmd, "--lifetime resetting or leased and "
                               "--lifetime-ms MS go together");
    }
    return 0;
}

/* Build the request body of `ship new` from its options; NULL after a
 * usage message (*rv is 2, or 1 for a local failure). */
static json_t *cli__new_spec(const struct cli__cmd *cmd, struct cli__args *a,
                             int *rv)
{
    char program[PATH_MAX];
    const char *name = a->val[CLI__NEW_NAME];
    *rv = 0;
    if (a->val[CLI__NEW_PROGRAM] == NULL) {
        *rv = cli__usage(cmd, "needs --program PATH");
    } else if (name != NULL) {
        *rv = cli__check_name(cmd, name, a->num[CLI__NEW_COUNT]);
    }
    uint8_t acks;
    const char *acks_text = a->val[CLI__NEW_ACKS];
    if (*rv == 0 && acks_text != NULL && gate_acks_parse(acks_text, &acks)) {
        *rv = cli__usage(cmd,
                         "--acks needs a number of hosts from 0 to %d, "
                         "quorum or all, not %s",
                         GATE_ACKS_MAX, acks_text);
    }
    const char *account = a->val[CLI__NEW_ACCOUNT];
    if (*rv == 0 && account != NULL && !cli__account_name_ok(account)) {
        *rv = cli__usage(cmd,
                         "--account needs an account's name (1 to 63 of "
                         "a-z, 0-9 and '-'), not %s",
                         account);
    }
    if (*rv == 0) {
        *rv = cli__new_lineage(cmd, a);
    }
    if (*rv == 0) {
        *rv = cli__check_caps(cmd, a->val[CLI__NEW_MEMORY],
                              a->val[CLI__NEW_CPU], a->val[CLI__NEW_PIDS]);
    }
    if (*rv == 0) {
        *rv = cli__absolute(cmd, a->val[CLI__NEW_PROGRAM], program);
    }
    if (*rv != 0) {
        return NULL;
    }
    json_t *spec = json_object();
    json_t *args = json_array();
    json_t *env = json_object();
    json_object_set_new(spec, "program", json_string(program));
    if (acks_text != NULL) {
        json_object_set_new(spec, "acks",
                            acks <= GATE_ACKS_MAX ? json_integer(acks)
                                                  : json_string(acks_text));
    }
    for (int k = 0; k < a->n_items; k++) {
        const char *item = a->items[k];
        const char *eq = strchr(item, '=');
        if (a->item_opt[k] == CLI__NEW_ARG) {
            json_array_append_new(args, json_string(item));
        } else if (eq == NULL || eq == item) {
            *rv = cli__usage(cmd, "--env needs KEY=VALUE, not %s", item);
            break;
        } else {
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)(eq - item), item);
            json_object_set_new(env, key, json_string(eq + 1));
        }
    }
    json_object_set_new(spec, "args", args);
    json_object_set_new(spec, "env", env);
    if (a->val[CLI__NEW_NETWORK] != NULL) {
        json_object_set_new(spec, "network", json_true());
    }
    /* The options that go into the body as they are: text, or numbers. */
    static const struct {
        int opt;
        const char *key;
        bool number;
    } fields[] = {{CLI__NEW_NAME, "name", false},
                  {CLI__NEW_ACCOUNT, "account", false},
                  {CLI__NEW_PARENT, "parent", false},
                  {CLI__NEW_LIFETIME, "lifetime", false},
                  {CLI__NEW_MEMORY, "memory", false},
                  {CLI__NEW_CPU, "cpu", false},
                  {CLI__NEW_PIDS, "pids", false},
                  {CLI__NEW_LIFETIME_MS, "lifetime_ms", true},
                  {CLI__NEW_IDLE, "idle_timeout_ms", true},
                  {CLI__NEW_FREEZE, "freeze_timeout_ms", true},
                  {CLI__NEW_COUNT, "count", true}};
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        int opt = fields[k].opt;
        if (a->val[opt] != NULL) {
            json_object_set_new(spec, fields[k].key,
                                fields[k].number
                                    ? json_integer((json_int_t)a->num[opt])
                                    : json_string(a->val[opt]));
        }
    }
    if (*rv != 0) {
        json_decref(spec);
        return NULL;
    }
    return spec;
}

static int cli__ship_new(const struct cli__cmd *cmd, struct cli *c,
                         struct cli__args *a)
{
    int rv;
    json_t *spec = cli__new_spec(cmd, a, &rv);
    if (spec == NULL) {
        return rv;
    }
    json_t *v = NULL;
    rv = cli__call_json(c, "POST", "/v1/ships", spec, &v);
    if (rv != 0) {
        return rv;
    }
    const char *name = a->val[CLI__NEW_NAME];
    long long created = cli__int(v, "created");
    if (c->json) {
        cli__print_json(v);
    } else if (a->val[CLI__NEW_COUNT] == NULL) {
        printf("%s\n", cli__str(v, "id"));
    } else if (a->val[CLI__NEW_IDS] != NULL) {
        size_t i;
        json_t *id;
        json_array_foreach(json_object_get(v, "ids"), i, id)
        {
            printf("%s\n", json_string_value(id));
        }
    } else if (name == NULL) {
        printf("created %lld unnamed ship%s\n", created,
               created == 1 ? "" : "s");
    } else {
        /* A call run again after it was cut short creates only what is
         * missing of NAME-1 ... NAME-N. */
        long long existing = cli__int(v, "existing");
        long long total = created + existing;
        if (existing > 0) {
            printf("created %lld of %s-1 ... %s-%lld (%lld existed "
                   "already)\n",
                   created, name, name, total, existing);
        } else if (total == 1) {
            printf("created 1 ship named %s-1\n", name);
        } else {
            printf("created %lld ships named %s-1 ... %s-%lld\n", total, name,
                   name, total);
        }
    }
    json_decref(v);
    return 0;
}

/* --- ship ls. --- */

enum { CLI__LS_LIMIT, CLI__LS_STATE };

static const struct cli__opt cli__ls_opts[] = {
    [CLI__LS_LIMIT] = {"--limit", "N", CLI__NUM, 1, 1000000,
                       "list the first N ships only (default: all)"},
    [CLI__LS_STATE] = {"--state", "STATE", CLI__STR, 0, 0,
                       "list only the ships in STATE: asleep, waking, awake, "
                       "frozen or sleeping"},
    {NULL, NULL, 0, 0, 0, NULL},
};

/* Add one line of the ship table to out: the header for a NULL ship. */
static int cli__ls_line(struct buf *out, json_t *s)
{
    char line[256], ago[32];
    int n;
    if (s == NULL) {
        n = snprintf(line, sizeof line, "%-18s %-20s %-9s %10s %6s  %s\n", "ID",
                     "NAME", "STATE", "EVENTS", "WAKES", "LAST ACTIVE");
    } else {
        cli__ago(cli__int(s, "last_active_ns"), ago, sizeof ago);
        n = snprintf(line, sizeof line, "%-18s %-20s %-9s %10lld %6lld  %s\n",
                     cli__str(s, "id"), cli__str(s, "name"),
                     cli__str(s, "state"), cli__int(s, "last_event"),
                     cli__int(s, "wake_count"), ago);
    }
    return buf_append(out, line, (size_t)n < sizeof line ? (size_t)n : 0);
}

/* List ships a page at a time, following the API's cursor, so that a host
 * with a million ships never builds one huge answer. What is printed is
 * kept (as text lines, or JSON objects for --json) until the last page is
 * in, so that a failure prints nothing on stdout. */
static int cli__ship_ls(const struct cli__cmd *cmd, struct cli *c,
                        struct cli__args *a)
{
    const char *state = a->val[CLI__LS_STATE];
    enum ship_state st;
    if (state != NULL &&
        (ship_state_parse(state, &st) != 0 || st == SHIP_REMOVED)) {
        return cli__usage(cmd,
                          "--state needs asleep, waking, awake, frozen or "
                          "sleeping, not %s",
                          state);
    }
    unsigned long long limit = a->num[CLI__LS_LIMIT]; /* 0: all */
    char target[160];
    char next[32] = "";
    unsigned long long shown = 0;
    json_t *all = json_array();
    struct buf text;
    buf_init(&text);
    int rv = !c->json && cli__ls_line(&text, NULL) != 0 ? 1 : 0;
    while (rv == 0) {
        unsigned long long page = 1000;
        if (limit != 0 && limit - shown < page) {
            page = limit - shown;
        }
        snprintf(target, sizeof target, "/v1/ships?limit=%llu%s%s%s%s", page,
                 next[0] ? "&after=" : "", next, state ? "&state=" : "",
                 state ? state : "");
        json_t *v = NULL;
        if ((rv = cli__call(c, "GET", target, NULL, 0, &v)) != 0) {
            break;
        }
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(v, "ships"), i, s)
        {
            if (c->json) {
                json_array_append(all, s);
            } else if (rv == 0 && cli__ls_line(&text, s) != 0) {
                fprintf(stderr, "berth: out of memory\n");
                rv = 1;
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
    if (rv == 0 && c->json) {
        json_t *o = json_object();
        json_object_set(o, "ships", all);
        cli__print_json(o);
        json_decref(o);
    } else if (rv == 0) {
        fwrite(text.data, 1, text.len, stdout);
    }
    json_decref(all);
    buf_free(&text);
    return rv;
}

/* --- ship tree. --- */

/* Print bytes of memory as the tree shows it: "-" when not known. */
static void cli__memory(json_t *v, char *out, size_t size)
{
    if (!json_is_integer(v)) {
        snprintf(out, size, "-");
    } else if (json_integer_value(v) >= 1048576) {
        snprintf(out, size, "%.1f MiB",
                 (double)json_integer_value(v) / 1048576.0);
    } else {
        snprintf(out, size, "%.1f KiB", (double)json_integer_value(v) / 1024.0);
    }
}

/* Print a tree answer (GET /v1/ships/SHIP/tree) a ship a line, each
 * indented two spaces under its parent: name (else id), lifetime, status
 * and memory. Walked with a stack of its own, since a tree may be
 * thousands of ships deep. */
static int cli__print_tree(json_t *root)
{
    size_t cap = (size_t)cli__int(root, "ships") + 1, n = 0;
    json_t **stack = calloc(cap, sizeof *stack);
    int *depth = calloc(cap, sizeof *depth);
    if (stack == NULL || depth == NULL) {
        free(stack);
        free(depth);
        fprintf(stderr, "berth: out of memory\n");
        return 1;
    }
    stack[n++] = root;
    while (n > 0) {
        json_t *o = stack[--n];
        int d = depth[n];
        char mem[32];
        cli__memory(json_object_get(o, "memory_bytes"), mem, sizeof mem);
        const char *label = json_is_string(json_object_get(o, "name"))
                                ? cli__str(o, "name")
                                : cli__str(o, "id");
        int w = 2 * d + (int)strlen(label);
        printf("%*s%s%*s  %-9s  %-6s  %s", 2 * d, "", label,
               w < 30 ? 30 - w : 0, "",
               json_is_string(json_object_get(o, "lifetime"))
                   ? cli__str(o, "lifetime")
                   : "operator",
               cli__str(o, "status"), mem);
        /* What is left of its budget, where it has one. */
        static const char *const figures[][2] = {{"ships", "ships"},
                                                 {"storage_bytes", "bytes"},
                                                 {"cpu_ms", "ms CPU"}};
        json_t *budget = json_object_get(o, "budget");
        for (size_t f = 0; budget != NULL && f < 3; f++) {
            json_t *b = json_object_get(budget, figures[f][0]);
            if (b != NULL) {
                printf("  %lld %s left", cli__int(b, "left"), figures[f][1]);
            }
        }
        putchar('\n');
        json_t *kids = json_object_get(o, "children");
        /* Pushed last first, so that they print in their order. */
        for (size_t k = json_array_size(kids); k-- > 0 && n < cap;) {
            stack[n] = json_array_get(kids, k);
            depth[n++] = d + 1;
        }
    }
    if (json_is_true(json_object_get(root, "truncated"))) {
        printf("(the first %lld ships only: the tree has more)\n",
               cli__int(root, "ships"));
    }
    free(stack);
    free(depth);
    return 0;
}

/* --- One ship: show, send, sleep, wake, rm, tree, kill, block, unblock,
 * resize; and import, which makes one. --- */

/* Read all of path ("-": stdin) into out; 0 or 1 after a message. */
static int cli__read_file(const char *path, struct buf *out)
{
    bool in = strcmp(path, "-") == 0;
    const char *what = in ? "stdin" : path;
    FILE *f = in ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "berth: cannot read %s: %s\n", what, strerror(errno));
        return 1;
    }
    char chunk[65536];
    size_t n;
    int rv = 0;
    while (rv == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (buf_append(out, chunk, n) != 0) {
            fprintf(stderr, "berth: out of memory reading %s\n", what);
            rv = 1;
        }
    }
    if (rv == 0 && ferror(f)) {
        fprintf(stderr, "berth: cannot read %s: %s\n", what, strerror(errno));
        rv = 1;
    }
    if (!in) {
        fclose(f);
    }
    return rv;
}

enum {
    CLI__RESIZE_MEMORY,
    CLI__RESIZE_CPU,
    CLI__RESIZE_PIDS,
    CLI__RESIZE_STORAGE,
};

static const struct cli__opt cli__resize_opts[] = {
    [CLI__RESIZE_MEMORY] = {"--memory", "SIZE", CLI__STR, 0, 0,
                            "memory cap of its program (64M, 1G; none)"},
    [CLI__RESIZE_CPU] = {"--cpu", "CORES", CLI__STR, 0, 0,
                         "CPU share of its program (0.5: half a core; none)"},
    [CLI__RESIZE_PIDS] = {"--pids", "N", CLI__STR, 0, 0,
                          "processes and threads of its program at once "
                          "(none)"},
    [CLI__RESIZE_STORAGE] = {"--storage", "SIZE", CLI__STR, 0, 0,
                             "its storage budget: what it and its "
                             "descendants may hold before its spawns are "
                             "refused (100M; none)"},
    {NULL, NULL, 0, 0, 0, NULL},
};

/* Set *out to the body of ship resize, from its options; 0, or 2 after a
 * usage error. *out is the caller's (cli__call_json takes it). */
static int cli__resize_spec(const struct cli__cmd *cmd, struct cli__args *a,
                            json_t **out)
{
    uint64_t storage;
    int rv = cli__check_caps(cmd, a->val[CLI__RESIZE_MEMORY],
                             a->val[CLI__RESIZE_CPU], a->val[CLI__RESIZE_PIDS]);
    if (rv != 0) {
        return rv;
    }
    if (a->val[CLI__RESIZE_STORAGE] != NULL &&
        caps_parse_memory(a->val[CLI__RESIZE_STORAGE], &storage) != 0) {
        return cli__usage(cmd,
                          "--storage needs a size of at least 4M, such as "
                          "100M, or none, not %s",
                          a->val[CLI__RESIZE_STORAGE]);
    }
    static const char *const keys[] = {"memory", "cpu", "pids", "storage"};
    json_t *spec = json_object();
    for (int i = 0; i < 4; i++) {
        if (a->val[i] != NULL) {
            json_object_set_new(spec, keys[i], json_string(a->val[i]));
        }
    }
    if (json_object_size(spec) == 0) {
        json_decref(spec);
        return cli__usage(cmd, "give at least one of --memory, --cpu, --pids, "
                               "--storage");
    }
    *out = spec;
    return 0;
}

/* The commands of cli__ship_one. */
enum cli__one {
    CLI__ONE_SHOW,
    CLI__ONE_SEND,
    CLI__ONE_SLEEP,
    CLI__ONE_WAKE,
    CLI__ONE_RM,
    CLI__ONE_TREE,
    CLI__ONE_KILL,
    CLI__ONE_BLOCK,
    CLI__ONE_UNBLOCK,
    CLI__ONE_RESIZE,
    CLI__ONE_IMPORT,
};

/* One call of the API about one ship (or, for import, with a file), and
 * its answer printed. */
static int cli__ship_one(const struct cli__cmd *cmd, struct cli *c,
                         struct cli__args *a)
{
    static const struct {
        const char *name;
        const char *method;
        const char *suffix; /* after /v1/ships/SHIP; NULL: no ship */
    } ops[] = {
        [CLI__ONE_SHOW] = {"ship show", "GET", ""},
        [CLI__ONE_SEND] = {"ship send", "POST", "/send"},
        [CLI__ONE_SLEEP] = {"ship sleep", "POST", "/sleep"},
        [CLI__ONE_WAKE] = {"ship wake", "POST", "/wake"},
        [CLI__ONE_RM] = {"ship rm", "DELETE", ""},
        [CLI__ONE_TREE] = {"ship tree", "GET", "/tree"},
        [CLI__ONE_KILL] = {"ship kill", "POST", "/kill"},
        [CLI__ONE_BLOCK] = {"ship block", "POST", "/block"},
        [CLI__ONE_UNBLOCK] = {"ship unblock", "POST", "/unblock"},
        [CLI__ONE_RESIZE] = {"ship resize", "POST", "/resize"},
        [CLI__ONE_IMPORT] = {"ship import", "POST", NULL},
    };
    size_t k = 0;
    while (strcmp(ops[k].name, cmd->name) != 0) {
        k++;
    }
    char target[128] = "/v1/imports";
    if (ops[k].suffix != NULL) {
        if (!ship_name_valid(a->pos[0])) {
            return cli__usage(cmd, "not a ship id or name: %s", a->pos[0]);
        }
        snprintf(target, sizeof target, "/v1/ships/%s%s", a->pos[0],
                 ops[k].suffix);
    }
    struct buf payload;
    buf_init(&payload);
    json_t *spec = NULL, *v = NULL;
    int rv = 0;
    if (k == CLI__ONE_RESIZE) {
        rv = cli__resize_spec(cmd, a, &spec);
    } else if (k == CLI__ONE_IMPORT) {
        rv = cli__read_file(a->pos[0], &payload);
        if (rv == 0 && payload.len == 0) {
            fprintf(stderr, "berth: %s is empty: not a ship export\n",
                    a->pos[0]);
            rv = 1;
        }
    } else if (a->n_pos > 1 && strcmp(a->pos[1], "-") == 0) {
        rv = cli__read_file("-", &payload);
    } else if (a->n_pos > 1) {
        rv = buf_append(&payload, a->pos[1], strlen(a->pos[1])) == 0 ? 0 : 1;
    }
    if (rv == 0) {
        rv = spec != NULL ? cli__call_json(c, ops[k].method, target, spec, &v)
                          : cli__call(c, ops[k].method, target, payload.data,
                                      payload.len, &v);
    }
    buf_free(&payload);
    if (rv != 0) {
        return rv;
    }
    if (c->json) {
        cli__print_json(v);
    } else if (k == CLI__ONE_SEND) {
        json_t *reply = json_object_get(v, "reply");
        if (json_is_object(reply)) {
            const char *body =
                json_string_value(json_object_get(reply, "body"));
            printf("%s", body ? body : "");
            if (body && *body && body[strlen(body) - 1] != '\n') {
                putchar('\n');
            }
        } else {
            printf("event %lld\n", cli__int(v, "event"));
        }
    } else if (k == CLI__ONE_RM) {
        printf("removed %s\n", cli__str(v, "removed"));
    } else if (k == CLI__ONE_TREE) {
        rv = cli__print_tree(v);
    } else if (k == CLI__ONE_BLOCK || k == CLI__ONE_UNBLOCK) {
        printf("%s %s\n", cli__str(v, "id"),
               k == CLI__ONE_BLOCK ? "blocked" : "unblocked");
    } else if (k == CLI__ONE_SHOW || k == CLI__ONE_RESIZE) {
        cli__print_ship(v);
        /* A resize's answer may say its caps are not all in force. */
        const char *warning = json_string_value(json_object_get(v, "warning"));
        if (warning != NULL) {
            fprintf(stderr, "berth: %s\n", warning);
        }
    } else if (k == CLI__ONE_IMPORT) {
        const char *name = cli__str(v, "name");
        printf("imported %s%s%s\n", cli__str(v, "id"), *name ? " " : "", name);
    } else {
        printf("%s %s\n", cli__str(v, "id"), cli__str(v, "state"));
    }
    json_decref(v);
    return rv;
}

/* --- Export (import is cli__ship_one's). --- */

static int cli__ship_export(const struct cli__cmd *cmd, struct cli *c,
                            struct cli__args *a)
{
    const char *ship = a->pos[0];
    const char *path = a->pos[1];
    if (!ship_name_valid(ship)) {
        return cli__usage(cmd, "not a ship id or name: %s", ship);
    }
    char target[128];
    snprintf(target, sizeof target, "/v1/ships/%s/export", ship);
    struct buf file;
    buf_init(&file);
    int rv = cli__call_bytes(c, "GET", target, &file);
    if (rv != 0) {
        buf_free(&file);
        return rv;
    }
    bool to_stdout = strcmp(path, "-") == 0;
    /* A file that exists and is no regular file (a device such as
     * /dev/stdout, a pipe) is written into: a rename would put a file in
     * its place. A symbolic link to a file is followed, so that the file
     * is replaced and the link kept. */
    struct stat st;
    char real[PATH_MAX];
    const char *dest = path;
    bool direct = !to_stdout && stat(path, &st) == 0 && !S_ISREG(st.st_mode);
    if (!to_stdout && !direct && lstat(path, &st) == 0 && S_ISLNK(st.st_mode) &&
        realpath(path, real) != NULL) {
        dest = real;
    }
    /* Written beside its place and renamed, so that a failed export never
     * leaves half a file under the name of a backup. */
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.part", dest);
    /* Only its owner reads a backup, as only the host's user reads its
     * data directory. */
    int fd = to_stdout ? -1
             : direct
                 ? open(path, O_WRONLY | O_CLOEXEC)
                 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = to_stdout ? stdout : fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!to_stdout && fd >= 0 && f == NULL) {
        close(fd);
    }
    if (f == NULL || fwrite(file.data, 1, file.len, f) != file.len ||
        fflush(f) != 0 || (!to_stdout && !direct && fsync(fileno(f)) != 0)) {
        fprintf(stderr, "berth: cannot write %s: %s\n", path, strerror(errno));
        rv = 1;
    }
    if (!to_stdout && f != NULL && fclose(f) != 0 && rv == 0) {
        fprintf(stderr, "berth: cannot write %s: %s\n", path, strerror(errno));
        rv = 1;
    }
    if (!to_stdout && !direct && rv == 0 && rename(tmp, dest) != 0) {
        fprintf(stderr, "berth: cannot write %s: %s\n", path, strerror(errno));
        rv = 1;
    }
    if (!to_stdout && !direct && rv != 0) {
        unlink(tmp);
    }
    if (rv == 0 && !to_stdout) {
        if (c->json) {
            printf("{\"ship\": \"%s\", \"file\": \"%s\", \"bytes\": %zu}\n",
                   ship, path, file.len);
        } else {
            printf("exported %s to %s (%zu bytes)\n", ship, path, file.len);
        }
    }
    buf_free(&file);
    return rv;
}

/* GET target; with --json print the answer as it is and set *out to NULL,
 * else set *out to it for the caller to print and free. Returns 0 or the
 * exit status of a failed call. */
static int cli__show(struct cli *c, const char *target, json_t **out)
{
    int rv = cli__call(c, "GET", target, NULL, 0, out);
    if (rv == 0 && c->json) {
        cli__print_json(*out);
        json_decref(*out);
        *out = NULL;
    }
    return rv;
}

/* --- ship logs. --- */

enum { CLI__LOGS_FOLLOW, CLI__LOGS_BYTES };

static const struct cli__opt cli__logs_opts[] = {
    [CLI__LOGS_FOLLOW] = {"--follow", NULL, CLI__FLAG, 0, 0,
                          "keep printing what the program writes, until "
                          "interrupted (through a change of leader too)"},
    [CLI__LOGS_BYTES] = {"--bytes", "N", CLI__NUM, 1, 1ULL << 30,
                         "only the last N bytes (default: all the host "
                         "keeps, --ship-log-bytes of serve)"},
    {NULL, NULL, 0, 0, 0, NULL},
};

/* One answer of GET /v1/ships/ID/logs: its data written to stdout (or,
 * with --json, the answer itself, a line of JSON); *end set to the offset
 * after it and *log_end to the log's end. 0, or 1 after an error. */
static int cli__logs_get(struct cli *c, const char *target, uint64_t *end,
                         uint64_t *log_end)
{
    json_t *v = NULL;
    int rv = cli__call(c, "GET", target, NULL, 0, &v);
    if (rv != 0) {
        return rv;
    }
    *end = (uint64_t)cli__int(v, "end");
    *log_end = (uint64_t)cli__int(v, "log_end");
    const char *data = json_string_value(json_object_get(v, "data"));
    if (c->json) {
        char *line = json_dumps(v, JSON_COMPACT);
        if (line != NULL) {
            printf("%s\n", line);
            free(line);
        }
    } else if (data != NULL) {
        size_t n = strlen(data), len = 0;
        uint8_t *bytes = mem_alloc(n + 1);
        if (bytes == NULL ||
            sodium_base642bin(bytes, n + 1, data, n, NULL, &len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0) {
            mem_free(bytes);
            json_decref(v);
            fprintf(stderr, "berth: the host's answer holds no log\n");
            return 1;
        }
        fwrite(bytes, 1, len, stdout);
        mem_free(bytes);
    }
    fflush(stdout);
    json_decref(v);
    return 0;
}

static int cli__ship_logs(const struct cli__cmd *cmd, struct cli *c,
                          struct cli__args *a)
{
    const char *ship = a->pos[0];
    if (!ship_name_valid(ship)) {
        return cli__usage(cmd, "not a ship id or name: %s", ship);
    }
    char target[512];
    uint64_t cursor = 0, end = 0, log_end = 0;
    int rv;
    if (a->val[CLI__LOGS_BYTES] != NULL) {
        /* Where the log ends now, to start the given bytes before. */
        snprintf(target, sizeof target, "/v1/ships/%s/logs?bytes=1", ship);
        json_t *v = NULL;
        if (cli__call(c, "GET", target, NULL, 0, &v) != 0) {
            return 1;
        }
        log_end = (uint64_t)cli__int(v, "log_end");
        json_decref(v);
        uint64_t n = a->num[CLI__LOGS_BYTES];
        cursor = log_end > n ? log_end - n : 0;
    }
    /* What the host holds, an answer (at most 1 MiB) at a time. */
    do {
        snprintf(target, sizeof target, "/v1/ships/%s/logs?after=%llu", ship,
                 (unsigned long long)cursor);
        rv = cli__logs_get(c, target, &end, &log_end);
        if (rv != 0) {
            return rv;
        }
        if (end <= cursor && end < log_end) {
            break; /* no progress: do not spin */
        }
        cursor = end;
    } while (cursor < log_end);
    /* Then what the program writes: each request waits on the host until
     * there is more, or a few seconds have passed. */
    while (a->val[CLI__LOGS_FOLLOW] != NULL) {
        snprintf(target, sizeof target,
                 "/v1/ships/%s/logs?after=%llu&wait=5000", ship,
                 (unsigned long long)cursor);
        rv = cli__logs_get(c, target, &end, &log_end);
        if (rv != 0 && c->status == 503) {
            /* Leadership moves, or the host is busy: said on stderr, and
             * the follow goes on (from the new leader's ring, if it
             * moved). */
            usleep(500 * 1000);
            continue;
        }
        if (rv != 0) {
            return rv;
        }
        cursor = end;
    }
    return 0;
}

/* --- cluster. --- */

static int cli__cluster_ls(const struct cli__cmd *cmd, struct cli *c,
                           struct cli__args *a)
{
    json_t *v = NULL;
    int rv = cli__show(c, "/v1/cluster", &v);
    if (rv != 0 || v == NULL) {
        return rv;
    }
    printf("cluster %s, term %lld, leader %lld\n", cli__str(v, "cluster"),
           cli__int(v, "term"), cli__int(v, "leader"));
    printf("%-16s %-22s %-22s %-8s %-7s %-7s %10s %8s %9s %6s %8s %5s\n", "ID",
           "PEER", "LISTEN", "ROLE", "LEADER", "ONLINE", "APPLIED", "LAG",
           "HEARTBEAT", "LOAD", "RSS_MB", "PROGS");
    size_t i;
    json_t *hst;
    json_array_foreach(json_object_get(v, "hosts"), i, hst)
    {
        const char *listen = cli__str(hst, "listen");
        /* The last heartbeat's age and what it said of the host's load;
         * dashes for a host not heard from since this one started. */
        char age[32] = "-", load[32] = "-", rss[32] = "-", progs[32] = "-";
        json_t *beat = json_object_get(hst, "heartbeat");
        if (json_is_object(beat)) {
            snprintf(age, sizeof age, "%.1fs",
                     cli__int(beat, "age_ms") / 1000.0);
            snprintf(load, sizeof load, "%.2f",
                     json_number_value(json_object_get(beat, "load1")));
            snprintf(rss, sizeof rss, "%.1f",
                     cli__int(beat, "rss_bytes") / 1048576.0);
            snprintf(progs, sizeof progs, "%lld", cli__int(beat, "programs"));
        }
        printf("%-16lld %-22s %-22s %-8s %-7s %-7s %10lld %8lld %9s %6s %8s "
               "%5s%s\n",
               cli__int(hst, "id"), cli__str(hst, "peer"),
               listen[0] ? listen : "-", cli__str(hst, "role"),
               json_is_true(json_object_get(hst, "leader")) ? "yes" : "-",
               json_is_true(json_object_get(hst, "online")) ? "yes" : "no",
               cli__int(hst, "applied"), cli__int(hst, "lag"), age, load, rss,
               progs,
               json_is_true(json_object_get(hst, "self")) ? "  (this host)"
                                                          : "");
    }
    json_decref(v);
    return 0;
}

static int cli__cluster_remove(const struct cli__cmd *cmd, struct cli *c,
                               struct cli__args *a)
{
    char target[320];
    const char *who = a->pos[0];
    if (strlen(who) > 255 || strchr(who, '/') != NULL) {
        return cli__usage(cmd, "HOST is a host id or a peer address, not %s",
                          who);
    }
    snprintf(target, sizeof target, "/v1/cluster/hosts/%s", who);
    json_t *v = NULL;
    int rv = cli__call(c, "DELETE", target, NULL, 0, &v);
    if (rv != 0) {
        return rv;
    }
    if (c->json) {
        cli__print_json(v);
    } else {
        printf("removing host %lld\n", cli__int(v, "removing"));
    }
    json_decref(v);
    return 0;
}

static int cli__cluster_join(const struct cli__cmd *cmd, struct cli *c,
                             struct cli__args *a)
{
    const char *peer = a->pos[0];
    const char *colon = strrchr(peer, ':');
    /* The host checks the address itself; this catches a missing port. */
    if (colon == NULL || colon == peer || colon[1] == '\0' ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
        return cli__usage(cmd,
                          "PEER is a peer address, an IP and a port such as "
                          "10.0.0.1:7001, not %s",
                          peer);
    }
    /* The cluster's secret, which the host keeps for the start that
     * joins. */
    const char *secret = getenv("BERTH_CLUSTER_SECRET");
    json_t *spec = secret != NULL && *secret != '\0'
                       ? json_pack("{s:s, s:s}", "peer", peer, "secret", secret)
                       : json_pack("{s:s}", "peer", peer);
    json_t *v = NULL;
    int rv = cli__call_json(c, "POST", "/v1/cluster/join", spec, &v);
    if (rv != 0) {
        return rv;
    }
    if (c->json) {
        cli__print_json(v);
    } else {
        printf("joining the cluster of %s; the host starts again\n", peer);
    }
    json_decref(v);
    return 0;
}

static int cli__cluster_secret(const struct cli__cmd *cmd, struct cli *c,
                               struct cli__args *a)
{
    (void)cmd;
    (void)a;
    json_t *v = NULL;
    int rv = cli__call(c, "GET", "/v1/cluster/secret", NULL, 0, &v);
    if (rv != 0) {
        return rv;
    }
    if (c->json) {
        cli__print_json(v);
    } else {
        printf("%s\n", json_string_value(json_object_get(v, "secret")));
    }
    json_decref(v);
    return 0;
}

/* --- fsck. --- */

static const struct cli__opt cli__fsck_opts[] = {
    {"--replay", NULL, CLI__FLAG, 0, 0,
     "also run each ship's program from its prior snapshot through its "
     "events and check it makes its latest snapshot again (determinism; "
     "needs a running host)"},
    {"--passphrase-file", "FILE", CLI__STR, 0, 0,
     "with no host running: the passphrase DIR/master.key is sealed under "
     "(default $BERTH_PASSPHRASE)"},
    {"--master-key-file", "FILE", CLI__STR, 0, 0,
     "with no host running: the key file DIR/master.key is sealed under"},
    {"--repair", NULL, CLI__FLAG, 0, 0,
     "replace the data of each ship found wrong (and asleep) with another "
     "host's copy, kept only when it checks out (a cluster; needs a running "
     "host)"},
    {NULL, NULL, 0, 0, 0, NULL},
};

/* Print an fsck answer, a line a ship (or the JSON), and return the exit
 * status: 0 when nothing is wrong, else 1. */
static int cli__fsck_print(struct cli *c, json_t *v)
{
    bool ok = json_is_true(json_object_get(v, "ok"));
    if (c->json) {
        cli__print_json(v);
        return ok ? 0 : 1;
    }
    size_t i, bad = 0, n = 0;
    json_t *s;
    json_array_foreach(json_object_get(v, "ships"), i, s)
    {
        const char *name = cli__str(s, "name");
        char who[128];
        snprintf(who, sizeof who, "%s%s%s", cli__str(s, "id"), *name ? " " : "",
                 name);
        n++;
        json_t *replay = json_object_get(s, "replay");
        if (json_is_true(json_object_get(s, "ok"))) {
            long long first = cli__int(s, "first_event");
            long long last = cli__int(s, "last_event");
            if (last >= first) {
                printf("ok   %s: events %lld-%lld checked (%lld)%s", who, first,
                       last, (long long)cli__int(s, "events_checked"),
                       cli__int(s, "snapshot_event") > 0 ? ", snapshot" : "");
            } else {
                printf("ok   %s: no events%s", who,
                       cli__int(s, "snapshot_event") > 0 ? ", snapshot" : "");
            }
            if (json_object_get(s, "repaired_from") != NULL) {
                printf("; repaired from %s", cli__str(s, "repaired_from"));
            }
            if (replay != NULL) {
                printf("; replay %s: %s", cli__str(replay, "verdict"),
                       cli__str(replay, "detail"));
            }
            printf("\n");
        } else {
            bad++;
            printf("BAD  %s: %s", who, cli__str(s, "problem"));
            if (json_object_get(s, "repair") != NULL) {
                printf(" (%s)", cli__str(s, "repair"));
            }
            printf("\n");
        }
    }
    printf("%zu ship%s checked, %zu wrong\n", n, n == 1 ? "" : "s", bad);
    return ok ? 0 : 1;
}

/* Whether no host holds the data directory dir: its lock is free. */
static bool cli__no_host(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/lock", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return true;
    }
    bool free_ = flock(fd, LOCK_EX | LOCK_NB) == 0;
    close(fd);
    return free_;
}

static int cli__fsck(const struct cli__cmd *cmd, struct cli *c,
                     struct cli__args *a)
{
    const char *dir = c->data != NULL ? c->data : getenv("BERTH_DATA");
    if (dir == NULL || *dir == '\0') {
        dir = "berth-data";
    }
    json_t *v = NULL;
    int rv;
    if (c->admin == NULL && cli__no_host(dir)) {
        /* No host runs on the directory: check its store here. */
        if (a->val[0] != NULL || a->val[3] != NULL) {
            return cli__usage(cmd, "%s needs a running host (no host holds %s)",
                              a->val[0] != NULL ? "--replay" : "--repair", dir);
        }
        struct host_config cfg;
        char errmsg[ERRMSG_SIZE];
        host_config_defaults(&cfg);
        cfg.data_dir = dir;
        cfg.passphrase_file = a->val[1];
        cfg.master_key_file = a->val[2];
        rv = host_fsck_offline(&cfg, a->pos, a->n_pos, &v, errmsg);
        if (rv != 0) {
            fprintf(stderr, "berth: fsck: %s\n", errmsg);
            return 1;
        }
    } else {
        json_t *spec = json_object(), *names = json_array();
        if (a->val[0] != NULL) {
            json_object_set_new(spec, "replay", json_true());
        }
        if (a->val[3] != NULL) {
            json_object_set_new(spec, "repair", json_true());
        }
        for (int i = 0; i < a->n_pos; i++) {
            json_array_append_new(names, json_string(a->pos[i]));
        }
        json_object_set_new(spec, "ships", names);
        if (a->n_pos == 0) {
            json_object_del(spec, "ships");
        }
        rv = cli__call_json(c, "POST", "/v1/fsck", spec, &v);
        if (rv != 0) {
            return rv;
        }
    }
    rv = cli__fsck_print(c, v);
    json_decref(v);
    return rv;
}

/* --- account. --- */

/* Print one account's line of `account ls`. */
static void cli__account_line(json_t *a)
{
    char made[32];
    cli__ago(cli__int(a, "created_ns"), made, sizeof made);
    json_t *u = json_object_get(a, "usage");
    /* The account's own caps; "-" where it sets none. */
    json_t *caps = json_object_get(a, "caps");
    char mem[24] = "-", cores[32] = "-", pids[24] = "-";
    if (cli__int(caps, "memory_bytes") > 0) {
        caps_format_memory((uint64_t)cli__int(caps, "memory_bytes"), mem,
                           sizeof mem);
    }
    if (cli__int(caps, "cpu_millis") > 0) {
        cli__format_cores(cli__int(caps, "cpu_millis"), cores, sizeof cores);
    }
    if (cli__int(caps, "pids") > 0) {
        cli__format_pids(cli__int(caps, "pids"), pids, sizeof pids);
    }
    printf("%-6lld  %-24s  %-8s  %-6lld  %-6lld  %-14lld  %-10lld  %-6s  "
           "%-6s  %-6s  %s\n",
           cli__int(a, "id"), cli__str(a, "name"),
           json_is_true(json_object_get(a, "disabled")) ? "disabled"
                                                        : "enabled",
           cli__int(a, "ships"), cli__int(u, "ships_awake"),
           cli__int(u, "storage_bytes"), cli__int(u, "events"), mem, cores,
           pids, made);
}

static int cli__account_new(const struct cli__cmd *cmd, struct cli *c,
                            struct cli__args *a)
{
    const char *name = a->pos[0];
    if (!cli__account_name_ok(name) || name[0] == '-' ||
        strspn(name, "0123456789") == strlen(name) ||
        strcmp(name, "anonymous") == 0) {
        return cli__usage(cmd,
                          "NAME is 1 to 63 of a-z, 0-9 and '-', not starting "
                          "with '-', not all digits and not anonymous; not %s",
                          name);
    }
    json_t *v = NULL;
    int rv = cli__call_json(c, "POST", "/v1/accounts",
                            json_pack("{s:s}", "name", name), &v);
    if (rv != 0) {
        return rv;
    }
    if (c->json) {
        cli__print_json(v);
    } else {
        printf("%s\n", cli__str(v, "token"));
        fprintf(stderr,
                "berth: account %s (id %lld), token %s: the token is shown "
                "this once, and the host keeps only its hash\n",
                cli__str(v, "name"), cli__int(v, "id"),
                cli__str(v, "token_id"));
    }
    json_decref(v);
    return 0;
}

static int cli__account_ls(const struct cli__cmd *cmd, struct cli *c,
                           struct cli__args *a)
{
    json_t *v = NULL;
    int rv = cli__show(c, "/v1/accounts", &v);
    if (rv != 0 || v == NULL) {
        return rv;
    }
    printf("%-6s  %-24s  %-8s  %-6s  %-6s  %-14s  %-10s  %-6s  %-6s  %-6s  "
           "%s\n",
           "ID", "NAME", "STATE", "SHIPS", "AWAKE", "STORAGE", "EVENTS",
           "MEMORY", "CPU", "PIDS", "MADE");
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(v, "accounts"), i, t)
    {
        cli__account_line(t);
    }
    printf("anonymous creation: %s\n",
           json_is_true(json_object_get(v, "anonymous_creation")) ? "on"
                                                                  : "off");
    json_decref(v);
    return 0;
}

/* The caps options of account limit, after the limits', and the names the
 * API gives them. */
enum { CLI__ACAP_MEMORY, CLI__ACAP_CPU, CLI__ACAP_PIDS, CLI__ACAP__COUNT };
static const char *const cli__acap_keys[CLI__ACAP__COUNT] = {"memory", "cpu",
                                                             "pids"};

/* The options of account limit, by enum quota_limit, then the caps. */
static const struct cli__opt cli__account_limit_opts[] = {
    [QUOTA_SHIPS] = {"--ships", "N|none|default", CLI__STR, 0, 0,
                     "ships the account may have"},
    [QUOTA_STORAGE] = {"--storage-bytes", "N|none|default", CLI__STR, 0, 0,
                       "storage bytes its ships may take (507 over it)"},
    [QUOTA_AWAKE] = {"--awake", "N|none|default", CLI__STR, 0, 0,
                     "ships whose programs may run at once (429 over it)"},
    [QUOTA_CPU] = {"--cpu-per-hour", "SECONDS|none|default", CLI__STR, 0, 0,
                   "CPU seconds its programs may use in an hour"},
    [QUOTA_EVENTS] = {"--events-per-second", "N|none|default", CLI__STR, 0, 0,
                      "events its ships may commit a second"},
    [QUOTA__COUNT + CLI__ACAP_MEMORY] = {"--memory", "SIZE|none", CLI__STR, 0,
                                         0,
                                         "memory cap of each of its ships' "
                                         "programs (64M, 1G)"},
    [QUOTA__COUNT + CLI__ACAP_CPU] = {"--cpu", "CORES|none", CLI__STR, 0, 0,
                                      "CPU share of each of its ships' "
                                      "programs (0.5: half a core)"},
    [QUOTA__COUNT + CLI__ACAP_PIDS] = {"--pids", "N|none", CLI__STR, 0, 0,
                                       "processes and threads of each of its "
                                       "ships' programs at once"},
    {NULL, NULL, 0, 0, 0, NULL},
};

/* Print an account's caps: its own, and what is in force for a ship of it
 * with none of its own when the host's is smaller or the account sets
 * none. */
static void cli__print_account_caps(json_t *v)
{
    json_t *caps = json_object_get(v, "caps");
    json_t *in = json_object_get(caps, "in_force");
    if (!json_is_object(caps)) {
        return;
    }
    static const char *const keys[3] = {"memory_bytes", "cpu_millis", "pids"};
    static const char *const labels[3] = {
        "cap memory:", "cap cpu:", "cap pids:"};
    for (int i = 0; i < 3; i++) {
        char own[32], eff[32];
        long long o = cli__int(caps, keys[i]), e = cli__int(in, keys[i]);
        if (i == 0) {
            caps_format_memory((uint64_t)o, own, sizeof own);
            caps_format_memory((uint64_t)e, eff, sizeof eff);
        } else if (i == 1) {
            cli__format_cores(o, own, sizeof own);
            cli__format_cores(e, eff, sizeof eff);
        } else {
            cli__format_pids(o, own, sizeof own);
            cli__format_pids(e, eff, sizeof eff);
        }
        if (o == e) {
            printf("%-33s %s\n", labels[i], own);
        } else {
            printf("%-33s %s (the host's %s in force)\n", labels[i], own, eff);
        }
    }
}

/* Print an account's limits: in force, and whose; then its caps. */
static void cli__print_limits(json_t *v)
{
    json_t *in_force = json_object_get(v, "limits");
    json_t *set = json_object_get(v, "limits_set");
    for (int i = 0; i < QUOTA__COUNT && in_force != NULL; i++) {
        const char *name = quota_name(i);
        long long n = cli__int(in_force, name);
        char label[40];
        snprintf(label, sizeof label, "limit %s:", name);
        if (n == 0) {
            printf("%-33s none%s\n", label,
                   json_object_get(set, name) ? "" : " (host default)");
        } else {
            printf("%-33s %lld%s\n", label, n,
                   json_object_get(set, name) ? "" : " (host default)");
        }
    }
    cli__print_account_caps(v);
}

static int cli__account_limit(const struct cli__cmd *cmd, struct cli *c,
                              struct cli__args *a)
{
    const char *name = a->pos[0];
    if (!cli__account_name_ok(name)) {
        return cli__usage(cmd, "NAME is an account's name, not %s", name);
    }
    json_t *body = json_object();
    for (int i = 0; i < QUOTA__COUNT; i++) {
        const char *v = a->val[i];
        if (v == NULL) {
            continue;
        }
        char *end;
        unsigned long long n = 0;
        if (strcmp(v, "default") == 0) {
            json_object_set_new(body, quota_name(i), json_string("default"));
            continue;
        }
        if (strcmp(v, "none") != 0) {
            errno = 0;
            n = strtoull(v, &end, 10);
            if (errno != 0 || end == v || *end != '\0' || v[0] == '-' ||
                n == 0 || n > QUOTA_MAX) {
                json_decref(body);
                return cli__usage(cmd,
                                  "%s needs a number from 1 to %llu, none or "
                                  "default, not %s",
                                  cli__account_limit_opts[i].name,
                                  (unsigned long long)QUOTA_MAX, v);
            }
        }
        json_object_set_new(body, quota_name(i), json_integer((json_int_t)n));
    }
    /* The caps: checked here as ship new checks its own; "default", like
     * "none", leaves the account without one. */
    const char *cap[CLI__ACAP__COUNT];
    for (int i = 0; i < CLI__ACAP__COUNT; i++) {
        cap[i] = a->val[QUOTA__COUNT + i];
        if (cap[i] != NULL && strcmp(cap[i], "default") == 0) {
            cap[i] = "none";
        }
    }
    int rv = cli__check_caps(cmd, cap[CLI__ACAP_MEMORY], cap[CLI__ACAP_CPU],
                             cap[CLI__ACAP_PIDS]);
    if (rv != 0) {
        json_decref(body);
        return rv;
    }
    for (int i = 0; i < CLI__ACAP__COUNT; i++) {
        if (cap[i] != NULL) {
            json_object_set_new(body, cli__acap_keys[i], json_string(cap[i]));
        }
    }
    if (json_object_size(body) == 0) {
        json_decref(body);
        return cli__usage(cmd, "give at least one limit (--ships, "
                               "--storage-bytes, --awake, --cpu-per-hour, "
                               "--events-per-second) or cap (--memory, "
                               "--cpu, --pids)");
    }
    char target[128];
    snprintf(target, sizeof target, "/v1/accounts/%s/limits", name);
    json_t *v = NULL;
    rv = cli__call_json(c, "POST", target, body, &v);
    if (rv != 0) {
        return rv;
    }
    if (c->json) {
        cli__print_json(v);
    } else {
        cli__print_limits(v);
    }
    const char *warning = json_string_value(json_object_get(v, "warning"));
    if (warning != NULL) {
        fprintf(stderr, "berth: %s\n", warning);
    }
    json_decref(v);
    return 0;
}

static const struct cli__opt cli__account_rm_opts[] = {
    {"--yes", NULL, CLI__FLAG, 0, 0,
     "confirm: the account's ships and all their data are removed"},
    {NULL, NULL, 0, 0, 0, NULL},
};

/* account show, disable, enable and rm: one account, by name. */
static int cli__account_one(const struct cli__cmd *cmd, struct cli *c,
                            struct cli__args *a)
{
    const char *name = a->pos[0];
    if (!cli__account_name_ok(name)) {
        return cli__usage(cmd, "NAME is an account's name, not %s", name);
    }
    const char *op = cmd->name + strlen("account ");
    bool rm = strcmp(op, "rm") == 0;
    if (rm && a->val[0] == NULL) {
        return cli__usage(cmd,
                          "removing account %s removes its ships and their "
                          "data: confirm with --yes",
                          name);
    }
    char target[128];
    const char *method = "POST";
    if (strcmp(op, "show") == 0) {
        method = "GET";
        snprintf(target, sizeof target, "/v1/accounts/%s", name);
    } else if (rm) {
        method = "DELETE";
        snprintf(target, sizeof target, "/v1/accounts/%s?yes=1", name);
    } else {
        snprintf(target, sizeof target, "/v1/accounts/%s/%s", name, op);
    }
    json_t *v = NULL;
    int rv = cli__call(c, method, target, NULL, 0, &v);
    if (rv != 0) {
        return rv;
    }
    if (c->json) {
        cli__print_json(v);
    } else if (rm) {
        long long ships = cli__int(v, "ships");
        if (ships == 0) {
            printf("removed %s (no ships)\n", cli__str(v, "removed"));
        } else {
            printf("removed %s (%lld ship%s)\n", cli__str(v, "removed"), ships,
                   ships == 1 ? "" : "s");
        }
    } else {
        char made[32];
        cli__ago(cli__int(v, "created_ns"), made, sizeof made);
        printf("id:              %lld\n", cli__int(v, "id"));
        printf("name:            %s\n", cli__str(v, "name"));
        printf("state:           %s\n",
               json_is_true(json_object_get(v, "disabled")) ? "disabled"
                                                            : "enabled");
        printf("made:            %s\n", made);
        cli__print_usage(json_object_get(v, "usage"));
        cli__print_limits(v);
        /* What the crawler last counted on this host's disk, beside what
         * was recorded then (docs/store.md, "The crawler"). */
        json_t *crawl = json_object_get(v, "crawl");
        if (json_is_object(crawl)) {
            char when[32];
            cli__ago(cli__int(crawl, "passed_ns"), when, sizeof when);
            printf("crawled:         %s: %lld ships (recorded %lld), %lld "
                   "bytes (recorded %lld)\n",
                   when, cli__int(crawl, "ships"),
                   cli__int(crawl, "recorded_ships"),
                   cli__int(crawl, "storage_bytes"),
                   cli__int(crawl, "recorded_storage_bytes"));
        } else {
            printf("crawled:         not yet\n");
        }
        json_t *open = json_object_get(v, "anonymous_creation");
        if (open != NULL) {
            printf("creation:        %s\n", json_is_true(open) ? "on" : "off");
        }
    }
    json_decref(v);
    return 0;
}

static int cli__account_anonymous(const struct cli__cmd *cmd, struct cli *c,
                                  struct cli__args *a)
{
    const char *v_on = a->pos[0];
    if (strcmp(v_on, "on") != 0 && strcmp(v_on, "off") != 0) {
        return cli__usage(cmd, "needs on or off, not %s", v_on);
    }
    json_t *v = NULL;
    int rv = cli__call_json(
        c, "POST", "/v1/anonymous",
        json_pack("{s:b}", "creation", strcmp(v_on, "on") == 0), &v);
    if (rv != 0) {
        return rv;
    }
    if (c->json) {
        cli__print_json(v);
    } else {
        printf("anonymous creation: %s\n",
               json_is_true(json_object_get(v, "anonymous_creation")) ? "on"
                                                                      : "off");
    }
    json_decref(v);
    return 0;
}

/* --- token. --- */

static const struct cli__opt cli__token_new_opts[] = {
    {"--scope", "SCOPE", CLI__STR, 0, 0,
     "what the token may do: read (look), operate (also create, stop, wake, "
     "send to and remove ships) or admin (everything, tokens and the "
     "cluster's members included); required"},
    {"--name", "NAME", CLI__STR, 0, 0,
     "a name to find and revoke the token by (1 to 63 of a-z, 0-9, '-')"},
    {NULL, NULL, 0, 0, 0, NULL},
};

static int cli__token_new(const struct cli__cmd *cmd, struct cli *c,
                          struct cli__args *a)
{
    const char *scope = a->val[0], *name = a->val[1];
    if (scope == NULL) {
        return cli__usage(cmd, "needs --scope read, operate or admin");
    }
    if (strcmp(scope, "read") != 0 && strcmp(scope, "operate") != 0 &&
        strcmp(scope, "admin") != 0) {
        return cli__usage(cmd, "--scope needs read, operate or admin, not %s",
                          scope);
    }
    json_t *spec = json_pack("{s:s}", "scope", scope);
    if (name != NULL) {
        json_object_set_new(spec, "name", json_string(name));
    }
    json_t *v = NULL;
    int rv = cli__call_json(c, "POST", "/v1/tokens", spec, &v);
    if (rv != 0) {
        return rv;
    }
    if (c->json) {
        cli__print_json(v);
    } else {
        printf("%s\n", cli__str(v, "token"));
        fprintf(stderr,
                "berth: token %s, scope %s: it is shown this once, and the "
                "host keeps only its hash\n",
                cli__str(v, "id"), cli__str(v, "scope"));
    }
    json_decref(v);
    return 0;
}

static int cli__token_ls(const struct cli__cmd *cmd, struct cli *c,
                         struct cli__args *a)
{
    json_t *v = NULL;
    int rv = cli__show(c, "/v1/tokens", &v);
    if (rv != 0 || v == NULL) {
        return rv;
    }
    printf("%-12s  %-7s  %-20s  %-8s  %s\n", "ID", "SCOPE", "NAME", "ACCOUNT",
           "MADE");
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(v, "tokens"), i, t)
    {
        char made[32];
        cli__ago(cli__int(t, "created_ns"), made, sizeof made);
        char account[24] = "-";
        if (cli__int(t, "account") != 0) {
            snprintf(account, sizeof account, "%lld", cli__int(t, "account"));
        }
        printf("%-12s  %-7s  %-20s  %-8s  %s\n", cli__str(t, "id"),
               cli__str(t, "scope"), cli__str(t, "name"), account, made);
    }
    json_decref(v);
    return 0;
}

static int cli__token_revoke(const struct cli__cmd *cmd, struct cli *c,
                             struct cli__args *a)
{
    char target[128];
    const char *who = a->pos[0];
    if (*who == '\0' || strlen(who) > 63 ||
        strspn(who, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(who)) {
        return cli__usage(cmd, "ID is a token's id or name, not %s", who);
    }
    snprintf(target, sizeof target, "/v1/tokens/%s", who);
    json_t *v = NULL;
    int rv = cli__call(c, "DELETE", target, NULL, 0, &v);
    if (rv != 0) {
        return rv;
    }
    if (c->json) {
        cli__print_json(v);
    } else {
        printf("revoked %s\n", cli__str(v, "revoked"));
    }
    json_decref(v);
    return 0;
}

/* --- key rotate. --- */

static int cli__key_rotate(const struct cli__cmd *cmd, struct cli *c,
                           struct cli__args *a)
{
    json_t *v = NULL;
    int rv = cli__call(c, "POST", "/v1/key/rotate", NULL, 0, &v);
    if (rv != 0) {
        return rv;
    }
    if (c->json) {
        cli__print_json(v);
    } else {
        printf("master key %s, data key %lld\n", cli__str(v, "master_key_id"),
               (long long)cli__int(v, "data_key"));
    }
    json_decref(v);
    return 0;
}

/* --- tls reload. --- */

static int cli__tls_reload(const struct cli__cmd *cmd, struct cli *c,
                           struct cli__args *a)
{
    json_t *v = NULL;
    int rv = cli__call(c, "POST", "/v1/tls/reload", NULL, 0, &v);
    if (rv != 0) {
        return rv;
    }
    if (c->json) {
        cli__print_json(v);
    } else {
        printf("reloaded: %s\n", cli__str(v, "cert"));
    }
    json_decref(v);
    return 0;
}

/* --- stats, version. --- */

static int cli__stats(const struct cli__cmd *cmd, struct cli *c,
                      struct cli__args *a)
{
    json_t *v = NULL;
    int rv = cli__show(c, "/v1/stats", &v);
    if (rv != 0 || v == NULL) {
        return rv;
    }
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
           cli__int(v, "wakes"), json_real_value(json_object_get(wl, "p50")),
           json_real_value(json_object_get(wl, "p99")));
    printf("thaws:            %lld (p50 %.3f ms, p99 %.3f ms)\n",
           cli__int(v, "thaws"), json_real_value(json_object_get(tl, "p50")),
           json_real_value(json_object_get(tl, "p99")));
    printf("evictions:        %lld\n", cli__int(v, "evictions"));
    json_t *dc = json_object_get(v, "default_caps");
    char mem[24];
    caps_format_memory((uint64_t)cli__int(dc, "memory_bytes"), mem, sizeof mem);
    long long cpu = cli__int(dc, "cpu_millis");
    char cores[32];
    if (cpu == 0) {
        snprintf(cores, sizeof cores, "none");
    } else {
        snprintf(cores, sizeof cores, "%lld.%03lld", cpu / 1000, cpu % 1000);
    }
    const char *how = cli__str(v, "caps");
    printf("caps:             %s%s (default memory %s, cpu %s, pids %lld, "
           "event cpu %lld ms)\n",
           how, strcmp(how, "none") == 0 ? ", not enforced" : "", mem, cores,
           cli__int(dc, "pids"), cli__int(dc, "event_cpu_ms"));
    /* What programs give up at their start, and their network: a host
     * that could make no namespace says here that programs keep its. */
    json_t *hard = json_object_get(v, "hardening");
    json_t *parts = json_object_get(hard, "parts");
    printf("hardening:        ");
    if (json_array_size(parts) == 0) {
        printf("none");
    }
    size_t pi;
    json_t *part;
    json_array_foreach(parts, pi, part)
    {
        printf("%s%s", pi > 0 ? " " : "", json_string_value(part));
    }
    json_t *uid = json_object_get(hard, "uid");
    const char *uids = json_string_value(json_object_get(hard, "uids"));
    printf("; network %s; ", cli__str(hard, "network"));
    if (uids != NULL) {
        printf("a uid each from %s\n", uids);
    } else if (json_is_integer(uid)) {
        printf("uid %lld\n", (long long)json_integer_value(uid));
    } else {
        printf("the host's uid\n");
    }
    printf("master key:       %s\n", cli__str(v, "master_key"));
    printf("replies reused:   %lld (%.1f KiB kept)\n", cli__int(v, "reuses"),
           (double)cli__int(v, "reuse_bytes") / 1024.0);
    printf("alarms:           %lld set, %lld fired\n", cli__int(v, "alarms"),
           cli__int(v, "alarms_fired"));
    json_t *ws = json_object_get(v, "websockets");
    printf("websockets:       %lld open, %lld opening; %lld messages in, "
           "%lld out, %lld sends dropped\n",
           cli__int(ws, "open"), cli__int(ws, "opening"),
           cli__int(ws, "messages_in"), cli__int(ws, "messages_out"),
           cli__int(ws, "dropped"));
    json_decref(v);
    return 0;
}

static const struct cli__opt cli__version_opts[] = {
    {"--json", NULL, CLI__FLAG, 0, 0, "print {\"version\": VERSION}"},
    {NULL, NULL, 0, 0, 0, NULL},
};

static int cli__version(const struct cli__cmd *cmd, struct cli *c,
                        struct cli__args *a)
{
    if (a->val[0] != NULL) {
        printf("{\"version\": \"%s\"}\n", BERTH_VERSION);
    } else {
        printf("berth %s\n", BERTH_VERSION);
    }
    return 0;
}

/* --- serve. --- */

enum {
    CLI__SERVE_DATA,
    CLI__SERVE_LISTEN,
    CLI__SERVE_ADMIN,
    CLI__SERVE_FREEZE,
    CLI__SERVE_IDLE,
    CLI__SERVE_MAX_AWAKE_MB,
    CLI__SERVE_MAX_AWAKE,
    CLI__SERVE_EVENT_TIMEOUT,
    CLI__SERVE_SNAPSHOT_EVERY,
    CLI__SERVE_MAX_BODY,
    CLI__SERVE_MAX_QUEUE,
    CLI__SERVE_RESERVE_DISK,
    CLI__SERVE_MAX_BUFFER_MB,
    CLI__SERVE_USAGE_INTERVAL,
    CLI__SERVE_CRAWL_SHARE,
    CLI__SERVE_CRAWL_REST,
    CLI__SERVE_LIMIT_SHIPS,
    CLI__SERVE_LIMIT_STORAGE,
    CLI__SERVE_LIMIT_AWAKE,
    CLI__SERVE_LIMIT_CPU,
    CLI__SERVE_LIMIT_EVENTS,
    CLI__SERVE_HEADER_TIMEOUT,
    CLI__SERVE_BODY_TIMEOUT,
    CLI__SERVE_MIN_RATE,
    CLI__SERVE_MAX_CONNS_PER_ADDR,
    CLI__SERVE_MAX_IDLE_CONNS,
    CLI__SERVE_WS_MAX_MESSAGE,
    CLI__SERVE_WS_PER_SHIP,
    CLI__SERVE_WS_PER_ACCOUNT,
    CLI__SERVE_WS_INFLIGHT,
    CLI__SERVE_WS_PING,
    CLI__SERVE_PEER,
    CLI__SERVE_JOIN,
    CLI__SERVE_VOTERS,
    CLI__SERVE_ACKS,
    CLI__SERVE_HEARTBEAT,
    CLI__SERVE_ELECTION,
    CLI__SERVE_PASSPHRASE_FILE,
    CLI__SERVE_MASTER_KEY_FILE,
    CLI__SERVE_UNSEALED,
    CLI__SERVE_NO_HARDEN,
    CLI__SERVE_PROGRAM_USER,
    CLI__SERVE_PROGRAM_UIDS,
    CLI__SERVE_CLUSTER_SECRET_FILE,
    CLI__SERVE_MEMORY,
    CLI__SERVE_CPU,
    CLI__SERVE_PIDS,
    CLI__SERVE_EVENT_CPU,
    CLI__SERVE_LOG_LEVEL,
    CLI__SERVE_SHIP_LOG_BYTES,
    CLI__SERVE_DOMAIN,
    CLI__SERVE_TLS_LISTEN,
    CLI__SERVE_TLS_CERT,
    CLI__SERVE_TLS_KEY,
    CLI__SERVE_N,
};

_Static_assert(CLI__SERVE_N < CLI__OPTS_MAX, "serve has too many options");

static const struct cli__opt cli__serve_opts[] = {
    [CLI__SERVE_DATA] = {"--data", "DIR", CLI__STR, 0, 0,
                         "the data directory (default $BERTH_DATA, else "
                         "./berth-data)"},
    [CLI__SERVE_LISTEN] = {"--listen", "HOST:PORT", CLI__STR, 0, 0,
                           "the front door (default 127.0.0.1:8080)"},
    [CLI__SERVE_ADMIN] = {"--admin", "HOST:PORT", CLI__STR, 0, 0,
                          "serve the admin API on this TCP address too, any "
                          "address, every request with a token ('berth token "
                          "new'); written to DIR/admin.addr. The socket "
                          "DIR/admin.sock is always served, without token"},
    [CLI__SERVE_FREEZE] = {"--freeze-timeout", "MS", CLI__MS, 0, 1ULL << 31,
                           "freeze ships idle this long; 0: never (default "
                           "10000)"},
    [CLI__SERVE_IDLE] = {"--idle-timeout", "MS", CLI__MS, 0, 1ULL << 31,
                         "put ships idle this long to sleep (default 60000)"},
    [CLI__SERVE_MAX_AWAKE_MB] = {"--max-awake-mb", "MB", CLI__MB, 0, 0,
                                 "memory budget of the running programs; "
                                 "past it the least recently used idle ships "
                                 "sleep (default: none)"},
    [CLI__SERVE_MAX_AWAKE] = {"--max-awake", "N", CLI__NUM, 0, 1ULL << 24,
                              "running programs at most (default, or 0: what "
                              "descriptors and pids allow)"},
    [CLI__SERVE_EVENT_TIMEOUT] = {"--event-timeout", "MS", CLI__MS, 1,
                                  1ULL << 31,
                                  "time limit of one event (default 10000)"},
    [CLI__SERVE_MEMORY] = {"--memory", "SIZE", CLI__STR, 0, 0,
                           "memory cap of each program and what it starts "
                           "(64M, 1G; none): over it the program is killed "
                           "and its event answered 503 memory_limit; an "
                           "account's or ship's smaller cap wins (default "
                           "512M)"},
    [CLI__SERVE_CPU] = {"--cpu", "CORES", CLI__STR, 0, 0,
                        "CPU share of each program (0.5: half a core; "
                        "none): past it the program waits (default 1)"},
    [CLI__SERVE_PIDS] = {"--pids", "N", CLI__STR, 0, 0,
                         "processes and threads a program may have at once; "
                         "a fork past it fails (default 256; none)"},
    [CLI__SERVE_EVENT_CPU] = {"--event-cpu-ms", "MS", CLI__MS, 0, 1ULL << 31,
                              "CPU time of one event: past it the program is "
                              "killed and the event answered 504 cpu_limit; "
                              "0: none (default 5000)"},
    [CLI__SERVE_SNAPSHOT_EVERY] = {"--snapshot-every", "N", CLI__NUM, 1,
                                   1ULL << 31,
                                   "snapshot a ship every N events (default "
                                   "1000)"},
    [CLI__SERVE_MAX_BODY] = {"--max-body", "BYTES", CLI__NUM, 0, 1ULL << 30,
                             "request body limit (default 8388608)"},
    [CLI__SERVE_MAX_QUEUE] = {"--max-queue", "N", CLI__NUM, 1, 1ULL << 24,
                              "requests waiting per ship before 503 (default "
                              "1024)"},
    [CLI__SERVE_RESERVE_DISK] = {"--reserve-disk", "MB", CLI__NUM, 0,
                                 1ULL << 40,
                                 "refuse writes (507) below this much free "
                                 "disk; 0: off (default 64)"},
    [CLI__SERVE_MAX_BUFFER_MB] = {"--max-buffer-mb", "MB", CLI__MB, 0, 0,
                                  "bytes held for requests, replies and slow "
                                  "clients; past it programs and clients are "
                                  "held back; 0: no cap (default 256)"},
    [CLI__SERVE_USAGE_INTERVAL] = {"--usage-interval", "MS", CLI__MS, 100,
                                   3600000,
                                   "how often the leader records what "
                                   "programs used (CPU, memory, wakes, "
                                   "requests) and reads running programs' "
                                   "CPU (default 60000)"},
    [CLI__SERVE_CRAWL_SHARE] = {"--crawl-share", "PERCENT", CLI__NUM, 0, 100,
                                "the share of one CPU the crawler's walk of "
                                "the store may take; 0: no crawler "
                                "(default 5)"},
    [CLI__SERVE_CRAWL_REST] = {"--crawl-rest", "MS", CLI__MS, 0, 86400000,
                               "the crawler's rest between two passes "
                               "(default 60000)"},
    [CLI__SERVE_LIMIT_SHIPS] = {"--limit-ships", "N", CLI__NUM, 0, QUOTA_MAX,
                                "ships an account may have, where it sets "
                                "no limit of its own (berth account limit); "
                                "0: none (default)"},
    [CLI__SERVE_LIMIT_STORAGE] = {"--limit-storage-mb", "MB", CLI__MB, 0, 0,
                                  "storage an account's ships may take "
                                  "before writes are refused (507); "
                                  "decimals allowed; 0: none (default)"},
    [CLI__SERVE_LIMIT_AWAKE] = {"--limit-awake", "N", CLI__NUM, 0, QUOTA_MAX,
                                "ships of an account whose programs may run "
                                "at once; 0: none (default)"},
    [CLI__SERVE_LIMIT_CPU] = {"--limit-cpu-per-hour", "SECONDS", CLI__NUM, 0,
                              1000000000,
                              "CPU seconds an account's programs may use in "
                              "an hour before writes are refused (429); 0: "
                              "none (default)"},
    [CLI__SERVE_LIMIT_EVENTS] = {"--limit-events-per-second", "N", CLI__NUM, 0,
                                 QUOTA_MAX,
                                 "events an account's ships may commit a "
                                 "second; more are refused (429); 0: none "
                                 "(default)"},
    [CLI__SERVE_HEADER_TIMEOUT] = {"--header-timeout", "MS", CLI__MS, 1,
                                   1ULL << 31,
                                   "a request's headers must arrive within "
                                   "this, or 408 (default 10000)"},
    [CLI__SERVE_BODY_TIMEOUT] = {"--body-timeout", "MS", CLI__MS, 1, 1ULL << 31,
                                 "a request's body must arrive within this "
                                 "of its headers, plus a second per "
                                 "--min-rate bytes, or 408 (default "
                                 "20000)"},
    [CLI__SERVE_MIN_RATE] = {"--min-rate", "BYTES", CLI__NUM, 1, 1ULL << 30,
                             "the slowest a client may send a body or read a "
                             "reply, in bytes a second (default 4096)"},
    [CLI__SERVE_MAX_CONNS_PER_ADDR] = {"--max-conns-per-addr", "N", CLI__NUM, 0,
                                       1ULL << 24,
                                       "front-door connections per client "
                                       "address; 0: no cap (default 1024)"},
    [CLI__SERVE_MAX_IDLE_CONNS] = {"--max-idle-conns", "N", CLI__NUM, 0,
                                   1ULL << 24,
                                   "idle front-door connections, the oldest "
                                   "closed first; 0: no cap (default 1024)"},
    [CLI__SERVE_WS_MAX_MESSAGE] = {"--ws-max-message", "BYTES", CLI__NUM, 1,
                                   1ULL << 30,
                                   "the largest WebSocket message a client "
                                   "may send; larger closes with 1009 "
                                   "(default 1048576)"},
    [CLI__SERVE_WS_PER_SHIP] = {"--ws-per-ship", "N", CLI__NUM, 1, 1ULL << 24,
                                "WebSockets open to one ship; more are "
                                "refused with 429 (default 1024)"},
    [CLI__SERVE_WS_PER_ACCOUNT] = {"--ws-per-account", "N", CLI__NUM, 1,
                                   1ULL << 24,
                                   "WebSockets open to one account's ships; "
                                   "more are refused with 429 (default "
                                   "16384)"},
    [CLI__SERVE_WS_INFLIGHT] = {"--ws-inflight", "N", CLI__NUM, 1, 65535,
                                "a WebSocket's messages on their way to its "
                                "ship before the host stops reading it "
                                "(default 8)"},
    [CLI__SERVE_WS_PING] = {"--ws-ping-ms", "MS", CLI__MS, 100, 1ULL << 31,
                            "silence before the host pings a WebSocket "
                            "client; one silent as long again is closed "
                            "(default 30000)"},
    [CLI__SERVE_PEER] = {"--peer", "IP:PORT", CLI__STR, 0, 0,
                         "the address other hosts of the cluster reach this "
                         "host at; bound for the peer port (default: none, "
                         "a cluster of this host alone)"},
    [CLI__SERVE_JOIN] = {"--join", "IP:PORT", CLI__STR, 0, 0,
                         "the first time, join the cluster of the host whose "
                         "peer address this is (needs --peer)"},
    [CLI__SERVE_VOTERS] = {"--voters", "N", CLI__NUM, 1, 99,
                           "voters the cluster keeps when hosts are enough; "
                           "the others are standbys (default 3)"},
    [CLI__SERVE_ACKS] = {"--acks", "LEVEL", CLI__STR, 0, 0,
                         "ack level of ships that set none: 0, 1, 2, ..., "
                         "quorum or all hosts must hold an event before its "
                         "effects leave (default quorum)"},
    [CLI__SERVE_HEARTBEAT] = {"--heartbeat", "MS", CLI__MS, 1, 60000,
                              "how often the leader tells the others it "
                              "leads (default 100)"},
    [CLI__SERVE_ELECTION] = {"--election-timeout", "MS", CLI__MS, 10, 600000,
                             "how long a host hears nothing from a leader "
                             "before it stands for election; at least 5 "
                             "heartbeats (default 1000)"},
    [CLI__SERVE_PASSPHRASE_FILE] = {"--passphrase-file", "FILE", CLI__STR, 0, 0,
                                    "seal DIR/master.key under the passphrase "
                                    "in FILE (default: $BERTH_PASSPHRASE, "
                                    "else the key sits beside the data)"},
    [CLI__SERVE_MASTER_KEY_FILE] = {"--master-key-file", "FILE", CLI__STR, 0, 0,
                                    "seal DIR/master.key under the key in "
                                    "FILE: 32 bytes or 64 hex digits"},
    [CLI__SERVE_UNSEALED] = {"--unsealed", NULL, CLI__FLAG, 0, 0,
                             "write new events, snapshots and ship keys "
                             "unsealed, readable on disk: only to measure "
                             "what sealing costs"},
    [CLI__SERVE_NO_HARDEN] = {"--no-harden", NULL, CLI__FLAG, 0, 0,
                              "start programs without their sandbox "
                              "(seccomp filter, rlimits, private directory, "
                              "no network, no capabilities): only to "
                              "measure what it costs"},
    [CLI__SERVE_PROGRAM_USER] = {"--program-user", "USER", CLI__STR, 0, 0,
                                 "run every program as this user (a name or "
                                 "uid), with its group and no other; the "
                                 "host must run as root (default: the "
                                 "host's user)"},
    [CLI__SERVE_PROGRAM_UIDS] = {"--program-uids", "FIRST-LAST", CLI__STR, 0, 0,
                                 "run each program as a uid of its own from "
                                 "this range (with the group of the same "
                                 "number), held by no other running program: "
                                 "programs cannot signal each other or read "
                                 "each other's files. Unused uids; as many "
                                 "as programs may run at once; the host must "
                                 "run as root. Not with --program-user"},
    [CLI__SERVE_CLUSTER_SECRET_FILE] = {"--cluster-secret-file", "FILE",
                                        CLI__STR, 0, 0,
                                        "with --join, the cluster's secret "
                                        "(64 hex digits, as `berth cluster "
                                        "secret` prints it; default: "
                                        "$BERTH_CLUSTER_SECRET)"},
    [CLI__SERVE_LOG_LEVEL] = {"--log-level", "LEVEL", CLI__STR, 0, 0,
                              "the least level of the lines the host writes "
                              "to stderr, programs' stderr lines (info) "
                              "among them: debug, info, warn or error "
                              "(default info)"},
    [CLI__SERVE_SHIP_LOG_BYTES] = {"--ship-log-bytes", "BYTES", CLI__NUM, 0,
                                   1ULL << 30,
                                   "the most recent bytes of each program's "
                                   "stderr kept on disk for `berth ship "
                                   "logs`; 0: none kept (default 65536)"},
    [CLI__SERVE_DOMAIN] = {"--domain", "DOMAIN", CLI__STR, 0, 0,
                           "route a request whose Host is SHIP.DOMAIN (any "
                           "port, any case) to that ship, its path whole; "
                           "the bare domain and other hosts route by path "
                           "(/s/SHIP/)"},
    [CLI__SERVE_TLS_LISTEN] = {"--tls-listen", "HOST:PORT", CLI__STR, 0, 0,
                               "the front door's TLS listener (default "
                               "127.0.0.1:8443 with --tls-cert)"},
    [CLI__SERVE_TLS_CERT] = {"--tls-cert", "FILE", CLI__STR, 0, 0,
                             "serve TLS with this PEM certificate chain "
                             "(HTTP/1.1, ALPN http/1.1); SIGHUP or 'berth tls "
                             "reload' loads it again"},
    [CLI__SERVE_TLS_KEY] = {"--tls-key", "FILE", CLI__STR, 0, 0,
                            "the PEM private key of --tls-cert"},
    [CLI__SERVE_N] = {NULL, NULL, 0, 0, 0, NULL},
};

static int cli__serve(const struct cli__cmd *cmd, struct cli *c,
                      struct cli__args *a)
{
    struct host_config cfg;
    host_config_defaults(&cfg);
    if (a->val[CLI__SERVE_DATA] != NULL) {
        cfg.data_dir = a->val[CLI__SERVE_DATA];
    }
    if (a->val[CLI__SERVE_LISTEN] != NULL) {
        cfg.listen = a->val[CLI__SERVE_LISTEN];
    }
    if (a->val[CLI__SERVE_ADMIN] != NULL) {
        cfg.admin = a->val[CLI__SERVE_ADMIN];
    }
    cfg.domain = a->val[CLI__SERVE_DOMAIN];
    if (cfg.domain != NULL) {
        /* "example.org." is the same domain. */
        size_t n = strlen(cfg.domain);
        static char domain[256];
        /* Letters, digits, '-' and dots between labels: a Host header
         * holds nothing else, so another domain would route nothing. */
        bool name = n > 0 && n < sizeof domain && cfg.domain[0] != '.' &&
                    strstr(cfg.domain, "..") == NULL &&
                    strspn(cfg.domain, "abcdefghijklmnopqrstuvwxyz"
                                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789-.") == n;
        if (!name) {
            return cli__usage(cmd,
                              "--domain needs a DNS name such as "
                              "example.org, not %s",
                              cfg.domain);
        }
        snprintf(domain, sizeof domain, "%s", cfg.domain);
        if (domain[n - 1] == '.') {
            domain[n - 1] = '\0';
        }
        cfg.domain = domain;
    }
    cfg.tls_cert = a->val[CLI__SERVE_TLS_CERT];
    cfg.tls_key = a->val[CLI__SERVE_TLS_KEY];
    cfg.tls_listen = a->val[CLI__SERVE_TLS_LISTEN];
    if ((cfg.tls_cert == NULL) != (cfg.tls_key == NULL)) {
        return cli__usage(cmd, "--tls-cert and --tls-key go together");
    }
    if (cfg.tls_listen != NULL && cfg.tls_cert == NULL) {
        return cli__usage(cmd, "--tls-listen needs --tls-cert and --tls-key");
    }
    if (cfg.tls_cert != NULL && cfg.tls_listen == NULL) {
        cfg.tls_listen = "127.0.0.1:8443";
    }
    /* A mistyped address is bad usage, found before the host opens its
     * data directory. */
    static const int listeners[] = {CLI__SERVE_LISTEN, CLI__SERVE_ADMIN,
                                    CLI__SERVE_TLS_LISTEN};
    for (size_t k = 0; k < sizeof listeners / sizeof listeners[0]; k++) {
        const char *v = a->val[listeners[k]];
        struct sockaddr_storage sa;
        if (v != NULL && http_parse_hostport(v, &sa) != 0) {
            return cli__usage(cmd,
                              "%s needs HOST:PORT, an IP address (or "
                              "localhost) and a port up to 65535, not %s",
                              cmd->opts[listeners[k]].name, v);
        }
    }
    static const int peers[] = {CLI__SERVE_PEER, CLI__SERVE_JOIN};
    for (size_t k = 0; k < sizeof peers / sizeof peers[0]; k++) {
        const char *v = a->val[peers[k]];
        struct sockaddr_storage sa;
        if (v != NULL && transport_parse_address(v, &sa) != 0) {
            return cli__usage(cmd,
                              "%s needs IP:PORT, an IP address and a port up "
                              "to 65535, such as 10.0.0.1:7001, not %s",
                              cmd->opts[peers[k]].name, v);
        }
    }
    cfg.passphrase_file = a->val[CLI__SERVE_PASSPHRASE_FILE];
    cfg.master_key_file = a->val[CLI__SERVE_MASTER_KEY_FILE];
    cfg.unsealed = a->val[CLI__SERVE_UNSEALED] != NULL;
    cfg.no_harden = a->val[CLI__SERVE_NO_HARDEN] != NULL;
    cfg.program_user = a->val[CLI__SERVE_PROGRAM_USER];
    cfg.program_uids = a->val[CLI__SERVE_PROGRAM_UIDS];
    cfg.cluster_secret_file = a->val[CLI__SERVE_CLUSTER_SECRET_FILE];
    cfg.peer = a->val[CLI__SERVE_PEER];
    cfg.join = a->val[CLI__SERVE_JOIN];
    if (a->val[CLI__SERVE_VOTERS] != NULL) {
        cfg.voters = (unsigned)a->num[CLI__SERVE_VOTERS];
    }
    if (a->val[CLI__SERVE_ACKS] != NULL &&
        gate_acks_parse(a->val[CLI__SERVE_ACKS], &cfg.acks) != 0) {
        return cli__usage(cmd,
                          "--acks needs a number of hosts from 0 to %d, "
                          "quorum or all, not %s",
                          GATE_ACKS_MAX, a->val[CLI__SERVE_ACKS]);
    }
    if (a->val[CLI__SERVE_MEMORY] != NULL &&
        caps_parse_memory(a->val[CLI__SERVE_MEMORY], &cfg.caps.memory_bytes) !=
            0) {
        return cli__usage(cmd,
                          "--memory needs a size of at least 4M, such as 64M "
                          "or 1G, or none, not %s",
                          a->val[CLI__SERVE_MEMORY]);
    }
    if (a->val[CLI__SERVE_CPU] != NULL &&
        caps_parse_cpu(a->val[CLI__SERVE_CPU], &cfg.caps.cpu_millis) != 0) {
        return cli__usage(cmd,
                          "--cpu needs a number of cores from 0.01 to 1024, "
                          "such as 0.5, or none, not %s",
                          a->val[CLI__SERVE_CPU]);
    }
    if (a->val[CLI__SERVE_PIDS] != NULL &&
        caps_parse_pids(a->val[CLI__SERVE_PIDS], &cfg.caps.pids) != 0) {
        return cli__usage(cmd,
                          "--pids needs a whole number of at least 2, or "
                          "none, not %s",
                          a->val[CLI__SERVE_PIDS]);
    }
    /* Numbers, each into its field when given. */
    static const struct {
        int opt;
        size_t offset;
        size_t size;
    } nums[] = {
        {CLI__SERVE_EVENT_CPU, offsetof(struct host_config, event_cpu_ms),
         sizeof cfg.event_cpu_ms},
        {CLI__SERVE_FREEZE, offsetof(struct host_config, freeze_timeout_ms),
         sizeof cfg.freeze_timeout_ms},
        {CLI__SERVE_IDLE, offsetof(struct host_config, idle_timeout_ms),
         sizeof cfg.idle_timeout_ms},
        {CLI__SERVE_MAX_AWAKE_MB, offsetof(struct host_config, max_awake_bytes),
         sizeof cfg.max_awake_bytes},
        {CLI__SERVE_MAX_AWAKE, offsetof(struct host_config, max_awake),
         sizeof cfg.max_awake},
        {CLI__SERVE_EVENT_TIMEOUT,
         offsetof(struct host_config, event_timeout_ms),
         sizeof cfg.event_timeout_ms},
        {CLI__SERVE_SNAPSHOT_EVERY,
         offsetof(struct host_config, snapshot_every),
         sizeof cfg.snapshot_every},
        {CLI__SERVE_MAX_BODY, offsetof(struct host_config, max_body),
         sizeof cfg.max_body},
        {CLI__SERVE_MAX_QUEUE, offsetof(struct host_config, max_queue),
         sizeof cfg.max_queue},
        {CLI__SERVE_MAX_BUFFER_MB,
         offsetof(struct host_config, max_buffer_bytes),
         sizeof cfg.max_buffer_bytes},
        {CLI__SERVE_HEADER_TIMEOUT,
         offsetof(struct host_config, header_timeout_ms),
         sizeof cfg.header_timeout_ms},
        {CLI__SERVE_BODY_TIMEOUT, offsetof(struct host_config, body_timeout_ms),
         sizeof cfg.body_timeout_ms},
        {CLI__SERVE_MIN_RATE, offsetof(struct host_config, min_rate),
         sizeof cfg.min_rate},
        {CLI__SERVE_MAX_CONNS_PER_ADDR,
         offsetof(struct host_config, max_conns_per_addr),
         sizeof cfg.max_conns_per_addr},
        {CLI__SERVE_MAX_IDLE_CONNS,
         offsetof(struct host_config, max_idle_conns),
         sizeof cfg.max_idle_conns},
        {CLI__SERVE_WS_MAX_MESSAGE,
         offsetof(struct host_config, ws_max_message),
         sizeof cfg.ws_max_message},
        {CLI__SERVE_WS_PER_SHIP, offsetof(struct host_config, ws_per_ship),
         sizeof cfg.ws_per_ship},
        {CLI__SERVE_WS_PER_ACCOUNT,
         offsetof(struct host_config, ws_per_account),
         sizeof cfg.ws_per_account},
        {CLI__SERVE_WS_INFLIGHT, offsetof(struct host_config, ws_inflight),
         sizeof cfg.ws_inflight},
        {CLI__SERVE_WS_PING, offsetof(struct host_config, ws_ping_ms),
         sizeof cfg.ws_ping_ms},
        {CLI__SERVE_HEARTBEAT, offsetof(struct host_config, heartbeat_ms),
         sizeof cfg.heartbeat_ms},
        {CLI__SERVE_ELECTION, offsetof(struct host_config, election_ms),
         sizeof cfg.election_ms},
    };
    for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++) {
        if (a->val[nums[k].opt] == NULL) {
            continue;
        }
        unsigned long long n = a->num[nums[k].opt];
        char *field = (char *)&cfg + nums[k].offset;
        if (nums[k].size == sizeof(unsigned)) {
            unsigned u = (unsigned)n;
            memcpy(field, &u, sizeof u);
        } else {
            uint64_t u = n;
            memcpy(field, &u, sizeof u);
        }
    }
    static const int limit_opts[QUOTA__COUNT] = {
        [QUOTA_SHIPS] = CLI__SERVE_LIMIT_SHIPS,
        [QUOTA_STORAGE] = CLI__SERVE_LIMIT_STORAGE,
        [QUOTA_AWAKE] = CLI__SERVE_LIMIT_AWAKE,
        [QUOTA_CPU] = CLI__SERVE_LIMIT_CPU,
        [QUOTA_EVENTS] = CLI__SERVE_LIMIT_EVENTS,
    };
    for (int i = 0; i < QUOTA__COUNT; i++) {
        if (a->val[limit_opts[i]] != NULL) {
            cfg.limits[i] = a->num[limit_opts[i]];
        }
    }
    if (a->val[CLI__SERVE_USAGE_INTERVAL] != NULL) {
        cfg.usage_interval_ms = (unsigned)a->num[CLI__SERVE_USAGE_INTERVAL];
    }
    if (a->val[CLI__SERVE_CRAWL_SHARE] != NULL) {
        cfg.crawl_share = (unsigned)a->num[CLI__SERVE_CRAWL_SHARE];
    }
    if (a->val[CLI__SERVE_LOG_LEVEL] != NULL &&
        loglevel_parse(a->val[CLI__SERVE_LOG_LEVEL], &cfg.log_level) != 0) {
        return cli__usage(cmd,
                          "--log-level needs debug, info, warn or error, "
                          "not %s",
                          a->val[CLI__SERVE_LOG_LEVEL]);
    }
    if (a->val[CLI__SERVE_SHIP_LOG_BYTES] != NULL) {
        cfg.ship_log_bytes = a->num[CLI__SERVE_SHIP_LOG_BYTES];
    }
    if (a->val[CLI__SERVE_CRAWL_REST] != NULL) {
        cfg.crawl_rest_ms = (unsigned)a->num[CLI__SERVE_CRAWL_REST];
    }
    if (a->val[CLI__SERVE_RESERVE_DISK] != NULL) {
        cfg.reserve_bytes = a->num[CLI__SERVE_RESERVE_DISK] * 1024 * 1024;
    }
    /* A follower must hear several heartbeats in an election timeout, or
     * one late heartbeat starts an election. */
    unsigned hb = cfg.heartbeat_ms ? cfg.heartbeat_ms : 100;
    unsigned el = cfg.election_ms ? cfg.election_ms : 1000;
    if (el < 5 * hb) {
        return cli__usage(cmd,
                          "--election-timeout (%u ms) must be at least 5 "
                          "heartbeats (--heartbeat %u ms)",
                          el, hb);
    }
    return host_run(&cfg);
}

/* --- The commands. --- */

static const struct cli__cmd cli__cmds[] = {
    {"serve", "[options]", "run a host in the foreground",
     "Run a host in the foreground until SIGINT or SIGTERM: its front door "
     "for HTTP, its admin API (DIR/admin.sock, and --admin) and every ship in "
     "its data directory. Under a service manager it says READY=1, STATUS, "
     "WATCHDOG=1 and STOPPING=1 ($NOTIFY_SOCKET, $WATCHDOG_USEC), and takes "
     "its front door from a socket the manager passes ($LISTEN_FDS, the one "
     "named front) rather than binding --listen, so that the socket outlives "
     "a restart (packaging/berth.socket), and its TLS door from the one "
     "named tls rather than binding --tls-listen (packaging/berth-tls.socket).",
     cli__serve_opts, 0, 0, false, cli__serve},
    {"ship new", "--program PATH [options]", "create a ship, or N ships",
     "Create a ship running PATH, or N ships with --count, and print its id "
     "(or a summary for --count). The program gets the --arg arguments and "
     "the --env variables at every start. With --parent, the ship is a "
     "child of another, in its account, and --lifetime says whether it "
     "goes when its parent does.",
     cli__new_opts, 0, 0, true, cli__ship_new},
    {"ship ls", "[options]", "list ships",
     "List ships in creation order: id, name, state, events, wakes since the "
     "host started, last activity.",
     cli__ls_opts, 0, 0, true, cli__ship_ls},
    {"ship show", "SHIP", "show one ship",
     "Show a ship, by id or name: its state, program, parent, lifetime and "
     "children, arguments, environment, events, snapshot, timeouts, memory "
     "and alarm.",
     NULL, 1, 1, true, cli__ship_one},
    {"ship logs", "SHIP", "print a ship's program's stderr",
     "Print what the ship's program wrote to its stderr, as the host that "
     "runs it keeps it: the last --ship-log-bytes of `berth serve` (64 KiB "
     "by default), on disk, across sleeps and restarts of the program. In a "
     "cluster only the leader runs programs: the log is the leader's, of "
     "what programs wrote while it led. With --follow (-f) it goes on "
     "printing what the program writes until interrupted. With --json each "
     "answer of the API is a line of JSON, its bytes in base64.",
     cli__logs_opts, 1, 1, true, cli__ship_logs},
    {"ship tree", "SHIP", "show a ship and its descendants",
     "Show a ship and its descendants (children made with 'ship new "
     "--parent' or by its program), a line a ship, each indented under its "
     "parent: its name (else id), its lifetime (root, linked, ephemeral, "
     "resetting, leased; "
     "operator for a ship made without a parent), its status (active: "
     "waking, awake or sleeping; idle: frozen; asleep) and the memory of its "
     "program when the host has measured it. At most 10000 ships are shown.",
     NULL, 1, 1, true, cli__ship_one},
    {"ship send", "SHIP DATA", "deliver DATA to a ship as an event",
     "Deliver DATA to the ship as a POKE event and print the program's "
     "reply; DATA - reads the payload from stdin.",
     NULL, 2, 2, true, cli__ship_one},
    {"ship sleep", "SHIP", "snapshot a ship and stop its program",
     "Snapshot the ship and stop its program; prints the ship's id and "
     "state once it has settled.",
     NULL, 1, 1, true, cli__ship_one},
    {"ship wake", "SHIP", "start a ship's program",
     "Start the ship's program (or thaw a frozen one) and replay its log; "
     "prints the ship's id and state once awake.",
     NULL, 1, 1, true, cli__ship_one},
    {"ship resize", "SHIP", "change a ship's caps, on its running program too",
     "Change the ship's own memory, CPU and pids caps and its storage "
     "budget (each given; 'none' lifts one), logged on every host and put "
     "on its running program at once. The caps in force are the smallest "
     "of the host's (berth serve --memory ...) and the ship's.",
     cli__resize_opts, 1, 1, true, cli__ship_one},
    {"ship rm", "SHIP", "remove a ship and its data",
     "Stop the ship's program and remove the ship, its log and its "
     "snapshot.",
     NULL, 1, 1, true, cli__ship_one},
    {"ship kill", "SHIP", "kill a ship's program now",
     "Kill the ship's program at once (SIGKILL, no snapshot) and put the ship "
     "to sleep: requests waiting for it are answered 503 (killed), the event "
     "it was computing fails and its effects never leave. It wakes on its next "
     "message, from its last committed state. Prints the ship's id and state "
     "once it is asleep.",
     NULL, 1, 1, true, cli__ship_one},
    {"ship block", "SHIP", "cut a ship off",
     "Cut the ship off, on every host and across restarts: the front door "
     "answers its requests 403 (ship_blocked), and no message reaches it or "
     "leaves it; a running program that has the network is killed, and the "
     "ship has none while blocked. Only the operator may block or unblock.",
     NULL, 1, 1, true, cli__ship_one},
    {"ship unblock", "SHIP", "let a blocked ship back",
     "Lift a block: the front door and messages reach the ship again.", NULL, 1,
     1, true, cli__ship_one},
    {"ship export", "SHIP FILE", "write a ship to a file, for a backup",
     "Write the ship whole to FILE ('-': stdout): its identity (id and "
     "keys), name, program with its arguments and environment, account, "
     "timeouts, and its stored data (snapshots and events), as one file "
     "sealed under the cluster's keys. Its stored data is checked as fsck "
     "checks it first. 'berth ship import FILE' makes the ship again in "
     "this cluster (or a host started with the same master key and data "
     "keys); the file opens nowhere else. The ship's program is named by "
     "its path: it must be there where the ship is imported.",
     NULL, 2, 2, true, cli__ship_export},
    {"ship import", "FILE", "make a ship again from its export",
     "Make the ship in FILE ('-': stdin), written by 'berth ship export', "
     "again: same id, keys, name, program, account and state, at its last "
     "exported event. The file must open with the cluster's keys and its "
     "data pass the checks of fsck; its account must exist and its id and "
     "name be free (remove the ship first to restore it). A file cut short "
     "or changed is refused and nothing changes. The ship comes back as a "
     "root ship, whatever its parent was. Prints its id and name.",
     NULL, 1, 1, true, cli__ship_one},
    {"cluster ls", "", "list the hosts of the cluster",
     "List every host of this host's cluster: id, peer address, front door, "
     "role (voter, standby or spare), whether it leads, whether it answered "
     "just now, the last entry it applied, how far it lags, and its last "
     "heartbeat (hosts send one every second): how long ago it came, the "
     "machine's load average, the host's resident memory and the programs "
     "it runs.",
     NULL, 0, 0, true, cli__cluster_ls},
    {"cluster join", "PEER", "make a running, empty host join a cluster",
     "Make a running host that is a cluster of one, holds no ships and has a "
     "--peer join the cluster of the host at peer address PEER. It sets its "
     "log and store aside (DIR/before-join.*) and starts again with --join, "
     "as the same process. The cluster's secret comes from "
     "$BERTH_CLUSTER_SECRET.",
     NULL, 1, 1, true, cli__cluster_join},
    {"cluster secret", "", "print the cluster's secret",
     "Print the secret (64 hex digits) that hosts of this cluster prove to "
     "each other; a host joins with it (berth serve --join ... "
     "--cluster-secret-file FILE, or BERTH_CLUSTER_SECRET). Keep it as "
     "secret as the data.",
     NULL, 0, 0, true, cli__cluster_secret},
    {"cluster remove", "HOST", "remove a host from the cluster",
     "Remove a host, by id or peer address, from the cluster's "
     "configuration. The host stops taking part; its data directory is left "
     "as it is.",
     NULL, 1, 1, true, cli__cluster_remove},
    {"account new", "NAME", "make an account and print its token",
     "Make an account and print its token, once (the host keeps only its "
     "hash). With that token (--token or BERTH_TOKEN, on a host's --admin "
     "TCP listener) 'berth ship ...' sees and touches only the account's "
     "ships, and the ships it makes belong to the account. Ships made "
     "without an account's token belong to the account named with 'ship "
     "new --account', else to 'anonymous'.",
     NULL, 1, 1, true, cli__account_new},
    {"account ls", "", "list accounts",
     "List accounts: id, name, enabled or disabled, ships, ships awake, "
     "storage bytes, events committed, and when each was made; and whether "
     "ships may be made without an account.",
     NULL, 0, 0, true, cli__account_ls},
    {"account show", "NAME", "show one account",
     "Show an account: id, name, state, when it was made, and its usage: "
     "ships (awake now), storage bytes, events committed, CPU, memory (peak "
     "and byte-seconds), wakes and requests (docs/api.md, \"Usage\").",
     NULL, 1, 1, true, cli__account_one},
    {"account disable", "NAME", "stop serving an account's ships",
     "Disable an account: its ships answer 403 (account_disabled) at the "
     "front door and go to sleep, its token is refused, and its ships' "
     "alarms wait (they fire once it is enabled). Nothing is deleted.",
     NULL, 1, 1, true, cli__account_one},
    {"account enable", "NAME", "serve a disabled account's ships again",
     "Enable a disabled account: its ships and token serve again, and alarms "
     "that came due meanwhile fire.",
     NULL, 1, 1, true, cli__account_one},
    {"account rm", "NAME --yes", "remove an account and its ships",
     "Remove an account, its token and every ship of it with their data. "
     "Needs --yes. The anonymous account cannot be removed.",
     cli__account_rm_opts, 1, 1, true, cli__account_one},
    {"account limit",
     "NAME [--ships N] [--storage-bytes N] [--awake N] "
     "[--cpu-per-hour SECONDS] [--events-per-second N] [--memory SIZE] "
     "[--cpu CORES] [--pids N]",
     "set an account's limits and caps",
     "Set an account's limits, on every host of the cluster: each a number, "
     "none (no limit) or default (the host's, berth serve --limit-*); those "
     "not given stay as they are. Over a limit, what would exceed it is "
     "refused: new ships and writes over ships or storage (507), wakes over "
     "awake ships, writes over CPU an hour or events a second (429). Reads "
     "go on, and nothing stored is lost (docs/api.md, \"Limits\"). "
     "--memory, --cpu and --pids cap each program of the account's ships, "
     "as ship new's do (none, 0 or default: no cap of the account's); the "
     "cap in force is the smallest of the host's, the account's and the "
     "ship's, and a change reaches the running programs at once "
     "(docs/api.md, \"Caps\").",
     cli__account_limit_opts, 1, 1, true, cli__account_limit},
    {"account anonymous", "on|off", "allow or refuse ships without an account",
     "Allow (on, the default) or refuse (off) new ships in the anonymous "
     "account, on every host of the cluster. Existing anonymous ships keep "
     "serving either way.",
     NULL, 1, 1, true, cli__account_anonymous},
    {"token new", "--scope SCOPE [--name NAME]",
     "make a token for the admin API on TCP",
     "Make a token of the admin API and print it, once: the host keeps only "
     "its hash. A request on TCP gives it as \"Authorization: Bearer "
     "TOKEN\"; the CLI as --token or BERTH_TOKEN. The first token is made "
     "over the host's socket (run this on the host, with --data DIR); later "
     "ones also over TCP with an admin token. In a cluster every host takes "
     "it.",
     cli__token_new_opts, 0, 0, true, cli__token_new},
    {"token ls", "", "list tokens (never their secrets)",
     "List the admin API's tokens: id, scope, name and when each was made. "
     "Their text is never shown again. 'berth token list' does the same.",
     NULL, 0, 0, true, cli__token_ls},
    {"token revoke", "ID", "revoke a token",
     "Revoke a token, by id or name: every host refuses it from then on.", NULL,
     1, 1, true, cli__token_revoke},
    {"fsck", "[--replay] [--repair] [SHIP...]",
     "check the stored data of ships",
     "Check what the host's store holds of each ship named (every ship when "
     "none is): its secret key opens and is its public key's, its snapshot "
     "matches its checksum and its seal opens, and its events form an "
     "unbroken hash chain, from the snapshot to the ship's head, of records "
     "whose seals open. With --replay, it also starts each ship's program "
     "apart, runs it from its prior snapshot through its events, and checks "
     "that it makes the latest snapshot again, byte for byte: a program "
     "whose state depends on more than its events fails. Prints a line a "
     "ship; exits 1 when anything is wrong. Each host checks its own copy; "
     "with --repair, a ship found wrong gets another host's copy, checked "
     "the same way before it is kept. "
     "With no host running on DIR, it checks DIR's store itself (the master "
     "key opened as berth serve opens it).",
     cli__fsck_opts, 0, CLI__POS_MAX, true, cli__fsck},
    {"key rotate", "", "replace the cluster's master key",
     "Replace the master key of every host of the cluster with a new one and "
     "seal what is written from now on under a new data key. The data keys "
     "are kept wrapped under the master key, so nothing is sealed again: "
     "old records keep opening with their data key. Each host keeps the new "
     "master key as it kept the old one (plain, under its passphrase or "
     "under its key file); a copy of the old master.key no longer opens "
     "the store. Needs an admin token on TCP. See docs/security.md, \"Key "
     "rotation\".",
     NULL, 0, 0, true, cli__key_rotate},
    {"tls reload", "", "load the front door's TLS certificate again",
     "Load the certificate chain and key of serve --tls-cert and --tls-key "
     "again from their files, as SIGHUP does: new connections get the new "
     "certificate, open ones keep theirs. A certificate that does not load "
     "(or whose key does not match) is refused with OpenSSL's reason, and "
     "the one before goes on serving. This host only, leader or not. Needs "
     "an admin token on TCP.",
     NULL, 0, 0, true, cli__tls_reload},
    {"stats", "", "host counters",
     "Print the host's counters: ships per state, memory, events, wake and "
     "thaw latency, evictions, caps, the programs' hardening and network, "
     "alarms.",
     NULL, 0, 0, true, cli__stats},
    {"version", "[--json]", "print berth's version", "Print berth's version.",
     cli__version_opts, 0, 0, false, cli__version},
};

#define CLI__N_CMDS (sizeof cli__cmds / sizeof cli__cmds[0])

/* Print the list of commands (those starting with prefix). */
static void cli__list_cmds(FILE *f, const char *prefix)
{
    for (size_t k = 0; k < CLI__N_CMDS; k++) {
        const struct cli__cmd *cmd = &cli__cmds[k];
        if (strncmp(cmd->name, prefix, strlen(prefix)) != 0) {
            continue;
        }
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", cmd->name,
                 cmd->pos_min > 0 ? " " : "",
                 cmd->pos_min > 0 ? cmd->synopsis : "");
        cli__help_row(f, left, cmd->summary);
    }
}

static void cli__usage_all(FILE *f)
{
    fprintf(f, "usage: berth [--data DIR | --admin ADDR [--token TOKEN]] "
               "[--json] COMMAND [options]\n\nCommands:\n");
    cli__list_cmds(f, "");
    cli__help_row(f, "help [COMMAND]", "help on a command, as COMMAND --help");
    fprintf(f, "\n");
    cli__wrap(
        f,
        "A command other than serve is a client of a host's admin API: "
        "it finds the host with --admin ADDR, else --data DIR, else "
        "$BERTH_DATA, else ./berth-data; these and --json may come "
        "before the command as well as after it, and any option takes its "
        "value as --option VALUE or --option=VALUE. Data goes to "
        "stdout, messages to stderr. Exit status: 0 on success, 1 when "
        "the host answered with an error or could not be reached, 2 on "
        "bad usage.",
        0, 0);
    fprintf(f, "\nRun 'berth COMMAND --help' for a command's options.\n");
}

/* Find the command named by words[0] (and words[1] for ship); sets *used
 * to the words taken. NULL if none. */
static const struct cli__cmd *cli__lookup(int n, char **words, int *used)
{
    for (size_t k = 0; k < CLI__N_CMDS; k++) {
        const char *name = cli__cmds[k].name;
        const char *space = strchr(name, ' ');
        if (space == NULL && n >= 1 && strcmp(words[0], name) == 0) {
            *used = 1;
            return &cli__cmds[k];
        }
        if (space != NULL && n >= 2 &&
            strncmp(words[0], name, (size_t)(space - name)) == 0 &&
            words[0][space - name] == '\0' &&
            strcmp(words[1], space + 1) == 0) {
            *used = 2;
            return &cli__cmds[k];
        }
    }
    return NULL;
}

/* Whether word names a group of commands (ship, cluster, token). */
static bool cli__is_group(const char *word)
{
    size_t n = strlen(word);
    for (size_t k = 0; k < CLI__N_CMDS; k++) {
        if (strncmp(cli__cmds[k].name, word, n) == 0 &&
            cli__cmds[k].name[n] == ' ') {
            return true;
        }
    }
    return false;
}

/* A group without a known subcommand: list them. */
static int cli__group(const char *group, int n, char **rest)
{
    char prefix[32];
    bool help =
        n > 0 && (strcmp(rest[0], "--help") == 0 || strcmp(rest[0], "-h") == 0);
    FILE *f = help ? stdout : stderr;
    if (!help) {
        if (n == 0) {
            fprintf(f, "berth %s: needs a subcommand\n", group);
        } else {
            fprintf(f, "berth %s: unknown subcommand %s\n", group, rest[0]);
        }
    }
    fprintf(f, "usage: berth %s SUBCOMMAND [options]\n\nSubcommands:\n", group);
    snprintf(prefix, sizeof prefix, "%s ", group);
    cli__list_cmds(f, prefix);
    fprintf(f, "\nRun 'berth %s SUBCOMMAND --help' for its options.\n", group);
    return help ? 0 : 2;
}

/* Whether arg is a client option that takes a value as the next argument
 * (not as --opt=value). */
static bool cli__global_takes_value(const char *arg)
{
    return strcmp(arg, "--data") == 0 || strcmp(arg, "--admin") == 0 ||
           strcmp(arg, "--token") == 0;
}

/* Whether arg is a client option, in any of its forms. */
static bool cli__is_global(const char *arg)
{
    return cli__global_takes_value(arg) || strcmp(arg, "--json") == 0 ||
           strncmp(arg, "--data=", 7) == 0 ||
           strncmp(arg, "--admin=", 8) == 0 || strncmp(arg, "--token=", 8) == 0;
}

int main(int argc, char **argv)
{
    /* Before any JSON value exists: jansson frees what it allocated. */
    host_install_json_heap();
    /* Before OpenSSL allocates anything: it frees what it allocated. */
    http_tls_install_heap();
    /* Client options before the command, or between ship and its
     * subcommand, go after it unchanged: args starts with them, and words
     * holds the rest of the command line. */
    char **args = calloc((size_t)argc + 1, sizeof *args);
    char **words = calloc((size_t)argc + 1, sizeof *words);
    if (args == NULL || words == NULL) {
        fprintf(stderr, "berth: out of memory\n");
        free(args);
        return 1;
    }
    int n_pre = 0, n = 0;
    for (int k = 1; k < argc; k++) {
        bool leading = n == 0 || (n == 1 && cli__is_group(words[0]));
        if (leading && cli__is_global(argv[k])) {
            args[n_pre++] = argv[k];
            if (cli__global_takes_value(argv[k]) && k + 1 < argc) {
                args[n_pre++] = argv[++k];
            }
        } else {
            words[n++] = argv[k];
        }
    }
    int rv;
    if (n == 0 && n_pre > 0 && cli__global_takes_value(args[n_pre - 1]) &&
        (n_pre == 1 || !cli__global_takes_value(args[n_pre - 2]))) {
        /* "berth --data": the option's value is missing, not the
         * command. */
        rv = cli__usage(NULL, "%s needs a value", args[n_pre - 1]);
    } else if (n == 0) {
        cli__usage_all(stderr);
        rv = 2;
    } else if (strcmp(words[0], "--help") == 0 || strcmp(words[0], "-h") == 0 ||
               (strcmp(words[0], "help") == 0 &&
                (n == 1 || strcmp(words[1], "--help") == 0 ||
                 strcmp(words[1], "-h") == 0 ||
                 strcmp(words[1], "help") == 0))) {
        /* help's own help is the list of commands. */
        cli__usage_all(stdout);
        rv = 0;
    } else if (strcmp(words[0], "--version") == 0) {
        printf("berth %s\n", BERTH_VERSION);
        rv = 0;
    } else {
        int k = strcmp(words[0], "help") == 0;
        bool help = k == 1;
        int used = 0;
        /* "token list" is "token ls". */
        if (n - k >= 2 && strcmp(words[k], "token") == 0 &&
            strcmp(words[k + 1], "list") == 0) {
            words[k + 1] = "ls";
        }
        const struct cli__cmd *cmd = cli__lookup(n - k, words + k, &used);
        if (cmd == NULL && cli__is_group(words[k])) {
            /* help GROUP lists its subcommands; help GROUP NOSUCH is
             * the same error as GROUP NOSUCH. */
            rv = help && n - k == 1
                     ? cli__group(words[k], 1, (char *[]){"--help"})
                     : cli__group(words[k], n - k - 1, words + k + 1);
        } else if (cmd == NULL && strncmp(words[k], "-", 1) == 0) {
            rv = cli__usage(NULL, "unknown option %s before the command",
                            words[k]);
        } else if (cmd == NULL) {
            rv = cli__usage(NULL, "unknown command %s", words[k]);
        } else if (help) {
            cli__help(cmd);
            rv = 0;
        } else {
            int n_args = n_pre;
            for (int j = k + used; j < n; j++) {
                args[n_args++] = words[j];
            }
            struct cli c = {0};
            struct cli__args *a = calloc(1, sizeof *a);
            if (a == NULL) {
                fprintf(stderr, "berth: out of memory\n");
                rv = 1;
            } else if ((rv = cli__parse(cmd, n_args, args, &c, a)) == 1) {
                rv = 0; /* the help was printed */
            } else if (rv == 0) {
                if (cmd->client) {
                    cli__endpoint(&c);
                }
                rv = cmd->run(cmd, &c, a);
            }
            free(a);
        }
    }
    free(words);
    free(args);
    return rv;
}
