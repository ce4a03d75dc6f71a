"""Sending one notification: e-mail over SMTP (stdlib ``smtplib``) and a webhook (HTTP POST of JSON, httpx).

Each sender raises ``DeliveryFailed`` with a one-line reason; the outbox
(``service``) audits the attempt and retries with backoff. A message carries
its notification id (``Message-ID`` / ``X-Cqgov-Notification``) so a receiver
can drop a copy sent again after a crash between sending and recording it.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from ..domain.people import Notification
from .config import EmailConfig, WebhookConfig


class DeliveryFailed(Exception):
    """This attempt did not deliver; the reason is one line."""


def send_email(cfg: EmailConfig, n: Notification, ack_url: str | None) -> None:
    msg = EmailMessage()
    msg["From"] = cfg.sender
    msg["To"] = n.address
    msg["Subject"] = n.subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(idstring=n.id.replace("-", ""), domain="cqgov")
    msg["X-Cqgov-Notification"] = n.id
    body = n.body
    if n.needs_ack and ack_url:
        body += f"\n\n确认收到 / acknowledge: {ack_url}"
    msg.set_content(body)
    try:
        with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.timeout_s) as smtp:
            if cfg.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if cfg.username:
                smtp.login(cfg.username, cfg.password or "")
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryFailed(f"SMTP {cfg.smtp_host}:{cfg.smtp_port}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}"[:300]) from None


def webhook_payload(n: Notification, ack_url: str | None) -> dict[str, Any]:
    return {"id": n.id, "message": n.message_key, "recipient": n.recipient, "subject": n.subject, "body": n.body,
            "ref": n.ref, "priority": n.priority, "needs_ack": n.needs_ack, "ack_url": ack_url,
            "created_at": n.created_at, "step": n.step}


def send_webhook(cfg: WebhookConfig, n: Notification, ack_url: str | None, client: Any = None) -> None:
    import httpx

    headers = {"Content-Type": "application/json", "X-Cqgov-Notification": n.id, **cfg.headers}
    try:
        if client is not None:
            resp = client.post(cfg.url, json=webhook_payload(n, ack_url), headers=headers, timeout=cfg.timeout_s)
        else:
            resp = httpx.post(cfg.url, json=webhook_payload(n, ack_url), headers=headers, timeout=cfg.timeout_s)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"webhook {cfg.url}: {type(exc).__name__}") from None
    if resp.status_code >= 300:
        raise DeliveryFailed(f"webhook {cfg.url}: HTTP {resp.status_code}")
