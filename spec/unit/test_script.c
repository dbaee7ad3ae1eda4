/* test_script.c — the Lua host for endpoint handlers (script.c), through a
 * real server on 127.0.0.1: small scripts written by the test into a
 * temporary folder, a migrated SQLite store with real tokens and a cookie
 * session, and requests over a plain TCP socket. Pins routing, the route
 * table checks at load time, authentication, scopes and CSRF, JSON bodies,
 * what a handler's return values become, handler errors and the budget, and
 * one Lua state per HTTP thread. */
#include "unit.h"
#include "bind.h"
#include "config.h"
#include "log.h"
#include "store.h"
#include "luajson.h"
#include "script.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- the store and its credentials (made once in main) ------------------------------ */

static char db_dir[64], db_path[128];
static store *st;
static char admin_token[AUTH_TOKEN_MAX], read_token[AUTH_TOKEN_MAX], write_token[AUTH_TOKEN_MAX];
static char revoked_token[AUTH_TOKEN_MAX], expired_token[AUTH_TOKEN_MAX];
static char session_cookie[STORE_HASH_MAX], session_csrf[STORE_HASH_MAX];   /* of read_token */

static int make_token(const char *name, unsigned scopes, int64_t expires_in_s, int64_t now,
                      char token[AUTH_TOKEN_MAX], char id[STORE_ID_MAX]) {
    return auth_token_create(st, name, scopes, expires_in_s, now, token, id);
}

static int open_store(void) {
    struct store_options opt = {1000, 2};
    struct auth_principal p;
    char url[160], err[256], id[STORE_ID_MAX];
    int applied = 0;
    int64_t now = util_now_ms();
    strcpy(db_dir, "/tmp/sluice-script-db-XXXXXX");
    if (mkdtemp(db_dir) == NULL) return -1;
    snprintf(db_path, sizeof db_path, "%s/s.db", db_dir);
    snprintf(url, sizeof url, "sqlite:%s", db_path);
    st = store_open(url, &opt, err, sizeof err);
    if (st == NULL || store_migrate(st, &applied) != STORE_OK) return -1;
    if (make_token("root", AUTH_SCOPE_ADMIN, 0, now, admin_token, id) != STORE_OK ||
        make_token("reader", AUTH_SCOPE_READ, 0, now, read_token, id) != STORE_OK ||
        make_token("writer", AUTH_SCOPE_WRITE, 0, now, write_token, id) != STORE_OK ||
        make_token("gone", AUTH_SCOPE_ADMIN, 0, now, revoked_token, id) != STORE_OK ||
        store_revoke_token(st, id, now) != STORE_OK ||
        make_token("old", AUTH_SCOPE_ADMIN, 1, now - 60000, expired_token, id) != STORE_OK)
        return -1;
    if (auth_session_open(st, read_token, now, &p, session_cookie) != AUTH_OK) return -1;
    util_copy(session_csrf, sizeof session_csrf, p.csrf);
    return 0;
}

static void close_store(void) {
    static const char *const suffixes[] = {"", "-wal", "-shm", NULL};
    char path[160];
    store_close(st);
    for (const char *const *s = suffixes; *s; s++) {
        snprintf(path, sizeof path, "%s%s", db_path, *s);
        unlink(path);
    }
    rmdir(db_dir);
}

/* ---- scripts in a temporary folder --------------------------------------------------- */

/* files: name, text, name, text, ..., NULL. */
static int write_scripts(char dir[64], const char *const *files) {
    char path[160];
    strcpy(dir, "/tmp/sluice-script-XXXXXX");
    if (mkdtemp(dir) == NULL) return -1;
    for (const char *const *f = files; f[0]; f += 2) {
        snprintf(path, sizeof path, "%s/%s", dir, f[0]);
        FILE *out = fopen(path, "w");
        if (out == NULL) return -1;
        fputs(f[1], out);
        fclose(out);
    }
    return 0;
}

static void remove_scripts(const char *dir, const char *const *files) {
    char path[160];
    for (const char *const *f = files; f[0]; f += 2) {
        snprintf(path, sizeof path, "%s/%s", dir, f[0]);
        unlink(path);
    }
    rmdir(dir);
}

/* Load files into a host and return it (NULL with err, as script_host_new),
 * leaving no folder behind. */
static script_host *load(const char *const *files, long budget, struct app *app, char *err,
                         size_t errlen) {
    struct sandbox_limits lim = {16 << 20, budget};
    char dir[64];
    err[0] = '\0';
    if (write_scripts(dir, files) != 0) {
        snprintf(err, errlen, "cannot write the scripts");
        return NULL;
    }
    script_host *host = script_host_new(dir, &lim, app, bind_open_sluice, err, errlen);
    remove_scripts(dir, files);
    return host;
}

/* ---- a live server ------------------------------------------------------------------- */

struct rig {
    struct app app;
    script_host *host;
    http_server *srv;
    char log_path[64];           /* stderr goes here while the rig runs, when set */
    int saved_stderr;
};

/* Stop the server, then free the host (its states belong to the server's
 * threads until they are gone) and put stderr back. */
static void rig_stop(struct rig *r) {
    http_stop(r->srv);
    script_host_free(r->host);
    if (r->saved_stderr >= 0) {
        fflush(stderr);
        dup2(r->saved_stderr, 2);
        close(r->saved_stderr);
        unlink(r->log_path);
    }
}

/* Serve files with `threads` HTTP threads and a budget per handler call.
 * With quiet, the log (stderr) goes to a file that rig_log() reads. */
static int rig_start(struct rig *r, const char *const *files, int threads, long budget, int quiet) {
    char err[512];
    memset(r, 0, sizeof *r);
    r->saved_stderr = -1;
    r->app.st = st;
    r->host = load(files, budget, &r->app, err, sizeof err);
    if (r->host == NULL) {
        UNIT_FAIL("script_host_new: %s", err);
        return -1;
    }
    if (quiet) {
        strcpy(r->log_path, "/tmp/sluice-script-log-XXXXXX");
        int fd = mkstemp(r->log_path);
        if (fd < 0) {
            rig_stop(r);
            return -1;
        }
        fflush(stderr);
        r->saved_stderr = dup(2);
        dup2(fd, 2);
        close(fd);
    }
    struct http_options opt = {.host = "127.0.0.1", .port = 0, .threads = threads,
                               .max_body = 64 << 10, .conn_limit = 32, .per_ip_limit = 32,
                               .conn_timeout_s = 10, .ui_dir = NULL, .handler = script_handle,
                               .handler_ud = r->host};
    r->srv = http_start(&opt, err, sizeof err);
    if (r->srv == NULL) {
        UNIT_FAIL("http_start: %s", err);
        rig_stop(r);
        return -1;
    }
    return 0;
}

