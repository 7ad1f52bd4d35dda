/* tapegrad's one threading layer: a small pool that splits an op's work
 * (a matrix product, an optimizer pass, a batch fill) into parts, the
 * caller running part 0 and worker k part k (k + n, ... when there are more
 * parts than the n threads). With the pool on,
 * OpenBLAS runs on one thread, so two pools never spin against each other.
 *
 * Why a pool of our own: OpenBLAS's idle workers wait in sched_yield, and
 * on a virtual machine a system call is an exit to the hypervisor; the
 * tape's work between two products (activations, the update) ran beside
 * that. Our workers wait by spinning on a counter with PAUSE, which costs
 * no system call, for TG_SPIN_NS after their last job (the gaps inside and
 * between training steps are shorter), then sleep on a condition variable.
 *
 * One caller at a time: the pool is taken with a flag. A second thread
 * that finds it busy (two tapes used concurrently, or a part that itself
 * calls tg_parallel) runs every part itself, in order. Each part computes
 * the same numbers whoever runs it, so results depend on the thread count
 * only, never on who won the pool. */
#define _GNU_SOURCE
#include "internal.h"

#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#define TG_SPIN_NS      2000000L /* 2 ms: longer than any gap of a training loop */
#define TG_WAIT_SPIN_NS 50000L   /* 50 µs: longer than a part's usual lag */

typedef struct pool {
    int n; /* threads in all, the caller included */
    pthread_t th[TG_MAX_THREADS];
    _Atomic unsigned gen; /* bumped once per job */
    _Atomic int pending;  /* workers yet to finish the current job */
    _Atomic int sleepers; /* workers waiting on cv */
    _Atomic int stop;
    tg_task_fn fn; /* the current job, written before gen is bumped */
    void *ctx;
    int parts;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} pool;

