/* runtime/stack.c: coroutine stacks.
 *
 * The budget that shapes this file: a million parked tasks must fit on a
 * kernel whose vm.max_map_count is 65530, so a stack cannot cost a mapping of
 * its own. Stacks are therefore carved from slabs, each one mmap'd once
 * (MAP_NORESERVE: untouched pages cost nothing) and holding up to 1024 slots:
 *
 *     slab:  | guard | stack 0 ...... | guard | stack 1 ...... | ...
 *                     ^limit     top^
 *
 * A guard page is installed per slot in the cheapest way the kernel offers:
 *
 *   1. MADV_GUARD_INSTALL (Linux 6.13+) marks the page in the page tables and
 *      leaves the slab one mapping; every stack gets a guard, for free.
 *   2. Otherwise mprotect(PROT_NONE), which splits the mapping in two, while
 *      the process has used under a quarter of vm.max_map_count that way.
 *   3. Past that budget, stacks have no guard page.
 *
 * COIL_STACK_GUARD=mprotect|none forces mode 2 or 3 (for tests).
 *
 * Freed stacks go on a LIFO free list (hot pages first) kept in the stacks
 * themselves. Past COIL__HOT_STACKS free stacks, a freed stack's pages are
 * returned to the kernel, so a burst of tasks does not pin memory forever.
 * Stacks of a non-default size get a mapping each and are unmapped on free.
 */
#include "runtime/internal.h"
#include "runtime/sanitizer.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

enum { COIL__HOT_STACKS = 1024, COIL__SLAB_MAX_SLOTS = 1024, COIL__SLAB_MIN_SLOTS = 16 };

typedef enum guard_mode { GUARD_UNKNOWN, GUARD_MADVISE, GUARD_MPROTECT, GUARD_NONE } guard_mode;

typedef struct slab {
    struct slab *next;  /* pool's slab list */
    char *base;         /* mapping */
    size_t len;         /* mapping length */
    size_t slots;       /* slots in the slab */
    size_t used;        /* slots handed out at least once */
} slab;

/* A free stack keeps this record at its top. */
typedef struct free_stack {
    struct free_stack *next;
    coil__stack stack;
} free_stack;

struct coil__stack_pool {
    size_t usable;        /* usable bytes of a default stack */
    size_t slot;          /* guard page + usable */
    slab *slabs;          /* newest first; the first may have unused slots */
    free_stack *free;     /* LIFO */
    size_t nfree;
    size_t next_slab;     /* slots in the next slab */
};

static size_t page_size;
static _Atomic int guard_mode_global = GUARD_UNKNOWN;
static atomic_long mprotect_guards;   /* guards installed with mprotect */
static long mprotect_budget;          /* a quarter of vm.max_map_count */

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

static long read_max_map_count(void) {
    long v = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1) v = 65530;
        fclose(f);
    }
    return v;
}

static pthread_once_t globals_once = PTHREAD_ONCE_INIT;

static void globals_init(void) {
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    mprotect_budget = read_max_map_count() / 4;
    const char *forced = getenv("COIL_STACK_GUARD");
    if (forced && strcmp(forced, "mprotect") == 0) guard_mode_global = GUARD_MPROTECT;
    else if (forced && strcmp(forced, "none") == 0) guard_mode_global = GUARD_NONE;
}

size_t coil__stack_default_size(void) {
    pthread_once(&globals_once, globals_init);
    size_t size = 64 * 1024;
#if defined(COIL_ASAN) || defined(COIL_TSAN)
    size = 256 * 1024;
#endif
    const char *env = getenv("COIL_STACK_SIZE");
    if (env) {
        char *end;
        unsigned long long v = strtoull(env, &end, 10);
        if (end != env && *end == '\0' && v >= 16 * 1024 && v <= (1ULL << 30)) size = (size_t)v;
    }
    return round_up(size, page_size);
}

