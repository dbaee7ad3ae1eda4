/* sluicectl.c — a small client of the Sluice API for CI jobs and shells.
 *
 *   sluicectl get [QUEUE]
 *   sluicectl set QUEUE N --reason R [--confirm] [--duration 2h] [--wait 5s]
 *                 [--expected-version V]
 *   sluicectl pause QUEUE --reason R [--duration 30m] [--wait 5s]
 *   sluicectl resume QUEUE --reason R [--wait 5s]
 *   sluicectl history [QUEUE] [--limit N] [--before ID]
 *   sluicectl revert QUEUE VERSION --reason R [--confirm] [--wait 5s]
 *   sluicectl approvals [--status pending|approved|rejected|expired|all]
 *   sluicectl approve ID [--reason R]
 *   sluicectl reject ID --reason R
 *   sluicectl autoscalers
 *   sluicectl hold QUEUE --duration 1h --reason R
 *   sluicectl release QUEUE --reason R
 *   sluicectl status
 *   sluicectl whoami
 *   sluicectl help | --help | -h | --version
 *
 * SLUICE_URL and SLUICE_TOKEN (or --url, --token) say where and who; every
 * command but help and --version needs both. Tables for people by default,
 * --json prints the API's answer as is. --retry-after waits out one 429.
 * Exit codes: 0 done (and, with --wait, acknowledged by every live worker),
 * 2 refused by policy or permissions, 3 the wait ended without every
 * acknowledgement, 4 the change (set, revert) waits for approval by another
 * person, 1 anything else (usage, network, server errors). HTTP goes
 * through libcurl; JSON through jansson. */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol.h"
#include "redact.h"
#include "util.h"

#ifndef SLUICE_VERSION /* the Makefile passes VERSION */
#define SLUICE_VERSION "0.0.0-dev"
#endif

#define CTL_USER_AGENT "sluicectl/" SLUICE_VERSION
#define CTL_BODY_MAX (16L << 20)
#define CTL_ARGS_MAX 8
#define CTL_LIMIT_DEFAULT 20
#define CTL_LIMIT_MAX 500               /* the history routes' own limit */
#define CTL_WAIT_MAX_MS 30000           /* the server refuses a longer wait_ms */
#define CTL_DURATION_MAX_S (30 * 86400) /* the server refuses a longer duration_s */
#define CTL_HOLD_MAX_S (7 * 86400)      /* the longest autoscaler hold */
#define CTL_RETRY_MAX_S 60              /* longer waits are budgets, not cooldowns */

enum { EXIT_OK = 0, EXIT_OTHER = 1, EXIT_REFUSED = 2, EXIT_UNACKED = 3, EXIT_PENDING = 4 };

struct ctl {
    const char *url, *token;
    int json, retry_after;
};

/* The command line, checked: every value is already parsed and in range. */
struct ctl_args {
    const char *pos[CTL_ARGS_MAX];
    int npos, confirm, help, version;
    const char *reason, *status;
    int has_duration, has_wait, has_expected;
    int64_t duration_s, wait_ms;
    long long expected, limit, before;
};

/* One answer of the server. */
struct ctl_answer {
    long status;      /* HTTP status; 0 when the server could not be reached */
    long retry_after; /* Retry-After in seconds; -1 when absent or not a number */
    int retried;      /* 1 when this is the answer to a second try after a 429 */
    json_t *json;     /* the parsed body (owned), or NULL */
};

struct buf {
    char *data;
    size_t len;
};

static size_t ctl_collect(char *ptr, size_t size, size_t nmemb, void *ud) {
    struct buf *b = ud;
    size_t n = size * nmemb;
    if (b->len + n > (size_t)CTL_BODY_MAX) return 0;     /* refuse absurd answers */
    char *grown = realloc(b->data, b->len + n + 1);
    if (grown == NULL) return 0;
    b->data = grown;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* One request. Fills *a (status 0 when the server could not be reached, with
 * the reason printed); the caller owns a->json. */
static void ctl_request(const struct ctl *c, const char *method, const char *path, json_t *body,
                        struct ctl_answer *a) {
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = NULL;
    struct buf b = {NULL, 0};
    char url[2048], auth[512], *text = NULL;
    a->status = 0;
    a->retry_after = -1;
    a->json = NULL;
    if (curl == NULL) {
        fprintf(stderr, "sluicectl: cannot start libcurl\n");
        return;
    }
    snprintf(url, sizeof url, "%s%s", c->url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token);
    headers = curl_slist_append(headers, auth);
    headers = curl_slist_append(headers, "Accept: application/json");
    if (body) {
        text = json_dumps(body, JSON_COMPACT);
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text ? text : "{}");
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, CTL_USER_AGENT);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, ctl_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);       /* a wait is at most 30 s */
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        char shown[2048];
        redact_url(c->url, shown, sizeof shown);
        fprintf(stderr, "sluicectl: cannot reach %s: %s\n", shown, curl_easy_strerror(rc));
        a->retry_after = -1;
    } else {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &a->status);
        /* libcurl parses Retry-After (seconds or an HTTP date); 0 when absent. */
        curl_off_t retry = 0;
        if (curl_easy_getinfo(curl, CURLINFO_RETRY_AFTER, &retry) == CURLE_OK && retry > 0)
            a->retry_after = retry > 1000000000 ? 1000000000 : (long)retry;
        json_error_t err;
        if (b.data) a->json = json_loads(b.data, 0, &err);
        if (a->json == NULL && a->status != 204)
            fprintf(stderr, "sluicectl: the server answered %ld without JSON\n", a->status);
    }
    free(b.data);
    free(text);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
}

static const char *ctl_error_field(const struct ctl_answer *a, const char *field) {
    return json_string_value(json_object_get(json_object_get(a->json, "error"), field));
}

