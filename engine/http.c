/* http.c — libmicrohttpd glue: request assembly, limits, static files,
 * response building, deferred answers and streamed bodies (suspend and
 * resume), and the access log. The only file that calls libmicrohttpd. */
#include "http.h"
#include "protocol.h"
#include "log.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HTTP_STATIC_MAX (16L << 20)
#define HTTP_CONN_MEMORY (64 * 1024)

/* A connection as the request-head deadline sees it (http_on_connection). */
struct http_conn {
    struct http_conn *prev, *next;
    int fd;
    int64_t since_ms;            /* connected, or finished its last request */
    int in_request;              /* a request head arrived and is being served */
    int cut;                     /* shut down for missing the deadline */
    int bad_escape;              /* the path or query decoded to NUL or non-UTF-8 */
};

/* A request as http.c keeps it: what handlers see, then the connection and
 * the state of a deferred answer. */
struct http_exchange {
    struct http_request req;     /* first: a handler's pointer converts back */
    struct MHD_Connection *conn;
    http_server *server;
    /* http_complete runs on any thread: guarded by lock. */
    pthread_mutex_t lock;
    int deferred, suspended, completed, waiting;
    struct http_response *pending;
};

struct http_server {
    struct MHD_Daemon *daemon;
    atomic_int deferred;         /* deferred answers not yet finished */
    struct http_options opt;
    char ui_root[PATH_MAX];      /* realpath of ui_dir, "" when missing */
    int port;
    /* The request-head deadline: libmicrohttpd has only an idle timeout,
     * which a client trickling one header line at a time never trips. */
    pthread_mutex_t conns_lock;
    struct http_conn *conns;
    pthread_t reaper;
    int reaper_started;
    atomic_int stopping;
};

/* ---- small helpers ------------------------------------------------------ */

static struct http_exchange *http_exchange_of(const struct http_request *req) {
    return (struct http_exchange *)req;
}

static int64_t http_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *http_header(const struct http_request *req, const char *name) {
    return MHD_lookup_connection_value(http_exchange_of(req)->conn, MHD_HEADER_KIND, name);
}

const char *http_cookie(const struct http_request *req, const char *name) {
    return MHD_lookup_connection_value(http_exchange_of(req)->conn, MHD_COOKIE_KIND, name);
}

struct query_iter {
    void (*fn)(void *ud, const char *key, const char *value);
    void *ud;
};

static enum MHD_Result http_query_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value) {
    struct query_iter *it = cls;
    (void)kind;
    it->fn(it->ud, key, value);
    return MHD_YES;
}

void http_query_foreach(const struct http_request *req,
                        void (*fn)(void *ud, const char *key, const char *value), void *ud) {
    struct query_iter it = {fn, ud};
    MHD_get_connection_values(http_exchange_of(req)->conn, MHD_GET_ARGUMENT_KIND, http_query_cb, &it);
}

/* ---- responses ------------------------------------------------------------ */

/* Drop the body resp holds, owned or borrowed. */
static void http_drop_body(struct http_response *resp) {
    free(resp->body);
    if (resp->borrowed.release) resp->borrowed.release(resp->borrowed.cls);
    resp->body = NULL;
    memset(&resp->borrowed, 0, sizeof resp->borrowed);
    resp->len = 0;
}

void http_response_clear(struct http_response *resp) {
    http_drop_body(resp);
    for (int i = 0; i < resp->nheaders; i++) {
        free(resp->header_names[i]);
        free(resp->header_values[i]);
    }
    memset(resp, 0, sizeof *resp);
}

void http_respond_borrowed(struct http_response *resp, int status, const char *bytes, size_t len,
                           void (*release)(void *cls), void *cls) {
    http_drop_body(resp);
    resp->status = status;
    resp->borrowed = (struct http_borrowed){bytes, release, cls};
    resp->len = len;
}

