-- The key-value store. Keys sort by UTF-8 bytes (BINARY collation = memcmp).
CREATE TABLE kv (
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    collection  TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,              -- the JSON encoding of the value
    size        INTEGER NOT NULL,           -- UTF-8 bytes of key + value, counted in kv_usage
    expires_at  INTEGER,                    -- unix ms; NULL = never
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (app_id, collection, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX kv_expiry ON kv(expires_at) WHERE expires_at IS NOT NULL;

-- Bytes each app holds (the sum of kv.size, expired rows included until purged),
-- kept in the same transaction as every write for the quota check.
CREATE TABLE kv_usage (
    app_id      TEXT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    bytes       INTEGER NOT NULL DEFAULT 0
) STRICT;
