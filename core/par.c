/* par — a fork-join pool (design: include/par.h).
 *
 * One mutex and two condition variables: `go` wakes the helpers for a new
 * generation, `done` wakes the caller when the last part of it finished. */
#include "par.h"
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>

struct par_pool {
    int threads;            /* counting the caller */
    pthread_t *helpers;     /* (threads - 1) */
    int started;            /* helpers actually running */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long gen;      /* incremented by each par_run */
    int pending;            /* helper parts of the current generation not yet finished */
    int quit;
    par_fn fn;
    void *ctx;
};

typedef struct {
    par_pool *p;
    int t;
} par_arg;

static void *par_helper(void *arg)
{
    par_arg a = *(par_arg *)arg;
    free(arg);
    par_pool *p = a.p;
    unsigned long seen = 0;
    assert(p && 1 <= a.t && a.t < p->threads);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->gen == seen)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->quit)
            break;
        seen = p->gen;
        par_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mu);
        fn(ctx, a.t, p->threads);
        pthread_mutex_lock(&p->mu);
        assert(p->pending > 0 && p->gen == seen); /* the caller waits for this part before the next job */
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

par_pool *par_create(int threads)
{
    assert(threads >= 1);
    par_pool *p = calloc(1, sizeof *p);
    if (!p || threads < 1) {
        free(p);
        return NULL;
    }
    p->threads = threads;
    p->helpers = calloc((size_t)threads, sizeof *p->helpers);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int t = 1; p->helpers && t < threads; t++) {
        par_arg *a = malloc(sizeof *a);
        if (!a)
            break;
        *a = (par_arg){p, t};
        if (pthread_create(&p->helpers[t - 1], NULL, par_helper, a) != 0) {
            free(a);
            break;
        }
        p->started++;
    }
    if (!p->helpers || p->started != threads - 1) {
        par_free(p);
        return NULL;
    }
    return p;
}

void par_free(par_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int k = 0; k < p->started; k++)
        pthread_join(p->helpers[k], NULL);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->helpers);
    free(p);
}

int par_threads(const par_pool *p) { return p ? p->threads : 1; }

void par_run(par_pool *p, par_fn fn, void *ctx)
{
    assert(fn);
    if (!p || p->threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    assert(p->threads >= 2 && p->started == p->threads - 1);
    pthread_mutex_lock(&p->mu);
    assert(p->pending == 0 && !p->quit); /* not reentrant; not after par_free */
    p->fn = fn;
    p->ctx = ctx;
    p->pending = p->threads - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->threads);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void par_range(size_t n, size_t align, int t, int T, size_t *lo, size_t *hi)
{
    assert(lo && hi && align >= 1 && T >= 1 && 0 <= t && t < T);
    size_t pieces = (n + align - 1) / align;
    size_t a = pieces * (size_t)t / (size_t)T, b = pieces * (size_t)(t + 1) / (size_t)T;
    *lo = a * align < n ? a * align : n;
    *hi = b * align < n ? b * align : n;
    assert(*lo <= *hi && *hi <= n);
}
