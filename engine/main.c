/* main.c — sluiced: argument parsing, subcommands, start-up order, signal
 * handling and clean shutdown.
 *
 *   sluiced [serve] [options]        the engine (default)
 *   sluiced migrate [options]        apply database migrations
 *   sluiced token create|list|revoke manage API tokens
 *   sluiced audit export|prune       the audit log as JSON lines; retention
 *   sluiced policy check DIR         load policies offline, report errors
 *
 * Start-up order: config → store (+ migrations) → policies → scripts →
 * HTTP. Shutdown runs it backwards, after SIGINT or SIGTERM. */
#include "app.h"
#include "protocol.h"
#include "alerts.h"
#include "telemetry.h"
#include "leader.h"
#include "health.h"
#include "history.h"
#include "fleet.h"
#include "events.h"
#include "metrics.h"
#include "notify.h"
#include "autoscale.h"
#include "bus.h"
#include "audit.h"
#include "bind.h"
#include "auth.h"
#include "config.h"
#include "deferred.h"
#include "http.h"
#include "log.h"
#include "policy.h"
#include "redact.h"
#include "script.h"
#include "store.h"
#include "ticker.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef SLUICE_VERSION           /* the Makefile passes VERSION */
#define SLUICE_VERSION "0.0.0-dev"
#endif

static void usage(void) {
    printf("sluiced %s — run-time scaling control plane for queue workers\n\n"
           "usage:\n"
           "  sluiced [serve] [options]\n"
           "  sluiced migrate [options]\n"
           "  sluiced token create --name NAME --scopes a,b [--queues q,prefix*] [--expires-in 30d] [options]\n"
           "  sluiced token list [options]\n"
           "  sluiced token revoke ID [options]\n"
           "  sluiced audit export [--before ID | --before-time RFC3339] [options]\n"
           "  sluiced audit prune (--before ID | --before-time RFC3339) --reason R [--actor NAME] [options]\n"
           "  sluiced policy check DIR\n\n",
           SLUICE_VERSION);
    config_usage();
}

static struct sandbox_limits limits_of(const struct config *cfg) {
    struct sandbox_limits l = {(size_t)cfg->lua_mem, cfg->lua_budget};
    return l;
}

/* Open the store named by cfg and bring its schema up to date. */
static store *open_store(const struct config *cfg, int migrate) {
    char err[512];
    struct store_options opt = {cfg->busy_timeout_ms, cfg->threads + 4};
    store *st = store_open(cfg->db_url, &opt, err, sizeof err);
    int applied = 0;
    if (st == NULL) {
        fprintf(stderr, "sluiced: %s\n", err);
        return NULL;
    }
    /* One HTTP thread always stays out of writes, so /healthz and reads
     * answer while changes wait on a lock. */
    struct store_limits lim = {
        .max_writers = cfg->threads > 1 ? cfg->threads - 1 : 1,
        .pg_lock_timeout_ms = cfg->pg_lock_timeout_ms,
        .pg_statement_timeout_ms = cfg->pg_statement_timeout_ms,
        .pg_idle_tx_timeout_ms = cfg->pg_idle_tx_timeout_ms,
        .writes_per_min = cfg->write_rate,
        .write_burst = cfg->write_burst,
        .sessions_per_token = cfg->max_sessions_per_token,
    };
    store_set_limits(st, &lim);
    char shown[CONFIG_STR_MAX];
    redact_url(cfg->db_url, shown, sizeof shown);   /* never a password in logs */
    if (migrate && store_migrate(st, &applied) != STORE_OK) {
        fprintf(stderr, "sluiced: migrations failed on %s (see the log above)\n", shown);
        store_close(st);
        return NULL;
    }
    if (!migrate && store_schema_current(st) != 1) {
        fprintf(stderr, "sluiced: the database %s is not migrated; run: sluiced migrate --db %s\n",
                shown, shown);
        store_close(st);
        return NULL;
    }
    return st;
}

