/* http.h — the HTTP front: a libmicrohttpd daemon with an internal thread
 * pool on epoll, connection limits (total, per client address, idle timeout),
 * a request body cap answered with 413, static files for "/" and "/ui/...",
 * X-Request-Id on every answer, and a JSON access-log line per request.
 *
 * Everything that is not a static file goes to one handler function (the Lua
 * router in script.c), called on the pool thread that owns the connection.
 * Errors are always the JSON envelope of api.md, never HTML. */
#ifndef SLUICE_HTTP_H
#define SLUICE_HTTP_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define HTTP_MAX_HEADERS 8

struct MHD_Connection;

/* A streamed body (Server-Sent Events): read() returns bytes copied into
 * buf, 0 after suspending the connection (nothing to send yet), or -1 at
 * the end; done() runs once when the connection is gone. */
struct http_stream {
    long (*read)(void *cls, struct MHD_Connection *conn, char *buf, size_t max);
    void (*done)(void *cls);
    void *cls;
};

struct http_response {
    int status;
    char *body;                      /* malloc'd, owned by the response */
    size_t len;
    struct http_stream stream;       /* read != NULL: stream instead of body */
    char content_type[64];
    int nheaders;
    char *header_names[HTTP_MAX_HEADERS];
    char *header_values[HTTP_MAX_HEADERS];
};

/* One request, owned by http.c; valid during the handler call. */
struct http_request {
    struct MHD_Connection *conn;
    struct http_server *server;
    const char *method;
    const char *path;                /* decoded path, without the query */
    char *body;                      /* NUL-terminated, may be empty */
    size_t body_len;
    size_t body_cap;
    int too_large;
    int bad_escape;                  /* its path or a query argument decoded to NUL or non-UTF-8 */
    char request_id[STORE_RID_MAX];
    char remote[64];
    int64_t started_us;
    int status;                      /* the answer's status, for the access log */
    /* Deferred answers (http_defer / http_complete), guarded by lock. */
    pthread_mutex_t lock;
    int deferred, suspended, completed, waiting;
    struct http_response *pending;
    /* Filled by the handler for the access log and metrics. */
    char route[96];
    char actor[UTIL_NAME_MAX + 1];
};

typedef void (*http_handler_fn)(void *ud, struct http_request *req, struct http_response *resp);

struct http_options {
    const char *host;
    int port;                        /* 0: the kernel picks one */
    int threads;
    size_t max_body;
    int conn_limit, per_ip_limit, conn_timeout_s;
    int header_timeout_s;            /* a request head must be complete within it; 0: 10 */
    const char *ui_dir;
    http_handler_fn handler;
    void *handler_ud;
    /* Called once per answered request (metrics); may be NULL. */
    void (*observe)(void *ud, const char *route, int status, double seconds);
    void *observe_ud;
};

typedef struct http_server http_server;

/* Start listening. Returns NULL with a message in err when the address
 * cannot be bound or the options are wrong. */
http_server *http_start(const struct http_options *opt, char *err, size_t errlen);

/* The port actually bound (useful with port 0). */
int http_port(const http_server *srv);

/* Stop accepting new connections and give deferred answers up to
 * timeout_ms to reach their clients (shutdown). */
void http_drain(http_server *srv, int timeout_ms);

/* Stop accepting, finish in-flight requests, free everything. NULL is a no-op. */
void http_stop(http_server *srv);

/* Request accessors; NULL when absent. Header names are case-insensitive. */
const char *http_header(const struct http_request *req, const char *name);
const char *http_cookie(const struct http_request *req, const char *name);

/* Call fn for each query argument (value may be NULL for "?flag"). */
void http_query_foreach(const struct http_request *req,
                        void (*fn)(void *ud, const char *key, const char *value), void *ud);

/* Set a JSON body (takes ownership of body; dumps it compactly). */
void http_respond_json(struct http_response *resp, int status, json_t *body);

/* Set the error envelope of api.md. details may be NULL; its ownership is taken. */
void http_respond_error(struct http_response *resp, const struct http_request *req, int status,
                        const char *code, const char *message, json_t *details);

/* Add a response header (copied). Returns 0, or -1 when the name or value is
 * invalid (control characters, too many headers). */
int http_add_header(struct http_response *resp, const char *name, const char *value);

/* Answer later without holding the thread: called by the handler, which
 * leaves resp empty. http_complete() then sends the answer, from any thread,
 * exactly once. The connection is suspended in between. */
void http_defer(struct http_request *req);

/* Send the answer of a deferred request; takes over resp's contents (resp
 * is left empty). Safe before or after the handler returned. */
void http_complete(struct http_request *req, struct http_response *resp);

/* Release what a response holds (the server does it after sending). */
void http_response_clear(struct http_response *resp);

/* 1 when path (already decoded) names a file under the UI folder without
 * escaping it: no "..", no ".", no empty or hidden segments, no backslash. */
int http_static_path_ok(const char *path);

#endif
