/* fuzzutil — memfd-backed files and invariant checks for the fuzz targets. */
#include "fuzzutil.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int fuzzutil_file_make(fuzzutil_file *f, const uint8_t *data, size_t len)
{
    f->fd = memfd_create("saed-fuzz", MFD_CLOEXEC);
    if (f->fd < 0)
        return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t k = write(f->fd, data + done, len - done);
        if (k <= 0) {
            close(f->fd);
            return -1;
        }
        done += (size_t)k;
    }
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
    return 0;
}

void fuzzutil_file_drop(fuzzutil_file *f)
{
    close(f->fd);
}

void fuzzutil_require(int cond, const char *what)
{
    if (cond)
        return;
    fprintf(stderr, "fuzz invariant broken: %s\n", what);
    abort();
}
