/* rconn.c — a Redis connection over TCP or TLS (OpenSSL), RESP by hiredis. */
#include "rconn.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define RCONN_READ_CHUNK 16384

struct rconn {
    int fd;
    SSL_CTX *ctx;                       /* NULL for plain TCP */
    SSL *ssl;
    redisReader *reader;
    char *out;                          /* formatted commands not sent yet */
    size_t outlen;
    int timeout_ms;
    int failed;
    char err[256];
};

static void rconn_fail(rconn *c, const char *fmt, ...) {
    va_list ap;
    if (c->failed) return;              /* keep the first cause */
    c->failed = 1;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
}

int rconn_failed(const rconn *c) { return c->failed; }
const char *rconn_error(const rconn *c) { return c->err; }

/* ---- URLs ------------------------------------------------------------------ */

static int rconn_copy(char *dst, size_t dstlen, const char *src) {
    size_t n = strlen(src);
    if (n >= dstlen) return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

/* One part of a parsed URL, URL-decoded, into out ("" when absent).
 * Returns 0, or -1 when it does not fit. */
static int rconn_url_part(CURLU *u, CURLUPart part, char *out, size_t outlen) {
    char *v = NULL;
    out[0] = '\0';
    if (curl_url_get(u, part, &v, CURLU_URLDECODE) != CURLUE_OK || v == NULL) return 0;
    int rc = rconn_copy(out, outlen, v);
    curl_free(v);
    return rc;
}

int rconn_target_parse(const char *url, const struct rconn_secrets *s, struct rconn_target *t,
                       char *err, size_t errlen) {
    CURLU *u = curl_url();
    char scheme[16], port[16], path[64], extra[8];
    int rc = -1;

    memset(t, 0, sizeof *t);
    if (u == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* Both schemes are unknown to libcurl: allow them, never guess one. */
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        rconn_url_part(u, CURLUPART_SCHEME, scheme, sizeof scheme) != 0) {
        snprintf(err, errlen, "not a URL (expected redis://[USER[:PASSWORD]@]HOST:PORT[/DB] or rediss://...)");
        goto done;
    }
    if (strcmp(scheme, "redis") == 0) t->tls = 0;
    else if (strcmp(scheme, "rediss") == 0) t->tls = 1;
    else {
        snprintf(err, errlen, "scheme '%s' is not redis:// or rediss:// (TLS)", scheme);
        goto done;
    }
    if (rconn_url_part(u, CURLUPART_HOST, t->host, sizeof t->host) != 0 || t->host[0] == '\0') {
        snprintf(err, errlen, "no host (expected %s://[USER[:PASSWORD]@]HOST:PORT[/DB])", scheme);
        goto done;
    }
    /* [::1] comes back with its brackets; the resolver wants the address. */
    size_t hl = strlen(t->host);
    if (t->host[0] == '[' && hl > 2 && t->host[hl - 1] == ']') {
        memmove(t->host, t->host + 1, hl - 2);
        t->host[hl - 2] = '\0';
    }
    rconn_url_part(u, CURLUPART_PORT, port, sizeof port);
    t->port = 6379;
    if (port[0]) {
        char *end;
        long p = strtol(port, &end, 10);
        if (*end || p < 1 || p > 65535) {
            snprintf(err, errlen, "invalid port '%s'", port);
            goto done;
        }
        t->port = (int)p;
    }
    rconn_url_part(u, CURLUPART_PATH, path, sizeof path);
    if (path[0] && strcmp(path, "/") != 0) {
        char *end;
        long db = strtol(path + 1, &end, 10);
        if (*end || path[1] < '0' || path[1] > '9' || db < 0 || db > 1000000) {
            snprintf(err, errlen, "the path must be a database number (/0, /1, ...)");
            goto done;
        }
        t->db = (int)db;
    }
    if (rconn_url_part(u, CURLUPART_QUERY, extra, sizeof extra) != 0 || extra[0] ||
        rconn_url_part(u, CURLUPART_FRAGMENT, extra, sizeof extra) != 0 || extra[0]) {
        snprintf(err, errlen, "query and fragment are not supported in a Redis URL");
        goto done;
    }
    if (rconn_url_part(u, CURLUPART_USER, t->user, sizeof t->user) != 0 ||
        rconn_url_part(u, CURLUPART_PASSWORD, t->password, sizeof t->password) != 0) {
        snprintf(err, errlen, "user name or password too long");
        goto done;
    }
    if (t->password[0] == '\0' && s && s->password && s->password[0] &&
        rconn_copy(t->password, sizeof t->password, s->password) != 0) {
        snprintf(err, errlen, "password too long");
        goto done;
    }
    if (s && ((s->ca && s->ca[0] && rconn_copy(t->ca, sizeof t->ca, s->ca) != 0) ||
              (s->cert && s->cert[0] && rconn_copy(t->cert, sizeof t->cert, s->cert) != 0) ||
              (s->key && s->key[0] && rconn_copy(t->key, sizeof t->key, s->key) != 0))) {
        snprintf(err, errlen, "a TLS file path is too long");
        goto done;
    }
    if (!t->tls && (t->ca[0] || t->cert[0] || t->key[0])) {
        snprintf(err, errlen, "CA, certificate and key files need a rediss:// (TLS) URL");
        goto done;
    }
    if (!t->cert[0] != !t->key[0]) {
        snprintf(err, errlen, "a client certificate needs its key, and the other way round");
        goto done;
    }
    rc = 0;
done:
    curl_url_cleanup(u);
    if (rc != 0) memset(t, 0, sizeof *t);     /* no password left behind */
    return rc;
}

int rconn_password_from_env(char *out, size_t outlen, char *err, size_t errlen) {
    const char *v = getenv("SLUICE_REDIS_PASSWORD");
    const char *file = getenv("SLUICE_REDIS_PASSWORD_FILE");
    out[0] = '\0';
    if (v && v[0]) {
        if (rconn_copy(out, outlen, v) != 0) {
            snprintf(err, errlen, "SLUICE_REDIS_PASSWORD is too long");
            return -1;
        }
        return 0;
    }
    if (file == NULL || file[0] == '\0') return 0;
    FILE *f = fopen(file, "r");
    if (f == NULL) {
        snprintf(err, errlen, "SLUICE_REDIS_PASSWORD_FILE: cannot read %s: %s", file, strerror(errno));
        return -1;
    }
    int ok = fgets(out, (int)outlen, f) != NULL;
    fclose(f);
    out[ok ? strcspn(out, "\r\n") : 0] = '\0';
    if (strlen(out) + 1 >= outlen) {
        snprintf(err, errlen, "SLUICE_REDIS_PASSWORD_FILE: the password is too long");
        out[0] = '\0';
        return -1;
    }
    return 0;
}

/* ---- transport ------------------------------------------------------------- */

/* TCP connect to host:port within timeout_ms, trying every address. */
static int rconn_tcp(const struct rconn_target *t, int timeout_ms, char *err, size_t errlen) {
    struct addrinfo hints, *res = NULL;
    char port[8];
    int fd = -1, rc;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%d", t->port);
    if ((rc = getaddrinfo(t->host, port, &hints, &res)) != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", t->host, gai_strerror(rc));
        return -1;
    }
    snprintf(err, errlen, "cannot connect to %s:%d", t->host, t->port);
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) continue;
        int e = 0;
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            e = errno;
            if (e == EINPROGRESS) {
                struct pollfd p = {fd, POLLOUT, 0};
                socklen_t sl = sizeof e;
                if (poll(&p, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) != 0)
                    e = ETIMEDOUT;
            }
        }
        if (e != 0) {
            snprintf(err, errlen, "cannot connect to %s:%d: %s", t->host, t->port, strerror(e));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) return -1;
    /* Blocking from here on, every read and write bounded by the timeout. */
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int one = 1;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    return fd;
}

