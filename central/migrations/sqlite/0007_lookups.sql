-- The two lookups ingestion makes for every record (sqlite). Keep in step
-- with ../postgres/0007_lookups.sql.
--
-- A packet of 1,000 records reads about 1,000 credentials by hash and the
-- entitlement versions of their recipients. In a rowid table with a TEXT
-- primary key a credential is found in two B-trees (the key's index, then
-- the table by rowid); a WITHOUT ROWID table keyed by the hash finds it in
-- one, and the snapshot's pages (`WHERE hash > ? ORDER BY hash`) read it
-- in order. The entitlement versions' index covers every column read, so
-- they are answered from the index alone. Together about half the cost of
-- these lookups (`docs/performance.md`, run H). The rebuild copies every
-- credential once, on upgrade: about 15 s for two million.
-- backend-specific: begin
CREATE TABLE credentials_by_hash (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL REFERENCES recipients(id),
    blocked_seq INTEGER
) WITHOUT ROWID;
INSERT INTO credentials_by_hash (hash, kind, recipient, blocked_seq)
    SELECT hash, kind, recipient, blocked_seq FROM credentials;
DROP TABLE credentials;
ALTER TABLE credentials_by_hash RENAME TO credentials;
CREATE INDEX credentials_recipient ON credentials(recipient);

DROP INDEX entitlement_versions_recipient;
CREATE INDEX entitlement_versions_recipient
    ON entitlement_versions(recipient, source, key, valid_from, valid_to, known_from);
-- backend-specific: end
