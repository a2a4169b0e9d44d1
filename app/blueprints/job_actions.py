"""Actions of /api/v1/admin/jobs (admin): pause, resume, clear, retry."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("job_actions", __name__, url_prefix="/api/v1/admin/jobs")
