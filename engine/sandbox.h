/* sandbox.h — sandboxed Lua 5.4 states for policies and endpoint scripts.
 *
 * A sandbox state has only base (without dofile, loadfile, collectgarbage and
 * print, with a text-only load, and with a setmetatable that refuses __gc),
 * string, table, math and utf8, plus os.clock; no io, os, package, debug or
 * coroutine. Its allocator enforces a memory cap, and every call made through
 * sandbox_pcall() runs under a budget, so a runaway ends with an error instead
 * of holding a thread.
 *
 * The budget counts VM instructions (a count hook), and also the work C code
 * does for the script: bytes allocated, pattern-matching steps (sandbox_match.c)
 * and the elements table functions move (sandbox_lib.c), all through
 * sandbox_charge(). A CPU-time ceiling derived from the budget covers the few
 * operations that do neither (comparing long strings, for one). Once spent,
 * the budget stays spent until the call returns: pcall, xpcall, message
 * handlers and __close handlers all see the error again.
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

/* Bytes of allocation, or of string scanned or copied by C code, that cost
 * one instruction of the budget. */
#define SANDBOX_BYTES_PER_INSTR 16

/* CPU time a call may use per instruction of its budget, and the floor of
 * that ceiling: a backstop for work no counter sees, far above what the
 * budget's instructions take. */
#define SANDBOX_CPU_NS_PER_INSTR 200
#define SANDBOX_CPU_MIN_MS 250

/* A new state with the safe libraries. Returns NULL when out of memory. */
lua_State *sandbox_new(const struct sandbox_limits *limits, void *host);

/* Close a state made by sandbox_new. NULL is a no-op. */
void sandbox_close(lua_State *L);

/* The host pointer given to sandbox_new. */
void *sandbox_host(lua_State *L);

enum sandbox_phase sandbox_phase(lua_State *L);
void sandbox_set_phase(lua_State *L, enum sandbox_phase phase);

/* lua_pcall with a fresh budget and a traceback-free message. Returns the
 * lua_pcall status; on error the message is on the stack. A call that spent
 * its budget fails with the budget's message (status LUA_ERRRUN) even when
 * the error was caught or replaced on the way out. */
int sandbox_pcall(lua_State *L, int nargs, int nresults);

/* Load and run one text file (max 1 MiB) under the budget; its chunk name is
 * `chunkname` so errors read "chunkname:line: message". Returns 0, or -1 with
 * the error message on the stack. */
int sandbox_dofile(lua_State *L, const char *path, const char *chunkname);

/* Charge `cost` instructions of work done in C to the running call. When the
 * budget is spent, raises the budget error (prefixed with `what` when it is
 * not NULL, e.g. "pattern matching took too many steps") and does not
 * return; it also raises when the budget was already spent. For C functions
 * installed in a sandbox state only. */
void sandbox_charge(lua_State *L, long cost, const char *what);

/* Bytes the state's allocator holds now. */
size_t sandbox_mem_used(lua_State *L);

#endif
