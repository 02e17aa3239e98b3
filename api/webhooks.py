"""Webhooks: subscriptions, deliveries cut from the event stream, signed HTTP sends.

1. `relay()` runs on beat (`api.webhooks_relay`). Per active webhook, under its row
   lock (SKIP LOCKED: two relays never cut the same webhook), it reads the export
   stream (`analytics.models`) past the webhook's position up to the horizon, stores
   one `WebhookDelivery` per matching event and moves the position, all in one
   transaction; after commit it queues a send for each. A relay that dies stores
   nothing and moves nothing, and the stream never skips: no event is lost.
2. `deliver()` runs in `api.webhook_deliver` (acks_late). It claims the attempt with
   a compare-and-set (pending, due, webhook active → one more attempt, due again only
   after a lease), POSTs outside any transaction, then records the outcome: 2xx is
   delivered; anything else is retried after an exponential backoff with jitter, up to
   `WEBHOOK_MAX_ATTEMPTS`; `WEBHOOK_DISABLE_AFTER_FAILURES` failed attempts in a row
   disable the webhook.
3. A due delivery whose queued send never started (lost message, killed worker,
   expired lease) is queued again by the relay after `WEBHOOK_REDISPATCH_SECONDS`.

At least once: a send that reached the receiver but died before its outcome was
stored is sent again. Every attempt carries the same `Onboarding-Delivery` id.

Targets: a webhook URL is chosen by whoever holds a token, so sends must not reach
this network's own services (cloud metadata, the database, admin ports). Unless
`WEBHOOK_ALLOW_PRIVATE_TARGETS` is on, a URL naming a loopback, private, link-local
or otherwise non-public address is refused when subscribing, and every send checks
the address it actually connected to, before a byte is written: a public name that
resolves (or re-resolves, DNS rebinding) to a private address fails the attempt.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import random
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F

from analytics.catalog import CATALOG
from analytics.models import Event, StreamPosition, position_after_page, stream_horizon, stream_tail
from api.events import EventSerializer
from api.models import ALL_EVENTS, ApiToken, WebhookAttempt, WebhookDelivery, WebhookSubscription
from onboarding import clock
from onboarding.errors import Conflict, InvalidInput

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Onboarding-Signature"
DELIVERY_HEADER = "Onboarding-Delivery"
EVENT_HEADER = "Onboarding-Event"
SIGNATURE_TOLERANCE_SECONDS = 300
EXCERPT_CHARS = 500
USER_AGENT = "Onboarding-Webhooks/1"
Status = WebhookDelivery.Status


# --- signatures -------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """What a receiver does: the body is signed with `secret`, recently enough."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, given) for given in parts.get("v1", []))


# --- subscriptions ----------------------------------------------------------------------


def clean_event_names(names: Iterable[str]) -> list[str]:
    names = sorted(set(names))
    if not names:
        raise InvalidInput("Name at least one event, or '*' for every event.", field="events")
    if ALL_EVENTS in names:
        return [ALL_EVENTS]
    unknown = [n for n in names if n not in CATALOG]
    if unknown:
        raise InvalidInput(f"Unknown event name(s): {', '.join(unknown)}.", field="events")
    return names


# --- targets ----------------------------------------------------------------------------


def address_is_public(address: str) -> bool:
    """True for an address on the public internet (not loopback, private, link-local,
    shared, multicast, reserved or unspecified; IPv4-mapped IPv6 judged as IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def clean_target_url(url: str) -> str:
    """An http(s) URL whose host is not plainly internal; InvalidInput otherwise.

    Host names are judged again at each send, by the address they resolve to then.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("Give an http:// or https:// URL.", field="url")
    if settings.WEBHOOK_ALLOW_PRIVATE_TARGETS:
        return url
    host = parts.hostname
    if host == "localhost" or host.endswith(".localhost"):
        public = False
    else:
        try:
            public = address_is_public(host)
        except ValueError:  # a name, not an address
            public = True
    if not public:
        raise InvalidInput(
            "Webhooks cannot be sent to loopback, private or link-local addresses.",
            field="url",
        )
    return url


class BlockedTarget(OSError):
    """The target's address is not public (and WEBHOOK_ALLOW_PRIVATE_TARGETS is off)."""