void http_respond_json(struct http_response *resp, int status, json_t *body) {
    http_drop_body(resp);
    /* Any JSON value (lua-api.md): 42, true and null are bodies too. */
    resp->body = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    if (resp->body == NULL) {
        /* Only when out of memory or the body held invalid data. */
        resp->body = strdup("{\"error\":{\"code\":\"internal\",\"message\":\"response could not be encoded\"}}");
        status = 500;
    }
    resp->len = resp->body ? strlen(resp->body) : 0;
    resp->status = status;
    util_copy(resp->content_type, sizeof resp->content_type, "application/json; charset=utf-8");
}

void http_respond_error(struct http_response *resp, const struct http_request *req, int status,
                        const char *code, const char *message, json_t *details) {
    json_t *err = json_pack("{s:s, s:s}", "code", code, "message", message);
    if (err && details) json_object_set_new(err, "details", details);
    else json_decref(details);
    http_respond_json(resp, status,
                      json_pack("{s:o*, s:s}", "error", err, "request_id", req->request_id));
}

static int http_header_token(const char *s) {
    if (s == NULL || *s == '\0') return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-'))
            return 0;
    return 1;
}

int http_add_header(struct http_response *resp, const char *name, const char *value) {
    if (resp->nheaders >= HTTP_MAX_HEADERS || !http_header_token(name) || value == NULL)
        return -1;
    for (const char *v = value; *v; v++)
        if ((unsigned char)*v < 0x20 && *v != '\t') return -1;
    resp->header_names[resp->nheaders] = strdup(name);
    resp->header_values[resp->nheaders] = strdup(value);
    if (!resp->header_names[resp->nheaders] || !resp->header_values[resp->nheaders]) {
        free(resp->header_names[resp->nheaders]);
        free(resp->header_values[resp->nheaders]);
        return -1;
    }
    resp->nheaders++;
    return 0;
}

/* ---- streamed bodies ---------------------------------------------------------
 *
 * What MHD's content reader sees: the stream and its connection. It lives as
 * long as the MHD response, which outlives the request record. A stream with
 * nothing to send suspends its connection; http_stream_wake resumes it. The
 * woken flag closes the gap between read() finding nothing and the suspend:
 * a wake in between makes the reader try again instead of sleeping on data
 * that is already there. */
struct http_stream_conn {
    struct http_stream stream;
    struct MHD_Connection *conn;
    pthread_mutex_t lock;        /* guards woken and suspended */
    int woken, suspended;
};

static ssize_t http_stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    struct http_stream_conn *sc = cls;
    (void)pos;
    for (;;) {
        pthread_mutex_lock(&sc->lock);
        sc->woken = 0;
        pthread_mutex_unlock(&sc->lock);
        long n = sc->stream.read(sc->stream.cls, sc, buf, max);
        if (n < 0) return MHD_CONTENT_READER_END_OF_STREAM;
        if (n > 0) return (ssize_t)n;
        pthread_mutex_lock(&sc->lock);
        int again = sc->woken;
        if (!again) {
            sc->suspended = 1;
            MHD_suspend_connection(sc->conn);
        }
        pthread_mutex_unlock(&sc->lock);
        if (!again) return 0;
    }
}

void http_stream_wake(http_stream_conn *sc) {
    pthread_mutex_lock(&sc->lock);
    sc->woken = 1;
    if (sc->suspended) {
        sc->suspended = 0;
        MHD_resume_connection(sc->conn);
    }
    pthread_mutex_unlock(&sc->lock);
}

static void http_stream_done(void *cls) {
    struct http_stream_conn *sc = cls;
    if (sc->stream.done) sc->stream.done(sc->stream.cls);
    pthread_mutex_destroy(&sc->lock);
    free(sc);
}

/* ---- responses, continued ------------------------------------------------------ */

