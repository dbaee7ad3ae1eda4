/* test_http.c — static path rules, and a real server on 127.0.0.1 spoken to
 * over a plain TCP socket: request ids, static files, body cap, errors. */
#include "unit.h"
#include "http.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static char dir[64], ui[96];

TEST(static_paths_stay_inside_the_ui_folder) {
    char long_path[601];
    EXPECT(http_static_path_ok("index.html"));
    EXPECT(http_static_path_ok("js/app.js"));
    EXPECT(http_static_path_ok("a/b/c.min.css"));
    static const char *const bad[] = {"", "..", "../x", "a/../b", ".", "./a", ".env", "a/.git/x",
                                      "a//b", "a/", "/abs", "a\\b", "..\\x", "a\tb", "a\nb", NULL};
    for (const char *const *p = bad; *p; p++)
        if (http_static_path_ok(*p)) UNIT_FAIL("accepted \"%s\"", *p);
    memset(long_path, 'a', 600);
    long_path[600] = '\0';
    EXPECT(!http_static_path_ok(long_path));
    EXPECT(!http_static_path_ok(NULL));
}

TEST(response_headers_are_validated) {
    struct http_response r;
    memset(&r, 0, sizeof r);
    EXPECT_INT(http_add_header(&r, "X-Ok", "fine\tvalue"), 0);
    EXPECT_INT(http_add_header(&r, "X Bad", "v"), -1);
    EXPECT_INT(http_add_header(&r, "X-Split", "a\r\nSet-Cookie: x=1"), -1);
    EXPECT_INT(http_add_header(&r, "", "v"), -1);
    EXPECT_INT(http_add_header(&r, "X-Null", NULL), -1);
    for (int i = 1; i < HTTP_MAX_HEADERS; i++) EXPECT_INT(http_add_header(&r, "X-N", "v"), 0);
    EXPECT_INT(http_add_header(&r, "X-Full", "v"), -1);
    EXPECT_INT(r.nheaders, HTTP_MAX_HEADERS);
    http_response_clear(&r);
    EXPECT_INT(r.nheaders, 0);
}

TEST(error_envelope_has_code_message_details_and_request_id) {
    struct http_request req;
    struct http_response r;
    memset(&req, 0, sizeof req);
    memset(&r, 0, sizeof r);
    strcpy(req.request_id, "rid-42");
    http_respond_error(&r, &req, 422, "out_of_bounds", "too big", json_pack("{s:i}", "max", 64));
    EXPECT_INT(r.status, 422);
    EXPECT_CONTAINS(r.content_type, "application/json");
    json_t *body = json_loads(r.body, 0, NULL);
    json_t *e = json_object_get(body, "error");
    EXPECT_STR(json_string_value(json_object_get(e, "code")), "out_of_bounds");
    EXPECT_STR(json_string_value(json_object_get(e, "message")), "too big");
    EXPECT_INT(json_integer_value(json_object_get(json_object_get(e, "details"), "max")), 64);
    EXPECT_STR(json_string_value(json_object_get(body, "request_id")), "rid-42");
    json_decref(body);
    http_response_clear(&r);
}

/* ---- a live server ----------------------------------------------------- */

static void collect_query(void *ud, const char *key, const char *value) {
    json_object_set_new(ud, key, value ? json_string(value) : json_null());
}

/* What /borrowed lends, and how many times its release ran. */
static const char lent[] = "{\"lent\":\"not copied\"}";
static atomic_int released;

static void release_lent(void *cls) {
    if (cls == lent) atomic_fetch_add(&released, 1);
}

/* Echo what the handler saw; /silent leaves the response empty; /borrowed
 * lends bytes, and /replaced lends them and then answers something else. */