/* ctl_request, and with --retry-after a second try after a 429 whose
 * Retry-After is short enough to wait for. Waiting longer than
 * CTL_RETRY_MAX_S would only hold a CI job for an hourly budget; then
 * ctl_refusal says why it did not wait. */
static void ctl_call(const struct ctl *c, const char *method, const char *path, json_t *body,
                     struct ctl_answer *a) {
    ctl_request(c, method, path, body, a);
    a->retried = 0;
    if (a->status != 429 || !c->retry_after || a->retry_after < 0 || a->retry_after > CTL_RETRY_MAX_S)
        return;
    const char *msg = ctl_error_field(a, "message"), *code = ctl_error_field(a, "code");
    fprintf(stderr, "sluicectl: 429 %s: %s\n", code ? code : "error", msg ? msg : "");
    fprintf(stderr, "sluicectl: waiting %lds (Retry-After), then trying once more\n", a->retry_after);
    json_decref(a->json);
    for (unsigned left = (unsigned)a->retry_after; left > 0;) left = sleep(left);
    ctl_request(c, method, path, body, a);
    a->retried = 1;
}

/* The server's confirmation message tells an HTTP client what to send; a
 * shell user needs the flag instead. */
static void ctl_confirm_hint(long status, const char *code, const char *msg) {
    static const char http_hint[] = "send \"confirm\": true";
    const char *at = msg ? strstr(msg, http_hint) : NULL;
    if (at)
        fprintf(stderr, "sluicectl: %ld %s: %.*sre-run with --confirm%s\n", status, code, (int)(at - msg), msg,
                at + strlen(http_hint));
    else
        fprintf(stderr, "sluicectl: %ld %s: %s; re-run with --confirm to apply it\n", status, code,
                msg ? msg : "confirmation required");
}

/* What a 429 leaves to do: say how long the server asks to wait, and why
 * sluicectl did not (or no longer) wait. */
static void ctl_rate_note(const struct ctl *c, const struct ctl_answer *a) {
    long s = a->retry_after;
    if (s < 0)
        fprintf(stderr, "sluicectl: the answer has no Retry-After%s\n", c->retry_after ? "; not retrying" : "");
    else if (a->retried)
        fprintf(stderr, "sluicectl: still refused after waiting once; Retry-After: %lds\n", s);
    else if (s > CTL_RETRY_MAX_S)
        fprintf(stderr, "sluicectl: Retry-After: %lds; %s\n", s,
                c->retry_after ? "more than 60s, not waiting" : "too long for --retry-after (at most 60s)");
    else
        fprintf(stderr, "sluicectl: Retry-After: %lds; --retry-after waits that long and tries once more\n", s);
}

/* Print the API's error and map its status to an exit code. */
static int ctl_refusal(const struct ctl *c, const struct ctl_answer *a) {
    if (c->json && a->json) {
        json_dumpf(a->json, stdout, JSON_INDENT(2));
        putchar('\n');
    }
    const char *msg = ctl_error_field(a, "message"), *code = ctl_error_field(a, "code");
    if (a->status != 0) {
        if (code && strcmp(code, "confirmation_required") == 0) ctl_confirm_hint(a->status, code, msg);
        else fprintf(stderr, "sluicectl: %ld %s: %s\n", a->status, code ? code : "error", msg ? msg : "");
    }
    if (a->status == 429) ctl_rate_note(c, a);
    switch (a->status) {
    case 401: case 403: case 404: case 409: case 422: case 428: case 429: return EXIT_REFUSED;
    default: return EXIT_OTHER;
    }
}

static void ctl_print_json(json_t *j) {
    json_dumpf(j, stdout, JSON_INDENT(2));
    putchar('\n');
}

/* A string field for a table cell; "-" for null, so printf never sees NULL. */
static const char *ctl_str(json_t *v) {
    return json_is_string(v) ? json_string_value(v) : "-";
}

static const char *ctl_num(json_t *v, char *buf, size_t size) {
    if (json_is_integer(v)) snprintf(buf, size, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) snprintf(buf, size, "%.1f", json_real_value(v));
    else snprintf(buf, size, "-");
    return buf;
}

/* GET path and print it: the JSON with --json, else header and one row
 * per element of "items" (or the one object answered, when there is no
 * "items"). Returns the exit code (ctl_refusal's for a refusal). */
static int ctl_list(const struct ctl *c, const char *path, const char *header, void (*row)(json_t *)) {
    struct ctl_answer a;
    ctl_call(c, "GET", path, NULL, &a);
    int rc = EXIT_OK;
    if (a.status != 200) rc = ctl_refusal(c, &a);
    else if (c->json) ctl_print_json(a.json);
    else {
        size_t i;
        json_t *it, *items = json_object_get(a.json, "items");
        fputs(header, stdout);
        if (!json_is_array(items)) row(a.json);
        json_array_foreach(items, i, it) row(it);
    }
    json_decref(a.json);
    return rc;
}

static void ctl_target_row(json_t *t) {
    char d[32], v[32];
    json_t *b = json_object_get(t, "bounds");
    char bounds[64];
    snprintf(bounds, sizeof bounds, "%lld..%lld", (long long)json_integer_value(json_object_get(b, "min")),
             (long long)json_integer_value(json_object_get(b, "max")));
    /* A paused queue says so first in its last column: the table keeps its shape. */
    printf("%-20s %8s %8s %-10s %-16s %s%s\n", ctl_str(json_object_get(t, "queue")),
           ctl_num(json_object_get(t, "desired_concurrency"), d, sizeof d),
           ctl_num(json_object_get(t, "version"), v, sizeof v), bounds,
           ctl_str(json_object_get(t, "updated_by")),
           json_is_true(json_object_get(t, "paused")) ? "PAUSED: " : "",
           json_is_string(json_object_get(t, "reason")) ? json_string_value(json_object_get(t, "reason")) : "");
}

