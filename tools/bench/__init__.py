"""``lerobot-wds bench`` and ``bench-report``: reader throughput, batch mixing and memory, next to baselines."""
