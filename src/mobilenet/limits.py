"""Bounds on user input, importable without torch (the CLI's parser reads them)."""

# The largest input side we accept from a user: 9x the papers' 224 (84x the pixels).
# Larger sizes are typos that would only end in an out-of-memory kill.
MAX_RESOLUTION = 2048
