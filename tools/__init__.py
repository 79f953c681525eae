"""Command-line tools: convert, finalize, verify, inspect, bench and the demo."""
