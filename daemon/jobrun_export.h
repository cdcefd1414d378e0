/* daemon/jobrun_export.h — the files a finished train job leaves in its
 * SAE directory (daemon/jobrun_export.c), called by jobrun_train.c. */
#ifndef SAED_JOBRUN_EXPORT_H
#define SAED_JOBRUN_EXPORT_H
#include <jansson.h>
#include <stddef.h>
#include "train.h"

/* Writes into dir (which exists): decoder.npy (n, dim), encoder.npy
 * (dim, n), b_enc.npy (n), b_dec.npy (dim), sae.safetensors (every named
 * tensor, sae_tensors()) and cfg.json (SAELens keys plus saed's own), each
 * atomically. The input scale of train.normalize_input is folded into the
 * weights first, so every file describes an SAE that takes raw rows.
 * spec: the job's stored spec (its "sae" and "train" objects are read).
 * 0, or -1 with err set. */
int jobrun_export_files(const char *dir, const train_state *ts, const json_t *spec, long long job_id,
                        long long dataset_id, char *err, size_t errlen);

#endif
