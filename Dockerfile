# One image for Airflow, the streaming sidecar and the trader (same pinned requirements as `make`).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PYTHONPATH=/app:/app/plugins
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN useradd --create-home --uid 50000 klinepipe && chown -R klinepipe /app
USER klinepipe