/* The first queued OpenSSL error as text, or fallback. */
static const char *rconn_ssl_reason(char *buf, size_t len, const char *fallback) {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return fallback;
    ERR_error_string_n(e, buf, len);
    return buf;
}

/* Wrap c->fd in TLS: verify the server's chain and name, present a client
 * certificate when one is configured. Returns 0, or -1 with err. */
static int rconn_tls(rconn *c, const struct rconn_target *t, char *err, size_t errlen) {
    char why[160];
    unsigned char v6[16];
    if ((c->ctx = SSL_CTX_new(TLS_client_method())) == NULL) goto ssl_error;
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if (t->ca[0] ? SSL_CTX_load_verify_locations(c->ctx, t->ca, NULL) != 1
                 : SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
        snprintf(err, errlen, "cannot load the CA %s: %s", t->ca[0] ? t->ca : "(system store)",
                 rconn_ssl_reason(why, sizeof why, "unknown error"));
        return -1;
    }
    if (t->cert[0] && (SSL_CTX_use_certificate_chain_file(c->ctx, t->cert) != 1 ||
                       SSL_CTX_use_PrivateKey_file(c->ctx, t->key, SSL_FILETYPE_PEM) != 1 ||
                       SSL_CTX_check_private_key(c->ctx) != 1)) {
        snprintf(err, errlen, "cannot use the client certificate %s with key %s: %s", t->cert, t->key,
                 rconn_ssl_reason(why, sizeof why, "unknown error"));
        return -1;
    }
    if ((c->ssl = SSL_new(c->ctx)) == NULL || SSL_set_fd(c->ssl, c->fd) != 1) goto ssl_error;
    /* The name checked is the one in the URL: an IP address against the
     * certificate's IP entries, a host name against its DNS names (and sent
     * as SNI). */
    int is_ip = inet_pton(AF_INET, t->host, v6) == 1 || inet_pton(AF_INET6, t->host, v6) == 1;
    if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), t->host) != 1
              : (SSL_set_tlsext_host_name(c->ssl, t->host) != 1 || SSL_set1_host(c->ssl, t->host) != 1))
        goto ssl_error;
    if (SSL_connect(c->ssl) != 1) {
        long vr = SSL_get_verify_result(c->ssl);
        if (vr != X509_V_OK)
            snprintf(err, errlen, "TLS: the certificate of %s:%d is not trusted: %s", t->host, t->port,
                     X509_verify_cert_error_string(vr));
        else
            snprintf(err, errlen, "TLS handshake with %s:%d failed: %s (is it a TLS port?)", t->host,
                     t->port, rconn_ssl_reason(why, sizeof why, "the server closed the connection"));
        return -1;
    }
    return 0;