static enum MHD_Result http_send(struct http_exchange *ex, struct http_response *resp,
                                 struct MHD_Response *mr) {
    struct http_request *req = &ex->req;
    enum MHD_Result ret;
    if (mr == NULL && resp->stream.read) {
        struct http_stream_conn *sc = calloc(1, sizeof *sc);
        if (sc == NULL) {
            if (resp->stream.done) resp->stream.done(resp->stream.cls);
            memset(&resp->stream, 0, sizeof resp->stream);
            return MHD_NO;
        }
        pthread_mutex_init(&sc->lock, NULL);
        sc->stream = resp->stream;
        sc->conn = ex->conn;
        memset(&resp->stream, 0, sizeof resp->stream);
        mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, http_stream_read, sc,
                                               http_stream_done);
        if (mr == NULL) {
            http_stream_done(sc);
            return MHD_NO;
        }
        MHD_add_response_header(mr, "Cache-Control", "no-store");
    }
    if (mr == NULL && resp->borrowed.bytes) {
        struct http_borrowed lent = resp->borrowed;
        memset(&resp->borrowed, 0, sizeof resp->borrowed);
        /* libmicrohttpd calls release once the last use of the response ends. */
        mr = MHD_create_response_from_buffer_with_free_callback_cls(resp->len, (void *)lent.bytes,
                                                                    lent.release, lent.cls);
        if (mr == NULL) {
            if (lent.release) lent.release(lent.cls);
            return MHD_NO;
        }
        MHD_add_response_header(mr, "Cache-Control", "no-store");
    }
    if (mr == NULL) {
        char *body = resp->body;
        resp->body = NULL;
        mr = MHD_create_response_from_buffer(resp->len, body ? body : (void *)"",
                                             body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (mr == NULL) {
            free(body);
            return MHD_NO;
        }
        MHD_add_response_header(mr, "Cache-Control", "no-store");
    }
    if (resp->content_type[0]) MHD_add_response_header(mr, "Content-Type", resp->content_type);
    MHD_add_response_header(mr, "X-Request-Id", req->request_id);
    MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
    /* The UI loads only its own files and may not be framed; the API's
     * JSON gets the same, which costs nothing. */
    MHD_add_response_header(mr, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
    MHD_add_response_header(mr, "X-Frame-Options", "DENY");
    MHD_add_response_header(mr, "Referrer-Policy", "no-referrer");
    for (int i = 0; i < resp->nheaders; i++)
        MHD_add_response_header(mr, resp->header_names[i], resp->header_values[i]);
    ret = MHD_queue_response(ex->conn, (unsigned)resp->status, mr);
    MHD_destroy_response(mr);
    return ret;
}

/* ---- static files ------------------------------------------------------------ */

int http_static_path_ok(const char *path) {
    const char *seg = path;
    if (path == NULL || *path == '\0' || strchr(path, '\\') || strlen(path) > 512) return 0;
    while (*seg) {
        const char *slash = strchr(seg, '/');
        size_t len = slash ? (size_t)(slash - seg) : strlen(seg);
        if (len == 0 || seg[0] == '.') return 0;    /* "", ".", "..", hidden files */
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)seg[i] < 0x20 || seg[i] == 0x7f) return 0;
        if (!slash) break;
        seg = slash + 1;
        if (*seg == '\0') return 0;                 /* trailing slash */
    }
    return 1;
}

/* Run from a checkout, ui/ also holds the npm tree the build copies the
 * chart library from: it is not the UI's to serve. */
static int http_static_public(const char *rel) {
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    if (strncmp(rel, "node_modules/", 13) == 0 || strstr(rel, "/node_modules/")) return 0;
    return strcmp(base, "package.json") != 0 && strcmp(base, "package-lock.json") != 0;
}

