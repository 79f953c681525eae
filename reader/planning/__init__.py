"""Planning (pure, the same on every rank): which episodes each reader yields, the reads that fetch them,
where the reader runs (topology), the epoch and the resume state."""