def _guarded_create_connection(*args: Any, **kwargs: Any) -> socket.socket:
    sock = socket.create_connection(*args, **kwargs)
    if not settings.WEBHOOK_ALLOW_PRIVATE_TARGETS:
        peer = sock.getpeername()[0]
        if not address_is_public(peer):
            sock.close()
            raise BlockedTarget(f"refused to send to non-public address {peer}")
    return sock


def _guarded(connection_class: type[http.client.HTTPConnection]) -> Callable[..., Any]:
    def connect(*args: Any, **kwargs: Any) -> http.client.HTTPConnection:
        conn = connection_class(*args, **kwargs)
        # Checked on the connected socket, before TLS or the request: no second lookup
        # for DNS to answer differently.
        conn._create_connection = _guarded_create_connection  # type: ignore[attr-defined]
        return conn

    return connect


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_guarded(http.client.HTTPConnection), req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            _guarded(http.client.HTTPSConnection),
            req,
            context=self._context,  # type: ignore[attr-defined]
        )


# --- subscriptions ----------------------------------------------------------------------


def webhook_subscribe(
    *,
    url: str,
    event_names: Iterable[str],
    description: str = "",
    user: Any = None,
    token: ApiToken | None = None,
) -> tuple[WebhookSubscription, str]:
    """A new webhook and its secret; it receives the events recorded from now on."""
    names = clean_event_names(event_names)
    url = clean_target_url(url)
    start = stream_tail()  # before any write of ours: our own transaction would hold it back
    secret = WebhookSubscription.new_secret()
    subscription = WebhookSubscription.objects.create(
        url=url,
        event_names=names,
        description=description,
        secret=secret,
        stream_xact=start.xact,
        stream_event_id=start.id,
        created_by=user if getattr(user, "pk", None) else None,
        created_by_token=token,
    )
    return subscription, secret


def webhook_enable(subscription_id: int) -> WebhookSubscription:
    """Turn a webhook back on; it catches up from where it stopped, nothing skipped."""
    with transaction.atomic():
        subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription_id)
        subscription.is_active = True
        subscription.consecutive_failures = 0
        subscription.disabled_at = None
        subscription.disabled_reason = ""
        subscription.save(
            update_fields=["is_active", "consecutive_failures", "disabled_at", "disabled_reason"]
        )
        # What waited is due now; the first batch is queued, the relay queues the rest.
        pending = subscription.deliveries.filter(status=Status.PENDING)
        pending.update(next_attempt_at=clock.now())
        due = list(
            pending.order_by("id").values_list("pk", flat=True)[: settings.WEBHOOK_RELAY_BATCH_SIZE]
        )
        transaction.on_commit(lambda: queue_sends(due))
    return subscription


def webhook_disable(subscription_id: int, reason: str) -> WebhookSubscription:
    with transaction.atomic():
        subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription_id)
        _disable(subscription, reason)
    return subscription


def _disable(subscription: WebhookSubscription, reason: str) -> None:
    subscription.is_active = False
    subscription.disabled_at = clock.now()
    subscription.disabled_reason = reason[:200]
    subscription.save(update_fields=["is_active", "disabled_at", "disabled_reason"])
    log.warning("webhook %s (%s) disabled: %s", subscription.pk, subscription.url, reason)


