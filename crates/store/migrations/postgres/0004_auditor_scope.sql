-- Adds the `audit` scope (read the audit log, nothing else).
ALTER TABLE principals DROP CONSTRAINT principals_max_scope_check,
    ADD CONSTRAINT principals_max_scope_check CHECK (max_scope IN ('read', 'push', 'write', 'admin', 'audit'));
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_scope_check,
    ADD CONSTRAINT api_tokens_scope_check CHECK (scope IN ('read', 'push', 'write', 'admin', 'audit'));
