/* bench/bench.h: the benchmarks behind `coil bench`. */
#ifndef COIL_BENCH_H
#define COIL_BENCH_H

/* coil bench runtime [--quick] [--no-anchors] [FIGURE...]: runtime figures,
 * then the asyncio/uvloop anchors and ratios NAME_vs_ANCHOR, where > 1
 * always means coil is better (see bench_runtime.c). */
int coil_bench_runtime(int argc, char **argv);
/* coil bench watchdog [--quick]: the stall detector's cost (bench_watchdog.c). */
int coil_bench_watchdog(int argc, char **argv);

#endif
