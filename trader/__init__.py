"""The trader sidecar: features -> strategy -> risk -> broker, every step recorded in ``trading.*``."""
