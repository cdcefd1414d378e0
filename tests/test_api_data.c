/* test_api_data — real data through the API: npy datasets imported by path
 * from --import-dir and streamed as uploads, their labels (by path and by
 * PUT), idx datasets from /usr/share/datasets (Fashion-MNIST t10k), rows.npy
 * and labels read back and compared with numpy, and short training jobs on
 * an npy and an idx dataset.
 *
 * Fixtures are written by /usr/bin/python3 with numpy into a fresh import
 * directory; a symlink and a sibling directory outside it test the escape
 * checks. Uploads are streamed in small chunks (chunked and with a
 * Content-Length). A second daemon without --import-dir checks the refusal.
 * Nothing asserts on timing. */
#include "check.h"
#include "apitest.h"
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define FMNIST "/usr/share/datasets/fashion-mnist"
#define UPLOAD_ROWS 600000 /* x 128 float32 = 307 MB, generated while it is sent */
#define UPLOAD_DIM 128

static char g_import[256];  /* the import directory */
static char g_work[256];    /* replies saved for numpy */
static at_daemon g_d;

/* ---- fixtures ---- */

static const char fixtures_py[] =
    "import numpy as np, os, sys\n"
    "imp, work = sys.argv[1], sys.argv[2]\n"
    "r = np.random.default_rng(7)\n"
    "acts = r.standard_normal((3000, 32)).astype('<f4')\n"
    "np.save(f'{imp}/acts.npy', acts)\n"
    "open(f'{imp}/acts.labels.txt', 'w', encoding='utf-8').write(''.join(f'tok{i} \\u00e9\\n' for i in range(3000)))\n"
    "open(f'{imp}/short.labels.txt', 'w').write('a\\nb\\n')\n"
    "np.save(f'{imp}/half.npy', r.standard_normal((500, 16)).astype('<f2'))\n"
    "np.save(f'{imp}/f8.npy', r.standard_normal((10, 4)))\n"
    "bad = r.standard_normal((10, 4)).astype('<f4'); bad[3, 2] = np.nan\n"
    "np.save(f'{imp}/nan.npy', bad)\n"
    "np.save(f'{imp}/vec.npy', np.zeros(5, '<f4'))\n"
    "os.makedirs(f'{imp}/sub', exist_ok=True)\n"
    "np.save(f'{imp}/sub/small.npy', acts[:200])\n"
    "os.makedirs(f'{imp}_outside', exist_ok=True)\n"
    "np.save(f'{imp}_outside/secret.npy', acts[:10])\n"
    "os.symlink(f'{imp}_outside/secret.npy', f'{imp}/link.npy')\n"
    "os.symlink(f'{imp}/acts.npy', f'{imp}/inner_link.npy')\n"
    "np.save(f'{work}/upload16.npy', r.standard_normal((3000, 64)).astype('<f2'))\n"
    "open(f'{work}/upload16.labels', 'w').write(''.join(f'row {i}\\n' for i in range(3000)))\n"
    "open(f'{work}/junk.bin', 'wb').write(b'hello, this is not a .npy file' * 100)\n";

static int make_fixtures(void)
{
    char cmd[1200];
    snprintf(g_import, sizeof g_import, "/tmp/saed-import-XXXXXX");
    snprintf(g_work, sizeof g_work, "/tmp/saed-work-XXXXXX");
    if (!mkdtemp(g_import) || !mkdtemp(g_work)) return 0;
    char py[300];
    snprintf(py, sizeof py, "%s/fixtures.py", g_work);
    FILE *f = fopen(py, "w");
    if (!f) return 0;
    fputs(fixtures_py, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s %s", py, g_import, g_work);
    return system(cmd) == 0;
}

/* ---- helpers ---- */

typedef struct {
    FILE *f;
    size_t chunk;     /* largest piece handed to curl at once */
    long long limit;  /* bytes to send in all (< file size: a truncated upload) */
    long long sent;
} file_reader;

static size_t read_file_chunk(void *ctx, char *buf, size_t cap)
{
    file_reader *r = ctx;
    size_t want = cap < r->chunk ? cap : r->chunk;
    if ((long long)want > r->limit - r->sent) want = (size_t)(r->limit - r->sent);
    size_t got = want ? fread(buf, 1, want, r->f) : 0;
    r->sent += (long long)got;
    return got;
}

static long long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) ? -1 : (long long)sb.st_size;
}

