/* ticker.c — what runs on a timer, and how often. */
#include "ticker.h"
#include "scaling.h"

void ticker_run(struct ticker *t, struct app *app, int64_t now_mono) {
    /* Every step: a wait_ms answer is never late by more than one step. */
    fleet_check_waiters(app->fl, now_mono, 0);
    if (now_mono >= t->next_reload) {
        policy_reload(app->pol, 0);
        t->next_reload = now_mono + app->cfg->reload_ms;
    }
    if (now_mono >= t->next_second) {
        fleet_sweep(app->fl, now_mono);
        scaling_expire_due(app);
        alerts_tick(app->alerts, app, util_now_ms());
        t->next_second = now_mono + 1000;
    }
}
