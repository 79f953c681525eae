"""Converter: LeRobot v3 dataset -> episode-per-sample WebDataset tar shards plus a manifest."""
