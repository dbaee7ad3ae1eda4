/* sluicectl.c — a small client of the Sluice API for CI jobs and shells.
 *
 *   sluicectl get [QUEUE]
 *   sluicectl set QUEUE N --reason R [--confirm] [--duration 2h] [--wait 5s]
 *                 [--expected-version V]
 *   sluicectl history [QUEUE] [--limit N]
 *   sluicectl status
 *   sluicectl whoami
 *
 * SLUICE_URL and SLUICE_TOKEN (or --url, --token) say where and who.
 * Tables for people by default, --json prints the API's answer as is.
 * Exit codes: 0 done (and, with --wait, acknowledged by every live worker),
 * 2 refused by policy or permissions, 3 the wait ended without every
 * acknowledgement, 1 anything else (usage, network, server errors). HTTP goes
 * through libcurl; JSON through jansson. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define CTL_VERSION "sluicectl/0.1"
#define CTL_BODY_MAX (16L << 20)

enum { EXIT_OK = 0, EXIT_OTHER = 1, EXIT_REFUSED = 2, EXIT_UNACKED = 3 };

struct ctl {
    const char *url, *token;
    int json;
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

/* One request. Returns the HTTP status (0 when the server could not be
 * reached, with the reason printed); *out receives the parsed JSON answer
 * (caller owns it) or NULL. */
static long ctl_request(const struct ctl *c, const char *method, const char *path, json_t *body,
                        json_t **out) {
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = NULL;
    struct buf b = {NULL, 0};
    char url[2048], auth[256], *text = NULL;
    long status = 0;
    *out = NULL;
    if (curl == NULL) return 0;
    snprintf(url, sizeof url, "%s%s", c->url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token ? c->token : "");
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
    curl_easy_setopt(curl, CURLOPT_USERAGENT, CTL_VERSION);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, ctl_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);       /* a wait is at most 30 s */
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        fprintf(stderr, "sluicectl: cannot reach %s: %s\n", c->url, curl_easy_strerror(rc));
    } else {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        json_error_t err;
        if (b.data) *out = json_loads(b.data, 0, &err);
        if (*out == NULL && status != 204)
            fprintf(stderr, "sluicectl: the server answered %ld without JSON\n", status);
    }
    free(b.data);
    free(text);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return status;
}

/* Print the API's error as is and map its status to an exit code. */
static int ctl_refusal(long status, json_t *answer, const struct ctl *c) {
    if (c->json && answer) {
        json_dumpf(answer, stdout, JSON_INDENT(2));
        putchar('\n');
    }
    const char *msg = json_string_value(json_object_get(json_object_get(answer, "error"), "message"));
    const char *code = json_string_value(json_object_get(json_object_get(answer, "error"), "code"));
    if (status != 0) fprintf(stderr, "sluicectl: %ld %s: %s\n", status, code ? code : "error", msg ? msg : "");
    switch (status) {
    case 401: case 403: case 404: case 409: case 422: case 428: case 429: return EXIT_REFUSED;
    default: return EXIT_OTHER;
    }
}

static const char *ctl_num(json_t *v, char *buf, size_t size) {
    if (json_is_integer(v)) snprintf(buf, size, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) snprintf(buf, size, "%.1f", json_real_value(v));
    else snprintf(buf, size, "-");
    return buf;
}

static void ctl_target_row(json_t *t) {
    char d[32], v[32];
    json_t *b = json_object_get(t, "bounds");
    char bounds[64];
    snprintf(bounds, sizeof bounds, "%lld..%lld", (long long)json_integer_value(json_object_get(b, "min")),
             (long long)json_integer_value(json_object_get(b, "max")));
    printf("%-20s %8s %8s %-10s %-16s %s\n", json_string_value(json_object_get(t, "queue")),
           ctl_num(json_object_get(t, "desired_concurrency"), d, sizeof d),
           ctl_num(json_object_get(t, "version"), v, sizeof v), bounds,
           json_is_string(json_object_get(t, "updated_by")) ? json_string_value(json_object_get(t, "updated_by")) : "-",
           json_is_string(json_object_get(t, "reason")) ? json_string_value(json_object_get(t, "reason")) : "");
}

