-- An organization's review policy: the words the independent reviewer is given, and whether the
-- model that wrote a revision may review it. Absent: the server's configured defaults apply.
CREATE TABLE review_policies (
    org_id                  TEXT NOT NULL PRIMARY KEY,
    policy                  TEXT NOT NULL,
    require_different_model BOOLEAN NOT NULL,
    updated_at              BIGINT NOT NULL,
    updated_by              TEXT NOT NULL
);
