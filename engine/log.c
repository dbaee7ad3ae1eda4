/* log.c — JSON-lines logger. The only shared state is the level, read and
 * written atomically. */
#include "log.h"
#include "util.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int log_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level) { atomic_store(&log_level, (int)level); }

void log_json(enum log_level level, const char *msg, json_t *fields) {
    char ts[UTIL_TIME_MAX];
    json_t *line;
    char *text = NULL;

    if ((int)level < atomic_load(&log_level)) goto done;
    line = json_pack("{s:s, s:s, s:s}", "ts", util_format_time(util_now_ms(), ts),
                     "level", level_names[level], "msg", msg ? msg : "");
    if (line == NULL) goto done;
    if (fields) json_object_update(line, fields);
    text = json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(line);
    if (text) {
        size_t n = strlen(text);
        text[n] = '\n';   /* replaces the NUL; we write n+1 bytes in one call */
        ssize_t w = write(STDERR_FILENO, text, n + 1);
        (void)w;
    }
done:
    free(text);
    json_decref(fields);
}

void log_msg(enum log_level level, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    if ((int)level < atomic_load(&log_level)) return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_json(level, buf, NULL);
}
