/* announce.h — what follows a committed change of desired concurrency, in
 * one place: workers may acknowledge the new version (fleet), the outbox
 * relay is woken to publish it (bus), live streams get a "change" event
 * (posted: the ticker wakes them within a step, with a fresh snapshot),
 * the metrics count it, and the log says so. Nothing here builds a
 * snapshot: a write costs the same with or without streams open.
 *
 * scaling.c calls it after the store committed, never inside the
 * transaction, and only when something was stored. It knows presentation
 * (events, metrics) so that the domain does not. Uses app.h. */
#ifndef SLUICE_ANNOUNCE_H
#define SLUICE_ANNOUNCE_H

#include "app.h"
#include "alerts.h"
#include "store.h"

/* Announce res (a committed change that was stored: res->changed) made by
 * the origin o. An expiry (source "expiry") is logged as the end of a
 * temporary override. Never fails: what cannot be sent is dropped. */
void announce_change(struct app *app, const struct store_change_result *res,
                     const struct store_origin *o);

/* Announce an alert transition (alerts_notify_fn; ud is the app): every
 * replica tells its live streams ("alert" event), only the leader logs it
 * and publishes it on <prefix>:alerts, so one transition is announced once. */
void announce_alert(void *ud, const struct alerts_state *a, const char *state, int64_t now_ms);

#endif
