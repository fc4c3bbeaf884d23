"""The drift alert's delivery, written as the attack: a non-http URL (file://) that would read a local
file, a redirect that would carry the alert and its signature to another host, a receiver that never
answers, and a forged body that the HMAC signature exposes. Real receivers on 127.0.0.1."""
import json
import time

import pytest

from govtrain.monitoring.webhook import SIGNATURE_HEADER, post, signature
from tests.loopback import Loopback, QuietHandler


class Receiver(Loopback):
    """Answers each POST with `status` (and `location` for redirects), after `delay` seconds."""

    def __init__(self, status: int = 200, location: str | None = None, delay: float = 0.0):
        self.requests: list[tuple[str, bytes, dict]] = []
        receiver = self

        class Handler(QuietHandler):
            def _answer(self):
                receiver.requests.append((self.command, self.body(), dict(self.headers)))
                time.sleep(delay)
                self.reply(status, headers={"Location": location} if location else None)

            do_POST = do_GET = _answer

        super().__init__(Handler, "/hook")


BODY = json.dumps({"model": "credit/3", "drift_share": 0.6, "chain_record": "ab" * 32}).encode()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://x", "http:///nohost"])
def test_only_http_urls_with_a_host_are_posted_to(url):
    outcome = post(url, BODY, "s3cret", attempts=1, backoff=0)
    assert outcome["delivered"] is False and outcome["attempts"] == 0
    assert "only http(s) URLs with a host" in outcome["error"]


def test_a_redirect_to_another_host_is_refused_and_nothing_reaches_it():
    with Receiver() as elsewhere:
        other = elsewhere.url.replace("127.0.0.1", "localhost")  # another host name for the same machine
        with Receiver(status=307, location=other) as hook:
            outcome = post(hook.url, BODY, "s3cret", attempts=3, backoff=0)
    assert outcome["delivered"] is False and "redirect to another host refused" in outcome["error"]
    assert len(hook.requests) == 1 and elsewhere.requests == []  # no retry, no delivery elsewhere


def test_a_receiver_that_never_answers_costs_a_bounded_time():
    with Receiver(delay=5) as hook:
        started = time.monotonic()
        outcome = post(hook.url, BODY, None, attempts=2, backoff=0, timeout=0.5)
    assert outcome["delivered"] is False and "timed out" in outcome["error"]
    assert time.monotonic() - started < 3


def test_the_signature_covers_the_exact_body_so_a_forged_alert_is_exposed():
    with Receiver() as hook:
        outcome = post(hook.url, BODY, "shared-secret", attempts=1, backoff=0)
    assert outcome == {"delivered": True, "attempts": 1, "error": None, "signed": True}
    _, body, headers = hook.requests[0]
    sent = headers[SIGNATURE_HEADER]
    assert body == BODY and sent == signature("shared-secret", BODY)
    forged = BODY.replace(b"0.6", b"0.0")
    assert signature("shared-secret", forged) != sent  # what the receiver computes for an altered body
    assert signature("another-secret", BODY) != sent
