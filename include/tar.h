/* tar — ustar archives in memory: a writer of regular files (the SAELens
 * folder saed serves as saelens.tar) and a strict reader (the tar a client
 * posts to import an SAE). Pure: no I/O.
 *
 * Layout (POSIX ustar): per file a 512-byte header (name, octal mode, size,
 * mtime, checksum, type, magic "ustar\0" "00"), then the data padded with
 * zeros to a multiple of 512; two zero blocks end the archive.
 *
 * The reader takes what tar(1) and Python's tarfile write: POSIX ustar and
 * GNU ("ustar  \0") headers, directory entries (skipped by callers), and PAX
 * extended headers ('x': their "path" and "size" records apply to the next
 * entry, other keys such as mtime are ignored; 'g' global headers are
 * ignored). It refuses everything else with a message: a bad checksum, a
 * non-octal or base-256 number, links, devices, GNU long names ('L', 'K'),
 * data past the buffer's end, an absolute path or one with a ".." or empty
 * component, a name with control characters, and an archive with no
 * end-of-archive block (truncated). Entry data are pointers into the
 * caller's buffer, bounds checked. */
#ifndef SAED_TAR_H
#define SAED_TAR_H
#include <stddef.h>
#include <stdint.h>

#define TAR_BLOCK 512
#define TAR_PATH_MAX 255   /* longest entry path the reader accepts (after "./" is stripped) */
#define TAR_PAX_MAX 65536  /* largest PAX extended header the reader accepts */

/* ---- writing ---- */

typedef struct {
    const char *name; /* at most 99 bytes of [A-Za-z0-9._-/], relative */
    const void *data; /* (len) */
    size_t len;
} tar_file;

/* The bytes of an archive holding files f[0..n) (headers, padded data, two
 * zero blocks); SIZE_MAX on overflow. */
size_t tar_archive_size(const tar_file *f, int n);
/* Writes that archive into out (tar_archive_size bytes), each file with mode
 * 0644 and the given mtime (seconds since 1970, >= 0). 0, or -1 when a name
 * breaks the rules above or out_len is not tar_archive_size(f, n). */
int tar_write(const tar_file *f, int n, int64_t mtime, unsigned char *out, size_t out_len);

/* ---- reading ---- */

typedef struct {
    char path[TAR_PATH_MAX + 1]; /* relative, "./" prefixes and a trailing "/" removed */
    int is_dir;                  /* 1: a directory entry (no data) */
    const unsigned char *data;   /* (size) into the archive buffer */
    uint64_t size;
} tar_entry;

typedef struct {
    const unsigned char *buf; /* (len) the archive */
    size_t len, off;          /* off: the next header's offset */
    int done;                 /* the end-of-archive block was read */
} tar_reader;

void tar_reader_init(tar_reader *r, const void *buf, size_t len);
/* The next file or directory: 1 with *e filled, 0 at the end of the archive,
 * -1 with a message in err (which says what to do). */
int tar_next(tar_reader *r, tar_entry *e, char *err, size_t errlen);

#endif
