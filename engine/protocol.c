/* protocol.c — the wire names of protocol.md and the rule for names. */
#include "protocol.h"

#include <stdio.h>

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
