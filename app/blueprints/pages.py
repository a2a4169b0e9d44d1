"""The admin pages under /admin (Jinja templates in templates/, assets in app/static/)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pages", __name__, url_prefix="/admin")
