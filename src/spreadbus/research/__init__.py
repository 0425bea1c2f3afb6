"""The research workbench: uploaded datasets, offline pair analysis, backtests, parameter
sweeps, the cointegration screener and streamed downloads.

One noun per module; the numbers themselves come from :mod:`spreadbus.analytics`. Nothing
here writes to the live streams: datasets live under ``<data-dir>/datasets`` only.
"""
