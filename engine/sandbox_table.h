/* sandbox_table.h — table.insert, table.remove, table.move, table.unpack and
 * table.sort of Lua 5.4.4 (ltablib.c), charged to the sandbox budget.
 *
 * Stock, these loop in C over as many elements as their arguments say, and
 * a __len metamethod can say anything: table.move({}, 1, 1e15, 2) or
 * table.insert(t, 1, v) with a __len of 2^62 would hold the thread for
 * hours without the instruction hook ever firing. These copies behave like
 * the originals and charge the elements they will move (before moving them)
 * and every comparison sort makes, through sandbox_charge(). Uses sandbox.c
 * for the budget. */
#ifndef SLUICE_SANDBOX_TABLE_H
#define SLUICE_SANDBOX_TABLE_H

#include <lua.h>

/* Replace insert, remove, move, unpack and sort in L's global `table` with
 * the metered copies. Raises on memory errors; call it while opening a
 * sandbox's libraries. */
void sandbox_table_register(lua_State *L);

#endif
