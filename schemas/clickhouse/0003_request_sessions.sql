-- One row per access request: what an auditor asks first. A view, so it is
-- always current and always deduplicated (FINAL).
CREATE VIEW IF NOT EXISTS request_sessions{{onCluster}} AS
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
