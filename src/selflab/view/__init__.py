"""`selflab view`: a local web UI listing runs, their reports, game replays and records."""

from selflab.view.app import create_app, serve

__all__ = ["create_app", "serve"]