static const char *http_mime(const char *path) {
    static const struct { const char *ext, *type; } types[] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
        {".json", "application/json; charset=utf-8"}, {".svg", "image/svg+xml"},
        {".png", "image/png"}, {".ico", "image/x-icon"}, {".txt", "text/plain; charset=utf-8"},
        {".woff2", "font/woff2"}, {".map", "application/json; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0) return types[i].type;
    return "application/octet-stream";
}

static void http_serve_static(http_server *srv, struct http_request *req,
                              struct http_response *resp, struct MHD_Response **out) {
    char full[PATH_MAX], real[PATH_MAX];
    const char *rel;
    struct stat sb;
    int fd = -1;

    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        http_add_header(resp, "Allow", "GET, HEAD");
        http_respond_error(resp, req, 405, "method_not_allowed", "static files are read-only", NULL);
        return;
    }
    if (strcmp(req->path, "/") == 0 || strcmp(req->path, "/ui/") == 0) rel = "index.html";
    else rel = req->path + strlen("/ui/");
    util_copy(req->route, sizeof req->route, "static");
    if (!http_static_path_ok(rel) || !http_static_public(rel) || srv->ui_root[0] == '\0') goto not_found;
    if (snprintf(full, sizeof full, "%s/%s", srv->ui_root, rel) >= (int)sizeof full) goto not_found;
    /* Resolve symlinks and require the result to stay inside the UI root. */
    if (realpath(full, real) == NULL) goto not_found;
    if (strncmp(real, srv->ui_root, strlen(srv->ui_root)) != 0 ||
        real[strlen(srv->ui_root)] != '/')
        goto not_found;
    fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > HTTP_STATIC_MAX)
        goto not_found;
    *out = MHD_create_response_from_fd((size_t)sb.st_size, fd);
    if (*out == NULL) goto not_found;
    resp->status = 200;
    util_copy(resp->content_type, sizeof resp->content_type, http_mime(real));
    MHD_add_response_header(*out, "Cache-Control", "no-cache");
    return;
not_found:
    if (fd >= 0) close(fd);
    http_respond_error(resp, req, 404, "not_found", "no such file", NULL);
}

/* ---- the request-head deadline --------------------------------------------------------
 *
 * Every connection is listed from accept to close. One that has not
 * finished a request head within header_timeout_s of connecting (or of
 * finishing its previous request) is shut down by the reaper thread:
 * shutdown(2) on its socket, so libmicrohttpd sees the end of the stream on
 * its own thread and closes the connection cleanly. The socket cannot have
 * been reused: MHD closes it only after the CLOSED notification, which
 * unlists it under the same lock. */

static void http_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                               enum MHD_ConnectionNotificationCode toe) {
    http_server *srv = cls;
    struct http_conn *c;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci == NULL || (c = calloc(1, sizeof *c)) == NULL) return;   /* only the idle timeout applies */
        c->fd = ci->connect_fd;
        c->since_ms = util_mono_ms();
        pthread_mutex_lock(&srv->conns_lock);
        c->next = srv->conns;
        if (srv->conns) srv->conns->prev = c;
        srv->conns = c;
        pthread_mutex_unlock(&srv->conns_lock);
        *socket_context = c;
        return;
    }
    if ((c = *socket_context) == NULL) return;
    pthread_mutex_lock(&srv->conns_lock);
    if (c->prev) c->prev->next = c->next;
    else srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    pthread_mutex_unlock(&srv->conns_lock);
    free(c);
    *socket_context = NULL;
}

