/* fuzz_safetensors — the safetensors reader (header length and tensor lookup).
 *
 * One input is one whole .safetensors file. Checked: safetensors_json_len
 * accepts only 1 .. SAFETENSORS_HEADER_MAX; when the header fits in the
 * input, safetensors_find for every name saed reads (and some it does not)
 * either fails with a message, reports the tensor missing, or returns an
 * entry whose offsets span exactly its F32 elements. */
#include "fuzzutil.h"
#include "safetensors.h"
#include <string.h>

static const char *const fuzz_st_names[] = {"W_enc", "W_dec", "b_enc", "b_dec", "threshold", "log_theta",
                                            "r_mag", "b_mag", "__metadata__", "", NULL};

static void fuzz_st_find(const char *json, size_t json_len, const char *name)
{
    safetensors_entry e;
    char err[300] = "";
    int rc = safetensors_find(json, json_len, name, &e, err, sizeof err);
    FUZZ_REQUIRE(rc >= -1 && rc <= 1);
    if (rc == -1)
        FUZZ_REQUIRE(err[0] != '\0');
    if (rc != 0)
        return;
    FUZZ_REQUIRE(strcmp(name, "__metadata__") != 0);
    FUZZ_REQUIRE(e.ndim == 1 || e.ndim == 2);
    FUZZ_REQUIRE(e.shape[0] >= 0 && e.shape[0] <= INT32_MAX && e.shape[1] >= 0 && e.shape[1] <= INT32_MAX);
    FUZZ_REQUIRE(e.ndim == 2 || e.shape[1] == 0);
    uint64_t count = (uint64_t)e.shape[0] * (uint64_t)(e.ndim == 2 ? e.shape[1] : 1);
    FUZZ_REQUIRE(e.end >= e.begin && e.end - e.begin == 4 * count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    uint64_t n;
    char err[300];
    if (len < 8)
        return 0;
    if (safetensors_json_len(data, &n, err, sizeof err) != 0) {
        FUZZ_REQUIRE(err[0] != '\0');
        return 0;
    }
    FUZZ_REQUIRE(n >= 1 && n <= SAFETENSORS_HEADER_MAX);
    if (n > len - 8)
        return 0; /* the storage reader refuses a header longer than the file */
    for (int i = 0; fuzz_st_names[i]; i++)
        fuzz_st_find((const char *)data + 8, (size_t)n, fuzz_st_names[i]);
    return 0;
}
