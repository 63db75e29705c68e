"""``carvana-serve``: a web page and HTTP API that cut cars out of photos with a trained chain.

``app`` (the routes), ``upload`` (multipart read within limits, in memory), ``work`` (the bounded
worker pool), ``cli`` (the console script); the page is ``static/`` (no build step, no CDN).
"""

from __future__ import annotations

from .app import Limits, create_app
from .cli import main
from .work import Inference

__all__ = ["Inference", "Limits", "create_app", "main"]
