/* test_leader.c — leadership on real databases: with SQLite this process
 * always leads and every start begins a new epoch; with PostgreSQL (when
 * SLUICE_TEST_PG names a scratch database) exactly one of two contenders
 * leads, and when it stops the other takes over with a higher epoch. */
#include "unit.h"
#include "leader.h"
#include "log.h"
#include "store.h"
#include "util.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static char dir[64], url[160];

static int migrated(const char *db_url) {
    struct store_options opt = {1000, 1};
    char err[256];
    store *st = store_open(db_url, &opt, err, sizeof err);
    int ok = st && store_migrate(st, NULL) == STORE_OK;
    store_close(st);
    return ok;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait up to ms for a or (when given) b to lead; returns 1 when one does. */
static int wait_for_leader(leader *a, leader *b, int ms) {
    int64_t until = util_mono_ms() + ms;
    while (util_mono_ms() < until) {
        if (leader_is(a) || (b && leader_is(b))) return 1;
        sleep_ms(20);
    }
    return leader_is(a) || (b && leader_is(b));
}

TEST(sqlite_always_leads_and_each_start_is_a_new_epoch) {
    char err[256] = "";
    strcpy(dir, "/tmp/sluice-leader-XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
    snprintf(url, sizeof url, "sqlite:%s/l.db", dir);
    ASSERT(migrated(url));
    leader *a = leader_start(url, 4000, err, sizeof err);
    ASSERT(a != NULL);
    EXPECT(leader_is(a));
    EXPECT_INT(leader_term(a), 1);
    long long first = leader_epoch(a);
    EXPECT(first >= 1);
    leader_stop(a);
    leader *b = leader_start(url, 4000, err, sizeof err);
    ASSERT(b != NULL);
    EXPECT_INT(leader_epoch(b), first + 1);
    leader_stop(b);
    char path[200];
    snprintf(path, sizeof path, "%s/l.db", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/l.db-wal", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/l.db-shm", dir);
    unlink(path);
    rmdir(dir);
}

TEST(sqlite_without_the_schema_refuses_to_start_with_a_message) {
    char err[256] = "";
    strcpy(dir, "/tmp/sluice-leader-XXXXXX");
    ASSERT(mkdtemp(dir) != NULL);
    snprintf(url, sizeof url, "sqlite:%s/missing.db", dir);
    EXPECT(leader_start(url, 4000, err, sizeof err) == NULL);
    EXPECT_CONTAINS(err, "cannot start a leadership epoch");
    rmdir(dir);
}

TEST(postgres_one_of_two_leads_and_the_other_takes_over_when_it_stops) {
    const char *pg = getenv("SLUICE_TEST_PG");
    char err[256] = "";
    ASSERT(migrated(pg));
    leader *a = leader_start(pg, 2000, err, sizeof err);
    leader *b = leader_start(pg, 2000, err, sizeof err);
    ASSERT(a != NULL && b != NULL);
    /* A lease left by an earlier run expires within its 2 s. */
    EXPECT(wait_for_leader(a, b, 5000));
    sleep_ms(600);                               /* a few renewals: still one */
    EXPECT_INT(leader_is(a) + leader_is(b), 1);
    leader *first = leader_is(a) ? a : b, *second = first == a ? b : a;
    long long epoch = leader_epoch(first);
    leader_stop(first);                           /* hands the lease back */
    EXPECT(wait_for_leader(second, NULL, 3000));
    EXPECT(leader_epoch(second) > epoch);
    leader_stop(second);
}

/* "test_leader postgres" runs the PostgreSQL half only (tools/test.sh's
 * PostgreSQL pass); without an argument, everything that can run here. */
int main(int argc, char **argv) {
    const char *pg = getenv("SLUICE_TEST_PG");
    int only_pg = argc > 1 && strcmp(argv[1], "postgres") == 0;
    log_set_level(LOG_WARN);                      /* no line per migration */
    if (!only_pg) {
        RUN(sqlite_always_leads_and_each_start_is_a_new_epoch);
        RUN(sqlite_without_the_schema_refuses_to_start_with_a_message);
    }
    if (pg && pg[0]) RUN(postgres_one_of_two_leads_and_the_other_takes_over_when_it_stops);
    else UNIT_SKIP("postgres_one_of_two_leads_and_the_other_takes_over_when_it_stops",
                   "SLUICE_TEST_PG is not set");
    return UNIT_DONE();
}
