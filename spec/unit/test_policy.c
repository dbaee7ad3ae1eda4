/* test_policy.c — policy files on disk: declarations and their bounds, errors
 * with file and line, hot reload with last-good fallback, and validate(). */
#include "unit.h"
#include "policy.h"

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];
static const struct sandbox_limits limits = {16 << 20, 200000};

static const char *const good_policy =
    "defaults { default = 4, min = 1, max = 32, cooldown_s = 10, changes_per_hour = 60,\n"
    "           confirm_above = 24 }\n"
    "queue \"ingestion\" { max = 64, max_step = 16, confirm_above = 48, layout = \"bullmq\" }\n"
    "queue \"build\" { max = 16 }\n"
    "queue \"workflow\" { min = 0 }\n";

static int make_dir(void) {
    strcpy(dir, "/tmp/sluice-policy-XXXXXX");
    return mkdtemp(dir) != NULL;
}

static void put(const char *name, const char *text) {
    char path[160];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL) return;
    fputs(text, f);
    fclose(f);
}

static void remove_dir(void) {
    char path[400];
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static const char *str(json_t *j) { return json_is_string(j) ? json_string_value(j) : ""; }

/* `text` as x.lua alone must fail the same way offline and on reload: at
 * file:line, with a message containing needle. */
static int fails_at(const char *text, const char *file, int line, const char *needle) {
    struct policy_error e;
    int ok = 1;
    if (!make_dir()) return 0;
    put("x.lua", text);
    if (policy_check_dir(dir, &limits, &e) != -1 || strcmp(e.file, file) != 0 ||
        e.line != line || strstr(e.message, needle) == NULL) {
        printf("#   check: %s:%d: %s (expected %s:%d: ...%s...)\n", e.file, e.line, e.message,
               file, line, needle);
        ok = 0;
    }
    policy *p = policy_new(dir, &limits);
    if (policy_reload(p, 1) != -1) ok = 0;
    json_t *status = policy_status(p), *le = json_object_get(status, "last_error");
    if (strcmp(str(json_object_get(le, "file")), e.file) != 0 ||
        json_integer_value(json_object_get(le, "line")) != e.line ||
        strcmp(str(json_object_get(le, "message")), e.message) != 0) {
        printf("#   policy_status disagrees with policy_check_dir\n");
        ok = 0;
    }
    json_decref(status);
    policy_free(p);
    remove_dir();
    return ok;
}

TEST(loads_bounds_with_defaults_inherited_and_overridden) {
    struct policy_bounds b;
    ASSERT(make_dir());
    put("queues.lua", good_policy);
    put("notes.txt", "not lua at all {");          /* ignored: not *.lua */
    put(".hidden.lua", "not lua at all {");        /* ignored: hidden */
    policy *p = policy_new(dir, &limits);
    EXPECT_INT(policy_loaded(p), 0);
    EXPECT_INT(policy_reload(p, 1), 1);
    EXPECT_INT(policy_loaded(p), 1);
    ASSERT(policy_bounds(p, "ingestion", &b) == 0);
    EXPECT(b.def == 4 && b.min == 1 && b.max == 64 && b.max_step == 16);
    EXPECT(b.cooldown_s == 10 && b.changes_per_hour == 60 && b.confirm_above == 48);
    EXPECT_STR(b.layout, "bullmq");
    ASSERT(policy_bounds(p, "build", &b) == 0);
    EXPECT(b.def == 4 && b.min == 1 && b.max == 16 && b.confirm_above == 24);
    EXPECT_INT(b.max_step, 15);                    /* unset: max - min */
    EXPECT_STR(b.layout, "sluice");
    ASSERT(policy_bounds(p, "workflow", &b) == 0);
    EXPECT(b.min == 0 && b.max == 32 && b.max_step == 32);
    EXPECT_INT(policy_bounds(p, "unknown", &b), -1);
    policy_free(p);
    remove_dir();
}

TEST(unset_limits_show_as_null) {
    struct policy_bounds b;
    ASSERT(make_dir());
    put("q.lua", "queue \"q\" { default = 2, min = 2, max = 2 }\n");
    policy *p = policy_new(dir, &limits);
    ASSERT(policy_reload(p, 1) == 1);
    ASSERT(policy_bounds(p, "q", &b) == 0);
    EXPECT(b.confirm_above == -1 && b.changes_per_hour == 0 && b.cooldown_s == 0);
    EXPECT_INT(b.max_step, 1);                     /* min == max: never 0 */
    json_t *j = policy_bounds_json(&b);
    EXPECT(json_is_null(json_object_get(j, "confirm_above")));
    EXPECT(json_is_null(json_object_get(j, "changes_per_hour")));
    EXPECT_INT(json_integer_value(json_object_get(j, "max")), 2);
    json_decref(j);
    policy_free(p);
    remove_dir();
}

TEST(errors_carry_file_and_line) {
    const char *defs = "defaults { default = 1, min = 0, max = 4 }\n";
    char text[512];
    EXPECT(fails_at("queue \"a\" { }\nqueue \"b\" { max = = 3 }\n", "x.lua", 2,
                    "unexpected symbol"));
    snprintf(text, sizeof text, "-- queues\n%squeue \"a\" {\n  max = 3,\n  colour = \"red\",\n}\n",
             defs);
    EXPECT(fails_at(text, "x.lua", 3, "unknown field 'colour'"));
    snprintf(text, sizeof text, "%squeue \"a\" { min = 5, max = 3, default = 4 }\n", defs);
    EXPECT(fails_at(text, "x.lua", 2, "min 5 is above max 3"));
    snprintf(text, sizeof text, "%squeue \"a\" { default = 9 }\n", defs);
    EXPECT(fails_at(text, "x.lua", 2, "outside"));
    snprintf(text, sizeof text, "%squeue \"a\" {}\n\nqueue \"a\" {}\n", defs);
    EXPECT(fails_at(text, "x.lua", 4, "declared twice"));
    snprintf(text, sizeof text, "%squeue \"a\" { layout = \"kafka\" }\n", defs);
    EXPECT(fails_at(text, "x.lua", 2, "layout must be"));
    EXPECT(fails_at("queue \"a\" { min = 1, max = 2 }\n", "x.lua", 1, "must be set"));
    snprintf(text, sizeof text, "%squeue \"a\" { max = 3.5 }\n", defs);
    EXPECT(fails_at(text, "x.lua", 2, "must be an integer"));
    snprintf(text, sizeof text, "%squeue \"a\" { max = 100001 }\n", defs);
    EXPECT(fails_at(text, "x.lua", 2, "must be in"));
    snprintf(text, sizeof text, "%squeue \"a b\" {}\n", defs);
    EXPECT(fails_at(text, "x.lua", 2, "invalid"));
    snprintf(text, sizeof text, "%sdefaults {}\n", defs);
    EXPECT(fails_at(text, "x.lua", 2, "defaults declared twice"));
    EXPECT(fails_at("\nerror('boom')\n", "x.lua", 2, "boom"));
}

TEST(alert_and_validate_declarations_are_checked) {
    const char *q = "queue \"a\" { default = 1, min = 0, max = 4 }\n";
    char text[512];
    snprintf(text, sizeof text, "%salert \"x\" { severity = \"warning\",\n"
             "  worker = function() return true end, queue = function() return true end }\n", q);
    EXPECT(fails_at(text, "x.lua", 2, "exactly one of"));
    snprintf(text, sizeof text, "%salert \"x\" { severity = \"urgent\",\n"
             "  queue = function() return true end }\n", q);
    EXPECT(fails_at(text, "x.lua", 2, "severity must be"));
    snprintf(text, sizeof text, "%salert \"x\" { severity = \"info\", queue = function() end,"
             " colour = 1 }\n", q);
    EXPECT(fails_at(text, "x.lua", 2, "unknown field 'colour'"));
    snprintf(text, sizeof text, "%svalidate = 42\n", q);
    EXPECT(fails_at(text, "x.lua", 0, "validate must be a function"));
    EXPECT(fails_at("defaults { default = 1, min = 0, max = 4 }\n", "x.lua", 0,
                    "no queue declared"));
    EXPECT(fails_at("while true do end\n", "x.lua", 0, "instruction budget"));
}

TEST(duplicate_across_files_names_the_second_file) {
    struct policy_error e;
    ASSERT(make_dir());
    put("a.lua", "queue \"a\" { default = 1, min = 0, max = 4 }\n");
    put("b.lua", "\nqueue \"a\" { default = 1, min = 0, max = 4 }\n");
    EXPECT_INT(policy_check_dir(dir, &limits, &e), -1);
    EXPECT_STR(e.file, "b.lua");
    EXPECT_INT(e.line, 2);
    EXPECT_CONTAINS(e.message, "declared twice");
    remove_dir();
    ASSERT(make_dir());                            /* an empty directory */
    EXPECT_INT(policy_check_dir(dir, &limits, &e), -1);
    EXPECT_CONTAINS(e.message, "no *.lua policy files");
    remove_dir();
}

TEST(hot_reload_keeps_last_good_policy) {
    struct policy_bounds b;
    ASSERT(make_dir());
    put("queues.lua", good_policy);
    policy *p = policy_new(dir, &limits);
    ASSERT(policy_reload(p, 0) == 1);
    json_t *s = policy_status(p);
    char sha[65];
    util_copy(sha, sizeof sha, json_string_value(json_object_get(s, "sha256")));
    EXPECT(json_is_null(json_object_get(s, "last_error")));
    json_decref(s);

    put("queues.lua", "queue \"build\" { default = 1, min = 0, max = 2 }\nqueue \"x\" {\n");
    EXPECT_INT(policy_reload(p, 0), -1);
    ASSERT(policy_bounds(p, "build", &b) == 0);
    EXPECT_INT(b.max, 16);                         /* the old generation is in force */
    EXPECT_INT(policy_bounds(p, "x", &b), -1);
    s = policy_status(p);
    json_t *le = json_object_get(s, "last_error");
    EXPECT_STR(json_string_value(json_object_get(le, "file")), "queues.lua");
    EXPECT_INT(json_integer_value(json_object_get(le, "line")), 3);   /* at <eof> */
    EXPECT_CONTAINS(str(json_object_get(le, "message")), "near <eof>");
    EXPECT_STR(json_string_value(json_object_get(s, "sha256")), sha);
    json_decref(s);
    EXPECT_INT(policy_reload(p, 0), 0);            /* same broken content: nothing new */

    put("queues.lua", "queue \"build\" { default = 1, min = 0, max = 2 }\n");
    EXPECT_INT(policy_reload(p, 0), 1);
    ASSERT(policy_bounds(p, "build", &b) == 0);
    EXPECT_INT(b.max, 2);
    s = policy_status(p);
    EXPECT(json_is_null(json_object_get(s, "last_error")));
    json_decref(s);
    EXPECT_INT(policy_reload(p, 0), 0);
    EXPECT_INT(policy_reload(p, 1), 1);            /* force reloads unchanged content */
    policy_free(p);
    remove_dir();
}

static const char *const validate_policy =
    "queue \"ingestion\" { default = 4, min = 0, max = 100 }\n"
    "function validate(change, ctx)\n"
    "  if change.to == 13 then return false, '13 is unlucky' end\n"
    "  if change.to == 14 then return false end\n"
    "  if change.to == 15 then error('kaboom') end\n"
    "  if change.to == 16 then while true do end end\n"
    "  if change.to == 17 then\n"
    "    return false, ('%s|%d|%d|%s|%s|%s|%s|%s|%s|%d|%d'):format(change.queue, change.from,\n"
    "      change.to, change.actor, table.concat(change.scopes, ','), tostring(change.confirm),\n"
    "      change.source, change.reason, ctx.environment, ctx.now, ctx.recent_changes)\n"
    "  end\n"
    "  return true\n"
    "end\n";

static int validate(policy *p, int64_t to, char *msg, size_t len) {
    struct policy_change c = {"ingestion", 4, to, "alice", 3, "api", "backfill", 1, 0};
    struct policy_ctx ctx = {"production", 1764190800123LL, 5};
    msg[0] = '\0';
    return policy_validate(p, &c, &ctx, msg, len);
}

TEST(validate_accepts_refuses_and_fails) {
    char msg[512];
    ASSERT(make_dir());
    put("v.lua", validate_policy);
    policy *p = policy_new(dir, &limits);
    EXPECT_INT(validate(p, 13, msg, sizeof msg), 1);   /* nothing loaded: no validate */
    ASSERT(policy_reload(p, 1) == 1);
    EXPECT_INT(validate(p, 5, msg, sizeof msg), 1);
    EXPECT_INT(validate(p, 13, msg, sizeof msg), 0);
    EXPECT_STR(msg, "13 is unlucky");
    EXPECT_INT(validate(p, 14, msg, sizeof msg), 0);
    EXPECT(msg[0] != '\0');
    EXPECT_INT(validate(p, 15, msg, sizeof msg), -1);
    EXPECT_CONTAINS(msg, "kaboom");
    EXPECT_INT(validate(p, 16, msg, sizeof msg), -1);
    EXPECT_CONTAINS(msg, "instruction budget");
    EXPECT_INT(validate(p, 6, msg, sizeof msg), 1);    /* still usable after the runaway */
    EXPECT_INT(validate(p, 17, msg, sizeof msg), 0);
    EXPECT_STR(msg, "ingestion|4|17|alice|scaling:read,scaling:write|true|api|backfill|"
                    "production|1764190800|5");
    policy_free(p);
    remove_dir();
}

TEST(queue_names_follow_declaration_order_across_files) {
    char names[4][UTIL_NAME_MAX + 1];
    ASSERT(make_dir());
    put("b.lua", "queue \"mid\" { default = 1, min = 0, max = 2 }\n");
    put("a.lua", "queue \"zeta\" { default = 1, min = 0, max = 2 }\n"
                 "queue \"alpha\" { default = 1, min = 0, max = 2 }\n"
                 "alert \"stuck\" { severity = \"critical\", for_s = 60,\n"
                 "  queue = function(q) return false end }\n");
    policy *p = policy_new(dir, &limits);
    EXPECT_INT(policy_queue_names(p, names, 4), 0);
    ASSERT(policy_reload(p, 1) == 1);
    ASSERT(policy_queue_names(p, names, 4) == 3);
    EXPECT_STR(names[0], "zeta");
    EXPECT_STR(names[1], "alpha");
    EXPECT_STR(names[2], "mid");
    memset(names, 0, sizeof names);
    EXPECT_INT(policy_queue_names(p, names, 1), 3);    /* counts all, copies max */
    EXPECT_STR(names[0], "zeta");
    EXPECT_STR(names[1], "");
    json_t *s = policy_status(p);
    EXPECT_STR(json_string_value(json_array_get(json_object_get(s, "files"), 0)), "a.lua");
    EXPECT_STR(json_string_value(json_array_get(json_object_get(s, "files"), 1)), "b.lua");
    json_t *alert = json_array_get(json_object_get(s, "alerts"), 0);
    EXPECT_STR(json_string_value(json_object_get(alert, "kind")), "queue");
    EXPECT_INT(json_integer_value(json_object_get(alert, "for_s")), 60);
    EXPECT(json_is_false(json_object_get(s, "validate")));
    EXPECT_INT(json_string_length(json_object_get(s, "sha256")), 64);
    json_decref(s);
    policy_free(p);
    remove_dir();
}

/* `queue "b"` without its { ... } must not load as if "b" were absent. */
TEST(queue_without_spec_is_a_load_error) {
    struct policy_bounds b;
    ASSERT(make_dir());
    put("x.lua", "defaults { default = 1, min = 0, max = 4 }\n"
                 "queue \"a\" {}\nqueue \"b\"\n");
    policy *p = policy_new(dir, &limits);
    int rc = policy_reload(p, 1);
    EXPECT(rc == -1 || policy_bounds(p, "b", &b) == 0);
    policy_free(p);
    remove_dir();
}

/* Lua shortens chunk names past 60 characters; errors must still name the
 * file in full. */
TEST(errors_name_long_files_in_full) {
    static const char *const name =
        "a_rather_long_policy_file_name_for_the_ingestion_queues_of_team_x.lua";
    struct policy_error e;
    ASSERT(make_dir());
    put(name, "queue \"a\" { default = 1, min = 0, max = 4, bogus = 1 }\n");
    EXPECT_INT(policy_check_dir(dir, &limits, &e), -1);
    EXPECT_STR(e.file, name);
    EXPECT_INT(e.line, 1);
    remove_dir();
}

int main(void) {
    RUN(loads_bounds_with_defaults_inherited_and_overridden);
    RUN(unset_limits_show_as_null);
    RUN(errors_carry_file_and_line);
    RUN(alert_and_validate_declarations_are_checked);
    RUN(duplicate_across_files_names_the_second_file);
    RUN(hot_reload_keeps_last_good_policy);
    RUN(validate_accepts_refuses_and_fails);
    RUN(queue_names_follow_declaration_order_across_files);
    RUN(queue_without_spec_is_a_load_error);
    RUN(errors_name_long_files_in_full);
    return UNIT_DONE();
}