/* Streams work/name to method path in chunks of `chunk` bytes; limit < 0 = the whole file, chunked if !with_length. */
static at_resp upload(const char *method, const char *path, const char *name, const char *ctype, size_t chunk,
                      long long limit, int with_length)
{
    char file[400];
    snprintf(file, sizeof file, "%s/%s", g_work, name);
    file_reader r = { fopen(file, "rb"), chunk, limit >= 0 ? limit : file_size(file), 0 };
    if (!r.f) {
        at_resp none = { 0 };
        none.body = calloc(1, 1);
        return none;
    }
    at_resp resp = at_http_stream(method, path, ctype, read_file_chunk, &r, with_length ? r.limit : -1, 120);
    fclose(r.f);
    return resp;
}

/* A generated (UPLOAD_ROWS, UPLOAD_DIM) '<f4' .npy, value (row * 7 + col) % 1000 / 8, made as it is read. */
typedef struct {
    char head[128];           /* the .npy header */
    unsigned long long pos, total;
} gen_reader;

static void gen_init(gen_reader *g)
{
    char dict[118];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }",
                     UPLOAD_ROWS, UPLOAD_DIM);
    memset(dict + n, ' ', sizeof dict - (size_t)n);
    dict[sizeof dict - 1] = '\n';
    memcpy(g->head, "\x93NUMPY\x01\x00\x76\x00", 10); /* v1.0, header length 118 */
    memcpy(g->head + 10, dict, sizeof dict);
    g->pos = 0;
    g->total = sizeof g->head + (unsigned long long)UPLOAD_ROWS * UPLOAD_DIM * 4;
}

static size_t read_gen(void *ctx, char *buf, size_t cap)
{
    gen_reader *g = ctx;
    size_t n = 0;
    if (cap > 16384) cap = 16384; /* small pieces */
    for (; n < cap && g->pos < g->total; n++, g->pos++) {
        if (g->pos < sizeof g->head) { buf[n] = g->head[g->pos]; continue; }
        unsigned long long k = (g->pos - sizeof g->head) / 4, row = k / UPLOAD_DIM, col = k % UPLOAD_DIM;
        float v = (float)((row * 7 + col) % 1000) / 8.0f;
        buf[n] = ((const char *)&v)[(g->pos - sizeof g->head) % 4];
    }
    return n;
}

/* Number of entries under data_dir/datasets whose name starts with prefix. */
static int count_dataset_dirs(const char *prefix)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/datasets", g_d.dir);
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return 0;
    for (struct dirent *e; (e = readdir(d));)
        n += !strncmp(e->d_name, prefix, strlen(prefix)) && strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static int dataset_dir_exists(long long id)
{
    struct stat sb;
    return !stat(at_fmt("%s/datasets/%lld", g_d.dir, id), &sb);
}

static long long create(const char *body, json_t **out)
{
    json_t *j = at_expect_json(at_http("POST", "/v1/datasets", body), 201);
    long long id = at_jint(j, "id");
    if (out) *out = j;
    else json_decref(j);
    return id;
}

static void save(const char *path, const char *name)
{
    at_resp r = at_http("GET", path, NULL);
    CHECK(r.status == 200 && !strcmp(r.ctype, "application/octet-stream"), "GET %s -> %ld %s", path, r.status,
          r.ctype);
    CHECK(at_save_body(g_work, name, &r) == 0, "save %s", name);
    at_resp_free(&r);
}

/* ---- npy by path ---- */

