/* redact.h — connection strings with their credentials hidden, for logs,
 * messages and command output.
 *
 * The strings are read by the libraries that read them to connect: libpq
 * (PQconninfoParse) for PostgreSQL URIs and keyword/value strings, libcurl's
 * URL API for redis://, rediss:// and any other SCHEME://. What is shown is
 * rebuilt from what the library parsed, with each secret replaced, never cut
 * out of the input: a password the library stored under another name (a
 * user's "p@ss/word" that libpq reads as a host or a port) cannot slip
 * through, because such input is refused as ambiguous (below).
 *
 * Kept apart from util.c so that sluicectl, which links util.o, does not
 * need libpq. Nothing here keeps state; safe from any thread. */
#ifndef SLUICE_REDACT_H
#define SLUICE_REDACT_H

#include <stddef.h>

#define REDACT_MASK "***"

/* Write url into out (size bytes; truncated to fit and NUL-terminated;
 * nothing is written when size is 0) with every credential shown as
 * REDACT_MASK:
 *
 *   postgres://u:p@h:5432/db            postgres://u:***@h:5432/db
 *   postgres://h/db?user=u&password=p   postgres://h/db?user=u&password=***
 *   host=h user=u password='a b'        host=h user=u password=***
 *   ...?sslpassword=k                   ...?sslpassword=***
 *   redis://user:p@h:6379/0             redis://user:***@h:6379/0
 *   https://h/x?token=t                 https://h/x?token=***
 *   sqlite:PATH                         unchanged
 *
 * A URI comes back a URI and a keyword/value string a keyword/value string,
 * in the library's spelling: values percent-encoded or quoted anew, keywords
 * in a fixed order, libcurl's trailing '/' after a bare host. Secrets are
 * the settings libpq marks as such (password, sslpassword); in other URLs,
 * the password, the value of the first query parameter named like a secret
 * (pass, token, key, secret, ...) with all that follows it, and a fragment.
 *
 * Returns 0. Returns -1 when the string cannot be read unambiguously; out
 * then holds only "SCHEME://" followed by the mask, or the mask alone. That
 * is when the library rejects the string, when a raw '@' stands anywhere
 * but as the one separator before the host, or when a port is not a
 * number: a password with '@', '/', '?' or '#' must be percent-encoded (%40,
 * %2F, %3F, %23). Configuration checks may refuse such a string with that
 * hint. A NULL url shows as "" and returns 0. */
int redact_url(const char *url, char *out, size_t size);

#endif