/* What the server logged so far (quiet rigs); malloc'd. */
static char *rig_log(const struct rig *r) {
    size_t len = 0;
    char *text = util_read_file(r->log_path, 1 << 20, &len);
    return text ? text : calloc(1, 1);
}

static int dial(const struct rig *r) { return unit_dial(http_port(r->srv), 10); }

/* Send one request; headers are "Name: value\r\n" lines (may be NULL), a
 * body (may be NULL) goes with its Content-Length. */
static void send_request(int fd, const char *method, const char *path, const char *headers,
                         const char *body, int keep_alive) {
    char raw[8192];
    int n = snprintf(raw, sizeof raw, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: %s\r\n%s", method,
                     path, keep_alive ? "keep-alive" : "close", headers ? headers : "");
    if (body)
        n += snprintf(raw + n, sizeof raw - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                      strlen(body), body);
    else
        n += snprintf(raw + n, sizeof raw - (size_t)n, "\r\n");
    if (n >= (int)sizeof raw || send(fd, raw, (size_t)n, 0) != n) UNIT_FAIL("send failed");
}

struct answer {
    int status;
    char *raw;                   /* status line, headers and body */
    const char *text;            /* the body, inside raw */
    json_t *json;                /* the body parsed, or NULL */
};

/* Read one answer: up to its Content-Length, or until the server closes. */
static void read_answer(int fd, struct answer *a) {
    size_t used = 0, cap = 1 << 16;
    memset(a, 0, sizeof *a);
    a->raw = calloc(1, cap);
    for (ssize_t n; used + 1 < cap && (n = recv(fd, a->raw + used, cap - used - 1, 0)) > 0;) {
        used += (size_t)n;
        a->raw[used] = '\0';
        const char *end = strstr(a->raw, "\r\n\r\n"), *cl = strcasestr(a->raw, "\r\ncontent-length:");
        if (end && cl && cl < end && used >= (size_t)(end + 4 - a->raw) + strtoul(cl + 17, NULL, 10))
            break;
    }
    const char *end = strstr(a->raw, "\r\n\r\n");
    a->text = end ? end + 4 : "";
    if (sscanf(a->raw, "HTTP/1.1 %d", &a->status) != 1) a->status = 0;
    a->json = json_loads(a->text, JSON_DECODE_ANY, NULL);
}

static void answer_free(struct answer *a) {
    free(a->raw);
    json_decref(a->json);
    memset(a, 0, sizeof *a);
}

/* One request on its own connection; the answer is a's. */
static void request(const struct rig *r, const char *method, const char *path, const char *headers,
                    const char *body, struct answer *a) {
    int fd = dial(r);
    memset(a, 0, sizeof *a);
    if (fd < 0) {
        UNIT_FAIL("cannot connect");
        a->raw = calloc(1, 1);
        a->text = a->raw;
        return;
    }
    send_request(fd, method, path, headers, body, 0);
    read_answer(fd, a);
    close(fd);
}

/* Value of a response header (case-insensitive name) copied into out, or NULL. */
static const char *header_of(const struct answer *a, const char *name, char out[256]) {
    size_t nlen = strlen(name);
    out[0] = '\0';
    for (const char *line = strstr(a->raw, "\r\n"); line && line[2] != '\r';
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

/* The value at a dotted path of objects ("error.details.required_scope"). */
static json_t *at(json_t *v, const char *path) {
    char key[64];
    while (v && *path) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, path);
        v = json_object_get(v, key);
        path += n + (path[n] == '.');
    }
    return v;
}

static const char *str_at(const struct answer *a, const char *path) {
    return json_string_value(at(a->json, path));
}

static long long int_at(const struct answer *a, const char *path) {
    return (long long)json_integer_value(at(a->json, path));
}

/* An error answer: status, code, and the request id in the body. */
#define EXPECT_ERROR(a, st_, code)                                                                 \
    do {                                                                                           \
        EXPECT_INT((a).status, (st_));                                                             \
        EXPECT_STR(str_at(&(a), "error.code"), (code));                                            \
        EXPECT(str_at(&(a), "request_id") != NULL);                                                \
    } while (0)

/* ---- the scripts most tests serve ----------------------------------------------------- */

static const char *const app_scripts[] = {
    "00_first.lua",
    "-- loads first: the files after it see its globals\n"
    "shared = 'from 00_first'\n",

    "10_routes.lua",
    "local s = sluice\n"
    "local none, any = { scope = 'none' }, { scope = 'any' }\n"
    "local function echo(req)\n"
    "  return 200, { method = req.method, path = req.path, route = req.route,\n"
    "                request_id = req.request_id, source = req.source, params = req.params,\n"
    "                query = req.query, body = req.body, principal = req.principal,\n"
    "                body_type = type(req.body), shared = shared }\n"
    "end\n"
    "s.route('GET', '/things', none, echo)\n"
    "s.route('GET', '/things/{id}', none, echo)\n"
    "s.route('PUT', '/things/{id}', none, echo)\n"
    "s.route('DELETE', '/things/{id}', none, echo)\n"
    "s.route('GET', '/things/{id}/parts/{part}', none, echo)\n"
    "s.route('GET', '/first/{name}', none, function() return 200, { winner = 'param' } end)\n"
    "s.route('GET', '/first/fixed', none, function() return 200, { winner = 'fixed' } end)\n"
    "s.route('POST', '/public', none, echo)\n"
    "s.route('GET', '/read', { scope = 'scaling:read' }, echo)\n"
    "s.route('POST', '/write', { scope = 'scaling:write' }, echo)\n"
    "s.route('GET', '/admin', { scope = 'admin' }, echo)\n"
    "s.route('GET', '/any', any, echo)\n"
    "s.route('POST', '/any', any, echo)\n"
    "s.route('PATCH', '/any', any, echo)\n"
    "s.route('DELETE', '/any', any, echo)\n",

    "20_results.lua",
    "local s = sluice\n"
    "local none = { scope = 'none' }\n"
    "local function r(path, fn) s.route('GET', '/r/' .. path, none, fn) end\n"
    "r('text', function() return 200, 'plain words' end)\n"
    "r('typed-text', function() return 200, 'a,b', { ['content-type'] = 'text/csv' } end)\n"
    "r('headers', function()\n"
    "  return 201, { ok = true }, { ['X-Custom'] = 'yes', ['X-Number'] = 42,\n"
    "                               ['Content-Type'] = 'text/csv' }\n"
    "end)\n"
    "r('eight-headers', function()\n"
    "  local h = {}\n"
    "  for i = 1, 8 do h['X-H' .. i] = tostring(i) end\n"
    "  return 200, { ok = true }, h\n"
    "end)\n"
    "r('nine-headers', function()\n"
    "  local h = {}\n"
    "  for i = 1, 9 do h['X-H' .. i] = tostring(i) end\n"
    "  return 200, { ok = true }, h\n"
    "end)\n"
    "r('split-header', function()\n"
    "  return 200, { ok = true }, { ['X-Fine'] = 'a', ['X-Split'] = 'a\\r\\nSet-Cookie: x=1' }\n"
    "end)\n"
    "r('bad-header-name', function() return 200, { ok = true }, { ['X Bad'] = 'v' } end)\n"
    "r('list-headers', function() return 200, { ok = true }, { 'X-Pos' } end)\n"
    "r('empty', function() return 204 end)\n"
    "r('error', function() return s.error(418, 'teapot', 'short and stout', { spout = true }) end)\n"
    "r('error-shape', function() return 409, { error = { code = 'own' }, request_id = 'mine' } end)\n"
    "r('ok-with-error-key', function() return 200, { error = 'not an error' } end)\n"
    "r('raise', function() error('secret lua detail 1234') end)\n"
    "r('bad-arg', function() return s.error(200, 'x', 'y') end)\n"
    "r('string-status', function() return '200', { ok = true } end)\n"
    "r('status-600', function() return 600, { ok = true } end)\n"
    "r('function-body', function() return 200, { f = function() end } end)\n"
    "r('number-body', function() return 200, 42 end)\n"
    "r('route-late', function()\n"
    "  s.route('GET', '/late', none, function() return 200 end)\n"
    "  return 200\n"
    "end)\n",
    NULL};