static int ctl_get(const struct ctl *c, const char *queue) {
    char path[256];
    json_t *a;
    snprintf(path, sizeof path, queue ? "/api/v1/scaling/%s" : "/api/v1/scaling", queue);
    long st = ctl_request(c, "GET", path, NULL, &a);
    int rc = EXIT_OK;
    if (st != 200) rc = ctl_refusal(st, a, c);
    else if (c->json) json_dumpf(a, stdout, JSON_INDENT(2)), putchar('\n');
    else {
        printf("%-20s %8s %8s %-10s %-16s %s\n", "QUEUE", "DESIRED", "VERSION", "BOUNDS", "BY", "REASON");
        if (queue) ctl_target_row(a);
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(a, "items"), i, t) ctl_target_row(t);
    }
    json_decref(a);
    return rc;
}

static int ctl_set(const struct ctl *c, const char *queue, json_t *body, int waiting) {
    char path[256];
    json_t *a;
    snprintf(path, sizeof path, "/api/v1/scaling/%s", queue);
    long st = ctl_request(c, "PUT", path, body, &a);
    int rc = EXIT_OK;
    if (st != 200) {
        rc = ctl_refusal(st, a, c);
        json_decref(a);
        return rc;
    }
    json_t *acks = json_object_get(a, "acks");
    int complete = json_is_true(json_object_get(acks, "complete"));
    json_int_t expected = json_integer_value(json_object_get(acks, "expected"));
    /* With no live worker nothing acknowledged: a CI job must not read that
     * as success. */
    if (waiting && (!complete || expected == 0)) rc = EXIT_UNACKED;
    if (c->json) {
        json_dumpf(a, stdout, JSON_INDENT(2));
        putchar('\n');
    } else {
        printf("%s: %lld -> %lld (version %lld)\n", queue,
               (long long)json_integer_value(json_object_get(a, "previous")),
               (long long)json_integer_value(json_object_get(a, "desired_concurrency")),
               (long long)json_integer_value(json_object_get(a, "version")));
        if (acks)
            printf("acknowledged by %lld of %lld live workers%s\n",
                   (long long)json_integer_value(json_object_get(acks, "acknowledged")),
                   (long long)json_integer_value(json_object_get(acks, "expected")),
                   complete ? "" : " before the wait ended");
    }
    if (rc == EXIT_UNACKED)
        fprintf(stderr, expected == 0 ? "sluicectl: no live worker of %s to acknowledge the change\n"
                                      : "sluicectl: not every worker acknowledged in time\n", queue);
    json_decref(a);
    return rc;
}

static int ctl_history(const struct ctl *c, const char *queue, const char *limit) {
    char path[256];
    json_t *a;
    if (queue) snprintf(path, sizeof path, "/api/v1/scaling/%s/history?limit=%s", queue, limit);
    else snprintf(path, sizeof path, "/api/v1/audit?limit=%s", limit);
    long st = ctl_request(c, "GET", path, NULL, &a);
    int rc = EXIT_OK;
    if (st != 200) rc = ctl_refusal(st, a, c);
    else if (c->json) json_dumpf(a, stdout, JSON_INDENT(2)), putchar('\n');
    else {
        size_t i;
        json_t *e;
        printf("%-24s %-16s %-12s %-10s %-8s %-18s %s\n", "AT", "WHO", "QUEUE", "CHANGE", "SOURCE", "OUTCOME", "REASON");
        json_array_foreach(json_object_get(a, "items"), i, e) {
            char change[48], outcome[48];
            snprintf(change, sizeof change, "%lld->%lld", (long long)json_integer_value(json_object_get(e, "from")),
                     (long long)json_integer_value(json_object_get(e, "to")));
            const char *code = json_string_value(json_object_get(e, "error_code"));
            snprintf(outcome, sizeof outcome, "%s%s%s", json_string_value(json_object_get(e, "outcome")),
                     code ? ":" : "", code ? code : "");
            const char *q = json_string_value(json_object_get(e, "queue"));
            printf("%-24s %-16s %-12s %-10s %-8s %-18s %s\n", json_string_value(json_object_get(e, "at")),
                   json_string_value(json_object_get(e, "actor")), q ? q : json_string_value(json_object_get(e, "flag")),
                   change, json_string_value(json_object_get(e, "source")), outcome,
                   json_string_value(json_object_get(e, "reason")));
        }
    }
    json_decref(a);
    return rc;
}

