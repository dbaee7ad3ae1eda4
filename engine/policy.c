/* policy.c — the policy DSL (defaults, queue, alert, validate, notify and
 * autoscale, whose declarations policy_notify.c and policy_autoscale.c
 * resolve), directory loading with content digests, hot reload and
 * last-good fallback. */
#include "policy_int.h"
#include "autoscale_lib.h"
#include "protocol.h"
#include "auth.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The files of one directory read into memory, sorted by name. */
struct policy_files {
    size_t n;
    char names[POLICY_MAX_FILES][128];
    char *texts[POLICY_MAX_FILES];
    size_t lens[POLICY_MAX_FILES];
    char digest[65];
};

static void policy_files_free(struct policy_files *f) {
    for (size_t i = 0; i < f->n; i++) free(f->texts[i]);
    f->n = 0;
}

static int policy_name_cmp(const void *a, const void *b) { return strcmp(a, b); }

static void policy_set_error(struct policy_error *e, const char *file, int line, const char *msg) {
    util_copy(e->file, sizeof e->file, file);
    e->line = line;
    util_copy(e->message, sizeof e->message, msg);
}

/* Read every visible *.lua file of dir and digest names + contents. */
static int policy_read_dir(const char *dir, struct policy_files *f, struct policy_error *err) {
    DIR *d = opendir(dir);
    struct dirent *de;
    EVP_MD_CTX *md = NULL;
    unsigned char raw[32];
    unsigned int rawlen = 0;
    int rc = -1;

    memset(f, 0, sizeof *f);
    if (d == NULL) {
        policy_set_error(err, dir, 0, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        char path[1200];
        struct stat sb;
        if (de->d_name[0] == '.' || len < 5 || strcmp(de->d_name + len - 4, ".lua") != 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;   /* follows symlinks */
        if (f->n == POLICY_MAX_FILES || len >= sizeof f->names[0]) {
            policy_set_error(err, de->d_name, 0, "too many policy files, or name too long");
            goto done;
        }
        util_copy(f->names[f->n++], sizeof f->names[0], de->d_name);
    }
    if (f->n == 0) {
        policy_set_error(err, dir, 0, "no *.lua policy files in the directory");
        goto done;
    }
    qsort(f->names, f->n, sizeof f->names[0], policy_name_cmp);
    md = EVP_MD_CTX_new();
    if (md == NULL || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) goto done;
    for (size_t i = 0; i < f->n; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, f->names[i]);
        f->texts[i] = util_read_file(path, POLICY_FILE_MAX, &f->lens[i]);
        if (f->texts[i] == NULL) {
            policy_set_error(err, f->names[i], 0,
                             errno == EFBIG ? "file larger than 1 MiB" : strerror(errno));
            goto done;
        }
        EVP_DigestUpdate(md, f->names[i], strlen(f->names[i]) + 1);
        EVP_DigestUpdate(md, f->texts[i], f->lens[i] + 1);
    }
    if (!EVP_DigestFinal_ex(md, raw, &rawlen)) goto done;
    util_hex(raw, rawlen, f->digest);
    rc = 0;
done:
    EVP_MD_CTX_free(md);
    closedir(d);
    if (rc != 0) policy_files_free(f);
    return rc;
}

void policy_set_int(lua_State *L, const char *k, lua_Integer v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

void policy_set_str(lua_State *L, const char *k, const char *v) {
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

void policy_set_bool(lua_State *L, const char *k, int v) {
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

/* ---- the DSL -------------------------------------------------------------------- */

/* Append {name=, spec=, file=, line=} to the registry list `reg` and leave
 * the new declaration on the stack. spec_idx 0: no spec yet (queue "x" and
 * alert "x" get theirs from the table that follows). The file is the full
 * chunk name, not Lua's shortened short_src. */
static void policy_record(lua_State *L, const char *reg, const char *name, int spec_idx) {
    lua_Debug ar;
    memset(&ar, 0, sizeof ar);
    if (lua_getstack(L, 1, &ar)) lua_getinfo(L, "Sl", &ar);
    lua_getfield(L, LUA_REGISTRYINDEX, reg);    /* list */
    lua_createtable(L, 0, 4);                   /* list, decl */
    if (name) {
        policy_set_str(L, "name", name);
    }
    if (spec_idx) {
        lua_pushvalue(L, spec_idx);
        lua_setfield(L, -2, "spec");
    }
    policy_set_str(L, "file", ar.source && ar.source[0] == '@' ? ar.source + 1 : ar.short_src);
    policy_set_int(L, "line", ar.currentline);
    lua_pushvalue(L, -1);                       /* list, decl, decl */
    lua_rawseti(L, -3, (lua_Integer)lua_rawlen(L, -3) + 1);
    lua_remove(L, -2);                          /* decl */
}

static int policy_dsl_defaults(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, LUA_REGISTRYINDEX, POLICY_REG_DEFAULTS);
    lua_Unsigned n = lua_rawlen(L, -1);
    lua_pop(L, 1);
    if (n > 0) return luaL_error(L, "defaults declared twice");
    policy_record(L, POLICY_REG_DEFAULTS, NULL, 1);
    return 0;
}

/* queue "name" { ... } and alert "name" { ... }: the first call records the
 * declaration, the returned function fills in its spec. A declaration whose
 * table never came is an error at resolve time, not a silent no-op. */
static int policy_dsl_spec(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushvalue(L, lua_upvalueindex(1));      /* decl */
    if (lua_getfield(L, -1, "spec") != LUA_TNIL)
        return luaL_error(L, "%s given twice", "the { ... } of a declaration");
    lua_pop(L, 1);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "spec");
    return 0;
}

static int policy_dsl_named(lua_State *L, const char *reg, const char *what) {
    const char *name = luaL_checkstring(L, 1);
    if (!protocol_valid_name(name))
        return luaL_error(L, "%s name '%s' is invalid (1..64 of A-Z a-z 0-9 _ . : -)", what, name);
    policy_record(L, reg, name, 0);             /* decl */
    lua_pushcclosure(L, policy_dsl_spec, 1);
    return 1;
}

static int policy_dsl_queue(lua_State *L) { return policy_dsl_named(L, POLICY_REG_QUEUES, "queue"); }
static int policy_dsl_alert(lua_State *L) { return policy_dsl_named(L, POLICY_REG_ALERTS, "alert"); }
static int policy_dsl_notify(lua_State *L) { return policy_dsl_named(L, POLICY_REG_SINKS, "notify"); }
static int policy_dsl_autoscale(lua_State *L) {
    return policy_dsl_named(L, POLICY_REG_AUTOSCALE, "autoscale");
}

static int policy_dsl_open(lua_State *L) {
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, POLICY_REG_DEFAULTS);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, POLICY_REG_QUEUES);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, POLICY_REG_ALERTS);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, POLICY_REG_SINKS);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, POLICY_REG_AUTOSCALE);
    lua_register(L, "defaults", policy_dsl_defaults);
    lua_register(L, "queue", policy_dsl_queue);
    lua_register(L, "alert", policy_dsl_alert);
    lua_register(L, "notify", policy_dsl_notify);
    autoscale_lib_open(L);                      /* sluice.localtime, cron, schedule, ... */
    lua_register(L, "autoscale", policy_dsl_autoscale);
    return 0;
}

