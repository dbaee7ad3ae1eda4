/* log.h — structured logging: one JSON object per line on stderr.
 *
 * Every line has "ts", "level" and "msg"; callers add fields as a jansson
 * object. Lines from different threads never interleave (one write(2) per
 * line). log_ratelimited() lets noisy sources (bad input from outside) log at
 * most a few lines per second while counting what they dropped. */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <jansson.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Minimum level written; LOG_INFO unless changed at start-up. */
void log_set_level(enum log_level level);

/* Write one line. `fields` (may be NULL) is merged into the line; the
 * function takes ownership of it (it is decref'd). */
void log_json(enum log_level level, const char *msg, json_t *fields);

/* printf-style convenience for lines without extra fields. */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