static long long test_npy_path(void)
{
    json_t *j = NULL;
    long long id = create("{\"kind\":\"npy\",\"name\":\"acts\",\"path\":\"acts.npy\",\"labels\":\"acts.labels.txt\"}",
                          &j);
    CHECK(id > 0, "npy import by path");
    CHECK(at_jint(j, "dim") == 32 && at_jint(j, "n_rows") == 3000, "shape %lld x %lld", at_jint(j, "n_rows"),
          at_jint(j, "dim"));
    CHECK(json_is_true(json_object_get(j, "has_labels")), "has_labels");
    CHECK(!strcmp(at_jstr(j, "kind"), "npy") && !strcmp(at_jstr(j, "name"), "acts"), "kind and name");
    json_t *p = json_object_get(j, "params");
    CHECK(!strcmp(at_jstr(p, "dtype"), "<f4") && !strcmp(at_jstr(p, "file"), "acts.npy"), "params %s",
          json_dumps(p, JSON_COMPACT));
    json_decref(j);
    CHECK(dataset_dir_exists(id), "files copied into the data dir");

    /* absolute path inside, float16, name defaulting to the file name; a symlink that stays inside; a subdirectory */
    j = NULL;
    long long half = create(at_fmt("{\"kind\":\"npy\",\"path\":\"%s/half.npy\"}", g_import), &j);
    CHECK(half > 0 && at_jint(j, "dim") == 16 && at_jint(j, "n_rows") == 500, "float16 import");
    CHECK(!strcmp(at_jstr(json_object_get(j, "params"), "dtype"), "<f2") && !strcmp(at_jstr(j, "name"), "half.npy"),
          "f2 params and default name");
    CHECK(!json_is_true(json_object_get(j, "has_labels")), "no labels");
    json_decref(j);
    CHECK(create("{\"kind\":\"npy\",\"path\":\"inner_link.npy\"}", NULL) > 0, "a symlink inside the import dir");
    CHECK(create("{\"kind\":\"npy\",\"path\":\"sub/../sub/small.npy\"}", NULL) > 0, "'..' that stays inside");

    save(at_fmt("/v1/datasets/%lld/rows.npy?offset=100&limit=50", id), "acts_rows.npy");
    save(at_fmt("/v1/datasets/%lld/rows.npy?offset=2990&limit=50", id), "acts_tail.npy");
    save(at_fmt("/v1/datasets/%lld/rows.npy?offset=5000", id), "acts_past.npy");
    save(at_fmt("/v1/datasets/%lld/rows.npy?limit=500", half), "half_rows.npy");

    json_t *l = at_expect_json(at_http("GET", at_fmt("/v1/datasets/%lld/labels?offset=5&limit=3", id), NULL), 200);
    json_t *items = json_object_get(l, "items");
    CHECK(json_array_size(items) == 3 && !strcmp(json_string_value(json_array_get(items, 0)), "tok5 \xc3\xa9") &&
          !strcmp(json_string_value(json_array_get(items, 2)), "tok7 \xc3\xa9"), "labels 5..7: %s",
          json_dumps(l, JSON_COMPACT));
    CHECK(at_jint(l, "total") == 3000 && at_jint(l, "offset") == 5 && at_jint(l, "limit") == 3, "labels paging");
    json_decref(l);
    l = at_expect_json(at_http("GET", at_fmt("/v1/datasets/%lld/labels?offset=2999", id), NULL), 200);
    CHECK(json_array_size(json_object_get(l, "items")) == 1, "last label page clipped");
    json_decref(l);
    AT_BAD("GET", at_fmt("/v1/datasets/%lld/labels", half), NULL, 404, NULL);
    AT_BAD("GET", at_fmt("/v1/datasets/%lld/labels?limit=0", id), NULL, 400, "limit");
    return id;
}

static void test_npy_path_refused(void)
{
    int before = count_dataset_dirs("");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"npy\",\"path\":\"../x.npy\"}", 422, "path");
    AT_BAD("POST", "/v1/datasets", at_fmt("{\"kind\":\"npy\",\"path\":\"../%s_outside/secret.npy\"}",
                                          strrchr(g_import, '/') + 1), 422, "path");
    AT_BAD("POST", "/v1/datasets", at_fmt("{\"kind\":\"npy\",\"path\":\"%s_outside/secret.npy\"}", g_import), 422,
           "path");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"npy\",\"path\":\"link.npy\"}", 422, "path"); /* symlink escape */
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"npy\",\"path\":\"/etc/passwd\"}", 422, "path");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"npy\",\"path\":\"nope.npy\"}", 422, "path");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"npy\",\"path\":\"sub\"}", 422, "path");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"npy\",\"path\":\"acts.labels.txt\"}", 422, "path");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"npy\",\"path\":\"vec.npy\"}", 422, "path");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"npy\",\"path\":\"nan.npy\"}", 422, "path");
    at_resp r = at_http("POST", "/v1/datasets", "{\"kind\":\"npy\",\"path\":\"f8.npy\"}");
    CHECK(strstr(r.body, "float32") != NULL, "bad dtype message says what to do: %s", r.body);
    at_expect_problem("f8", r, 422, "path");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"npy\",\"path\":\"acts.npy\",\"labels\":\"short.labels.txt\"}", 422,
           "labels");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"npy\",\"path\":\"acts.npy\",\"labels\":\"../x\"}", 422, "labels");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"npy\"}", 400, "path");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"npy\",\"path\":7}", 400, "path");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"npy\",\"path\":\"\"}", 400, "path");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"npy\",\"path\":\"acts.npy\",\"labls\":\"x\"}", 400, "labls");
    CHECK(count_dataset_dirs("") == before, "refused imports leave nothing behind (%d entries, was %d)",
          count_dataset_dirs(""), before);
}

