"""Parsing: fetched shard bytes -> tar members -> checked episodes (metadata, rows, mini-MP4 bytes)."""
