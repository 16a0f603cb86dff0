-- Central's register, chain of records and change log (SQLite).
-- Keep in step with ../postgres/0001_init.sql: same tables, same columns.

CREATE TABLE providers (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE merchants (id TEXT PRIMARY KEY, name TEXT NOT NULL);

-- Staff API tokens: only the SHA-256 of the secret is stored.
CREATE TABLE tokens (
    hash TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('admin', 'provider', 'merchant')),
    scope TEXT,
    label TEXT NOT NULL
);

CREATE TABLE terminals (
    id TEXT PRIMARY KEY,
    merchant TEXT NOT NULL REFERENCES merchants(id),
    label TEXT NOT NULL,
    categories TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'revoked')),
    public_key TEXT UNIQUE,
    enrolled_at TEXT,
    revoked_at TEXT,
    acked_through INTEGER NOT NULL DEFAULT 0,
    last_seen TEXT,
    clock_skew_s INTEGER
);
CREATE TABLE terminal_ids (n INTEGER PRIMARY KEY AUTOINCREMENT);

-- One-time enrolment codes, by SHA-256 of the code.
CREATE TABLE enrol_codes (
    hash TEXT PRIMARY KEY,
    terminal TEXT NOT NULL REFERENCES terminals(id),
    expires_at TEXT NOT NULL,
    used_at TEXT
);

CREATE TABLE recipient_groups (id TEXT PRIMARY KEY, provider TEXT NOT NULL, label TEXT NOT NULL);

-- Current definition of each benefit (with groups), and every published
-- terminal-visible version by hash, so old records stay verifiable.
CREATE TABLE benefits (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    definition TEXT NOT NULL,
    terminal_hash TEXT NOT NULL,
    published_seq INTEGER NOT NULL
);
CREATE TABLE benefit_versions (
    hash TEXT PRIMARY KEY,
    benefit TEXT NOT NULL,
    definition TEXT NOT NULL,
    published_seq INTEGER NOT NULL
);

-- Pseudonymous recipients; personal data lives apart and no snapshot reads it.
CREATE TABLE recipients (id TEXT PRIMARY KEY, provider TEXT NOT NULL);
CREATE TABLE recipient_personal (
    recipient TEXT PRIMARY KEY REFERENCES recipients(id),
    personal_code TEXT,
    name TEXT
);

CREATE TABLE credentials (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL REFERENCES recipients(id),
    blocked_seq INTEGER
);
CREATE INDEX credentials_recipient ON credentials(recipient);

CREATE TABLE grants (
    recipient TEXT NOT NULL REFERENCES recipients(id),
    benefit TEXT NOT NULL,
    provider TEXT NOT NULL,
    valid_from TEXT,
    valid_to TEXT,
    PRIMARY KEY (recipient, benefit)
);
CREATE TABLE memberships (
    recipient TEXT NOT NULL REFERENCES recipients(id),
    grp TEXT NOT NULL,
    provider TEXT NOT NULL,
    valid_from TEXT,
    valid_to TEXT,
    PRIMARY KEY (recipient, grp)
);

-- The change log: its seq is the snapshot version. Rows become visible in
-- seq order (writers serialise on it), so a delta never skips one.
CREATE TABLE changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('benefit', 'credential', 'recipient', 'usage')),
    key TEXT NOT NULL
);
CREATE INDEX changes_kind_key ON changes(kind, key);

CREATE TABLE packets (
    id TEXT PRIMARY KEY,
    terminal TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    received_at TEXT NOT NULL
);

-- The chain: the first record seen for each (terminal, seq), with its outcome.
CREATE TABLE records (
    terminal TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    prev TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'flagged', 'held')),
    reason TEXT,
    recipient TEXT NOT NULL,
    credential TEXT NOT NULL,
    merchant TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    discount_cents INTEGER NOT NULL,
    providers TEXT NOT NULL,
    snapshot INTEGER NOT NULL,
    body TEXT NOT NULL,
    sig TEXT NOT NULL,
    packet TEXT NOT NULL,
    PRIMARY KEY (terminal, seq)
);

-- Forks: a second, different record for a stored (terminal, seq). Evidence.
CREATE TABLE forks (
    terminal TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    body TEXT NOT NULL,
    sig TEXT NOT NULL,
    packet TEXT NOT NULL,
    PRIMARY KEY (terminal, seq, hash)
);

-- Usage per recipient, benefit, local day and terminal, for snapshots.
CREATE TABLE usage_days (
    recipient TEXT NOT NULL,
    benefit TEXT NOT NULL,
    day TEXT NOT NULL,
    terminal TEXT NOT NULL,
    count INTEGER NOT NULL,
    amount_cents INTEGER NOT NULL,
    change_seq INTEGER NOT NULL,
    PRIMARY KEY (recipient, benefit, day, terminal)
);
CREATE INDEX usage_days_change ON usage_days(change_seq);