/* ---- uploads ---- */

static long long test_upload(void)
{
    int before = count_dataset_dirs("");
    double t0 = at_now_s();
    gen_reader g;
    gen_init(&g);
    at_resp r = at_http_stream("POST", "/v1/datasets?kind=npy&name=big&file=upload.npy", "application/octet-stream",
                               read_gen, &g, -1, 120);
    double dt = at_now_s() - t0;
    json_t *j = at_expect_json(r, 201);
    long long id = at_jint(j, "id");
    printf("uploaded %d x %d float32 (%.0f MB, chunked, 16 KiB pieces) in %.2f s\n", UPLOAD_ROWS, UPLOAD_DIM,
           UPLOAD_ROWS * UPLOAD_DIM * 4 / 1e6, dt);
    CHECK(at_jint(j, "n_rows") == UPLOAD_ROWS && at_jint(j, "dim") == UPLOAD_DIM, "upload shape");
    CHECK(!strcmp(at_jstr(j, "name"), "big") && !strcmp(at_jstr(json_object_get(j, "params"), "file"), "upload.npy"),
          "upload name and file");
    json_decref(j);
    save(at_fmt("/v1/datasets/%lld/rows.npy?offset=%d&limit=1000", id, UPLOAD_ROWS - 1000), "upload_rows.npy");
    save(at_fmt("/v1/datasets/%lld/rows.npy?offset=0&limit=10", id), "upload_head.npy");

    j = at_expect_json(upload("POST", "/v1/datasets?kind=npy&name=half", "upload16.npy",
                              "application/octet-stream", 1000, -1, 1), 201);
    long long half = at_jint(j, "id");
    CHECK(at_jint(j, "n_rows") == 3000 && at_jint(j, "dim") == 64, "f2 upload shape");
    CHECK(!strcmp(at_jstr(json_object_get(j, "params"), "dtype"), "<f2"), "f2 upload dtype");
    json_decref(j);
    save(at_fmt("/v1/datasets/%lld/rows.npy?limit=3000", half), "upload16_rows.npy");
    CHECK(count_dataset_dirs(".staging") == 0 && count_dataset_dirs("") == before + 2, "uploads leave only their "
          "dataset dirs");
    at_resp del = at_http("DELETE", at_fmt("/v1/datasets/%lld", id), NULL); /* give the disk back */
    CHECK(del.status == 204 && !dataset_dir_exists(id), "the big upload is deleted with its file");
    at_resp_free(&del);

    /* labels: wrong count, then right */
    at_resp lr = upload("PUT", at_fmt("/v1/datasets/%lld/labels", half), "upload16.labels", "text/plain", 100,
                        1000, 1);
    CHECK(strstr(lr.body, "3000") && strstr(lr.body, "lines"), "wrong label count says found vs expected: %s",
          lr.body);
    at_expect_problem("labels short", lr, 422, "body");
    j = at_expect_json(upload("PUT", at_fmt("/v1/datasets/%lld/labels", half), "upload16.labels", "text/plain", 100,
                              -1, 0), 200);
    CHECK(json_is_true(json_object_get(j, "has_labels")), "labels PUT sets has_labels");
    json_decref(j);
    j = at_expect_json(at_http("GET", at_fmt("/v1/datasets/%lld/labels?offset=2998", half), NULL), 200);
    CHECK(json_array_size(json_object_get(j, "items")) == 2 &&
          !strcmp(json_string_value(json_array_get(json_object_get(j, "items"), 1)), "row 2999"), "uploaded labels");
    json_decref(j);
    at_expect_problem("labels on a missing dataset", upload("PUT", "/v1/datasets/999999/labels", "upload16.labels",
                                                            "text/plain", 100, -1, 1), 404, NULL);
    /* As below: the staging directory goes in the completion callback, which may run just after the reply. */
    for (int i = 0; i < 100 && count_dataset_dirs(".staging") > 0; i++) usleep(20000);
    CHECK(count_dataset_dirs(".staging") == 0, "labels uploads leave no staging dirs");
    return half;
}