static int ctl_get(const struct ctl *c, const char *queue) {
    char path[256], header[128];
    if (queue) snprintf(path, sizeof path, "/api/v1/scaling/%s", queue);
    else snprintf(path, sizeof path, "/api/v1/scaling");
    snprintf(header, sizeof header, "%-20s %8s %8s %-10s %-16s %s\n", "QUEUE", "DESIRED", "VERSION", "BOUNDS",
             "BY", "REASON");
    return ctl_list(c, path, header, ctl_target_row);
}

/* " until 2026-11-27 01:09:42 UTC, then 2" for a running temporary
 * override, "" otherwise. The API's RFC 3339 time is cut to the second. */
static void ctl_override_note(json_t *answer, int asked_duration, char *out, size_t size) {
    const char *at = json_string_value(json_object_get(answer, "expires_at"));
    char then[32];
    out[0] = '\0';
    if (at && strlen(at) >= 19 && at[10] == 'T') {
        ctl_num(json_object_get(answer, "revert_to"), then, sizeof then);
        snprintf(out, size, " until %.10s %.8s UTC, then %s", at, at + 11, then);
    } else if (at) {
        snprintf(out, size, " until %s", at);
    } else if (asked_duration) {
        /* The API never starts an override for a change to the current value. */
        snprintf(out, size, ", not temporary: the value did not change");
    }
}

/* "2026-11-29 14:00:00 UTC" from an RFC 3339 time (as is when not one). */
static const char *ctl_when(json_t *v, char *out, size_t size) {
    const char *at = json_string_value(v);
    if (at && strlen(at) >= 19 && at[10] == 'T') snprintf(out, size, "%.10s %.8s UTC", at, at + 11);
    else snprintf(out, size, "%s", at ? at : "-");
    return out;
}

/* A 202: the change waits for approval. Prints its id and expiry. */
static int ctl_pending(const struct ctl *c, const char *queue, json_t *answer) {
    json_t *ap = json_object_get(answer, "approval");
    char until[48];
    if (c->json) ctl_print_json(answer);
    else
        printf("%s: %lld -> %lld waits for approval %s (until %s)\n", queue,
               (long long)json_integer_value(json_object_get(ap, "from")),
               (long long)json_integer_value(json_object_get(ap, "to")),
               ctl_str(json_object_get(ap, "id")), ctl_when(json_object_get(ap, "expires_at"), until, sizeof until));
    fprintf(stderr, "sluicectl: nothing changed yet: another person with scaling:approve must run "
                    "'sluicectl approve %s'\n", ctl_str(json_object_get(ap, "id")));
    return EXIT_PENDING;
}

/* The exit code an answer's "acks" make: EXIT_UNACKED when --wait was
 * given and not every live worker acknowledged, or none was live (a CI job
 * must not read that as success); EXIT_OK otherwise. */
static int ctl_acks_rc(json_t *answer, int waiting) {
    json_t *acks = json_object_get(answer, "acks");
    int complete = json_is_true(json_object_get(acks, "complete"));
    json_int_t expected = json_integer_value(json_object_get(acks, "expected"));
    return waiting && (!complete || expected == 0) ? EXIT_UNACKED : EXIT_OK;
}

/* After the summary line: who acknowledged (stdout, unless --json) and, for
 * EXIT_UNACKED, why on stderr. what names the change in that message. */
static void ctl_acks_report(const struct ctl *c, json_t *answer, const char *queue, const char *what, int rc) {
    json_t *acks = json_object_get(answer, "acks");
    int complete = json_is_true(json_object_get(acks, "complete"));
    json_int_t expected = json_integer_value(json_object_get(acks, "expected"));
    if (!c->json && acks)
        printf("acknowledged by %lld of %lld live workers%s\n",
               (long long)json_integer_value(json_object_get(acks, "acknowledged")), (long long)expected,
               complete ? "" : " before the wait ended");
    if (rc == EXIT_UNACKED) {
        if (expected == 0) fprintf(stderr, "sluicectl: no live worker of %s to acknowledge %s\n", queue, what);
        else fprintf(stderr, "sluicectl: not every worker acknowledged in time\n");
    }
}

static int ctl_set(const struct ctl *c, const char *method, const char *path, const char *queue,
                   json_t *body, int waiting, int asked_duration) {
    char note[128];
    struct ctl_answer a;
    ctl_call(c, method, path, body, &a);
    int rc = EXIT_OK;
    if (a.status == 202) {
        rc = ctl_pending(c, queue, a.json);
        goto done;
    }
    if (a.status != 200) {
        rc = ctl_refusal(c, &a);
        goto done;
    }
    rc = ctl_acks_rc(a.json, waiting);
    if (c->json) {
        ctl_print_json(a.json);
    } else {
        ctl_override_note(a.json, asked_duration, note, sizeof note);
        printf("%s: %lld -> %lld (version %lld)%s\n", queue,
               (long long)json_integer_value(json_object_get(a.json, "previous")),
               (long long)json_integer_value(json_object_get(a.json, "desired_concurrency")),
               (long long)json_integer_value(json_object_get(a.json, "version")), note);
    }
    ctl_acks_report(c, a.json, queue, "the change", rc);
done:
    json_decref(a.json);
    return rc;
}

/* ---- pause and resume ---------------------------------------------------------- */

/* POST .../pause or .../resume; prints the queue's state after it. Pausing a
 * paused queue (resuming a running one) is not an error: it says so. Exit
 * codes as set's (3: --wait ended without every acknowledgement). */
