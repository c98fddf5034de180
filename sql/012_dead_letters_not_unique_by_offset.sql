-- 012: a dead letter is not identified by (topic, partition, offset). A recreated topic (the embedded broker
-- starts empty on every run) hands out the same offsets again, and its new rejects were dropped as
-- duplicates. Loading exactly once comes from the offsets committed in the same transaction.
ALTER TABLE etl.dead_letters DROP CONSTRAINT IF EXISTS dead_letters_topic_partition_offset_key;
CREATE INDEX IF NOT EXISTS dead_letters_topic_partition_offset ON etl.dead_letters (topic, partition, "offset");