/* ---- resolving declarations (runs in protected mode) -------------------------------- */

static const char *const bound_fields[] = {"default", "min", "max", "max_step", "cooldown_s",
                                           "changes_per_hour", "confirm_above", "layout",
                                           "bullmq_prefix", "approve_above", "approval_ttl_s",
                                           NULL};

int policy_decl_error(lua_State *L, int decl_idx, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lua_getfield(L, decl_idx, "file");
    lua_getfield(L, decl_idx, "line");
    return luaL_error(L, "%s:%d: %s", lua_tostring(L, -2), (int)lua_tointeger(L, -1), msg);
}

void policy_check_fields(lua_State *L, int decl_idx, int spec_idx,
                                const char *const *allowed, const char *what) {
    lua_pushnil(L);
    while (lua_next(L, spec_idx) != 0) {        /* key, value */
        int ok = 0;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (const char *const *a = allowed; *a; a++) ok |= strcmp(*a, lua_tostring(L, -2)) == 0;
        if (!ok)
            policy_decl_error(L, decl_idx, "%s: unknown field '%s'", what,
                              lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "(not a name)");
        lua_pop(L, 1);
    }
}

int policy_int_field(lua_State *L, int decl_idx, int spec_idx, const char *key, int64_t lo,
                            int64_t hi, const char *what, int64_t *out) {
    int present = 0;
    lua_pushstring(L, key);
    lua_rawget(L, spec_idx);                    /* value */
    if (!lua_isnil(L, -1)) {
        if (!lua_isinteger(L, -1))
            policy_decl_error(L, decl_idx, "%s: %s must be an integer", what, key);
        lua_Integer v = lua_tointeger(L, -1);
        if (v < lo || v > hi)
            policy_decl_error(L, decl_idx, "%s: %s must be in %lld..%lld, got %lld", what, key,
                              (long long)lo, (long long)hi, (long long)v);
        *out = v;
        present = 1;
    }
    lua_pop(L, 1);
    return present;
}

struct policy_partial {
    struct policy_bounds b;
    int has_def, has_min, has_max;
};