static void echo_handler(void *ud, struct http_request *req, struct http_response *resp) {
    (void)ud;
    if (strcmp(req->path, "/silent") == 0) return;
    if (strcmp(req->path, "/borrowed") == 0 || strcmp(req->path, "/replaced") == 0) {
        http_respond_borrowed(resp, 200, lent, strlen(lent), release_lent, (void *)lent);
        util_copy(resp->content_type, sizeof resp->content_type, "application/json");
        if (strcmp(req->path, "/replaced") == 0) http_respond_json(resp, 201, json_pack("{}"));
        return;
    }
    json_t *query = json_object();
    http_query_foreach(req, collect_query, query);
    const char *custom = http_header(req, "x-custom"), *sid = http_cookie(req, "sid");
    http_respond_json(resp, 200, json_pack("{s:s, s:s, s:s%, s:o, s:s?, s:s?}", "path", req->path,
                                           "method", req->method, "body", req->body,
                                           req->body_len, "query", query, "custom", custom,
                                           "sid", sid));
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static http_server *start(size_t max_body) {
    char err[256], path[160];
    strcpy(dir, "/tmp/sluice-http-XXXXXX");
    if (mkdtemp(dir) == NULL) return NULL;
    snprintf(ui, sizeof ui, "%s/ui", dir);
    mkdir(ui, 0755);
    snprintf(path, sizeof path, "%s/index.html", ui);
    write_file(path, "<h1>sluice</h1>\n");
    snprintf(path, sizeof path, "%s/app.js", ui);
    write_file(path, "console.log(1)\n");
    snprintf(path, sizeof path, "%s/.env", ui);
    write_file(path, "SECRET=1\n");
    snprintf(path, sizeof path, "%s/secret", dir);
    write_file(path, "outside the ui\n");
    snprintf(path, sizeof path, "%s/evil", ui);
    if (symlink("/etc/passwd", path) != 0) return NULL;
    snprintf(path, sizeof path, "%s/sub", ui);
    mkdir(path, 0755);
    struct http_options opt = {.host = "127.0.0.1", .port = 0, .threads = 2, .max_body = max_body,
                               .conn_limit = 16, .per_ip_limit = 16, .conn_timeout_s = 5,
                               .ui_dir = ui, .handler = echo_handler};
    return http_start(&opt, err, sizeof err);
}

static void stop(http_server *srv) {
    static const char *const files[] = {"ui/index.html", "ui/app.js", "ui/.env", "ui/evil",
                                        "secret", NULL};
    char path[160];
    http_stop(srv);
    for (const char *const *f = files; *f; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, *f);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/sub", ui);
    rmdir(path);
    rmdir(ui);
    rmdir(dir);
}

/* Send raw bytes, read until the server closes; malloc'd answer or NULL. */
static char *exchange(const http_server *srv, const char *raw, size_t len) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port(srv))};
    struct timeval tv = {3, 0};
    size_t used = 0, cap = 65536;
    char *buf = malloc(cap);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (buf == NULL || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send(fd, raw, len, 0) != (ssize_t)len) {
        close(fd);
        free(buf);
        return NULL;
    }
    for (ssize_t n; used + 1 < cap && (n = recv(fd, buf + used, cap - used - 1, 0)) > 0;)
        used += (size_t)n;
    buf[used] = '\0';
    close(fd);
    return buf;
}

static char *get(const http_server *srv, const char *path, const char *extra_headers) {
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n",
                     path, extra_headers ? extra_headers : "");
    return exchange(srv, req, (size_t)n);
}

static int status_of(const char *resp) {
    int status = 0;
    return resp && sscanf(resp, "HTTP/1.1 %d", &status) == 1 ? status : 0;
}

/* Value of a response header (case-insensitive name) copied into out. */
static const char *header_of(const char *resp, const char *name, char out[256]) {
    size_t nlen = strlen(name);
    out[0] = '\0';
    for (const char *line = resp ? strstr(resp, "\r\n") : NULL; line && line[2] != '\r';
         line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, name, nlen) == 0 && line[2 + nlen] == ':') {
            const char *v = line + 3 + nlen, *end = strstr(v, "\r\n");
            while (*v == ' ') v++;
            snprintf(out, 256, "%.*s", (int)(end - v), v);
            return out;
        }
    }
    return NULL;
}

static const char *body_of(const char *resp) {
    const char *b = resp ? strstr(resp, "\r\n\r\n") : NULL;
    return b ? b + 4 : "";
}

static int is_generated_id(const char *s) {
    if (strlen(s) != 16) return 0;
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s)) return 0;
    return 1;
}

