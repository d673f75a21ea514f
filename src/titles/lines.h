/* titles/lines.h: a .tsv or .tsv.gz file as a stream of lines, in bounded
 * memory.
 *
 * zlib's gzread() inflates a gzip file (and passes a plain file through)
 * into a 4 MiB buffer; lines are cut there, a partial last line carried to
 * the next read. A line longer than 1 MiB is an error, not a reason to
 * grow. One thread at a time uses a titles_lines; nothing here suspends.
 */
#ifndef COIL_TITLES_LINES_H
#define COIL_TITLES_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

typedef struct titles_lines {
    gzFile gz;       /* owns fd once opened */
    int fd;          /* -1 until opened */
    char *buf;       /* READ_BUF bytes, owned */
    size_t len, at;  /* bytes in buf, and where the next line starts */
    bool eof;        /* gzread() has returned everything */
    int64_t line;    /* the number of the line last returned (1: the header) */
    int64_t total;   /* the file's size in bytes, as stored */
    const char *path; /* borrowed: named in errors */
} titles_lines;

/* Opens `path` (borrowed for the reader's life). Returns 0 or a negative
 * errno with the reason in err. titles_lines_close() is due either way. */
int titles_lines_open(titles_lines *r, const char *path, char *err, size_t cap);
void titles_lines_close(titles_lines *r);

/* The next line, without its '\n', into *line and *len: valid until the
 * next call. Returns 1, 0 at the end of the file, or a negative errno with
 * err (a truncated gzip, a read error, a line too long). */
int titles_lines_next(titles_lines *r, const char **line, size_t *len, char *err, size_t cap);

/* Bytes of the file consumed so far (compressed bytes for a gzip). */
int64_t titles_lines_offset(titles_lines *r);

/* Checks that the first line is `header` exactly (a '\r' before its '\n'
 * allowed). Returns 0, or -EINVAL naming `what` in err ("title.basics.tsv"),
 * or the error of reading it. */
int titles_lines_header(titles_lines *r, const char *header, const char *what, char *err,
                        size_t cap);

#endif
