/* trainlog — trainer hooks that record for the core's training tests
 * (tests/test_core.c, test_archs_gj.c, test_archs_tk.c, test_archs_sub.c): evaluation steps,
 * checkpoints (the last blob kept), a stop on a chosen poll, and the bit-exact resume check. */
#ifndef SAED_TESTS_TRAINLOG_H
#define SAED_TESTS_TRAINLOG_H
#include "train.h"
#include <stddef.h>

typedef struct {
    int polls, stop_at_poll; /* should_stop returns stop on poll number stop_at_poll (1-based) */
    train_stop stop;         /* TRAIN_CONTINUE (0) stands for TRAIN_SHUTDOWN */
    int checkpoints, evals, eval_steps[16];
    void *blob;              /* the last checkpoint (free it) */
    size_t blob_len;
} trainlog;

/* Hooks (eval, checkpoint, should_stop) that record into h. */
train_hooks trainlog_hooks(trainlog *h);

/* A finished run's checkpoint blob (params, moments, counters); malloc'd, *len its size. */
void *trainlog_final_blob(train_state *st, size_t *len);

/* Bit-exact resume: c/t on src run straight, then for each poll number in stops (n) run until
 * that poll, restored from its checkpoint into a fresh trainer and finished; 0 when every such run
 * ends bit for bit like the straight one, else the first stop that does not (-1: the straight run
 * failed). err says what happened either way. */
int trainlog_resume_mismatch(const sae_config *c, const train_config *t, const data_source *src, const int *stops,
                             int n, char *err, size_t errlen);

/* The short runs the resume tests use: 30 steps of 64 rows, evaluations every 7, seed 9. */
void trainlog_small_config(train_config *t);

#endif
