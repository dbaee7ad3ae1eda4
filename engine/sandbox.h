/* sandbox.h — sandboxed Lua 5.4 states for policies and endpoint scripts.
 *
 * A sandbox state has only base (without dofile, loadfile, collectgarbage, and
 * with a text-only load), string, table, math and utf8, plus os.clock; no io,
 * os, package or debug. Its allocator enforces a memory cap, and every call
 * made through sandbox_pcall() runs under an instruction budget, so a runaway
 * loop ends with an error instead of hanging a thread.
 *
 * Each state carries a phase (load / request / tick) that bindings check to
 * refuse functions called outside their context, and an opaque host pointer
 * for the module that owns the state. */
#ifndef SLUICE_SANDBOX_H
#define SLUICE_SANDBOX_H

#include <lua.h>
#include <stddef.h>

enum sandbox_phase { SANDBOX_LOAD, SANDBOX_REQUEST, SANDBOX_TICK, SANDBOX_IDLE };

struct sandbox_limits {
    size_t mem_bytes;        /* allocator cap for the whole state */
    long instr_budget;       /* VM instructions per sandbox_pcall */
};

/* A new state with the safe libraries. Returns NULL when out of memory. */
lua_State *sandbox_new(const struct sandbox_limits *limits, void *host);

/* Close a state made by sandbox_new. NULL is a no-op. */
void sandbox_close(lua_State *L);

/* The host pointer given to sandbox_new. */
void *sandbox_host(lua_State *L);

enum sandbox_phase sandbox_phase(lua_State *L);
void sandbox_set_phase(lua_State *L, enum sandbox_phase phase);

/* lua_pcall with a fresh instruction budget and a traceback-free message.
 * Returns the lua_pcall status; on error the message is on the stack. */
int sandbox_pcall(lua_State *L, int nargs, int nresults);

/* Load and run one text file (max 1 MiB) under the budget; its chunk name is
 * `chunkname` so errors read "chunkname:line: message". Returns 0, or -1 with
 * the error message on the stack. */
int sandbox_dofile(lua_State *L, const char *path, const char *chunkname);

/* Bytes the state's allocator holds now. */
size_t sandbox_mem_used(lua_State *L);

#endif
