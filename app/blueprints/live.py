"""SSE streams of /api/v1/admin/jobs: /live and /queue/<queueName>/live."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("live", __name__, url_prefix="/api/v1/admin/jobs")
