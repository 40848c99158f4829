"""The secretariat's admin commands, typed in LINE (``/pending``, ``/approve 12`` …)."""
