"""Reader: a torch IterableDataset streaming converted shards with LeRobotDataset-identical samples."""
