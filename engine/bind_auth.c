/* bind_auth.c — sluice.auth: whoami, login/logout (cookie sessions) and
 * token management, over auth.c. Revocation, logout and login update the
 * host's cache of verified credentials (script_auth_cache) before they
 * answer. */
#include "auth.h"
#include "store.h"
#include "config.h"
#include "bind.h"
#include "flags.h"
#include "luajson.h"
#include "protocol.h"
#include "script.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#define AUTH_COOKIE "sluice_session"
#define AUTH_COOKIE_HTTPS "__Host-sluice_session"   /* see script_authenticate */

static int auth_fail(lua_State *L, const char *code, const char *message) {
    struct api_error err = {0};
    api_error_set(&err, code, NULL, "%s", message);
    return bind_push_failure(L, &err);
}

/* A token's queue patterns as JSON: a list, or null for every queue. */
static json_t *auth_queues_json(const char *patterns) {
    if (patterns == NULL || patterns[0] == '\0') return json_null();
    json_t *out = json_array();
    for (const char *s = patterns; *s;) {
        size_t n = strcspn(s, ",");
        json_array_append_new(out, json_stringn(s, n));
        s += n;
        if (*s == ',') s++;
    }
    return out;
}

/* Push a token's queue patterns: a list, or sluice.null for every queue. */
static void auth_push_queues(lua_State *L, const char *patterns) {
    json_t **box = luajson_box(L);                      /* box */
    *box = auth_queues_json(patterns);
    luajson_push_boxed(L, box);                         /* value */
}

static void auth_push_scopes(lua_State *L, unsigned mask) {
    const char *scope;
    unsigned bit;
    lua_newtable(L);
    for (size_t i = 0, k = 1; (scope = auth_scope_at(i, &bit)) != NULL; i++) {
        if (!(mask & bit)) continue;
        lua_pushstring(L, scope);
        lua_rawseti(L, -2, (lua_Integer)k++);
    }
    luajson_mark_array(L, -1);
}

/* sluice.auth.whoami() -> {name, scopes, queues, environment, writes_enabled, via} | nil, err
 * (queues: the token's patterns, null for every queue) */
static int auth_l_whoami(lua_State *L) {
    int enabled, rc;
    luaL_argcheck(L, lua_gettop(L) == 0, 1, "no arguments expected");
    struct script_request *sr = script_current(L, "sluice.auth.whoami");
    struct app *app = script_app(L);
    if (!sr->authenticated) return auth_fail(L, "unauthenticated", "not logged in");
    if ((rc = flags_get(app, FLAG_WRITES, &enabled)) != STORE_OK) return bind_push_store_failure(L, rc);
    lua_createtable(L, 0, 7);
    lua_pushstring(L, sr->principal.name);
    lua_setfield(L, -2, "name");
    auth_push_scopes(L, sr->principal.scopes);
    lua_setfield(L, -2, "scopes");
    auth_push_queues(L, sr->principal.queues);
    lua_setfield(L, -2, "queues");
    lua_pushstring(L, app->cfg->env);
    lua_setfield(L, -2, "environment");
    lua_pushboolean(L, enabled);
    lua_setfield(L, -2, "writes_enabled");
    lua_pushstring(L, sr->principal.via_session ? "session" : "token");
    lua_setfield(L, -2, "via");
    if (sr->principal.via_session) {
        /* The page may reload: it finds its CSRF token here (same-origin only). */
        lua_pushstring(L, sr->principal.csrf);
        lua_setfield(L, -2, "csrf_token");
    }
    return 1;
}

