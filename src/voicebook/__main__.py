"""`python -m voicebook` runs the same CLI as the `voicebook` console script."""

from voicebook.cli.app import main

main()