ssl_error:
    snprintf(err, errlen, "TLS setup failed: %s", rconn_ssl_reason(why, sizeof why, "out of memory"));
    return -1;
}

static int rconn_flush(rconn *c) {
    size_t sent = 0;
    while (!c->failed && sent < c->outlen) {
        ssize_t n;
        if (c->ssl) {
            int w = SSL_write(c->ssl, c->out + sent, (int)(c->outlen - sent > INT_MAX ? INT_MAX : c->outlen - sent));
            n = w > 0 ? w : -1;
        } else {
            n = send(c->fd, c->out + sent, c->outlen - sent, MSG_NOSIGNAL);
        }
        if (n < 0 && errno == EINTR && !c->ssl) continue;
        if (n <= 0) rconn_fail(c, "write to Redis failed: %s", errno ? strerror(errno) : "connection closed");
        else sent += (size_t)n;
    }
    free(c->out);
    c->out = NULL;
    c->outlen = 0;
    return c->failed ? -1 : 0;
}

/* Read what the socket has (blocking up to the timeout) into the reader.
 * Returns 0, or -1 when the connection failed or timed out. */
static int rconn_fill(rconn *c) {
    char buf[RCONN_READ_CHUNK];
    ssize_t n;
    if (c->ssl) {
        int r = SSL_read(c->ssl, buf, sizeof buf);
        n = r > 0 ? r : (SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN ? 0 : -1);
    } else {
        do n = recv(c->fd, buf, sizeof buf, 0);
        while (n < 0 && errno == EINTR);
    }
    if (n == 0) rconn_fail(c, "Redis closed the connection");
    else if (n < 0) rconn_fail(c, "read from Redis failed: %s",
                               errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : strerror(errno));
    else if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) rconn_fail(c, "out of memory");
    return c->failed ? -1 : 0;
}

/* A complete reply from what was read so far: 1 with *out, 0 when more
 * bytes are needed, -1 on a protocol error. */
static int rconn_take(rconn *c, redisReply **out) {
    void *r = NULL;
    if (redisReaderGetReply(c->reader, &r) != REDIS_OK) {
        rconn_fail(c, "Redis protocol error: %s", c->reader->errstr);
        return -1;
    }
    *out = r;
    return r != NULL;
}

int rconn_get_reply(rconn *c, redisReply **out) {
    int got;
    *out = NULL;
    if (c->failed || rconn_flush(c) != 0) return -1;
    while ((got = rconn_take(c, out)) == 0)
        if (rconn_fill(c) != 0) return -1;
    return got > 0 ? 0 : -1;
}

