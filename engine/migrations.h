/* migrations.h — the schema migrations compiled into sluiced.
 *
 * The table is generated at build time from db/sqlite/ and db/postgres/ by
 * tools/embed-migrations.sh; each backend applies its own rows in version
 * order, recording them in schema_migrations. */
#ifndef SLUICE_MIGRATIONS_H
#define SLUICE_MIGRATIONS_H

struct migration {
    const char *backend;   /* "sqlite" | "postgres"; NULL ends the table */
    int version;           /* NNN of NNN_name.sql */
    const char *name;
    const char *sql;
};

extern const struct migration migrations[];

#endif
