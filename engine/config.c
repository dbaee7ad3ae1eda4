/* config.c — option table, parsing and validation for struct config. */
#include "config.h"
#include "protocol.h"
#include "redact.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum opt_kind { OPT_STR, OPT_INT, OPT_LONG, OPT_LISTEN, OPT_FLAG };

struct opt {
    const char *flag;      /* --listen */
    const char *env;       /* SLUICE_LISTEN */
    enum opt_kind kind;
    size_t offset;         /* into struct config */
    size_t size;           /* buffer size for OPT_STR */
    long min, max;         /* bounds for numbers */
    long def;              /* numbers: the default (config_defaults); 0: none here */
    const char *help;
};

#define STR(field) OPT_STR, offsetof(struct config, field), sizeof(((struct config *)0)->field), 0, 0, 0
#define NUM(kind, field, lo, hi, def) kind, offsetof(struct config, field), 0, lo, hi, def

static const struct opt options[] = {
    {"--listen", "SLUICE_LISTEN", OPT_LISTEN, 0, 0, 0, 0, 0, "ADDR:PORT to listen on (port 0 picks one)"},
    {"--db", "SLUICE_DB", STR(db_url), "sqlite:PATH or postgres://..."},
    {"--redis", "SLUICE_REDIS", STR(redis_url), "redis[s]://[USER[:PASSWORD]@]HOST:PORT[/DB]"},
    {"--redis-ca", "SLUICE_REDIS_CA", STR(redis_ca),
     "CA file to verify Redis over TLS (default: system store)"},
    {"--redis-cert", "SLUICE_REDIS_CERT", STR(redis_cert), "client certificate for Redis (mutual TLS)"},
    {"--redis-key", "SLUICE_REDIS_KEY", STR(redis_key), "key of the client certificate"},
    {"--take-over-prefix", "SLUICE_TAKE_OVER_PREFIX", OPT_FLAG, offsetof(struct config, take_over_prefix), 0, 0, 1, 0,
     "claim the Redis prefix from another store"},
    {"--prefix", "SLUICE_PREFIX", STR(prefix), "Redis key/channel prefix"},
    {"--env", "SLUICE_ENV", STR(env), "environment name (flags are per environment)"},
    {"--policies", "SLUICE_POLICIES", STR(policies_dir), "policy directory"},
    {"--scripts", "SLUICE_SCRIPTS", STR(scripts_dir), "endpoint handler directory"},
    {"--ui", "SLUICE_UI", STR(ui_dir), "admin UI directory"},
    {"--threads", "SLUICE_THREADS", NUM(OPT_INT, threads, 1, 256, 0), "HTTP threads"},
    {"--max-body", "SLUICE_MAX_BODY", NUM(OPT_LONG, max_body, 1024, 64L << 20, 65536),
     "request body cap, bytes"},
    {"--max-connections", "SLUICE_MAX_CONNECTIONS", NUM(OPT_INT, conn_limit, 1, 100000, 1024),
     "open connections in all"},
    {"--max-per-ip", "SLUICE_MAX_PER_IP", NUM(OPT_INT, per_ip_limit, 1, 100000, 256),
     "open connections per client address"},
    {"--conn-timeout", "SLUICE_CONN_TIMEOUT", NUM(OPT_INT, conn_timeout_s, 1, 3600, 30),
     "idle connection timeout, seconds"},
    {"--header-timeout", "SLUICE_HEADER_TIMEOUT", NUM(OPT_INT, header_timeout_s, 1, 600, 10),
     "a request head must be complete within this many seconds"},
    {"--lua-mem", "SLUICE_LUA_MEM", NUM(OPT_LONG, lua_mem, 1L << 20, 1L << 30, 32L << 20),
     "memory cap per Lua state, bytes"},
    {"--lua-budget", "SLUICE_LUA_BUDGET", NUM(OPT_LONG, lua_budget, 10000, 1000000000L, 5000000),
     "Lua instructions per call"},
    {"--busy-timeout", "SLUICE_BUSY_TIMEOUT", NUM(OPT_INT, busy_timeout_ms, 0, 600000, 5000),
     "SQLite busy timeout, ms"},
    /* A change waits this long for a lock another replica holds, then
     * answers 503 store_busy; a replica frozen in a transaction loses its
     * session (and its locks) after the idle timeout. */
    {"--pg-lock-timeout-ms", "SLUICE_PG_LOCK_TIMEOUT_MS", NUM(OPT_INT, pg_lock_timeout_ms, 0, 3600000, 2000),
     "PostgreSQL lock_timeout, ms (0: the server's)"},
    {"--pg-statement-timeout-ms", "SLUICE_PG_STATEMENT_TIMEOUT_MS",
     NUM(OPT_INT, pg_statement_timeout_ms, 0, 3600000, 5000), "PostgreSQL statement_timeout, ms (0: the server's)"},
    {"--pg-idle-tx-timeout-ms", "SLUICE_PG_IDLE_TX_TIMEOUT_MS", NUM(OPT_INT, pg_idle_tx_timeout_ms, 0, 3600000, 10000),
     "PostgreSQL idle_in_transaction_session_timeout, ms (0: the server's)"},
    {"--reload-ms", "SLUICE_RELOAD_MS", NUM(OPT_INT, reload_ms, 50, 60000, 500),
     "policy change check interval, ms"},
    {"--max-streams", "SLUICE_MAX_STREAMS", NUM(OPT_INT, max_streams, 1, 10000, 64),
     "live event streams at once"},
    {"--max-streams-per-token", "SLUICE_MAX_STREAMS_PER_TOKEN", NUM(OPT_INT, max_streams_per_token, 1, 10000, 8),
     "live event streams one token may hold"},
    /* One write a second per token, after a burst that covers any person or
     * CI job: a token can add at most about 3600 audit entries an hour. */
    {"--write-rate", "SLUICE_WRITE_RATE", NUM(OPT_INT, write_rate, 0, 60000, 60),
     "writes a minute per token, per replica (0: no limit)"},
    {"--write-burst", "SLUICE_WRITE_BURST", NUM(OPT_INT, write_burst, 1, 60000, 60),
     "writes one token may make at once"},
    {"--max-sessions-per-token", "SLUICE_MAX_SESSIONS_PER_TOKEN", NUM(OPT_INT, max_sessions_per_token, 1, 10000, 20),
     "browser sessions per token (one more ends the oldest)"},
    {"--session-sweep-s", "SLUICE_SESSION_SWEEP_S", NUM(OPT_INT, session_sweep_s, 1, 3600, 600),
     "expired sessions are deleted this often, seconds"},
    {"--leader-lease-ms", "SLUICE_LEADER_LEASE_MS", NUM(OPT_INT, leader_lease_ms, 2000, 600000, 4000),
     "PostgreSQL: leader lease, ms (a silent leader is replaced after it)"},
    {"--log-level", "SLUICE_LOG_LEVEL", STR(log_level), "debug|info|warn|error"},
};
#define N_OPTIONS (sizeof options / sizeof options[0])

