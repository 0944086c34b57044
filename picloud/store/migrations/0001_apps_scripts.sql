-- Apps, their API keys and secrets; scripts and their version history.
CREATE TABLE apps (
    id          TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL            -- unix ms
) STRICT;

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    hash        TEXT NOT NULL UNIQUE,       -- sha256 hex of the key; the key itself is never kept
    prefix      TEXT NOT NULL,              -- first characters, to tell keys apart when listed
    created_at  INTEGER NOT NULL,
    last_used_at INTEGER
) STRICT;
CREATE INDEX api_keys_app ON api_keys(app_id);

CREATE TABLE secrets (
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (app_id, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE scripts (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,           -- the current version
    public      INTEGER NOT NULL DEFAULT 0,
    timeout_ms  INTEGER NOT NULL,
    memory_mb   INTEGER NOT NULL,
    isolation   TEXT NOT NULL DEFAULT 'warm' CHECK (isolation IN ('warm', 'fresh')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX scripts_app ON scripts(app_id, id);

CREATE TABLE script_versions (
    script_id   TEXT NOT NULL REFERENCES scripts(id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    source      TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    rollback_of INTEGER,                    -- set when a rollback made this version
    PRIMARY KEY (script_id, version)
) STRICT, WITHOUT ROWID;