static int ctl_status(const struct ctl *c) {
    json_t *a;
    long st = ctl_request(c, "GET", "/admin/runtime-scaling", NULL, &a);
    int rc = EXIT_OK;
    if (st != 200) rc = ctl_refusal(st, a, c);
    else if (c->json) json_dumpf(a, stdout, JSON_INDENT(2)), putchar('\n');
    else {
        size_t i;
        json_t *q;
        printf("environment %s, redis %s, store %s, writes %s\n", json_string_value(json_object_get(a, "environment")),
               json_string_value(json_object_get(a, "redis")), json_string_value(json_object_get(a, "store")),
               json_is_true(json_object_get(a, "writes_enabled")) ? "on" : "off");
        printf("%-16s %8s %8s %8s %9s %8s %8s %8s  %s\n", "QUEUE", "WAITING", "ACTIVE", "DESIRED", "RUNNING",
               "WORKERS", "DONE/S", "FAIL/S", "ALERTS");
        json_array_foreach(json_object_get(a, "queues"), i, q) {
            char w[32], ac[32], d[32], r[32], n[32], cs[32], fs[32], alerts[256] = "";
            json_t *depth = json_object_get(q, "depth"), *rates = json_object_get(q, "rates"), *al;
            size_t k;
            json_array_foreach(json_object_get(q, "alerts"), k, al) {
                size_t used = strlen(alerts);
                snprintf(alerts + used, sizeof alerts - used, "%s%s(%s)", used ? " " : "",
                         json_string_value(json_object_get(al, "name")), json_string_value(json_object_get(al, "state")));
            }
            printf("%-16s %8s %8s %8s %9s %8s %8s %8s  %s\n", json_string_value(json_object_get(q, "queue")),
                   ctl_num(json_object_get(depth, "waiting"), w, sizeof w),
                   ctl_num(json_object_get(depth, "active"), ac, sizeof ac),
                   ctl_num(json_object_get(q, "desired_concurrency"), d, sizeof d),
                   ctl_num(json_object_get(q, "active_concurrency"), r, sizeof r),
                   ctl_num(json_object_get(q, "worker_count"), n, sizeof n),
                   ctl_num(json_object_get(rates, "completed_per_s"), cs, sizeof cs),
                   ctl_num(json_object_get(rates, "failed_per_s"), fs, sizeof fs), alerts[0] ? alerts : "-");
        }
    }
    json_decref(a);
    return rc;
}

static int ctl_whoami(const struct ctl *c) {
    json_t *a;
    long st = ctl_request(c, "GET", "/api/v1/whoami", NULL, &a);
    int rc = EXIT_OK;
    if (st != 200) rc = ctl_refusal(st, a, c);
    else if (c->json) json_dumpf(a, stdout, JSON_INDENT(2)), putchar('\n');
    else {
        size_t i;
        json_t *s;
        printf("%s in %s (writes %s), scopes:", json_string_value(json_object_get(a, "name")),
               json_string_value(json_object_get(a, "environment")),
               json_is_true(json_object_get(a, "writes_enabled")) ? "on" : "off");
        json_array_foreach(json_object_get(a, "scopes"), i, s) printf(" %s", json_string_value(s));
        putchar('\n');
    }
    json_decref(a);
    return rc;
}

static void ctl_usage(void) {
    fprintf(stderr,
            "usage: sluicectl [--url URL] [--token T] [--json] COMMAND\n"
            "  get [QUEUE]                      desired concurrency of one or every queue\n"
            "  set QUEUE N --reason R [--confirm] [--duration 2h] [--wait 5s] [--expected-version V]\n"
            "  history [QUEUE] [--limit N]      who changed what, newest first\n"
            "  status                           depth, concurrency, workers, rates, alerts\n"
            "  whoami\n"
            "SLUICE_URL and SLUICE_TOKEN are read from the environment.\n"
            "exit: 0 done, 2 refused by policy or permissions, 3 wait ended without every\n"
            "acknowledgement, 1 other errors\n");
}

