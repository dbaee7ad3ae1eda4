/* http.h — the HTTP front: a libmicrohttpd daemon with an internal thread
 * pool on epoll, connection limits (total, per client address, idle timeout),
 * a request body cap answered with 413, static files for "/" and "/ui/...",
 * X-Request-Id on every answer, and a JSON access-log line per request.
 *
 * Everything that is not a static file goes to one handler function (the Lua
 * router in script.c), called on the pool thread that owns the connection.
 * Errors are always the JSON envelope of api.md, never HTML.
 *
 * An answer need not be ready when the handler returns: http_defer() and
 * http_complete() hold it with the connection suspended, and a streamed body
 * (struct http_stream) suspends its connection whenever it has nothing to
 * send until http_stream_wake(). Neither holds a pool thread meanwhile.
 * deferred.c and events.c build on these; only this file speaks to
 * libmicrohttpd. */
#ifndef SLUICE_HTTP_H
#define SLUICE_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define HTTP_MAX_HEADERS 8
/* An X-Request-Id, with its NUL: a longer one sent by a client is replaced.
 * Request ids go into audit rows, whose column is no narrower (script.c
 * checks it against STORE_RID_MAX). */
#define HTTP_REQUEST_ID_MAX 129

/* The connection a streamed body is read for, as its read() sees it: what
 * http_stream_wake() takes. Valid until the stream's done() has run. */
typedef struct http_stream_conn http_stream_conn;

#define HTTP_STREAM_IDLE 0           /* read(): nothing to send yet */
#define HTTP_STREAM_END (-1)         /* read(): the body is complete */

/* A streamed body (Server-Sent Events), read on the connection's pool
 * thread. read() returns the bytes it copied into buf (at most max),
 * HTTP_STREAM_IDLE, after which the connection is suspended until
 * http_stream_wake(), or HTTP_STREAM_END. done() runs once, when the
 * connection is gone. */
struct http_stream {
    long (*read)(void *cls, http_stream_conn *conn, char *buf, size_t max);
    void (*done)(void *cls);
    void *cls;
};

/* Bytes an answer sends without copying them (a body cached with a model):
 * they stay valid until release(cls) runs, which the server calls exactly
 * once, when it is done with them: sent, or the answer dropped. */
struct http_borrowed {
    const char *bytes;
    void (*release)(void *cls);
    void *cls;
};

struct http_response {
    int status;
    char *body;                      /* malloc'd, owned by the response */
    size_t len;                      /* of body, or of borrowed.bytes */
    struct http_borrowed borrowed;   /* bytes != NULL: sent instead of body */
    struct http_stream stream;       /* read != NULL: stream instead of body */
    char content_type[64];
    int nheaders;
    char *header_names[HTTP_MAX_HEADERS];
    char *header_values[HTTP_MAX_HEADERS];
};

/* One request, owned by http.c; valid during the handler call, and for a
 * deferred answer until http_complete(). */
struct http_request {
    const char *method;
    const char *path;                /* decoded path, without the query */
    char *body;                      /* NUL-terminated, may be empty */
    size_t body_len;
    size_t body_cap;
    int too_large;
    int bad_escape;                  /* its path or a query argument decoded to NUL or non-UTF-8 */
    char request_id[HTTP_REQUEST_ID_MAX];
    char remote[64];
    int64_t started_us;
    int status;                      /* the answer's status, for the access log */
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

/* Stop accepting new connections and give deferred answers (http_defer) up
 * to timeout_ms to reach their clients (shutdown; see deferred_shutdown). */
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

/* Send len bytes the response does not own (see struct http_borrowed):
 * releases whatever body resp held before. The response owns the release
 * from here on, even when this answer is later replaced or dropped. */
void http_respond_borrowed(struct http_response *resp, int status, const char *bytes, size_t len,
                           void (*release)(void *cls), void *cls);

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
 * is left empty). Safe before or after the handler returned, from any
 * thread: the answer goes out on the connection's own pool thread. */
void http_complete(struct http_request *req, struct http_response *resp);

/* Have a stream's read() called again, soon, on its connection's thread:
 * there is more to send, or it ended. From any thread, while the stream's
 * done() has not run; a wake that comes while read() is running is not
 * lost (read() is called again rather than the connection suspended). */
void http_stream_wake(http_stream_conn *conn);

/* Release what a response holds (the server does it after sending). */
void http_response_clear(struct http_response *resp);

/* 1 when path (already decoded) names a file under the UI folder without
 * escaping it: no "..", no ".", no empty or hidden segments, no backslash. */
int http_static_path_ok(const char *path);

#endif
