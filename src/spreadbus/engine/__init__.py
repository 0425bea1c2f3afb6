"""QuantEngine: pair analytics from the tick streams (``spreadbus engine``).

Pure parts (no Redis, no clock): ``entries`` (decode), ``grid`` (1-second bars), ``symbols``
and ``pairstate`` (state around :mod:`spreadbus.analytics`), ``alerts`` (rules), ``jobs``,
``core`` (one batch in, one write set out), ``diagnostics``. Redis edge: ``consumer``
(cursor, XREAD), ``warmstart``, ``writer``, ``rulestore``, and ``service``.
"""
