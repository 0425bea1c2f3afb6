"""Archivist: tick streams and TimeSeries history to Parquet under ``<data-dir>/archive/``.

Datasets (Hive-partitioned, zstd Parquet; see :mod:`spreadbus.archivist.layout`):
``ticks/symbol=S/date=D``, ``candles/symbol=S/date=D``, ``analytics/pair=Y-X/date=D``.
Every tick that entered a stream is archived exactly once (see
:mod:`spreadbus.archivist.service`); :mod:`spreadbus.archivist.reader` reads it back.
"""
