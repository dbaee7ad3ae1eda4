/* rconn.h — one Redis connection over TCP or TLS, for the engine and for
 * libsluice.
 *
 * Debian 12's hiredis (0.14) has no TLS, so the transport is ours: a socket,
 * optionally wrapped by OpenSSL (the server's certificate verified against a
 * CA file or the system store, host name or IP address included; a client
 * certificate for mutual TLS), then AUTH and SELECT. hiredis only formats
 * commands and parses replies, which work on any byte stream. URLs are
 * parsed by libcurl's URL API, never by hand.
 *
 * A connection is used by one thread at a time. Replies are hiredis
 * redisReply objects the caller frees with freeReplyObject. No message this
 * module writes contains a password. */
#ifndef SLUICE_RCONN_H
#define SLUICE_RCONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#define RCONN_HOST_MAX 256
#define RCONN_SECRET_MAX 512
#define RCONN_PATH_MAX 1024

/* Where and as whom to connect: a parsed redis:// or rediss:// URL plus the
 * TLS files. */
struct rconn_target {
    char host[RCONN_HOST_MAX];
    int port;                           /* default 6379 */
    int db;                             /* 0..15 as Redis ships; default 0 */
    int tls;                            /* 1 for rediss:// */
    char user[RCONN_SECRET_MAX];        /* "" for the default user */
    char password[RCONN_SECRET_MAX];    /* "" for none */
    char ca[RCONN_PATH_MAX];            /* "" : the system store */
    char cert[RCONN_PATH_MAX], key[RCONN_PATH_MAX];   /* "" : no client certificate */
};

/* The TLS files and the fallback password, as given by flags or the
 * environment (any may be NULL or ""). */
struct rconn_secrets {
    const char *password;               /* used when the URL has none */
    const char *ca, *cert, *key;
};

/* Parse url into t. Returns 0, or -1 with a one-line message in err that
 * never repeats a password. A client certificate needs its key and the other
 * way round; TLS files need rediss://. */
int rconn_target_parse(const char *url, const struct rconn_secrets *s, struct rconn_target *t,
                       char *err, size_t errlen);

/* The password named by the environment: SLUICE_REDIS_PASSWORD, or the first
 * line of the file SLUICE_REDIS_PASSWORD_FILE names. Writes "" when neither
 * is set. Returns 0, or -1 with a message when the file cannot be read or
 * the password does not fit. */
int rconn_password_from_env(char *out, size_t outlen, char *err, size_t errlen);

/* Why rconn_open failed: the server could not be reached (retrying may
 * help), or it answered but refused us (wrong password, unverifiable
 * certificate, not the protocol we speak: retrying will not help). */
enum rconn_failure { RCONN_UNREACHABLE = 1, RCONN_REFUSED = 2 };

typedef struct rconn rconn;

/* Connect, handshake, authenticate and select the database, each step
 * within timeout_ms; the same timeout then bounds every read and write.
 * Returns the connection (the caller owns it), or NULL with *why and a
 * one-line message in err. */
rconn *rconn_open(const struct rconn_target *t, int timeout_ms, enum rconn_failure *why, char *err,
                  size_t errlen);
void rconn_free(rconn *c);

/* Send one command and wait for its reply. Returns the reply (caller frees;
 * it may be an error reply), or NULL when the connection failed
 * (rconn_error says why; the connection is then unusable). */
redisReply *rconn_command(rconn *c, const char *fmt, ...);

/* Queue a command without sending it (pipelining); the replies come, in
 * order, from rconn_get_reply, which sends what is queued first. Returns 0,
 * or -1 when out of memory or the connection failed. */
int rconn_append(rconn *c, const char *fmt, ...);

/* Send what is queued, then wait for the next reply. Returns 0 with *out
 * set (caller frees), or -1 when the connection failed or timed out. */
int rconn_get_reply(rconn *c, redisReply **out);

/* Wait at most timeout_ms for a reply (subscriptions). Returns 1 with *out
 * set, 0 when none arrived in time (the connection stays usable), or -1
 * when the connection failed. */
int rconn_poll_reply(rconn *c, int timeout_ms, redisReply **out);

/* Non-zero once the connection failed; the message of the failure. */
int rconn_failed(const rconn *c);
const char *rconn_error(const rconn *c);

#endif
