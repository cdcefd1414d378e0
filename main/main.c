/* main/main.c — saed's entry point, the one file above both api/ (the HTTP
 * server) and daemon/ (config and the worker pool): it wires them together,
 * and neither includes the other.
 *
 * Start-up: parse config, create the data directory, open SQLite (migrating
 * it) and put jobs a crash left running back in the queue, give each worker
 * cores / workers threads (its jobs' own pools; OpenBLAS runs single-threaded
 * inside them, include/par_gemm.h), start the worker pool and the HTTP
 * server. Signals are blocked in every thread and taken synchronously here
 * with sigwait(): SIGTERM/SIGINT stop accepting requests, let running jobs
 * checkpoint and requeue, and exit 0. */
#include "api.h"
#include "config.h"
#include "files.h"
#include "log.h"
#include "store.h"
#include "worker.h"
#include <cblas.h>
#include <dirent.h>
#include <limits.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void openblas_set_num_threads(int n);

static int main_prepare_store(const char *db_path, char *err, size_t errlen)
{
    store *st = store_open(db_path, err, errlen);
    if (!st) return -1;
    int n = 0;
    if (store_requeue_running(st, &n) != STORE_OK) {
        snprintf(err, errlen, "cannot requeue interrupted jobs: %s", store_errmsg(st));
        store_close(st);
        return -1;
    }
    if (n) LOGI("requeued %d job(s) left running by the last stop; they resume from their checkpoints", n);
    store_close(st);
    return 0;
}

/* BLAS's threads exist by now (OpenBLAS starts them when loaded; single-threaded, it leaves them
 * idle), and nothing else does but this thread: they get the jobs' niceness; threads made later inherit this
 * thread's (the API's stay at 0, the workers lower their own). */
static void main_lower_blas_priority(int nice)
{
    DIR *d = nice > 0 ? opendir("/proc/self/task") : NULL;
    struct dirent *e;
    int n = 0;
    pid_t self = gettid();
    while (d && (e = readdir(d))) {
        long tid = strtol(e->d_name, NULL, 10);
        if (tid > 0 && tid != self && setpriority(PRIO_PROCESS, (id_t)tid, nice) == 0)
            n++;
    }
    if (d)
        closedir(d);
    if (nice > 0)
        LOGI("job threads run at nice %d (%d BLAS thread(s) lowered); --job-nice changes it", nice, n);
}

/* Makes BLAS single-threaded (every product runs inside a job's pool, or on the API thread that
 * asked for it); returns the threads of each worker's jobs' pools. */
static int main_size_threads(const saed_config *c)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = c->blas_threads ? c->blas_threads : (int)(cores / c->workers);
    if (threads < 1) threads = 1;
    openblas_set_num_threads(1);
    LOGI("%d worker(s) x %d thread(s) on %ld core(s)", c->workers, threads, cores);
    return threads;
}

static int main_wait_signal(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig = 0;
    sigwait(&set, &sig);
    return sig;
}

static int main_serve(const saed_config *c, const char *db_path, int threads)
{
    char err[512];
    worker_config wc = { .db_path = db_path, .data_dir = c->data_dir, .n_workers = c->workers,
                         .threads = threads, .nice = c->job_nice };
    api_config ac = { .host = c->host, .port = c->port, .db_path = db_path, .data_dir = c->data_dir,
                      .import_dir = c->import_dir[0] ? c->import_dir : NULL, .web_dir = c->web_dir,
                      .openapi_path = c->openapi_path, .max_body = c->max_body,
                      .max_upload = (uint64_t)c->max_upload_mb << 20,
                      .max_job_bytes = c->max_job_mb << 20, .version = SAED_VERSION,
                      .threads = c->api_threads, .allow_hosts = c->allow_hosts,
                      .token_file = c->token_file[0] ? c->token_file : NULL,
                      .max_connections = c->max_connections, .max_client_connections = c->max_client_connections,
                      .idle_timeout_s = c->idle_timeout_s, .max_reply_bytes = c->max_reply_mb << 20 };
    worker_pool *pool = worker_pool_start(&wc, err, sizeof err);
    if (!pool) { LOGE("%s", err); return 1; }
    api_server *api = api_start(&ac, err, sizeof err);
    if (!api) { LOGE("%s", err); worker_pool_stop(pool); return 1; }
    LOGI("saed %s listening on http://%s:%d/ (data in %s)", SAED_VERSION, c->host, api_port(api), c->data_dir);
    LOGI("BLAS: %s (kernels for %s; OPENBLAS_CORETYPE chooses others when the CPU is taken for an older one)",
         openblas_get_config(), openblas_get_corename());
    int sig = main_wait_signal();
    LOGI("%s: stopping; running jobs checkpoint and go back to the queue", strsignal(sig));
    api_stop(api);
    worker_pool_stop(pool);
    LOGI("stopped cleanly");
    return 0;
}

int main(int argc, char **argv)
{
    saed_config cfg;
    char out[4096], err[PATH_MAX + 512], db_path[PATH_MAX + 16];
    int rc = config_parse(&cfg, argc, argv, out, sizeof out, err, sizeof err);
    if (rc == 1) { fputs(out, stdout); return 0; }
    if (rc < 0) { fprintf(stderr, "saed: %s\n", err); return 2; }
    log_threshold = cfg.level;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits this */

    if (files_mkdirs(cfg.data_dir, err, sizeof err)) { LOGE("data directory: %s", err); return 1; }
    snprintf(db_path, sizeof db_path, "%s/saed.db", cfg.data_dir);
    if (main_prepare_store(db_path, err, sizeof err)) { LOGE("database %s: %s", db_path, err); return 1; }
    int threads = main_size_threads(&cfg);
    main_lower_blas_priority(cfg.job_nice);
    return main_serve(&cfg, db_path, threads);
}
