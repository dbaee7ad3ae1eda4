/* notify_format.c — what a notification says: the event an audit entry
 * makes, the three body formats (json, alertmanager, slack) and the
 * HMAC-SHA256 signature. Pure functions, no I/O: notify.c enqueues and
 * delivers what these render. */
#include "notify.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Text the chat and alert formats quote from a reason or message: bounded,
 * so that every body fits STORE_NOTIFY_PAYLOAD_MAX whatever was written. */
#define NOTIFY_QUOTE_MAX 512

const char *notify_event_of_audit(const struct store_audit *e) {
    int scaling = strcmp(e->kind, "scaling") == 0, pause = strcmp(e->kind, "pause") == 0;
    if (!scaling && !pause) return NULL;
    if (strcmp(e->outcome, "applied") == 0) return "change";
    if (strcmp(e->outcome, "rejected") == 0)
        return strcmp(e->error_code, "approval_rejected") == 0 ? "approval" : "refusal";
    if (strcmp(e->outcome, "pending_approval") == 0 || strcmp(e->outcome, "approved") == 0 ||
        strcmp(e->outcome, "expired") == 0)
        return "approval";
    return NULL;
}

/* The AuditEntry of docs/api.md. New ref. */
static json_t *notify_audit_json(const struct store_audit *e) {
    char ts[UTIL_TIME_MAX];
    return json_pack("{s:I, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:o, s:s, s:s}", "id",
                     (json_int_t)e->id, "kind", e->kind, "queue", e->subject, "from",
                     (json_int_t)e->from, "to", (json_int_t)e->to, "version",
                     (json_int_t)e->version, "actor", e->actor, "source", e->source, "reason",
                     e->reason, "outcome", e->outcome, "error_code",
                     e->error_code[0] ? json_string(e->error_code) : json_null(), "at",
                     util_format_time(e->at_ms, ts), "request_id", e->request_id);
}

/* The alert object of the json format. New ref. */
static json_t *notify_alert_json(const struct notify_event *ev) {
    char ts[UTIL_TIME_MAX];
    const struct alerts_state *a = ev->alert;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "alert", a->hit.alert, "queue",
                          a->hit.queue, "state", ev->alert_state, "severity", a->hit.severity,
                          "message", a->hit.message, "since", util_format_time(a->since_ms, ts));
    if (o && a->hit.worker[0]) json_object_set_new(o, "worker", json_string(a->hit.worker));
    return o;
}

static json_t *notify_json(const struct notify_event *ev) {
    char ts[UTIL_TIME_MAX];
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "id", ev->id, "kind", ev->kind, "queue", ev->queue,
                          "at", util_format_time(ev->at_ms, ts));
    if (o == NULL) return NULL;
    if (ev->audit) json_object_set_new(o, "audit", notify_audit_json(ev->audit));
    else json_object_set_new(o, "alert", notify_alert_json(ev));
    return o;
}

/* One line saying what an audit entry did, for people (slack, summaries). */
static void notify_audit_line(const struct store_audit *e, const char *kind, char *out, size_t len) {
    char reason[NOTIFY_QUOTE_MAX];
    const char *what = strcmp(e->kind, "pause") == 0 ? (e->to ? "pause" : "resume") : "change";
    util_copy_utf8(reason, sizeof reason, e->reason);
    if (strcmp(kind, "change") == 0)
        snprintf(out, len, "%s of %s: %lld -> %lld (version %lld) by %s via %s: %s", what,
                 e->subject, (long long)e->from, (long long)e->to, (long long)e->version, e->actor,
                 e->source, reason);
    else if (strcmp(kind, "refusal") == 0)
        snprintf(out, len, "refused %s of %s: %lld -> %lld by %s via %s (%s): %s", what, e->subject,
                 (long long)e->from, (long long)e->to, e->actor, e->source, e->error_code, reason);
    else
        snprintf(out, len, "approval %s for the %s of %s: %lld -> %lld by %s: %s",
                 strcmp(e->outcome, "rejected") == 0 ? "rejected" : e->outcome, what, e->subject,
                 (long long)e->from, (long long)e->to, e->actor, reason);
}

/* An Alertmanager alert (the /api/v2/alerts and webhook shape): alerts
 * keep their rule's name and severity; audit events are instants named
 * SluiceChange, SluiceRefusal or SluiceApproval. */