/* ---- routing ------------------------------------------------------------------------- */

TEST(exact_paths_reach_their_handler_with_the_request_table) {
    struct rig r;
    struct answer a;
    char h[256];
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    request(&r, "GET", "/things?limit=5&flag&limit=7", "X-Request-Id: rid-things\r\n", NULL, &a);
    EXPECT_INT(a.status, 200);
    EXPECT_STR(header_of(&a, "Content-Type", h), "application/json; charset=utf-8");
    EXPECT_STR(str_at(&a, "method"), "GET");
    EXPECT_STR(str_at(&a, "path"), "/things");
    EXPECT_STR(str_at(&a, "route"), "/things");
    EXPECT_STR(str_at(&a, "request_id"), "rid-things");
    EXPECT_STR(str_at(&a, "source"), "api");
    EXPECT_STR(str_at(&a, "query.limit"), "7");       /* the last of repeated keys wins */
    EXPECT_STR(str_at(&a, "query.flag"), "");
    EXPECT_STR(str_at(&a, "body_type"), "nil");       /* GET: no body */
    EXPECT(at(a.json, "principal") == NULL);          /* scope none: nobody */
    EXPECT_STR(str_at(&a, "shared"), "from 00_first"); /* files load in name order, one state */
    answer_free(&a);
    rig_stop(&r);
}

TEST(path_parameters_reach_the_handler_decoded) {
    struct rig r;
    struct answer a;
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    request(&r, "GET", "/things/ingest%20q/parts/p-7", NULL, NULL, &a);
    EXPECT_INT(a.status, 200);
    EXPECT_STR(str_at(&a, "route"), "/things/{id}/parts/{part}");
    EXPECT_STR(str_at(&a, "path"), "/things/ingest q/parts/p-7");
    EXPECT_STR(str_at(&a, "params.id"), "ingest q");
    EXPECT_STR(str_at(&a, "params.part"), "p-7");
    answer_free(&a);
    /* Routes match in the order registered: the parameter route came first. */
    request(&r, "GET", "/first/fixed", NULL, NULL, &a);
    EXPECT_STR(str_at(&a, "winner"), "param");
    answer_free(&a);
    rig_stop(&r);
}

TEST(unknown_paths_get_404_not_found) {
    char long_path[400];
    struct rig r;
    struct answer a;
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    /* A parameter takes one whole, non-empty segment of at most 256 bytes. */
    snprintf(long_path, sizeof long_path, "/things/%0257d", 0);
    static const char *const unknown[] = {"/nothing", "/things/", "/things//parts/p",
                                          "/things/a/b", "/things/a/parts/", "/Things",
                                          "/things/a/parts/b/c", NULL};
    for (const char *const *p = unknown; *p; p++) {
        request(&r, "GET", *p, NULL, NULL, &a);
        if (a.status != 404 || !str_at(&a, "error.code") ||
            strcmp(str_at(&a, "error.code"), "not_found") != 0)
            UNIT_FAIL("GET %s answered %d %s", *p, a.status, a.text);
        answer_free(&a);
    }
    request(&r, "GET", long_path, NULL, NULL, &a);
    EXPECT_ERROR(a, 404, "not_found");
    answer_free(&a);
    snprintf(long_path, sizeof long_path, "/things/%0256d", 0);
    request(&r, "GET", long_path, NULL, NULL, &a);
    EXPECT_INT(a.status, 200);
    answer_free(&a);
    rig_stop(&r);
}

TEST(a_known_path_with_another_method_gets_405_and_allow) {
    struct rig r;
    struct answer a;
    char h[256];
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    request(&r, "POST", "/things/a", NULL, "{}", &a);
    EXPECT_ERROR(a, 405, "method_not_allowed");
    EXPECT_STR(header_of(&a, "Allow", h), "GET, PUT, DELETE");   /* in registration order */
    answer_free(&a);
    /* Before authentication: the method is wrong whoever asks. */
    request(&r, "PUT", "/read", NULL, "{}", &a);
    EXPECT_ERROR(a, 405, "method_not_allowed");
    EXPECT_STR(header_of(&a, "Allow", h), "GET");
    answer_free(&a);
    rig_stop(&r);
}

TEST(a_nul_in_the_path_is_refused_before_the_scripts) {
    struct rig r;
    struct answer a;
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    request(&r, "GET", "/things/a%00b", NULL, NULL, &a);
    EXPECT_ERROR(a, 400, "invalid_request");                    /* http.c's answer */
    EXPECT(at(a.json, "params") == NULL);
    answer_free(&a);
    request(&r, "GET", "/things?x=%00", NULL, NULL, &a);
    EXPECT_ERROR(a, 400, "invalid_request");
    answer_free(&a);
    rig_stop(&r);
}

