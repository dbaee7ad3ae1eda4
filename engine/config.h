/* config.h — sluiced's settings: command-line flags and SLUICE_* environment
 * variables folded into one validated struct.
 *
 * Precedence: built-in default < environment variable < flag. Every value is
 * validated here, so the rest of the engine can trust the struct. */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stddef.h>

#include "rconn.h"

#define CONFIG_STR_MAX 1024

struct config {
    char listen_host[64];
    int listen_port;                 /* 0: the kernel picks one (logged) */
    char db_url[CONFIG_STR_MAX];     /* sqlite:PATH or postgres://... */
    char redis_url[CONFIG_STR_MAX];  /* as given; shown only through util_redact_url */
    char redis_ca[CONFIG_STR_MAX];   /* "" : the system store */
    char redis_cert[CONFIG_STR_MAX], redis_key[CONFIG_STR_MAX];
    struct rconn_target redis;       /* redis_url parsed, with the TLS files and
                                        SLUICE_REDIS_PASSWORD(_FILE) */
    int take_over_prefix;            /* claim <prefix>:owner from another store */
    int leader_lease_ms;             /* PostgreSQL: a silent leader is replaced after this */
    char prefix[65];                 /* Redis key/channel prefix */
    char env[65];                    /* environment name; flags are per env */
    char policies_dir[CONFIG_STR_MAX];
    char scripts_dir[CONFIG_STR_MAX];
    char ui_dir[CONFIG_STR_MAX];
    int threads;                     /* HTTP threads, each with a Lua state */
    long max_body;                   /* request body cap in bytes */
    int conn_limit;                  /* open connections in all */
    int per_ip_limit;                /* open connections per client address */
    int conn_timeout_s;              /* idle connection timeout */
    int header_timeout_s;            /* a request head must be complete within it */
    long lua_mem;                    /* memory cap per Lua state, bytes */
    long lua_budget;                 /* VM instructions per call */
    int busy_timeout_ms;             /* SQLite busy_timeout */
    int pg_lock_timeout_ms;          /* PostgreSQL session settings; 0: the server's */
    int pg_statement_timeout_ms;
    int pg_idle_tx_timeout_ms;       /* idle_in_transaction_session_timeout */
    int reload_ms;                   /* policy directory check interval */
    int max_streams;                 /* live event (SSE) streams at once */
    int max_streams_per_token;       /* of those, for one token (sessions count as their token) */
    int write_rate;                  /* writes a minute per token; 0: no limit */
    int write_burst;                 /* of those, at once */
    int max_sessions_per_token;      /* one more ends the token's oldest session */
    int session_sweep_s;             /* expired sessions are deleted this often */
    char log_level[8];               /* debug|info|warn|error */
};

/* Fill c with defaults, then the environment, then argv[0..argc). Unknown or
 * invalid options fail. Returns 0, or -1 with a one-line message in err. */
int config_load(struct config *c, int argc, char **argv, char *err, size_t errlen);

/* Print the option table (for --help) to stdout. */
void config_usage(void);

#endif
