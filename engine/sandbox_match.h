/* sandbox_match.h — Lua 5.4's pattern matching (string.find, string.match,
 * string.gmatch, string.gsub) with every step charged to the sandbox budget.
 *
 * Stock matching runs inside one C call, where the instruction hook never
 * fires: `("a"):rep(300):find(".-.-.-.-b")` backtracks for minutes. These
 * copies of lstrlib.c's matcher behave exactly like it and count their work
 * (pattern items tried, characters scanned or compared) through
 * sandbox_charge(), so a runaway match ends with "pattern matching took too
 * many steps: instruction budget exceeded (N instructions)". Uses sandbox.c
 * for the budget. */
#ifndef SLUICE_SANDBOX_MATCH_H
#define SLUICE_SANDBOX_MATCH_H

#include <lua.h>

/* Replace find, match, gmatch and gsub in L's global `string` table (also
 * the __index of strings, so s:find() is covered) with the metered copies.
 * Raises on memory errors; call it while opening a sandbox's libraries. */
void sandbox_match_register(lua_State *L);

#endif
