/* app/migrate.c: coil migrate --store URL. Creates or upgrades the schema
 * of a job store and exits; every node also does this when it starts, so
 * the command is for deploys that migrate before the nodes roll, and for
 * checking that a URL, its credentials and its database are right. */
#include <coil/coil.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "app/commands.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: coil migrate --store URL\n"
            "\n"
            "Creates or upgrades the job store's schema, then exits. Safe while\n"
            "nodes start on the same database. Exit status 0 when the schema is\n"
            "current, 1 when it could not be made so (the cause is printed).\n"
            "\n"
            "  --store URL   postgres://... or postgresql://... (libpq's URL syntax),\n"
            "                sqlite:DIR or DIR\n");
}

int coil_cmd_migrate(int argc, char **argv) {
    const char *store = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) {
            store = argv[++i];
        } else if (strncmp(argv[i], "--store=", 8) == 0) {
            store = argv[i] + 8;
        } else {
            fprintf(stderr, "coil migrate: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!store || !*store) {
        fprintf(stderr, "coil migrate: --store URL is required\n");
        usage(stderr);
        return 2;
    }
    int from = 0, to = 0;
    int err = coil_jobs_migrate(store, &from, &to);
    bool pg = coil_jobs_store_is_postgres(store);
    const char *backend = pg ? "PostgreSQL" : "SQLite";
    if (err) {
        /* A URL may hold a password: the store's own line named it redacted. */
        fprintf(stderr, "coil migrate: cannot migrate the %s store%s%s: %s\n", backend,
                pg ? "" : " in ", pg ? "" : store,
                err == -EBUSY ? "a running coil has it open (it migrated when it started)"
                              : coil_strerror(err));
        return 1;
    }
    if (from == to) printf("coil migrate: %s schema is current (version %d)\n", backend, to);
    else if (from == 0) printf("coil migrate: %s schema created (version %d)\n", backend, to);
    else printf("coil migrate: %s schema upgraded from version %d to %d\n", backend, from, to);
    return 0;
}
