/* bare.c — the yardstick of the read benchmark: a libmicrohttpd server that
 * does nothing but answer fixed bytes.
 *
 * It runs the thread model of engine/http.c (an internal polling thread per
 * pool member, epoll, a pool of --threads) and answers each configured path
 * with a body of the given size, so "sluiced / bare" compares one route's
 * whole cost against the cost of moving the same bytes through the same
 * library on the same machine. Bodies are built once and shared by every
 * request; anything else answers 404. Connections are kept alive, as
 * sluiced keeps them; --close-each answers early instead, which makes
 * libmicrohttpd close every connection (the yardstick issue 16 first used). It listens on 127.0.0.1 only, prints
 * {"port":N} on stdout once it listens, and stops by itself after --seconds.
 *
 *   bare --threads 2 --seconds 60 --route /metrics=4711=text/plain \
 *        --route /api/v1/scaling=2048
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BARE_ROUTES_MAX 32

struct bare_route {
    char path[256];
    struct MHD_Response *response;      /* shared by every request; freed at exit */
};

struct bare {
    struct bare_route routes[BARE_ROUTES_MAX];
    int n;
    int close_each;                     /* --close-each: a connection per request */
    struct MHD_Response *not_found;
};

static volatile sig_atomic_t bare_stop;

static void bare_on_signal(int sig) {
    (void)sig;
    bare_stop = 1;
}

static enum MHD_Result bare_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                       const char *method, const char *version, const char *upload,
                                       size_t *upload_size, void **state) {
    struct bare *b = cls;
    (void)method;
    (void)version;
    (void)upload;
    /* Answer on the second call, as engine/http.c does: a response queued
     * before the request is complete makes libmicrohttpd close the
     * connection, and the yardstick would pay a connect per request. */
    static int seen;
    if (*state == NULL && !b->close_each) {
        *state = &seen;
        return MHD_YES;
    }
    if (*upload_size) {                 /* bodies are not read, only skipped */
        *upload_size = 0;
        return MHD_YES;
    }
    for (int i = 0; i < b->n; i++)
        if (strcmp(url, b->routes[i].path) == 0)
            return MHD_queue_response(conn, MHD_HTTP_OK, b->routes[i].response);
    return MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, b->not_found);
}

/* Parse "PATH=BYTES[=CONTENT-TYPE]" into a route whose body is BYTES of
 * JSON-looking filler. Returns 0, or -1 with a message on stderr. */
static int bare_add_route(struct bare *b, const char *spec) {
    char copy[512], *eq, *type = NULL, *end;
    if (b->n == BARE_ROUTES_MAX || strlen(spec) >= sizeof copy) goto bad;
    snprintf(copy, sizeof copy, "%s", spec);
    if ((eq = strchr(copy, '=')) == NULL || copy[0] != '/') goto bad;
    *eq++ = '\0';
    if ((type = strchr(eq, '=')) != NULL) *type++ = '\0';
    long size = strtol(eq, &end, 10);
    if (*end || size < 2 || size > 64L * 1024 * 1024 || strlen(copy) >= sizeof b->routes[0].path) goto bad;

    char *body = malloc((size_t)size);
    if (body == NULL) goto bad;
    memset(body, 'x', (size_t)size);
    body[0] = '"';
    body[size - 1] = '"';
    struct MHD_Response *r = MHD_create_response_from_buffer((size_t)size, body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        goto bad;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type ? type : "application/json");
    snprintf(b->routes[b->n].path, sizeof b->routes[b->n].path, "%s", copy);
    b->routes[b->n++].response = r;
    return 0;
bad:
    fprintf(stderr, "bare: --route wants PATH=BYTES[=CONTENT-TYPE] (2..64 MiB, at most %d routes): %s\n",
            BARE_ROUTES_MAX, spec);
    return -1;
}

int main(int argc, char **argv) {
    struct bare b = {0};
    struct MHD_Daemon *d = NULL;
    int threads = 2, seconds = 60, port = 0, rc = 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL && strcmp(a, "--close-each") != 0) goto usage;
        if (strcmp(a, "--threads") == 0) threads = atoi(v);
        else if (strcmp(a, "--seconds") == 0) seconds = atoi(v);
        else if (strcmp(a, "--port") == 0) port = atoi(v);
        else if (strcmp(a, "--close-each") == 0) {
            b.close_each = 1;
            continue;
        } else if (strcmp(a, "--route") == 0) {
            if (bare_add_route(&b, v) != 0) goto done;
        } else goto usage;
        i++;
    }
    if (threads < 1 || threads > 256 || seconds < 1 || port < 0 || port > 65535) goto usage;

    static char nf[] = "{\"error\":\"not_found\"}";
    b.not_found = MHD_create_response_from_buffer(sizeof nf - 1, nf, MHD_RESPMEM_PERSISTENT);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* The flags and limits of engine/http.c that shape throughput. */
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)port, NULL, NULL,
                         bare_on_request, &b, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
                         MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
                         MHD_OPTION_CONNECTION_LIMIT, 1024u, MHD_OPTION_PER_IP_CONNECTION_LIMIT, 1024u,
                         MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "bare: cannot listen on 127.0.0.1:%d\n", port);
        goto done;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("{\"port\":%u}\n", di ? di->port : (unsigned)port);
    fflush(stdout);
    signal(SIGTERM, bare_on_signal);
    signal(SIGINT, bare_on_signal);
    for (int t = 0; t < seconds * 10 && !bare_stop; t++) usleep(100000);
    rc = 0;
    goto done;
usage:
    fprintf(stderr, "usage: bare [--threads N] [--seconds S] [--port P] [--close-each] --route PATH=BYTES[=TYPE]...\n");
done:
    if (d) MHD_stop_daemon(d);
    for (int i = 0; i < b.n; i++) MHD_destroy_response(b.routes[i].response);
    if (b.not_found) MHD_destroy_response(b.not_found);
    return rc;
}
