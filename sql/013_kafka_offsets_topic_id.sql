-- 013: which incarnation of a topic an offset belongs to (the broker's topic id, KIP-516). A deleted and
-- recreated topic (or the embedded broker after a restart) starts its offsets at 0 again under a new id; an
-- offset stored for another id points into a log that is gone, and the loader reads the new one from its start.
-- NULL: stored before this migration or by a broker that gives no id (trusted as before).
ALTER TABLE etl.kafka_offsets ADD COLUMN IF NOT EXISTS topic_id text;
