/* util.h — small helpers every module needs: wall-clock time in milliseconds,
 * RFC 3339 formatting, random bytes from the kernel, small parsers.
 *
 * Nothing here keeps state; every function is safe to call from any thread. */
#ifndef SLUICE_UTIL_H
#define SLUICE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

#define UTIL_TIME_MAX 40        /* "2026-11-26T21:00:00.123Z" + NUL, with room */
#define UTIL_NAME_MAX PROTOCOL_NAME_MAX   /* queue, flag and token names */

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t util_now_ms(void);

/* Milliseconds from CLOCK_MONOTONIC, for durations and deadlines. */
int64_t util_mono_ms(void);

/* Write `ms` as RFC 3339 UTC with milliseconds into buf (UTIL_TIME_MAX bytes).
 * Returns buf. */
char *util_format_time(int64_t ms, char *buf);

/* Fill buf with len random bytes from the kernel (getrandom). Returns 0, or -1
 * when the kernel cannot supply them (never silently weaker randomness). */
int util_random_bytes(void *buf, size_t len);

/* Write len random bytes as 2*len lowercase hex digits plus NUL into out.
 * Returns 0 or -1 as util_random_bytes. */
int util_random_hex(char *out, size_t len);

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void util_hex(const unsigned char *in, size_t len, char *out);


/* Parse a duration like "30d", "12h", "90m", "45s" or "120" (seconds) into
 * seconds. Returns 0, or -1 when the text is not a positive duration. */
int util_parse_duration(const char *s, int64_t *out_s);

/* Copy src (NULL: "") into dst of size bytes, truncating; always
 * NUL-terminates (when size is 0, writes nothing). */
void util_copy(char *dst, size_t size, const char *src);

/* As util_copy, but never cuts a UTF-8 sequence in half: a truncated copy
 * of valid UTF-8 stays valid. */
void util_copy_utf8(char *dst, size_t size, const char *src);

/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code
 * points past U+10FFFF) without NUL bytes; 0 otherwise. */
int util_valid_utf8(const char *s, size_t n);

/* Read a whole file (at most max bytes) into a NUL-terminated malloc'd buffer.
 * The caller owns the result. Returns NULL on error, errno set (EFBIG when the
 * file is larger than max). */
char *util_read_file(const char *path, size_t max, size_t *out_len);

#endif