static int ctl_pause(const struct ctl *c, const char *queue, int pause, json_t *body, int waiting) {
    char path[256];
    struct ctl_answer a;
    snprintf(path, sizeof path, "/api/v1/scaling/%s/%s", queue, pause ? "pause" : "resume");
    ctl_call(c, "POST", path, body, &a);
    int rc = EXIT_OK;
    if (a.status != 200) {
        rc = ctl_refusal(c, &a);
        goto done;
    }
    rc = ctl_acks_rc(a.json, waiting);
    if (c->json) {
        ctl_print_json(a.json);
    } else {
        const char *until = json_string_value(json_object_get(a.json, "paused_until"));
        printf("%s: %s%s%s (version %lld, desired %lld)%s\n", queue, pause ? "paused" : "running",
               until ? " until " : "", until ? until : "",
               (long long)json_integer_value(json_object_get(a.json, "version")),
               (long long)json_integer_value(json_object_get(a.json, "desired_concurrency")),
               json_is_true(json_object_get(a.json, "changed")) ? "" : pause ? ", already paused: nothing changed"
                                                                          : ", was not paused: nothing changed");
    }
    ctl_acks_report(c, a.json, queue, "it", rc);
done:
    json_decref(a.json);
    return rc;
}

static void ctl_history_row(json_t *e) {
    char change[48], outcome[48];
    snprintf(change, sizeof change, "%lld->%lld", (long long)json_integer_value(json_object_get(e, "from")),
             (long long)json_integer_value(json_object_get(e, "to")));
    const char *code = json_string_value(json_object_get(e, "error_code"));
    snprintf(outcome, sizeof outcome, "%s%s%s", ctl_str(json_object_get(e, "outcome")), code ? ":" : "",
             code ? code : "");
    json_t *q = json_object_get(e, "queue");
    printf("%-24s %-16s %-12s %-10s %-8s %-18s %s\n", ctl_str(json_object_get(e, "at")),
           ctl_str(json_object_get(e, "actor")), ctl_str(json_is_string(q) ? q : json_object_get(e, "flag")),
           change, ctl_str(json_object_get(e, "source")), outcome, ctl_str(json_object_get(e, "reason")));
}

/* The history routes page by audit id: next_before is set only when older
 * entries exist, so the hint never leads to an empty page. */
static int ctl_history(const struct ctl *c, const char *queue, long long limit, long long before) {
    char path[256], from[48] = "";
    struct ctl_answer a;
    if (before > 0) snprintf(from, sizeof from, "&before=%lld", before);
    if (queue) snprintf(path, sizeof path, "/api/v1/scaling/%s/history?limit=%lld%s", queue, limit, from);
    else snprintf(path, sizeof path, "/api/v1/audit?limit=%lld%s", limit, from);
    ctl_call(c, "GET", path, NULL, &a);
    int rc = EXIT_OK;
    if (a.status != 200) rc = ctl_refusal(c, &a);
    else if (c->json) ctl_print_json(a.json);
    else {
        size_t i;
        json_t *e, *next = json_object_get(a.json, "next_before");
        printf("%-24s %-16s %-12s %-10s %-8s %-18s %s\n", "AT", "WHO", "QUEUE", "CHANGE", "SOURCE", "OUTCOME", "REASON");
        json_array_foreach(json_object_get(a.json, "items"), i, e) ctl_history_row(e);
        /* On stderr, so the table on stdout stays a table for grep and awk. */
        if (json_is_integer(next)) {
            fprintf(stderr, "more: sluicectl history%s%s", queue ? " " : "", queue ? queue : "");
            if (limit != CTL_LIMIT_DEFAULT) fprintf(stderr, " --limit %lld", limit);
            fprintf(stderr, " --before %lld\n", (long long)json_integer_value(next));
        }
    }
    json_decref(a.json);
    return rc;
}

static void ctl_approval_row(json_t *ap) {
    char change[48], until[48];
    snprintf(change, sizeof change, "%lld->%lld", (long long)json_integer_value(json_object_get(ap, "from")),
             (long long)json_integer_value(json_object_get(ap, "to")));
    printf("%-16s %-10s %-16s %-10s %-16s %-23s %s\n", ctl_str(json_object_get(ap, "id")),
           ctl_str(json_object_get(ap, "status")), ctl_str(json_object_get(ap, "queue")), change,
           ctl_str(json_object_get(ap, "requested_by")),
           ctl_when(json_object_get(ap, "expires_at"), until, sizeof until),
           ctl_str(json_object_get(ap, "reason")));
}

static int ctl_approvals(const struct ctl *c, const char *status) {
    char path[128], header[128];
    snprintf(path, sizeof path, "/api/v1/approvals?status=%s", status ? status : "pending");
    snprintf(header, sizeof header, "%-16s %-10s %-16s %-10s %-16s %-23s %s\n", "ID", "STATUS", "QUEUE",
             "CHANGE", "ASKED BY", "EXPIRES", "REASON");
    return ctl_list(c, path, header, ctl_approval_row);
}

/* approve or reject (verb) the approval id. */
static int ctl_decide(const struct ctl *c, const char *verb, const char *id, const char *reason) {
    char path[128];
    struct ctl_answer a;
    json_t *body = reason ? json_pack("{s:s}", "reason", reason) : json_object();
    snprintf(path, sizeof path, "/api/v1/approvals/%s/%s", id, verb);
    ctl_call(c, "POST", path, body, &a);
    json_decref(body);
    int rc = EXIT_OK;
    if (a.status != 200) rc = ctl_refusal(c, &a);
    else if (c->json) ctl_print_json(a.json);
    else {
        json_t *ap = json_object_get(a.json, "approval"), *ch = json_object_get(a.json, "change");
        printf("%s %s: %s %lld -> %lld", ctl_str(json_object_get(ap, "status")), id,
               ctl_str(json_object_get(ap, "queue")), (long long)json_integer_value(json_object_get(ap, "from")),
               (long long)json_integer_value(json_object_get(ap, "to")));
        if (ch) printf(", applied (version %lld)", (long long)json_integer_value(json_object_get(ch, "version")));
        putchar('\n');
    }
    json_decref(a.json);
    return rc;
}

