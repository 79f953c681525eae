"""Fetching: the planned reads fetched through fsspec, with retries, read timeouts, read-ahead and digests."""
