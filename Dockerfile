# One image for Airflow (api-server, scheduler, dag-processor, triggerer), the streaming sidecar and the trader,
# with the same pinned requirements as `make`. Build: docker compose build (or docker build -t klinepipe:local .)
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app:/app/plugins \
    AIRFLOW_HOME=/opt/klinepipe/airflow KLINEPIPE_REPORTS_DIR=/opt/klinepipe/reports
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Named volumes mounted on these directories start with this ownership.
RUN useradd --create-home --uid 50000 klinepipe \
    && mkdir -p /opt/klinepipe/airflow /opt/klinepipe/reports \
    && chown -R klinepipe /app /opt/klinepipe
USER klinepipe
EXPOSE 8080 9102 9108
CMD ["python", "-m", "trader", "--help"]
