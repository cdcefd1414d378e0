/* files — artifact files under the data directory.
 *
 * files_write_atomic writes "<path>.tmp.<pid>.<random>" (O_EXCL, so two
 * writers never share a temp file), fsyncs it, renames it over path and
 * fsyncs the directory: a reader sees the old file or the whole new one,
 * and after a crash the new one is either there completely or not at all.
 * On failure the temp file is removed. Errors name the path and what to do;
 * nothing here prints. */
#include "files.h"
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "npy.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "files_write_npy_f32 writes host floats as <f4 and needs a little-endian host"
#endif

#define FILES_MODE 0644
#define FILES_DIR_MODE 0755

static int files_errno(char *err, size_t errlen, const char *what, const char *path)
{
    assert(err && what && path);
    int e = errno;
    snprintf(err, errlen, "%s %s: %s%s", what, path, strerror(e),
             e == ENOSPC ? " (free space in the data directory)"
             : e == EACCES || e == EROFS ? " (check the data directory's permissions)" : "");
    errno = e;
    return -1;
}

/* A name for a temp file beside path, unique among processes and threads. */
static int files_temp_name(const char *path, char *buf, size_t n)
{
    assert(path);
    assert(buf && n > 0);
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        r = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)buf;
    }
    int len = snprintf(buf, n, "%s.tmp.%ld.%016llx", path, (long)getpid(), (unsigned long long)r);
    return len > 0 && (size_t)len < n ? 0 : -1;
}

static int files_write_fd(int fd, const files_part *parts, int n_parts)
{
    assert(fd >= 0);
    assert(n_parts >= 0 && (parts || n_parts == 0));
    for (int i = 0; i < n_parts; i++) {
        assert(parts[i].data || parts[i].len == 0);
        const char *p = parts[i].data;
        size_t left = parts[i].len;
        while (left > 0) {
            ssize_t w = write(fd, p, left);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return -1;
            p += w;
            left -= (size_t)w;
        }
    }
    return 0;
}

/* fsyncs the directory holding path, so that a rename in it is durable. */
static int files_sync_dir(const char *path)
{
    assert(path);
    char *copy = strdup(path);
    if (!copy)
        return -1;
    char *slash = strrchr(copy, '/');
    const char *dir = ".";
    if (slash == copy) {
        dir = "/";
    } else if (slash) {
        *slash = '\0';
        dir = copy;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd >= 0 && fsync(fd) == 0 ? 0 : -1;
    if (fd >= 0)
        close(fd);
    free(copy);
    return rc;
}

/* Writes, syncs and closes the temp file tmp. */
static int files_fill_temp(const char *tmp, const files_part *parts, int n_parts, char *err, size_t errlen)
{
    assert(tmp);
    assert(n_parts >= 0 && (parts || n_parts == 0));
    assert(err);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, FILES_MODE);
    if (fd < 0)
        return files_errno(err, errlen, "cannot create", tmp);
    int rc = 0;
    if (files_write_fd(fd, parts, n_parts) != 0)
        rc = files_errno(err, errlen, "cannot write", tmp);
    else if (fsync(fd) != 0)
        rc = files_errno(err, errlen, "cannot sync", tmp);
    if (close(fd) != 0 && rc == 0)
        rc = files_errno(err, errlen, "cannot close", tmp);
    return rc;
}

int files_write_atomic(const char *path, const files_part *parts, int n_parts, char *err, size_t errlen)
{
    assert(path);
    assert(n_parts >= 0 && (parts || n_parts == 0));
    assert(err);
    size_t n = strlen(path) + 64;
    char *tmp = malloc(n);
    if (!tmp || files_temp_name(path, tmp, n) != 0) {
        free(tmp);
        snprintf(err, errlen, "out of memory writing %s", path);
        return -1;
    }
    int rc = files_fill_temp(tmp, parts, n_parts, err, errlen);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = files_errno(err, errlen, "cannot rename a temp file to", path);
    if (rc == 0 && files_sync_dir(path) != 0)
        rc = files_errno(err, errlen, "cannot sync the directory of", path);
    if (rc != 0)
        unlink(tmp); /* gone already if the rename succeeded */
    free(tmp);
    return rc;
}

