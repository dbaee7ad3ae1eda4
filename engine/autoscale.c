/* autoscale.c — the autoscaler's decisions as pure functions of their
 * arguments and the clock given: the scale-down window, holds, the plan of
 * one evaluation and the de-duplication of refusals. The thread that runs
 * the rules and applies the plans is autoscale_run.c. */
#include "autoscale.h"

#include <stdio.h>
#include <string.h>

const char *autoscale_outcome_name(enum autoscale_outcome o) {
    static const char *const names[] = {"no_opinion", "unchanged", "apply", "applied", "rejected",
                                        "held", "stabilizing", "dry_run", "error"};
    return (size_t)o < sizeof names / sizeof names[0] ? names[o] : "error";
}

/* ---- the scale-down window ------------------------------------------------------- */

void autoscale_window_add(struct autoscale_window *w, int64_t at_ms, int64_t value) {
    /* A newer proposal at least as large makes the older smaller ones
     * irrelevant: they can never be the largest again. */
    while (w->n > 0) {
        size_t last = (w->head + w->n - 1) % AUTOSCALE_WINDOW_MAX;
        if (w->value[last] > value) break;
        w->n--;
    }
    if (w->n == AUTOSCALE_WINDOW_MAX) {          /* the oldest goes */
        w->head = (w->head + 1) % AUTOSCALE_WINDOW_MAX;
        w->n--;
    }
    size_t slot = (w->head + w->n) % AUTOSCALE_WINDOW_MAX;
    w->at[slot] = at_ms;
    w->value[slot] = value;
    w->n++;
}

int64_t autoscale_window_max(struct autoscale_window *w, int64_t now_ms, int64_t window_ms,
                             int64_t fallback) {
    while (w->n > 0 && w->at[w->head] <= now_ms - window_ms) {
        w->head = (w->head + 1) % AUTOSCALE_WINDOW_MAX;
        w->n--;
    }
    return w->n > 0 ? w->value[w->head] : fallback;
}

/* ---- holds ----------------------------------------------------------------------- */

static int autoscale_by_autoscaler(const char *actor) {
    return strncmp(actor, "autoscaler:", 11) == 0;
}

int autoscale_held(const struct policy_autoscale *a, const struct store_target *t,
                   const struct store_autoscale_hold *h, int64_t now_ms,
                   struct autoscale_hold_view *out) {
    memset(out, 0, sizeof *out);
    if (h && h->until_ms > now_ms) {
        out->held = 1;
        out->kind = "hold";
        out->until_ms = h->until_ms;
        util_copy(out->by, sizeof out->by, h->by);
        util_copy(out->reason, sizeof out->reason, h->reason);
    }
    /* An operator's hold or release made after the change is the latest
     * word on the rule: the change holds it no more. */
    if (t && t->version > 0 && a->hold_after_manual_s > 0 && !autoscale_by_autoscaler(t->updated_by) &&
        (h == NULL || h->created_ms < t->updated_at_ms)) {
        int64_t until = t->updated_at_ms + a->hold_after_manual_s * 1000;
        if (until > now_ms && until > out->until_ms) {
            out->held = 1;
            out->kind = "manual_change";
            out->until_ms = until;
            util_copy(out->by, sizeof out->by, t->updated_by);
            util_copy(out->reason, sizeof out->reason, t->reason);
        }
    }
    return out->held;
}

/* ---- one evaluation's plan ------------------------------------------------------- */

/* The highest value automation may set without a person: below both
 * thresholds; -1 when neither is set or the rule may go above them. */
static int64_t autoscale_cap(const struct policy_bounds *b, const struct policy_autoscale *a) {
    int64_t cap = -1;
    if (a->allow_above_confirm) return -1;
    if (b->confirm_above >= 0) cap = b->confirm_above;
    if (b->approve_above >= 0 && (cap < 0 || b->approve_above < cap)) cap = b->approve_above;
    return cap;
}

static void autoscale_note(struct autoscale_plan *out, const char *fmt, long long a, long long b) {
    size_t used = strlen(out->note);
    if (used > 0 && used + 2 < sizeof out->note) {
        memcpy(out->note + used, "; ", 3);
        used += 2;
    }
    snprintf(out->note + used, sizeof out->note - used, fmt, a, b);
}

void autoscale_plan(const struct autoscale_plan_in *in, struct autoscale_window *w,
                    struct autoscale_plan *out) {
    const struct policy_bounds *b = in->b;
    int64_t cur = in->current, cap = autoscale_cap(b, in->a);
    memset(out, 0, sizeof *out);
    out->to = cur;
    if (!in->has_proposal) {
        out->outcome = AUTOSCALE_NO_OPINION;
        return;
    }
    int64_t to = in->proposal < b->min ? b->min : in->proposal > b->max ? b->max : in->proposal;
    if (to != in->proposal) autoscale_note(out, "%lld is outside the bounds: %lld", (long long)in->proposal, (long long)to);
    autoscale_window_add(w, in->now_ms, to);
    if (to < cur) {
        int64_t largest = autoscale_window_max(w, in->now_ms, in->a->scale_down_window_s * 1000, to);
        if (largest >= cur) {
            out->outcome = in->held ? AUTOSCALE_HELD : AUTOSCALE_STABILIZING;
            autoscale_note(out, "scale-down waits: %lld was proposed in the last %llds",
                           (long long)largest, (long long)in->a->scale_down_window_s);
            return;
        }
        if (largest > to) {
            autoscale_note(out, "largest proposal of the window: %lld (window %llds)",
                           (long long)largest, (long long)in->a->scale_down_window_s);
            to = largest;
        }
    }
    if (cap >= 0 && to > cap && to > cur) {
        int64_t capped = cur > cap ? cur : cap;
        autoscale_note(out, "capped at %lld: automation stays at or below %lld without allow_above_confirm",
                       (long long)capped, (long long)cap);
        to = capped;
    }
    if (to > cur + b->max_step || to < cur - b->max_step) {
        int64_t stepped = to > cur ? cur + b->max_step : cur - b->max_step;
        autoscale_note(out, "stepped to %lld (max_step %lld)", (long long)stepped,
                       (long long)b->max_step);
        to = stepped;
    }
    out->to = to;
    out->confirm = in->a->allow_above_confirm && b->confirm_above >= 0 && to > b->confirm_above;
    if (in->held) out->outcome = AUTOSCALE_HELD;
    else if (to == cur) out->outcome = AUTOSCALE_UNCHANGED;
    else if (in->a->dry_run) out->outcome = AUTOSCALE_DRY_RUN;
    else out->outcome = AUTOSCALE_APPLY;
}

/* ---- refusals ---------------------------------------------------------------------- */

const char *autoscale_quiet_code(const struct autoscale_refusal *last, int64_t to) {
    return last->has && last->to == to ? last->code : NULL;
}

void autoscale_note_refusal(struct autoscale_refusal *last, int64_t to, const char *code) {
    memset(last, 0, sizeof *last);
    if (code == NULL) return;
    last->has = 1;
    last->to = to;
    util_copy(last->code, sizeof last->code, code);
}
