/* ticker.c — what runs on a timer, and how often. */
#include "ticker.h"
#include "announce.h"
#include "config.h"
#include "telemetry.h"
#include "store.h"
#include "policy.h"
#include "leader.h"
#include "health.h"
#include "fleet.h"
#include "events.h"
#include "bus.h"
#include "alerts.h"
#include "log.h"
#include "scaling.h"
#include "history.h"

#include <stdio.h>
#include <string.h>

/* Expired sessions no longer let anyone in, but their rows stay until
 * deleted: the leader deletes them (once for every replica). */
static void ticker_sweep_sessions(struct app *app) {
    int64_t deleted = 0;
    if (!leader_is(app->leader)) return;
    if (store_sweep_sessions(app->st, util_now_ms(), &deleted) == STORE_OK && deleted > 0)
        log_json(LOG_DEBUG, "expired sessions deleted", json_pack("{s:I}", "sessions", (json_int_t)deleted));
}

/* Audit a reload attempt that tried new content (kind "policy", subject
 * "reload"): applied with the digest and files in force, or rejected with
 * the error. The leader audits (once for every replica sharing the store);
 * the others log it, as every replica does. */
static void ticker_audit_reload(struct app *app, const struct policy_reload_event *ev) {
    char reason[STORE_REASON_MAX], rid[STORE_RID_MAX];
    struct store_audit e;
    if (!ev->attempted || !leader_is(app->leader)) return;
    if (ev->loaded)
        snprintf(reason, sizeof reason, "sha256 %s; files %s", ev->sha256, ev->files);
    else if (ev->error.line > 0)
        snprintf(reason, sizeof reason, "%s:%d: %s (sha256 %s; previous policy stays in force)",
                 ev->error.file, ev->error.line, ev->error.message, ev->sha256[0] ? ev->sha256 : "-");
    else
        snprintf(reason, sizeof reason, "%s%s%s (sha256 %s; previous policy stays in force)",
                 ev->error.file, ev->error.file[0] ? ": " : "", ev->error.message,
                 ev->sha256[0] ? ev->sha256 : "-");
    memcpy(rid, "reload-", 8);
    if (util_random_hex(rid + 7, 8) != 0) strcpy(rid, "reload");
    struct store_origin o = {"sluiced", "sluiced", reason, rid, util_now_ms()};
    store_audit_init(&e, "policy", "reload", 0, 0, 0, ev->loaded ? "applied" : "rejected",
                     ev->loaded ? NULL : "policy_invalid", &o);
    if (store_append_audit(app->st, &e) != STORE_OK)
        log_json(LOG_ERROR, "could not audit a policy reload", json_pack("{s:s}", "reason", reason));
}

void ticker_run(struct ticker *t, struct app *app, int64_t now_mono) {
    /* Every step: a wait_ms answer is never late by more than one step. */
    fleet_check_waiters(app->fl, now_mono, 0);
    if (now_mono >= t->next_reload) {
        /* A reload may declare new queues: give them their desired entry,
         * and reads their Targets and bounds from the next model. */
        struct policy_reload_event ev;
        int rc = policy_reload_with(app->pol, 0, &ev);
        ticker_audit_reload(app, &ev);
        if (rc == 1) {
            bus_resync(app->bus);
            health_changed(app->health);
        }
        t->next_reload = now_mono + app->cfg->reload_ms;
    }
    if (now_mono >= t->next_second) {
        fleet_sweep(app->fl, now_mono);
        if (leader_is(app->leader)) {                          /* once, not per replica */
            scaling_expire_due(app);
            scaling_expire_approvals(app);
        }
        telemetry_refresh(app->telemetry, app->pol);
        /* The model of this second, and the alert rules judged on it. */
        int64_t now_ms = util_now_ms();
        health_tick(app, now_ms, announce_alert, app);
        /* One sample of each queue per slot, from the model just published. */
        if (app->history && now_ms / HISTORY_STEP_MS != t->last_sample_slot) {
            struct health_model *m = health_acquire(app->health);
            history_sample_model(app->history, m, now_ms);
            health_release(m);
            t->last_sample_slot = now_ms / HISTORY_STEP_MS;
        }
        t->next_second = now_mono + 1000;
    }
    /* After an announced change, a snapshot to live streams, at most every
     * TICKER_CHANGE_SNAPSHOT_MS (a burst of writes costs the streams one
     * snapshot, not one each); otherwise one every 2 s. Reads rebuild the
     * model themselves when it is older than a step (health.c). */
    t->snapshot_owed |= health_take_changed(app->health);
    int due = now_mono >= t->next_snapshot ||
              (t->snapshot_owed && now_mono >= t->last_snapshot + TICKER_CHANGE_SNAPSHOT_MS);
    if (due) {
        if (events_count(app->events) > 0) {
            /* The model's cached snapshot body: the same bytes reads get,
             * and no tree of the whole fleet is built for it. */
            struct health_model *m = health_rebuild(app);
            struct body *snap = m ? health_snapshot_body(m) : NULL;
            if (snap) events_broadcast_text(app->events, "snapshot", snap->bytes, snap->len);
            body_release(snap);
            health_release(m);
        }
        t->snapshot_owed = 0;
        t->last_snapshot = now_mono;
        t->next_snapshot = now_mono + 2000;
    }
    /* What changes posted, every TICKER_EVENTS_MS: a burst of changes
     * leaves in one write per stream. */
    if (now_mono >= t->next_events) {
        events_flush(app->events);
        t->next_events = now_mono + TICKER_EVENTS_MS;
    }
    if (now_mono >= t->next_ping) {
        events_ping(app->events);
        t->next_ping = now_mono + 15000;
    }
    if (now_mono >= t->next_session_sweep) {
        ticker_sweep_sessions(app);
        t->next_session_sweep = now_mono + app->cfg->session_sweep_s * 1000LL;
    }
}