static size_t read_zeros(void *ctx, char *buf, size_t cap)
{
    long long *left = ctx;
    size_t n = (long long)cap < *left ? cap : (size_t)*left;
    memset(buf, 0, n);
    *left -= (long long)n;
    return n;
}

static void test_upload_refused(void)
{
    int before = count_dataset_dirs("");
    long long size = file_size(at_fmt("%s/upload16.npy", g_work));
    at_resp r = upload("POST", "/v1/datasets?kind=npy&name=cut", "upload16.npy", "application/octet-stream", 4096,
                       size - 100, 0);
    CHECK(strstr(r.body, "truncated") != NULL, "truncated upload says so: %s", r.body);
    at_expect_problem("truncated upload", r, 422, "body");
    at_expect_problem("truncated with length", upload("POST", "/v1/datasets?kind=npy", "upload16.npy",
                                                      "application/octet-stream", 4096, 5, 1), 422, "body");
    at_expect_problem("not npy", upload("POST", "/v1/datasets?kind=npy", "junk.bin", "application/octet-stream",
                                        100, -1, 0), 422, "body");
    r = at_http_ex("POST", "/v1/datasets?kind=npy&name=empty", "", 0, "Content-Type: application/octet-stream", 30);
    at_expect_problem("empty upload", r, 422, "body");
    at_expect_problem("unknown query", upload("POST", "/v1/datasets?kind=npy&nme=x", "upload16.npy",
                                              "application/octet-stream", 4096, -1, 1), 400, "nme");
    at_expect_problem("upload kind", upload("POST", "/v1/datasets?kind=idx", "upload16.npy",
                                            "application/octet-stream", 4096, -1, 1), 422, "kind");
    long long left = 450LL << 20; /* over --max-upload-mb 400 */
    at_expect_problem("over the cap", at_http_stream("POST", "/v1/datasets?kind=npy", "application/octet-stream",
                                                     read_zeros, &left, left, 60), 413, NULL);
    /* The staging directory goes in the request's completion callback, which may run just after the reply. */
    for (int i = 0; i < 100 && count_dataset_dirs(".staging") > 0; i++) usleep(20000);
    CHECK(count_dataset_dirs(".staging") == 0 && count_dataset_dirs("") == before, "refused uploads leave no file "
          "behind (%d entries, was %d)", count_dataset_dirs(""), before);
}

/* ---- idx ---- */

static long long test_idx(void)
{
    json_t *j = NULL;
    long long id = create("{\"kind\":\"idx\",\"name\":\"fmnist-t10k\",\"images\":\"" FMNIST
                          "/t10k-images-idx3-ubyte.gz\",\"labels\":\"" FMNIST "/t10k-labels-idx1-ubyte.gz\"}", &j);
    CHECK(id > 0, "idx import");
    CHECK(at_jint(j, "n_rows") == 10000 && at_jint(j, "dim") == 784, "idx shape %lld x %lld", at_jint(j, "n_rows"),
          at_jint(j, "dim"));
    CHECK(json_is_true(json_object_get(j, "has_labels")), "idx has_labels");
    json_t *p = json_object_get(j, "params");
    CHECK(strstr(at_jstr(p, "images"), "t10k-images") && !strcmp(at_jstr(p, "class_names"), "fashion-mnist"),
          "idx params");
    json_decref(j);
    json_t *l = at_expect_json(at_http("GET", at_fmt("/v1/datasets/%lld/labels?limit=10000", id), NULL), 200);
    CHECK(json_array_size(json_object_get(l, "items")) == 10000, "10000 idx labels");
    FILE *f = fopen(at_fmt("%s/idx_labels.json", g_work), "w");
    if (f) { json_dumpf(json_object_get(l, "items"), f, JSON_COMPACT); fclose(f); }
    json_decref(l);
    save(at_fmt("/v1/datasets/%lld/rows.npy?offset=9990&limit=20", id), "idx_tail.npy");
    save(at_fmt("/v1/datasets/%lld/rows.npy?limit=100", id), "idx_head.npy");

    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"idx\",\"images\":\"/etc/passwd\"}", 422, "images");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"idx\",\"images\":\"" FMNIST "/../../../../etc/passwd\"}", 422,
           "images");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"idx\",\"images\":\"" FMNIST "/t10k-labels-idx1-ubyte.gz\"}", 422,
           "images");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"idx\",\"images\":\"" FMNIST "/t10k-images-idx3-ubyte.gz\","
           "\"labels\":\"" FMNIST "/train-labels-idx1-ubyte.gz\"}", 422, "labels");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"idx\",\"images\":\"acts.npy\"}", 422, "images");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"idx\"}", 400, "images");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"idx\",\"images\":\"" FMNIST "/t10k-images-idx3-ubyte.gz\","
           "\"class_names\":1}", 400, "class_names");
    AT_BAD("PUT", at_fmt("/v1/datasets/%lld/labels", id), "x", 422, NULL);
    return id;
}