static struct http_conn *http_conn_of(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* libmicrohttpd unescapes the path and every query argument in place with
 * this. A %00 would cut the C string short (/scaling/build%00xyz routed as
 * /scaling/build), and bytes that are not UTF-8 cannot go into JSON or Lua
 * safely: note it on the connection, and the request is refused whole. */
static size_t http_unescape(void *cls, struct MHD_Connection *conn, char *s) {
    (void)cls;
    size_t n = MHD_http_unescape(s);
    struct http_conn *c = http_conn_of(conn);
    if (c && !util_valid_utf8(s, n)) c->bad_escape = 1;   /* only this connection's thread */
    return n;
}

static void http_conn_mark(http_server *srv, struct MHD_Connection *conn, int in_request) {
    struct http_conn *c = http_conn_of(conn);
    if (c == NULL) return;
    pthread_mutex_lock(&srv->conns_lock);
    c->in_request = in_request;
    c->since_ms = util_mono_ms();
    pthread_mutex_unlock(&srv->conns_lock);
}

static void *http_reaper(void *arg) {
    http_server *srv = arg;
    int64_t limit = (int64_t)srv->opt.header_timeout_s * 1000;
    while (!atomic_load(&srv->stopping)) {
        int64_t now = util_mono_ms();
        int cut = 0;
        pthread_mutex_lock(&srv->conns_lock);
        for (struct http_conn *c = srv->conns; c; c = c->next)
            if (!c->in_request && !c->cut && now - c->since_ms > limit) {
                shutdown(c->fd, SHUT_RDWR);
                c->cut = 1;
                cut++;
            }
        pthread_mutex_unlock(&srv->conns_lock);
        if (cut)
            log_json(LOG_WARN, "connections closed: no request head within the deadline",
                     json_pack("{s:i, s:i}", "closed", cut, "header_timeout_s", srv->opt.header_timeout_s));
        usleep(250 * 1000);
    }
    return NULL;
}

/* ---- the request cycle ------------------------------------------------------------ */

static void http_fill_remote(struct http_request *req, struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    strcpy(req->remote, "-");
    if (ci == NULL || ci->client_addr == NULL) return;
    if (ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, req->remote,
                  sizeof req->remote);
    else if (ci->client_addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr,
                  req->remote, sizeof req->remote);
}

static struct http_exchange *http_exchange_new(http_server *srv, struct MHD_Connection *conn,
                                               const char *url, const char *method) {
    struct http_exchange *ex = calloc(1, sizeof *ex);
    struct http_request *req;
    const char *rid;
    if (ex == NULL) return NULL;
    req = &ex->req;
    pthread_mutex_init(&ex->lock, NULL);
    ex->conn = conn;
    ex->server = srv;
    req->method = method;
    req->path = url;
    req->started_us = http_now_us();
    req->body = calloc(1, 1);
    if (req->body == NULL) {
        pthread_mutex_destroy(&ex->lock);
        free(ex);
        return NULL;
    }
    rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    /* A client's id is kept when it fits and uses the names' alphabet. */
    if (protocol_valid_id(rid, HTTP_REQUEST_ID_MAX - 1))
        util_copy(req->request_id, sizeof req->request_id, rid);
    else if (util_random_hex(req->request_id, 8) != 0) strcpy(req->request_id, "-");
    http_fill_remote(req, conn);
    return ex;
}

/* Append upload data, enforcing the cap. Sets too_large instead of failing so
 * the final call can answer 413 in the documented shape. */
static void http_append_body(struct http_request *req, size_t max, const char *data, size_t len) {
    if (req->too_large) return;
    if (req->body_len + len > max) {
        req->too_large = 1;
        return;
    }
    if (req->body_len + len + 1 > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 1024;
        while (cap < req->body_len + len + 1) cap *= 2;
        char *grown = realloc(req->body, cap);
        if (grown == NULL) {
            req->too_large = 1;
            return;
        }
        req->body = grown;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, len);
    req->body_len += len;
    req->body[req->body_len] = '\0';
}

static enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                       const char *method, const char *version,
                                       const char *upload_data, size_t *upload_data_size,
                                       void **con_cls) {
    http_server *srv = cls;
    struct http_exchange *ex = *con_cls;
    struct http_request *req = ex ? &ex->req : NULL;
    struct http_response resp;
    struct MHD_Response *mr = NULL;
    enum MHD_Result ret;
    (void)version;

    if (ex == NULL) {
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        http_conn_mark(srv, conn, 1);            /* the head arrived in time */
        struct http_conn *hc = http_conn_of(conn);
        ex = http_exchange_new(srv, conn, url, method);
        if (ex == NULL) return MHD_NO;
        req = &ex->req;
        *con_cls = ex;
        if (hc && hc->bad_escape) {              /* this request's, noted while parsing it */
            req->bad_escape = 1;
            hc->bad_escape = 0;
        }
        if (cl && strtoull(cl, NULL, 10) > srv->opt.max_body) req->too_large = 1;
        if (!req->too_large) return MHD_YES;   /* wait for the body */
        /* Declared too large: answer now, without reading the body. */
    } else if (*upload_data_size > 0) {
        http_append_body(req, srv->opt.max_body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }

    memset(&resp, 0, sizeof resp);
    if (ex->waiting) {
        /* Called again after http_complete resumed the connection. */
        pthread_mutex_lock(&ex->lock);
        int ready = ex->completed;
        if (ready) {
            resp = *ex->pending;
            memset(ex->pending, 0, sizeof *ex->pending);
        }
        pthread_mutex_unlock(&ex->lock);
        if (!ready) return MHD_YES;
        goto send;
    }
    if (req->too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body larger than %zu bytes", srv->opt.max_body);
        util_copy(req->route, sizeof req->route, "-");
        http_respond_error(&resp, req, 413, "body_too_large", msg,
                           json_pack("{s:I}", "max_bytes", (json_int_t)srv->opt.max_body));
    } else if (req->bad_escape) {
        util_copy(req->route, sizeof req->route, "-");
        http_respond_error(&resp, req, 400, "invalid_request",
                           "the path or a query argument holds a NUL byte or is not UTF-8", NULL);
    } else if (strcmp(req->path, "/") == 0 || strncmp(req->path, "/ui/", 4) == 0) {
        http_serve_static(srv, req, &resp, &mr);
    } else {
        srv->opt.handler(srv->opt.handler_ud, req, &resp);
    }
    if (ex->deferred) {
        /* Suspend unless the answer is already there; under the lock so
         * http_complete never resumes a connection not yet suspended. */
        pthread_mutex_lock(&ex->lock);
        if (!ex->completed) {
            ex->waiting = 1;
            ex->suspended = 1;
            MHD_suspend_connection(conn);
            pthread_mutex_unlock(&ex->lock);
            http_response_clear(&resp);
            return MHD_YES;
        }
        http_response_clear(&resp);
        resp = *ex->pending;
        memset(ex->pending, 0, sizeof *ex->pending);
        pthread_mutex_unlock(&ex->lock);
    }
send:
    if (resp.status == 0) http_respond_error(&resp, req, 500, "internal", "no response", NULL);
    ret = http_send(ex, &resp, mr);
    req->status = resp.status;        /* logged when the connection finishes */
    http_response_clear(&resp);
    return ret;
}

/* src as printable ASCII: bytes outside 0x20..0x7e as %XX, cut to size. */
static void http_log_safe(char *dst, size_t size, const char *src) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)(src ? src : ""); *p && o + 4 < size; p++) {
        if (*p >= 0x20 && *p < 0x7f) {
            dst[o++] = (char)*p;
        } else {
            dst[o++] = '%';
            dst[o++] = hex[*p >> 4];
            dst[o++] = hex[*p & 15];
        }
    }
    dst[o] = '\0';
}

