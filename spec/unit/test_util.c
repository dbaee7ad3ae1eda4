/* test_util.c — time formatting, names, durations, randomness, copies.
 * Redaction of connection strings: test_redact.c. */
#include "unit.h"
#include "protocol.h"
#include "util.h"

TEST(formats_rfc3339_utc_with_milliseconds) {
    char buf[UTIL_TIME_MAX];
    EXPECT_STR(util_format_time(1764190800123LL, buf), "2025-11-26T21:00:00.123Z");
    EXPECT_STR(util_format_time(0, buf), "1970-01-01T00:00:00.000Z");
}

TEST(accepts_only_safe_names) {
    EXPECT(protocol_valid_name("ingestion"));
    EXPECT(protocol_valid_name("build.v2:eu-1_a"));
    EXPECT(!protocol_valid_name(""));
    EXPECT(!protocol_valid_name(".hidden"));
    EXPECT(!protocol_valid_name("-flag"));
    EXPECT(!protocol_valid_name("a/b"));
    EXPECT(!protocol_valid_name("a b"));
    EXPECT(!protocol_valid_name("x' OR 1=1"));
    char long_name[80];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    EXPECT(!protocol_valid_name(long_name));
    long_name[64] = '\0';
    EXPECT(protocol_valid_name(long_name));
}

TEST(parses_durations) {
    int64_t s = 0;
    EXPECT_INT(util_parse_duration("30d", &s), 0);
    EXPECT_INT(s, 30 * 86400);
    EXPECT_INT(util_parse_duration("2h", &s), 0);
    EXPECT_INT(s, 7200);
    EXPECT_INT(util_parse_duration("90m", &s), 0);
    EXPECT_INT(s, 5400);
    EXPECT_INT(util_parse_duration("45", &s), 0);
    EXPECT_INT(s, 45);
    EXPECT_INT(util_parse_duration("0s", &s), -1);
    EXPECT_INT(util_parse_duration("-5m", &s), -1);
    EXPECT_INT(util_parse_duration("5x", &s), -1);
    EXPECT_INT(util_parse_duration("", &s), -1);
    EXPECT_INT(util_parse_duration("99999999999999999999d", &s), -1);
}

TEST(random_hex_differs_each_call) {
    char a[65], b[65];
    EXPECT_INT(util_random_hex(a, 32), 0);
    EXPECT_INT(util_random_hex(b, 32), 0);
    EXPECT_INT(strlen(a), 64);
    EXPECT(strcmp(a, b) != 0);
}

TEST(copy_truncates_and_terminates) {
    char small[4];
    util_copy(small, sizeof small, "abcdef");
    EXPECT_STR(small, "abc");
    util_copy(small, sizeof small, NULL);
    EXPECT_STR(small, "");
}

TEST(copy_into_zero_bytes_writes_nothing) {
    char guard[2] = {'x', 'y'};
    util_copy(guard, 0, "abc");
    util_copy_utf8(guard, 0, "abc");
    EXPECT(guard[0] == 'x' && guard[1] == 'y');
    util_copy(guard, 1, "abc");
    EXPECT(guard[0] == '\0' && guard[1] == 'y');
}

int main(void) {
    RUN(formats_rfc3339_utc_with_milliseconds);
    RUN(accepts_only_safe_names);
    RUN(parses_durations);
    RUN(random_hex_differs_each_call);
    RUN(copy_truncates_and_terminates);
    RUN(copy_into_zero_bytes_writes_nothing);
    return UNIT_DONE();
}
