"""The studio: compose with a model in the browser (``notetune studio``).

``models`` loads the models a user names, ``generation`` turns locked notes into the constraint mask and samples
under it, ``figures`` scores a melody, ``files`` writes and reads MIDI/MusicXML/WAV, ``workspace`` keeps every
melody's versions and the A/B answers, ``app`` is the HTTP API and the page in ``static/``.
"""
