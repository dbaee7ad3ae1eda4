/* script.c — per-thread Lua states, the route table, authentication and
 * scope checks, and the call into a route's handler. */
#include "script.h"
#include "apierr.h"
#include "body.h"
#include "health.h"
#include "log.h"
#include "luajson.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Request ids go into audit rows as they came (scaling.c). */
_Static_assert(HTTP_REQUEST_ID_MAX <= STORE_RID_MAX, "a request id must fit the store's column");

#define SCRIPT_MAX_FILES 64
#define SCRIPT_FILE_MAX (1 << 20)

struct script_route {
    char method[8];
    char pattern[96];
    char scope[16];              /* none | any | a scope name (auth.c) */
    int ref;                     /* handler in the state's registry */
};

struct script_state {
    lua_State *L;
    script_host *host;
    struct script_route routes[SCRIPT_MAX_ROUTES];
    int nroutes;
    struct script_request *current;
};

struct script_host {
    struct sandbox_limits limits;
    struct app *app;
    script_open_fn open_api;     /* builds the `sluice` table (bind.c) */
    auth_cache *auth;            /* verified credentials, for every thread */
    unsigned long id;
    pthread_mutex_t lock;
    struct script_state **states;
    size_t nstates, cap;
    int nroutes;
    size_t nfiles;
    char names[SCRIPT_MAX_FILES][128];
    char *texts[SCRIPT_MAX_FILES];   /* read once: every thread loads the same code */
    size_t lens[SCRIPT_MAX_FILES];
};

struct script_param {
    const char *name;
    size_t name_len;
    char value[UTIL_NAME_MAX * 4 + 1];
};

static _Thread_local struct script_state *tl_state;
static _Thread_local unsigned long tl_host_id;
static atomic_ulong next_host_id = 1;

/* ---- states ------------------------------------------------------------------ */

static struct script_state *script_state_of(lua_State *L) { return sandbox_host(L); }

struct app *script_app(lua_State *L) { return script_state_of(L)->host->app; }

auth_cache *script_auth_cache(lua_State *L) { return script_state_of(L)->host->auth; }

struct script_request *script_current(lua_State *L, const char *fname) {
    struct script_state *st = script_state_of(L);
    if (sandbox_phase(L) != SANDBOX_REQUEST || st->current == NULL)
        luaL_error(L, "%s: only callable while serving a request", fname);
    return st->current;
}

static int script_open_cf(lua_State *L) {
    luajson_init(L);
    script_state_of(L)->host->open_api(L);
    return 0;
}

static void script_state_free(struct script_state *st) {
    if (st == NULL) return;
    sandbox_close(st->L);
    free(st);
}

/* A fresh state with every script loaded. NULL with err on failure. */
static struct script_state *script_state_new(script_host *host, char *err, size_t errlen) {
    struct script_state *st = calloc(1, sizeof *st);
    char chunk[140];
    if (st == NULL || (st->L = sandbox_new(&host->limits, st)) == NULL) {
        snprintf(err, errlen, "out of memory creating a Lua state");
        goto fail;
    }
    st->host = host;
    lua_pushcfunction(st->L, script_open_cf);
    if (sandbox_pcall(st->L, 0, 0) != LUA_OK) {
        snprintf(err, errlen, "%s", lua_tostring(st->L, -1));
        goto fail;
    }
    for (size_t i = 0; i < host->nfiles; i++) {
        snprintf(chunk, sizeof chunk, "@%s", host->names[i]);
        if (luaL_loadbufferx(st->L, host->texts[i], host->lens[i], chunk, "t") != LUA_OK ||
            sandbox_pcall(st->L, 0, 0) != LUA_OK) {
            snprintf(err, errlen, "%s", lua_tostring(st->L, -1));
            goto fail;
        }
    }
    lua_settop(st->L, 0);
    sandbox_set_phase(st->L, SANDBOX_IDLE);
    return st;
fail:
    script_state_free(st);
    return NULL;
}

/* This thread's state for host, created on first use and registered with the
 * host so script_host_free can close it. */