/* sluice.auth.login(token) -> {name, scopes, queues, csrf_token}, set_cookie | nil, err */
static int auth_l_login(lua_State *L) {
    struct auth_principal p;
    char cookie[STORE_HASH_MAX], header[256];
    luaL_argcheck(L, lua_gettop(L) == 1, 1, "expected a token");
    struct script_request *sr = script_current(L, "sluice.auth.login");
    const char *token = luaL_checkstring(L, 1);
    int rc = auth_session_open(script_app(L)->st, token, util_now_ms(), &p, cookie);
    /* A new session may have ended the oldest of its token (the cap per
     * token): what this process remembers of them goes. */
    if (rc == AUTH_OK) auth_cache_forget_token(script_auth_cache(L), p.token_id);
    if (rc < 0) return bind_push_store_failure(L, rc);
    if (rc != AUTH_OK) return auth_fail(L, "unauthenticated", "the token is unknown, expired or revoked");
    util_copy(sr->http->actor, sizeof sr->http->actor, p.name);
    snprintf(header, sizeof header, "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld%s",
             sr->secure ? AUTH_COOKIE_HTTPS : AUTH_COOKIE, cookie, AUTH_SESSION_TTL_MS / 1000,
             sr->secure ? "; Secure" : "");
    lua_createtable(L, 0, 3);
    lua_pushstring(L, p.name);
    lua_setfield(L, -2, "name");
    auth_push_scopes(L, p.scopes);
    lua_setfield(L, -2, "scopes");
    auth_push_queues(L, p.queues);
    lua_setfield(L, -2, "queues");
    lua_pushstring(L, p.csrf);
    lua_setfield(L, -2, "csrf_token");
    lua_pushstring(L, header);
    return 2;
}

/* sluice.auth.logout() -> set_cookie (clearing the cookie) | nil, err */
static int auth_l_logout(lua_State *L) {
    char header[160];
    luaL_argcheck(L, lua_gettop(L) == 0, 1, "no arguments expected");
    struct script_request *sr = script_current(L, "sluice.auth.logout");
    int rc = auth_session_close(script_app(L)->st, &sr->principal);
    if (rc != STORE_OK) return bind_push_store_failure(L, rc);
    /* Before answering: the cookie is refused from the next request on. */
    if (sr->principal.via_session) auth_cache_forget_session(script_auth_cache(L), sr->principal.session_hash);
    snprintf(header, sizeof header, "%s=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0%s",
             sr->secure ? AUTH_COOKIE_HTTPS : AUTH_COOKIE, sr->secure ? "; Secure" : "");
    lua_pushstring(L, header);
    return 1;
}

/* The list at the top of the stack (nil: none) as canonical queue patterns
 * into out ("" when nil). Returns 0, or -1 with err (invalid_field naming
 * queues). Raises when it is not a list of strings. */
static int auth_read_queues(lua_State *L, char *out, size_t size, struct api_error *err) {
    char csv[AUTH_QUEUES_MAX + 64] = "", msg[200];
    size_t used = 0;
    out[0] = '\0';
    if (lua_isnil(L, -1) || luajson_is_null(L, -1)) return 0;
    luaL_argcheck(L, lua_istable(L, -1), 1, "queues must be a list");
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    if (n == 0) snprintf(msg, sizeof msg, "'queues' must not be empty (leave it out for every queue)");
    else if (n > AUTH_QUEUE_PATTERNS) snprintf(msg, sizeof msg, "'queues' holds at most %d patterns", AUTH_QUEUE_PATTERNS);
    for (lua_Integer i = 1; n > 0 && n <= AUTH_QUEUE_PATTERNS && i <= n; i++) {
        lua_rawgeti(L, -1, i);
        luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "queues must be strings");
        size_t len;
        const char *q = lua_tolstring(L, -1, &len);
        lua_pop(L, 1);
        /* One pattern per element: "a,b" is not two. */
        if (!auth_queue_pattern_valid(q, len) || strlen(q) != len) {
            char shown[72];
            util_copy_utf8(shown, sizeof shown, q);          /* whole characters only */
            snprintf(msg, sizeof msg, "'%s' is not a queue pattern (a queue name of 1..64 of"
                                      " A-Z a-z 0-9 _ . : -, optionally ending in '*')", shown);
            n = -1;
            break;
        }
        used += (size_t)snprintf(csv + used, sizeof csv - used, "%s%s", used ? "," : "", q);
    }
    if (n > 0 && n <= AUTH_QUEUE_PATTERNS && auth_parse_queues(csv, out, size, msg, sizeof msg) == 0)
        return 0;
    api_error_set(err, "invalid_field", json_pack("{s:s}", "field", "queues"), "%s", msg);
    return -1;
}

