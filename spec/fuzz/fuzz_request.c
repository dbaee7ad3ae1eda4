/* fuzz_request.c — what sluiced parses from an HTTP request itself.
 *
 * libmicrohttpd parses the request line, headers, cookies and the query
 * (and is fuzzed by its own project); everything after that is ours:
 *   R  the route table matching a decoded path (script_match), against the
 *      patterns the scripts in scripts/ register;
 *   P  the same with a pattern from the input too ("pattern\npath");
 *   B  the request body: JSON object or the 400 invalid_json envelope
 *      (script_parse_body);
 *   S  the static file path rule (http_static_path_ok);
 *   H  response headers a handler returns ("name\nvalue\n..." pairs,
 *      http_add_header), which must never split a response;
 *   N  the small parsers a request's fields reach: X-Request-Id
 *      (protocol_valid_id), names (protocol_valid_name), durations
 *      (util_parse_duration), UTF-8-safe truncation (util_copy_utf8) and
 *      scope lists (auth_parse_scopes).
 * The first byte of the input picks the part (one of "RPBSHN"; any other
 * byte picks by its value modulo 6), the rest is the part's input.
 *
 * script_match, script_parse_body and http_valid_request_id are static, so
 * this file includes engine/script.c and engine/http.c rather than linking
 * them: the code under test stays exactly the engine's, without exporting
 * internals for a test. (The engine archive is linked after this file, and
 * its script.o and http.o are never pulled in: every symbol they define is
 * defined here already.) */
#include "fuzz.h"
#include "protocol.h"

#include "../../engine/http.c"
#include "../../engine/script.c"

/* The patterns the scripts in scripts/ register (grep 'route(' scripts). */
static const char *const fuzz_patterns[] = {
    "/healthz", "/readyz", "/metrics", "/api/v1/scaling", "/api/v1/scaling/{queue}",
    "/api/v1/scaling/{queue}/history", "/api/v1/audit", "/api/v1/policies", "/api/v1/flags",
    "/api/v1/flags/{name}", "/api/v1/tokens", "/api/v1/tokens/{id}", "/api/v1/session",
    "/api/v1/whoami", "/admin/runtime-scaling", "/admin/event-health",
    "/admin/runtime-scaling/events", NULL,
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    return 0;
}

/* ---- R, P: routes --------------------------------------------------------------- */

/* A match must be the pattern with each {name} standing for one non-empty
 * segment that fits its buffer: put back together, it is the path. */
static void fuzz_match(const char *pattern, const char *path) {
    struct script_param params[SCRIPT_MAX_PARAMS];
    char rebuilt[1024];
    size_t used = 0;
    int np = -1;

    if (!script_match(pattern, path, params, &np)) return;
    FUZZ_CHECK(np >= 0 && np <= SCRIPT_MAX_PARAMS);
    int k = 0;
    for (const char *p = pattern; *p;) {
        const char *piece = p;
        size_t n = 1;
        if (*p == '{') {
            const char *close = strchr(p, '}');
            FUZZ_CHECK(close != NULL && k < np);
            FUZZ_CHECK(params[k].name == p + 1 && params[k].name_len == (size_t)(close - p - 1));
            piece = params[k].value;
            n = strlen(piece);
            FUZZ_CHECK(n > 0 && n < sizeof params[k].value && !strchr(piece, '/'));
            k++;
            p = close + 1;
        } else {
            p++;
        }
        FUZZ_CHECK(used + n < sizeof rebuilt);
        memcpy(rebuilt + used, piece, n);
        used += n;
    }
    rebuilt[used] = '\0';
    FUZZ_CHECK(k == np);
    FUZZ_CHECK(strcmp(rebuilt, path) == 0);
}

static void fuzz_routes(const char *path) {
    for (const char *const *p = fuzz_patterns; *p; p++) fuzz_match(*p, path);
}

/* As sluice.route accepts them: '/' first, shorter than 96 bytes. */
static void fuzz_pattern_and_path(char *s) {
    char *nl = strchr(s, '\n');
    if (nl == NULL) return;
    *nl = '\0';
    if (s[0] != '/' || strlen(s) >= sizeof ((struct script_route *)0)->pattern) return;
    fuzz_match(s, nl + 1);
}

/* ---- B: bodies ---------------------------------------------------------------------- */

static void fuzz_body(const uint8_t *data, size_t size) {
    struct http_request req;
    struct http_response resp;
    json_t *out = NULL;

    memset(&req, 0, sizeof req);
    memset(&resp, 0, sizeof resp);
    util_copy(req.request_id, sizeof req.request_id, "rid-fuzz");
    /* As http.c keeps it: NUL-terminated, body_len bytes. */
    req.body = malloc(size + 1);
    FUZZ_CHECK(req.body != NULL);
    memcpy(req.body, data, size);
    req.body[size] = '\0';
    req.body_len = size;

    if (script_parse_body(&req, &resp, &out) == 0) {
        FUZZ_CHECK(json_is_object(out) && luajson_depth_ok(out));
        FUZZ_CHECK(resp.body == NULL && resp.status == 0);
    } else {
        /* Always the api.md envelope, whatever the bytes were. */
        FUZZ_CHECK(out == NULL);
        FUZZ_CHECK(resp.status == 400);
        FUZZ_CHECK(resp.body != NULL && strlen(resp.body) == resp.len);
        json_t *env = json_loads(resp.body, 0, NULL);
        json_t *err = json_object_get(env, "error");
        if (!json_is_object(err)) fprintf(stderr, "fuzz: 400 answered with %s\n", resp.body);
        FUZZ_CHECK(json_is_object(err));
        const char *code = json_string_value(json_object_get(err, "code"));
        const char *rid = json_string_value(json_object_get(env, "request_id"));
        FUZZ_CHECK(json_is_string(json_object_get(err, "message")));
        FUZZ_CHECK(code && strcmp(code, "invalid_json") == 0);
        FUZZ_CHECK(rid && strcmp(rid, "rid-fuzz") == 0);
        json_decref(env);
    }
    json_decref(out);
    http_response_clear(&resp);
    free(req.body);
}

