/* app/kind_report.c: the report.pdf job kind, a multi-page A4 PDF drawn
 * with cairo in a worker process.
 *
 * Payload: {"title": string of 1..200 bytes,
 *           "subtitle": string of at most 200 bytes (optional),
 *           "rows": [{"label": string of at most 200 bytes,
 *                     "value": finite number}, ...],   (1..100000 rows)
 *           "images": [http(s) URL of a PNG, ...]}      (optional, 0..16)
 * Other members are ignored. Result: the PDF (application/pdf).
 *
 * An awaiting kind (COIL_JOB_AWAITING_HANDLER): the images are fetched at
 * once on the worker's loop (kind_report_images.c), then the pages are
 * drawn on a pool thread (coil_to_thread), so that the loop stays free to
 * hear a cancel and to relay the drawing's progress.
 *
 * The document:
 *   page 1    the title and subtitle; a summary (rows, total, minimum,
 *             maximum, mean); a horizontal bar chart of every row, or of
 *             the CHART_BARS largest values when there are more, with a
 *             value axis, its ticks and grid lines, and a line at zero.
 *   then      the images, IMAGES_PER_PAGE a page, each scaled to fit its
 *             half of the page, with its number and size under it.
 *   then      the table: COIL_APP_REPORT_ROWS_PER_PAGE rows a page, each
 *             with its number, label, value and share of the total, under
 *             a header row that every page repeats.
 * Every page ends with "page i of n"; without images,
 * coil_app_report_pages() gives n.
 *
 * Drawing goes page by page to a cairo PDF surface that writes into a
 * growing memory buffer. Between pages the drawing thread publishes its
 * progress, which the job's task relays, and stops with -ECANCELED once
 * the task is cancelled (coil_thread_cancelled).
 * cairo latches the first error in its context and surface: both are
 * checked after every page and after the surface is finished. Text uses
 * cairo's toy font API, with two faces each worker makes once and keeps
 * (cairo's objects are thread-safe to share);
 * strings too wide for their place are cut at a
 * character boundary and end with an ellipsis (the payload's strings are
 * valid UTF-8, which jansson guarantees).
 */
#include "app/kind_report.h"

#include <cairo-pdf.h>
#include <cairo.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A4 in points, and the page's layout. */
#define PAGE_W 595.276
#define PAGE_H 841.890
#define MARGIN 56.0
#define CONTENT_W (PAGE_W - 2 * MARGIN)
#define FOOTER_Y (PAGE_H - 30.0)

/* The table's columns: right edge of the number, left edge and width of
 * the label, right edges of the value and the share. */
#define COL_NUM_R (MARGIN + 40.0)
#define COL_LABEL_X (MARGIN + 54.0)
#define COL_LABEL_W 250.0
#define COL_VALUE_R (MARGIN + 400.0)
#define COL_SHARE_R (PAGE_W - MARGIN - 6.0)
#define TABLE_TOP 96.0   /* top of the header row */
#define ROW_H 16.0       /* 40 rows + header fit above the footer */

/* The chart on page 1: labels on the left, bars, values on the right. */
#define CHART_LABEL_W 130.0
#define CHART_X (MARGIN + CHART_LABEL_W + 8.0)
#define CHART_VALUE_W 84.0
#define CHART_W (CONTENT_W - CHART_LABEL_W - 8.0 - CHART_VALUE_W - 10.0)
#define CHART_TOP 300.0
#define CHART_BOTTOM 740.0
#define CHART_BAR_MAX_H 20.0

enum {
    CHART_BARS = 20, /* rows in the chart at most */
    TEXT_MAX = 256,  /* bytes of any string drawn (the payload's are 200) */
    NUM_MAX = 48,    /* a formatted number */
    AXIS_TICKS = 5,  /* ticks the axis aims for */
    IMAGES_PER_PAGE = 2,
};

typedef struct report_row {
    const char *label; /* borrowed from the payload's document */
    double value;
} report_row;

