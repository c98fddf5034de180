"""Airflow's own login in front of the Trading page: the JWT the UI keeps in the ``_token`` cookie
(or an ``Authorization: Bearer`` token from ``POST /auth/token``), checked by the api-server's auth manager.

Operator actions (the kill switch) need more than seeing the UI: the permission to change DAGs
(``is_authorized_dag(method="PUT")``: pause, trigger), which Airflow's read-only roles lack (the simple auth
manager's ``viewer``; FAB's ``Viewer``), so they are refused with 403.

``/klinepipe/metrics`` also accepts ``Authorization: Bearer $KLINEPIPE_METRICS_TOKEN`` when that
variable is set, so Prometheus can scrape without an expiring Airflow token.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import HTTPException, Request, status

from klinepipe.settings import lenient_settings

COOKIE = "_token"  # airflow.api_fastapi.auth.managers.base_auth_manager.COOKIE_NAME_JWT_TOKEN
log = logging.getLogger(__name__)


def _presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE)


async def current_user(request: Request):
    """The logged-in Airflow user allowed to see the UI, else 401/403 (FastAPI dependency)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    user = await resolve_user_from_token(_presented_token(request))
    if not get_auth_manager().is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")
    return user


async def operator(request: Request):
    """A logged-in Airflow user who may act (change DAGs), else 401/403 (FastAPI dependency)."""
    from airflow.api_fastapi.app import get_auth_manager

    user = await current_user(request)
    if not get_auth_manager().is_authorized_dag(method="PUT", user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "read-only role: operator actions need permission to change DAGs")
    return user


def user_name(user) -> str:
    return user.get_name() if hasattr(user, "get_name") else str(user)


async def metrics_reader(request: Request) -> None:
    """A scraper with ``$KLINEPIPE_METRICS_TOKEN``, or a logged-in Airflow user."""
    token = lenient_settings(log).metrics_token
    expected = token.get_secret_value() if token is not None else ""
    presented = _presented_token(request) or ""
    if expected and hmac.compare_digest(presented.encode(), expected.encode()):
        return
    await current_user(request)


def login_url(request: Request) -> str:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=str(request.url))