static void policy_read_bounds(lua_State *L, int decl_idx, int spec_idx, const char *what,
                               struct policy_partial *p) {
    const int64_t top = POLICY_MAX_CONCURRENCY;
    policy_check_fields(L, decl_idx, spec_idx, bound_fields, what);
    p->has_def |= policy_int_field(L, decl_idx, spec_idx, "default", 0, top, what, &p->b.def);
    p->has_min |= policy_int_field(L, decl_idx, spec_idx, "min", 0, top, what, &p->b.min);
    p->has_max |= policy_int_field(L, decl_idx, spec_idx, "max", 1, top, what, &p->b.max);
    policy_int_field(L, decl_idx, spec_idx, "max_step", 1, top, what, &p->b.max_step);
    policy_int_field(L, decl_idx, spec_idx, "cooldown_s", 0, 86400, what, &p->b.cooldown_s);
    policy_int_field(L, decl_idx, spec_idx, "changes_per_hour", 1, 100000, what,
                     &p->b.changes_per_hour);
    policy_int_field(L, decl_idx, spec_idx, "confirm_above", 0, top, what, &p->b.confirm_above);
    /* Change control (issue 18): a change to a value above approve_above
     * waits for a second person, at most approval_ttl_s. */
    policy_int_field(L, decl_idx, spec_idx, "approve_above", 0, top, what, &p->b.approve_above);
    policy_int_field(L, decl_idx, spec_idx, "approval_ttl_s", 1, 7 * 86400, what,
                     &p->b.approval_ttl_s);
    lua_getfield(L, spec_idx, "layout");
    if (!lua_isnil(L, -1)) {
        const char *layout = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        if (strcmp(layout, "sluice") != 0 && strcmp(layout, "bullmq") != 0)
            policy_decl_error(L, decl_idx, "%s: layout must be \"sluice\" or \"bullmq\"", what);
        util_copy(p->b.layout, sizeof p->b.layout, layout);
    }
    lua_pop(L, 1);
    lua_getfield(L, spec_idx, "bullmq_prefix");
    if (!lua_isnil(L, -1)) {
        const char *prefix = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        if (!protocol_valid_name(prefix) || strlen(prefix) >= sizeof p->b.bullmq_prefix)
            policy_decl_error(L, decl_idx, "%s: bullmq_prefix must be 1..32 of A-Z a-z 0-9 _ . : -", what);
        util_copy(p->b.bullmq_prefix, sizeof p->b.bullmq_prefix, prefix);
    }
    lua_pop(L, 1);
}

static void policy_resolve_queues(lua_State *L, struct policy_gen *g) {
    struct policy_partial defaults;
    memset(&defaults, 0, sizeof defaults);
    defaults.b.confirm_above = -1;
    defaults.b.approve_above = -1;
    defaults.b.approval_ttl_s = 3600;
    strcpy(defaults.b.layout, "sluice");
    strcpy(defaults.b.bullmq_prefix, "bull");
    defaults.b.max_step = 0;     /* 0 here: "not set", becomes max - min */

    lua_getfield(L, LUA_REGISTRYINDEX, POLICY_REG_DEFAULTS);    /* defs */
    if (lua_rawgeti(L, -1, 1) == LUA_TTABLE) {                  /* defs, decl */
        int decl = lua_gettop(L);
        lua_getfield(L, decl, "spec");                           /* defs, decl, spec */
        policy_read_bounds(L, decl, lua_gettop(L), "defaults", &defaults);
        lua_pop(L, 1);
    }
    lua_pop(L, 2);

    lua_getfield(L, LUA_REGISTRYINDEX, POLICY_REG_QUEUES);      /* list */
    int list = lua_gettop(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, list);
    if (n == 0) luaL_error(L, "no queue declared (add queue \"name\" { ... })");
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, list, i);                                 /* list, decl */
        int decl = lua_gettop(L);
        lua_getfield(L, decl, "name");
        const char *name = lua_tostring(L, -1);
        char what[96];
        snprintf(what, sizeof what, "queue '%s'", name);
        if (lua_getfield(L, decl, "spec") != LUA_TTABLE)         /* list, decl, name, spec */
            policy_decl_error(L, decl, "%s has no { ... } after its name", what);
        struct policy_partial q = defaults;
        policy_read_bounds(L, decl, lua_gettop(L), what, &q);
        for (size_t k = 0; k < g->nqueues; k++)
            if (strcmp(g->queues[k].name, name) == 0)
                policy_decl_error(L, decl, "%s declared twice", what);
        if (g->nqueues == POLICY_MAX_QUEUES)
            policy_decl_error(L, decl, "more than %d queues", POLICY_MAX_QUEUES);
        if (!q.has_def || !q.has_min || !q.has_max)
            policy_decl_error(L, decl, "%s: default, min and max must be set (here or in defaults)",
                              what);
        if (q.b.min > q.b.max)
            policy_decl_error(L, decl, "%s: min %lld is above max %lld", what,
                              (long long)q.b.min, (long long)q.b.max);
        if (q.b.def < q.b.min || q.b.def > q.b.max)
            policy_decl_error(L, decl, "%s: default %lld is outside min..max (%lld..%lld)", what,
                              (long long)q.b.def, (long long)q.b.min, (long long)q.b.max);
        if (q.b.max_step == 0) q.b.max_step = q.b.max - q.b.min > 0 ? q.b.max - q.b.min : 1;
        util_copy(g->queues[g->nqueues].name, sizeof g->queues[0].name, name);
        g->queues[g->nqueues++].b = q.b;
        lua_pop(L, 3);
    }
    lua_pop(L, 1);
}

