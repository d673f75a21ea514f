/* bench/bench.h: the benchmarks behind `coil bench`. */
#ifndef COIL_BENCH_H
#define COIL_BENCH_H

/* coil bench runtime [--quick] [--no-anchors] [FIGURE...]: runtime figures,
 * then the asyncio/uvloop anchors and ratios NAME_vs_ANCHOR, where > 1
 * always means coil is better (see bench_runtime.c). */
int coil_bench_runtime(int argc, char **argv);
/* coil bench watchdog [--quick]: the stall detector's cost (bench_watchdog.c). */
int coil_bench_watchdog(int argc, char **argv);
/* coil bench http [--quick] [--no-anchors]: coil serve against nginx and
 * FastAPI, with wrk and a blocking scenario (bench_http.c). */
int coil_bench_http(int argc, char **argv);
/* coil bench store [--quick] [--dir DIR]: the durable job store alone:
 * enqueue rate with group commit, claim+complete, ids (bench_store.c). */
int coil_bench_store(int argc, char **argv);
/* coil bench pool [--quick]: the process pool: worker spawn, no-op jobs
 * through 2 workers, crash detection latency (bench_pool.c). */
int coil_bench_pool(int argc, char **argv);
/* coil bench jobs [--quick] [--no-anchors]: the job system through `coil
 * serve`: enqueue rate, end to end, crash detection, /health under CPU
 * load, against beanstalkd with an fsync per write (bench_jobs.c). */
int coil_bench_jobs(int argc, char **argv);
/* coil bench jobs --store postgres [--quick] [--no-anchors]: the job system
 * on a throwaway PostgreSQL: enqueue, backlog, end to end, pickup, rescue
 * after a node's SIGKILL, against graphile-worker and pg-boss on the same
 * server (bench_jobs_pg.c). */
int coil_bench_jobs_pg(int argc, char **argv);
/* coil bench import [--quick] [--no-anchors]: coil import titles against
 * pandas, the sqlite3 CLI and plain Python, the titles routes against
 * FastAPI, /health during an import and the stats (bench_import.c). */
int coil_bench_import(int argc, char **argv);

#endif
