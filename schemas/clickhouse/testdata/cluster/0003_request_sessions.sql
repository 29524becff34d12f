-- 0003_request_sessions rendered for cluster "audit", database "auditpipe" (checksum b3ec91cb6fdb6144883a56060b9ac0b8e967c98a4d93156723273f31ee2bc50a)

CREATE VIEW IF NOT EXISTS request_sessions ON CLUSTER `audit` AS
SELECT
    req_auth_id,
    min(ts)                            AS first_event,
    max(ts)                            AS last_event,
    count()                            AS events,
    countIf(event = 'login')           AS logins,
    countIf(event = 'logout')          AS logouts,
    countIf(event = 'command')         AS commands,
    countIf(event = 'keys')            AS keystroke_events,
    arraySort(groupUniqArray(host))    AS hosts,
    arraySort(groupUniqArray(loginid)) AS operators,
    arraySort(groupUniqArray(layer))   AS layers
FROM audit_events FINAL
WHERE req_auth_id != ''
GROUP BY req_auth_id;