static void policy_resolve_alerts(lua_State *L, struct policy_gen *g) {
    static const char *const fields[] = {"severity", "for_s", "worker", "queue", "message", NULL};
    lua_getfield(L, LUA_REGISTRYINDEX, POLICY_REG_ALERTS);      /* list */
    int list = lua_gettop(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, list);
    for (lua_Integer i = 1; i <= n; i++) {
        struct policy_alert a;
        char what[96];
        memset(&a, 0, sizeof a);
        lua_rawgeti(L, list, i);                                 /* list, decl */
        int decl = lua_gettop(L);
        lua_getfield(L, decl, "name");
        util_copy(a.name, sizeof a.name, lua_tostring(L, -1));
        snprintf(what, sizeof what, "alert '%s'", a.name);
        if (lua_getfield(L, decl, "spec") != LUA_TTABLE)         /* list, decl, name, spec */
            policy_decl_error(L, decl, "%s has no { ... } after its name", what);
        int spec = lua_gettop(L);
        policy_check_fields(L, decl, spec, fields, what);
        for (size_t k = 0; k < g->nalerts; k++)
            if (strcmp(g->alerts[k].name, a.name) == 0)
                policy_decl_error(L, decl, "%s declared twice", what);
        lua_getfield(L, spec, "severity");
        const char *sev = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        if (strcmp(sev, "info") && strcmp(sev, "warning") && strcmp(sev, "critical"))
            policy_decl_error(L, decl, "%s: severity must be \"info\", \"warning\" or \"critical\"", what);
        util_copy(a.severity, sizeof a.severity, sev);
        lua_pop(L, 1);
        policy_int_field(L, decl, spec, "for_s", 0, 86400, what, &a.for_s);
        int w = lua_getfield(L, spec, "worker") == LUA_TFUNCTION;
        int q = lua_getfield(L, spec, "queue") == LUA_TFUNCTION;
        int m = lua_getfield(L, spec, "message");
        if (w == q)
            policy_decl_error(L, decl, "%s: give exactly one of worker = function(w, q) or queue = function(q)", what);
        if (m != LUA_TNIL && m != LUA_TFUNCTION)
            policy_decl_error(L, decl, "%s: message must be a function", what);
        lua_pop(L, 3);
        a.per_worker = w;
        if (g->nalerts == POLICY_MAX_QUEUES) policy_decl_error(L, decl, "too many alerts");
        g->alerts[g->nalerts++] = a;
        lua_pop(L, 3);
    }
    lua_pop(L, 1);
}

static int policy_resolve(lua_State *L) {
    struct policy_gen *g = lua_touserdata(L, 1);
    policy_resolve_queues(L, g);
    policy_resolve_alerts(L, g);
    policy_resolve_sinks(L, g);
    policy_resolve_autoscale(L, g);
    int t = lua_getglobal(L, "validate");
    if (t != LUA_TNIL && t != LUA_TFUNCTION) luaL_error(L, "validate must be a function");
    g->has_validate = t == LUA_TFUNCTION;
    lua_pop(L, 1);
    return 0;
}

/* ---- generations ------------------------------------------------------------------ */

static void policy_gen_free(struct policy_gen *g) {
    if (g == NULL) return;
    sandbox_close(g->L);
    sandbox_close(g->L_tick);
    sandbox_close(g->L_auto);
    pthread_mutex_destroy(&g->eval_lock);
    pthread_mutex_destroy(&g->auto_lock);
    pthread_mutex_destroy(&g->tick_lock);
    pthread_mutex_destroy(&g->fail_lock);
    free(g);
}