static int config_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The directory that holds the running sluiced, resolved through symlinks
 * (/proc/self/exe), into out. Returns 0, or -1 when it cannot be known. */
static int config_exe_dir(char *out, size_t outlen) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL || (size_t)(slash - exe) >= outlen) return -1;
    *slash = '\0';
    snprintf(out, outlen, "%s", exe[0] ? exe : "/");
    return 0;
}

/* Default for a resource directory that no flag or variable names, so that
 * `sluiced serve` works from any directory: first the installed layout
 * (PREFIX/bin/sluiced finds PREFIX/<installed>), then a source tree
 * (build/sluiced finds <source> in the repository), else <source> in the
 * current directory, as before. */
static void config_find_dir(char *out, size_t outlen, const char *installed, const char *source) {
    char bin[PATH_MAX], path[PATH_MAX + 64];
    if (config_exe_dir(bin, sizeof bin) == 0) {
        /* PREFIX=/usr keeps configuration in /etc, not /usr/etc. */
        int usr = strcmp(bin, "/usr/bin") == 0 && strncmp(installed, "etc/", 4) == 0;
        if (usr) snprintf(path, sizeof path, "/%s", installed);
        else snprintf(path, sizeof path, "%s/../%s", bin, installed);
        if (config_is_dir(path) && realpath(path, bin) != NULL && strlen(bin) < outlen) {
            strcpy(out, bin);
            return;
        }
        snprintf(path, sizeof path, "%s/../%s", bin, source);
        if (config_is_dir(path) && realpath(path, bin) != NULL && strlen(bin) < outlen) {
            strcpy(out, bin);
            return;
        }
    }
    snprintf(out, outlen, "./%s", source);
}

