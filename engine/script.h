/* script.h — the Lua host for endpoint handlers (the .lua files of scripts/).
 *
 * Every HTTP thread gets its own sandboxed Lua state, created on first use
 * and loaded with the same scripts, so handlers never share a state or a
 * lock. Scripts register routes at load time (sluice.route); script_handle()
 * is the http.c handler: it matches the route, authenticates, checks the
 * route's scope and CSRF rules, parses the JSON body, calls the handler
 * under the instruction budget and turns its return values (status, body,
 * headers) into the response. A body that is a sluice.body (luajson.h) is
 * sent as its bytes, with its ETag, or as 304 Not Modified when the GET's
 * If-None-Match names it. Credentials are checked through the host's
 * auth_cache. A handler error is a 500 "internal", logged
 * with the request id and never shown to the client.
 *
 * An answer that is not ready when the handler returns (a wait_ms hold, an
 * event stream) is deferred.c's: a binding records the plan in the request
 * (script_request.answer), and script_handle() hands it with the handler's
 * answer to deferred_answer().
 *
 * Bindings (bind_*.c) reach the request and the app through script_current()
 * and script_app(). Uses sandbox.h, luajson.h, auth.h, deferred.h and
 * http.h. */
#ifndef SLUICE_SCRIPT_H
#define SLUICE_SCRIPT_H

#include <lua.h>
#include <stddef.h>

#include "app.h"
#include "auth.h"
#include "deferred.h"
#include "http.h"
#include "sandbox.h"

#define SCRIPT_MAX_ROUTES 64
#define SCRIPT_MAX_PARAMS 8

/* What a binding knows about the request being served. */
struct script_request {
    struct http_request *http;
    int authenticated;
    struct auth_principal principal;
    const char *source;          /* "ui" (cookie session), "cli" or "api" */
    int secure;                  /* TLS in front (X-Forwarded-Proto: https) */
    /* What is to become of the answer: planned by sluice.scaling.await and
     * sluice.telemetry.stream (deferred_plan_*), applied when the handler
     * returns. */
    struct deferred_plan answer;
};

typedef struct script_host script_host;

/* The function that builds the whole `sluice` table in a new state and sets
 * it as a global (bind.c's bind_open_sluice). Given by the caller, so that
 * the host does not depend on the bindings that depend on it. */
typedef void (*script_open_fn)(lua_State *L);

/* Load dir once to check it (syntax, route table), with open_api building
 * the Lua API of every state. Returns NULL with a message in err when a
 * script fails. The host keeps app borrowed. */
script_host *script_host_new(const char *dir, const struct sandbox_limits *limits,
                             struct app *app, script_open_fn open_api, char *err, size_t errlen);

/* Close every thread's state. Call after the HTTP server stopped. */
void script_host_free(script_host *host);

/* Number of routes the scripts registered. */
int script_route_count(const script_host *host);

/* http_handler_fn: serve one request (ud is the script_host). */
void script_handle(void *ud, struct http_request *req, struct http_response *resp);

/* For bindings: the request being served. Raises a Lua error outside a
 * request (phase check), naming fname. */
struct script_request *script_current(lua_State *L, const char *fname);

/* For bindings: the app. */
struct app *script_app(lua_State *L);

/* For bindings: the host's cache of verified credentials (auth.h), which a
 * revocation, logout or login must update before answering. */
auth_cache *script_auth_cache(lua_State *L);

/* For sluice.route: register a route in the state being loaded. Raises on
 * bad arguments or outside load time. */
void script_add_route(lua_State *L, const char *method, const char *pattern, const char *scope,
                      int fn_idx);


#endif
