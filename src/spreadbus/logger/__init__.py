"""CentralLogger: ``channel:logs`` into rotating JSON-lines files, and ``spreadbus logs``.

- :mod:`.record` turns one Pub/Sub payload into the record written to disk (a bad payload is
  kept as raw text with a parse-error flag, never dropped).
- :mod:`.sink` appends records to ``<data-dir>/logs/spreadbus.jsonl``, rotates it by size and
  bounds the crash loss to about one second.
- :mod:`.webhook` forwards ERROR and above to an HTTP endpoint off the hot path.
- :mod:`.service` is the ``spreadbus logger`` process; :mod:`.view` is ``spreadbus logs``.
"""