int rconn_poll_reply(rconn *c, int timeout_ms, redisReply **out) {
    int got;
    *out = NULL;
    if (c->failed || rconn_flush(c) != 0) return -1;
    if ((got = rconn_take(c, out)) != 0) return got;
    /* Bytes OpenSSL has already decrypted do not show up in poll. */
    if (!(c->ssl && SSL_pending(c->ssl) > 0)) {
        struct pollfd p = {c->fd, POLLIN, 0};
        int ready = poll(&p, 1, timeout_ms);
        if (ready == 0 || (ready < 0 && errno == EINTR)) return 0;
        if (ready < 0) {
            rconn_fail(c, "poll failed: %s", strerror(errno));
            return -1;
        }
    }
    if (rconn_fill(c) != 0) return -1;
    return rconn_take(c, out);
}

static int rconn_vappend(rconn *c, const char *fmt, va_list ap) {
    char *cmd = NULL;
    int n = redisvFormatCommand(&cmd, fmt, ap);
    if (n < 0) {
        rconn_fail(c, "out of memory");
        return -1;
    }
    char *grown = realloc(c->out, c->outlen + (size_t)n);
    if (grown == NULL) {
        free(cmd);
        rconn_fail(c, "out of memory");
        return -1;
    }
    memcpy(grown + c->outlen, cmd, (size_t)n);
    c->out = grown;
    c->outlen += (size_t)n;
    free(cmd);
    return 0;
}

int rconn_append(rconn *c, const char *fmt, ...) {
    va_list ap;
    if (c->failed) return -1;
    va_start(ap, fmt);
    int rc = rconn_vappend(c, fmt, ap);
    va_end(ap);
    return rc;
}

redisReply *rconn_command(rconn *c, const char *fmt, ...) {
    va_list ap;
    redisReply *r = NULL;
    if (c->failed) return NULL;
    va_start(ap, fmt);
    int rc = rconn_vappend(c, fmt, ap);
    va_end(ap);
    if (rc != 0 || rconn_get_reply(c, &r) != 0) return NULL;
    return r;
}

void rconn_free(rconn *c) {
    if (c == NULL) return;
    if (c->ssl) {
        SSL_shutdown(c->ssl);          /* best effort: a close_notify, no wait */
        SSL_free(c->ssl);
    }
    SSL_CTX_free(c->ctx);
    if (c->fd >= 0) close(c->fd);
    if (c->reader) redisReaderFree(c->reader);
    free(c->out);
    free(c);
}

/* One command during the handshake; an error reply means we are refused. */
static int rconn_hello(rconn *c, const char *what, char *err, size_t errlen,
                       enum rconn_failure *why, redisReply *r) {
    if (r == NULL) {
        *why = RCONN_REFUSED;          /* a server that drops us mid-handshake is not one we can use */
        snprintf(err, errlen, "%s: %s (a TLS port needs rediss://)", what, c->err);
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        *why = RCONN_REFUSED;
        snprintf(err, errlen, "%s refused: %s", what, r->str);
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

rconn *rconn_open(const struct rconn_target *t, int timeout_ms, enum rconn_failure *why, char *err,
                  size_t errlen) {
    rconn *c = calloc(1, sizeof *c);
    *why = RCONN_UNREACHABLE;
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->fd = -1;
    c->timeout_ms = timeout_ms;
    if ((c->reader = redisReaderCreate()) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if ((c->fd = rconn_tcp(t, timeout_ms, err, errlen)) < 0) goto fail;
    if (t->tls && rconn_tls(c, t, err, errlen) != 0) {
        *why = RCONN_REFUSED;
        goto fail;
    }
    /* Authenticate, select, and prove the other end speaks RESP (a plain
     * connection to a TLS port fails here, not on the first real command). */
    if (t->password[0] &&
        rconn_hello(c, "AUTH", err, errlen, why,
                    t->user[0] ? rconn_command(c, "AUTH %s %s", t->user, t->password)
                               : rconn_command(c, "AUTH %s", t->password)) != 0)
        goto fail;
    if (t->db != 0 && rconn_hello(c, "SELECT", err, errlen, why, rconn_command(c, "SELECT %d", t->db)) != 0)
        goto fail;
    if (rconn_hello(c, "PING", err, errlen, why, rconn_command(c, "PING")) != 0) goto fail;
    return c;
fail:
    rconn_free(c);
    return NULL;
}