static void http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe) {
    http_server *srv = cls;
    struct http_exchange *ex = *con_cls;
    http_conn_mark(srv, conn, 0);                /* the next head has a deadline again */
    if (ex == NULL) return;
    struct http_request *req = &ex->req;
    if (ex->deferred) atomic_fetch_sub(&srv->deferred, 1);
    if (srv->opt.observe)
        srv->opt.observe(srv->opt.observe_ud, req->route[0] ? req->route : "-", req->status,
                         (double)(http_now_us() - req->started_us) / 1e6);
    /* The path as received may not be UTF-8 (then the request was refused):
     * log it escaped, so that the line keeps every field. */
    char path[1024];
    http_log_safe(path, sizeof path, req->path);
    log_json(LOG_INFO, "request",
             json_pack("{s:s, s:s, s:s, s:i, s:I, s:s, s:s, s:s, s:b}", "request_id",
                       req->request_id, "method", req->method, "path", path, "status",
                       req->status, "duration_us", (json_int_t)(http_now_us() - req->started_us), "remote", req->remote, "route",
                       req->route[0] ? req->route : "-", "actor",
                       req->actor[0] ? req->actor : "-", "completed",
                       toe == MHD_REQUEST_TERMINATED_COMPLETED_OK));
    if (ex->pending) {
        http_response_clear(ex->pending);
        free(ex->pending);
    }
    pthread_mutex_destroy(&ex->lock);
    free(req->body);
    free(ex);
    *con_cls = NULL;
}

/* ---- deferred answers ------------------------------------------------------------ */

void http_defer(struct http_request *req) {
    struct http_exchange *ex = http_exchange_of(req);
    pthread_mutex_lock(&ex->lock);
    if (!ex->deferred) atomic_fetch_add(&ex->server->deferred, 1);
    ex->deferred = 1;
    pthread_mutex_unlock(&ex->lock);
}