/* Split "file:line: message" from a Lua error into err. */
static void policy_parse_error(const char *msg, const char *fallback_file, struct policy_error *err) {
    const char *c1 = strchr(msg, ':');
    if (c1 && c1 > msg && (size_t)(c1 - msg) < sizeof err->file) {
        char *end;
        long line = strtol(c1 + 1, &end, 10);
        if (end > c1 + 1 && *end == ':' && line > 0) {
            char file[128];
            memcpy(file, msg, (size_t)(c1 - msg));
            file[c1 - msg] = '\0';
            /* Lua shortens long chunk names to "...tail"; the error came
             * from the file being loaded, whose full name we know. */
            policy_set_error(err, strncmp(file, "...", 3) == 0 ? fallback_file : file, (int)line,
                             end[1] == ' ' ? end + 2 : end + 1);
            return;
        }
    }
    policy_set_error(err, fallback_file, 0, msg);
}

/* One sandboxed state with every file of f run in it. resolve: also read
 * the declarations into g (the first state of a generation; the second runs
 * the same files for its functions only). NULL with err on any failure. */
static lua_State *policy_state_load(const struct policy_files *f, const struct sandbox_limits *limits,
                                    struct policy_gen *g, int resolve, struct policy_error *err) {
    char chunk[140];
    lua_State *L = sandbox_new(limits, g);
    if (L == NULL) {
        policy_set_error(err, "-", 0, "out of memory");
        return NULL;
    }
    lua_pushcfunction(L, policy_dsl_open);
    if (sandbox_pcall(L, 0, 0) != LUA_OK) {
        policy_set_error(err, "-", 0, lua_tostring(L, -1));
        goto fail;
    }
    for (size_t i = 0; i < f->n; i++) {
        snprintf(chunk, sizeof chunk, "@%s", f->names[i]);
        if (luaL_loadbufferx(L, f->texts[i], f->lens[i], chunk, "t") != LUA_OK ||
            sandbox_pcall(L, 0, 0) != LUA_OK) {
            policy_parse_error(lua_tostring(L, -1), f->names[i], err);
            goto fail;
        }
        if (resolve) util_copy(g->files[g->nfiles++], sizeof g->files[0], f->names[i]);
    }
    if (resolve) {
        lua_pushcfunction(L, policy_resolve);
        lua_pushlightuserdata(L, g);
        if (sandbox_pcall(L, 1, 0) != LUA_OK) {
            policy_parse_error(lua_tostring(L, -1), f->names[f->n - 1], err);
            goto fail;
        }
    }
    lua_settop(L, 0);
    sandbox_set_phase(L, SANDBOX_IDLE);
    return L;
fail:
    sandbox_close(L);
    return NULL;
}

/* A complete generation with one reference (the caller's), or NULL with err. */
static struct policy_gen *policy_gen_load(const struct policy_files *f,
                                          const struct sandbox_limits *limits,
                                          struct policy_error *err) {
    struct policy_gen *g = calloc(1, sizeof *g);
    if (g == NULL) {
        policy_set_error(err, "-", 0, "out of memory");
        return NULL;
    }
    atomic_init(&g->refs, 1);
    pthread_mutex_init(&g->eval_lock, NULL);
    pthread_mutex_init(&g->tick_lock, NULL);
    pthread_mutex_init(&g->fail_lock, NULL);
    pthread_mutex_init(&g->auto_lock, NULL);
    /* The autoscaler's rules get a state of their own only when there are
     * any: a runaway rule then never delays a change or an alert rule. */
    if ((g->L = policy_state_load(f, limits, g, 1, err)) == NULL ||
        (g->L_tick = policy_state_load(f, limits, g, 0, err)) == NULL ||
        (g->nautoscale > 0 && (g->L_auto = policy_state_load(f, limits, g, 0, err)) == NULL)) {
        policy_gen_free(g);
        return NULL;
    }
    util_copy(g->sha256, sizeof g->sha256, f->digest);
    g->loaded_at_ms = util_now_ms();
    return g;
}

policy *policy_new(const char *dir, const struct sandbox_limits *limits) {
    policy *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    pthread_mutex_init(&p->lock, NULL);
    util_copy(p->dir, sizeof p->dir, dir);
    p->limits = *limits;
    return p;
}

