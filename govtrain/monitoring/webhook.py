"""The drift alert's delivery: a signed POST to a URL from the environment, and nothing else.

- http and https only (urllib would also open file:// and ftp:// URLs);
- no redirect to another host (a redirect may not move the alert, or its signature, elsewhere);
- a timeout per attempt, a few attempts with backoff, and the outcome returned, never raised;
- an HMAC-SHA256 signature of the exact body in `X-Govtrain-Signature-256: sha256=<hex>`, keyed by
  $GOVTRAIN_DRIFT_WEBHOOK_SECRET, as GitHub signs its webhooks; the body carries a timestamp and the
  chain record's hash, so a receiver can refuse replays and check the record exists.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from govtrain.core.secrets import redact

URL_ENV = "GOVTRAIN_DRIFT_WEBHOOK"
SECRET_ENV = "GOVTRAIN_DRIFT_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-Govtrain-Signature-256"


class WebhookRefused(ValueError):
    """The URL or a redirect is not one govtrain will send an alert to."""


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_url(url: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The value is not shown: a webhook URL is often its own token (Slack, Teams), and this line is recorded.
        raise WebhookRefused(f"${URL_ENV}: only http(s) URLs with a host are allowed, not "
                             f"{(parts.scheme + ':') if parts.scheme else 'one with no scheme'} (value not shown)")
    return parts


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, origin: urllib.parse.SplitResult):
        self.origin = origin

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        target = urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, newurl))
        if (target.scheme, target.hostname, target.port) != (self.origin.scheme, self.origin.hostname,
                                                             self.origin.port):
            raise WebhookRefused(f"redirect to another host refused ({target.scheme}://{target.netloc})")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def post(url: str, body: bytes, secret: str | None, attempts: int = 3, backoff: float = 0.5,
         timeout: float = 10.0) -> dict[str, Any]:
    """Deliver once; {"delivered", "attempts", "error", "signed"}."""
    try:
        origin = check_url(url)
    except WebhookRefused as exc:
        return {"delivered": False, "attempts": 0, "error": redact(str(exc)), "signed": False}
    headers = {"Content-Type": "application/json"}
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, body)
    opener = urllib.request.build_opener(_SameHostRedirects(origin))
    error = None
    for attempt in range(1, attempts + 1):
        try:
            with opener.open(urllib.request.Request(url, data=body, headers=headers), timeout=timeout) as response:
                if 200 <= response.status < 300:
                    return {"delivered": True, "attempts": attempt, "error": None, "signed": bool(secret)}
                error = f"HTTP {response.status}"
        except WebhookRefused as exc:
            return {"delivered": False, "attempts": attempt, "error": redact(str(exc)), "signed": bool(secret)}
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
        except OSError as exc:
            error = redact(str(getattr(exc, "reason", exc)))
        if attempt < attempts:
            time.sleep(backoff * 2 ** (attempt - 1))
    return {"delivered": False, "attempts": attempts, "error": error, "signed": bool(secret)}


def configured() -> tuple[str | None, str | None]:
    return os.environ.get(URL_ENV), os.environ.get(SECRET_ENV)
