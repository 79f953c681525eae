"""Keeping credentials out of everything lerobot-wds writes or says: URLs lose their userinfo and secret queries.

A source or root may be given as ``https://user:token@host/...`` or as a presigned URL whose query carries a
signature or session token. Such a URL must never reach a manifest, a record, a stats file, a message or a log
line: those are published with the shards or pasted into bug reports. :func:`redact_url` removes the userinfo
and every credential-bearing query parameter from one URL; :func:`redact_text` does so for every URL inside a
text (an exception message, a log line). Local paths and other text are returned unchanged.

Stdlib only: the error root in :mod:`lerobot_wds.core.format` redacts every domain error's message with it.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameter names (lowercase) that carry a secret: AWS SigV4 / SigV2 presigned URLs, GCS signed URLs,
# Azure SAS, CloudFront signed URLs, OAuth-style tokens and API keys.
CREDENTIAL_PARAMS: frozenset[str] = frozenset(
    {
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-goog-signature",
        "x-goog-credential",
        "awsaccesskeyid",
        "signature",
        "sig",
        "token",
        "access_token",
        "id_token",
        "refresh_token",
        "key",
        "api_key",
        "apikey",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "policy",
        "key-pair-id",
    }
)
# Any parameter whose name contains one of these is treated as a credential too (e.g. "hf_token", "sas_sig").
_CREDENTIAL_PARTS = ("token", "signature", "secret", "credential", "password")

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
_TRAILING = ".,;:!?)]}"


def is_credential_param(name: str) -> bool:
    """Whether a query parameter named ``name`` carries a secret (case-insensitive)."""
    low = name.lower()
    return low in CREDENTIAL_PARAMS or any(part in low for part in _CREDENTIAL_PARTS)


def redact_url(url: str) -> str:
    """Returns ``url`` without userinfo and without credential-bearing query parameters.

    The remaining query keeps its order and values; a local path (no ``scheme://``) is returned unchanged.
    """
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an invalid IPv6 netloc: drop everything that could hold a secret
        head, _, rest = url.partition("://")
        return f"{head}://{rest.rpartition('@')[2].split('?')[0]}"
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if not is_credential_param(k)]
        if len(kept) != len(pairs):
            query = urlencode(kept)
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing to remove: as given (rebuilding would turn a bare "s3://" into "s3:")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Returns ``text`` with every URL in it passed through :func:`redact_url`."""
    if "://" not in text:
        return text

    def one(match: re.Match[str]) -> str:
        url = match.group(0)
        core = url.rstrip(_TRAILING)  # "...: denied", "(see URL)." : the punctuation is the sentence's
        return redact_url(core) + url[len(core) :]

    return _URL.sub(one, text)
