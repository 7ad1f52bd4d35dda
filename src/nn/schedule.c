/* Learning-rate schedules, as functions of the epoch (or step) e:
 *   constant: α(e) = α₀
 *   step:     α(e) = α₀·γ^⌊e/step_size⌋               (PyTorch StepLR)
 *   cosine:   α(e) = α_min + (α₀ − α_min)·(1 + cos(π·min(e, T)/T))/2
 *             (CosineAnnealingLR without restarts: α₀ at e = 0, α_min from
 *             e = T on).
 * A schedule that cannot be evaluated (step_size <= 0, T <= 0) gives α₀, so
 * a bad schedule degrades to a constant rate rather than to 0 or NaN;
 * negative epochs count as 0. */
#include "tapegrad_nn.h"

#include <math.h>

static double step_lr(const tg_schedule *s, int e) {
    if (s->step_size <= 0) return s->base_lr;
    return s->base_lr * pow(s->gamma, (double)(e / s->step_size)); /* e >= 0: / floors */
}

static double cosine_lr(const tg_schedule *s, int e) {
    if (s->total <= 0) return s->base_lr;
    double frac = (double)(e < s->total ? e : s->total) / (double)s->total;
    const double pi = 3.14159265358979323846;
    return s->min_lr + (s->base_lr - s->min_lr) * (1.0 + cos(pi * frac)) / 2.0;
}

double tg_schedule_lr(const tg_schedule *s, int e) {
    if (!s) return 0.0;
    if (e < 0) e = 0;
    switch (s->kind) {
    case TG_SCHED_STEP:
        return step_lr(s, e);
    case TG_SCHED_COSINE:
        return cosine_lr(s, e);
    case TG_SCHED_CONSTANT:
        break;
    }
    return s->base_lr;
}