typedef struct report {
    const char *title;    /* borrowed from the payload's document */
    const char *subtitle; /* ditto, NULL if none */
    report_row *rows;     /* owned */
    size_t nrows;         /* 1..COIL_APP_REPORT_ROWS_MAX */
    long double total;    /* long double: 100000 values near DBL_MAX
                             cannot overflow it */
    double min, max;      /* of the values */
    const app_report_images *images; /* NULL if none */
    size_t image_pages;   /* pages of images, after the first */
    size_t pages;         /* every page: 1 + image_pages + the table's */
    size_t chart[CHART_BARS]; /* indexes of the rows charted, in order */
    size_t ncharted;
} report;

/* The PDF as cairo writes it. */
typedef struct membuf {
    unsigned char *data; /* malloc'd */
    size_t len, cap;     /* bytes written, bytes allocated */
    bool nomem;          /* a write failed for want of memory */
} membuf;

size_t coil_app_report_pages(size_t rows) {
    return 1 + (rows + COIL_APP_REPORT_ROWS_PER_PAGE - 1) / COIL_APP_REPORT_ROWS_PER_PAGE;
}

/* ------------------------------------------------------------------ validation */

static int check_row(const json_t *row, size_t i, char *msg, size_t cap) {
    if (!json_is_object(row)) return coil_app_reject(msg, cap, "rows[%zu] must be an object", i);
    size_t n;
    if (!coil_app_plain_string(json_object_get(row, "label"), &n) ||
        n > COIL_APP_REPORT_LABEL_MAX)
        return coil_app_reject(msg, cap, "rows[%zu].label must be a string of at most %d bytes",
                               i, COIL_APP_REPORT_LABEL_MAX);
    const json_t *v = json_object_get(row, "value");
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return coil_app_reject(msg, cap, "rows[%zu].value must be a finite number", i);
    return 0;
}