/* A caller limited to queues hands on only what it has: 403 forbidden
 * unless queues (of the token to create, or of one to revoke) lie within
 * the caller's patterns. Returns 0 when it may. */
static int auth_check_cover(lua_State *L, const char *queues, const char *what) {
    struct script_request *sr = script_current(L, "sluice.auth");
    if (auth_queues_cover(sr->principal.queues, queues)) return 0;
    struct api_error err = {0};
    api_error_set(&err, "forbidden", json_pack("{s:s}", "queues", sr->principal.queues),
                  "these credentials are limited to the queues %s: %s", sr->principal.queues, what);
    return bind_push_failure(L, &err);
}

/* sluice.auth.create_token{name, scopes = {...}, queues = {...}?, expires_in_s?}
 *   -> {id, token, name, scopes, queues} | nil, err
 * A caller limited to queues creates only tokens limited within them. */
static int auth_l_create_token(lua_State *L) {
    char token[AUTH_TOKEN_MAX], id[STORE_ID_MAX], csv[128] = "", err[160];
    char queues[AUTH_QUEUES_MAX];
    struct api_error qerr = {0};
    unsigned scopes;
    int64_t expires = 0;
    luaL_argcheck(L, lua_gettop(L) == 1, 1, "expected {name, scopes, queues?, expires_in_s?}");
    script_current(L, "sluice.auth.create_token");
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "name");
    const char *name = lua_tostring(L, -1);
    luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING && protocol_valid_name(name), 1,
                  "name must be 1..64 of A-Z a-z 0-9 _ . : -");
    lua_getfield(L, 1, "scopes");
    luaL_argcheck(L, lua_istable(L, -1), 1, "scopes must be a list");
    for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, -1); i++) {
        lua_rawgeti(L, -1, i);
        luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "scopes must be strings");
        size_t used = strlen(csv);
        snprintf(csv + used, sizeof csv - used, "%s%s", used ? "," : "", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_getfield(L, 1, "expires_in_s");
    if (!lua_isnil(L, -1)) {
        luaL_argcheck(L, lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0, 1,
                      "expires_in_s must be a positive integer");
        expires = lua_tointeger(L, -1);
    }
    if (auth_parse_scopes(csv, &scopes, err, sizeof err) != 0) return auth_fail(L, "invalid_field", err);
    lua_getfield(L, 1, "queues");
    if (auth_read_queues(L, queues, sizeof queues, &qerr) != 0) return bind_push_failure(L, &qerr);
    if (auth_check_cover(L, queues, "a new token must be limited within them") != 0) return 3;
    int rc = auth_token_create_for(script_app(L)->st, name, scopes, queues, expires, util_now_ms(), token, id);
    if (rc != STORE_OK) return bind_push_store_failure(L, rc);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, token);
    lua_setfield(L, -2, "token");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
    auth_push_scopes(L, scopes);
    lua_setfield(L, -2, "scopes");
    auth_push_queues(L, queues);
    lua_setfield(L, -2, "queues");
    return 1;
}

/* sluice.auth.revoke_token(id) -> true | nil, err
 * A caller limited to queues revokes only tokens limited within them. */
