"""The web app (``sepsiscope serve``): upload videos, follow their progress, review and correct
the detected vessels, read the metrics beside the network's probability, export.

Rooms: :mod:`.project` (the data folder and its SQLite queue), :mod:`.uploads` (receiving and
checking a file), :mod:`.jobs` (worker processes running the stages), :mod:`.views` (what a page
shows, from the stages' files), :mod:`.patient_report` and :mod:`.server` (FastAPI routes,
templates in ``templates/``, JavaScript and CSS in ``static/``). Research use only.
"""