static const char check_py[] =
    "import numpy as np, gzip, json, sys\n"
    "imp = sys.argv[1]\n"
    "acts = np.load(f'{imp}/acts.npy')\n"
    "def chk(name, got, want):\n"
    "    if got.dtype != np.float32 or got.shape != want.shape or not np.array_equal(got, want):\n"
    "        print('MISMATCH', name, got.dtype, got.shape, want.shape); sys.exit(1)\n"
    "chk('acts rows', np.load('acts_rows.npy'), acts[100:150])\n"
    "chk('acts tail', np.load('acts_tail.npy'), acts[2990:])\n"
    "chk('acts past end', np.load('acts_past.npy'), acts[:0])\n"
    "chk('half', np.load('half_rows.npy'), np.load(f'{imp}/half.npy').astype(np.float32))\n"
    "def gen(a, b):\n"
    "    i = np.arange(a, b, dtype=np.int64)[:, None]; j = np.arange(128)[None, :]\n"
    "    return (((i * 7 + j) % 1000) / 8).astype(np.float32)\n"
    "chk('upload tail', np.load('upload_rows.npy'), gen(599000, 600000))\n"
    "chk('upload head', np.load('upload_head.npy'), gen(0, 10))\n"
    "chk('upload f2', np.load('upload16_rows.npy'), np.load('upload16.npy').astype(np.float32))\n"
    "d = '/usr/share/datasets/fashion-mnist/'\n"
    "raw = np.frombuffer(gzip.open(d + 't10k-images-idx3-ubyte.gz').read()[16:], np.uint8).reshape(-1, 784)\n"
    "px = raw.astype(np.float32) * np.float32(1 / 255)\n"
    "chk('idx tail', np.load('idx_tail.npy'), px[9990:])\n"
    "chk('idx head', np.load('idx_head.npy'), px[:100])\n"
    "lab = np.frombuffer(gzip.open(d + 't10k-labels-idx1-ubyte.gz').read()[8:], np.uint8)\n"
    "names = ['T-shirt/top','Trouser','Pullover','Dress','Coat','Sandal','Shirt','Sneaker','Bag','Ankle boot']\n"
    "got = json.load(open('idx_labels.json'))\n"
    "if got != [names[i] for i in lab]: print('MISMATCH idx labels', got[:5]); sys.exit(1)\n"
    "print('numpy checks ok')\n";

