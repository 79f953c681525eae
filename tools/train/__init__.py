"""``lerobot-wds train``: a distributed training entry point with exact resume (torchrun, Accelerate, SLURM)."""
