/* announce.c — the after-commit announcement of a change (see announce.h). */
#include "announce.h"
#include "store.h"
#include "metrics.h"
#include "health.h"
#include "leader.h"
#include "fleet.h"
#include "events.h"
#include "bus.h"
#include "log.h"
#include "notify.h"

#include <string.h>

/* A "change" event to every live stream; the new state follows from the
 * ticker (health_changed), coalesced with any other change of its step. */
static void announce_events(struct app *app, const struct store_change_result *res,
                            const struct store_origin *o) {
    char ts[UTIL_TIME_MAX];
    if (app->events == NULL || events_count(app->events) == 0) return;
    json_t *change = json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:b}", "queue",
                               res->target.queue, "from", (json_int_t)res->previous, "to",
                               (json_int_t)res->target.desired, "version",
                               (json_int_t)res->target.version, "actor", o->actor, "source",
                               o->source, "reason", o->reason, "at",
                               util_format_time(util_now_ms(), ts), "kind",
                               res->kind == STORE_CHANGE_SCALING ? "scaling" : "pause", "paused",
                               res->target.paused != 0);
    /* Posted, not sent: the ticker's next step (50 ms at most) wakes the
     * streams, with the new snapshot right behind. */
    events_post(app->events, "change", change);
    json_decref(change);
}

void announce_change(struct app *app, const struct store_change_result *res,
                     const struct store_origin *o) {
    const struct store_target *t = &res->target;
    int expiry = strcmp(o->source, "expiry") == 0;
    /* Workers may acknowledge this version from now on, and the relay
     * publishes it. */
    if (app->fl) fleet_issued(app->fl, t->queue, t->version);
    if (app->bus) bus_kick(app->bus);
    notify_kick(app->notify);       /* the audit entry becomes notifications now */
    if (app->metrics) metrics_count_change(app->metrics, t->queue, "applied");
    announce_events(app, res, o);
    health_changed(app->health);
    if (res->kind != STORE_CHANGE_SCALING)
        log_json(LOG_INFO, t->paused ? "queue paused" : "queue resumed",
                 json_pack("{s:s, s:I, s:s, s:s, s:s}", "queue", t->queue, "version",
                           (json_int_t)t->version, "actor", o->actor, "source", o->source,
                           "request_id", o->request_id));
    else if (expiry)
        log_json(LOG_INFO, "temporary override ended",
                 json_pack("{s:s, s:I, s:I, s:I}", "queue", t->queue, "from",
                           (json_int_t)res->previous, "to", (json_int_t)t->desired, "version",
                           (json_int_t)t->version));
    else
        log_json(LOG_INFO, "scaling change applied",
                 json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:s}", "queue", t->queue, "from",
                           (json_int_t)res->previous, "to", (json_int_t)t->desired, "version",
                           (json_int_t)t->version, "actor", o->actor, "source", o->source,
                           "request_id", o->request_id));
}

void announce_alert(void *ud, const struct alerts_state *a, const char *state, int64_t now_ms) {
    struct app *app = ud;
    char ts[UTIL_TIME_MAX];
    json_t *msg = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "alert", a->hit.alert, "queue",
                            a->hit.queue, "state", state, "severity", a->hit.severity, "message",
                            a->hit.message, "at", util_format_time(now_ms, ts));
    if (msg == NULL) return;
    if (a->hit.worker[0]) json_object_set_new(msg, "worker", json_string(a->hit.worker));
    events_broadcast(app->events, "alert", msg);
    if (!leader_is(app->leader)) {
        json_decref(msg);
        return;
    }
    log_json(strcmp(state, "firing") == 0 ? LOG_WARN : LOG_INFO, "alert", json_deep_copy(msg));
    bus_publish_alert(app->bus, msg);
    notify_alert(app->notify, a, state, now_ms);   /* durable: into the notification outbox */
}