static json_t *notify_alertmanager(const struct notify_event *ev) {
    char ts[UTIL_TIME_MAX], line[1024];
    json_t *labels, *annotations, *alert;
    if (ev->alert) {
        const struct alerts_state *a = ev->alert;
        char message[NOTIFY_QUOTE_MAX];
        util_copy_utf8(message, sizeof message, a->hit.message);
        labels = json_pack("{s:s, s:s, s:s, s:s}", "alertname", a->hit.alert, "queue", a->hit.queue,
                           "severity", a->hit.severity, "source", "sluice");
        if (labels && a->hit.worker[0]) json_object_set_new(labels, "worker", json_string(a->hit.worker));
        snprintf(line, sizeof line, "%s on queue %s%s%s is %s: %s", a->hit.alert, a->hit.queue,
                 a->hit.worker[0] ? " worker " : "", a->hit.worker, ev->alert_state, message);
        annotations = json_pack("{s:s, s:s}", "summary", message, "description", line);
        alert = json_pack("{s:o, s:o, s:s}", "labels", labels, "annotations", annotations,
                          "startsAt", util_format_time(a->since_ms, ts));
        if (alert && strcmp(ev->alert_state, "resolved") == 0)
            json_object_set_new(alert, "endsAt", json_string(util_format_time(ev->at_ms, ts)));
    } else {
        const struct store_audit *e = ev->audit;
        const char *name = strcmp(ev->kind, "change") == 0    ? "SluiceChange"
                           : strcmp(ev->kind, "refusal") == 0 ? "SluiceRefusal"
                                                              : "SluiceApproval";
        notify_audit_line(e, ev->kind, line, sizeof line);
        labels = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "alertname", name, "queue", e->subject,
                           "severity", strcmp(ev->kind, "refusal") == 0 ? "warning" : "info",
                           "source", "sluice", "outcome", e->outcome, "actor", e->actor);
        char summary[160];
        snprintf(summary, sizeof summary, "%s on %s", ev->kind, e->subject);
        annotations = json_pack("{s:s, s:s}", "summary", summary, "description", line);
        util_format_time(e->at_ms, ts);
        alert = json_pack("{s:o, s:o, s:s, s:s}", "labels", labels, "annotations", annotations,
                          "startsAt", ts, "endsAt", ts);
    }
    return alert ? json_pack("[o]", alert) : NULL;
}

static json_t *notify_slack(const struct notify_event *ev) {
    char line[1100], text[1200];
    if (ev->alert) {
        const struct alerts_state *a = ev->alert;
        char message[NOTIFY_QUOTE_MAX];
        util_copy_utf8(message, sizeof message, a->hit.message);
        snprintf(line, sizeof line, "alert %s %s on %s%s%s (%s): %s", a->hit.alert, ev->alert_state,
                 a->hit.queue, a->hit.worker[0] ? " worker " : "", a->hit.worker, a->hit.severity,
                 message);
    } else {
        notify_audit_line(ev->audit, ev->kind, line, sizeof line);
    }
    snprintf(text, sizeof text, "[sluice] %s", line);
    return json_pack("{s:s}", "text", text);
}

char *notify_render(const char *format, const struct notify_event *ev) {
    json_t *body = strcmp(format, "json") == 0           ? notify_json(ev)
                   : strcmp(format, "alertmanager") == 0 ? notify_alertmanager(ev)
                   : strcmp(format, "slack") == 0        ? notify_slack(ev)
                                                         : NULL;
    char *out = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return out;
}

int notify_sign(const char *secret, const char *timestamp, const char *body, size_t len,
                char out[NOTIFY_SIGNATURE_MAX]) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    int rc = -1;
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    /* Timestamp and body as two pieces: the body is never copied. */
    if (c && EVP_MAC_init(c, (const unsigned char *)secret, strlen(secret), params) &&
        EVP_MAC_update(c, (const unsigned char *)timestamp, strlen(timestamp)) &&
        EVP_MAC_update(c, (const unsigned char *)".", 1) &&
        EVP_MAC_update(c, (const unsigned char *)body, len) &&
        EVP_MAC_final(c, mac, &maclen, sizeof mac) && maclen == 32)
        rc = 0;
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);
    if (rc == 0) {
        memcpy(out, "sha256=", 7);
        util_hex(mac, maclen, out + 7);
    }
    OPENSSL_cleanse(mac, sizeof mac);
    return rc;
}

int64_t notify_backoff_ms(int attempts) {
    int64_t wait = NOTIFY_BACKOFF_FIRST_MS;
    unsigned short r = 0;
    for (int i = 1; i < attempts && wait < NOTIFY_BACKOFF_CAP_MS; i++) wait *= 2;
    if (wait > NOTIFY_BACKOFF_CAP_MS) wait = NOTIFY_BACKOFF_CAP_MS;
    /* Jitter, so that sinks that failed together do not retry together. */
    if (RAND_bytes((unsigned char *)&r, sizeof r) != 1) r = 32768;
    return wait * (800 + (int64_t)r * 400 / 65536) / 1000;
}
