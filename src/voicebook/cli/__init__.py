"""The `voicebook` command line. Commands import their heavy dependencies lazily."""
