-- Runs once when the postgres volume is created: one database for the pipeline, one for Airflow.
CREATE DATABASE klinepipe;
CREATE DATABASE airflow;
