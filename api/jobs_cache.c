/* api/jobs_cache.c — GET /v1/jobs/{id} bodies, reused while the job's row is unchanged.
 *
 * A dashboard or script polling a running job asks for the same bytes many
 * times between two progress writes, and building them (parsing the stored
 * spec, latest metrics and result, formatting every number) was most of a
 * request's cost: at 64 connections it capped the API near 25k requests/s.
 * The row is still read on every request (so nothing is ever stale); the
 * cache only skips rebuilding the JSON when every field that can change
 * (state, progress, timestamps, latest, result, error, attempts) compares
 * equal to the cached copy, byte for byte. JOBS_CACHE_SLOTS entries, slot
 * id % slots, one mutex. */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

#define JOBS_CACHE_SLOTS 16

typedef struct {
    store_job key;  /* the fields compared; spec_json unused (a job's spec never changes) */
    char *body;     /* the JSON text served; NULL = empty slot */
} jobs_cache_slot;

struct jobs_cache {
    pthread_mutex_t mu;
    jobs_cache_slot slot[JOBS_CACHE_SLOTS];
};

jobs_cache *jobs_cache_create(void)
{
    jobs_cache *c = calloc(1, sizeof *c);
    if (c) pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void jobs_cache_clear_slot(jobs_cache_slot *s)
{
    free(s->key.latest_json), free(s->key.result_json), free(s->key.error), free(s->body);
    memset(s, 0, sizeof *s);
}

void jobs_cache_free(jobs_cache *c)
{
    if (!c) return;
    for (int i = 0; i < JOBS_CACHE_SLOTS; i++) jobs_cache_clear_slot(&c->slot[i]);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static int jobs_str_eq(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

static int jobs_same(const store_job *a, const store_job *b)
{
    return a->id == b->id && a->state == b->state && a->step == b->step && a->total_steps == b->total_steps &&
           a->samples_per_s == b->samples_per_s && a->eta_s == b->eta_s &&
           a->cancel_requested == b->cancel_requested && a->attempts == b->attempts &&
           !strcmp(a->started_at, b->started_at) && !strcmp(a->finished_at, b->finished_at) &&
           jobs_str_eq(a->latest_json, b->latest_json) && jobs_str_eq(a->result_json, b->result_json) &&
           jobs_str_eq(a->error, b->error);
}

char *jobs_cache_get(jobs_cache *c, const store_job *j)
{
    char *copy = NULL;
    jobs_cache_slot *s = &c->slot[(uint64_t)j->id % JOBS_CACHE_SLOTS];
    pthread_mutex_lock(&c->mu);
    if (s->body && jobs_same(&s->key, j)) copy = strdup(s->body);
    pthread_mutex_unlock(&c->mu);
    return copy;
}

static char *jobs_dup(const char *s) { return s ? strdup(s) : NULL; }

void jobs_cache_put(jobs_cache *c, const store_job *j, const char *body)
{
    jobs_cache_slot fresh = { .key = *j };
    fresh.key.spec_json = NULL;
    fresh.key.latest_json = jobs_dup(j->latest_json);
    fresh.key.result_json = jobs_dup(j->result_json);
    fresh.key.error = jobs_dup(j->error);
    fresh.body = strdup(body);
    if (!fresh.body || (j->latest_json && !fresh.key.latest_json) || (j->result_json && !fresh.key.result_json) ||
        (j->error && !fresh.key.error)) {
        jobs_cache_clear_slot(&fresh); /* out of memory: simply not cached */
        return;
    }
    jobs_cache_slot *s = &c->slot[(uint64_t)j->id % JOBS_CACHE_SLOTS];
    pthread_mutex_lock(&c->mu);
    jobs_cache_slot old = *s;
    *s = fresh;
    pthread_mutex_unlock(&c->mu);
    jobs_cache_clear_slot(&old);
}
