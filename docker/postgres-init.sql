-- Runs once when the postgres volume is created. POSTGRES_DB already created `klinepipe` (the pipeline);
-- this adds `airflow` (Airflow's metadata), owned by the same POSTGRES_USER.
CREATE DATABASE airflow;