void policy_free(policy *p) {
    if (p == NULL) return;
    policy_release(p->cur);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* Fill ev with an attempt over files (g: what loaded, NULL: refused). */
static void policy_event_of(struct policy_reload_event *ev, const struct policy_files *files,
                            const struct policy_gen *g, const struct policy_error *err) {
    if (ev == NULL) return;
    memset(ev, 0, sizeof *ev);
    ev->attempted = 1;
    ev->loaded = g != NULL;
    util_copy(ev->sha256, sizeof ev->sha256, g ? g->sha256 : files->n ? files->digest : "");
    for (size_t i = 0; i < files->n; i++) {
        size_t used = strlen(ev->files);
        snprintf(ev->files + used, sizeof ev->files - used, "%s%s", i ? ", " : "", files->names[i]);
    }
    if (err) ev->error = *err;
}

int policy_reload(policy *p, int force) { return policy_reload_with(p, force, NULL); }

int policy_reload_with(policy *p, int force, struct policy_reload_event *ev) {
    struct policy_files files;
    struct policy_error err;
    struct policy_gen *g = NULL, *old = NULL;
    int rc = -1;

    memset(&err, 0, sizeof err);
    if (ev) memset(ev, 0, sizeof *ev);
    if (policy_read_dir(p->dir, &files, &err) == 0) {
        pthread_mutex_lock(&p->lock);
        int same = strcmp(files.digest, p->last_digest) == 0;
        pthread_mutex_unlock(&p->lock);
        if (same && !force) {
            policy_files_free(&files);
            return 0;
        }
        g = policy_gen_load(&files, &p->limits, &err);
    } else if (!force) {
        /* Unreadable now: report once per distinct error, keep the policy. */
        pthread_mutex_lock(&p->lock);
        int same = p->has_error && strcmp(p->error.message, err.message) == 0 &&
                   strcmp(p->last_digest, "unreadable") == 0;
        pthread_mutex_unlock(&p->lock);
        if (same) return -1;
    }

    pthread_mutex_lock(&p->lock);
    util_copy(p->last_digest, sizeof p->last_digest, g || files.n ? files.digest : "unreadable");
    if (g) {
        old = p->cur;
        p->cur = g;
        p->has_error = 0;
        rc = 1;
    } else {
        p->has_error = 1;
        p->error = err;
        p->error_at_ms = util_now_ms();
    }
    pthread_mutex_unlock(&p->lock);

    if (g) {
        log_json(LOG_INFO, "policy loaded",
                 json_pack("{s:s, s:s, s:i, s:i}", "dir", p->dir, "sha256", g->sha256, "queues",
                           (int)g->nqueues, "alerts", (int)g->nalerts));
    } else {
        log_json(LOG_ERROR, "policy failed to load; previous policy stays in force",
                 json_pack("{s:s, s:i, s:s}", "file", err.file, "line", err.line, "error",
                           err.message));
    }
    policy_event_of(ev, &files, g, g ? NULL : &err);
    policy_release(old);             /* freed here, or by its last reader */
    policy_files_free(&files);
    return rc;
}

int policy_loaded(policy *p) {
    struct policy_gen *g = policy_acquire(p);
    policy_release(g);
    return g != NULL;
}

struct policy_gen *policy_acquire(policy *p) {
    pthread_mutex_lock(&p->lock);
    struct policy_gen *g = p->cur;
    if (g) atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&p->lock);
    return g;
}

void policy_release(struct policy_gen *g) {
    if (g && atomic_fetch_sub(&g->refs, 1) == 1) policy_gen_free(g);
}

size_t policy_gen_count(const struct policy_gen *g) { return g ? g->nqueues : 0; }

const char *policy_gen_queue(const struct policy_gen *g, size_t i, struct policy_bounds *out) {
    if (g == NULL || i >= g->nqueues) return NULL;
    if (out) *out = g->queues[i].b;
    return g->queues[i].name;
}

int policy_gen_bounds(const struct policy_gen *g, const char *queue, struct policy_bounds *out) {
    for (size_t i = 0; g && i < g->nqueues; i++) {
        if (strcmp(g->queues[i].name, queue) == 0) {
            *out = g->queues[i].b;
            return 0;
        }
    }
    return -1;
}

int policy_gen_has_validate(const struct policy_gen *g) { return g && g->has_validate; }

int policy_bounds(policy *p, const char *queue, struct policy_bounds *out) {
    struct policy_gen *g = policy_acquire(p);
    int rc = policy_gen_bounds(g, queue, out);
    policy_release(g);
    return rc;
}

size_t policy_queue_names(policy *p, char (*names)[UTIL_NAME_MAX + 1], size_t max) {
    struct policy_gen *g = policy_acquire(p);
    size_t n = policy_gen_count(g);
    for (size_t i = 0; i < n && i < max; i++) util_copy(names[i], sizeof names[0], g->queues[i].name);
    policy_release(g);
    return n;
}

struct policy_call {
    const struct policy_change *c;
    const struct policy_ctx *ctx;
};