static struct script_state *script_thread_state(script_host *host) {
    char err[512];
    if (tl_state && tl_host_id == host->id) return tl_state;
    struct script_state *st = script_state_new(host, err, sizeof err);
    if (st == NULL) {
        log_json(LOG_ERROR, "cannot create the Lua state for a thread", json_pack("{s:s}", "error", err));
        return NULL;
    }
    pthread_mutex_lock(&host->lock);
    if (host->nstates == host->cap) {
        size_t cap = host->cap ? host->cap * 2 : 8;
        struct script_state **grown = realloc(host->states, cap * sizeof *grown);
        if (grown == NULL) {
            pthread_mutex_unlock(&host->lock);
            script_state_free(st);
            return NULL;
        }
        host->states = grown;
        host->cap = cap;
    }
    host->states[host->nstates++] = st;
    pthread_mutex_unlock(&host->lock);
    tl_state = st;
    tl_host_id = host->id;
    return st;
}

static int script_name_cmp(const void *a, const void *b) { return strcmp(a, b); }

static int script_read_dir(script_host *host, const char *dir, char *err, size_t errlen) {
    DIR *d = opendir(dir);
    struct dirent *de;
    if (d == NULL) {
        snprintf(err, errlen, "scripts: cannot open %s: %s", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len < 5 || strcmp(de->d_name + len - 4, ".lua") != 0) continue;
        if (host->nfiles == SCRIPT_MAX_FILES || len >= sizeof host->names[0]) {
            snprintf(err, errlen, "scripts: too many files, or a name too long, in %s", dir);
            closedir(d);
            return -1;
        }
        util_copy(host->names[host->nfiles++], sizeof host->names[0], de->d_name);
    }
    closedir(d);
    if (host->nfiles == 0) {
        snprintf(err, errlen, "scripts: no *.lua files in %s", dir);
        return -1;
    }
    qsort(host->names, host->nfiles, sizeof host->names[0], script_name_cmp);
    for (size_t i = 0; i < host->nfiles; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, host->names[i]);
        host->texts[i] = util_read_file(path, SCRIPT_FILE_MAX, &host->lens[i]);
        if (host->texts[i] == NULL) {
            snprintf(err, errlen, "scripts: cannot read %s: %s", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

script_host *script_host_new(const char *dir, const struct sandbox_limits *limits,
                             struct app *app, script_open_fn open_api, char *err, size_t errlen) {
    script_host *host = calloc(1, sizeof *host);
    struct script_state *probe;
    if (host == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    host->limits = *limits;
    host->app = app;
    host->open_api = open_api;
    host->id = atomic_fetch_add(&next_host_id, 1);
    pthread_mutex_init(&host->lock, NULL);
    if ((host->auth = auth_cache_new()) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (script_read_dir(host, dir, err, errlen) != 0) goto fail;
    /* Load once now so a broken script stops start-up instead of every request. */
    probe = script_state_new(host, err, errlen);
    if (probe == NULL) goto fail;
    host->nroutes = probe->nroutes;
    script_state_free(probe);
    return host;
fail:
    script_host_free(host);
    return NULL;
}

void script_host_free(script_host *host) {
    if (host == NULL) return;
    for (size_t i = 0; i < host->nstates; i++) script_state_free(host->states[i]);
    for (size_t i = 0; i < host->nfiles; i++) free(host->texts[i]);
    free(host->states);
    auth_cache_free(host->auth);
    pthread_mutex_destroy(&host->lock);
    free(host);
}

int script_route_count(const script_host *host) { return host->nroutes; }

/* ---- routes --------------------------------------------------------------------- */

/* A route's scope: "none" (no credentials), "any" (any credentials) or
 * one of auth's scopes. */
static int script_valid_scope(const char *s) {
    return strcmp(s, "none") == 0 || strcmp(s, "any") == 0 || auth_scope_parse(s) != 0;
}

void script_add_route(lua_State *L, const char *method, const char *pattern, const char *scope,
                      int fn_idx) {
    struct script_state *st = script_state_of(L);
    struct script_route *r;
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};
    int known = 0;
    for (const char *const *m = methods; *m; m++) known |= strcmp(*m, method) == 0;
    if (sandbox_phase(L) != SANDBOX_LOAD) luaL_error(L, "sluice.route: only at load time");
    luaL_argcheck(L, known, 1, "method must be GET, POST, PUT, PATCH or DELETE");
    luaL_argcheck(L, pattern[0] == '/' && strlen(pattern) < sizeof r->pattern, 2,
                  "pattern must start with '/' and be shorter than 96 bytes");
    if (!script_valid_scope(scope)) {
        char scopes[64];
        auth_scope_list(scopes, sizeof scopes, ", ", " or ");
        luaL_argerror(L, 3, lua_pushfstring(L, "scope must be none, any, %s", scopes));
    }
    for (int i = 0; i < st->nroutes; i++)
        if (strcmp(st->routes[i].method, method) == 0 && strcmp(st->routes[i].pattern, pattern) == 0)
            luaL_error(L, "sluice.route: %s %s registered twice", method, pattern);
    if (st->nroutes == SCRIPT_MAX_ROUTES) luaL_error(L, "sluice.route: too many routes");
    r = &st->routes[st->nroutes];
    util_copy(r->method, sizeof r->method, method);
    util_copy(r->pattern, sizeof r->pattern, pattern);
    util_copy(r->scope, sizeof r->scope, scope);
    lua_pushvalue(L, fn_idx);
    r->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    st->nroutes++;
}

/* Match path against pattern; "{name}" takes one non-empty segment. */
static int script_match(const char *pattern, const char *path, struct script_param *params,
                        int *nparams) {
    const char *p = pattern, *s = path;
    *nparams = 0;
    while (*p && *s) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            const char *seg_end = strchr(s, '/');
            size_t len = seg_end ? (size_t)(seg_end - s) : strlen(s);
            if (close == NULL || len == 0 || len >= sizeof params[0].value ||
                *nparams == SCRIPT_MAX_PARAMS)
                return 0;
            params[*nparams].name = p + 1;
            params[*nparams].name_len = (size_t)(close - p - 1);
            memcpy(params[*nparams].value, s, len);
            params[*nparams].value[len] = '\0';
            (*nparams)++;
            p = close + 1;
            s += len;
        } else {
            if (*p != *s) return 0;
            p++;
            s++;
        }
    }
    return *p == '\0' && *s == '\0';
}

/* ---- authentication --------------------------------------------------------------- */

static int script_unsafe(const char *method) {
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 && strcmp(method, "OPTIONS") != 0;
}

/* Whether a proxy in front says the client spoke HTTPS: the first value of
 * X-Forwarded-Proto (proxies append theirs), any case, spaces trimmed. */
static int script_forwarded_https(const char *proto) {
    if (proto == NULL) return 0;
    while (*proto == ' ' || *proto == '\t') proto++;
    size_t n = strcspn(proto, ", \t");
    return n == 5 && strncasecmp(proto, "https", 5) == 0;
}

/* Resolve credentials and apply the route's scope and CSRF rules. Returns 0
 * to go on, or -1 after filling resp with the refusal. */
static int script_authenticate(script_host *host, const struct script_route *route,
                               struct http_request *req, struct script_request *sr,
                               struct http_response *resp) {
    const char *authz = http_header(req, "Authorization");
    const char *fetch_site = http_header(req, "Sec-Fetch-Site");
    const char *ua = http_header(req, "User-Agent");
    const char *proto = http_header(req, "X-Forwarded-Proto");
    int64_t now = util_now_ms();
    int rc = AUTH_DENIED;

    /* Over HTTPS the cookie is __Host- prefixed (Secure, Path=/, no Domain:
     * a sibling subdomain cannot set or shadow it); plain HTTP (a laptop)
     * keeps the plain name, which browsers would not store as __Host-. */
    sr->secure = script_forwarded_https(proto);
    const char *cookie = http_cookie(req, sr->secure ? "__Host-sluice_session" : "sluice_session");
    sr->source = ua && strncmp(ua, "sluicectl/", 10) == 0 ? "cli" : "api";
    if (strcmp(route->scope, "none") == 0) {
        /* Public routes; a login form posted from another site is refused too. */
        if (script_unsafe(req->method) && fetch_site && strcmp(fetch_site, "cross-site") == 0) {
            http_respond_error(resp, req, 403, "csrf", "cross-site request refused", NULL);
            return -1;
        }
        return 0;
    }
    if (authz) {
        if (strncmp(authz, "Bearer ", 7) == 0)
            rc = auth_cache_verify_token(host->auth, host->app->st, authz + 7, now, &sr->principal);
    } else if (cookie) {
        rc = auth_cache_verify_session(host->auth, host->app->st, cookie, now, &sr->principal);
        sr->source = "ui";
    }
    if (rc < 0) {
        /* A read that failed: busy (past statement_timeout) or not there. */
        struct api_error err = {0};
        char retry[24];
        api_error_store(&err, rc == STORE_BUSY ? STORE_BUSY : STORE_UNAVAILABLE);
        if (err.retry_after_s > 0) {
            snprintf(retry, sizeof retry, "%lld", (long long)err.retry_after_s);
            http_add_header(resp, "Retry-After", retry);
        }
        http_respond_error(resp, req, api_error_status(err.code), err.code, err.message, NULL);
        api_error_clear(&err);
        return -1;
    }
    if (rc != AUTH_OK) {
        http_add_header(resp, "WWW-Authenticate", "Bearer realm=\"sluice\"");
        http_respond_error(resp, req, 401, "unauthenticated",
                           authz || cookie ? "credentials are unknown, expired or revoked"
                                           : "send Authorization: Bearer <token>, or log in",
                           NULL);
        return -1;
    }
    sr->authenticated = 1;
    util_copy(req->actor, sizeof req->actor, sr->principal.name);
    if (sr->principal.via_session && script_unsafe(req->method)) {
        if (fetch_site && strcmp(fetch_site, "cross-site") == 0) {
            http_respond_error(resp, req, 403, "csrf", "cross-site request refused", NULL);
            return -1;
        }
        if (!auth_csrf_ok(&sr->principal, http_header(req, "X-CSRF-Token"))) {
            http_respond_error(resp, req, 403, "csrf",
                               "X-CSRF-Token is missing or does not match the session", NULL);
            return -1;
        }
    }
    unsigned need = auth_scope_parse(route->scope);      /* 0 for none and any */
    if (need && !(sr->principal.scopes & need)) {
        char msg[128];
        snprintf(msg, sizeof msg, "this needs the %s scope", route->scope);
        http_respond_error(resp, req, 403, "forbidden", msg,
                           json_pack("{s:s}", "required_scope", route->scope));
        return -1;
    }
    return 0;
}

/* A route's queue, for a caller limited to queues: its {queue} path
 * parameter, and a `queue` query argument. */
struct script_queue_arg {
    const struct auth_principal *p;
    const char *denied;          /* the first queue out of p's, or NULL */
};

static void script_check_query_queue(void *ud, const char *key, const char *value) {
    struct script_queue_arg *a = ud;
    if (a->denied == NULL && strcmp(key, "queue") == 0 && value && value[0] &&
        !auth_queue_allowed(a->p, value))
        a->denied = value;
}

/* Refuse, before the handler runs, a route that names a queue (its
 * {queue} parameter or a `queue` query argument) out of the caller's
 * queues: 403 forbidden. So every queue route, present or future, is
 * covered; lists filter their own items. Returns 0 to go on, or -1 after
 * filling resp. */
static int script_check_queues(const struct script_param *params, int nparams,
                               struct http_request *req, const struct script_request *sr,
                               struct http_response *resp) {
    struct script_queue_arg a = {&sr->principal, NULL};
    char msg[200], shown[72];
    if (!sr->authenticated || sr->principal.queues[0] == '\0') return 0;
    for (int i = 0; i < nparams && a.denied == NULL; i++)
        if (params[i].name_len == 5 && memcmp(params[i].name, "queue", 5) == 0 &&
            !auth_queue_allowed(&sr->principal, params[i].value))
            a.denied = params[i].value;
    if (a.denied == NULL) http_query_foreach(req, script_check_query_queue, &a);
    if (a.denied == NULL) return 0;
    /* A name may be long and not ASCII: cut at a whole character. */
    util_copy_utf8(shown, sizeof shown, a.denied);
    snprintf(msg, sizeof msg, "queue '%s' is out of these credentials' queues (%.80s)", shown,
             sr->principal.queues);
    http_respond_error(resp, req, 403, "forbidden", msg,
                       json_pack("{s:s, s:s}", "queue", a.denied, "queues", sr->principal.queues));
    return -1;
}

/* ---- calling the handler ------------------------------------------------------------- */

struct script_call {
    struct script_state *st;
    const struct script_route *route;
    struct http_request *req;
    struct script_request *sr;
    json_t *body_in;
    struct script_param params[SCRIPT_MAX_PARAMS];
    int nparams;
    /* outputs */
    int status;
    json_t *body_out;
    char *text_out;
    size_t text_len;
    struct body *raw_out;        /* a sluice.body returned as it is (a reference) */
    char content_type[64];       /* from the handler's headers, if any */
    struct http_response *resp;
};

static void script_push_query(void *ud, const char *key, const char *value) {
    lua_State *L = ud;                          /* ..., query */
    lua_pushstring(L, value ? value : "");
    lua_setfield(L, -2, key);
}

static void script_push_request(lua_State *L, struct script_call *c) {
    lua_createtable(L, 0, 10);                  /* req */
    lua_pushstring(L, c->req->method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, c->req->path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, c->route->pattern);
    lua_setfield(L, -2, "route");
    lua_pushstring(L, c->req->request_id);
    lua_setfield(L, -2, "request_id");
    lua_pushstring(L, c->sr->source);
    lua_setfield(L, -2, "source");
    lua_createtable(L, 0, c->nparams);          /* req, params */
    for (int i = 0; i < c->nparams; i++) {
        lua_pushlstring(L, c->params[i].name, c->params[i].name_len);
        lua_pushstring(L, c->params[i].value);
        lua_rawset(L, -3);
    }
    lua_setfield(L, -2, "params");
    lua_newtable(L);                            /* req, query */
    http_query_foreach(c->req, script_push_query, L);
    lua_setfield(L, -2, "query");
    if (c->body_in) luajson_push(L, c->body_in);
    else lua_pushnil(L);
    lua_setfield(L, -2, "body");
    if (c->sr->authenticated) {
        lua_createtable(L, 0, 3);               /* req, principal */
        lua_pushstring(L, c->sr->principal.name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, c->sr->principal.via_session ? "session" : "token");
        lua_setfield(L, -2, "via");
        lua_newtable(L);                        /* req, principal, scopes */
        unsigned bit;
        const char *name;
        for (size_t i = 0, k = 1; (name = auth_scope_at(i, &bit)); i++) {
            if (!(c->sr->principal.scopes & bit)) continue;
            lua_pushstring(L, name);
            lua_rawseti(L, -2, (lua_Integer)k++);
        }
        luajson_mark_array(L, -1);
        lua_setfield(L, -2, "scopes");
        /* queues: the token's patterns as a list; absent for every queue. */
        if (c->sr->principal.queues[0]) {
            lua_newtable(L);                    /* req, principal, queues */
            lua_Integer k = 1;
            for (const char *q = c->sr->principal.queues; *q;) {
                size_t n = strcspn(q, ",");
                lua_pushlstring(L, q, n);
                lua_rawseti(L, -2, k++);
                q += n;
                if (*q == ',') q++;
            }
            luajson_mark_array(L, -1);
            lua_setfield(L, -2, "queues");
        }
        lua_setfield(L, -2, "principal");
    }
}

/* Protected: call the handler and collect status, body and headers into c. */
static int script_call_cf(lua_State *L) {
    struct script_call *c = lua_touserdata(L, 1);
    char err[256] = "";
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->route->ref);   /* fn */
    script_push_request(L, c);                          /* fn, req */
    lua_call(L, 1, 3);                                  /* status, body, headers */
    if (!lua_isinteger(L, 1) || lua_tointeger(L, 1) < 100 || lua_tointeger(L, 1) > 599)
        return luaL_error(L, "handler must return an HTTP status (100..599) first");
    c->status = (int)lua_tointeger(L, 1);
    if (lua_type(L, 2) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, 2, &len);
        c->text_out = malloc(len + 1);
        if (c->text_out == NULL) return luaL_error(L, "out of memory");
        memcpy(c->text_out, s, len + 1);
        c->text_len = len;
    } else if (luajson_to_body(L, 2) != NULL) {
        c->raw_out = body_ref(luajson_to_body(L, 2));
    } else if (!lua_isnil(L, 2)) {
        c->body_out = luajson_from_lua(L, 2, err, sizeof err);
        if (c->body_out == NULL) return luaL_error(L, "response body: %s", err);
    }
    if (lua_istable(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3) != 0) {                   /* ..., key, value */
            if (lua_type(L, -2) != LUA_TSTRING ||
                (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
                return luaL_error(L, "response headers must map names to strings");
            lua_pushvalue(L, -1);                       /* ..., key, value, copy */
            if (strcasecmp(lua_tostring(L, -3), "Content-Type") == 0) {
                util_copy(c->content_type, sizeof c->content_type, lua_tostring(L, -1));
                lua_pop(L, 2);
                continue;
            }
            if (http_add_header(c->resp, lua_tostring(L, -3), lua_tostring(L, -1)) != 0)
                return luaL_error(L, "invalid response header '%s'", lua_tostring(L, -3));
            lua_pop(L, 2);
        }
    }
    return 0;
}

/* http_borrowed's release: the response's reference to its body. */
static void script_release_body(void *cls) { body_release(cls); }

/* Send a rendered body as it is, with its ETag; a GET whose If-None-Match
 * names that ETag gets 304 and no body (RFC 9110). Takes c->raw_out. */
static void script_answer_body(struct script_call *c) {
    struct http_response *resp = c->resp;
    struct body *b = c->raw_out;
    c->raw_out = NULL;
    resp->status = c->status;
    if (c->status >= 200 && c->status < 300) http_add_header(resp, "ETag", b->etag);
    if (c->status == 200 && strcmp(c->req->method, "GET") == 0 &&
        body_not_modified(b, http_header(c->req, "If-None-Match"))) {
        resp->status = 304;
        body_release(b);
        return;
    }
    util_copy(resp->content_type, sizeof resp->content_type,
              c->content_type[0] ? c->content_type : b->content_type);
    /* The response borrows the cached bytes and holds the reference until
     * they are sent: a snapshot of megabytes is never copied per read. */
    http_respond_borrowed(resp, c->status, b->bytes, b->len, script_release_body, b);
}

/* deferred_sources.snapshot: a stream's first event, of the caller's queues. */
static json_t *script_snapshot(void *ud) {
    const struct script_call *c = ud;
    return health_snapshot_for(c->st->host->app, c->sr->principal.queues);
}

/* Send the handler's answer collected in c, or hand it over to the plan
 * its bindings made (deferred.h). */
static void script_answer(struct script_call *c) {
    struct app *app = c->st->host->app;
    struct http_response *resp = c->resp;
    const struct deferred_sources src = {app->fl, app->events, script_snapshot, c,
                                         c->sr->principal.queues};
    if (c->text_out) {
        resp->status = c->status;
        resp->body = c->text_out;
        resp->len = c->text_len;
        util_copy(resp->content_type, sizeof resp->content_type,
                  c->content_type[0] ? c->content_type : "text/plain; charset=utf-8");
        c->text_out = NULL;
        return;
    }
    if (c->raw_out && c->sr->answer.kind == DEFERRED_NONE) {
        script_answer_body(c);
        return;
    }
    if (c->raw_out) {
        /* A plan (a wait's "acks") works on JSON: the rare body it
         * applies to is parsed back. */
        c->body_out = json_loadb(c->raw_out->bytes, c->raw_out->len, 0, NULL);
        body_release(c->raw_out);
        c->raw_out = NULL;
    }
    if (deferred_answer(&c->sr->answer, &src, c->req, resp, c->status, &c->body_out,
                        c->sr->principal.token_id))
        return;
    if (c->body_out && c->status >= 400 && json_is_object(c->body_out) &&
        json_object_get(c->body_out, "error"))
        json_object_set_new(c->body_out, "request_id", json_string(c->req->request_id));
    if (c->body_out) {
        http_respond_json(resp, c->status, c->body_out);
        c->body_out = NULL;
    } else {
        resp->status = c->status;
    }
}

static void script_run(struct script_call *c) {
    lua_State *L = c->st->L;
    struct http_response *resp = c->resp;
    c->st->current = c->sr;
    sandbox_set_phase(L, SANDBOX_REQUEST);
    lua_settop(L, 0);
    lua_pushcfunction(L, script_call_cf);
    lua_pushlightuserdata(L, c);
    int status = sandbox_pcall(L, 1, 0);
    sandbox_set_phase(L, SANDBOX_IDLE);
    c->st->current = NULL;
    if (status != LUA_OK) {
        log_json(LOG_ERROR, "handler error",
                 json_pack("{s:s, s:s, s:s}", "request_id", c->req->request_id, "route",
                           c->route->pattern, "error", lua_tostring(L, -1)));
        lua_settop(L, 0);
        json_decref(c->body_out);
        free(c->text_out);
        body_release(c->raw_out);
        c->body_out = NULL;
        c->text_out = NULL;
        c->raw_out = NULL;
        http_response_clear(resp);
        http_respond_error(resp, c->req, 500, "internal", "internal error; see the server log", NULL);
        return;
    }
    lua_settop(L, 0);
    script_answer(c);
}

/* Parse the request body: a JSON object, or 400 invalid_json. */
static int script_parse_body(struct http_request *req, struct http_response *resp, json_t **out) {
    json_error_t jerr;
    char msg[256];
    *out = NULL;
    if (req->body_len == 0) {
        http_respond_error(resp, req, 400, "invalid_json", "a JSON object body is required", NULL);
        return -1;
    }
    *out = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (*out == NULL) {
        snprintf(msg, sizeof msg, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        http_respond_error(resp, req, 400, "invalid_json", msg,
                           json_pack("{s:i, s:i}", "line", jerr.line, "column", jerr.column));
        return -1;
    }
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        http_respond_error(resp, req, 400, "invalid_json", "the body must be a JSON object", NULL);
        return -1;
    }
    if (!luajson_depth_ok(*out)) {             /* the handlers could not take it: say so, not 500 */
        json_decref(*out);
        *out = NULL;
        snprintf(msg, sizeof msg, "the body nests deeper than %d levels", LUAJSON_MAX_DEPTH);
        http_respond_error(resp, req, 400, "invalid_json", msg,
                           json_pack("{s:i}", "max_depth", LUAJSON_MAX_DEPTH));
        return -1;
    }
    return 0;
}

void script_handle(void *ud, struct http_request *req, struct http_response *resp) {
    script_host *host = ud;
    struct script_state *st = script_thread_state(host);
    struct script_request sr;
    struct script_call call;
    char allow[64] = "";
    int path_matched = 0;

    if (st == NULL) {
        http_respond_error(resp, req, 500, "internal", "internal error; see the server log", NULL);
        return;
    }
    memset(&call, 0, sizeof call);
    for (int i = 0; i < st->nroutes; i++) {
        struct script_param params[SCRIPT_MAX_PARAMS];
        int np;
        if (!script_match(st->routes[i].pattern, req->path, params, &np)) continue;
        path_matched = 1;
        if (strlen(allow) + 8 < sizeof allow)
            snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s", allow[0] ? ", " : "",
                     st->routes[i].method);
        if (strcmp(st->routes[i].method, req->method) != 0) continue;
        call.route = &st->routes[i];
        memcpy(call.params, params, sizeof params);
        call.nparams = np;
        break;
    }
    if (call.route == NULL) {
        if (path_matched) {
            http_add_header(resp, "Allow", allow);
            http_respond_error(resp, req, 405, "method_not_allowed", "method not allowed here", NULL);
        } else {
            http_respond_error(resp, req, 404, "not_found", "no such route", NULL);
        }
        return;
    }
    util_copy(req->route, sizeof req->route, call.route->pattern);
    memset(&sr, 0, sizeof sr);
    sr.http = req;
    if (script_authenticate(host, call.route, req, &sr, resp) != 0) return;
    if (script_check_queues(call.params, call.nparams, req, &sr, resp) != 0) return;
    if ((strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0 ||
         strcmp(req->method, "PATCH") == 0) &&
        script_parse_body(req, resp, &call.body_in) != 0)
        return;
    call.st = st;
    call.req = req;
    call.sr = &sr;
    call.resp = resp;
    script_run(&call);
    json_decref(call.body_in);
}
