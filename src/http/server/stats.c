/* http/server/stats.c: request counters and latency percentiles, without locks.
 *
 * Each worker keeps its own figures and is their only writer, so the hot
 * path is a few relaxed loads and stores (plain moves on x86), with no
 * atomic read-modify-write and no lock. Readers (get_stats, /metrics) on
 * any thread sum the workers' figures; they may see a request counted in
 * one figure and not yet in another, which is harmless for monitoring.
 *
 * A request is counted when its response's head is written (before the
 * client can read it), and its latency runs from its first byte to then.
 * Latencies go to log-linear histograms: eight buckets per power of two of
 * nanoseconds, so a percentile is known within about 6 %. The recent
 * window is a ring of COIL__HIST_SLOTS histograms, one per period of
 * COIL__HIST_PERIOD: a writer entering a new period clears the slot it
 * reuses, and a reader takes the slots whose period is within the window
 * (the last three periods and the current one: 15 to 20 s).
 */
#include "http/server/core.h"

#include <string.h>

#define RELAXED memory_order_relaxed

static size_t bucket_of(uint64_t v) {
    if (v < 8) return (size_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    return 8 + (size_t)(msb - 3) * 8 + (size_t)((v >> (msb - 3)) & 7);
}

/* The middle of bucket b, in ns. */
static uint64_t bucket_value(size_t b) {
    if (b < 8) return b;
    unsigned shift = (unsigned)((b - 8) / 8);
    uint64_t low = (8 + (b - 8) % 8) << shift;
    return low + ((1ull << shift) >> 1);
}

static void bump(_Atomic uint64_t *c, uint64_t by) {
    atomic_store_explicit(c, atomic_load_explicit(c, RELAXED) + by, RELAXED);
}

void coil__http_stats_record(coil__http_stats *st, int status, coil_time start, coil_time now) {
    coil__http_count(&st->requests);
    int cls = status / 100;
    if (cls >= 1 && cls <= 5) coil__http_count(&st->status[cls]);
    uint64_t ns = now > start ? (uint64_t)(now - start) : 0;
    uint64_t epoch = (uint64_t)now / (uint64_t)COIL__HIST_PERIOD + 1;
    coil__http_hist *h = &st->hist[epoch % COIL__HIST_SLOTS];
    if (atomic_load_explicit(&h->epoch, RELAXED) != epoch) {
        for (size_t i = 0; i < COIL__HIST_BUCKETS; i++) atomic_store_explicit(&h->count[i], 0, RELAXED);
        atomic_store_explicit(&h->max, 0, RELAXED);
        atomic_store_explicit(&h->epoch, epoch, memory_order_release);
    }
    bump(&h->count[bucket_of(ns)], 1);
    if (ns > atomic_load_explicit(&h->max, RELAXED)) atomic_store_explicit(&h->max, ns, RELAXED);
}

/* The q-quantile of a merged histogram, in ns. */
static uint64_t quantile(const uint64_t *counts, uint64_t total, double q) {
    uint64_t rank = (uint64_t)(q * (double)total);
    if (rank >= total) rank = total - 1;
    uint64_t seen = 0;
    for (size_t b = 0; b < COIL__HIST_BUCKETS; b++) {
        seen += counts[b];
        if (seen > rank) return bucket_value(b);
    }
    return 0;
}

void coil__http_stats_merge(coil__http_stats *const *sts, size_t n, coil_http_stats *out) {
    uint64_t counts[COIL__HIST_BUCKETS] = {0};
    uint64_t total = 0, max = 0;
    uint64_t now = (uint64_t)coil_now() / (uint64_t)COIL__HIST_PERIOD + 1;
    for (size_t w = 0; w < n; w++) {
        coil__http_stats *st = sts[w];
        out->requests += atomic_load_explicit(&st->requests, RELAXED);
        for (int c = 1; c <= 5; c++) out->status[c] += atomic_load_explicit(&st->status[c], RELAXED);
        out->connections_total += atomic_load_explicit(&st->connections_total, RELAXED);
        out->rejected += atomic_load_explicit(&st->rejected, RELAXED);
        for (size_t s = 0; s < COIL__HIST_SLOTS; s++) {
            coil__http_hist *h = &st->hist[s];
            uint64_t e = atomic_load_explicit(&h->epoch, memory_order_acquire);
            if (e == 0 || e + COIL__HIST_SLOTS <= now) continue; /* outside the window */
            for (size_t b = 0; b < COIL__HIST_BUCKETS; b++) {
                uint64_t c = atomic_load_explicit(&h->count[b], RELAXED);
                counts[b] += c;
                total += c;
            }
            uint64_t m = atomic_load_explicit(&h->max, RELAXED);
            if (m > max) max = m;
        }
    }
    if (total) {
        out->latency_p50 = (double)quantile(counts, total, 0.50) / 1e9;
        out->latency_p99 = (double)quantile(counts, total, 0.99) / 1e9;
        out->latency_max = (double)max / 1e9;
    }
}
