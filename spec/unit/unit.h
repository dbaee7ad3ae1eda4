/* unit.h — a tiny test harness for the C unit tests in spec/unit/.
 *
 * Each test_<module>.c defines tests with TEST(name) and lists them in main()
 * through RUN(name). Output is TAP-like: "ok N - name" or "not ok N - name"
 * with the failing expectation, and a closing "# <file>: P passed, F failed"
 * line that tools/test.sh adds up. The exit status is 1 when anything failed.
 *
 * EXPECT* record a failure and go on; ASSERT* also end the current test. */
#ifndef SLUICE_UNIT_H
#define SLUICE_UNIT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int unit_passed, unit_failed, unit_current_failed, unit_number;

#define UNIT_FAIL(...)                                                        \
    do {                                                                      \
        printf("#   %s:%d: ", __FILE__, __LINE__);                            \
        printf(__VA_ARGS__);                                                  \
        printf("\n");                                                         \
        unit_current_failed = 1;                                              \
    } while (0)

#define EXPECT(cond)                                                          \
    do { if (!(cond)) UNIT_FAIL("expected %s", #cond); } while (0)
#define ASSERT(cond)                                                          \
    do { if (!(cond)) { UNIT_FAIL("expected %s", #cond); return; } } while (0)
#define EXPECT_INT(a, b)                                                      \
    do {                                                                      \
        long long a_ = (long long)(a), b_ = (long long)(b);                   \
        if (a_ != b_) UNIT_FAIL("%s == %lld, expected %lld", #a, a_, b_);     \
    } while (0)
#define EXPECT_STR(a, b)                                                      \
    do {                                                                      \
        const char *a_ = (a), *b_ = (b);                                      \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                  \
            UNIT_FAIL("%s == \"%s\", expected \"%s\"", #a, a_ ? a_ : "(null)", \
                      b_ ? b_ : "(null)");                                    \
    } while (0)
#define EXPECT_CONTAINS(hay, needle)                                          \
    do {                                                                      \
        const char *h_ = (hay), *n_ = (needle);                               \
        if (h_ == NULL || strstr(h_, n_) == NULL)                             \
            UNIT_FAIL("%s == \"%s\", expected it to contain \"%s\"", #hay,   \
                      h_ ? h_ : "(null)", n_);                                \
    } while (0)

#define TEST(name) static void test_##name(void)
#define RUN(name)                                                             \
    do {                                                                      \
        unit_current_failed = 0;                                              \
        test_##name();                                                        \
        unit_number++;                                                        \
        if (unit_current_failed) {                                            \
            unit_failed++;                                                    \
            printf("not ok %d - %s\n", unit_number, #name);                   \
        } else {                                                              \
            unit_passed++;                                                    \
            printf("ok %d - %s\n", unit_number, #name);                       \
        }                                                                     \
        fflush(stdout);                                                       \
    } while (0)

/* For a table of tests run more than once (test_store.c: once per backend):
 * run the statement `call` as one test reported under `label`. */
#define RUN_LABELLED(call, label)                                             \
    do {                                                                      \
        unit_current_failed = 0;                                              \
        call;                                                                 \
        unit_number++;                                                        \
        if (unit_current_failed) {                                            \
            unit_failed++;                                                    \
            printf("not ok %d - %s\n", unit_number, (label));                 \
        } else {                                                              \
            unit_passed++;                                                    \
            printf("ok %d - %s\n", unit_number, (label));                     \
        }                                                                     \
        fflush(stdout);                                                       \
    } while (0)

/* A test that cannot run here (no server configured): TAP's skip line,
 * counted neither as passed nor as failed. */
#define UNIT_SKIP(label, why)                                                 \
    do {                                                                      \
        unit_number++;                                                        \
        printf("ok %d - %s # SKIP %s\n", unit_number, (label), (why));        \
        fflush(stdout);                                                       \
    } while (0)

/* A TCP connection to 127.0.0.1:port whose reads give up after timeout_s,
 * for tests that speak to a real server; -1 when it cannot connect. */
static inline int unit_dial(int port, int timeout_s) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {timeout_s, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

#define UNIT_DONE()                                                           \
    (printf("# %s: %d passed, %d failed\n", __FILE__, unit_passed, unit_failed), \
     unit_failed ? 1 : 0)

#endif
