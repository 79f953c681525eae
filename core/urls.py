"""Joining a root and a path inside it, for local paths and fsspec URLs alike, a signed URL's query kept last.

A root may be a presigned or SAS URL (``https://host/path/root?sv=...&sig=...``): the signature's query string
grants access to everything under the root's path, so a member's URL is the joined path followed by the same
query (``https://host/path/root/shards/x.tar?sv=...&sig=...``), never the member path after the query. Every
part that joins a root (reader, converter, verify, inspect) uses :func:`join_url`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl


def split_query(url: str) -> tuple[str, str]:
    """Splits a URL into its path part and its query (``"?..."``, or ``""``); a local path has no query."""
    if "://" not in url:
        return url, ""
    base, sep, query = url.partition("?")
    return base, sep + query


def join_url(root: str, relative: str) -> str:
    """Joins a root (local path or fsspec URL) and a root-relative path with a single slash, before any query."""
    base, query = split_query(root)
    return f"{base.rstrip('/')}/{relative.lstrip('/')}{query}"


def with_query_of(root: str, url: str) -> str:
    """``url`` (a path under ``root`` that lost the query, as a listing returns it) with ``root``'s query."""
    query = split_query(root)[1]
    return url if not query or "?" in url else url + query


def listing_target(url: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The URL and fsspec options that list (``ls``, ``find``, ``glob``) under ``url``, a signed URL included.

    fsspec's HTTP listing keeps only links under the listed URL's path, which a query would end; for an
    ``http(s)`` URL with a query the query travels instead as the ``params`` of every request (the listing's
    and the reads of what it lists), and the path is listed without it. Other URLs are returned unchanged.
    """
    base, query = split_query(url)
    if not query or not base.startswith(("http://", "https://")):
        return url, options
    return base, {**options, "params": dict(parse_qsl(query[1:], keep_blank_values=True))}
