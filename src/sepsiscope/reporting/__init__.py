"""``report``: one self-contained HTML page of everything a run holds."""