/* Protected: builds the change and ctx tables, calls validate(change, ctx). */
static int policy_call_validate(lua_State *L) {
    const struct policy_call *call = lua_touserdata(L, 1);
    const struct policy_change *c = call->c;
    lua_getglobal(L, "validate");               /* fn */
    lua_createtable(L, 0, 8);                   /* fn, change */
    policy_set_str(L, "queue", c->queue);
    policy_set_int(L, "from", c->from);
    policy_set_int(L, "to", c->to);
    policy_set_str(L, "actor", c->actor);
    policy_set_str(L, "source", c->source);
    policy_set_str(L, "reason", c->reason);
    policy_set_bool(L, "confirm", c->confirm);
    policy_set_bool(L, "approved", c->approved);
    lua_newtable(L);                            /* fn, change, scopes */
    const char *scope;
    unsigned bit;
    for (size_t i = 0, k = 1; (scope = auth_scope_at(i, &bit)) != NULL; i++) {
        if (!(c->scopes & bit)) continue;
        lua_pushstring(L, scope);
        lua_rawseti(L, -2, (lua_Integer)k++);
    }
    lua_setfield(L, -2, "scopes");
    lua_createtable(L, 0, 3);                   /* fn, change, ctx */
    policy_set_str(L, "environment", call->ctx->environment);
    policy_set_int(L, "now", call->ctx->now_ms / 1000);
    policy_set_int(L, "recent_changes", call->ctx->recent_changes);
    lua_call(L, 2, 2);                          /* ok, msg */
    return 2;
}

int policy_gen_validate(struct policy_gen *g, const struct policy_change *c,
                        const struct policy_ctx *ctx, char *msg, size_t msglen) {
    struct policy_call call = {c, ctx};
    int rc = 1;
    if (g == NULL || !g->has_validate) return 1;
    pthread_mutex_lock(&g->eval_lock);
    lua_State *L = g->L;
    lua_settop(L, 0);
    lua_pushcfunction(L, policy_call_validate);
    lua_pushlightuserdata(L, &call);
    if (sandbox_pcall(L, 1, 2) != LUA_OK) {
        snprintf(msg, msglen, "validate() failed: %s", lua_tostring(L, -1));
        rc = -1;
    } else if (lua_isboolean(L, 1) && lua_toboolean(L, 1)) {
        rc = 1;
    } else if (lua_type(L, 1) == LUA_TSTRING && strcmp(lua_tostring(L, 1), "approval") == 0) {
        /* return "approval", "why": the change waits for a second person. */
        snprintf(msg, msglen, "%s",
                 lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2)
                                               : "the policy's validate() asks for approval");
        rc = POLICY_NEEDS_APPROVAL;
    } else {
        snprintf(msg, msglen, "%s",
                 lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2)
                 : lua_isboolean(L, 1)         ? "refused by the policy's validate()"
                                               : "validate() did not return true");
        rc = 0;
    }
    lua_settop(L, 0);
    pthread_mutex_unlock(&g->eval_lock);
    return rc;
}

int policy_validate(policy *p, const struct policy_change *c, const struct policy_ctx *ctx,
                    char *msg, size_t msglen) {
    struct policy_gen *g = policy_acquire(p);
    int rc = policy_gen_validate(g, c, ctx, msg, msglen);
    policy_release(g);
    return rc;
}

json_t *policy_bounds_json(const struct policy_bounds *b) {
    json_t *out = json_pack("{s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:s}", "default", (json_int_t)b->def,
                     "min", (json_int_t)b->min, "max", (json_int_t)b->max, "max_step",
                     (json_int_t)b->max_step, "cooldown_s", (json_int_t)b->cooldown_s,
                     "changes_per_hour",
                     b->changes_per_hour ? json_integer(b->changes_per_hour) : json_null(),
                     "confirm_above",
                     b->confirm_above >= 0 ? json_integer(b->confirm_above) : json_null(),
                     "layout", b->layout);
    if (out == NULL) return NULL;
    json_object_set_new(out, "approve_above",
                        b->approve_above >= 0 ? json_integer(b->approve_above) : json_null());
    json_object_set_new(out, "approval_ttl_s", json_integer(b->approval_ttl_s));
    return out;
}

void policy_bounds_window(const struct policy_bounds *b, int64_t current,
                          const struct policy_recent *recent, int64_t now_ms,
                          struct policy_window *out) {
    memset(out, 0, sizeof *out);
    out->reachable_min = current - b->max_step > b->min ? current - b->max_step : b->min;
    out->reachable_max = current + b->max_step < b->max ? current + b->max_step : b->max;
    if (b->cooldown_s > 0 && recent->last_applied_ms &&
        now_ms - recent->last_applied_ms < b->cooldown_s * 1000)
        out->cooldown_wait_ms = recent->last_applied_ms + b->cooldown_s * 1000 - now_ms;
    out->budget_left = -1;
    if (b->changes_per_hour > 0) {
        out->budget_left = b->changes_per_hour - recent->applied_last_hour;
        if (out->budget_left <= 0) {
            out->budget_left = 0;
            /* The oldest change of the hour leaves it then. */
            out->budget_wait_ms = recent->oldest_in_hour_ms + 3600000 - now_ms;
            if (out->budget_wait_ms < 1) out->budget_wait_ms = 1;
        }
    }
}