/* Installs the guard page at `guard`. Returns whether a guard is in place. */
static bool install_guard(char *guard) {
    int mode = atomic_load(&guard_mode_global);
    if (mode == GUARD_UNKNOWN || mode == GUARD_MADVISE) {
        if (madvise(guard, page_size, MADV_GUARD_INSTALL) == 0) {
            atomic_store(&guard_mode_global, GUARD_MADVISE);
            return true;
        }
        if (mode == GUARD_MADVISE) return false; /* worked before: odd, go unguarded */
        int expected = GUARD_UNKNOWN;
        atomic_compare_exchange_strong(&guard_mode_global, &expected, GUARD_MPROTECT);
        mode = GUARD_MPROTECT;
    }
    if (mode == GUARD_MPROTECT) {
        if (atomic_fetch_add(&mprotect_guards, 1) >= mprotect_budget) {
            atomic_fetch_sub(&mprotect_guards, 1);
            return false;
        }
        if (mprotect(guard, page_size, PROT_NONE) == 0) return true;
        atomic_fetch_sub(&mprotect_guards, 1);
    }
    return false;
}

static void describe(coil__stack *s, char *guard, size_t usable, bool pooled) {
    s->limit = guard + page_size;
    s->top = s->limit + usable;
    s->pooled = pooled;
    s->guarded = install_guard(guard);
    s->vg_id = VALGRIND_STACK_REGISTER(s->limit, s->top);
}

coil__stack_pool *coil__stack_pool_new(void) {
    coil__stack_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->usable = coil__stack_default_size();
    p->slot = p->usable + page_size;
    p->next_slab = COIL__SLAB_MIN_SLOTS;
    return p;
}

static void release_guard_budget(const coil__stack *s) {
    if (s->guarded && atomic_load(&guard_mode_global) == GUARD_MPROTECT)
        atomic_fetch_sub(&mprotect_guards, 1);
}

void coil__stack_pool_free(coil__stack_pool *p) {
    if (!p) return;
    for (free_stack *f = p->free; f;) {
        free_stack *next = f->next;
        VALGRIND_STACK_DEREGISTER(f->stack.vg_id);
        release_guard_budget(&f->stack);
        f = next;
    }
    for (slab *s = p->slabs; s;) {
        slab *next = s->next;
        munmap(s->base, s->len);
        free(s);
        s = next;
    }
    free(p);
}

static int grow(coil__stack_pool *p) {
    slab *s = malloc(sizeof *s);
    if (!s) return -ENOMEM;
    s->slots = p->next_slab;
    s->len = s->slots * p->slot;
    s->used = 0;
    s->base = mmap(NULL, s->len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (s->base == MAP_FAILED) {
        free(s);
        return -ENOMEM;
    }
    s->next = p->slabs;
    p->slabs = s;
    if (p->next_slab < COIL__SLAB_MAX_SLOTS) p->next_slab *= 2;
    return 0;
}

static int get_custom(size_t usable, coil__stack *out) {
    usable = round_up(usable, page_size);
    char *base = mmap(NULL, usable + page_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) return -ENOMEM;
    describe(out, base, usable, false);
    return 0;
}

int coil__stack_get(coil__stack_pool *p, size_t size, coil__stack *out) {
    if (size && round_up(size, page_size) != p->usable) return get_custom(size, out);
    if (p->free) {
        free_stack *f = p->free;
        p->free = f->next;
        p->nfree--;
        *out = f->stack;
        return 0;
    }
    if (!p->slabs || p->slabs->used == p->slabs->slots) {
        int err = grow(p);
        if (err) return err;
    }
    slab *s = p->slabs;
    describe(out, s->base + s->used++ * p->slot, p->usable, true);
    return 0;
}

void coil__stack_put(coil__stack_pool *p, coil__stack *stack) {
    /* `stack` may live in the task struct at the top of this very stack,
     * where the free record goes: copy it out first. */
    coil__stack copy = *stack;
    coil__stack *s = &copy;
    size_t len = (size_t)(s->top - s->limit);
#ifdef COIL_ASAN
    /* Frames that never returned leave poisoned redzones behind. */
    __asan_unpoison_memory_region(s->limit, len);
#endif
    if (!s->pooled) {
        VALGRIND_STACK_DEREGISTER(s->vg_id);
        release_guard_budget(s);
        munmap(s->limit - page_size, len + page_size);
        return;
    }
    if (p->nfree >= COIL__HOT_STACKS && len > page_size)
        madvise(s->limit, len - page_size, MADV_DONTNEED);
    free_stack *f = (free_stack *)(s->top - sizeof(free_stack));
    f->stack = copy;
    f->next = p->free;
    p->free = f;
    p->nfree++;
}
