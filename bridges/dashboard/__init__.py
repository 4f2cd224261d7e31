"""The live browser dashboard: ``hub`` (state and per-client fan-out), ``server`` (HTTP for the
page and a WebSocket for the stream, ``bodytalk dashboard``), ``static/`` (the page, no CDN)."""
