/* app/import.c: coil import titles|ratings FILE, and coil gen titles|ratings
 * ROWS OUT (the generator of test data). */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/commands.h"
#include "titles/gen.h"
#include "titles/import.h"

/* Bulk work yields to serving: with every core busy, nice 10 gets a tenth
 * of the CPU that a nice-0 server thread gets when both want it. */
enum { IMPORT_NICE = 10 };

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: coil import titles FILE [--data DIR | --db PATH] [--skip-bad] [--rejects PATH]\n"
            "       coil import ratings FILE [--data DIR | --db PATH] [--skip-bad]\n"
            "\n"
            "Imports IMDB's title.basics.tsv(.gz) into DIR/titles.db (default ./var), or\n"
            "title.ratings.tsv(.gz) into an imported titles database. The titles import is\n"
            "atomic: it builds a new file and swaps it in at the end, so a failure, a bad\n"
            "line or Ctrl-C leaves the previous database as it was.\n"
            "\n"
            "  --skip-bad       count bad lines and write them to PATH.rejects.tsv (or\n"
            "                   --rejects PATH) instead of failing on the first\n"
            "\n"
            "The import runs at nice %d: a server on the same machine keeps its latency,\n"
            "and an idle machine gives the import all of its cores all the same.\n",
            IMPORT_NICE);
}

typedef struct bar {
    bool tty;
    double last_line;
} bar;

static void human(int64_t n, char *buf, size_t cap) {
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", (long long)n);
    size_t len = strlen(raw), out = 0;
    for (size_t i = 0; i < len && out + 2 < cap; i++) {
        if (i && (len - i) % 3 == 0) buf[out++] = ',';
        buf[out++] = raw[i];
    }
    buf[out] = '\0';
}

/* A bar on a terminal, redrawn in place; else a line every 5 s. */
static void show(void *arg, const titles_progress *p) {
    bar *b = arg;
    double frac = p->bytes_total > 0 ? (double)p->bytes_read / (double)p->bytes_total : 0;
    if (frac > 1) frac = 1;
    double rate = p->seconds > 0 ? (double)p->rows / p->seconds : 0;
    double eta = frac > 0.001 ? p->seconds * (1 - frac) / frac : 0;
    char rows[32], rps[32];
    human(p->rows, rows, sizeof rows);
    human((int64_t)rate, rps, sizeof rps);
    bool phase_rows = strcmp(p->phase, "rows") == 0;
    if (b->tty) {
        enum { WIDTH = 24 };
        char fill[WIDTH + 1];
        int done = (int)(frac * WIDTH);
        for (int i = 0; i < WIDTH; i++) fill[i] = i < done ? '#' : ' ';
        fill[WIDTH] = '\0';
        if (phase_rows)
            fprintf(stderr, "\r%3.0f%% [%s] %.1f/%.1f MB  %s rows  %s rows/s  ETA %d:%02d   ",
                    frac * 100, fill, (double)p->bytes_read / 1e6, (double)p->bytes_total / 1e6,
                    rows, rps, (int)eta / 60, (int)eta % 60);
        else
            fprintf(stderr, "\r%s rows loaded; %s...%30s", rows, p->phase, "");
        if (strcmp(p->phase, "done") == 0) fprintf(stderr, "\n");
        fflush(stderr);
        return;
    }
    if (phase_rows && p->seconds - b->last_line < 5) return;
    b->last_line = p->seconds;
    if (phase_rows)
        fprintf(stderr, "coil import: %.0f%% (%.1f of %.1f MB), %s rows, %s rows/s, ETA %.0f s\n",
                frac * 100, (double)p->bytes_read / 1e6, (double)p->bytes_total / 1e6, rows, rps,
                eta);
    else if (strcmp(p->phase, "done") != 0)
        fprintf(stderr, "coil import: %s rows loaded; %s\n", rows, p->phase);
}

int coil_cmd_import(int argc, char **argv) {
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 2 || (strcmp(argv[0], "titles") != 0 && strcmp(argv[0], "ratings") != 0)) {
        usage(stderr);
        return 2;
    }
    bool ratings = strcmp(argv[0], "ratings") == 0;
    titles_import_opts o = {.src = argv[1], .stop = &stop_requested};
    const char *data = "./var", *db = NULL;
    for (int i = 2; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--skip-bad") == 0) o.skip_bad = true;
        else if (strcmp(argv[i], "--data") == 0 && v) data = argv[++i];
        else if (strcmp(argv[i], "--db") == 0 && v) db = argv[++i];
        else if (strcmp(argv[i], "--rejects") == 0 && v) o.rejects = argv[++i];
        else {
            fprintf(stderr, "coil import: bad argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    char path[4096];
    if (db) snprintf(path, sizeof path, "%s", db);
    else snprintf(path, sizeof path, "%s/titles.db", data);
    o.db_path = path;
    bar b = {.tty = isatty(2) == 1};
    o.on_progress = show;
    o.arg = &b;
    struct sigaction sa = {.sa_handler = on_stop};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* Before the importer's threads start: they inherit it. A nice that
     * cannot be set (a seccomp filter, say) leaves the import as it was. */
    errno = 0;
    if (nice(IMPORT_NICE) == -1 && errno) fprintf(stderr, "coil import: nice: %s\n", strerror(errno));
    titles_import_result res;
    int err = ratings ? titles_import_ratings(&o, &res) : titles_import_basics(&o, &res);
    if (b.tty) fprintf(stderr, "\n");
    if (err) {
        fprintf(stderr, "coil import: %s; %s is unchanged\n", res.error, path);
        return err == -ECANCELED ? 130 : 1;
    }
    char rows[32], rps[32];
    human(res.rows, rows, sizeof rows);
    human(res.seconds > 0 ? (int64_t)((double)res.rows / res.seconds) : 0, rps, sizeof rps);
    if (ratings)
        printf("coil import: %s ratings in %.1f s (%s rows/s) into %s; %lld skipped%s\n", rows,
               res.seconds, rps, path, (long long)res.rejected,
               res.rejected ? " (bad lines, or no such title)" : "");
    else
        printf("coil import: %s titles, %lld genres, %lld bad lines skipped, in %.1f s (%s rows/s: "
               "rows %.1f s, indexes %.1f s, full-text index %.1f s) into %s\n",
               rows, (long long)res.genres, (long long)res.rejected, res.seconds, rps,
               res.load_seconds, res.index_seconds, res.fts_seconds, path);
    return 0;
}

int coil_cmd_gen(int argc, char **argv) {
    if (argc < 3 || (strcmp(argv[0], "titles") != 0 && strcmp(argv[0], "ratings") != 0)) {
        fprintf(stderr, "usage: coil gen titles|ratings ROWS OUT[.gz] [--seed N]\n"
                        "Writes IMDB-format test data (deterministic for ROWS and N).\n");
        return 2;
    }
    char *end;
    long long rows = strtoll(argv[1], &end, 10);
    uint64_t seed = 42;
    if (argc >= 5 && strcmp(argv[3], "--seed") == 0) seed = strtoull(argv[4], NULL, 10);
    if (*end || rows < 0) {
        fprintf(stderr, "coil gen: ROWS must be a count\n");
        return 2;
    }
    char err[512];
    int rc = strcmp(argv[0], "titles") == 0 ? titles_generate(argv[2], rows, seed, err, sizeof err)
                                            : titles_generate_ratings(argv[2], rows, seed, err,
                                                                      sizeof err);
    if (rc) {
        fprintf(stderr, "coil gen: %s\n", err);
        return 1;
    }
    return 0;
}