int files_write_npy_f32(const char *path, const float *data, const long long *shape, int ndim,
                        char *err, size_t errlen)
{
    assert(path && shape);
    assert(err);
    int64_t shp[NPY_MAX_DIMS]; /* (ndim) */
    size_t count = 1;
    char header[NPY_HEADER_MAX];
    if (ndim < 0 || ndim > NPY_MAX_DIMS) {
        snprintf(err, errlen, "cannot write %s: %d dimensions (at most %d)", path, ndim, NPY_MAX_DIMS);
        return -1;
    }
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && count > SIZE_MAX / sizeof(float) / (size_t)shape[i])) {
            snprintf(err, errlen, "cannot write %s: bad shape (dimension %d is %lld)", path, i, shape[i]);
            return -1;
        }
        shp[i] = shape[i];
        count *= (size_t)shape[i];
    }
    assert(data || count == 0);
    size_t hlen = npy_header(header, sizeof header, "<f4", shp, ndim);
    if (hlen == 0) {
        snprintf(err, errlen, "cannot write %s: the .npy header does not fit", path);
        return -1;
    }
    files_part parts[2] = { { header, hlen }, { data, count * sizeof(float) } };
    return files_write_atomic(path, parts, 2, err, errlen);
}

static int files_mkdir_one(const char *dir, char *err, size_t errlen)
{
    assert(dir && err);
    struct stat sb;
    if (mkdir(dir, FILES_DIR_MODE) == 0)
        return 0;
    if (errno == EEXIST && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode))
        return 0;
    if (errno == EEXIST)
        errno = ENOTDIR;
    return files_errno(err, errlen, "cannot create the directory", dir);
}

int files_mkdirs(const char *path, char *err, size_t errlen)
{
    assert(path && err);
    char *p = strdup(path);
    if (!p) {
        snprintf(err, errlen, "out of memory creating %s", path);
        return -1;
    }
    int rc = 0;
    for (char *c = p + 1; rc == 0 && *c; c++) {
        if (*c != '/' || c[-1] == '/')
            continue;
        *c = '\0';
        rc = files_mkdir_one(p, err, errlen);
        *c = '/';
    }
    if (rc == 0 && *p)
        rc = files_mkdir_one(p, err, errlen);
    free(p);
    return rc;
}

/* Reads fd to the end into a malloc'd buffer with a NUL after the data;
 * hint is the expected size (one extra byte of room detects the end). */
static int files_read_fd(int fd, size_t hint, char **out, size_t *len)
{
    assert(fd >= 0);
    assert(out && len);
    size_t cap = hint + 2, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                free(buf);
            buf = nb;
            cap *= 2;
            continue;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r > 0) {
            n += (size_t)r;
        } else if (r == 0) {
            buf[n] = '\0';
            *out = buf;
            *len = n;
            return 0;
        } else if (errno != EINTR) {
            int e = errno;
            free(buf);
            errno = e;
            return -1;
        }
    }
    errno = ENOMEM;
    return -1;
}

int files_read_all(const char *path, void **data, size_t *len, char *err, size_t errlen)
{
    assert(path && data && len);
    assert(err);
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 1;
    if (fd < 0)
        return files_errno(err, errlen, "cannot open", path);
    struct stat sb;
    size_t hint = fstat(fd, &sb) == 0 && sb.st_size > 0 ? (size_t)sb.st_size : 4096;
    char *buf = NULL;
    int rc = files_read_fd(fd, hint, &buf, len);
    if (rc != 0)
        files_errno(err, errlen, "cannot read", path);
    close(fd);
    *data = buf;
    return rc;
}

static int files_remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0; /* best effort: keep going */
}

void files_remove_tree(const char *path)
{
    assert(path);
    nftw(path, files_remove_one, 16, FTW_DEPTH | FTW_PHYS);
}
