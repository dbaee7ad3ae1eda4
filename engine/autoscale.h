/* autoscale.h — the autoscaler: the policies' `autoscale "queue" { ... }`
 * rules, evaluated on the leader, their proposals applied through
 * scaling_set with every safeguard, and what each rule last did.
 *
 * Decisions. A rule's proposal is clamped into the queue's bounds; it never
 * goes above confirm_above or approve_above unless the rule says
 * allow_above_confirm (then it is sent with confirm, and above
 * approve_above it waits for approval like any change); a move larger than
 * max_step is stepped (current ± max_step); a move down applies the largest
 * proposal of the last scale_down_window_s (so the value does not flap),
 * a move up applies at once. A rule is held after a change not made by the
 * autoscaler (for hold_after_manual_s) and while an operator's hold lasts:
 * it is still evaluated and its proposal shown, but nothing is applied;
 * neither is anything in dry run. A refusal is audited by scaling_set the
 * first time; the same refusal (same value, same error code) repeated is
 * not audited again. These are pure functions of their arguments and the
 * clock given (autoscale_plan, autoscale_held, autoscale_quiet_code), so
 * the unit tests drive them without a thread.
 *
 * The thread. One thread of its own wakes every AUTOSCALE_TICK_MS; on the
 * leader it evaluates each rule whose time has come, in the policy
 * generation's autoscale Lua state (policy_gen_autoscale_run: the sandbox
 * and budget of validate), holding no lock of its own, of the store or of
 * the policy host while Lua runs or a change is judged. A rule that raises,
 * runs away or returns something else than an integer is an "error"
 * decision, logged at most once a minute while it keeps failing, and
 * keeps its schedule. After each evaluation that changed what a rule shows
 * the leader writes it to the store (autoscale_state), so followers answer
 * GET /api/v1/autoscalers as the leader would.
 *
 * Locks: autoscale.lock (a leaf) guards the rules' states: held to copy or
 * update them, never over Lua, the store or scaling_set.
 * Uses scaling, store, policy, health, history, leader. */
#ifndef SLUICE_AUTOSCALE_H
#define SLUICE_AUTOSCALE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "policy.h"
#include "store.h"

#define AUTOSCALE_TICK_MS 250            /* how often the thread looks for due rules */
#define AUTOSCALE_DECISIONS 20           /* kept per rule, shown and given to ctx */
#define AUTOSCALE_WINDOW_MAX 512         /* proposals kept for the scale-down window */
#define AUTOSCALE_HISTORY_MS (15 * 60000LL)   /* ctx.history: the last 15 min */
#define AUTOSCALE_HISTORY_MAX 100
#define AUTOSCALE_ERROR_LOG_MS 60000     /* a failing rule is logged at most this often */
#define AUTOSCALE_PERSIST_MS 30000       /* state rewritten at least this often */
#define AUTOSCALE_HOLD_MAX_S 604800      /* an explicit hold: at most 7 days */

enum autoscale_outcome {
    AUTOSCALE_NO_OPINION,                /* the rule returned nil */
    AUTOSCALE_UNCHANGED,                 /* the proposal is the value in force */
    AUTOSCALE_APPLY,                     /* a plan: to be sent to scaling_set */
    AUTOSCALE_APPLIED,
    AUTOSCALE_REJECTED,                  /* scaling_set refused it (error_code) */
    AUTOSCALE_HELD,
    AUTOSCALE_STABILIZING,               /* a move down waits for the window */
    AUTOSCALE_DRY_RUN,
    AUTOSCALE_ERROR,                     /* the rule failed (message) */
};

/* "no_opinion", "unchanged", "apply", "applied", "rejected", "held",
 * "stabilizing", "dry_run", "error". */
const char *autoscale_outcome_name(enum autoscale_outcome o);

/* The proposals of the last scale-down window, as a monotonic queue: only
 * proposals that may still be the largest are kept (decreasing values,
 * oldest first), at most AUTOSCALE_WINDOW_MAX (past that, the oldest go). */
struct autoscale_window {
    int64_t at[AUTOSCALE_WINDOW_MAX], value[AUTOSCALE_WINDOW_MAX];
    size_t head, n;
};

void autoscale_window_add(struct autoscale_window *w, int64_t at_ms, int64_t value);

/* The largest proposal made after now_ms - window_ms (those older are
 * dropped); fallback when there is none. */
int64_t autoscale_window_max(struct autoscale_window *w, int64_t now_ms, int64_t window_ms,
                             int64_t fallback);

/* What holds a rule at a time: an operator's hold, or a change not made by
 * the autoscaler less than hold_after_manual_s ago (unless an operator held
 * or released the rule after it); the one ending last. */
struct autoscale_hold_view {
    int held;
    const char *kind;                    /* "hold" | "manual_change" */
    char by[STORE_ACTOR_MAX];
    char reason[STORE_REASON_MAX];
    int64_t until_ms;
};

/* Fill *out for rule a of the queue whose stored row is t (version 0:
 * never changed) and whose explicit hold is h (NULL: none) at now_ms.
 * Returns out->held. */
int autoscale_held(const struct policy_autoscale *a, const struct store_target *t,
                   const struct store_autoscale_hold *h, int64_t now_ms,
                   struct autoscale_hold_view *out);

/* One evaluation's plan, from the rule's answer and the value in force. */
struct autoscale_plan_in {
    int64_t now_ms;
    int64_t current;
    int has_proposal;
    int64_t proposal;
    const struct policy_bounds *b;
    const struct policy_autoscale *a;
    int held;
};

struct autoscale_plan {
    enum autoscale_outcome outcome;      /* NO_OPINION, UNCHANGED, APPLY, HELD, STABILIZING, DRY_RUN */
    int64_t to;                          /* what would be applied (current when nothing) */
    int confirm;                         /* above confirm_above, allowed by the rule */
    char note[200];                      /* stepped, capped, stabilising: why to is not the proposal */
};

/* Plan an evaluation at in->now_ms; records the proposal in w. */
void autoscale_plan(const struct autoscale_plan_in *in, struct autoscale_window *w,
                    struct autoscale_plan *out);

/* The last refusal of a rule, to audit an unchanged repeat only once. */
struct autoscale_refusal {
    int has;
    int64_t to;
    char code[STORE_CODE_MAX];
};

/* The error code scaling_set should not audit again when the rule now
 * proposes to (its last refusal was of that value), or NULL. */
const char *autoscale_quiet_code(const struct autoscale_refusal *last, int64_t to);

/* Remember what a proposal of to did: refused with code (NULL: not
 * refused, which forgets the last refusal). */
void autoscale_note_refusal(struct autoscale_refusal *last, int64_t to, const char *code);

/* ---- the thread ---------------------------------------------------------------- */

struct autoscale;

/* Start the thread for app (store, policy, leader, health, history).
 * Returns NULL with err when out of memory or the thread cannot start. */
struct autoscale *autoscale_start(struct app *app, char *err, size_t errlen);

/* Stop the thread (an evaluation in progress finishes first) and free.
 * NULL: no-op. */
void autoscale_stop(struct autoscale *as);

/* Evaluate every rule now (a hold was set or released). NULL: no-op. */
void autoscale_kick(struct autoscale *as);

/* What this process knows of queue's rule, as api.md's part of an
 * autoscaler item: {"decisions": [newest first], "last_decision",
 * "error", "next_evaluation_at"}; NULL when this process has not
 * evaluated it (a follower: read autoscale_state from the store). New ref. */
json_t *autoscale_state_json(struct autoscale *as, const char *queue);

#endif