TEST(handler_answers_json_with_a_request_id) {
    char h[256];
    http_server *srv = start(1024);
    ASSERT(srv != NULL);
    EXPECT(http_port(srv) > 0);
    char *r = get(srv, "/healthz?a=1&flag", "X-Custom: yes\r\nCookie: sid=abc\r\n");
    EXPECT_INT(status_of(r), 200);
    EXPECT_CONTAINS(header_of(r, "content-type", h), "application/json");
    EXPECT(header_of(r, "X-Request-Id", h) != NULL && is_generated_id(h));
    EXPECT_STR(header_of(r, "X-Content-Type-Options", h), "nosniff");
    EXPECT_STR(body_of(r), "{\"body\":\"\",\"custom\":\"yes\",\"method\":\"GET\","
                           "\"path\":\"/healthz\",\"query\":{\"a\":\"1\",\"flag\":null},"
                           "\"sid\":\"abc\"}");
    free(r);
    r = get(srv, "/silent", NULL);                 /* no answer from the handler */
    EXPECT_INT(status_of(r), 500);
    EXPECT_CONTAINS(body_of(r), "\"internal\"");
    free(r);
    stop(srv);
}

/* released reaches want within a second (the server lets go of a
 * response when it cleans up the connection, just after the client saw
 * the end of it). */
static int released_becomes(int want) {
    for (int i = 0; i < 100 && atomic_load(&released) != want; i++) usleep(10000);
    return atomic_load(&released) == want;
}

