/* jobs/service/dump.c: the stall dump, everything the job system holds, as text.
 *
 * When a job does not reach the state it should, the question is where it
 * is: in the store's queue, in the scheduler's window, in a worker, or in a
 * recorder waiting for the writer. coil_jobs_dump() answers it in one
 * report, written on the jobs loop (the only thread that may read the
 * scheduler and the pool) and handed back as a string:
 *
 *   jobs: scheduler: window 34, held 2 (180 bytes), ready 1, recording 0, ...
 *   jobs:   job 5e2b... kind demo.sleep prio 0 attempts 0 in pool, starting
 *   jobs: pool: 1 workers, queued 0
 *   jobs:   slot 0 busy pid 4242 job 17 stage 0 done 3
 *   coil: loop 3: 9 tasks alive, 40 spawned
 *   ...   (coil_dump_tasks of the jobs loop)
 *   jobs: store: queued 0 writes waiting, commits 12, failed 0
 */
#include "jobs/pool/pool.h"
#include "jobs/service/service.h"

#include <stdlib.h>
#include <string.h>


static const char *sched_job_place(const sched_job *sj) {
    if (sj->scope) return sj->starter ? "in pool" : "in pool (no start)";
    if (sj->giver) return "being given back";
    if (sj->starter) return "recording";
    return "ready";
}

static void dump_sched(coil_jobs *j, FILE *out) {
    coil__sched *s = &j->sched;
    fprintf(out,
            "jobs: scheduler: window %zu, held %zu (%zu bytes), ready %zu, recording %zu, "
            "runners %zu, stopping %d\n",
            s->window, s->nactive, s->held_bytes,
            coil_queue_len(&s->ready) + coil_queue_len(&s->ready_awaiting), s->recording,
            s->nrunners, s->stopping);
    coil__list *it;
    coil__list_foreach(it, &s->active) {
        const sched_job *sj = COIL_CONTAINER_OF(it, sched_job, link);
        fprintf(out, "jobs:   job %s kind %s prio %d attempts %d run_at %lld %s%s\n",
                sj->rec->id, sj->rec->kind, sj->rec->priority, sj->rec->attempts,
                (long long)sj->rec->run_at, sched_job_place(sj), sj->cancel ? ", cancelled" : "");
    }
}

static void dump_pool(const coil_pool *p, FILE *out) {
    fprintf(out, "jobs: pool: %zu workers, queued %zu, stopping %d\n", (size_t)p->cfg.workers, p->queued,
            p->stopping);
    for (size_t i = 0; i < p->cfg.workers; i++) {
        const pool_slot *sl = &p->slots[i];
        const pool_job *job = coil__slot_job(sl, 0);
        fprintf(out, "jobs:   slot %zu %s pid %d job %llu (of %zu) stage %d killed_with %d done %llu\n",
                i, coil__slot_state_name(sl->state), sl->pid,
                job ? (unsigned long long)job->id : 0ULL, sl->njobs, sl->stage, sl->killed_with,
                (unsigned long long)sl->jobs_done);
    }
}

static void dump_store(coil__store *st, FILE *out) {
    coil__store_stats ss;
    coil__store_get_stats(st, &ss);
    fprintf(out, "jobs: store: %zu writes waiting, commits %llu, failed %llu\n", ss.queued,
            (unsigned long long)ss.commits, (unsigned long long)ss.failed_commits);
}

/* On the jobs loop: the whole report into a malloc'd string. */
static coil_result dump_main(void *arg) {
    coil_jobs *j = arg;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out) return coil_fail(-ENOMEM);
    if (j->sched.runners) dump_sched(j, out);
    if (j->pool) dump_pool(j->pool, out);
    coil_dump_tasks(out);
    dump_store(j->store, out);
    if (fclose(out) != 0) {
        free(text);
        return coil_fail(-ENOMEM);
    }
    return coil_ok(text);
}

char *coil__jobs_dump_text(coil_jobs *j) {
    coil_remote *r = coil_submit(j->loop, dump_main, j);
    coil_result res = {0};
    if (!r || coil_remote_wait(r, &res, COIL_SEC(5)) != 0 || res.err)
        return strdup("jobs: the jobs loop did not answer the dump\n");
    return res.value;
}

void coil_jobs_dump(coil_jobs *j, FILE *out) {
    char *text = coil__jobs_dump_text(j);
    fputs(text ? text : "jobs: out of memory for the dump\n", out);
    free(text);
}
