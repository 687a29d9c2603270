"""The load generator: wrk with ``post.lua``, pinned to its own core, and its output parsed."""
