/* protocol.c — the wire names of protocol.md and the rule for names. */
#include "protocol.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

char *protocol_key(char buf[PROTOCOL_KEY_MAX], const char *prefix, enum protocol_key which) {
    static const char *const suffix[] = {
        [PROTOCOL_DESIRED] = "desired", [PROTOCOL_SCALING] = "scaling", [PROTOCOL_REPORTS] = "reports",
        [PROTOCOL_ALERTS] = "alerts",   [PROTOCOL_OWNER] = "owner",     [PROTOCOL_FENCE] = "fence",
    };
    snprintf(buf, PROTOCOL_KEY_MAX, "%s:%s", prefix, suffix[which]);
    return buf;
}

char *protocol_queue_key(char buf[PROTOCOL_KEY_MAX], const char *prefix, const char *queue,
                         enum protocol_list list) {
    static const char *const suffix[] = {
        [PROTOCOL_LIST_WAIT] = "wait", [PROTOCOL_LIST_ACTIVE] = "active", [PROTOCOL_LIST_FAILED] = "failed",
    };
    snprintf(buf, PROTOCOL_KEY_MAX, "%s:q:%s:%s", prefix, queue, suffix[list]);
    return buf;
}

char *protocol_bullmq_key(char buf[PROTOCOL_KEY_MAX], const char *bull_prefix, const char *queue,
                          const char *state) {
    snprintf(buf, PROTOCOL_KEY_MAX, "%s:%s:%s", bull_prefix, queue, state);
    return buf;
}

int protocol_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
}

int protocol_valid_id(const char *s, size_t max) {
    size_t n = 0;
    if (s == NULL) return 0;
    for (; s[n]; n++)
        if (n >= max || !protocol_name_char(s[n])) return 0;
    return n > 0;
}

int protocol_valid_name(const char *s) {
    return s != NULL && s[0] != '.' && s[0] != '-' && protocol_valid_id(s, PROTOCOL_NAME_MAX);
}

char *protocol_desired_format(const struct protocol_desired *d, const char *at) {
    json_t *j = json_pack("{s:s, s:I, s:I, s:b, s:s}", "queue", d->queue, "concurrency",
                          (json_int_t)d->concurrency, "version", (json_int_t)d->version, "paused",
                          d->paused != 0, "at", at);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

int protocol_desired_parse(const char *payload, size_t len, struct protocol_desired *out,
                           const char **why) {
    json_error_t jerr;
    json_t *j = NULL;
    int rc = -1;
    memset(out, 0, sizeof *out);
    *why = NULL;
    if (payload == NULL || len > PROTOCOL_DESIRED_MAX) {
        *why = "larger than 4096 bytes";
        goto done;
    }
    if ((j = json_loadb(payload, len, 0, &jerr)) == NULL || !json_is_object(j)) {
        *why = "not a JSON object";
        goto done;
    }
    json_t *q = json_object_get(j, "queue"), *n = json_object_get(j, "concurrency"),
           *v = json_object_get(j, "version"), *p = json_object_get(j, "paused");
    if (!json_is_string(q) || !protocol_valid_id(json_string_value(q), PROTOCOL_NAME_MAX)) {
        *why = "queue";
        goto done;
    }
    snprintf(out->queue, sizeof out->queue, "%s", json_string_value(q));
    if (!json_is_integer(n) || !json_is_integer(v)) {
        *why = "a concurrency or version that is not an integer";
        goto done;
    }
    if (p != NULL && !json_is_boolean(p)) {
        *why = "a paused that is not a boolean";
        goto done;
    }
    out->concurrency = json_integer_value(n);
    out->version = json_integer_value(v);
    out->paused = json_is_true(p);
    rc = 0;
done:
    json_decref(j);
    return rc;
}

int protocol_report_paused(const void *report) {
    json_t *p = json_object_get(report, "paused");
    if (p == NULL || json_is_null(p)) return 0;
    return json_is_boolean(p) ? json_is_true(p) : -1;
}