static void config_defaults(struct config *c) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    memset(c, 0, sizeof *c);
    strcpy(c->listen_host, "127.0.0.1");
    c->listen_port = 8080;
    strcpy(c->db_url, "sqlite:sluice.db");
    strcpy(c->redis_url, PROTOCOL_DEFAULT_REDIS_URL);
    strcpy(c->prefix, PROTOCOL_DEFAULT_PREFIX);
    strcpy(c->env, "local");
    config_find_dir(c->policies_dir, sizeof c->policies_dir, "etc/sluice/policies", "policies");
    config_find_dir(c->scripts_dir, sizeof c->scripts_dir, "share/sluice/scripts", "scripts");
    config_find_dir(c->ui_dir, sizeof c->ui_dir, "share/sluice/ui", "ui");
    c->threads = cores < 1 ? 1 : cores > 64 ? 64 : (int)cores;
    /* The numbers: each option's DEF() in the table above. */
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct opt *o = &options[i];
        if (o->kind == OPT_INT && o->def) *(int *)((char *)c + o->offset) = (int)o->def;
        if (o->kind == OPT_LONG && o->def) *(long *)((char *)c + o->offset) = o->def;
    }
    strcpy(c->log_level, "info");
}

static int parse_listen(struct config *c, const char *v, char *err, size_t errlen) {
    const char *colon = strrchr(v, ':');
    char *end;
    if (colon == NULL || colon == v || (size_t)(colon - v) >= sizeof c->listen_host) {
        snprintf(err, errlen, "--listen: expected ADDR:PORT, got '%s'", v);
        return -1;
    }
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || *end || colon[1] < '0' || colon[1] > '9' || port < 0 || port > 65535) {
        snprintf(err, errlen, "--listen: invalid port in '%s'", v);
        return -1;
    }
    memcpy(c->listen_host, v, (size_t)(colon - v));
    c->listen_host[colon - v] = '\0';
    c->listen_port = (int)port;
    return 0;
}

static int set_option(struct config *c, const struct opt *o, const char *v,
                      const char *source, char *err, size_t errlen) {
    char *field = (char *)c + o->offset;
    char *end;
    long n;

    switch (o->kind) {
    case OPT_LISTEN:
        return parse_listen(c, v, err, errlen);
    case OPT_FLAG:
        if (strcmp(v, "1") != 0 && strcmp(v, "0") != 0) {
            snprintf(err, errlen, "%s: expected 1 or 0, got '%s'", source, v);
            return -1;
        }
        *(int *)field = v[0] == '1';
        return 0;
    case OPT_STR:
        if (strlen(v) >= o->size || v[0] == '\0') {
            snprintf(err, errlen, "%s: value empty or longer than %zu bytes", source, o->size - 1);
            return -1;
        }
        strcpy(field, v);
        return 0;
    case OPT_INT:
    case OPT_LONG:
        errno = 0;
        n = strtol(v, &end, 10);
        if (errno || *end || (*v != '-' && (*v < '0' || *v > '9')) || n < o->min || n > o->max) {
            snprintf(err, errlen, "%s: expected an integer in %ld..%ld, got '%s'", source,
                     o->min, o->max, v);
            return -1;
        }
        if (o->kind == OPT_INT) *(int *)field = (int)n;
        else *(long *)field = n;
        return 0;
    }
    return -1;
}