static int load_config(struct config *cfg, int argc, char **argv) {
    char err[512];
    if (config_load(cfg, argc, argv, err, sizeof err) != 0) {
        fprintf(stderr, "sluiced: %s\n", err);
        return -1;
    }
    log_set_level(!strcmp(cfg->log_level, "debug")  ? LOG_DEBUG
                  : !strcmp(cfg->log_level, "warn")  ? LOG_WARN
                  : !strcmp(cfg->log_level, "error") ? LOG_ERROR
                                                     : LOG_INFO);
    return 0;
}

static int cmd_migrate(int argc, char **argv) {
    struct config cfg;
    if (load_config(&cfg, argc, argv) != 0) return 2;
    store *st = open_store(&cfg, 1);
    if (st == NULL) return 1;
    char shown[CONFIG_STR_MAX];
    redact_url(cfg.db_url, shown, sizeof shown);
    printf("database %s is up to date\n", shown);
    store_close(st);
    return 0;
}

/* Take "--name X"-style options of a subcommand out of argv; the rest stays
 * for config_load. Returns the value or NULL. */
static const char *take_opt(int *argc, char **argv, const char *flag) {
    for (int i = 0; i < *argc; i++) {
        if (strcmp(argv[i], flag) != 0 || i + 1 >= *argc) continue;
        const char *v = argv[i + 1];
        memmove(&argv[i], &argv[i + 2], (size_t)(*argc - i - 2) * sizeof *argv);
        *argc -= 2;
        return v;
    }
    return NULL;
}

static int cmd_token(int argc, char **argv) {
    struct config cfg;
    char err[256], token[AUTH_TOKEN_MAX], id[STORE_ID_MAX], ts[UTIL_TIME_MAX];
    const char *verb = argc > 0 ? argv[0] : "";
    int rc = 1;
    store *st = NULL;

    argc--, argv++;
    if (!strcmp(verb, "create")) {
        const char *name = take_opt(&argc, argv, "--name");
        const char *scopes_csv = take_opt(&argc, argv, "--scopes");
        const char *expires = take_opt(&argc, argv, "--expires-in");
        const char *queues_csv = take_opt(&argc, argv, "--queues");
        char queues[AUTH_QUEUES_MAX] = "";
        unsigned scopes;
        int64_t expires_s = 0;
        if (name == NULL || !protocol_valid_name(name)) {
            fprintf(stderr, "sluiced token create: --name NAME is required (1..64 of A-Z a-z 0-9 _ . : -)\n");
            return 2;
        }
        if (scopes_csv == NULL) {
            auth_format_scopes(AUTH_SCOPE_ALL, err, sizeof err);
            fprintf(stderr, "sluiced token create: --scopes: required (%s)\n", err);
            return 2;
        }
        if (auth_parse_scopes(scopes_csv, &scopes, err, sizeof err) != 0) {
            fprintf(stderr, "sluiced token create: --scopes: %s\n", err);
            return 2;
        }
        /* Without --queues the token sees every queue. */
        if (queues_csv && auth_parse_queues(queues_csv, queues, sizeof queues, err, sizeof err) != 0) {
            fprintf(stderr, "sluiced token create: --queues: %s\n", err);
            return 2;
        }
        if (expires && util_parse_duration(expires, &expires_s) != 0) {
            fprintf(stderr, "sluiced token create: --expires-in: expected 30d, 12h, 90m or 45s\n");
            return 2;
        }
        if (load_config(&cfg, argc, argv) != 0) return 2;
        if ((st = open_store(&cfg, 1)) == NULL) return 1;
        if (auth_token_create_for(st, name, scopes, queues, expires_s, util_now_ms(), token, id) != STORE_OK) {
            fprintf(stderr, "sluiced token create: could not store the token\n");
            goto done;
        }
        printf("%s\n", token);
        fprintf(stderr, "token %s created for '%s'; it is shown only once\n", id, name);
        rc = 0;
    } else if (!strcmp(verb, "list")) {
        struct store_token *rows = NULL;
        size_t n = 0;
        if (load_config(&cfg, argc, argv) != 0) return 2;
        if ((st = open_store(&cfg, 1)) == NULL) return 1;
        if (store_list_tokens(st, &rows, &n) != STORE_OK) goto done;
        printf("%-14s %-24s %-34s %-26s %-8s %s\n", "ID", "NAME", "SCOPES", "EXPIRES", "STATE", "QUEUES");
        for (size_t i = 0; i < n; i++) {
            int64_t now = util_now_ms();
            const char *state = rows[i].revoked_ms ? "revoked"
                                : rows[i].expires_ms && rows[i].expires_ms <= now ? "expired"
                                                                                  : "active";
            printf("%-14s %-24s %-34s %-26s %-8s %s\n", rows[i].id, rows[i].name, rows[i].scopes,
                   rows[i].expires_ms ? util_format_time(rows[i].expires_ms, ts) : "never", state,
                   rows[i].queues[0] ? rows[i].queues : "*");
        }
        free(rows);
        rc = 0;
    } else if (!strcmp(verb, "revoke")) {
        if (argc < 1 || argv[0][0] == '-') {
            fprintf(stderr, "sluiced token revoke: expected a token ID (see sluiced token list)\n");
            return 2;
        }
        const char *tid = argv[0];
        if (load_config(&cfg, argc - 1, argv + 1) != 0) return 2;
        if ((st = open_store(&cfg, 1)) == NULL) return 1;
        int r = store_revoke_token(st, tid, util_now_ms());
        if (r == STORE_NOT_FOUND) fprintf(stderr, "sluiced token revoke: no token %s\n", tid);
        else if (r != STORE_OK) fprintf(stderr, "sluiced token revoke: the store failed\n");
        else printf("token %s revoked\n", tid), rc = 0;
    } else {
        fprintf(stderr, "sluiced token: expected create, list or revoke\n");
        return 2;
    }
done:
    store_close(st);
    return rc;
}