/* Parse "5s", "1500ms", "2m" into milliseconds. */
static int ctl_ms(const char *s, int64_t *out) {
    size_t n = strlen(s);
    if (n > 2 && strcmp(s + n - 2, "ms") == 0) {
        char tmp[32];
        if (n - 2 >= sizeof tmp) return -1;
        memcpy(tmp, s, n - 2);
        tmp[n - 2] = '\0';
        char *end;
        long long v = strtoll(tmp, &end, 10);
        if (*end || end == tmp || v < 0) return -1;
        *out = v;
        return 0;
    }
    int64_t secs;
    if (util_parse_duration(s, &secs) != 0) return -1;
    *out = secs * 1000;
    return 0;
}

int main(int argc, char **argv) {
    struct ctl c = {getenv("SLUICE_URL"), getenv("SLUICE_TOKEN"), 0};
    const char *args[8], *reason = NULL, *duration = NULL, *wait = NULL, *expected = NULL, *limit = "20";
    int nargs = 0, confirm = 0, rc = EXIT_OTHER;
    json_t *body = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(a, "--json")) c.json = 1, takes = 0;
        else if (!strcmp(a, "--confirm")) confirm = 1, takes = 0;
        else if (!strcmp(a, "--url") && v) c.url = v;
        else if (!strcmp(a, "--token") && v) c.token = v;
        else if (!strcmp(a, "--reason") && v) reason = v;
        else if (!strcmp(a, "--duration") && v) duration = v;
        else if (!strcmp(a, "--wait") && v) wait = v;
        else if (!strcmp(a, "--expected-version") && v) expected = v;
        else if (!strcmp(a, "--limit") && v) limit = v;
        else if (a[0] == '-' || nargs == 8) {
            ctl_usage();
            return EXIT_OTHER;
        } else {
            args[nargs++] = a;
            takes = 0;
        }
        i += takes;
    }
    if (nargs == 0 || c.url == NULL) {
        if (c.url == NULL && nargs) fprintf(stderr, "sluicectl: set SLUICE_URL (or --url), e.g. http://127.0.0.1:8080\n");
        ctl_usage();
        return EXIT_OTHER;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *cmd = args[0];
    if (!strcmp(cmd, "get") && nargs <= 2) rc = ctl_get(&c, nargs == 2 ? args[1] : NULL);
    else if (!strcmp(cmd, "history") && nargs <= 2) rc = ctl_history(&c, nargs == 2 ? args[1] : NULL, limit);
    else if (!strcmp(cmd, "status") && nargs == 1) rc = ctl_status(&c);
    else if (!strcmp(cmd, "whoami") && nargs == 1) rc = ctl_whoami(&c);
    else if (!strcmp(cmd, "set") && nargs == 3) {
        char *end;
        long long n = strtoll(args[2], &end, 10);
        int64_t dur_s = 0, wait_ms = 0;
        if (*end || end == args[2]) fprintf(stderr, "sluicectl: N must be a whole number, got '%s'\n", args[2]);
        else if (reason == NULL) fprintf(stderr, "sluicectl: set needs --reason (it goes into the audit log)\n");
        else if (duration && util_parse_duration(duration, &dur_s) != 0)
            fprintf(stderr, "sluicectl: --duration: expected 90s, 15m, 2h or 1d\n");
        else if (wait && (ctl_ms(wait, &wait_ms) != 0 || wait_ms > 30000))
            fprintf(stderr, "sluicectl: --wait: expected 5s, 1500ms or 30s (at most 30 s)\n");
        else if (expected && (strtoll(expected, &end, 10) < 0 || *end || end == expected))
            fprintf(stderr, "sluicectl: --expected-version: expected a version number, got '%s'\n", expected);
        else {
            body = json_pack("{s:I, s:s, s:b}", "desired_concurrency", (json_int_t)n, "reason", reason,
                             "confirm", confirm);
            if (duration) json_object_set_new(body, "duration_s", json_integer(dur_s));
            if (wait) json_object_set_new(body, "wait_ms", json_integer(wait_ms));
            if (expected) json_object_set_new(body, "expected_version", json_integer(strtoll(expected, NULL, 10)));
            rc = ctl_set(&c, args[1], body, wait != NULL);
        }
    } else {
        ctl_usage();
    }
    json_decref(body);
    curl_global_cleanup();
    return rc;
}