/* ---- the route table at load time ----------------------------------------------------- */

/* Load one file "10_bad.lua" holding text; NULL expected, err returned. */
static void expect_load_refused(const char *text, const char *where, const char *why) {
    const char *const files[] = {"00_ok.lua", "x = 1\n", "10_bad.lua", text, NULL};
    struct app app = {.st = st};
    char err[512];
    script_host *host = load(files, 5000000, &app, err, sizeof err);
    if (host != NULL) {
        UNIT_FAIL("loaded: %s", text);
        script_host_free(host);
        return;
    }
    EXPECT_CONTAINS(err, where);
    EXPECT_CONTAINS(err, why);
}

TEST(bad_route_declarations_are_refused_at_load_naming_file_and_line) {
    char text[512];
    expect_load_refused("local f = function() end\n\nsluice.route('FETCH', '/x', { scope = 'none' }, f)\n",
                        "10_bad.lua:3:", "method must be GET, POST, PUT, PATCH or DELETE");
    expect_load_refused("sluice.route('get', '/x', { scope = 'none' }, function() end)\n",
                        "10_bad.lua:1:", "method must be");
    expect_load_refused("sluice.route('GET', 'x', { scope = 'none' }, function() end)\n",
                        "10_bad.lua:1:", "pattern must start with '/'");
    snprintf(text, sizeof text, "sluice.route('GET', '/%095d', { scope = 'none' }, function() end)\n", 0);
    expect_load_refused(text, "10_bad.lua:1:", "shorter than 96 bytes");
    expect_load_refused("sluice.route('GET', '/x', { scope = 'root' }, function() end)\n",
                        "10_bad.lua:1:", "scope must be none, any, scaling:read, scaling:write, scaling:approve or admin");
    expect_load_refused("sluice.route('GET', '/x', {}, function() end)\n", "10_bad.lua:1:",
                        "options.scope must be a string");
    expect_load_refused("sluice.route('GET', '/x', 'none', function() end)\n", "10_bad.lua:1:",
                        "bad argument #3");
    expect_load_refused("sluice.route('GET', '/x', { scope = 'none' }, 'handler')\n",
                        "10_bad.lua:1:", "bad argument #4");
    expect_load_refused("sluice.route('GET', '/x', { scope = 'none' })\n", "10_bad.lua:1:",
                        "expected method, pattern, options, handler");
    expect_load_refused("local n = { scope = 'none' }\n"
                        "sluice.route('GET', '/x/{a}', n, function() end)\n"
                        "sluice.route('POST', '/x/{a}', n, function() end)\n"
                        "sluice.route('GET', '/x/{a}', n, function() end)\n",
                        "10_bad.lua:4:", "sluice.route: GET /x/{a} registered twice");
    expect_load_refused("for i = 1, 65 do\n"
                        "  sluice.route('GET', '/r' .. i, { scope = 'none' }, function() end)\n"
                        "end\n",
                        "10_bad.lua:2:", "sluice.route: too many routes");
    expect_load_refused("sluice.route('GET', '/x', { scope = 'none' }, function() end\n",
                        "10_bad.lua:2:", "')' expected");          /* a syntax error, at <eof> */
    expect_load_refused("local t = nil\nreturn t.x\n", "10_bad.lua:2:", "attempt to index");
}

TEST(the_route_table_holds_64_routes_and_the_folder_needs_scripts) {
    const char *const full[] = {"routes.lua",
                                "for i = 1, 64 do\n"
                                "  sluice.route('GET', '/r' .. i, { scope = 'none' }, function() end)\n"
                                "end\n",
                                "README.md", "not a script", ".hidden.lua", "error('skipped')", NULL};
    const char *const none[] = {"notes.txt", "x", ".h.lua", "error('skipped')", NULL};
    struct app app = {.st = st};
    char err[512];
    script_host *host = load(full, 5000000, &app, err, sizeof err);
    ASSERT(host != NULL);
    EXPECT_INT(script_route_count(host), SCRIPT_MAX_ROUTES);
    script_host_free(host);
    EXPECT(load(none, 5000000, &app, err, sizeof err) == NULL);
    EXPECT_CONTAINS(err, "scripts: no *.lua files in /tmp/sluice-script-");
    host = load(app_scripts, 5000000, &app, err, sizeof err);
    EXPECT(host != NULL);
    script_host_free(host);
    script_host_free(NULL);
}

TEST(sluice_route_inside_a_handler_is_a_500_and_adds_nothing) {
    struct rig r;
    struct answer a;
    ASSERT(rig_start(&r, app_scripts, 1, 5000000, 1) == 0);
    request(&r, "GET", "/r/route-late", NULL, NULL, &a);
    EXPECT_ERROR(a, 500, "internal");
    answer_free(&a);
    request(&r, "GET", "/late", NULL, NULL, &a);
    EXPECT_ERROR(a, 404, "not_found");
    answer_free(&a);
    char *log = rig_log(&r);
    EXPECT_CONTAINS(log, "sluice.route: only at load time");
    free(log);
    rig_stop(&r);
}

/* ---- authentication and scopes --------------------------------------------------------- */

static void bearer(char out[256], const char *token) {
    snprintf(out, 256, "Authorization: Bearer %s\r\n", token);
}

TEST(no_credentials_get_401_with_www_authenticate) {
    struct rig r;
    struct answer a;
    char h[256];
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    static const char *const guarded[] = {"/read", "/admin", "/any", NULL};
    for (const char *const *p = guarded; *p; p++) {
        request(&r, "GET", *p, NULL, NULL, &a);
        EXPECT_ERROR(a, 401, "unauthenticated");
        EXPECT_STR(header_of(&a, "WWW-Authenticate", h), "Bearer realm=\"sluice\"");
        EXPECT_STR(str_at(&a, "error.message"), "send Authorization: Bearer <token>, or log in");
        answer_free(&a);
    }
    /* Before the body is looked at. */
    request(&r, "POST", "/write", NULL, "not json", &a);
    EXPECT_ERROR(a, 401, "unauthenticated");
    answer_free(&a);
    rig_stop(&r);
}

