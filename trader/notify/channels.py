"""Delivery channels: a webhook (JSON POST, optional HMAC signature) and Telegram (Bot API ``sendMessage``).

``send`` returns on a 2xx answer and raises ``DeliveryFailed`` otherwise. Its text is the HTTP status or the
exception's class, never a URL (Telegram's holds the token, a webhook's may), a token, a secret or a signature;
a 429's ``Retry-After`` (Telegram: ``parameters.retry_after``) is kept for the drainer to wait.
"""

from __future__ import annotations

import requests
from pydantic import SecretStr

from trader.notify.messages import Message, render_text, sign, webhook_body

TIMEOUT_S = 10.0


class DeliveryFailed(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def _post(session: requests.Session, url: str, **kw) -> requests.Response:
    try:
        answer = session.post(url, timeout=TIMEOUT_S, **kw)
    except requests.RequestException as exc:
        raise DeliveryFailed(f"no answer ({type(exc).__name__})") from None
    if answer.status_code // 100 != 2:
        raise DeliveryFailed(f"HTTP {answer.status_code}", _retry_after(answer))
    return answer


def _retry_after(answer: requests.Response) -> float | None:
    if answer.status_code != 429:
        return None
    try:
        return float(answer.headers.get("Retry-After") or answer.json()["parameters"]["retry_after"])
    except (ValueError, KeyError, TypeError):
        return None


class WebhookChannel:
    name = "webhook"

    def __init__(self, url: SecretStr, secret: SecretStr | None = None, session: requests.Session | None = None) -> None:
        self._url, self._secret, self._session = url, secret, session or requests.Session()

    def send(self, msg: Message, attempt: int) -> None:
        body = webhook_body(msg)
        headers = {"Content-Type": "application/json", "X-Klinepipe-Message-Id": msg.message_id,
                   "X-Klinepipe-Attempt": str(attempt)}
        if self._secret is not None:
            headers["X-Klinepipe-Signature"] = sign(body, self._secret.get_secret_value())
        _post(self._session, self._url.get_secret_value(), data=body, headers=headers)


class TelegramChannel:
    name = "telegram"

    def __init__(self, base_url: str, token: SecretStr, chat_id: str, session: requests.Session | None = None) -> None:
        self._base, self._token, self._chat = base_url.rstrip("/"), token, chat_id
        self._session = session or requests.Session()

    def send(self, msg: Message, attempt: int) -> None:
        url = f"{self._base}/bot{self._token.get_secret_value()}/sendMessage"
        answer = _post(self._session, url, json={"chat_id": self._chat, "text": render_text(msg),
                                                 "disable_web_page_preview": True})
        try:
            ok = answer.json().get("ok") is True
        except ValueError:
            ok = False
        if not ok:
            raise DeliveryFailed("Telegram answered without ok=true")
