"""Notifications: what happened to the trader, told to the operator over a webhook and/or Telegram.

* **Outbox** (``trading.notifications``, sql/017): every fill and every event worth telling (risk blocks, kill-switch
  changes and actions, strategy errors, fatal order errors, protection placed/triggered) is written there by a
  trigger in the same transaction as the row it reports, so nothing recorded goes untold and nothing untold was
  recorded; the daily summary is enqueued once per mode and UTC day (a unique ``dedupe_key``).
* **Drainer** (``drainer.NotificationDrainer``): a thread of its own, on its own connection, delivers each message to
  each channel at least once: retried with capped exponential backoff, rate limited per channel, messages older
  than ``TRADER_NOTIFY_MAX_AGE_HOURS`` dropped. The trading loop only ever inserts rows: a slow or dead channel
  never blocks or slows it.
* **Delivery guarantee**: a delivery is marked in the same transaction that locked the message, after the channel
  answered 2xx. A crash between the answer and the commit sends the message again, with the same id
  (``X-Klinepipe-Message-Id`` header and ``id`` in the body, ``#id`` in Telegram's text) and the same body and
  signature: a webhook receiver that keeps the ids it has seen gets every message exactly once. Telegram's Bot API
  has no idempotency key, so there such a crash shows the message twice, marked with the same ``#id``.
* **Secrets**: the webhook URL and secret and the Telegram token are ``SecretStr`` from the environment or a private
  file; errors record the channel's HTTP status or the exception's class only, never a URL, token or signature.
"""