/* The id bound of --before ID or --before-time T (one of them, or neither
 * when optional): *before_id, or *before_at_ms with *before_id 0. Returns 0,
 * or -1 after saying what is wrong (usage: exit 2). */
static int audit_bound(const char *what, const char *id, const char *at, int required,
                       int64_t *before_id, int64_t *before_at_ms) {
    char *end;
    *before_id = 0;
    *before_at_ms = 0;
    if (id && at) {
        fprintf(stderr, "sluiced audit %s: give --before or --before-time, not both\n", what);
        return -1;
    }
    if (id) {
        errno = 0;
        long long v = strtoll(id, &end, 10);
        if (errno || *end || id[0] < '0' || id[0] > '9' || v < 1) {
            fprintf(stderr, "sluiced audit %s: --before: '%s' is not an audit id (a whole number, 1 or more)\n",
                    what, id);
            return -1;
        }
        *before_id = v;
    } else if (at) {
        if (audit_parse_time(at, before_at_ms) != 0) {
            fprintf(stderr, "sluiced audit %s: --before-time: '%s' is not an RFC 3339 time"
                            " (2026-01-31T00:00:00Z)\n", what, at);
            return -1;
        }
    } else if (required) {
        fprintf(stderr, "sluiced audit %s: --before ID or --before-time RFC3339 is required\n", what);
        return -1;
    }
    return 0;
}

/* A prune's reason: as the API's, 1 to 500 characters of UTF-8, not blank. */
static int audit_reason_ok(const char *r) {
    size_t chars = 0, blank = 1;
    if (r == NULL || !util_valid_utf8(r, strlen(r))) return 0;
    for (const char *p = r; *p; p++) {
        if (((unsigned char)*p & 0xC0) != 0x80) chars++;
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') blank = 0;
    }
    return chars >= 1 && chars <= 500 && !blank;
}