json_t *policy_window_json(const struct policy_bounds *b, const struct policy_window *w,
                           int64_t now_ms) {
    char ts[UTIL_TIME_MAX];
    int64_t wait = w->cooldown_wait_ms > w->budget_wait_ms ? w->cooldown_wait_ms : w->budget_wait_ms;
    return json_pack("{s:I, s:I, s:o, s:I, s:o, s:o, s:o}", "reachable_min",
                     (json_int_t)w->reachable_min, "reachable_max", (json_int_t)w->reachable_max,
                     "confirm_above",
                     b->confirm_above >= 0 ? json_integer(b->confirm_above) : json_null(),
                     "cooldown_remaining_s", (json_int_t)((w->cooldown_wait_ms + 999) / 1000),
                     "next_change_at",
                     wait > 0 ? json_string(util_format_time(now_ms + wait, ts)) : json_null(),
                     "budget_left", w->budget_left >= 0 ? json_integer(w->budget_left) : json_null(),
                     "changes_per_hour",
                     b->changes_per_hour > 0 ? json_integer(b->changes_per_hour) : json_null());
}

/* The failing rules of g (may be NULL) as [{"alert","queue","error","at"}]. */
static json_t *policy_failing_json(struct policy_gen *g) {
    char ts[UTIL_TIME_MAX];
    json_t *out = json_array();
    if (g == NULL) return out;
    pthread_mutex_lock(&g->fail_lock);
    for (size_t i = 0; i < g->nalerts; i++) {
        const struct policy_rule_failure *f = &g->failures[i];
        if (!f->failing) continue;
        json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s}", "alert", g->alerts[i].name,
                                             "queue", f->queue, "error", f->error, "at",
                                             util_format_time(f->at_ms, ts)));
    }
    pthread_mutex_unlock(&g->fail_lock);
    return out;
}

json_t *policy_banner_json(policy *p) {
    json_t *out = policy_status(p);
    /* The banner's context only: the lists of queues and rules are
     * elsewhere in the snapshot, and the directory is the host's business. */
    json_object_del(out, "dir");
    json_object_del(out, "queues");
    json_object_del(out, "alerts");
    json_object_del(out, "validate");
    return out;
}

json_t *policy_status(policy *p) {
    char ts[UTIL_TIME_MAX];
    json_t *out = json_object(), *files = json_array(), *queues = json_array(),
           *alerts = json_array(), *err = json_null();
    pthread_mutex_lock(&p->lock);
    struct policy_gen *g = p->cur;
    json_object_set_new(out, "dir", json_string(p->dir));
    json_object_set_new(out, "loaded_at",
                        g ? json_string(util_format_time(g->loaded_at_ms, ts)) : json_null());
    json_object_set_new(out, "sha256", g ? json_string(g->sha256) : json_null());
    json_object_set_new(out, "validate", json_boolean(g && g->has_validate));
    for (size_t i = 0; g && i < g->nfiles; i++) json_array_append_new(files, json_string(g->files[i]));
    for (size_t i = 0; g && i < g->nqueues; i++)
        json_array_append_new(queues, json_string(g->queues[i].name));
    for (size_t i = 0; g && i < g->nalerts; i++)
        json_array_append_new(alerts, json_pack("{s:s, s:s, s:I, s:s}", "name", g->alerts[i].name,
                                                "severity", g->alerts[i].severity, "for_s",
                                                (json_int_t)g->alerts[i].for_s, "kind",
                                                g->alerts[i].per_worker ? "worker" : "queue"));
    if (p->has_error) {
        json_decref(err);
        err = json_pack("{s:s, s:o, s:s, s:s}", "file", p->error.file, "line",
                        p->error.line > 0 ? json_integer(p->error.line) : json_null(), "message",
                        p->error.message, "at", util_format_time(p->error_at_ms, ts));
    }
    if (g) atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&p->lock);
    json_object_set_new(out, "failing_rules", policy_failing_json(g));
    policy_release(g);
    json_object_set_new(out, "files", files);
    json_object_set_new(out, "queues", queues);
    json_object_set_new(out, "alerts", alerts);
    json_object_set_new(out, "last_error", err ? err : json_null());
    return out;
}

int policy_check_dir(const char *dir, const struct sandbox_limits *limits,
                     struct policy_error *err) {
    struct policy_files files;
    struct policy_gen *g;
    memset(err, 0, sizeof *err);
    if (policy_read_dir(dir, &files, err) != 0) return -1;
    g = policy_gen_load(&files, limits, err);
    policy_files_free(&files);
    if (g == NULL) return -1;
    policy_release(g);
    return 0;
}
