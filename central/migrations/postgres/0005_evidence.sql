-- Records whose signature does not verify with their terminal's key
-- (postgres). Keep in step with ../sqlite/0005_evidence.sql.
--
-- Such a record cannot be attributed to the terminal (anything on the path
-- may have changed it), so it is kept here as evidence and never in
-- `records`: it does not take its seq, which stays open for the terminal's
-- genuine record. Rows are only ever added; a copy seen again adds nothing.
CREATE TABLE bad_signatures (
    terminal TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    body TEXT NOT NULL,
    sig TEXT NOT NULL,
    packet TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (terminal, seq, hash, sig)
);
