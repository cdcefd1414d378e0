/* trainlog — recording trainer hooks for the core's training tests (see trainlog.h). */
#include "trainlog.h"
#include <stdlib.h>

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
