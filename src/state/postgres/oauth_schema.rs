//! The built-in authorization server's tables in PostgreSQL (schema version 2): the
//! same tables as SQLite's, with foreign keys that cascade, and the signing key set
//! whose `generation` is unique, so of several instances adding the successor of one key
//! at once exactly one succeeds. Times are unix seconds.

/// Version 2.
pub const V2: &str = "
CREATE TABLE oauth_clients (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('dcr', 'cimd')),
    name          TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    auth_method   TEXT NOT NULL
        CHECK (auth_method IN ('none', 'client_secret_post', 'client_secret_basic')),
    secret_hash   TEXT,
    created_at    BIGINT NOT NULL,
    fetched_at    BIGINT
);
CREATE TABLE oauth_grants (
    id             TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    scope          TEXT NOT NULL,
    resource       TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT NOT NULL,
    revoked_at     BIGINT,
    revoked_reason TEXT
);
CREATE INDEX oauth_grants_by_client ON oauth_grants (client_id);
CREATE TABLE oauth_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    resource       TEXT NOT NULL,
    scope          TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT,
    grant_id       TEXT REFERENCES oauth_grants(id) ON DELETE SET NULL
);
CREATE INDEX oauth_codes_by_client ON oauth_codes (client_id);
CREATE INDEX oauth_codes_by_grant ON oauth_codes (grant_id);
CREATE TABLE oauth_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES oauth_grants(id) ON DELETE CASCADE,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX oauth_refresh_by_grant ON oauth_refresh_tokens (grant_id);
CREATE TABLE oauth_signing_keys (
    kid         TEXT PRIMARY KEY,
    generation  BIGINT NOT NULL UNIQUE,
    private_pem TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    not_before  BIGINT NOT NULL,
    retire_at   BIGINT
);
";
