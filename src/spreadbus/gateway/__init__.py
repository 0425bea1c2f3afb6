"""MarketGateway: Binance (or sim / replay) trades into sharded Redis streams and TimeSeries."""