static pool P = {.n = 1, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
static atomic_flag busy = ATOMIC_FLAG_INIT; /* held while a job runs or the pool changes */
static unsigned gen_at_start;               /* P.gen when the workers were started */
static _Atomic int managed; /* tg_set_threads was called: OpenBLAS is on one thread */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Wait until gen differs from seen: spin first, then sleep. After
 * TG_WAIT_SPIN_NS the spinning worker also yields now and then: with more
 * threads than free cores, a thread that has a part to run may be waiting
 * for this core (bench_pool, 3 threads on 2 cores: 2018 µs per empty job
 * without the yield, 90 µs with it; 2 threads: 0.6 µs either way). */
static unsigned wait_job(unsigned seen) {
    long long start = now_ns();
    for (unsigned i = 1;; i++) {
        unsigned g = atomic_load_explicit(&P.gen, memory_order_acquire);
        if (g != seen || atomic_load(&P.stop)) return g;
        cpu_relax();
        if ((i & 255) == 0) {
            long long t = now_ns();
            if (t - start > TG_SPIN_NS) break;
            if (t - start > TG_WAIT_SPIN_NS) sched_yield();
        }
    }
    /* Sleep. sleepers is raised before gen is read again (both seq_cst), and
     * tg_parallel bumps gen before it reads sleepers: one of the two sees
     * the other, so a wake-up is never lost. */
    pthread_mutex_lock(&P.mu);
    atomic_fetch_add(&P.sleepers, 1);
    unsigned g;
    while ((g = atomic_load(&P.gen)) == seen && !atomic_load(&P.stop))
        pthread_cond_wait(&P.cv, &P.mu);
    atomic_fetch_sub(&P.sleepers, 1);
    pthread_mutex_unlock(&P.mu);
    return g;
}

/* Thread `me` runs parts me, me + n, me + 2n... Assigned, not claimed: the
 * same thread then always touches the same rows of a buffer from one step
 * to the next (the update, the weight gradients), and those rows stay in
 * its core's cache. Moving a written cache line to another core is slow
 * (on the VM measured here a mismatched split made an update 4x slower). */
static void run_mine(int me) {
    for (int p = me; p < P.parts; p += P.n)
        P.fn(P.ctx, p, P.parts);
}

static void *worker(void *arg) {
    int me = (int)(intptr_t)arg;
    /* Not atomic_load(&P.gen): a job published before this thread first
     * runs would then look already done. gen cannot move while the pool is
     * being built (tg_set_threads holds it). */
    unsigned seen = gen_at_start;
    for (;;) {
        seen = wait_job(seen);
        if (atomic_load(&P.stop)) return NULL;
        run_mine(me);
        atomic_fetch_sub_explicit(&P.pending, 1, memory_order_release);
    }
}

static void run_serial(tg_task_fn fn, void *ctx, int parts) {
    for (int p = 0; p < parts; p++)
        fn(ctx, p, parts);
}

void tg_parallel(tg_task_fn fn, void *ctx, int parts) {
    if (parts <= 1 || P.n <= 1 || atomic_flag_test_and_set_explicit(&busy, memory_order_acquire)) {
        run_serial(fn, ctx, parts);
        return;
    }
    P.fn = fn, P.ctx = ctx, P.parts = parts;
    atomic_store(&P.pending, P.n - 1);
    atomic_fetch_add(&P.gen, 1); /* seq_cst: publishes the job */
    if (atomic_load(&P.sleepers) > 0) {
        pthread_mutex_lock(&P.mu);
        pthread_cond_broadcast(&P.cv);
        pthread_mutex_unlock(&P.mu);
    }
    run_mine(0);
    /* A worker with a part still to run may have been descheduled (a loaded
     * machine): after TG_WAIT_SPIN_NS of spinning, yield the core to it. */
    long long until = 0;
    for (unsigned i = 1; atomic_load_explicit(&P.pending, memory_order_acquire) > 0; i++) {
        cpu_relax();
        if ((i & 255) == 0) {
            long long t = now_ns();
            if (!until) until = t + TG_WAIT_SPIN_NS;
            if (t > until) sched_yield();
        }
    }
    atomic_flag_clear_explicit(&busy, memory_order_release);
}

int tg_get_threads(void) {
    return P.n;
}

static void stop_workers(void) {
    atomic_store(&P.stop, 1);
    pthread_mutex_lock(&P.mu);
    pthread_cond_broadcast(&P.cv);
    pthread_mutex_unlock(&P.mu);
    for (int k = 1; k < P.n; k++)
        pthread_join(P.th[k], NULL);
    atomic_store(&P.stop, 0);
    P.n = 1;
}

/* After fork() the child has only the forking thread: the pool's workers
 * are gone, so the child runs on one thread (OpenBLAS stays on one). */
static void after_fork_child(void) {
    P.n = 1;
    atomic_store(&P.sleepers, 0);
    atomic_flag_clear(&busy);
    pthread_mutex_init(&P.mu, NULL);
    pthread_cond_init(&P.cv, NULL);
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void register_fork(void) {
    pthread_atfork(NULL, NULL, after_fork_child);
}

tg_status tg_set_threads(int n) {
    pthread_once(&fork_once, register_fork);
    if (n < 1 || n > TG_MAX_THREADS)
        return tg_fail(TG_ERR_ARG, "set_threads: %d threads, need 1..%d", n, TG_MAX_THREADS);
    while (atomic_flag_test_and_set_explicit(&busy, memory_order_acquire))
        sched_yield(); /* another thread is running a job: let it finish */
    tg_status s = TG_OK;
    if (n != P.n) {
        stop_workers();
        gen_at_start = atomic_load(&P.gen);
        for (int k = 1; k < n; k++) {
            if (pthread_create(&P.th[k], NULL, worker, (void *)(intptr_t)k) != 0) {
                s = tg_fail(TG_ERR_NOMEM, "set_threads: cannot start thread %d of %d", k + 1, n);
                break;
            }
            P.n = k + 1;
        }
    }
    openblas_set_num_threads(1); /* one threading layer: ours */
    atomic_store(&managed, 1);
    atomic_flag_clear_explicit(&busy, memory_order_release);
    return s;
}

int tg_threads_managed(void) {
    return atomic_load_explicit(&managed, memory_order_relaxed);
}

void tg_part_range(size_t n, int part, int parts, size_t align, size_t *lo, size_t *hi) {
    size_t blocks = (n + align - 1) / align; /* whole aligned blocks, shared out evenly */
    size_t b0 = blocks * (size_t)part / (size_t)parts,
           b1 = blocks * (size_t)(part + 1) / (size_t)parts;
    *lo = b0 * align < n ? b0 * align : n;
    *hi = b1 * align < n ? b1 * align : n;
}

/* ---------------------------------------------------------------- scratch */

/* One growing buffer per slot and calling thread, freed when the thread exits (a
 * key destructor; the main thread's at exit, still reachable). Per thread,
 * not per pool: a caller that found the pool busy runs all parts itself
 * and needs its own. */
typedef struct scratch {
    void *p[TG_SCRATCH_SLOTS];
    size_t cap[TG_SCRATCH_SLOTS];
} scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_ok;

static void scratch_free(void *v) {
    scratch *s = v;
    for (int i = 0; i < TG_SCRATCH_SLOTS; i++)
        tg_free(s->p[i]);
    tg_free(s);
}

static void scratch_init(void) {
    scratch_ok = pthread_key_create(&scratch_key, scratch_free) == 0;
}

void *tg_scratch(int slot, size_t bytes) {
    pthread_once(&scratch_once, scratch_init);
    if (!scratch_ok || slot < 0 || slot >= TG_SCRATCH_SLOTS) return NULL;
    scratch *s = pthread_getspecific(scratch_key);
    if (!s) {
        if (!(s = tg_calloc(1, sizeof *s))) return NULL;
        if (pthread_setspecific(scratch_key, s)) {
            tg_free(s);
            return NULL;
        }
    }
    if (bytes > s->cap[slot]) { /* scratch: nothing to keep, and tg_malloc aligns */
        tg_free(s->p[slot]);
        s->p[slot] = tg_malloc(bytes);
        s->cap[slot] = s->p[slot] ? bytes : 0;
        if (!s->p[slot]) return NULL;
    }
    return s->p[slot];
}
