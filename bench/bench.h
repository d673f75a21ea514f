/* bench/bench.h: the benchmarks behind `coil bench`. */
#ifndef COIL_BENCH_H
#define COIL_BENCH_H

/* coil bench runtime [--quick]: runtime figures, with asyncio/uvloop ratios. */
int coil_bench_runtime(int argc, char **argv);

#endif
