"""Credentials are never written: a URL that carries one (user:password@, a token in its query) is refused
where a config takes it, naming the key and the variable to use instead, and every line govtrain writes
from an error (stderr, a record, a log, a run's ledger) passes through redact() first."""
from __future__ import annotations

import re
import urllib.parse

# Query parameters that carry a credential in the URLs people paste (S3 presigned, Slack, Azure SAS, OAuth).
SECRET_PARAMS = re.compile(r"^(x-amz-signature|x-amz-credential|x-amz-security-token|sig|signature|token|"
                           r"access_token|id_token|api[-_]?key|key|secret|password|passwd|pwd|auth|code)$",
                           re.IGNORECASE)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@:\s]*):(?P<password>[^/@\s]+)@")
_QUERY = re.compile(r"(?P<name>[?&;](?:[A-Za-z0-9_.-]+))=(?P<value>[^&;#\s'\"]+)")
MASK = "***"


def url_credential(url: str) -> str | None:
    """What credential a URL carries, in words (never the value), or None."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return None
    if parts.password:
        return "a password (user:password@)"
    for name, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if SECRET_PARAMS.match(name):
            return f"a credential in its query ({name}=)"
    return None


def refuse_credentials(url: str | None, key: str, instead: str) -> str | None:
    """The URL, or ValueError naming the key and what to use instead (for a pydantic validator)."""
    if url is not None and (found := url_credential(url)):
        raise ValueError(f"holds {found}; a config is stored and shown, so it may hold no secret: {instead}")
    return url


def redact(text: str) -> str:
    """The text with user:password@ and credential query values masked."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _QUERY.sub(lambda m: f"{m['name']}={MASK}" if SECRET_PARAMS.match(m["name"][1:]) else m[0], text)
