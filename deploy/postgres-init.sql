-- One PostgreSQL, three databases: the product's and Temporal's two (history and visibility).
-- The official image runs this once, on a fresh volume, with ON_ERROR_STOP, after creating
-- POSTGRES_DB itself (the product's, `refunds`): each database is created only where it is missing,
-- so the script succeeds whatever the image made first, and again if run by hand.
SELECT 'CREATE DATABASE refunds' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'refunds')\gexec
SELECT 'CREATE DATABASE temporal' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'temporal')\gexec
SELECT 'CREATE DATABASE temporal_visibility'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'temporal_visibility')\gexec