/* One autoscaling rule: its mode, hold, last decision and next run. */
static void ctl_autoscaler_row(json_t *it) {
    char held[48], next[48], change[48] = "-";
    json_t *d = json_object_get(it, "last_decision"), *err = json_object_get(it, "error");
    const char *mode = json_is_true(json_object_get(it, "dry_run")) ? "dry-run" : "on";
    if (json_is_object(d) && json_is_integer(json_object_get(d, "to")))
        snprintf(change, sizeof change, "%lld->%lld", (long long)json_integer_value(json_object_get(d, "from")),
                 (long long)json_integer_value(json_object_get(d, "to")));
    const char *why = json_is_object(err) ? ctl_str(json_object_get(err, "message"))
                      : json_is_object(d) ? ctl_str(json_object_get(d, "reason")) : "";
    printf("%-16s %-8s %-23s %-12s %-10s %-23s %s\n", ctl_str(json_object_get(it, "queue")), mode,
           ctl_when(json_object_get(it, "held_until"), held, sizeof held),
           json_is_object(d) ? ctl_str(json_object_get(d, "outcome")) : "-", change,
           ctl_when(json_object_get(it, "next_evaluation_at"), next, sizeof next), why);
}

static int ctl_autoscalers(const struct ctl *c) {
    char header[128];
    snprintf(header, sizeof header, "%-16s %-8s %-23s %-12s %-10s %-23s %s\n", "QUEUE", "MODE", "HELD UNTIL",
             "LAST", "CHANGE", "NEXT", "WHY");
    return ctl_list(c, "/api/v1/autoscalers", header, ctl_autoscaler_row);
}

/* Hold queue's rule for duration_s, or release it (duration_s 0). */
static int ctl_hold(const struct ctl *c, const char *queue, int64_t duration_s, const char *reason) {
    char path[160], until[48];
    struct ctl_answer a;
    json_t *body = json_pack("{s:s}", "reason", reason);
    if (duration_s > 0) json_object_set_new(body, "duration_s", json_integer(duration_s));
    snprintf(path, sizeof path, "/api/v1/autoscalers/%s/%s", queue, duration_s > 0 ? "hold" : "release");
    ctl_call(c, "POST", path, body, &a);
    json_decref(body);
    int rc = EXIT_OK;
    if (a.status != 200) rc = ctl_refusal(c, &a);
    else if (c->json) ctl_print_json(a.json);
    else if (duration_s > 0)
        printf("held %s until %s\n", queue, ctl_when(json_object_get(a.json, "held_until"), until, sizeof until));
    else if (json_is_object(json_object_get(a.json, "hold")))
        printf("released %s; still held until %s after a manual change\n", queue,
               ctl_when(json_object_get(a.json, "held_until"), until, sizeof until));
    else
        printf("released %s\n", queue);
    json_decref(a.json);
    return rc;
}

static int ctl_status(const struct ctl *c) {
    struct ctl_answer a;
    ctl_call(c, "GET", "/admin/runtime-scaling", NULL, &a);
    int rc = EXIT_OK;
    if (a.status != 200) rc = ctl_refusal(c, &a);
    else if (c->json) ctl_print_json(a.json);
    else {
        size_t i;
        json_t *q;
        printf("environment %s, redis %s, store %s, writes %s\n", ctl_str(json_object_get(a.json, "environment")),
               ctl_str(json_object_get(a.json, "redis")), ctl_str(json_object_get(a.json, "store")),
               json_is_true(json_object_get(a.json, "writes_enabled")) ? "on" : "off");
        printf("%-16s %8s %8s %8s %9s %8s %8s %8s  %s\n", "QUEUE", "WAITING", "ACTIVE", "DESIRED", "RUNNING",
               "WORKERS", "DONE/S", "FAIL/S", "ALERTS");
        json_array_foreach(json_object_get(a.json, "queues"), i, q) {
            char w[32], ac[32], d[32], r[32], n[32], cs[32], fs[32], alerts[256] = "";
            json_t *depth = json_object_get(q, "depth"), *rates = json_object_get(q, "rates"), *al;
            size_t k;
            json_array_foreach(json_object_get(q, "alerts"), k, al) {
                size_t used = strlen(alerts);
                snprintf(alerts + used, sizeof alerts - used, "%s%s(%s)", used ? " " : "",
                         ctl_str(json_object_get(al, "name")), ctl_str(json_object_get(al, "state")));
            }
            printf("%-16s %8s %8s %8s %9s %8s %8s %8s  %s\n", ctl_str(json_object_get(q, "queue")),
                   ctl_num(json_object_get(depth, "waiting"), w, sizeof w),
                   ctl_num(json_object_get(depth, "active"), ac, sizeof ac),
                   ctl_num(json_object_get(q, "desired_concurrency"), d, sizeof d),
                   ctl_num(json_object_get(q, "active_concurrency"), r, sizeof r),
                   ctl_num(json_object_get(q, "worker_count"), n, sizeof n),
                   ctl_num(json_object_get(rates, "completed_per_s"), cs, sizeof cs),
                   ctl_num(json_object_get(rates, "failed_per_s"), fs, sizeof fs), alerts[0] ? alerts : "-");
        }
    }
    json_decref(a.json);
    return rc;
}

