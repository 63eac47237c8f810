"""Bounds on sizes a user or a file may ask for (imports no torch: the CLI's parsers read it)."""

# The input side we accept from a user or a weights file: 9x the papers' 224 (84x the
# pixels). Larger sizes are typos or crafted files that would end in an out-of-memory kill.
MIN_RESOLUTION, MAX_RESOLUTION = 8, 2048

# Data-loading processes and CPU threads a user may ask for: more than the cores of any machine
# we run on. Unbounded, `--workers 100000` forked processes until the machine stopped answering.
MAX_WORKERS, MAX_THREADS = 256, 1024
