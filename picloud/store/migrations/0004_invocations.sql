-- One row per invocation, written in batches (no fsync per invocation).
CREATE TABLE invocations (
    id              TEXT PRIMARY KEY,       -- time-ordered
    app_id          TEXT NOT NULL,
    script_id       TEXT NOT NULL,
    version         INTEGER NOT NULL,
    trigger         TEXT NOT NULL,          -- http | kv | cron | dead_letter
    trigger_id      TEXT,
    event_id        INTEGER,
    status          TEXT NOT NULL,          -- ok | script_error | timeout | resource_limit | internal
    http_status     INTEGER,
    started_at      INTEGER NOT NULL,       -- unix ms
    duration_ms     REAL NOT NULL,
    cpu_ms          REAL,
    peak_memory_kb  INTEGER,
    cold_start_ms   REAL,                   -- set when a worker was forked for this run
    log             TEXT NOT NULL DEFAULT '',
    error           TEXT
) STRICT;
CREATE INDEX invocations_script ON invocations(script_id, id);
CREATE INDEX invocations_app ON invocations(app_id, id);
CREATE INDEX invocations_status ON invocations(status, id);
CREATE INDEX invocations_started ON invocations(started_at);
