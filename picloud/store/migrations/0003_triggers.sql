-- Triggers, the event outbox, and dead letters.
CREATE TABLE triggers (
    id              TEXT PRIMARY KEY,
    app_id          TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('kv', 'cron')),
    script_id       TEXT NOT NULL REFERENCES scripts(id) ON DELETE CASCADE,
    dead_letter_script_id TEXT REFERENCES scripts(id) ON DELETE SET NULL,
    collection      TEXT,                   -- kv
    ops             TEXT,                   -- kv: comma-separated subset of insert,update,delete
    schedule        TEXT,                   -- cron
    timezone        TEXT,                   -- cron; NULL = UTC
    max_attempts    INTEGER NOT NULL DEFAULT 3,
    backoff_base_ms INTEGER NOT NULL DEFAULT 1000,
    backoff_max_ms  INTEGER NOT NULL DEFAULT 300000,
    enabled         INTEGER NOT NULL DEFAULT 1,
    created_at      INTEGER NOT NULL,
    last_fired_at   INTEGER,                -- cron: the last scheduled time handled (unix ms)
    skipped_runs    INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX triggers_watch ON triggers(app_id, collection) WHERE kind = 'kv';
CREATE INDEX triggers_app ON triggers(app_id, id);

-- The outbox: written in the same transaction as the KV change (or cron tick) that
-- caused it, deleted once delivered or dead-lettered. Rows are scanned by id.
-- AUTOINCREMENT: ids never come back after a purge, so the dispatcher's scan cursor holds.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    trigger_id  TEXT NOT NULL REFERENCES triggers(id) ON DELETE CASCADE,
    app_id      TEXT NOT NULL,
    order_key   TEXT NOT NULL,              -- events with one order_key are delivered in order
    payload     TEXT NOT NULL,              -- the ctx["event"] JSON
    depth       INTEGER NOT NULL DEFAULT 0, -- trigger chain depth, cut at 8
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'retrying', 'delivered')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,           -- unix ms: not before
    last_error  TEXT,
    created_at  INTEGER NOT NULL            -- unix ms
) STRICT;
CREATE INDEX events_trigger ON events(trigger_id, id);

-- Kept until deleted. trigger_id is not a foreign key: a dead letter outlives its trigger.
CREATE TABLE dead_letters (
    id              TEXT PRIMARY KEY,       -- time-ordered
    app_id          TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    trigger_id      TEXT,
    script_id       TEXT NOT NULL,          -- the handler that failed
    order_key       TEXT NOT NULL,
    event           TEXT NOT NULL,          -- the original event JSON
    attempts        INTEGER NOT NULL,
    error           TEXT NOT NULL,
    depth           INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    handler_script_id TEXT,                 -- the dead-letter script to run once, if any
    handler_status  TEXT CHECK (handler_status IN ('ok', 'error', 'none')),  -- NULL: not run yet
    handler_error   TEXT,
    replayed_at     INTEGER,
    replays         INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX dead_letters_app ON dead_letters(app_id, id);
CREATE INDEX dead_letters_trigger ON dead_letters(trigger_id, id);
CREATE INDEX dead_letters_handler ON dead_letters(id) WHERE handler_status IS NULL;
