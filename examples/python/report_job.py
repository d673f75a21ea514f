#!/usr/bin/env python3
"""A coil job kind written in Python, with the standard library only.

coil runs this script once per job (coil serve --command-kind, see README.md):
the job's payload arrives on stdin, whatever it prints on stdout is the result,
and lines "progress PERCENT MESSAGE" written to the file descriptor named by
COIL_PROGRESS_FD show up as the job's progress. A non-zero exit fails the job
(stderr becomes its error message, and coil retries it); a crash is a crash.
"""
import hashlib
import json
import os
import sys
import time

job = json.load(sys.stdin)
progress = os.fdopen(int(os.environ.get("COIL_PROGRESS_FD", "2")), "w", buffering=1)

rows = job.get("rows", [])
if not isinstance(rows, list) or not rows:
    print("the payload needs a non-empty \"rows\" list", file=sys.stderr)
    sys.exit(2)

total, digest = 0.0, hashlib.sha256()
for i, row in enumerate(rows, 1):
    time.sleep(0.1)  # the slow part of a real report
    total += float(row.get("value", 0))
    digest.update(json.dumps(row, sort_keys=True).encode())
    print(f"progress {100 * i // len(rows)} row {i} of {len(rows)}", file=progress)

json.dump({"title": job.get("title", "report"), "rows": len(rows), "total": total,
           "digest": digest.hexdigest()[:16], "job": os.environ.get("COIL_JOB_ID"),
           "attempt": int(os.environ.get("COIL_JOB_ATTEMPT", "0"))}, sys.stdout)