static int ctl_whoami(const struct ctl *c) {
    struct ctl_answer a;
    ctl_call(c, "GET", "/api/v1/whoami", NULL, &a);
    int rc = EXIT_OK;
    if (a.status != 200) rc = ctl_refusal(c, &a);
    else if (c->json) ctl_print_json(a.json);
    else {
        size_t i;
        json_t *s;
        printf("%s in %s (writes %s), scopes:", ctl_str(json_object_get(a.json, "name")),
               ctl_str(json_object_get(a.json, "environment")),
               json_is_true(json_object_get(a.json, "writes_enabled")) ? "on" : "off");
        json_array_foreach(json_object_get(a.json, "scopes"), i, s) printf(" %s", ctl_str(s));
        putchar('\n');
    }
    json_decref(a.json);
    return rc;
}

/* To stdout when asked for (help, --help, -h), to stderr after a usage
 * error, so a script that captures stdout never mistakes it for an answer. */
static void ctl_usage(FILE *to) {
    fprintf(to,
            "usage: sluicectl [--url URL] [--token T] [--json] [--retry-after] COMMAND\n"
            "  get [QUEUE]                      desired concurrency of one or every queue\n"
            "  set QUEUE N --reason R [--confirm] [--duration 2h] [--wait 5s] [--expected-version V]\n"
            "  revert QUEUE VERSION --reason R [--confirm] [--wait 5s]\n"
            "                                   apply the value VERSION set (see history)\n"
            "  approvals [--status pending|approved|rejected|expired|all]\n"
            "                                   changes waiting for a second person\n"
            "  approve ID [--reason R]          approve and apply (scaling:approve)\n"
            "  reject ID --reason R             reject (scaling:approve)\n"
            "  pause QUEUE --reason R [--duration 30m] [--wait 5s]\n"
            "                                   workers take no new job; running ones finish\n"
            "  resume QUEUE --reason R [--wait 5s]\n"
            "  history [QUEUE] [--limit N] [--before ID]\n"
            "                                   who changed what, newest first (20 by default)\n"
            "  autoscalers                      the autoscaling rules: mode, hold, last decision\n"
            "  hold QUEUE --duration 1h --reason R\n"
            "                                   the rule applies nothing until then (at most 7d)\n"
            "  release QUEUE --reason R         end a hold (and the hold after a manual change)\n"
            "  status                           depth, concurrency, workers, rates, alerts\n"
            "  whoami                           this token's name and scopes\n"
            "  help                             this text (also --help, -h)\n"
            "  --version                        sluicectl's version\n"
            "SLUICE_URL and SLUICE_TOKEN are read from the environment.\n"
            "--retry-after: after a 429, wait the server's Retry-After (at most 60s) and\n"
            "try once more.\n"
            "exit: 0 done, 2 refused by policy or permissions, 3 wait ended without every\n"
            "acknowledgement, 4 the change waits for approval (set, revert), 1 other errors\n");
}

/* Parse "500ms", "5s", "1m" or "5" (seconds) into milliseconds. Unlike
 * util_parse_duration, 0 is fine: "--wait 0ms" reports the acks as they
 * stand. */
static int ctl_ms(const char *s, int64_t *out) {
    char *end;
    if (*s < '0' || *s > '9') return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    int64_t unit;
    if (errno || v > 1000000000LL) return -1;    /* far above any limit, and no overflow below */
    if (strcmp(end, "ms") == 0) unit = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0') unit = 1000;
    else if (strcmp(end, "m") == 0) unit = 60000;
    else if (strcmp(end, "h") == 0) unit = 3600000;
    else return -1;
    *out = v * unit;
    return 0;
}

