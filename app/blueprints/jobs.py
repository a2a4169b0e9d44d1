"""Read side of /api/v1/admin/jobs: metrics, trends, stuck alerts, job browsing."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("jobs", __name__, url_prefix="/api/v1/admin/jobs")
