"""The ACS mailer against the local ACS endpoint, with the real azure-communication-email client."""

from __future__ import annotations

import uuid

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ServiceRequestError

from shared.mailer import (
    DEFAULT_THROTTLE_SECONDS,
    Mailer,
    OutgoingEmail,
    Throttled,
    build_email_client,
)
from shared.settings import AcsConnection, parse_acs_connection_string

MAIL = OutgoingEmail(
    sender="DoNotReply@leads.contoso.com",
    to=("sales@contoso.com",),
    subject="[New lead] Jane Doe",
    plain_text="Jane Doe",
    html="<p>Jane Doe</p>",
)


@pytest.fixture
def mailer(email_service) -> Mailer:
    email_service.clear()
    email_service.clear_outage()
    acs = parse_acs_connection_string(email_service.connection_string)
    return Mailer(build_email_client(acs), polling_interval=0.01)


def test_send_delivers_with_the_given_operation_id(mailer, email_service):
    op = str(uuid.uuid4())
    result = mailer.send(MAIL, op, maybe_sent=False)
    assert (result.operation_id, result.status, result.resent) == (op, "Succeeded", True)
    (received,) = email_service.messages
    assert (received.operation_id, received.subject, received.to) == (op, MAIL.subject, MAIL.to)
    assert (received.plain_text, received.html) == (MAIL.plain_text, MAIL.html)


def test_status_of_an_unknown_operation_is_none(mailer):
    assert mailer.status(str(uuid.uuid4())) is None


def test_maybe_sent_asks_acs_first_and_does_not_post_again(mailer, email_service):
    op = str(uuid.uuid4())
    mailer.send(MAIL, op, maybe_sent=False)
    again = mailer.send(MAIL, op, maybe_sent=True)
    assert (again.status, again.resent) == ("Succeeded", False)
    assert len(email_service.send_attempts) == 1


def test_maybe_sent_posts_when_acs_never_got_it(mailer, email_service):
    result = mailer.send(MAIL, str(uuid.uuid4()), maybe_sent=True)
    assert result.resent and len(email_service.messages) == 1


def test_long_retry_after_is_not_slept_through(mailer, email_service):
    email_service.fail_next(429, retry_after=120)
    with pytest.raises(Throttled) as caught:
        mailer.send(MAIL, str(uuid.uuid4()), maybe_sent=False)
    assert caught.value.retry_after == 120
    assert len(email_service.send_attempts) == 1  # no retry inside the function


def test_throttling_without_retry_after_assumes_a_default_wait(mailer, email_service):
    email_service.fail_next(429, count=10)
    with pytest.raises(Throttled) as caught:
        mailer.send(MAIL, str(uuid.uuid4()), maybe_sent=False)
    assert caught.value.retry_after == DEFAULT_THROTTLE_SECONDS


def test_outage_surfaces_as_an_error_for_the_queue_to_retry(mailer, email_service):
    email_service.set_outage(503)
    with pytest.raises(HttpResponseError) as caught:
        mailer.send(MAIL, str(uuid.uuid4()), maybe_sent=False)
    assert caught.value.status_code == 503
    assert not email_service.messages


class UnusedCredential:
    """A TokenCredential that must not be asked for a token over plain http."""

    def get_token(self, *scopes: str, **kwargs) -> AccessToken:
        raise AssertionError("a token was requested for a non-TLS endpoint")


def test_endpoint_without_key_authenticates_with_the_identity(email_service):
    attempts_before = len(email_service.send_attempts)
    client = build_email_client(AcsConnection(endpoint=email_service.endpoint), UnusedCredential())
    # The bearer-token policy (identity) is in the pipeline: it refuses plain http outright,
    # where the key's HMAC policy would have signed the request.
    with pytest.raises(ServiceRequestError, match="Bearer token"):
        Mailer(client, polling_interval=0.01).send(MAIL, str(uuid.uuid4()), maybe_sent=False)
    assert len(email_service.send_attempts) == attempts_before