TEST(unknown_revoked_expired_or_non_bearer_credentials_get_401) {
    struct rig r;
    struct answer a;
    char hdr[256], h[256];
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    const char *const refused[] = {"Authorization: Bearer slc_000000000000_0000\r\n",
                                   "Authorization: Bearer \r\n",
                                   "Authorization: bearer x\r\n",
                                   "Authorization: Basic cm9vdDpyb290\r\n",
                                   "Cookie: sluice_session=0123\r\n",
                                   NULL};
    for (const char *const *c = refused; *c; c++) {
        request(&r, "GET", "/any", *c, NULL, &a);
        if (a.status != 401 || !header_of(&a, "WWW-Authenticate", h))
            UNIT_FAIL("%s answered %d %s", *c, a.status, a.text);
        EXPECT_STR(str_at(&a, "error.message"), "credentials are unknown, expired or revoked");
        answer_free(&a);
    }
    bearer(hdr, revoked_token);
    request(&r, "GET", "/any", hdr, NULL, &a);
    EXPECT_ERROR(a, 401, "unauthenticated");
    answer_free(&a);
    bearer(hdr, expired_token);
    request(&r, "GET", "/any", hdr, NULL, &a);
    EXPECT_ERROR(a, 401, "unauthenticated");
    answer_free(&a);
    /* An Authorization header is the credential when both are sent: a good
     * session cookie does not rescue a bad one. */
    snprintf(hdr, sizeof hdr, "Authorization: Basic x\r\nCookie: sluice_session=%s\r\n",
             session_cookie);
    request(&r, "GET", "/any", hdr, NULL, &a);
    EXPECT_ERROR(a, 401, "unauthenticated");
    answer_free(&a);
    rig_stop(&r);
}

TEST(a_token_without_the_routes_scope_gets_403_forbidden_naming_it) {
    struct rig r;
    struct answer a;
    char hdr[256];
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    bearer(hdr, read_token);
    request(&r, "POST", "/write", hdr, "{}", &a);
    EXPECT_ERROR(a, 403, "forbidden");
    EXPECT_STR(str_at(&a, "error.details.required_scope"), "scaling:write");
    EXPECT_STR(str_at(&a, "error.message"), "this needs the scaling:write scope");
    answer_free(&a);
    request(&r, "GET", "/admin", hdr, NULL, &a);
    EXPECT_ERROR(a, 403, "forbidden");
    EXPECT_STR(str_at(&a, "error.details.required_scope"), "admin");
    answer_free(&a);
    bearer(hdr, write_token);                      /* write does not imply read */
    request(&r, "GET", "/read", hdr, NULL, &a);
    EXPECT_ERROR(a, 403, "forbidden");
    EXPECT_STR(str_at(&a, "error.details.required_scope"), "scaling:read");
    answer_free(&a);
    /* Before the body: a refused write is not told its JSON is bad. */
    bearer(hdr, read_token);
    request(&r, "POST", "/write", hdr, "{bad", &a);
    EXPECT_ERROR(a, 403, "forbidden");
    answer_free(&a);
    rig_stop(&r);
}

TEST(tokens_with_the_scope_reach_the_handler_as_principal) {
    struct rig r;
    struct answer a;
    char hdr[512];
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    bearer(hdr, read_token);
    request(&r, "GET", "/read", hdr, NULL, &a);
    EXPECT_INT(a.status, 200);
    EXPECT_STR(str_at(&a, "principal.name"), "reader");
    EXPECT_STR(str_at(&a, "principal.via"), "token");
    EXPECT_STR(json_string_value(json_array_get(at(a.json, "principal.scopes"), 0)), "scaling:read");
    EXPECT_INT(json_array_size(at(a.json, "principal.scopes")), 1);
    answer_free(&a);
    /* admin implies the other three, and lists all four. */
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\nUser-Agent: sluicectl/1.2\r\n", admin_token);
    request(&r, "POST", "/write", hdr, "{}", &a);
    EXPECT_INT(a.status, 200);
    EXPECT_STR(str_at(&a, "source"), "cli");
    EXPECT_INT(json_array_size(at(a.json, "principal.scopes")), 4);
    answer_free(&a);
    request(&r, "GET", "/read", hdr, NULL, &a);
    EXPECT_INT(a.status, 200);
    answer_free(&a);
    rig_stop(&r);
}

TEST(any_scope_takes_any_valid_credentials_and_none_reads_none) {
    struct rig r;
    struct answer a;
    char hdr[256];
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    bearer(hdr, write_token);
    request(&r, "GET", "/any", hdr, NULL, &a);
    EXPECT_INT(a.status, 200);
    EXPECT_STR(str_at(&a, "principal.name"), "writer");
    answer_free(&a);
    /* Scope none: credentials are not even read, bad ones included. */
    bearer(hdr, revoked_token);
    request(&r, "GET", "/things", hdr, NULL, &a);
    EXPECT_INT(a.status, 200);
    EXPECT(at(a.json, "principal") == NULL);
    answer_free(&a);
    request(&r, "POST", "/public", NULL, "{\"a\":1}", &a);
    EXPECT_INT(a.status, 200);
    answer_free(&a);
    rig_stop(&r);
}

/* ---- cookie sessions and CSRF --------------------------------------------------------- */

/* The session's cookie header, with extra lines after it. */
static void session(char out[512], const char *extra) {
    snprintf(out, 512, "Cookie: sluice_session=%s\r\n%s", session_cookie, extra ? extra : "");
}

TEST(a_session_reads_without_a_csrf_token) {
    struct rig r;
    struct answer a;
    char hdr[512];
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    session(hdr, "Sec-Fetch-Site: cross-site\r\n");   /* safe methods are not checked */
    request(&r, "GET", "/read", hdr, NULL, &a);
    EXPECT_INT(a.status, 200);
    EXPECT_STR(str_at(&a, "principal.name"), "reader");
    EXPECT_STR(str_at(&a, "principal.via"), "session");
    EXPECT_STR(str_at(&a, "source"), "ui");
    answer_free(&a);
    rig_stop(&r);
}

TEST(a_sessions_unsafe_request_needs_the_csrf_header) {
    struct rig r;
    struct answer a;
    char hdr[512], extra[256];
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    static const char *const unsafe[] = {"POST", "PATCH", "DELETE", NULL};
    for (const char *const *m = unsafe; *m; m++) {
        session(hdr, NULL);
        request(&r, *m, "/any", hdr, "{}", &a);
        EXPECT_ERROR(a, 403, "csrf");
        EXPECT_STR(str_at(&a, "error.message"),
                   "X-CSRF-Token is missing or does not match the session");
        answer_free(&a);
    }
    session(hdr, "X-CSRF-Token: 0000\r\n");
    request(&r, "POST", "/any", hdr, "{}", &a);
    EXPECT_ERROR(a, 403, "csrf");
    answer_free(&a);
    snprintf(extra, sizeof extra, "X-CSRF-Token: %s\r\nSec-Fetch-Site: same-origin\r\n", session_csrf);
    session(hdr, extra);
    request(&r, "POST", "/any", hdr, "{}", &a);
    EXPECT_INT(a.status, 200);
    answer_free(&a);
    /* CSRF comes before the scope: a read-only session gets csrf, not forbidden. */
    session(hdr, NULL);
    request(&r, "POST", "/write", hdr, "{}", &a);
    EXPECT_ERROR(a, 403, "csrf");
    answer_free(&a);
    rig_stop(&r);
}

