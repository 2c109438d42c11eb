-- voicebook 0009: the console's Numbers tab counts, per local day, the appointments made and
-- cancelled, and over its window the failed tool calls by error code: an index for each range it
-- reads (sessions by start are 0008's), so a count costs what its window holds, not the table.
CREATE INDEX appointments_created ON appointments (created_at);
CREATE INDEX appointments_cancelled ON appointments (cancelled_at) WHERE status = 'cancelled';
-- The predicate is the very expression the query writes (Dialect.json_text), so the planner
-- matches it: only failed calls are in this index.
CREATE INDEX session_events_failed_tool_calls ON session_events (created_at)
    WHERE type = 'tool_call' AND json_extract(payload, '$.status') = 'failed';
