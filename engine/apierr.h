/* apierr.h — the one error type between the domain and the API.
 *
 * Domain modules (scaling.c, flags, auth) say why a call failed in the
 * terms of api.md's error envelope: a code, a message, details and, for
 * rate limits, when to retry. They never pick an HTTP status: the binding
 * layer does, through api_error_status(), the one table from code to
 * status. A failed store call becomes an error in exactly one place,
 * api_error_store(). */
#ifndef SLUICE_APIERR_H
#define SLUICE_APIERR_H

#include <jansson.h>
#include <stdint.h>

struct api_error {
    char code[32];               /* api.md error code; "" when none */
    char message[512];
    json_t *details;             /* owned; NULL when none */
    int64_t retry_after_s;       /* > 0: the answer carries Retry-After */
};

/* Fill err (replacing what it held) with code, details (ownership taken, may
 * be NULL) and a printf-style message. */
void api_error_set(struct api_error *err, const char *code, json_t *details, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fill err for a failed store_rc (store.h): store_unavailable, store_busy
 * (retry in a second), store_full, else internal. Nothing was changed. */
void api_error_store(struct api_error *err, int store_rc);

/* Release the details and empty err; err may be reused afterwards. */
void api_error_clear(struct api_error *err);

/* The HTTP status of an api.md error code (500 for an unknown one). */
int api_error_status(const char *code);

#endif
