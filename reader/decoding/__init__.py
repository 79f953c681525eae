"""Decoding: torchcodec over in-memory mini-MP4s, and the one owner of a worker's decoded frames."""