static void check_with_numpy(void)
{
    char cmd[1200], py[300];
    snprintf(py, sizeof py, "%s/check_rows.py", g_work);
    FILE *f = fopen(py, "w");
    CHECK(f != NULL, "write check script");
    if (!f) return;
    fputs(check_py, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd %s && /usr/bin/python3 check_rows.py %s 1>&2", g_work, g_import);
    CHECK(system(cmd) == 0, "rows.npy and labels match the files (numpy)");
}

/* ---- training ---- */

static void train_on(long long ds, int n_latents, const char *what)
{
    char body[600];
    snprintf(body, sizeof body, "{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"relu\",\"n_latents\":%d,"
             "\"group_size\":2,\"sparsity_coef\":0.0003},\"train\":{\"steps\":150,\"batch_size\":64,\"lr\":0.003,"
             "\"lr_warmup_steps\":10,\"sparsity_warmup_steps\":20,\"eval_every\":50,\"eval_rows\":256,"
             "\"checkpoint_every\":100}}", ds, n_latents);
    long long job = at_post_id("/v1/jobs", body, 202);
    CHECK(job > 0, "%s: train job queued", what);
    json_t *j = at_wait_job(job, "succeeded failed cancelled", 120);
    CHECK(j && !strcmp(at_jstr(j, "state"), "succeeded"), "%s: train job succeeded (%s: %s)", what,
          j ? at_jstr(j, "state") : "timeout", j ? at_jstr(j, "error") : "");
    long long sae = j ? at_jint(json_object_get(j, "result"), "sae") : 0;
    json_decref(j);
    json_t *s = at_expect_json(at_http("GET", at_fmt("/v1/saes/%lld", sae), NULL), 200);
    CHECK(at_jint(s, "dataset") == ds, "%s: the SAE names its dataset", what);
    json_decref(s);
}

static void test_training(long long npy, long long idx)
{
    char body[400];
    snprintf(body, sizeof body, "{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"relu\",\"n_latents\":64},"
             "\"train\":{\"steps\":10,\"eval_rows\":3000}}", npy);
    AT_BAD("POST", "/v1/jobs", body, 422, "train.eval_rows");
    snprintf(body, sizeof body, "{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"relu\",\"n_latents\":64},"
             "\"train\":{\"steps\":10}}", npy); /* the default eval_rows (4096) is more than 3000 rows */
    AT_BAD("POST", "/v1/jobs", body, 422, "train.eval_rows");
    train_on(npy, 64, "npy");
    train_on(idx, 32, "fashion-mnist t10k");
}

static void test_delete(long long id)
{
    CHECK(dataset_dir_exists(id), "dataset %lld has files", id);
    at_resp r = at_http("DELETE", at_fmt("/v1/datasets/%lld", id), NULL);
    CHECK(r.status == 204, "DELETE npy dataset -> %ld", r.status);
    at_resp_free(&r);
    CHECK(!dataset_dir_exists(id), "DELETE removed the dataset's files");
    AT_BAD("GET", at_fmt("/v1/datasets/%lld/rows.npy", id), NULL, 404, NULL);
}

/* An upload's body: a valid .npy header for 1M rows of 16 floats, then zeros; once 1 MiB has gone
 * it checks the daemon has a staging directory and kills it (-9) mid-upload. */
typedef struct {
    long long sent;
    int killed, staged;
} kill_upload;

static size_t kill_upload_read(void *ctx, char *buf, size_t cap)
{
    kill_upload *k = ctx;
    if (k->killed) return 0;
    memset(buf, 0, cap);
    if (k->sent == 0 && cap >= 128) {
        char h[128];
        int n = snprintf(h, sizeof h, "{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 16), }");
        memcpy(buf, "\x93NUMPY\x01\x00\x76\x00", 10);
        memset(buf + 10, ' ', 118);
        memcpy(buf + 10, h, (size_t)n);
        buf[127] = '\n';
    }
    k->sent += (long long)cap;
    if (k->sent > (1 << 20)) {
        for (int i = 0; i < 200 && !(k->staged = count_dataset_dirs(".staging") > 0); i++) usleep(10000);
        kill(g_d.pid, SIGKILL);
        waitpid(g_d.pid, NULL, 0);
        k->killed = 1;
    }
    return cap;
}

/* kill -9 in the middle of an upload, then a restart: the half-written staging directory is gone at
 * once (not an hour later), and no dataset was made. */
static void test_upload_killed(void)
{
    int before = count_dataset_dirs("");
    kill_upload k = {0};
    at_resp r = at_http_stream("POST", "/v1/datasets?kind=npy&name=killed", "application/octet-stream",
                               kill_upload_read, &k, 128 + 1048576LL * 16 * 4, 30);
    at_resp_free(&r);
    CHECK(k.killed && k.staged, "the daemon was killed mid-upload (%lld bytes sent) with a staging dir open",
          k.sent);
    CHECK(at_daemon_restart(&g_d), "daemon restarts after kill -9");
    CHECK(count_dataset_dirs(".staging") == 0 && count_dataset_dirs("") == before,
          "after the restart no staging dir is left and no dataset was made (%d dirs, were %d)",
          count_dataset_dirs(""), before);
}

/* A restart sweeps staging directories a crash left: at once those named after a process of this
 * machine that is gone, others once untouched for an hour; a live process's stays. */
static void test_staging_sweep(void)
{
    char host[256] = "", crashed[PATH_MAX], live[PATH_MAX];
    gethostname(host, sizeof host - 1);
    for (char *c = host; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'))) *c = '.';
    pid_t child = fork();
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0); /* a process of this machine that is gone */
    snprintf(crashed, sizeof crashed, "%s/datasets/.staging-%.64s-%ld-abc123", g_d.dir, host, (long)child);
    snprintf(live, sizeof live, "%s/datasets/.staging-%.64s-%ld-def456", g_d.dir, host, (long)getpid());
    mkdir(crashed, 0755);
    mkdir(live, 0755);
    const char *old_dir = at_fmt("%s/datasets/.staging-old", g_d.dir), *new_dir = at_fmt("%s/datasets/.staging-new",
                                                                                          g_d.dir);
    mkdir(old_dir, 0755);
    mkdir(new_dir, 0755);
    const char *old_file = at_fmt("%s/data.npy", old_dir);
    FILE *f = fopen(old_file, "w");
    if (f) fclose(f);
    struct timeval two_hours_ago[2];
    gettimeofday(&two_hours_ago[0], NULL);
    two_hours_ago[0].tv_sec -= 7200;
    two_hours_ago[1] = two_hours_ago[0];
    utimes(old_file, two_hours_ago);
    utimes(old_dir, two_hours_ago);
    CHECK(at_daemon_stop(&g_d), "daemon stops cleanly");
    CHECK(at_daemon_restart(&g_d), "daemon restarts");
    struct stat sb;
    CHECK(stat(old_dir, &sb) != 0, "a stale staging dir is swept at start-up");
    CHECK(stat(new_dir, &sb) == 0, "a fresh staging dir is kept");
    CHECK(stat(crashed, &sb) != 0, "a fresh staging dir of a process that is gone (kill -9) is swept");
    CHECK(stat(live, &sb) == 0, "a fresh staging dir of a live process is kept");
    rmdir(new_dir);
    rmdir(live);
}

/* ---- a daemon without --import-dir ---- */

static void test_no_import_dir(void)
{
    at_daemon d = { 0 };
    int up = at_daemon_start(&d, "test-data-noimport", NULL);
    CHECK(up, "second daemon (no --import-dir) starts");
    if (!up) return;
    at_resp r = at_http("POST", "/v1/datasets", "{\"kind\":\"npy\",\"path\":\"acts.npy\"}");
    CHECK(strstr(r.body, "--import-dir") != NULL, "no import dir: the message says how: %s", r.body);
    at_expect_problem("no import dir", r, 422, "path");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"idx\",\"images\":\"t10k-images-idx3-ubyte.gz\"}", 422, "images");
    json_t *j = at_expect_json(at_http("POST", "/v1/datasets", "{\"kind\":\"idx\",\"images\":\"" FMNIST
                                       "/t10k-images-idx3-ubyte.gz\"}"), 201);
    CHECK(at_jint(j, "n_rows") == 10000 && !json_is_true(json_object_get(j, "has_labels")),
          "idx from the system dir without an import dir, no labels");
    json_decref(j);
    CHECK(at_daemon_stop(&d), "second daemon stops cleanly");
    if (!check_failed) at_daemon_cleanup(&d);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int ok = make_fixtures();
    CHECK(ok, "fixtures written by /usr/bin/python3");
    if (!ok) return check_report();
    const char *args[] = { "--import-dir", g_import, "--max-upload-mb", "400", NULL };
    int up = at_daemon_start(&g_d, "test-data", args);
    CHECK(up, "daemon answers /v1/health");
    if (!up) {
        at_daemon_show_log(&g_d);
        at_daemon_stop(&g_d);
        return check_report();
    }
    long long npy = test_npy_path();
    test_npy_path_refused();
    test_upload();
    test_upload_refused();
    long long idx = test_idx();
    check_with_numpy();
    test_training(npy, idx);
    test_delete(npy);
    test_staging_sweep();
    test_upload_killed();
    CHECK(at_daemon_stop(&g_d), "daemon stops cleanly after the restart");
    test_no_import_dir();
    if (check_failed) {
        at_daemon_show_log(&g_d);
        fprintf(stderr, "test_api_data: data left in %s, %s and %s\n", g_d.dir, g_import, g_work);
    } else {
        at_daemon_cleanup(&g_d);
        if (system(at_fmt("rm -rf '%s' '%s' '%s_outside'", g_work, g_import, g_import))) {}
    }
    curl_global_cleanup();
    return check_report();
}
