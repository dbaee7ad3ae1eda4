/* audit.c — audit entries as JSON, their export, and the explicit prune. */
#include "audit.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AUDIT_EXPORT_PAGE 500

json_t *audit_entry_json(const struct store_audit *e) {
    char ts[UTIL_TIME_MAX];
    int is_flag = strcmp(e->kind, "flag") == 0, is_prune = strcmp(e->kind, "audit") == 0,
        is_policy = strcmp(e->kind, "policy") == 0;
    json_t *j = json_pack("{s:I, s:s, s:o, s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:o, s:s, s:s}",
                          "id", (json_int_t)e->id, "kind", e->kind, "queue",
                          is_flag || is_prune || is_policy ? json_null() : json_string(e->subject), "from",
                          (json_int_t)e->from, "to", (json_int_t)e->to, "version",
                          (json_int_t)e->version, "actor", e->actor, "source", e->source,
                          "reason", e->reason, "outcome", e->outcome, "error_code",
                          e->error_code[0] ? json_string(e->error_code) : json_null(), "at",
                          util_format_time(e->at_ms, ts), "request_id", e->request_id);
    if (j) {
        json_object_set_new(j, "from_version",
                            e->from_version ? json_integer(e->from_version) : json_null());
        json_object_set_new(j, "approval_id",
                            e->approval_id[0] ? json_string(e->approval_id) : json_null());
    }
    if (j && is_flag) json_object_set_new(j, "flag", json_string(e->subject));
    if (j && is_policy) json_object_set_new(j, "action", json_string(e->subject));
    if (j && is_prune) {
        json_object_set_new(j, "action", json_string(e->subject));
        json_object_set_new(j, "deleted", json_integer(e->from));
        json_object_set_new(j, "before_id", json_integer(e->to));
    }
    return j;
}

int audit_export(store *st, int64_t before_id, FILE *out, int64_t *count) {
    int64_t after = 0;
    int rc = STORE_OK;
    *count = 0;
    for (;;) {
        struct store_audit *rows = NULL;
        size_t n = 0;
        if ((rc = store_list_audit_oldest(st, after, before_id, AUDIT_EXPORT_PAGE, &rows, &n)) != STORE_OK)
            break;
        for (size_t i = 0; i < n; i++) {
            json_t *j = audit_entry_json(&rows[i]);
            /* One line each: JSON escapes the newlines of a reason. */
            int written = j && json_dumpf(j, out, JSON_COMPACT | JSON_SORT_KEYS) == 0 &&
                          fputc('\n', out) != EOF;
            json_decref(j);
            if (!written) {
                rc = STORE_FAILED;
                break;
            }
            (*count)++;
            after = rows[i].id;
        }
        free(rows);
        if (rc != STORE_OK || n < AUDIT_EXPORT_PAGE) break;
    }
    if (rc == STORE_OK && fflush(out) != 0) rc = STORE_FAILED;
    return rc;
}

int audit_prune(store *st, int64_t before_id, int64_t before_at_ms, const char *actor,
                const char *reason, struct store_prune_result *res) {
    char rid[STORE_RID_MAX];
    memcpy(rid, "prune-", 7);
    if (util_random_hex(rid + 6, 8) != 0) strcpy(rid, "prune");
    int64_t now = util_now_ms();
    struct store_prune p = {before_id, before_at_ms, now - AUDIT_KEEP_MS, actor, "cli", reason, rid,
                            now};
    return store_prune_audit(st, &p, res);
}

/* The number in s[0..n), all digits, or -1. */
static int audit_digits(const char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int audit_parse_time(const char *s, int64_t *ms) {
    struct tm tm;
    int frac_ms = 0, offset_s = 0;
    if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':')
        return -1;
    int year = audit_digits(s, 4), mon = audit_digits(s + 5, 2), day = audit_digits(s + 8, 2),
        hour = audit_digits(s + 11, 2), min = audit_digits(s + 14, 2), sec = audit_digits(s + 17, 2);
    if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 ||
        min < 0 || min > 59 || sec < 0 || sec > 60)
        return -1;
    const char *p = s + 19;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3) frac_ms = frac_ms * 10 + (*p - '0');
        if (digits == 0) return -1;
        for (; digits < 3; digits++) frac_ms *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh = audit_digits(p + 1, 2), om = audit_digits(p + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59) return -1;
        offset_s = (*p == '+' ? 1 : -1) * (oh * 3600 + om * 60);
        p += 6;
    } else {
        return -1;
    }
    if (*p != '\0') return -1;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1) return -1;
    *ms = ((int64_t)t - offset_s) * 1000 + frac_ms;
    return 0;
}
