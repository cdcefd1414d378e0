/* worker — the fixed pool of job threads (see include/worker.h).
 *
 * One mutex + condition variable guard the stop flag so an idle worker wakes
 * at once on shutdown; a busy worker sees the atomic flag between training
 * steps, checkpoints and requeues its job. Each worker thread lowers its own
 * priority to cfg.nice at start, so the threads it creates (the trainer's
 * pool) inherit it, and the API's threads win the CPU whenever they want it. */
#include "worker.h"
#include "jobrun.h"
#include "log.h"
#include "store.h"
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

struct worker_pool {
    worker_config cfg;
    pthread_t *threads;      /* (n_workers) */
    int n_started;
    atomic_int stopping;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* Sleeps up to ms, returning early when the pool is stopping. */
static void worker_idle(worker_pool *p, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += (long)ms * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&p->mu);
    while (!atomic_load(&p->stopping)) {
        if (pthread_cond_timedwait(&p->cv, &p->mu, &until) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&p->mu);
}

/* What the runner reported about its run (runners never log; this is the top level that does). */
static void worker_log_report(const store_job *job, const jobrun_report *rep)
{
    if (rep->note[0]) LOGI("job %lld: %s", (long long)job->id, rep->note);
    if (rep->checkpoints)
        LOGD("job %lld: %d checkpoint(s), the last at step %d", (long long)job->id, rep->checkpoints,
             rep->checkpoint_step);
    if (rep->n_warnings == 1) LOGW("job %lld: %s", (long long)job->id, rep->warning);
    else if (rep->n_warnings > 1)
        LOGW("job %lld: %s (the last of %d warnings)", (long long)job->id, rep->warning, rep->n_warnings);
}

static void worker_run_one(worker_pool *p, store *st, store_job *job)
{
    jobrun_report rep = { 0 };
    jobrun_ctx ctx = { .st = st, .data_dir = p->cfg.data_dir, .job = job, .stopping = &p->stopping,
                       .threads = p->cfg.threads, .report = &rep };
    LOGI("job %lld (%s) started, attempt %d", (long long)job->id, job->type, job->attempts);
    jobrun_dispatch(&ctx);
    worker_log_report(job, &rep);
    store_job done;
    if (store_job_get(st, job->id, &done) == STORE_OK) {
        LOGI("job %lld %s%s%s", (long long)job->id, store_job_state_name(done.state),
             done.error ? ": " : "", done.error ? done.error : "");
        store_job_clear(&done);
    }
}

static void *worker_main(void *arg)
{
    worker_pool *p = arg;
    char err[512];
    if (p->cfg.nice > 0 && setpriority(PRIO_PROCESS, (id_t)gettid(), p->cfg.nice) != 0)
        LOGW("worker cannot lower its priority (nice %d): %s", p->cfg.nice, strerror(errno));
    store *st = store_open(p->cfg.db_path, err, sizeof err);
    if (!st) { LOGE("worker cannot open the database: %s", err); return NULL; }
    while (!atomic_load(&p->stopping)) {
        store_job job;
        int rc = store_job_claim(st, &job);
        if (rc == STORE_OK) {
            worker_run_one(p, st, &job);
            store_job_clear(&job);
        } else {
            if (rc != STORE_NOTFOUND) LOGW("claiming a job failed: %s", store_errmsg(st));
            worker_idle(p, WORKER_POLL_MS);
        }
    }
    store_close(st);
    return NULL;
}

worker_pool *worker_pool_start(const worker_config *cfg, char *err, size_t errlen)
{
    worker_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->threads = calloc((size_t)cfg->n_workers, sizeof *p->threads))) {
        free(p);
        snprintf(err, errlen, "out of memory starting the worker pool");
        return NULL;
    }
    p->cfg = *cfg;
    atomic_init(&p->stopping, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (; p->n_started < cfg->n_workers; p->n_started++) {
        int rc = pthread_create(&p->threads[p->n_started], NULL, worker_main, p);
        if (rc) {
            snprintf(err, errlen, "cannot start worker thread: %s", strerror(rc));
            worker_pool_stop(p);
            return NULL;
        }
    }
    return p;
}

void worker_pool_stop(worker_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stopping, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}