/* ---- S: static paths ---------------------------------------------------------------- */

/* What http.h promises of an accepted path: no "..", no ".", no empty or
 * hidden segments, no backslash; and, as the code adds, no control bytes
 * and at most 512 bytes. */
static void fuzz_static_path(const char *path) {
    if (!http_static_path_ok(path)) return;
    FUZZ_CHECK(path[0] != '\0' && path[0] != '/' && strlen(path) <= 512);
    FUZZ_CHECK(strchr(path, '\\') == NULL);
    for (const char *seg = path;;) {
        size_t n = strcspn(seg, "/");
        FUZZ_CHECK(n > 0 && seg[0] != '.');
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK((unsigned char)seg[i] >= 0x20 && seg[i] != 0x7f);
        if (seg[n] == '\0') break;
        seg += n + 1;
    }
}

/* ---- H: response headers ------------------------------------------------------------- */

static void fuzz_headers(char *s) {
    struct http_response resp;
    memset(&resp, 0, sizeof resp);
    while (s) {
        char *name = s, *value = strchr(s, '\n');
        if (value == NULL) break;
        *value++ = '\0';
        s = strchr(value, '\n');
        if (s) *s++ = '\0';
        int before = resp.nheaders;
        if (http_add_header(&resp, name, value) != 0) {
            FUZZ_CHECK(resp.nheaders == before);
            continue;
        }
        /* Accepted: a token for a name, and nothing that ends a line. */
        FUZZ_CHECK(resp.nheaders == before + 1 && resp.nheaders <= HTTP_MAX_HEADERS);
        FUZZ_CHECK(name[0] != '\0' && name[strspn(name, "abcdefghijklmnopqrstuvwxyz"
                                                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")] == '\0');
        for (const char *v = value; *v; v++) FUZZ_CHECK((unsigned char)*v >= 0x20 || *v == '\t');
        FUZZ_CHECK(strcmp(resp.header_names[before], name) == 0);
        FUZZ_CHECK(strcmp(resp.header_values[before], value) == 0);
    }
    http_response_clear(&resp);
    FUZZ_CHECK(resp.nheaders == 0 && resp.body == NULL);
}

/* ---- N: small parsers ------------------------------------------------------------------ */

static int fuzz_only(const char *s, const char *allowed) { return s[strspn(s, allowed)] == '\0'; }

#define FUZZ_NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-"

/* 1 when s[0..n) is well-formed UTF-8 (RFC 3629). */
static int fuzz_utf8_valid(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                   : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (len == 0 || i + len > n) return 0;
        uint32_t cp = len == 1 ? c : c & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

/* Every small size, then only those near the end: all of them would make
 * long inputs quadratic. */
static size_t fuzz_next_size(size_t size, size_t n) {
    if (size >= 80 && n > 6 && size < n - 6) return n - 6;
    return size + 1;
}

static void fuzz_small_parsers(const char *s) {
    size_t n = strlen(s);

    if (protocol_valid_name(s))
        FUZZ_CHECK(n >= 1 && n <= UTIL_NAME_MAX && s[0] != '.' && s[0] != '-' &&
                   fuzz_only(s, FUZZ_NAME_CHARS));
    if (protocol_valid_id(s, HTTP_REQUEST_ID_MAX - 1))
        FUZZ_CHECK(n >= 1 && n < STORE_RID_MAX && fuzz_only(s, FUZZ_NAME_CHARS));

    int64_t secs = -1;
    if (util_parse_duration(s, &secs) == 0) {
        size_t digits = strspn(s, "0123456789");
        FUZZ_CHECK(secs > 0 && digits > 0);
        FUZZ_CHECK(n == digits || (n == digits + 1 && strchr("dhms", s[digits])));
    }

    /* Truncation at every size: a NUL-terminated prefix, never more than a
     * partial character shorter than the room, valid when the input is. */
    int valid = fuzz_utf8_valid((const unsigned char *)s, n);
    char *dst = malloc(n + 3);
    FUZZ_CHECK(dst != NULL);
    for (size_t size = 1; size <= n + 2; size = fuzz_next_size(size, n)) {
        util_copy_utf8(dst, size, s);
        size_t got = strlen(dst);
        FUZZ_CHECK(got < size && memcmp(dst, s, got) == 0);
        if (valid) {
            FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)dst, got));
            FUZZ_CHECK(got + 3 >= (size - 1 < n ? size - 1 : n));
        }
    }
    free(dst);

    unsigned mask = 0;
    char err[128];
    if (auth_parse_scopes(s, &mask, err, sizeof err) == 0)
        FUZZ_CHECK(mask != 0 && (mask & ~7u) == 0);
    else
        FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char parts[] = "RPBSHN";
    if (size == 0) return 0;
    const char *chosen = memchr(parts, data[0], 6);
    int part = chosen ? (int)(chosen - parts) : data[0] % 6;
    data++;
    size--;

    /* Everything but bodies arrives as a C string. */
    char *s = malloc(size + 1);
    FUZZ_CHECK(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';
    switch (part) {
    case 0: fuzz_routes(s); break;
    case 1: fuzz_pattern_and_path(s); break;
    case 2: fuzz_body(data, size); break;
    case 3: fuzz_static_path(s); break;
    case 4: fuzz_headers(s); break;
    default: fuzz_small_parsers(s); break;
    }
    free(s);
    return 0;
}