TEST(a_cross_site_unsafe_request_is_refused_even_with_the_csrf_token) {
    struct rig r;
    struct answer a;
    char hdr[512], extra[256];
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    snprintf(extra, sizeof extra, "X-CSRF-Token: %s\r\nSec-Fetch-Site: cross-site\r\n", session_csrf);
    session(hdr, extra);
    request(&r, "POST", "/any", hdr, "{}", &a);
    EXPECT_ERROR(a, 403, "csrf");
    EXPECT_STR(str_at(&a, "error.message"), "cross-site request refused");
    answer_free(&a);
    /* Public routes too: a login form posted from another site. */
    request(&r, "POST", "/public", "Sec-Fetch-Site: cross-site\r\n", "{}", &a);
    EXPECT_ERROR(a, 403, "csrf");
    answer_free(&a);
    request(&r, "GET", "/things", "Sec-Fetch-Site: cross-site\r\n", NULL, &a);
    EXPECT_INT(a.status, 200);
    answer_free(&a);
    rig_stop(&r);
}

TEST(a_bearer_request_needs_no_csrf_token) {
    struct rig r;
    struct answer a;
    char hdr[512];
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\nSec-Fetch-Site: cross-site\r\n", admin_token);
    request(&r, "POST", "/any", hdr, "{}", &a);
    EXPECT_INT(a.status, 200);
    EXPECT_STR(str_at(&a, "principal.via"), "token");
    answer_free(&a);
    rig_stop(&r);
}

TEST(behind_https_the_session_cookie_is_host_prefixed) {
    struct rig r;
    struct answer a;
    char hdr[512];
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    session(hdr, "X-Forwarded-Proto: https\r\n");
    request(&r, "GET", "/read", hdr, NULL, &a);
    EXPECT_ERROR(a, 401, "unauthenticated");
    answer_free(&a);
    snprintf(hdr, sizeof hdr, "Cookie: __Host-sluice_session=%s\r\nX-Forwarded-Proto:  HTTPS, http\r\n",
             session_cookie);
    request(&r, "GET", "/read", hdr, NULL, &a);
    EXPECT_INT(a.status, 200);
    answer_free(&a);
    rig_stop(&r);
}

/* ---- request bodies ------------------------------------------------------------------- */

TEST(a_json_body_reaches_the_handler_as_a_table) {
    struct rig r;
    struct answer a;
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    request(&r, "PUT", "/things/t1", NULL,
            "{\"n\":3,\"list\":[1,\"two\"],\"obj\":{\"deep\":true},\"nothing\":null}", &a);
    EXPECT_INT(a.status, 200);
    EXPECT_STR(str_at(&a, "body_type"), "table");
    EXPECT_INT(int_at(&a, "body.n"), 3);
    EXPECT_STR(json_string_value(json_array_get(at(a.json, "body.list"), 1)), "two");
    EXPECT(json_is_true(at(a.json, "body.obj.deep")));
    EXPECT(json_is_null(at(a.json, "body.nothing")));     /* sluice.null round-trips */
    answer_free(&a);
    /* GET and DELETE bodies are ignored, even when they are not JSON. */
    request(&r, "DELETE", "/things/t1", NULL, "not json", &a);
    EXPECT_INT(a.status, 200);
    EXPECT_STR(str_at(&a, "body_type"), "nil");
    answer_free(&a);
    rig_stop(&r);
}

TEST(bodies_that_are_not_one_json_object_get_400_invalid_json) {
    char deep[300] = "{\"a\":";
    struct rig r;
    struct answer a;
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    request(&r, "PUT", "/things/t1", NULL, "{\"a\":\n  1,}", &a);
    EXPECT_ERROR(a, 400, "invalid_json");
    EXPECT_INT(int_at(&a, "error.details.line"), 2);
    EXPECT(at(a.json, "error.details.column") != NULL);
    EXPECT_CONTAINS(str_at(&a, "error.message"), "invalid JSON at line 2");
    answer_free(&a);
    static const char *const refused[] = {"[1,2]", "\"text\"", "{\"a\":1,\"a\":2}", "", NULL};
    for (const char *const *b = refused; *b; b++) {
        request(&r, "POST", "/public", NULL, *b, &a);
        if (a.status != 400 || !str_at(&a, "error.code") ||
            strcmp(str_at(&a, "error.code"), "invalid_json") != 0)
            UNIT_FAIL("body '%s' answered %d %s", *b, a.status, a.text);
        answer_free(&a);
    }
    request(&r, "PATCH", "/any", "Authorization: Bearer x\r\n", "[", &a);
    EXPECT_ERROR(a, 401, "unauthenticated");       /* credentials first */
    answer_free(&a);
    /* Deeper than the handlers can take: 400, not a 500 from the handler. */
    for (int i = 0; i < LUAJSON_MAX_DEPTH + 2; i++) strcat(deep, "[");
    for (int i = 0; i < LUAJSON_MAX_DEPTH + 2; i++) strcat(deep, "]");
    strcat(deep, "}");
    request(&r, "POST", "/public", NULL, deep, &a);
    EXPECT_ERROR(a, 400, "invalid_json");
    EXPECT_INT(int_at(&a, "error.details.max_depth"), LUAJSON_MAX_DEPTH);
    answer_free(&a);
    rig_stop(&r);
}

/* ---- what the handler returns ---------------------------------------------------------- */

