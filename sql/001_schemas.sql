-- 001: schemas. Every migration is idempotent; applied ones are recorded in etl.schema_migrations.
CREATE SCHEMA IF NOT EXISTS market;
CREATE SCHEMA IF NOT EXISTS etl;
CREATE SCHEMA IF NOT EXISTS trading;
