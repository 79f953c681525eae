"""Read timeouts for fsspec's HTTP and S3 backends, so a stalled server raises (and is retried) instead of hanging.

Neither backend bounds a stall the way a reader needs by default: aiohttp (fsspec's ``HTTPFileSystem``)
allows 5 minutes per request in total and none per socket read; s3fs sets botocore's ``read_timeout`` to 15 s
and retries it 5 times itself. :func:`with_read_timeout` adds a per-socket-read and connect timeout to the
storage options of ``http(s)://`` and ``s3://`` URLs, unless the options already choose one:

- http(s): ``client_kwargs={"timeout": aiohttp.ClientTimeout(total=None, sock_connect=t, sock_read=t)}``
  (``total=None``: a slow but progressing 64 MB read is not cut; a stall of ``t`` seconds is);
- s3: ``config_kwargs={"read_timeout": t, "connect_timeout": t}`` (botocore ``Config``).

Other protocols and chained URLs (``simplecache::s3://...``) are left as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_READ_TIMEOUT_S = 30.0

_HTTP = ("http", "https")
_S3 = ("s3", "s3a")


def _protocol(url: str) -> str | None:
    if "::" in url:
        return None  # chained: the options are per protocol and stay the caller's
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else None


def with_read_timeout(url: str, options: Mapping[str, Any], seconds: float | None) -> dict[str, Any]:
    """``options`` plus a read/connect timeout of ``seconds`` for http(s) and s3 URLs, unless already set."""
    out = dict(options)
    protocol = _protocol(url)
    if seconds is None or protocol is None:
        return out
    if protocol in _HTTP:
        client = dict(out.get("client_kwargs") or {})
        if "timeout" not in client:
            import aiohttp

            client["timeout"] = aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
            out["client_kwargs"] = client
    elif protocol in _S3:
        config = dict(out.get("config_kwargs") or {})
        config.setdefault("read_timeout", seconds)
        config.setdefault("connect_timeout", seconds)
        out["config_kwargs"] = config
    return out
