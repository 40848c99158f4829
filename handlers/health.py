"""``GET /healthz``: is Redis answering, is the database answering?"""
from __future__ import annotations

from flask import Blueprint, Response, jsonify

from handlers.runtime import current
from storage import db as storage_db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    rt = current()
    checks: dict[str, str] = {}
    try:
        rt.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # any failure is "down", whatever its type
        checks["redis"] = f"down: {type(exc).__name__}"
    try:
        storage_db.ping()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"down: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if healthy else "unavailable", **checks), (200 if healthy else 503)
