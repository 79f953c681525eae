"""Peer loaders that need bounds of their own: lerobot's StreamingLeRobotDataset and the guarded child run."""
