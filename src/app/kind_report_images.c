/* app/kind_report_images.c: report.pdf's images, the seed's "gather the
 * downloads, then make the PDF".
 *
 * Every URL is checked against the allowlist first, so that a payload with
 * one forbidden URL fetches nothing. Then one task per image (coil_gather)
 * GETs it with coil's HTTP client on the worker's loop, with the body
 * bounded, no redirect followed (it could lead past the allowlist; a 3xx
 * fails like any answer but 200), and the deadline of the whole download
 * as a scope. The first
 * failure, in the payload's order, names its image. A body is decoded
 * from memory with cairo's PNG reader, which checks the signature and the
 * data; the size is checked after.
 */
#include "app/kind_notify.h"
#include "app/kind_report.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fetch {
    const char *url;
    int err;                    /* 0, or why this image failed */
    char why[160];              /* ... in words */
    cairo_surface_t *surface;   /* decoded, on success */
} fetch;

/* cairo's PNG reader over a memory buffer. */
typedef struct png_reader {
    const unsigned char *p;
    size_t left;
} png_reader;

static cairo_status_t png_read(void *closure, unsigned char *data, unsigned int length) {
    png_reader *r = closure;
    if (length > r->left) return CAIRO_STATUS_READ_ERROR;
    memcpy(data, r->p, length);
    r->p += length;
    r->left -= length;
    return CAIRO_STATUS_SUCCESS;
}

static int fetch_fail(fetch *f, int err, const char *why) {
    f->err = err;
    snprintf(f->why, sizeof f->why, "%s", why);
    return err;
}

/* Decodes f's body as a PNG. (cairo reports most bad data as
 * CAIRO_STATUS_NO_MEMORY: the signature is checked here first, and any
 * failure after it is the data's.) */
static int decode(fetch *f, const char *body, size_t len) {
    static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len < sizeof signature || memcmp(body, signature, sizeof signature) != 0)
        return fetch_fail(f, COIL_JOB_NO_RETRY, "not a PNG image");
    png_reader r = {(const unsigned char *)body, len};
    cairo_surface_t *s = cairo_image_surface_create_from_png_stream(png_read, &r);
    cairo_status_t st = cairo_surface_status(s);
    if (st != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return fetch_fail(f, COIL_JOB_NO_RETRY, "a PNG image that cannot be read");
    }
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    if (w < 1 || h < 1 || w > COIL_APP_REPORT_IMAGE_SIDE_MAX ||
        h > COIL_APP_REPORT_IMAGE_SIDE_MAX) {
        cairo_surface_destroy(s);
        char why[96];
        snprintf(why, sizeof why, "%dx%d pixels: at most %d a side", w, h,
                 COIL_APP_REPORT_IMAGE_SIDE_MAX);
        return fetch_fail(f, COIL_JOB_NO_RETRY, why);
    }
    f->surface = s;
    return 0;
}

static coil_result fetch_one(void *arg) {
    fetch *f = arg;
    /* No redirects: a 3xx could point anywhere, past the allowlist. */
    coil_http_client_request rq = {.url = f->url, .max_body = COIL_APP_REPORT_IMAGE_BYTES_MAX,
                                   .max_redirects = -1};
    coil_http_client_response res;
    int err = coil_http_fetch(&rq, &res);
    if (err == -EMSGSIZE) {
        char why[64];
        snprintf(why, sizeof why, "larger than %d bytes", COIL_APP_REPORT_IMAGE_BYTES_MAX);
        err = fetch_fail(f, err, why);
    } else if (err) {
        err = fetch_fail(f, err, coil_strerror(err));
    } else if (res.status != 200) {
        char why[48];
        snprintf(why, sizeof why, "answered %d", res.status);
        /* A server's own trouble may pass; a 4xx will not. */
        err = fetch_fail(f, res.status >= 500 ? -EIO : COIL_JOB_NO_RETRY, why);
    } else {
        err = decode(f, res.body, res.body_len);
    }
    coil_http_client_response_free(&res);
    return err ? coil_fail(err) : coil_ok(NULL);
}

void app_report_images_free(app_report_images *im) {
    for (size_t i = 0; i < im->n; i++) cairo_surface_destroy(im->s[i]);
    im->n = 0;
}

int app_report_fetch_images(const json_t *urls, coil_time deadline, app_report_images *im,
                            char *msg, size_t cap) {
    im->n = 0;
    msg[0] = '\0';
    size_t n = json_array_size(urls);
    if (n > COIL_APP_REPORT_IMAGES_MAX) n = COIL_APP_REPORT_IMAGES_MAX; /* validated */
    char buf[APP_NOTIFY_ALLOW_MAX * 257];
    app_notify allow;
    app_notify_from_env(&allow, buf, sizeof buf);
    fetch f[COIL_APP_REPORT_IMAGES_MAX];
    coil_call calls[COIL_APP_REPORT_IMAGES_MAX];
    for (size_t i = 0; i < n; i++) {
        f[i] = (fetch){.url = json_string_value(json_array_get(urls, i))};
        if (!app_notify_url_allowed(&allow, f[i].url)) {
            snprintf(msg, cap, "report.pdf: images[%zu]: the URL's host is not allowed "
                               "(--webhook-allow)", i);
            return COIL_JOB_NO_RETRY;
        }
        calls[i] = (coil_call){.fn = fetch_one, .arg = &f[i], .name = "report.pdf image"};
    }
    coil_scope sc;
    coil_scope_enter(&sc, deadline);
    int err = n ? coil_gather(calls, n) : 0;
    coil_scope_exit(&sc);
    for (size_t i = 0; i < n && err; i++) {
        if (!f[i].err) continue;
        snprintf(msg, cap, "report.pdf: images[%zu]: %s", i, f[i].why);
        err = f[i].err;
        break;
    }
    if (err && !msg[0]) snprintf(msg, cap, "report.pdf: images: %s", coil_strerror(err));
    for (size_t i = 0; i < n; i++) {
        if (!err) im->s[im->n++] = f[i].surface;
        else if (f[i].surface) cairo_surface_destroy(f[i].surface);
    }
    return err;
}