static int auth_l_revoke_token(lua_State *L) {
    struct store_token t;
    luaL_argcheck(L, lua_gettop(L) == 1, 1, "expected a token id");
    struct script_request *sr = script_current(L, "sluice.auth.revoke_token");
    const char *id = luaL_checkstring(L, 1);
    int rc;
    if (sr->principal.queues[0]) {
        rc = store_get_token(script_app(L)->st, id, &t);
        if (rc == STORE_NOT_FOUND) return auth_fail(L, "not_found", "no such token");
        if (rc != STORE_OK) return bind_push_store_failure(L, rc);
        if (auth_check_cover(L, t.queues, "this token is not limited within them") != 0) return 3;
    }
    rc = store_revoke_token(script_app(L)->st, id, util_now_ms());
    if (rc == STORE_NOT_FOUND) return auth_fail(L, "not_found", "no such token");
    if (rc != STORE_OK) return bind_push_store_failure(L, rc);
    /* Before answering: the token and its sessions are refused from the
     * next request on, on this replica (others: within AUTH_CACHE_TTL_MS). */
    auth_cache_forget_token(script_auth_cache(L), id);
    lua_pushboolean(L, 1);
    return 1;
}

/* sluice.auth.queue_allowed(queue) -> whether the caller may see and act
 * on queue (its token's patterns; always true for a token of every queue). */
static int auth_l_queue_allowed(lua_State *L) {
    luaL_argcheck(L, lua_gettop(L) == 1, 1, "expected a queue name");
    struct script_request *sr = script_current(L, "sluice.auth.queue_allowed");
    lua_pushboolean(L, auth_queue_allowed(&sr->principal, luaL_checkstring(L, 1)));
    return 1;
}

/* sluice.auth.list_tokens() -> {items = {{id, name, scopes, queues, created_at, expires_at,
 *   revoked_at}}}; a caller limited to queues sees the tokens limited within them only. */
static int auth_l_list_tokens(lua_State *L) {
    struct store_token *rows = NULL;
    size_t n = 0;
    char ts[UTIL_TIME_MAX], err[64];
    luaL_argcheck(L, lua_gettop(L) == 0, 1, "no arguments expected");
    struct script_request *sr = script_current(L, "sluice.auth.list_tokens");
    int rc = store_list_tokens(script_app(L)->st, &rows, &n);
    if (rc != STORE_OK) return bind_push_store_failure(L, rc);
    json_t **box = luajson_box(L);
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        unsigned mask = 0;
        if (!auth_queues_cover(sr->principal.queues, rows[i].queues)) continue;
        auth_parse_scopes(rows[i].scopes, &mask, err, sizeof err);
        json_t *scopes = json_array();
        const char *scope;
        unsigned bit;
        for (size_t k = 0; (scope = auth_scope_at(k, &bit)) != NULL; k++)
            if (mask & bit) json_array_append_new(scopes, json_string(scope));
        json_array_append_new(items, json_pack("{s:s, s:s, s:o, s:o, s:s, s:o, s:o}", "id", rows[i].id,
                                               "name", rows[i].name, "scopes", scopes, "queues",
                                               auth_queues_json(rows[i].queues), "created_at",
                                               util_format_time(rows[i].created_ms, ts), "expires_at",
                                               rows[i].expires_ms ? json_string(util_format_time(rows[i].expires_ms, ts)) : json_null(),
                                               "revoked_at",
                                               rows[i].revoked_ms ? json_string(util_format_time(rows[i].revoked_ms, ts)) : json_null()));
    }
    free(rows);
    *box = json_pack("{s:o}", "items", items);
    luajson_push_boxed(L, box);
    return 1;
}

void bind_auth_open(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"whoami", auth_l_whoami},
        {"login", auth_l_login},
        {"logout", auth_l_logout},
        {"create_token", auth_l_create_token},
        {"revoke_token", auth_l_revoke_token},
        {"list_tokens", auth_l_list_tokens},
        {"queue_allowed", auth_l_queue_allowed},
        {NULL, NULL},
    };
    luaL_setfuncs(L, fns, 0);
}
