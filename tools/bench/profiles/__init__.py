"""Benchmark profiles: the blocked-task dataset generator, the episode table, the decode-only ceiling, and the
``bench-profile`` command with its Markdown table."""
