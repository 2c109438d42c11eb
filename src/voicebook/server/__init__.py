"""The HTTP and WebSocket server (FastAPI): `voicebook.server.app.create_app(settings)`."""
