/* luajson.h — converting between jansson values and Lua values.
 *
 * JSON arrays become Lua sequences marked with a shared metatable (so an
 * empty array stays [] on the way back), JSON null becomes sluice.null (a
 * light userdata), integers stay Lua integers and reals stay floats, so a
 * handler can tell 24 from 24.0 with math.type.
 *
 * A rendered body (body.h) travels through Lua untouched as a sluice.body
 * userdata: a binding pushes one, a handler returns it, and the host sends
 * its bytes as they are, with their ETag; no JSON becomes Lua and back. */
#ifndef SLUICE_LUAJSON_H
#define SLUICE_LUAJSON_H

#include <jansson.h>
#include <lua.h>
#include <stddef.h>

#include "body.h"

#define LUAJSON_MAX_DEPTH 64

/* 1 when v nests no deeper than LUAJSON_MAX_DEPTH (what luajson_push takes),
 * so a request body can be refused as 400 before any Lua sees it. */
int luajson_depth_ok(const json_t *v);

/* Create the array metatable in the registry; call once per state. */
void luajson_init(lua_State *L);

/* Push the null sentinel. */
void luajson_push_null(lua_State *L);

/* 1 when the value at idx is the null sentinel. */
int luajson_is_null(lua_State *L, int idx);

/* Mark the table at idx as a JSON array. */
void luajson_mark_array(lua_State *L, int idx);

/* Push v as a Lua value. May raise a Lua error (memory); v is borrowed, so
 * callers that own v should box it first (luajson_box). */
void luajson_push(lua_State *L, json_t *v);

/* Build a jansson value from the Lua value at idx without raising. Returns a
 * new reference, or NULL with a message in err (functions, NaN, non-string
 * keys in an object, invalid UTF-8, nesting deeper than LUAJSON_MAX_DEPTH). */
json_t *luajson_from_lua(lua_State *L, int idx, char *err, size_t errlen);

/* Push a userdata box that owns a jansson value and decrefs it when
 * collected; returns the slot to store the value in. This is how bindings
 * keep a value alive across Lua calls that may raise. */
json_t **luajson_box(lua_State *L);

/* Push *box converted to Lua, then release the box's value and remove the
 * box from the stack (it must be just below the top). */
void luajson_push_boxed(lua_State *L, json_t **box);

/* Push an empty sluice.body userdata, which releases the body it holds
 * when collected, and return its slot: store a reference in it (taken
 * over), or pop it when there is none. Raises on memory, before anything
 * is taken. */
struct body **luajson_body_box(lua_State *L);

/* The body held by the sluice.body at idx (borrowed, valid while the value
 * is), or NULL for any other value or an empty box. Does not raise. */
struct body *luajson_to_body(lua_State *L, int idx);

#endif