def redeliver(delivery_pk: int) -> WebhookDelivery:
    """Send a delivery again now (same delivery id), with a fresh retry budget."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("subscription")
            .get(pk=delivery_pk)
        )
        if not delivery.subscription.is_active:
            raise Conflict("This webhook is disabled: enable it first.")
        delivery.status = Status.PENDING
        delivery.attempts = 0
        delivery.next_attempt_at = clock.now()
        delivery.redeliveries += 1
        delivery.save(update_fields=["status", "attempts", "next_attempt_at", "redeliveries"])
        transaction.on_commit(lambda: queue_sends([delivery.pk]))
    return delivery


# --- the relay --------------------------------------------------------------------------


@dataclass
class RelayResult:
    webhooks: int = 0
    deliveries: int = 0
    redispatched: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def relay(*, batch_size: int | None = None) -> RelayResult:
    """Cut new deliveries for every active webhook; queue again what is overdue."""
    batch_size = batch_size or settings.WEBHOOK_RELAY_BATCH_SIZE
    horizon = stream_horizon()  # outside any transaction, before reading what it bounds
    result = RelayResult()
    for subscription_id in WebhookSubscription.objects.filter(is_active=True).values_list(
        "pk", flat=True
    ):
        created = _relay_one(subscription_id, horizon, batch_size)
        if created is not None:
            result.webhooks += 1
            result.deliveries += created
    result.redispatched = redispatch_due()
    return result


def _relay_one(subscription_id: int, horizon: int | None, batch_size: int) -> int | None:
    with transaction.atomic():
        subscription = (
            WebhookSubscription.objects.select_for_update(skip_locked=True)
            .filter(pk=subscription_id, is_active=True)
            .first()
        )
        if subscription is None:
            return None  # another relay has it, or it was just disabled or deleted
        after = StreamPosition(subscription.stream_xact, subscription.stream_event_id)
        events = Event.objects.all()
        if ALL_EVENTS not in subscription.event_names:
            events = events.filter(name__in=subscription.event_names)
        rows = list(events.stream_after(after, horizon).only("id", "name")[: batch_size + 1])
        full = len(rows) > batch_size
        rows = rows[:batch_size]
        now = clock.now()
        deliveries = WebhookDelivery.objects.bulk_create(
            WebhookDelivery(
                subscription=subscription, event_id=e.pk, event_name=e.name, next_attempt_at=now
            )
            for e in rows
        )
        position = position_after_page(
            after, rows[-1].stream_position if rows else None, full=full, horizon=horizon
        )
        if position != after:
            subscription.stream_xact, subscription.stream_event_id = position
            subscription.save(update_fields=["stream_xact", "stream_event_id"])
        ids = [d.pk for d in deliveries]
        transaction.on_commit(lambda: queue_sends(ids))
    return len(ids)


def redispatch_due(*, limit: int = 500) -> int:
    """Queue again the due deliveries whose send has not started for a while.

    Each is stamped due now first (compare-and-set), so it is queued at most once per
    `WEBHOOK_REDISPATCH_SECONDS` however long the worker backlog.
    """
    now = clock.now()
    cutoff = now - timedelta(seconds=settings.WEBHOOK_REDISPATCH_SECONDS)
    overdue = WebhookDelivery.objects.filter(
        status=Status.PENDING, next_attempt_at__lte=cutoff, subscription__is_active=True
    )
    ids = list(overdue.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    if not ids:
        return 0
    # A send that claims one of them meanwhile makes its queued copy a no-op.
    overdue.filter(pk__in=ids).update(next_attempt_at=now)
    queue_sends(ids)
    return len(ids)


def queue_sends(delivery_ids: Iterable[int], *, countdown: float | None = None) -> None:
    """Queue one send per delivery. Call after commit. A broker failure loses nothing:
    the relay queues overdue deliveries again."""
    from api.tasks import webhook_deliver

    for pk in delivery_ids:
        try:
            webhook_deliver.apply_async((pk,), countdown=countdown)
        except Exception:
            log.exception("could not queue webhook delivery %s; the relay will retry", pk)
            return


# --- sending ----------------------------------------------------------------------------


def backoff_seconds(attempt: int) -> float:
    """Delay before attempt `attempt + 1`: base·2^(attempt-1), capped, in its upper half
    at random (jitter spreads a receiver's recovery)."""
    ceiling = min(
        settings.WEBHOOK_RETRY_MAX_SECONDS,
        settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(0, attempt - 1),
    )
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def payload(delivery: WebhookDelivery, event: Event) -> bytes:
    body = {
        "delivery_id": str(delivery.delivery_id),
        "webhook_id": delivery.subscription_id,
        "event": EventSerializer(event).data,
    }
    return json.dumps(body, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Outcome:
    status: int | None
    excerpt: str = ""
    error: str = ""
    duration_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is the receiver's answer, not somewhere to resend the body


# No proxies from the environment, no redirects, public addresses only.
_opener = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), _NoRedirects, _GuardedHTTPHandler, _GuardedHTTPSHandler
)


