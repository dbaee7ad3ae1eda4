/* ticker.c — what runs on a timer, and how often. */
#include "ticker.h"
#include "scaling.h"

void ticker_run(struct ticker *t, struct app *app, int64_t now_mono) {
    /* Every step: a wait_ms answer is never late by more than one step. */
    fleet_check_waiters(app->fl, now_mono, 0);
    if (now_mono >= t->next_reload) {
        /* A reload may declare new queues: give them their desired entry. */
        if (policy_reload(app->pol, 0) == 1) bus_resync(app->bus);
        t->next_reload = now_mono + app->cfg->reload_ms;
    }
    if (now_mono >= t->next_second) {
        fleet_sweep(app->fl, now_mono);
        if (leader_is(app->leader)) scaling_expire_due(app);   /* once, not per replica */
        telemetry_refresh(app->telemetry, app);
        alerts_tick(app->alerts, app, util_now_ms());
        t->next_second = now_mono + 1000;
    }
    if (now_mono >= t->next_snapshot) {
        if (events_count(app->events) > 0) {
            json_t *snap = telemetry_snapshot(app->telemetry, app);
            events_broadcast(app->events, "snapshot", snap);
            json_decref(snap);
        }
        t->next_snapshot = now_mono + 2000;
    }
    if (now_mono >= t->next_ping) {
        events_ping(app->events);
        t->next_ping = now_mono + 15000;
    }
}
