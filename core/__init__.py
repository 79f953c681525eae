"""Core: what the converter, the reader and the tools share, importing none of them.

The shard format contract (:mod:`format`) and the typing of its JSON fields (:mod:`json_fields`), the error
hierarchy's base and shared errors (:mod:`errors`), the parser of lerobot's ``tasks.parquet`` (:mod:`tasks`),
the one I/O retry policy (:mod:`retry`), joining a root and a member path, a signed URL's query kept last
(:mod:`urls`), read timeouts for fsspec's HTTP and S3 backends (:mod:`timeouts`),
the one LRU cache (:mod:`lru`) and the lazy re-exports package ``__init__`` modules use
(:mod:`lazy_exports`). Nothing here imports torch.
"""