static int cmd_audit_export(int argc, char **argv) {
    struct config cfg;
    int64_t before_id, before_at, count = 0;
    const char *id = take_opt(&argc, argv, "--before"), *at = take_opt(&argc, argv, "--before-time");
    if (audit_bound("export", id, at, 0, &before_id, &before_at) != 0) return 2;
    if (load_config(&cfg, argc, argv) != 0) return 2;
    store *st = open_store(&cfg, 1);
    if (st == NULL) return 1;
    int rc = at ? store_audit_bound_at(st, before_at, &before_id) : STORE_OK;
    if (rc == STORE_OK) rc = audit_export(st, before_id, stdout, &count);
    store_close(st);
    if (rc != STORE_OK) {
        fprintf(stderr, "sluiced audit export: %s after %lld entries\n",
                ferror(stdout) ? strerror(errno) : "the store failed", (long long)count);
        return 1;
    }
    fprintf(stderr, "exported %lld audit entries\n", (long long)count);
    return 0;
}

static int cmd_audit_prune(int argc, char **argv) {
    struct config cfg;
    struct store_prune_result res;
    char ts[UTIL_TIME_MAX];
    int64_t before_id, before_at;
    const char *id = take_opt(&argc, argv, "--before"), *at = take_opt(&argc, argv, "--before-time");
    const char *reason = take_opt(&argc, argv, "--reason"), *actor = take_opt(&argc, argv, "--actor");
    if (audit_bound("prune", id, at, 1, &before_id, &before_at) != 0) return 2;
    if (!audit_reason_ok(reason)) {
        fprintf(stderr, "sluiced audit prune: --reason R is required (1 to 500 characters; it goes into"
                        " the audit log)\n");
        return 2;
    }
    if (actor == NULL) {                      /* who ran it: the login name, when it is a name */
        const char *user = getenv("USER");
        actor = user && protocol_valid_name(user) ? user : "sluiced";
    }
    if (!protocol_valid_name(actor)) {
        fprintf(stderr, "sluiced audit prune: --actor: a name is required (1..64 of A-Z a-z 0-9 _ . : -)\n");
        return 2;
    }
    if (load_config(&cfg, argc, argv) != 0) return 2;
    store *st = open_store(&cfg, 1);
    if (st == NULL) return 1;
    int rc = audit_prune(st, before_id, before_at, actor, reason, &res);
    store_close(st);
    if (rc != STORE_OK) {
        fprintf(stderr, "sluiced audit prune: the store failed; nothing was deleted\n");
        return 1;
    }
    if (res.refused) {
        fprintf(stderr, "sluiced audit prune: refused: entry times up to %s are below id %lld, and entries"
                        " of the last 24 hours are kept (cooldowns and budgets are judged from them);"
                        " nothing was deleted\n", util_format_time(res.youngest_ms, ts),
                (long long)res.before_id);
        return 1;
    }
    printf("pruned %lld audit entries below id %lld; audit entry %lld records it\n",
           (long long)res.deleted, (long long)res.before_id, (long long)res.entry.id);
    return 0;
}

static int cmd_audit(int argc, char **argv) {
    const char *verb = argc > 0 ? argv[0] : "";
    if (!strcmp(verb, "export")) return cmd_audit_export(argc - 1, argv + 1);
    if (!strcmp(verb, "prune")) return cmd_audit_prune(argc - 1, argv + 1);
    fprintf(stderr, "sluiced audit: expected export or prune\n");
    return 2;
}

static int cmd_policy(int argc, char **argv) {
    struct config cfg;
    struct policy_error err;
    if (argc < 2 || strcmp(argv[0], "check") != 0) {
        fprintf(stderr, "usage: sluiced policy check DIR\n");
        return 2;
    }
    if (load_config(&cfg, argc - 2, argv + 2) != 0) return 2;
    struct sandbox_limits lim = limits_of(&cfg);
    if (policy_check_dir(argv[1], &lim, &err) != 0) {
        if (err.line > 0) printf("%s:%d: %s\n", err.file, err.line, err.message);
        else printf("%s: %s\n", err.file, err.message);
        return 1;
    }
    printf("%s: ok\n", argv[1]);
    return 0;
}

