"""Videos in, frame store out: reading videos, the manifest, frame quality, patient splits, the
store and ``ingest`` that fills it."""