TEST(a_borrowed_body_is_sent_as_is_and_released_once) {
    char h[256];
    http_server *srv = start(1024);
    ASSERT(srv != NULL);
    atomic_store(&released, 0);
    char *r = get(srv, "/borrowed", NULL);
    EXPECT_INT(status_of(r), 200);
    EXPECT_STR(body_of(r), lent);
    EXPECT_STR(header_of(r, "Content-Length", h), "21");
    EXPECT_STR(header_of(r, "Content-Type", h), "application/json");
    free(r);
    EXPECT(released_becomes(1));
    /* An answer that replaced the lent bytes let them go at once. */
    r = get(srv, "/replaced", NULL);
    EXPECT_INT(status_of(r), 201);
    EXPECT_STR(body_of(r), "{}");
    free(r);
    EXPECT(released_becomes(2));
    /* HEAD sends no body, and still lets go. */
    r = exchange(srv, "HEAD /borrowed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 55);
    EXPECT_INT(status_of(r), 200);
    EXPECT_STR(body_of(r), "");
    free(r);
    EXPECT(released_becomes(3));
    /* A response dropped before it is sent lets go too. */
    struct http_response dropped;
    memset(&dropped, 0, sizeof dropped);
    http_respond_borrowed(&dropped, 200, lent, strlen(lent), release_lent, (void *)lent);
    http_response_clear(&dropped);
    EXPECT(released_becomes(4));
    stop(srv);
    EXPECT_INT(atomic_load(&released), 4);
}

TEST(valid_client_request_id_is_echoed_and_invalid_replaced) {
    char h[256], extra[400], long_id[201];
    http_server *srv = start(1024);
    ASSERT(srv != NULL);
    char *r = get(srv, "/x", "X-Request-Id: abc-123\r\n");
    EXPECT_STR(header_of(r, "X-Request-Id", h), "abc-123");
    free(r);
    r = get(srv, "/x", "X-Request-Id: has spaces in it\r\n");
    EXPECT(header_of(r, "X-Request-Id", h) != NULL && is_generated_id(h));
    free(r);
    memset(long_id, 'a', 200);
    long_id[200] = '\0';
    snprintf(extra, sizeof extra, "X-Request-Id: %s\r\n", long_id);
    r = get(srv, "/x", extra);
    EXPECT(header_of(r, "X-Request-Id", h) != NULL && is_generated_id(h));
    free(r);
    stop(srv);
}

TEST(serves_ui_files_and_nothing_outside) {
    char h[256];
    http_server *srv = start(1024);
    ASSERT(srv != NULL);
    char *r = get(srv, "/", NULL);
    EXPECT_INT(status_of(r), 200);
    EXPECT_CONTAINS(header_of(r, "Content-Type", h), "text/html");
    EXPECT_STR(body_of(r), "<h1>sluice</h1>\n");
    free(r);
    r = get(srv, "/ui/app.js", NULL);
    EXPECT_INT(status_of(r), 200);
    EXPECT_CONTAINS(header_of(r, "Content-Type", h), "javascript");
    free(r);
    static const char *const refused[] = {"/ui/../secret", "/ui/evil", "/ui/.env", "/ui/sub",
                                          "/ui/missing.html", "/ui/%2e%2e/secret", NULL};
    for (const char *const *p = refused; *p; p++) {
        r = get(srv, *p, NULL);
        if (status_of(r) != 404 || strstr(body_of(r), "\"not_found\"") == NULL ||
            strstr(body_of(r), "outside the ui") || strstr(body_of(r), "root:"))
            UNIT_FAIL("GET %s answered %d %s", *p, status_of(r), body_of(r));
        free(r);
    }
    static const char post[] = "POST /ui/app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                               "Content-Length: 0\r\n\r\n";
    r = exchange(srv, post, sizeof post - 1);
    EXPECT_INT(status_of(r), 405);
    free(r);
    stop(srv);
}

TEST(bodies_over_the_cap_get_413) {
    char req[4096];
    http_server *srv = start(1024);
    ASSERT(srv != NULL);
    /* Declared too large: answered from the headers alone. */
    int n = snprintf(req, sizeof req, "POST /api HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                      "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n");
    char *r = exchange(srv, req, (size_t)n);
    EXPECT_INT(status_of(r), 413);
    EXPECT_CONTAINS(body_of(r), "\"body_too_large\"");
    free(r);
    /* Chunked: the cap applies to what arrives. */
    n = snprintf(req, sizeof req, "POST /api HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        n += snprintf(req + n, sizeof req - (size_t)n, "258\r\n");   /* 600 bytes */
        memset(req + n, 'x', 600);
        n += 600;
        n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
    }
    n += snprintf(req + n, sizeof req - (size_t)n, "0\r\n\r\n");
    r = exchange(srv, req, (size_t)n);
    EXPECT_INT(status_of(r), 413);
    EXPECT_CONTAINS(body_of(r), "\"body_too_large\"");
    free(r);
    /* Under the cap the handler gets the body. */
    n = snprintf(req, sizeof req, "POST /api HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                  "Content-Length: 10\r\n\r\n0123456789");
    r = exchange(srv, req, (size_t)n);
    EXPECT_INT(status_of(r), 200);
    EXPECT_CONTAINS(body_of(r), "\"body\":\"0123456789\"");
    free(r);
    stop(srv);
}

TEST(start_refuses_bad_hosts_and_busy_ports) {
    char err[256] = "";
    http_server *first = start(1024);
    ASSERT(first != NULL);
    struct http_options opt = {.host = "not-an-ip", .threads = 1, .max_body = 1024, .conn_limit = 4,
                               .per_ip_limit = 4, .conn_timeout_s = 5, .ui_dir = ui,
                               .handler = echo_handler};
    EXPECT(http_start(&opt, err, sizeof err) == NULL);
    EXPECT_CONTAINS(err, "not-an-ip");
    err[0] = '\0';
    opt.host = "127.0.0.1";
    opt.port = http_port(first);
    EXPECT(http_start(&opt, err, sizeof err) == NULL);
    EXPECT(err[0] != '\0');
    stop(first);
    http_stop(NULL);
}

int main(void) {
    RUN(static_paths_stay_inside_the_ui_folder);
    RUN(response_headers_are_validated);
    RUN(error_envelope_has_code_message_details_and_request_id);
    RUN(handler_answers_json_with_a_request_id);
    RUN(a_borrowed_body_is_sent_as_is_and_released_once);
    RUN(valid_client_request_id_is_echoed_and_invalid_replaced);
    RUN(serves_ui_files_and_nothing_outside);
    RUN(bodies_over_the_cap_get_413);
    RUN(start_refuses_bad_hosts_and_busy_ports);
    return UNIT_DONE();
}
