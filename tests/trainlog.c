/* trainlog — recording trainer hooks for the core's training tests (see trainlog.h). */
#include "trainlog.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static train_stop trainlog_should_stop(void *ctx)
{
    trainlog *h = ctx;
    if (++h->polls != h->stop_at_poll)
        return TRAIN_CONTINUE;
    return h->stop != TRAIN_CONTINUE ? h->stop : TRAIN_SHUTDOWN;
}

static int trainlog_checkpoint(void *ctx, train_state *st)
{
    trainlog *h = ctx;
    h->checkpoints++;
    free(h->blob);
    h->blob_len = train_checkpoint_size(st);
    h->blob = malloc(h->blob_len);
    train_checkpoint_write(st, h->blob);
    return 0;
}

static int trainlog_eval(void *ctx, const train_metrics *m)
{
    trainlog *h = ctx;
    if (h->evals < 16)
        h->eval_steps[h->evals] = m->step;
    h->evals++;
    return 0;
}

train_hooks trainlog_hooks(trainlog *h)
{
    train_hooks k = {h, trainlog_eval, NULL, trainlog_checkpoint, trainlog_should_stop};
    return k;
}

void *trainlog_final_blob(train_state *st, size_t *len)
{
    *len = train_checkpoint_size(st);
    void *b = malloc(*len);
    train_checkpoint_write(st, b);
    return b;
}

void trainlog_small_config(train_config *t)
{
    train_config_default(t);
    t->steps = 30;
    t->batch_size = 64;
    t->lr = 3e-3f;
    t->lr_warmup_steps = 5;
    t->sparsity_warmup_steps = 10;
    t->eval_every = 7;
    t->eval_rows = 50;
    t->checkpoint_every = 0;
    t->dead_window = 10;
    t->grad_clip = 1.0f;
    t->seed = 9;
}

/* Runs c/t on src until poll stop (stop 0: to the end); its final blob, or its last checkpoint
 * restored into a fresh trainer and run to the end. NULL with err set on any failure. */
static void *trainlog_run_via(const sae_config *c, const train_config *t, const data_source *src, int stop,
                              size_t *len, char *err, size_t errlen)
{
    trainlog hi = {.stop_at_poll = stop}, hr = {0};
    train_hooks h = trainlog_hooks(&hi);
    train_state *i = train_create(c, t, src, err, errlen), *r = NULL;
    void *blob = NULL;
    train_result want = stop ? TRAIN_INTERRUPTED : TRAIN_DONE;
    if (i && train_run(i, &h) != want)
        snprintf(err, errlen, "the run to poll %d ended otherwise: %s", stop, train_error(i));
    else if (i && !stop)
        blob = trainlog_final_blob(i, len);
    else if (i && !(r = train_create(c, t, src, err, errlen)))
        ;
    else if (i && train_checkpoint_restore(r, hi.blob, hi.blob_len, err, errlen) == 0) {
        h = trainlog_hooks(&hr);
        if (train_run(r, &h) == TRAIN_DONE)
            blob = trainlog_final_blob(r, len);
        else
            snprintf(err, errlen, "the run resumed at step %d failed: %s", stop - 1, train_error(r));
    }
    free(hi.blob), free(hr.blob);
    train_free(i), train_free(r);
    return blob;
}

int trainlog_resume_mismatch(const sae_config *c, const train_config *t, const data_source *src, const int *stops,
                             int n, char *err, size_t errlen)
{
    size_t ls = 0, lr = 0;
    void *straight = trainlog_run_via(c, t, src, 0, &ls, err, errlen);
    if (!straight)
        return -1;
    int bad = 0;
    for (int k = 0; k < n && !bad; k++) {
        void *resumed = trainlog_run_via(c, t, src, stops[k], &lr, err, errlen);
        if (!resumed || lr != ls || memcmp(resumed, straight, ls) != 0) {
            bad = stops[k];
            if (resumed)
                snprintf(err, errlen, "stopped at step %d and resumed, the run ends unlike the straight one",
                         stops[k] - 1);
        }
        free(resumed);
    }
    free(straight);
    if (!bad)
        snprintf(err, errlen, "every resumed run ends bit for bit like the straight one");
    return bad;
}
