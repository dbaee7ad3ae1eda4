/* audit.h — the audit log as the outside sees it: one entry as JSON (the
 * API's AuditEntry), the export of the log as JSON lines, and the explicit
 * prune behind `sluiced audit prune`. Retention is never automatic: only
 * that command deletes, and it audits itself. Uses store.h; keeps no state. */
#ifndef SLUICE_AUDIT_H
#define SLUICE_AUDIT_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"

/* Entries this young are never pruned: cooldowns (up to 24 h) and hourly
 * budgets are judged from the audit log, and a prune must not reset them. */
#define AUDIT_KEEP_MS (24LL * 3600 * 1000)

/* One AuditEntry (api.md). A prune's entry (kind "audit") has queue null,
 * "action": "prune", "deleted" and "before_id" (also in from and to); a
 * policy reload's (kind "policy") has queue null and "action": "reload".
 * New ref. */
json_t *audit_entry_json(const struct store_audit *e);

/* Write every entry with id < before_id (0: all), oldest first, as one
 * compact JSON object a line (keys sorted) to out, reading the log in pages.
 * *count gets how many were written. Returns a store_rc; STORE_FAILED also
 * when out cannot be written (errno tells why). */
int audit_export(store *st, int64_t before_id, FILE *out, int64_t *count);

/* Parse an RFC 3339 time, "2026-11-26T21:41:32Z" with optional fraction of
 * a second and a "Z" or "+HH:MM"/"-HH:MM" offset, into ms since the epoch.
 * Returns 0, or -1 when s is not such a time. */
int audit_parse_time(const char *s, int64_t *ms);

/* Prune the entries with id < before_id (or, when it is 0, those before the
 * first entry at or after before_at_ms), as actor with reason, through
 * store_prune_audit: source "cli", a request id "prune-<16 hex>", and
 * nothing younger than AUDIT_KEEP_MS (res->refused). Returns a store_rc. */
int audit_prune(store *st, int64_t before_id, int64_t before_at_ms, const char *actor,
                const char *reason, struct store_prune_result *res);

#endif