void http_drain(http_server *srv, int timeout_ms) {
    if (srv == NULL) return;
    MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
    if (fd != MHD_INVALID_SOCKET) close(fd);
    for (int waited = 0; atomic_load(&srv->deferred) > 0 && waited < timeout_ms; waited += 10) {
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
}

void http_complete(struct http_request *req, struct http_response *resp) {
    struct http_exchange *ex = http_exchange_of(req);
    struct http_response *copy = malloc(sizeof *copy);
    pthread_mutex_lock(&ex->lock);
    if (ex->completed || copy == NULL) {
        /* A second answer is a bug and is dropped; without memory there is
         * nothing to send, and the connection ends at shutdown. */
        pthread_mutex_unlock(&ex->lock);
        log_json(LOG_ERROR, "deferred answer dropped",
                 json_pack("{s:s, s:s}", "request_id", req->request_id, "why",
                           copy ? "answered twice" : "out of memory"));
        http_response_clear(resp);
        free(copy);
        return;
    }
    *copy = *resp;
    memset(resp, 0, sizeof *resp);
    ex->pending = copy;
    ex->completed = 1;
    if (ex->suspended) {
        ex->suspended = 0;
        MHD_resume_connection(ex->conn);
    }
    pthread_mutex_unlock(&ex->lock);
}

static void http_mhd_log(void *cls, const char *fmt, va_list ap) {
    char buf[512];
    (void)cls;
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
    log_json(LOG_WARN, "libmicrohttpd", json_pack("{s:s}", "detail", buf));
}

http_server *http_start(const struct http_options *opt, char *err, size_t errlen) {
    http_server *srv = calloc(1, sizeof *srv);
    struct sockaddr_in sin4;
    struct sockaddr_in6 sin6;
    struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;

    if (srv == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->opt = *opt;
    if (srv->opt.header_timeout_s <= 0) srv->opt.header_timeout_s = 10;
    pthread_mutex_init(&srv->conns_lock, NULL);
    if (opt->ui_dir == NULL || realpath(opt->ui_dir, srv->ui_root) == NULL) {
        log_json(LOG_WARN, "ui directory not found; / and /ui/ answer 404",
                 json_pack("{s:s}", "ui", opt->ui_dir ? opt->ui_dir : ""));
        srv->ui_root[0] = '\0';
    }
    memset(&sin4, 0, sizeof sin4);
    memset(&sin6, 0, sizeof sin6);
    if (inet_pton(AF_INET, opt->host, &sin4.sin_addr) == 1) {
        sin4.sin_family = AF_INET;
        sin4.sin_port = htons((uint16_t)opt->port);
        sa = (struct sockaddr *)&sin4;
    } else if (inet_pton(AF_INET6, opt->host, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t)opt->port);
        sa = (struct sockaddr *)&sin6;
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, errlen, "--listen: '%s' is not an IPv4 or IPv6 address", opt->host);
        free(srv);
        return NULL;
    }
    srv->daemon = MHD_start_daemon(
        flags, (uint16_t)opt->port, NULL, NULL, http_on_request, srv,
        MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, srv,      /* first, or MHD warns */
        MHD_OPTION_SOCK_ADDR, sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)opt->threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)opt->conn_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)opt->per_ip_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)opt->conn_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
        MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, http_on_connection, srv,
        MHD_OPTION_UNESCAPE_CALLBACK, http_unescape, srv,
        MHD_OPTION_END);
    if (srv->daemon == NULL) {
        snprintf(err, errlen, "cannot listen on %s:%d (address in use, or not permitted)",
                 opt->host, opt->port);
        pthread_mutex_destroy(&srv->conns_lock);
        free(srv);
        return NULL;
    }
    srv->reaper_started = pthread_create(&srv->reaper, NULL, http_reaper, srv) == 0;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : opt->port;
    return srv;
}

int http_port(const http_server *srv) { return srv->port; }

void http_stop(http_server *srv) {
    if (srv == NULL) return;
    atomic_store(&srv->stopping, 1);
    if (srv->reaper_started) pthread_join(srv->reaper, NULL);

    MHD_stop_daemon(srv->daemon);                /* notifies CLOSED for every connection */
    pthread_mutex_destroy(&srv->conns_lock);
    free(srv);
}
