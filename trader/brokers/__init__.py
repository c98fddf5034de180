"""Brokers turn an order intent into fills: ``paper`` here; Binance (testnet, live) to come."""
