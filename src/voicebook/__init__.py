"""voicebook: the backend of an AI voice receptionist.

The package root stays import-light on purpose: `voicebook --help` and the SDK must not pull in
FastAPI, database drivers or LiveKit.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
