/* app/kind_report.h: what report.pdf's two files share.
 *
 *   kind_report.c         the payload, the drawing, the handler
 *   kind_report_images.c  the payload's "images": fetched at once in the
 *                         worker, checked, decoded as PNG
 */
#ifndef COIL_APP_KIND_REPORT_H
#define COIL_APP_KIND_REPORT_H

#include "app/kinds.h"

#include <cairo.h>
#include <jansson.h>

/* The images of one report, in the payload's order. */
typedef struct app_report_images {
    cairo_surface_t *s[COIL_APP_REPORT_IMAGES_MAX]; /* image surfaces, owned */
    size_t n;
} app_report_images;

/* Fetches every URL of `urls` (a validated JSON array of strings) at once
 * with coil's HTTP client, by `deadline`, and decodes each as a PNG. A URL
 * must be allowed by --webhook-allow (the worker's environment), as a
 * webhook's is: a job cannot make coil fetch from the hosts of its choice.
 * Returns 0 with *im filled; or an error with a message naming the image in
 * msg: COIL_JOB_NO_RETRY for a URL that is not allowed, an answer other
 * than 200, or bytes that are not a PNG of at most
 * COIL_APP_REPORT_IMAGE_SIDE_MAX pixels a side; -EMSGSIZE past
 * COIL_APP_REPORT_IMAGE_BYTES_MAX; another fetch error (retried); the
 * interruption. On an error nothing is left in *im. Suspends. */
int app_report_fetch_images(const json_t *urls, coil_time deadline, app_report_images *im,
                            char *msg, size_t cap);
void app_report_images_free(app_report_images *im);

#endif