int coil_app_validate_report(const void *json, char *msg, size_t cap) {
    const json_t *doc = json;
    if (!json_is_object(doc)) return coil_app_reject(msg, cap, "payload must be a JSON object");
    size_t n;
    if (!coil_app_plain_string(json_object_get(doc, "title"), &n) || n < 1 ||
        n > COIL_APP_REPORT_TITLE_MAX)
        return coil_app_reject(msg, cap, "\"title\" must be a string of 1 to %d bytes",
                               COIL_APP_REPORT_TITLE_MAX);
    const json_t *sub = json_object_get(doc, "subtitle");
    if (sub && !json_is_null(sub) &&
        (!coil_app_plain_string(sub, &n) || n > COIL_APP_REPORT_TITLE_MAX))
        return coil_app_reject(msg, cap, "\"subtitle\" must be a string of at most %d bytes",
                               COIL_APP_REPORT_TITLE_MAX);
    const json_t *rows = json_object_get(doc, "rows");
    if (!json_is_array(rows) || json_array_size(rows) < 1 ||
        json_array_size(rows) > COIL_APP_REPORT_ROWS_MAX)
        return coil_app_reject(msg, cap, "\"rows\" must be an array of 1 to %d rows",
                               COIL_APP_REPORT_ROWS_MAX);
    for (size_t i = 0; i < json_array_size(rows); i++) {
        int err = check_row(json_array_get(rows, i), i, msg, cap);
        if (err) return err;
    }
    const json_t *images = json_object_get(doc, "images");
    if (!images || json_is_null(images)) return 0;
    if (!json_is_array(images) || json_array_size(images) > COIL_APP_REPORT_IMAGES_MAX)
        return coil_app_reject(msg, cap, "\"images\" must be an array of at most %d URLs",
                               COIL_APP_REPORT_IMAGES_MAX);
    for (size_t i = 0; i < json_array_size(images); i++) {
        const char *url = json_string_value(json_array_get(images, i));
        if (!coil_app_plain_string(json_array_get(images, i), &n) ||
            n > COIL_APP_REPORT_URL_MAX ||
            (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
            return coil_app_reject(msg, cap, "images[%zu] must be an http(s) URL of at most %d "
                                   "bytes", i, COIL_APP_REPORT_URL_MAX);
    }
    return 0;
}

/* ------------------------------------------------------------------ the data */

/* Keeps the CHART_BARS largest values, largest first (the earlier row
 * first among equals), or every row in its order if there are few. */
static void pick_charted(report *r) {
    if (r->nrows <= CHART_BARS) {
        for (size_t i = 0; i < r->nrows; i++) r->chart[i] = i;
        r->ncharted = r->nrows;
        return;
    }
    r->ncharted = 0;
    for (size_t i = 0; i < r->nrows; i++) {
        double v = r->rows[i].value;
        size_t at = r->ncharted;
        while (at > 0 && r->rows[r->chart[at - 1]].value < v) at--;
        if (at >= CHART_BARS) continue;
        size_t keep = r->ncharted < CHART_BARS ? r->ncharted : CHART_BARS - 1;
        memmove(&r->chart[at + 1], &r->chart[at], (keep - at) * sizeof r->chart[0]);
        r->chart[at] = i;
        if (r->ncharted < CHART_BARS) r->ncharted++;
    }
}

/* Fills *r from a validated document and its fetched images, which must
 * outlive it. */
static int report_load(report *r, const json_t *doc, const app_report_images *images) {
    memset(r, 0, sizeof *r);
    r->title = json_string_value(json_object_get(doc, "title"));
    r->subtitle = json_string_value(json_object_get(doc, "subtitle")); /* NULL if absent */
    const json_t *rows = json_object_get(doc, "rows");
    r->nrows = json_array_size(rows);
    r->rows = malloc(r->nrows * sizeof *r->rows);
    if (!r->rows) return -ENOMEM;
    r->min = INFINITY;
    r->max = -INFINITY;
    for (size_t i = 0; i < r->nrows; i++) {
        const json_t *row = json_array_get(rows, i);
        double v = json_number_value(json_object_get(row, "value"));
        r->rows[i] = (report_row){json_string_value(json_object_get(row, "label")), v};
        r->total += v;
        if (v < r->min) r->min = v;
        if (v > r->max) r->max = v;
    }
    if (images->n) r->images = images;
    r->image_pages = (images->n + IMAGES_PER_PAGE - 1) / IMAGES_PER_PAGE;
    r->pages = coil_app_report_pages(r->nrows) + r->image_pages;
    pick_charted(r);
    return 0;
}

/* ------------------------------------------------------------------ text */

/* "1,234,567.89" for values of ordinary size, "%.4g" for the others. Long
 * double for the total, which may be past DBL_MAX. */
static void format_value(char *out, size_t cap, long double v) {
    if (fabsl(v) >= 1e12L || (v != 0 && fabsl(v) < 0.01L)) {
        snprintf(out, cap, "%.4Lg", v);
        return;
    }
    char digits[NUM_MAX];
    snprintf(digits, sizeof digits, "%.2Lf", fabsl(v));
    size_t int_len = strcspn(digits, "."), o = 0;
    if (v < 0) out[o++] = '-';
    for (size_t i = 0; digits[i] && o + 2 < cap; i++) {
        if (i > 0 && i < int_len && (int_len - i) % 3 == 0) out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
}

/* The report's two faces, regular and bold, made on first use and kept for
 * the life of the worker process: cairo leaks a little fontconfig memory
 * each time it makes a toy face anew (and fontconfig some of its
 * configuration when it loads it), and a worker runs many jobs. That
 * memory, allocated once per process, is hidden from LeakSanitizer, which
 * would otherwise report it when every worker exits. */
static cairo_font_face_t *faces[2];

#if defined(__SANITIZE_ADDRESS__)
#define COIL_APP_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COIL_APP_LSAN 1
#endif
#endif
#ifdef COIL_APP_LSAN
#include <sanitizer/lsan_interface.h>
#else
#define __lsan_disable() ((void)0)
#define __lsan_enable() ((void)0)
#endif

/* Makes a face and a font of it, which loads fontconfig's configuration
 * (once per process) and finds a real font behind the toy face. */
static cairo_font_face_t *make_face(bool bold, cairo_status_t *st) {
    cairo_font_face_t *f =
        cairo_toy_font_face_create("sans-serif", CAIRO_FONT_SLANT_NORMAL,
                                   bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_matrix_t m;
    cairo_matrix_init_identity(&m);
    cairo_font_options_t *opts = cairo_font_options_create();
    cairo_scaled_font_t *font = cairo_scaled_font_create(f, &m, &m, opts);
    *st = cairo_font_face_status(f);
    if (*st == CAIRO_STATUS_SUCCESS) *st = cairo_font_options_status(opts);
    if (*st == CAIRO_STATUS_SUCCESS) *st = cairo_scaled_font_status(font);
    cairo_scaled_font_destroy(font);
    cairo_font_options_destroy(opts);
    return f;
}

/* The drawings of a worker's jobs run on pool threads at once: the first
 * to come makes the faces, under this lock, and they are kept. */
static pthread_mutex_t faces_lock = PTHREAD_MUTEX_INITIALIZER;

static cairo_status_t load_faces_locked(void) {
    for (int bold = 0; bold < 2; bold++) {
        if (faces[bold]) continue;
        cairo_status_t st;
        __lsan_disable();
        cairo_font_face_t *f = make_face(bold, &st);
        __lsan_enable();
        if (st != CAIRO_STATUS_SUCCESS) {
            cairo_font_face_destroy(f);
            return st;
        }
        faces[bold] = f;
    }
    return CAIRO_STATUS_SUCCESS;
}

static cairo_status_t load_faces(void) {
    pthread_mutex_lock(&faces_lock);
    cairo_status_t st = load_faces_locked();
    pthread_mutex_unlock(&faces_lock);
    return st;
}

static void set_font(cairo_t *cr, double size, bool bold) {
    cairo_set_font_face(cr, faces[bold]);
    cairo_set_font_size(cr, size);
}

static double text_width(cairo_t *cr, const char *s) {
    cairo_text_extents_t ext;
    cairo_text_extents(cr, s, &ext);
    return ext.x_advance;
}

/* Copies the first `keep` bytes of s into out, with an ellipsis. */
static void cut(char *out, const char *s, size_t keep) {
    memcpy(out, s, keep);
    memcpy(out + keep, "\xe2\x80\xa6", 4); /* U+2026, and the NUL */
}

/* Copies s into out (TEXT_MAX bytes), cut to fit max_w at the current
 * font with a binary search over its character boundaries. */
static void fit_text(cairo_t *cr, char *out, const char *s, double max_w) {
    size_t len = strlen(s);
    if (len > TEXT_MAX - 4) len = TEXT_MAX - 4;
    while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80) len--; /* not mid-character */
    memcpy(out, s, len);
    out[len] = '\0';
    if (text_width(cr, out) <= max_w) return;
    size_t starts[TEXT_MAX], n = 0; /* offsets where a character starts */
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) starts[n++] = i;
    size_t lo = 0, hi = n; /* keeping lo characters fits, hi does not */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        cut(out, s, starts[mid]);
        if (text_width(cr, out) <= max_w) lo = mid;
        else hi = mid;
    }
    cut(out, s, lo < n ? starts[lo] : len);
}

/* Draws s with its baseline at y: left-aligned at x (align < 0), centred
 * on x (0) or right-aligned at x (> 0), cut to max_w. */
static void show(cairo_t *cr, double x, double y, int align, double max_w, const char *s) {
    char text[TEXT_MAX];
    fit_text(cr, text, s, max_w);
    double w = align < 0 ? 0 : text_width(cr, text);
    cairo_move_to(cr, align < 0 ? x : align == 0 ? x - w / 2 : x - w, y);
    cairo_show_text(cr, text);
}

/* ------------------------------------------------------------------ page 1 */

static void draw_summary(cairo_t *cr, const report *r, double y) {
    char rows[NUM_MAX], total[NUM_MAX], min[NUM_MAX], max[NUM_MAX], mean[NUM_MAX];
    snprintf(rows, sizeof rows, "%zu", r->nrows);
    format_value(total, sizeof total, r->total);
    format_value(min, sizeof min, r->min);
    format_value(max, sizeof max, r->max);
    format_value(mean, sizeof mean, r->total / (long double)r->nrows);
    const char *names[] = {"Rows", "Total", "Minimum", "Maximum", "Mean"};
    const char *values[] = {rows, total, min, max, mean};
    cairo_set_source_rgb(cr, 0.96, 0.96, 0.97);
    cairo_rectangle(cr, MARGIN, y, CONTENT_W, 5 * 18.0 + 16);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    for (int i = 0; i < 5; i++) {
        double line = y + 22 + i * 18.0;
        set_font(cr, 11, true);
        show(cr, MARGIN + 12, line, -1, 100, names[i]);
        set_font(cr, 11, false);
        show(cr, MARGIN + 260, line, 1, 140, values[i]);
    }
}

/* A step of 1, 2 or 5 times a power of ten that cuts `range` into about
 * AXIS_TICKS parts. */
static long double tick_step(long double range) {
    long double raw = range / AXIS_TICKS;
    long double mag = powl(10.0L, floorl(log10l(raw)));
    long double f = raw / mag;
    return (f < 1.5L ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/* The value axis, from lo to hi (multiples of step), with its grid. A
 * tick's label that would touch the previous one is left out. */
static void draw_axis(cairo_t *cr, long double lo, long double hi, long double step,
                      double bottom) {
    set_font(cr, 8, false);
    cairo_set_line_width(cr, 0.5);
    double label_end = -INFINITY; /* right edge of the last label drawn */
    for (int i = 0; i <= 4 * AXIS_TICKS; i++) {
        long double t = lo + step * i;
        if (t > hi + step / 2) break;
        double x = CHART_X + (double)((t - lo) / (hi - lo)) * CHART_W;
        cairo_set_source_rgb(cr, 0.85, 0.85, 0.85);
        cairo_move_to(cr, x, CHART_TOP);
        cairo_line_to(cr, x, bottom + 4);
        cairo_stroke(cr);
        char label[NUM_MAX];
        snprintf(label, sizeof label, "%.6Lg", fabsl(t) < step / 1e6L ? 0.0L : t);
        double w = text_width(cr, label);
        if (x - w / 2 < label_end + 6) continue;
        label_end = x + w / 2;
        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        show(cr, x, bottom + 14, 0, 80, label);
    }
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_move_to(cr, CHART_X, bottom);
    cairo_line_to(cr, CHART_X + CHART_W, bottom);
    cairo_stroke(cr);
}

static void draw_chart(cairo_t *cr, const report *r) {
    long double lo = 0, hi = 0; /* the scale spans zero and every bar */
    for (size_t i = 0; i < r->ncharted; i++) {
        long double v = r->rows[r->chart[i]].value;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    if (hi == lo) hi = 1; /* all zeros */
    long double step = tick_step(hi - lo);
    lo = floorl(lo / step) * step;
    hi = ceill(hi / step) * step;
    double slot = (CHART_BOTTOM - CHART_TOP) / (double)r->ncharted;
    double bar_h = slot * 0.7 < CHART_BAR_MAX_H ? slot * 0.7 : CHART_BAR_MAX_H;
    if (slot > CHART_BAR_MAX_H / 0.7) slot = CHART_BAR_MAX_H / 0.7;
    double bottom = CHART_TOP + slot * (double)r->ncharted;
    draw_axis(cr, lo, hi, step, bottom);
    double zero = CHART_X + (double)(-lo / (hi - lo)) * CHART_W;
    for (size_t i = 0; i < r->ncharted; i++) {
        const report_row *row = &r->rows[r->chart[i]];
        double x = CHART_X + (double)(((long double)row->value - lo) / (hi - lo)) * CHART_W;
        double y = CHART_TOP + slot * (double)i + (slot - bar_h) / 2;
        if (row->value < 0) cairo_set_source_rgb(cr, 0.85, 0.42, 0.33);
        else cairo_set_source_rgb(cr, 0.27, 0.51, 0.71);
        cairo_rectangle(cr, fmin(x, zero), y, fabs(x - zero), bar_h);
        cairo_fill(cr);
        double base = y + bar_h / 2 + 3;
        set_font(cr, 8, false);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        show(cr, CHART_X - 8, base, 1, CHART_LABEL_W, row->label);
        char value[NUM_MAX];
        format_value(value, sizeof value, row->value);
        show(cr, PAGE_W - MARGIN, base, 1, CHART_VALUE_W, value);
    }
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    cairo_set_line_width(cr, 1);
    cairo_move_to(cr, zero, CHART_TOP - 4);
    cairo_line_to(cr, zero, bottom);
    cairo_stroke(cr);
}

static void draw_first_page(cairo_t *cr, const report *r) {
    cairo_set_source_rgb(cr, 0.05, 0.05, 0.05);
    set_font(cr, 22, true);
    show(cr, MARGIN, MARGIN + 24, -1, CONTENT_W, r->title);
    double y = MARGIN + 40;
    if (r->subtitle && r->subtitle[0]) {
        cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
        set_font(cr, 13, false);
        show(cr, MARGIN, y + 8, -1, CONTENT_W, r->subtitle);
        y += 22;
    }
    draw_summary(cr, r, y + 10);
    char heading[96];
    if (r->nrows > CHART_BARS)
        snprintf(heading, sizeof heading, "The %d largest values of %zu rows", CHART_BARS,
                 r->nrows);
    else if (r->nrows > 1)
        snprintf(heading, sizeof heading, "All %zu rows", r->nrows);
    else
        snprintf(heading, sizeof heading, "The only row");
    cairo_set_source_rgb(cr, 0.05, 0.05, 0.05);
    set_font(cr, 13, true);
    show(cr, MARGIN, CHART_TOP - 20, -1, CONTENT_W, heading);
    draw_chart(cr, r);
}

/* ------------------------------------------------------------------ image pages */

/* Draws image page `page` (0 for the first): each image scaled, never up,
 * to fit its box, and centred in it. */
static void draw_image_page(cairo_t *cr, const report *r, size_t page) {
    const double top = MARGIN + 20, box_h = (FOOTER_Y - 30 - top) / IMAGES_PER_PAGE;
    cairo_set_source_rgb(cr, 0.05, 0.05, 0.05);
    set_font(cr, 11, true);
    show(cr, MARGIN, MARGIN + 10, -1, CONTENT_W, r->title);
    for (size_t k = 0; k < IMAGES_PER_PAGE; k++) {
        size_t i = page * IMAGES_PER_PAGE + k;
        if (i >= r->images->n) break;
        cairo_surface_t *img = r->images->s[i];
        double w = cairo_image_surface_get_width(img), h = cairo_image_surface_get_height(img);
        double box_top = top + box_h * (double)k, fit_h = box_h - 24;
        double scale = fmin(1.0, fmin(CONTENT_W / w, fit_h / h));
        double x = MARGIN + (CONTENT_W - w * scale) / 2, y = box_top + (fit_h - h * scale) / 2;
        cairo_save(cr);
        cairo_translate(cr, x, y);
        cairo_scale(cr, scale, scale);
        cairo_set_source_surface(cr, img, 0, 0);
        cairo_paint(cr);
        cairo_restore(cr);
        char caption[64];
        snprintf(caption, sizeof caption, "image %zu of %zu, %.0f x %.0f pixels", i + 1,
                 r->images->n, w, h);
        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        set_font(cr, 9, false);
        show(cr, PAGE_W / 2, box_top + box_h - 8, 0, CONTENT_W, caption);
    }
}

/* ------------------------------------------------------------------ table pages */

static void draw_table_header(cairo_t *cr, const report *r, size_t first, size_t end) {
    cairo_set_source_rgb(cr, 0.05, 0.05, 0.05);
    set_font(cr, 11, true);
    show(cr, MARGIN, MARGIN + 10, -1, CONTENT_W - 150, r->title);
    char range[96];
    snprintf(range, sizeof range, "rows %zu to %zu of %zu", first + 1, end, r->nrows);
    set_font(cr, 9, false);
    show(cr, PAGE_W - MARGIN, MARGIN + 10, 1, 150, range);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.25);
    cairo_rectangle(cr, MARGIN, TABLE_TOP, CONTENT_W, ROW_H);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    set_font(cr, 9, true);
    double base = TABLE_TOP + ROW_H - 4.5;
    show(cr, COL_NUM_R, base, 1, 44, "#");
    show(cr, COL_LABEL_X, base, -1, COL_LABEL_W, "Label");
    show(cr, COL_VALUE_R, base, 1, 130, "Value");
    show(cr, COL_SHARE_R, base, 1, 70, "Share");
}

/* Draws table page `page` (1 for the first table page). */
static void draw_table_page(cairo_t *cr, const report *r, size_t page) {
    size_t first = (page - 1) * COIL_APP_REPORT_ROWS_PER_PAGE;
    size_t end = first + COIL_APP_REPORT_ROWS_PER_PAGE;
    if (end > r->nrows) end = r->nrows;
    draw_table_header(cr, r, first, end);
    set_font(cr, 9, false);
    for (size_t i = first; i < end; i++) {
        double top = TABLE_TOP + ROW_H * (double)(i - first + 1);
        if ((i - first) % 2) {
            cairo_set_source_rgb(cr, 0.94, 0.95, 0.97);
            cairo_rectangle(cr, MARGIN, top, CONTENT_W, ROW_H);
            cairo_fill(cr);
        }
        double base = top + ROW_H - 4.5;
        char num[NUM_MAX], value[NUM_MAX], share[NUM_MAX] = "-";
        snprintf(num, sizeof num, "%zu", i + 1);
        format_value(value, sizeof value, r->rows[i].value);
        long double pct = r->total != 0 ? (long double)r->rows[i].value * 100 / r->total : 0;
        if (r->total != 0) /* no "-0.00%" */
            snprintf(share, sizeof share, "%.2Lf%%", fabsl(pct) < 0.005L ? 0.0L : pct);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        show(cr, COL_NUM_R, base, 1, 44, num);
        show(cr, COL_LABEL_X, base, -1, COL_LABEL_W, r->rows[i].label);
        show(cr, COL_VALUE_R, base, 1, 130, value);
        show(cr, COL_SHARE_R, base, 1, 70, share);
    }
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    cairo_set_line_width(cr, 0.5);
    cairo_move_to(cr, MARGIN, TABLE_TOP + ROW_H * (double)(end - first + 1));
    cairo_rel_line_to(cr, CONTENT_W, 0);
    cairo_stroke(cr);
}

static void draw_footer(cairo_t *cr, const report *r, size_t page) {
    char text[64];
    snprintf(text, sizeof text, "page %zu of %zu", page + 1, r->pages);
    cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
    set_font(cr, 9, false);
    show(cr, PAGE_W / 2, FOOTER_Y, 0, CONTENT_W, text);
}

/* ------------------------------------------------------------------ the PDF */

static cairo_status_t membuf_write(void *closure, const unsigned char *data,
                                   unsigned int length) {
    membuf *b = closure;
    if (length > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 64 * 1024;
        while (cap - b->len < length) cap *= 2;
        unsigned char *grown = realloc(b->data, cap);
        if (!grown) {
            b->nomem = true;
            return CAIRO_STATUS_WRITE_ERROR;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, length);
    b->len += length;
    return CAIRO_STATUS_SUCCESS;
}

/* What the drawing thread and the job's task share. */
typedef struct drawing {
    const report *r;
    membuf b;             /* the PDF */
    atomic_int page;      /* pages drawn so far */
    int err;              /* the drawing's outcome */
    char msg[128];        /* its failure, in words */
} drawing;

/* Records cairo's reason for a failure. */
static int cairo_failed(drawing *d, cairo_status_t st) {
    if (d->b.nomem || st == CAIRO_STATUS_NO_MEMORY) {
        snprintf(d->msg, sizeof d->msg, "report.pdf: out of memory");
        return -ENOMEM;
    }
    snprintf(d->msg, sizeof d->msg, "report.pdf: cairo: %s", cairo_status_to_string(st));
    return -EIO;
}

/* Draws every page; stops at the first cairo error or a cancellation. */
static int draw_pages(cairo_t *cr, drawing *d) {
    const report *r = d->r;
    for (size_t page = 0; page < r->pages; page++) {
        if (coil_thread_cancelled()) return -ECANCELED;
        if (page == 0) draw_first_page(cr, r);
        else if (page <= r->image_pages) draw_image_page(cr, r, page - 1);
        else draw_table_page(cr, r, page - r->image_pages);
        draw_footer(cr, r, page);
        cairo_show_page(cr);
        cairo_status_t st = cairo_status(cr);
        if (st != CAIRO_STATUS_SUCCESS) return cairo_failed(d, st);
        atomic_store(&d->page, (int)(page + 1));
    }
    return 0;
}

/* On a pool thread: renders the report into d->b. */
static void *render(void *arg) {
    drawing *d = arg;
    cairo_status_t st = load_faces();
    if (st != CAIRO_STATUS_SUCCESS) {
        d->err = cairo_failed(d, st);
        return NULL;
    }
    cairo_surface_t *s = cairo_pdf_surface_create_for_stream(membuf_write, &d->b, PAGE_W, PAGE_H);
    st = cairo_surface_status(s);
    if (st != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        d->err = cairo_failed(d, st);
        return NULL;
    }
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_TITLE, d->r->title);
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR, "coil report.pdf");
    cairo_t *cr = cairo_create(s);
    st = cairo_status(cr);
    int err = st == CAIRO_STATUS_SUCCESS ? draw_pages(cr, d) : cairo_failed(d, st);
    cairo_destroy(cr);
    cairo_surface_finish(s);
    st = cairo_surface_status(s);
    if (err == 0 && st != CAIRO_STATUS_SUCCESS) err = cairo_failed(d, st);
    cairo_surface_destroy(s);
    d->err = err;
    return NULL;
}

/* A task beside the drawing: relays its page count as progress, every
 * PROGRESS_EVERY, until cancelled. */
#define PROGRESS_EVERY COIL_MSEC(100)

typedef struct relay {
    drawing *d;
    coil_job_ctx *ctx;
} relay;

static coil_result relay_progress(void *arg) {
    relay *rl = arg;
    int last = 0;
    while (coil_sleep(PROGRESS_EVERY) == 0) {
        int page = atomic_load(&rl->d->page);
        if (page == last) continue;
        last = page;
        char msg[64];
        snprintf(msg, sizeof msg, "page %d of %zu", page, rl->d->r->pages);
        coil_job_progress(rl->ctx, (int)((size_t)page * 99 / rl->d->r->pages), msg);
    }
    return coil_ok(NULL);
}

/* Draws the report on a pool thread while a sibling task relays its
 * progress. Returns 0 with the PDF in d->b, or the error (message in
 * d->msg, or none for the job's own interruption). Suspends. */
static int draw(drawing *d, coil_job_ctx *ctx) {
    char msg[64];
    snprintf(msg, sizeof msg, "drawing %zu pages", d->r->pages);
    if (coil_job_progress(ctx, 0, msg) == -EPIPE) return -EPIPE;
    relay rl = {d, ctx};
    coil_task *t = coil_spawn_named("report.pdf progress", relay_progress, &rl);
    int err = coil_to_thread(render, d, NULL); /* returns once render has */
    if (t) {
        coil_cancel(t);
        coil_join(t, NULL);
    }
    if (err) return err;
    if (!d->err && coil_job_progress(ctx, 100, "done") == -EPIPE) return -EPIPE;
    return d->err;
}

static int report_pdf(const void *payload, size_t len, coil_job_ctx *ctx) {
    void *doc;
    int err = coil_app_parse_payload(payload, len, ctx, coil_app_validate_report, &doc);
    if (err) return err;
    app_report_images images = {0};
    char msg[256];
    err = app_report_fetch_images(json_object_get(doc, "images"),
                                  coil_now() + COIL_APP_REPORT_IMAGES_TIMEOUT, &images, msg,
                                  sizeof msg);
    if (err) {
        coil_job_set_error(ctx, msg);
        json_decref(doc);
        return err;
    }
    report r;
    drawing d = {.r = &r};
    err = report_load(&r, doc, &images);
    if (err) {
        coil_job_set_error(ctx, "report.pdf: out of memory");
        goto out;
    }
    err = draw(&d, ctx);
    if (err && d.msg[0]) coil_job_set_error(ctx, d.msg);
    if (err == 0) err = coil_job_set_result(ctx, d.b.data, d.b.len, "application/pdf");
out:
    free(d.b.data);
    free(r.rows);
    app_report_images_free(&images);
    json_decref(doc);
    return err;
}
/* Four at once in a worker: their downloads wait on the network, and their
 * drawing is on pool threads. */
COIL_JOB_AWAITING_HANDLER("report.pdf", report_pdf, 4)
