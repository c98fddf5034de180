"""Kafka connection security: ``KAFKA_*`` settings -> librdkafka keys, for local Kafka, clusters and AWS MSK.

| setup | settings |
|---|---|
| local / dev | ``KAFKA_SECURITY_PROTOCOL=PLAINTEXT`` (default) |
| TLS (MSK port 9094, clusters) | ``SSL`` (+ ``KAFKA_SSL_CA_LOCATION``; client cert/key for mutual TLS) |
| SASL/SCRAM (MSK port 9096) | ``SASL_SSL`` + ``KAFKA_SASL_MECHANISM=SCRAM-SHA-512`` + username/password |
| MSK IAM (port 9098) | ``SASL_SSL`` + ``KAFKA_SASL_MECHANISM=AWS_MSK_IAM`` + ``KAFKA_AWS_REGION``: OAUTHBEARER with a token |
|  | from ``aws-msk-iam-sasl-signer-python`` (imported only then; AWS credentials from the usual chain) |
"""

from __future__ import annotations

from collections.abc import Callable


def check_security(s) -> None:
    """Raise ``ValueError`` naming the missing or contradictory ``KAFKA_*`` settings."""
    sasl = s.security_protocol.startswith("SASL")
    if sasl and s.sasl_mechanism is None:
        raise ValueError(f"KAFKA_SASL_MECHANISM is required with KAFKA_SECURITY_PROTOCOL={s.security_protocol}")
    if not sasl and s.sasl_mechanism is not None:
        raise ValueError(f"KAFKA_SASL_MECHANISM={s.sasl_mechanism} needs KAFKA_SECURITY_PROTOCOL=SASL_SSL (or SASL_PLAINTEXT)")
    if s.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and not (s.sasl_username and s.sasl_password):
        raise ValueError(f"KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required for {s.sasl_mechanism}")
    if s.sasl_mechanism == "AWS_MSK_IAM":
        if s.security_protocol != "SASL_SSL":
            raise ValueError("KAFKA_SASL_MECHANISM=AWS_MSK_IAM needs KAFKA_SECURITY_PROTOCOL=SASL_SSL")
        if not s.aws_region:
            raise ValueError("KAFKA_AWS_REGION is required for KAFKA_SASL_MECHANISM=AWS_MSK_IAM")


def security_config(s) -> dict:
    """The librdkafka security keys for settings ``s`` (empty for PLAINTEXT)."""
    cfg: dict = {"security.protocol": s.security_protocol}
    if s.ssl_ca_location:
        cfg["ssl.ca.location"] = str(s.ssl_ca_location)
    if s.ssl_certificate_location:
        cfg["ssl.certificate.location"] = str(s.ssl_certificate_location)
    if s.ssl_key_location:
        cfg["ssl.key.location"] = str(s.ssl_key_location)
    if s.ssl_key_password:
        cfg["ssl.key.password"] = s.ssl_key_password.get_secret_value()
    if s.sasl_mechanism == "AWS_MSK_IAM":
        cfg["sasl.mechanism"] = "OAUTHBEARER"
        cfg["oauth_cb"] = msk_iam_token_provider(s.aws_region)
    elif s.sasl_mechanism:
        cfg["sasl.mechanism"] = s.sasl_mechanism
        cfg["sasl.username"] = s.sasl_username
        cfg["sasl.password"] = s.sasl_password.get_secret_value()
    return cfg


def msk_iam_token_provider(region: str, generate: Callable[[str], tuple[str, int]] | None = None):
    """An ``oauth_cb`` for confluent-kafka: ``(token, expiry in seconds)`` signed for MSK IAM in ``region``."""

    def oauth_cb(_config_str: str) -> tuple[str, float]:
        gen = generate or _signer()
        token, expiry_ms = gen(region)
        return token, expiry_ms / 1000

    return oauth_cb


def _signer() -> Callable[[str], tuple[str, int]]:
    try:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
    except ImportError:
        raise RuntimeError("KAFKA_SASL_MECHANISM=AWS_MSK_IAM needs the package aws-msk-iam-sasl-signer-python "
                           "(pip install aws-msk-iam-sasl-signer-python)") from None
    return MSKAuthTokenProvider.generate_auth_token
