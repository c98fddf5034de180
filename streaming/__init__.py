"""The streaming sidecar: Binance kline websockets (or a replay of recorded klines) -> Kafka."""