static int config_validate(const struct config *c, char *err, size_t errlen) {
    if (!protocol_valid_name(c->prefix)) {
        snprintf(err, errlen, "--prefix: '%s' is not a valid name ([A-Za-z0-9_.:-], 1..64)", c->prefix);
        return -1;
    }
    if (!protocol_valid_name(c->env)) {
        snprintf(err, errlen, "--env: '%s' is not a valid name ([A-Za-z0-9_.:-], 1..64)", c->env);
        return -1;
    }
    char shown[CONFIG_STR_MAX];
    int readable = redact_url(c->db_url, shown, sizeof shown) == 0;
    if (strncmp(c->db_url, "sqlite:", 7) != 0 && strncmp(c->db_url, "postgres://", 11) != 0 &&
        strncmp(c->db_url, "postgresql://", 13) != 0) {
        snprintf(err, errlen, "--db: expected sqlite:PATH or postgres://..., got '%s'", shown);
        return -1;
    }
    if (!readable) {
        snprintf(err, errlen, "--db: cannot read '%s' (in a password write @ / ? # as %%40 %%2F %%3F %%23)", shown);
        return -1;
    }
    if (strcmp(c->log_level, "debug") && strcmp(c->log_level, "info") &&
        strcmp(c->log_level, "warn") && strcmp(c->log_level, "error")) {
        snprintf(err, errlen, "--log-level: expected debug|info|warn|error, got '%s'", c->log_level);
        return -1;
    }
    return 0;
}

/* The Redis URL with the TLS files and the environment's password, parsed
 * once for every thread that connects. Messages never show a password. */
static int config_redis(struct config *c, char *err, size_t errlen) {
    char password[RCONN_SECRET_MAX], why[256];
    if (rconn_password_from_env(password, sizeof password, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    struct rconn_secrets s = {password, c->redis_ca, c->redis_cert, c->redis_key};
    int rc = rconn_target_parse(c->redis_url, &s, &c->redis, why, sizeof why);
    memset(password, 0, sizeof password);
    if (rc != 0) {
        snprintf(err, errlen, "--redis: %s", why);
        return -1;
    }
    return 0;
}

int config_load(struct config *c, int argc, char **argv, char *err, size_t errlen) {
    config_defaults(c);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const char *v = getenv(options[i].env);
        if (v && set_option(c, &options[i], v, options[i].env, err, errlen) != 0) return -1;
    }
    for (int a = 0; a < argc; a++) {
        const char *arg = argv[a], *eq = strchr(arg, '=');
        size_t flen = eq ? (size_t)(eq - arg) : strlen(arg);
        const struct opt *o = NULL;
        for (size_t i = 0; i < N_OPTIONS; i++)
            if (strlen(options[i].flag) == flen && strncmp(options[i].flag, arg, flen) == 0)
                o = &options[i];
        if (o == NULL) {
            /* Name the option, never its value nor a URL given without --db. */
            char shown[CONFIG_STR_MAX];
            if (eq || !strchr(arg, '@')) snprintf(shown, sizeof shown, "%.*s", (int)flen, arg);
            else redact_url(arg, shown, sizeof shown);
            snprintf(err, errlen, "unknown option '%s' (see --help)", shown);
            return -1;
        }
        if (o->kind == OPT_FLAG) {          /* a switch: --take-over-prefix */
            if (eq) {
                snprintf(err, errlen, "%s takes no value", o->flag);
                return -1;
            }
            *(int *)((char *)c + o->offset) = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : (a + 1 < argc ? argv[++a] : NULL);
        if (v == NULL) {
            snprintf(err, errlen, "%s needs a value", o->flag);
            return -1;
        }
        if (set_option(c, o, v, o->flag, err, errlen) != 0) return -1;
    }
    if (config_validate(c, err, errlen) != 0) return -1;
    return config_redis(c, err, errlen);
}

void config_usage(void) {
    printf("options (each also read from its environment variable):\n");
    for (size_t i = 0; i < N_OPTIONS; i++)
        printf("  %-26s %-31s %s\n", options[i].flag, options[i].env, options[i].help);
}
