"""Assembling: decoded frames -> LeRobotDataset samples or whole batches, carried in reused shared memory."""