def _excerpt(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").replace("\x00", "")[:EXCERPT_CHARS]


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Outcome:
    started = time.monotonic()
    status, excerpt, error = None, "", ""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as response:
            status, excerpt = response.status, _excerpt(response.read(EXCERPT_CHARS * 4))
    except urllib.error.HTTPError as exc:
        status = exc.code
        with contextlib.suppress(OSError, http.client.HTTPException):
            excerpt = _excerpt(exc.read(EXCERPT_CHARS * 4))
    except (OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        error = f"{type(exc).__name__}: {reason}"[:300]
    return Outcome(status, excerpt, error, int((time.monotonic() - started) * 1000))


def deliver(delivery_pk: int) -> str:
    """One attempt of a delivery, if it is due and nobody else is making it."""
    now = clock.now()
    lease = timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + 30)
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_pk,
        status=Status.PENDING,
        next_attempt_at__lte=now,
        subscription__is_active=True,
    ).update(attempts=F("attempts") + 1, next_attempt_at=now + lease, last_attempt_at=now)
    if not claimed:
        return "not due"  # delivered, failed, not yet due, being sent, or webhook disabled
    delivery = WebhookDelivery.objects.select_related("subscription").filter(pk=delivery_pk).first()
    if delivery is None:
        return "webhook deleted"
    event = Event.objects.select_related("account").filter(pk=delivery.event_id).first()
    if event is None:
        outcome = Outcome(None, error="The event no longer exists (retention purged it).")
        return _record(delivery, outcome, now, final=True)
    body = payload(delivery, event)
    subscription = delivery.subscription
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(subscription.secret, int(time.time()), body),
        DELIVERY_HEADER: str(delivery.delivery_id),
        EVENT_HEADER: delivery.event_name,
    }
    outcome = post(subscription.url, body, headers, settings.WEBHOOK_TIMEOUT_SECONDS)
    return _record(delivery, outcome, now)


def _record(
    delivery: WebhookDelivery, outcome: Outcome, attempted_at: datetime, *, final: bool = False
) -> str:
    retry_in = None
    with transaction.atomic():
        # One lock order everywhere: the webhook, then its delivery.
        subscription = (
            WebhookSubscription.objects.select_for_update()
            .filter(pk=delivery.subscription_id)
            .first()
        )
        if subscription is None:
            return "webhook deleted"
        delivery = WebhookDelivery.objects.select_for_update().filter(pk=delivery.pk).first()
        if delivery is None:
            return "webhook deleted"
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            attempted_at=attempted_at,
            duration_ms=outcome.duration_ms,
            response_status=outcome.status,
            response_excerpt=outcome.excerpt,
            error=outcome.error,
        )
        delivery.last_attempt_at = attempted_at
        delivery.response_status = outcome.status
        delivery.response_excerpt = outcome.excerpt
        delivery.error = outcome.error
        if outcome.ok:
            delivery.status = Status.DELIVERED
            delivery.delivered_at = clock.now()
            delivery.next_attempt_at = None
            if subscription.consecutive_failures:
                subscription.consecutive_failures = 0
                subscription.save(update_fields=["consecutive_failures"])
        else:
            if final or delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
                delivery.status = Status.FAILED
                delivery.next_attempt_at = None
            else:
                retry_in = backoff_seconds(delivery.attempts)
                delivery.next_attempt_at = clock.now() + timedelta(seconds=retry_in)
            subscription.consecutive_failures += 1
            subscription.save(update_fields=["consecutive_failures"])
            limit = settings.WEBHOOK_DISABLE_AFTER_FAILURES
            if subscription.is_active and subscription.consecutive_failures >= limit:
                last = f"HTTP {outcome.status}" if outcome.status else outcome.error
                _disable(subscription, f"{limit} failed attempts in a row (last: {last})")
        delivery.save(
            update_fields=[
                "status",
                "next_attempt_at",
                "last_attempt_at",
                "delivered_at",
                "response_status",
                "response_excerpt",
                "error",
            ]
        )
        if retry_in is not None and subscription.is_active:
            pk = delivery.pk
            transaction.on_commit(lambda: queue_sends([pk], countdown=retry_in))
    return delivery.status if retry_in is None else f"retry in {retry_in:.0f}s"