TEST(status_and_table_body_become_a_json_answer) {
    struct rig r;
    struct answer a;
    char h[256];
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    request(&r, "GET", "/r/headers", NULL, NULL, &a);
    EXPECT_INT(a.status, 201);
    EXPECT_STR(a.text, "{\"ok\":true}");
    EXPECT_STR(header_of(&a, "X-Custom", h), "yes");
    EXPECT_STR(header_of(&a, "X-Number", h), "42");
    /* A Content-Type header only applies to a string body. */
    EXPECT_STR(header_of(&a, "Content-Type", h), "application/json; charset=utf-8");
    EXPECT_STR(header_of(&a, "Cache-Control", h), "no-store");
    EXPECT_STR(header_of(&a, "X-Content-Type-Options", h), "nosniff");
    answer_free(&a);
    request(&r, "GET", "/r/eight-headers", NULL, NULL, &a);
    EXPECT_INT(a.status, 200);
    EXPECT_STR(header_of(&a, "X-H8", h), "8");
    answer_free(&a);
    rig_stop(&r);
}

TEST(string_and_empty_bodies_are_sent_as_they_are) {
    struct rig r;
    struct answer a;
    char h[256];
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    request(&r, "GET", "/r/text", NULL, NULL, &a);
    EXPECT_INT(a.status, 200);
    EXPECT_STR(a.text, "plain words");
    EXPECT_STR(header_of(&a, "Content-Type", h), "text/plain; charset=utf-8");
    answer_free(&a);
    request(&r, "GET", "/r/typed-text", NULL, NULL, &a);
    EXPECT_STR(a.text, "a,b");
    EXPECT_STR(header_of(&a, "Content-Type", h), "text/csv");
    answer_free(&a);
    request(&r, "GET", "/r/empty", NULL, NULL, &a);
    EXPECT_INT(a.status, 204);
    EXPECT_STR(a.text, "");
    answer_free(&a);
    rig_stop(&r);
}

TEST(error_bodies_of_a_handler_gain_the_request_id) {
    struct rig r;
    struct answer a;
    ASSERT(rig_start(&r, app_scripts, 2, 5000000, 0) == 0);
    request(&r, "GET", "/r/error", "X-Request-Id: rid-teapot\r\n", NULL, &a);
    EXPECT_INT(a.status, 418);
    EXPECT_STR(a.text, "{\"error\":{\"code\":\"teapot\",\"details\":{\"spout\":true},"
                       "\"message\":\"short and stout\"},\"request_id\":\"rid-teapot\"}");
    answer_free(&a);
    /* The server's id replaces one the handler made up. */
    request(&r, "GET", "/r/error-shape", "X-Request-Id: rid-own\r\n", NULL, &a);
    EXPECT_INT(a.status, 409);
    EXPECT_STR(str_at(&a, "request_id"), "rid-own");
    answer_free(&a);
    request(&r, "GET", "/r/ok-with-error-key", NULL, NULL, &a);   /* below 400: untouched */
    EXPECT_STR(a.text, "{\"error\":\"not an error\"}");
    answer_free(&a);
    rig_stop(&r);
}

TEST(invalid_response_headers_end_in_500_without_the_others) {
    struct rig r;
    struct answer a;
    char h[256];
    ASSERT(rig_start(&r, app_scripts, 1, 5000000, 1) == 0);
    static const char *const bad[] = {"/r/split-header", "/r/bad-header-name", "/r/list-headers",
                                      "/r/nine-headers", NULL};
    for (const char *const *p = bad; *p; p++) {
        request(&r, "GET", *p, NULL, NULL, &a);
        if (a.status != 500 || !str_at(&a, "error.code") ||
            strcmp(str_at(&a, "error.code"), "internal") != 0)
            UNIT_FAIL("GET %s answered %d %s", *p, a.status, a.text);
        /* Headers added before the bad one are dropped with the answer. */
        EXPECT(header_of(&a, "X-Fine", h) == NULL && header_of(&a, "X-H1", h) == NULL);
        EXPECT(header_of(&a, "Set-Cookie", h) == NULL);
        answer_free(&a);
    }
    char *log = rig_log(&r);
    EXPECT_CONTAINS(log, "invalid response header 'X-Split'");
    EXPECT_CONTAINS(log, "response headers must map names to strings");
    free(log);
    rig_stop(&r);
}

TEST(a_handler_that_raises_is_a_500_that_hides_the_lua_error) {
    struct rig r;
    struct answer a;
    ASSERT(rig_start(&r, app_scripts, 1, 5000000, 1) == 0);
    request(&r, "GET", "/r/raise", "X-Request-Id: rid-raise\r\n", NULL, &a);
    EXPECT_INT(a.status, 500);
    EXPECT_STR(a.text, "{\"error\":{\"code\":\"internal\",\"message\":\"internal error; see the "
                       "server log\"},\"request_id\":\"rid-raise\"}");
    EXPECT(strstr(a.raw, "secret lua detail") == NULL && strstr(a.raw, "20_results.lua") == NULL);
    answer_free(&a);
    /* The log has it, with the request id and the route. */
    char *log = rig_log(&r);
    const char *line = strstr(log, "\"handler error\"");
    EXPECT(line != NULL);
    EXPECT_CONTAINS(line, "\"request_id\":\"rid-raise\"");
    EXPECT_CONTAINS(line, "\"route\":\"/r/raise\"");
    EXPECT_CONTAINS(line, "20_results.lua:");
    EXPECT_CONTAINS(line, "secret lua detail 1234");
    free(log);
    /* Wrong arguments to a sluice function, a status that is no status, a
     * body that is no JSON: all the same 500. */
    static const char *const broken[] = {"/r/bad-arg", "/r/string-status", "/r/status-600",
                                         "/r/function-body", NULL};
    for (const char *const *p = broken; *p; p++) {
        request(&r, "GET", *p, NULL, NULL, &a);
        if (a.status != 500 || !str_at(&a, "error.code") ||
            strcmp(str_at(&a, "error.code"), "internal") != 0 || !str_at(&a, "request_id"))
            UNIT_FAIL("GET %s answered %d %s", *p, a.status, a.text);
        answer_free(&a);
    }
    log = rig_log(&r);
    EXPECT_CONTAINS(log, "handler must return an HTTP status (100..599) first");
    EXPECT_CONTAINS(log, "response body: a function cannot be encoded as JSON");
    free(log);
    rig_stop(&r);
}

/* lua-api.md: a body may be a table "or any JSON value": a number, a
 * boolean or sluice.null is sent as that JSON text. */
TEST(a_scalar_body_is_sent_as_json) {
    struct rig r;
    struct answer a;
    ASSERT(rig_start(&r, app_scripts, 1, 5000000, 0) == 0);
    request(&r, "GET", "/r/number-body", NULL, NULL, &a);
    EXPECT_INT(a.status, 200);
    EXPECT_STR(a.text, "42");
    answer_free(&a);
    rig_stop(&r);
}