/* A whole number in plain digits (no sign, no spaces) within [min, max]. */
static int ctl_whole(const char *s, long long min, long long max, long long *out) {
    char *end;
    if (*s < '0' || *s > '9') return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

/* Check one flag's value. Returns 0, or -1 with one line on stderr naming the
 * flag and the value. */
static int ctl_flag_value(struct ctl_args *o, const char *flag, const char *v) {
    if (!strcmp(flag, "--limit")) {
        if (ctl_whole(v, 1, CTL_LIMIT_MAX, &o->limit) == 0) return 0;
        fprintf(stderr, "sluicectl: --limit: '%s' is not a number from 1 to %d\n", v, CTL_LIMIT_MAX);
    } else if (!strcmp(flag, "--before")) {
        if (ctl_whole(v, 1, INT64_MAX, &o->before) == 0) return 0;
        fprintf(stderr, "sluicectl: --before: '%s' is not an audit id (a whole number, 1 or more)\n", v);
    } else if (!strcmp(flag, "--expected-version")) {
        o->has_expected = 1;
        if (ctl_whole(v, 0, INT64_MAX, &o->expected) == 0) return 0;
        fprintf(stderr, "sluicectl: --expected-version: '%s' is not a version number\n", v);
    } else if (!strcmp(flag, "--wait")) {
        o->has_wait = 1;
        if (ctl_ms(v, &o->wait_ms) != 0)
            fprintf(stderr, "sluicectl: --wait: '%s' is not a duration (e.g. 500ms, 5s; at most 30s)\n", v);
        else if (o->wait_ms > CTL_WAIT_MAX_MS)
            fprintf(stderr, "sluicectl: --wait: '%s' is more than 30s, the longest the server waits\n", v);
        else return 0;
    } else if (!strcmp(flag, "--duration")) {
        o->has_duration = 1;
        if (util_parse_duration(v, &o->duration_s) != 0)
            fprintf(stderr, "sluicectl: --duration: '%s' is not a duration (e.g. 90s, 15m, 2h, 1d)\n", v);
        else if (o->duration_s > CTL_DURATION_MAX_S)
            fprintf(stderr, "sluicectl: --duration: '%s' is more than 30d, the longest override\n", v);
        else return 0;
    }
    return -1;
}

/* "-1" is a (bad) N, not an option: let the N check name it. */
static int ctl_is_negative_number(const char *a) {
    return a[0] == '-' && a[1] >= '0' && a[1] <= '9';
}

/* Read the command line into o and c. Returns 0, or -1 after printing one
 * line that names the unknown option or the bad value. */
static int ctl_parse(int argc, char **argv, struct ctl_args *o, struct ctl *c) {
    static const char *const valued[] = {"--url", "--token", "--reason", "--duration", "--wait",
                                         "--expected-version", "--limit", "--before", "--status"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) o->help = 1;
        else if (!strcmp(a, "--version")) o->version = 1;
        else if (!strcmp(a, "--json")) c->json = 1;
        else if (!strcmp(a, "--confirm")) o->confirm = 1;
        else if (!strcmp(a, "--retry-after")) c->retry_after = 1;
        else if (a[0] == '-' && a[1] != '\0' && !ctl_is_negative_number(a)) {
            size_t k = 0;
            while (k < sizeof valued / sizeof *valued && strcmp(a, valued[k]) != 0) k++;
            if (k == sizeof valued / sizeof *valued) {
                fprintf(stderr, "sluicectl: unknown option '%.*s'\n", (int)strcspn(a, "="), a);
                return -1;
            }
            if (i + 1 == argc) {
                fprintf(stderr, "sluicectl: %s needs a value\n", a);
                return -1;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--url")) c->url = v;
            else if (!strcmp(a, "--token")) c->token = v;
            else if (!strcmp(a, "--reason")) o->reason = v;
            else if (!strcmp(a, "--status")) o->status = v;
            else if (ctl_flag_value(o, a, v) != 0) return -1;
        } else if (o->npos == CTL_ARGS_MAX) {
            fprintf(stderr, "sluicectl: too many arguments at '%s'\n", a);
            return -1;
        } else {
            o->pos[o->npos++] = a;
        }
    }
    return 0;
}

/* The command's own arguments. Returns 0, or -1 after one line naming what
 * is wrong. */
static int ctl_check_command(const struct ctl_args *o, long long *n) {
    static const struct { const char *name; int max; } commands[] = {
        {"get", 2}, {"set", 3}, {"history", 2}, {"status", 1}, {"whoami", 1},
        {"revert", 3}, {"approvals", 1}, {"approve", 2}, {"reject", 2}, {"pause", 2}, {"resume", 2},
        {"autoscalers", 1}, {"hold", 2}, {"release", 2}};
    static const char *const statuses[] = {"pending", "approved", "rejected", "expired", "all"};
    const char *cmd = o->pos[0];
    size_t k = 0;
    int decide = !strcmp(cmd, "approve") || !strcmp(cmd, "reject");
    while (k < sizeof commands / sizeof *commands && strcmp(cmd, commands[k].name) != 0) k++;
    if (k == sizeof commands / sizeof *commands) {
        fprintf(stderr, "sluicectl: unknown command '%s'\n", cmd);
        return -1;
    }
    if (o->npos > commands[k].max) {
        fprintf(stderr, "sluicectl: %s: unexpected argument '%s'\n", cmd, o->pos[commands[k].max]);
        return -1;
    }
    if (decide) {
        if (o->npos < 2 || strlen(o->pos[1]) != 16 || strspn(o->pos[1], "0123456789abcdef") != 16)
            fprintf(stderr, "sluicectl: %s needs an approval ID (16 hex digits, see 'sluicectl approvals')\n", cmd);
        else if (!strcmp(cmd, "reject") && o->reason == NULL)
            fprintf(stderr, "sluicectl: reject needs --reason (the requester reads it)\n");
        else return 0;
        return -1;
    }
    if (o->status) {
        size_t s = 0;
        while (s < sizeof statuses / sizeof *statuses && strcmp(o->status, statuses[s]) != 0) s++;
        if (strcmp(cmd, "approvals") != 0) {
            fprintf(stderr, "sluicectl: --status belongs to 'approvals'\n");
            return -1;
        }
        if (s == sizeof statuses / sizeof *statuses) {
            fprintf(stderr, "sluicectl: --status: '%s' is not one of pending, approved, rejected, expired, all\n",
                    o->status);
            return -1;
        }
    }
    if (o->npos >= 2 && !protocol_valid_name(o->pos[1])) {
        fprintf(stderr, "sluicectl: '%s' is not a queue name\n", o->pos[1]);
        return -1;
    }
    if (!strcmp(cmd, "revert")) {
        if (o->npos < 3) fprintf(stderr, "sluicectl: revert needs QUEUE and VERSION\n");
        else if (ctl_whole(o->pos[2], 1, INT64_MAX, n) != 0)
            fprintf(stderr, "sluicectl: VERSION must be a whole number, 1 or more; got '%s'\n", o->pos[2]);
        else if (o->reason == NULL) fprintf(stderr, "sluicectl: revert needs --reason (it goes into the audit log)\n");
        else return 0;
        return -1;
    }
    int holding = !strcmp(cmd, "hold") || !strcmp(cmd, "release");
    if (holding && o->npos < 2) fprintf(stderr, "sluicectl: %s needs QUEUE\n", cmd);
    else if (holding && o->reason == NULL)
        fprintf(stderr, "sluicectl: %s needs --reason (operators read it)\n", cmd);
    else if (!strcmp(cmd, "hold") && !o->has_duration)
        fprintf(stderr, "sluicectl: hold needs --duration (e.g. 30m, 2h, at most 7d)\n");
    else if (!strcmp(cmd, "hold") && (o->duration_s < 1 || o->duration_s > CTL_HOLD_MAX_S))
        fprintf(stderr, "sluicectl: hold: --duration must be 1s..7d\n");
    else if (!strcmp(cmd, "release") && o->has_duration)
        fprintf(stderr, "sluicectl: release takes no --duration\n");
    else if (holding) return 0;
    if (holding) return -1;
    int pausing = !strcmp(cmd, "pause") || !strcmp(cmd, "resume");
    if (pausing && o->npos < 2) fprintf(stderr, "sluicectl: %s needs QUEUE\n", cmd);
    else if (pausing && o->reason == NULL)
        fprintf(stderr, "sluicectl: %s needs --reason (it goes into the audit log)\n", cmd);
    else if (!strcmp(cmd, "resume") && o->has_duration)
        fprintf(stderr, "sluicectl: resume takes no --duration\n");
    else if (pausing) return 0;
    if (pausing) return -1;
    if (strcmp(cmd, "set") != 0) return 0;
    if (o->npos < 3) fprintf(stderr, "sluicectl: set needs QUEUE and N\n");
    else if (ctl_whole(o->pos[2], 0, INT64_MAX, n) != 0)
        fprintf(stderr, "sluicectl: N must be a whole number, 0 or more; got '%s'\n", o->pos[2]);
    else if (o->reason == NULL) fprintf(stderr, "sluicectl: set needs --reason (it goes into the audit log)\n");
    else return 0;
    return -1;
}

static int ctl_run(const struct ctl *c, const struct ctl_args *o, long long n) {
    const char *cmd = o->pos[0], *queue = o->npos >= 2 ? o->pos[1] : NULL;
    int revert = !strcmp(cmd, "revert");
    char path[256];
    if (!strcmp(cmd, "get")) return ctl_get(c, queue);
    if (!strcmp(cmd, "history")) return ctl_history(c, queue, o->limit, o->before);
    if (!strcmp(cmd, "status")) return ctl_status(c);
    if (!strcmp(cmd, "whoami")) return ctl_whoami(c);
    if (!strcmp(cmd, "pause") || !strcmp(cmd, "resume")) {
        int pause = !strcmp(cmd, "pause");
        json_t *pb = json_pack("{s:s}", "reason", o->reason);
        if (pb == NULL) {
            fprintf(stderr, "sluicectl: out of memory\n");
            return EXIT_OTHER;
        }
        if (o->has_duration) json_object_set_new(pb, "duration_s", json_integer(o->duration_s));
        if (o->has_wait) json_object_set_new(pb, "wait_ms", json_integer(o->wait_ms));
        int prc = ctl_pause(c, queue, pause, pb, o->has_wait);
        json_decref(pb);
        return prc;
    }
    if (!strcmp(cmd, "autoscalers")) return ctl_autoscalers(c);
    if (!strcmp(cmd, "hold")) return ctl_hold(c, queue, o->duration_s, o->reason);
    if (!strcmp(cmd, "release")) return ctl_hold(c, queue, 0, o->reason);
    if (!strcmp(cmd, "approvals")) return ctl_approvals(c, o->status);
    if (!strcmp(cmd, "approve") || !strcmp(cmd, "reject")) return ctl_decide(c, cmd, queue, o->reason);
    json_t *body = json_pack("{s:I, s:s, s:b}", revert ? "to_version" : "desired_concurrency", (json_int_t)n,
                             "reason", o->reason, "confirm", o->confirm);
    if (body == NULL) {
        fprintf(stderr, "sluicectl: out of memory\n");
        return EXIT_OTHER;
    }
    if (o->has_duration && !revert) json_object_set_new(body, "duration_s", json_integer(o->duration_s));
    if (o->has_wait) json_object_set_new(body, "wait_ms", json_integer(o->wait_ms));
    if (o->has_expected && !revert) json_object_set_new(body, "expected_version", json_integer(o->expected));
    snprintf(path, sizeof path, revert ? "/api/v1/scaling/%s/revert" : "/api/v1/scaling/%s", queue);
    int rc = ctl_set(c, revert ? "POST" : "PUT", path, queue, body, o->has_wait, o->has_duration && !revert);
    json_decref(body);
    return rc;
}

int main(int argc, char **argv) {
    struct ctl c = {getenv("SLUICE_URL"), getenv("SLUICE_TOKEN"), 0, 0};
    struct ctl_args o;
    long long n = 0;
    int rc;

    memset(&o, 0, sizeof o);
    o.limit = CTL_LIMIT_DEFAULT;
    if (ctl_parse(argc, argv, &o, &c) != 0) {
        ctl_usage(stderr);
        return EXIT_OTHER;
    }
    if (o.help || (o.npos > 0 && !strcmp(o.pos[0], "help"))) {
        ctl_usage(stdout);
        return EXIT_OK;
    }
    if (o.version) {
        printf("sluicectl %s\n", SLUICE_VERSION);
        return EXIT_OK;
    }
    if (o.npos == 0) {
        fprintf(stderr, "sluicectl: no command given\n");
        ctl_usage(stderr);
        return EXIT_OTHER;
    }
    if (ctl_check_command(&o, &n) != 0) {
        ctl_usage(stderr);
        return EXIT_OTHER;
    }
    if (c.url == NULL || c.url[0] == '\0') {
        fprintf(stderr, "sluicectl: set SLUICE_URL (or --url), e.g. http://127.0.0.1:8080\n");
        ctl_usage(stderr);
        return EXIT_OTHER;
    }
    /* Every command needs a token; without one the server would only say
     * "credentials are unknown", which sends people looking for a typo. */
    if (c.token == NULL || c.token[0] == '\0') {
        fprintf(stderr, "sluicectl: no token given (set SLUICE_TOKEN or --token)\n");
        return EXIT_OTHER;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = ctl_run(&c, &o, n);
    curl_global_cleanup();
    return rc;
}
