/* apierr.c — api.md's error codes, their HTTP statuses, and store failures
 * as errors. */
#include "apierr.h"
#include "store.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* api.md, "Errors": every code the server answers with. */
static const struct {
    const char *code;
    int status;
} api_error_table[] = {
    {"invalid_json", 400},         {"invalid_field", 400},        {"invalid_request", 400},
    {"unauthenticated", 401},      {"forbidden", 403},            {"writes_disabled", 403},
    {"csrf", 403},                 {"not_found", 404},            {"unknown_queue", 404},
    {"method_not_allowed", 405},   {"version_conflict", 409},     {"body_too_large", 413},
    {"out_of_bounds", 422},        {"step_too_large", 422},       {"policy_rejected", 422},
    {"confirmation_required", 428}, {"rate_limited", 429},        {"internal", 500},
    {"store_unavailable", 503},    {"store_busy", 503},           {"not_ready", 503},
    {"store_full", 507},           {"unknown_approval", 404},     {"unknown_version", 404},
    {"approval_pending", 409},     {"approval_expired", 409},     {"approval_decided", 409},
    {"no_autoscaler", 404},
};

int api_error_status(const char *code) {
    for (size_t i = 0; i < sizeof api_error_table / sizeof api_error_table[0]; i++)
        if (strcmp(api_error_table[i].code, code) == 0) return api_error_table[i].status;
    return 500;
}

void api_error_set(struct api_error *err, const char *code, json_t *details, const char *fmt, ...) {
    va_list ap;
    json_decref(err->details);
    util_copy(err->code, sizeof err->code, code);
    err->details = details;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

void api_error_store(struct api_error *err, int store_rc) {
    err->retry_after_s = 0;             /* a refusal judged before may have set one */
    if (store_rc == STORE_UNAVAILABLE) {
        api_error_set(err, "store_unavailable", NULL,
                      "the database cannot be reached; nothing was changed");
    } else if (store_rc == STORE_BUSY) {
        /* The lock it waited for is held by a change that is not moving. */
        err->retry_after_s = 1;
        api_error_set(err, "store_busy", NULL,
                      "the database is busy with another change; nothing was changed");
    } else if (store_rc == STORE_FULL) {
        api_error_set(err, "store_full", NULL, "the database volume is full; nothing was changed");
    } else {
        api_error_set(err, "internal", NULL, "internal error");
    }
}

void api_error_clear(struct api_error *err) {
    json_decref(err->details);
    memset(err, 0, sizeof *err);
}