/* Wait for SIGINT/SIGTERM, running the ticker between signals. */
static void serve_loop(struct app *app, const sigset_t *stop) {
    struct timespec step = {0, TICKER_STEP_MS * 1000000L};
    struct ticker ticker = {0};
    for (;;) {
        int sig = sigtimedwait(stop, NULL, &step);
        if (sig == SIGINT || sig == SIGTERM) {
            log_json(LOG_INFO, "stopping", json_pack("{s:s}", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM"));
            return;
        }
        ticker_run(&ticker, app, util_mono_ms());
    }
}

/* The fleet's issuer: the newest version of queue the store holds, so that
 * a replica recognises versions another replica issued. */
static int64_t main_issued_version(void *ud, const char *queue) {
    struct store_target t;
    int rc = store_get_target(ud, queue, &t);
    return rc == STORE_OK ? t.version : rc == STORE_NOT_FOUND ? 0 : -1;
}

/* The fleet keeps totals only for queues the policies declare. */
static int main_declared(void *ud, const char *queue) {
    struct policy_bounds b;
    return policy_bounds(ud, queue, &b) == 0;
}

static int cmd_serve(int argc, char **argv) {
    struct config cfg;
    struct app app;
    char err[512];
    sigset_t stop;
    int rc = 1;
    script_host *scripts = NULL;
    http_server *http = NULL;

    memset(&app, 0, sizeof app);
    if (load_config(&cfg, argc, argv) != 0) return 2;
    /* Block the stop signals before any thread starts, so only serve_loop sees them. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
#ifdef M_ARENA_MAX
    /* glibc gives every thread that allocates its own arena and keeps what
     * they freed: with a dozen threads building large snapshots that is
     * tens of MiB held for nothing. Two arenas are enough here. */
    mallopt(M_ARENA_MAX, 2);
#endif

    struct sandbox_limits lim = limits_of(&cfg);
    app.cfg = &cfg;
    app.started_ms = util_now_ms();
    if ((app.st = open_store(&cfg, 1)) == NULL) goto done;
    if (store_claim(app.st, err, sizeof err) != STORE_OK) {
        fprintf(stderr, "sluiced: %s\n", err);
        goto done;
    }
    if ((app.pol = policy_new(cfg.policies_dir, &lim)) == NULL) goto done;
    if (policy_reload(app.pol, 1) != 1) {
        fprintf(stderr, "sluiced: the policies in %s do not load (see the log above); fix them or "
                        "check with: sluiced policy check %s\n", cfg.policies_dir, cfg.policies_dir);
        goto done;
    }
    if ((app.fl = fleet_new()) == NULL || (app.alerts = alerts_new()) == NULL ||
        (app.health = health_new()) == NULL || (app.history = history_new()) == NULL ||
        (app.metrics = metrics_new()) == NULL || (app.events = events_new(cfg.max_streams, cfg.max_streams_per_token)) == NULL)
        goto done;
    /* Streams of tokens limited to queues get snapshots of those only. */
    events_set_scope(app.events, health_scope_text);
    fleet_set_issuer(app.fl, main_issued_version, app.st);
    fleet_set_declared(app.fl, main_declared, app.pol);
    /* The store's identity decides who may write the Redis prefix; checked
     * before anything is written there (bus_preflight only reads). */
    char owner[STORE_IDENTITY_MAX + 1];
    if (store_identity(app.st, owner) != STORE_OK) {
        fprintf(stderr, "sluiced: cannot read the store's identity (run: sluiced migrate)\n");
        goto done;
    }
    struct bus_options bopt = {&cfg.redis, cfg.prefix, owner, cfg.take_over_prefix,
                               app.st, app.pol, app.fl, app.leader};
    if (bus_preflight(&bopt, err, sizeof err) != 0) {
        fprintf(stderr, "sluiced: %s\n", err);
        rc = 2;
        goto done;
    }
    if ((app.telemetry = telemetry_new(&cfg.redis, cfg.prefix, err, sizeof err)) == NULL) {
        fprintf(stderr, "sluiced: %s\n", err);
        goto done;
    }
    if ((app.leader = leader_start(cfg.db_url, cfg.leader_lease_ms, err, sizeof err)) == NULL) {
        fprintf(stderr, "sluiced: %s\n", err);
        goto done;
    }
    if ((app.bus = bus_start(&bopt, err, sizeof err)) == NULL) {
        fprintf(stderr, "sluiced: %s\n", err);
        goto done;
    }
    if ((app.notify = notify_start(&app, err, sizeof err)) == NULL) {
        fprintf(stderr, "sluiced: %s\n", err);
        goto done;
    }
    if ((app.autoscale = autoscale_start(&app, err, sizeof err)) == NULL) {
        fprintf(stderr, "sluiced: %s\n", err);
        goto done;
    }
    if ((scripts = script_host_new(cfg.scripts_dir, &lim, &app, bind_open_sluice, err, sizeof err)) == NULL) {
        fprintf(stderr, "sluiced: %s\n", err);
        goto done;
    }
    struct http_options hopt = {
        .host = cfg.listen_host, .port = cfg.listen_port, .threads = cfg.threads,
        .max_body = (size_t)cfg.max_body, .conn_limit = cfg.conn_limit,
        .per_ip_limit = cfg.per_ip_limit, .conn_timeout_s = cfg.conn_timeout_s,
        .header_timeout_s = cfg.header_timeout_s,
        .ui_dir = cfg.ui_dir, .handler = script_handle, .handler_ud = scripts,
        .observe = metrics_observe_request, .observe_ud = app.metrics,
    };
    telemetry_refresh(app.telemetry, app.pol);     /* depth known from the first request */
    health_release(health_rebuild(&app));       /* a model published before the first tick */
    if ((http = http_start(&hopt, err, sizeof err)) == NULL) {
        fprintf(stderr, "sluiced: %s\n", err);
        goto done;
    }
    char shown_db[CONFIG_STR_MAX];
    redact_url(cfg.db_url, shown_db, sizeof shown_db);   /* no password in logs */
    log_json(LOG_INFO, "listening",
             json_pack("{s:s, s:i, s:s, s:s, s:i, s:i, s:s, s:s, s:s, s:s}", "host",
                       cfg.listen_host, "port", http_port(http), "db", shown_db, "env", cfg.env,
                       "threads", cfg.threads, "routes", script_route_count(scripts), "version",
                       SLUICE_VERSION, "policies", cfg.policies_dir, "scripts", cfg.scripts_dir,
                       "ui", cfg.ui_dir));
    bus_open(app.bus);              /* bound and checked: now Redis may be written */
    serve_loop(&app, &stop);
    rc = 0;
done:
    /* Stop accepting, answer every held wait_ms request and end the event
     * streams, and give those answers a moment to reach their clients. */
    deferred_shutdown(http, app.events, app.fl);
    http_stop(http);
    autoscale_stop(app.autoscale);  /* its changes announce to streams and the bus */
    events_free(app.events);
    script_host_free(scripts);
    bus_stop(app.bus);              /* after HTTP: the relay drains the last commits */
    notify_stop(app.notify);        /* an attempt in flight stays pending */
    leader_stop(app.leader);        /* releases leadership at once */
    health_free(app.health);
    history_free(app.history);
    alerts_free(app.alerts);
    telemetry_free(app.telemetry);
    metrics_free(app.metrics);
    fleet_free(app.fl);
    policy_free(app.pol);
    store_close(app.st);
    return rc;
}

int main(int argc, char **argv) {
    const char *cmd = argc > 1 ? argv[1] : "serve";
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage();
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("sluiced %s\n", SLUICE_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "migrate")) return cmd_migrate(argc - 2, argv + 2);
    if (!strcmp(cmd, "token")) return cmd_token(argc - 2, argv + 2);
    if (!strcmp(cmd, "audit")) return cmd_audit(argc - 2, argv + 2);
    if (!strcmp(cmd, "policy")) return cmd_policy(argc - 2, argv + 2);
    if (!strcmp(cmd, "serve")) return cmd_serve(argc - 2, argv + 2);
    if (cmd[0] == '-') return cmd_serve(argc - 1, argv + 1);
    fprintf(stderr, "sluiced: unknown command '%s' (see sluiced --help)\n", cmd);
    return 2;
}