static const char *const loop_scripts[] = {
    "loop.lua",
    "local n = 0\n"
    "sluice.route('GET', '/loop', { scope = 'none' }, function() while true do end end)\n"
    "sluice.route('GET', '/count', { scope = 'none' }, function()\n"
    "  n = n + 1\n"
    "  return 200, { n = n }\n"
    "end)\n",
    NULL};

TEST(a_handler_that_loops_forever_ends_in_500_within_the_budget) {
    struct rig r;
    struct answer a;
    ASSERT(rig_start(&r, loop_scripts, 1, 100000, 1) == 0);
    request(&r, "GET", "/count", NULL, NULL, &a);
    EXPECT_INT(int_at(&a, "n"), 1);
    answer_free(&a);
    int64_t t0 = util_mono_ms();
    request(&r, "GET", "/loop", "X-Request-Id: rid-loop\r\n", NULL, &a);
    EXPECT(util_mono_ms() - t0 < 2000);
    EXPECT_ERROR(a, 500, "internal");
    EXPECT(strstr(a.text, "budget") == NULL);
    answer_free(&a);
    char *log = rig_log(&r);
    EXPECT_CONTAINS(log, "instruction budget exceeded");
    free(log);
    /* The thread's state lives on, its globals kept. */
    request(&r, "GET", "/count", NULL, NULL, &a);
    EXPECT_INT(a.status, 200);
    EXPECT_INT(int_at(&a, "n"), 2);
    answer_free(&a);
    rig_stop(&r);
}

/* ---- one state per HTTP thread ---------------------------------------------------------- */

/* Each state names itself by the address of a table of its own, and counts
 * the requests it served. /spin holds its thread for 0.3 s of CPU. */
static const char *const state_scripts[] = {
    "state.lua",
    "local me, served = {}, 0\n"
    "local function answer()\n"
    "  served = served + 1\n"
    "  return 200, { state = tostring(me), served = served }\n"
    "end\n"
    "sluice.route('GET', '/state', { scope = 'none' }, answer)\n"
    "sluice.route('GET', '/spin', { scope = 'none' }, function()\n"
    "  local t = os.clock()\n"
    "  while os.clock() - t < 0.3 do end\n"
    "  return answer()\n"
    "end)\n",
    NULL};

TEST(a_state_survives_between_requests_on_its_thread) {
    struct rig r;
    struct answer first, second;
    ASSERT(rig_start(&r, state_scripts, 1, 5000000, 0) == 0);
    int fd = dial(&r);
    ASSERT(fd >= 0);
    send_request(fd, "GET", "/state", NULL, NULL, 1);
    read_answer(fd, &first);
    send_request(fd, "GET", "/state", NULL, NULL, 1);
    read_answer(fd, &second);
    close(fd);
    EXPECT_INT(first.status, 200);
    EXPECT_INT(int_at(&first, "served"), 1);
    EXPECT_INT(int_at(&second, "served"), 2);
    EXPECT(str_at(&first, "state") && str_at(&second, "state") &&
           strcmp(str_at(&first, "state"), str_at(&second, "state")) == 0);
    answer_free(&first);
    answer_free(&second);
    rig_stop(&r);
}

TEST(each_http_thread_serves_from_its_own_state) {
    struct rig r;
    struct answer spun, other;
    /* A budget that lets /spin hold its thread (0.2 us of CPU per instruction). */
    ASSERT(rig_start(&r, state_scripts, 2, 200000000, 0) == 0);
    int busy = dial(&r);
    ASSERT(busy >= 0);
    send_request(busy, "GET", "/spin", NULL, NULL, 0);
    usleep(100 * 1000);                 /* /spin holds its thread: the other takes this one */
    request(&r, "GET", "/state", NULL, NULL, &other);
    read_answer(busy, &spun);
    close(busy);
    EXPECT_INT(spun.status, 200);
    EXPECT_INT(other.status, 200);
    /* Both are their state's first request: nothing shared. */
    EXPECT_INT(int_at(&spun, "served"), 1);
    EXPECT_INT(int_at(&other, "served"), 1);
    EXPECT(str_at(&spun, "state") && str_at(&other, "state") &&
           strcmp(str_at(&spun, "state"), str_at(&other, "state")) != 0);
    answer_free(&spun);
    answer_free(&other);
    rig_stop(&r);
}

int main(void) {
    log_set_level(LOG_ERROR);
    if (open_store() != 0) {
        printf("not ok 1 - cannot open the store\n");
        return 1;
    }
    RUN(exact_paths_reach_their_handler_with_the_request_table);
    RUN(path_parameters_reach_the_handler_decoded);
    RUN(unknown_paths_get_404_not_found);
    RUN(a_known_path_with_another_method_gets_405_and_allow);
    RUN(a_nul_in_the_path_is_refused_before_the_scripts);
    RUN(bad_route_declarations_are_refused_at_load_naming_file_and_line);
    RUN(the_route_table_holds_64_routes_and_the_folder_needs_scripts);
    RUN(sluice_route_inside_a_handler_is_a_500_and_adds_nothing);
    RUN(no_credentials_get_401_with_www_authenticate);
    RUN(unknown_revoked_expired_or_non_bearer_credentials_get_401);
    RUN(a_token_without_the_routes_scope_gets_403_forbidden_naming_it);
    RUN(tokens_with_the_scope_reach_the_handler_as_principal);
    RUN(any_scope_takes_any_valid_credentials_and_none_reads_none);
    RUN(a_session_reads_without_a_csrf_token);
    RUN(a_sessions_unsafe_request_needs_the_csrf_header);
    RUN(a_cross_site_unsafe_request_is_refused_even_with_the_csrf_token);
    RUN(a_bearer_request_needs_no_csrf_token);
    RUN(behind_https_the_session_cookie_is_host_prefixed);
    RUN(a_json_body_reaches_the_handler_as_a_table);
    RUN(bodies_that_are_not_one_json_object_get_400_invalid_json);
    RUN(status_and_table_body_become_a_json_answer);
    RUN(string_and_empty_bodies_are_sent_as_they_are);
    RUN(error_bodies_of_a_handler_gain_the_request_id);
    RUN(invalid_response_headers_end_in_500_without_the_others);
    RUN(a_handler_that_raises_is_a_500_that_hides_the_lua_error);
    RUN(a_scalar_body_is_sent_as_json);
    RUN(a_handler_that_loops_forever_ends_in_500_within_the_budget);
    RUN(a_state_survives_between_requests_on_its_thread);
    RUN(each_http_thread_serves_from_its_own_state);
    close_store();
    return UNIT_DONE();
}
