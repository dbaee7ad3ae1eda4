/* util.c — time, randomness and small parsers shared by all modules. */
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int64_t util_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *util_format_time(int64_t ms, char *buf) {
    if (ms < 0) ms = 0;
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, UTIL_TIME_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, UTIL_TIME_MAX - n, ".%03uZ", (unsigned)(ms % 1000));
    return buf;
}

int util_random_bytes(void *buf, size_t len) {
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void util_hex(const unsigned char *in, size_t len, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

int util_random_hex(char *out, size_t len) {
    unsigned char raw[64];
    if (len > sizeof raw || util_random_bytes(raw, len) != 0) return -1;
    util_hex(raw, len, out);
    return 0;
}


int util_parse_duration(const char *s, int64_t *out_s) {
    char *end;
    if (s == NULL || *s < '0' || *s > '9') return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || v <= 0) return -1;
    int64_t mult = 1;
    if (*end == 'd') mult = 86400, end++;
    else if (*end == 'h') mult = 3600, end++;
    else if (*end == 'm') mult = 60, end++;
    else if (*end == 's') end++;
    if (*end != '\0' || v > INT64_MAX / mult) return -1;
    *out_s = v * mult;
    return 0;
}

char *util_read_file(const char *path, size_t max, size_t *out_len) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    buf = malloc(max + 1);
    if (buf == NULL) goto fail;
    len = fread(buf, 1, max + 1, f);
    if (ferror(f)) goto fail;
    if (len > max) {
        errno = EFBIG;
        goto fail;
    }
    buf[len] = '\0';
    fclose(f);
    if (out_len) *out_len = len;
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

void util_copy(char *dst, size_t size, const char *src) {
    if (size == 0) return;
    size_t n = src ? strlen(src) : 0;
    if (n >= size) n = size - 1;
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}

void util_copy_utf8(char *dst, size_t size, const char *src) {
    if (size == 0) return;
    size_t n = src ? strlen(src) : 0;
    if (n >= size) {
        n = size - 1;
        /* Back off continuation bytes (10xxxxxx) and the lead byte they follow. */
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) n--;
    }
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}

int util_valid_utf8(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        size_t len;
        unsigned min, cp;
        if (c == 0) return 0;
        if (c < 0x80) { p++; continue; }
        if ((c & 0xe0) == 0xc0) len = 2, min = 0x80, cp = c & 0x1f;
        else if ((c & 0xf0) == 0xe0) len = 3, min = 0x800, cp = c & 0x0f;
        else if ((c & 0xf8) == 0xf0) len = 4, min = 0x10000, cp = c & 0x07;
        else return 0;
        if ((size_t)(end - p) < len) return 0;
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        p += len;
    }
    return 1;
}
