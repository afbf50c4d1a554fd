-- Adds the `audit` scope (read the audit log, nothing else) to the CHECK lists of principals and
-- tokens. SQLite cannot ALTER a CHECK constraint, and the usual rebuild (copy, drop, rename) needs
-- foreign keys off, which cannot be switched inside the migration's transaction. Widening an IN
-- list changes no stored row, so this uses SQLite's documented procedure for such changes
-- (lang_altertable.html, "Making Other Kinds Of Table Schema Changes"): edit the table's SQL in
-- sqlite_schema, then reload the schema. Rows valid before stay valid.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(sql, 'max_scope    TEXT NOT NULL CHECK (max_scope IN (''read'', ''push'', ''write'', ''admin''))', 'max_scope    TEXT NOT NULL CHECK (max_scope IN (''read'', ''push'', ''write'', ''admin'', ''audit''))') WHERE type = 'table' AND name = 'principals';
UPDATE sqlite_schema SET sql = replace(sql, 'scope        TEXT NOT NULL CHECK (scope IN (''read'', ''push'', ''write'', ''admin''))', 'scope        TEXT NOT NULL CHECK (scope IN (''read'', ''push'', ''write'', ''admin'', ''audit''))') WHERE type = 'table' AND name = 'api_tokens';
PRAGMA writable_schema = RESET;
