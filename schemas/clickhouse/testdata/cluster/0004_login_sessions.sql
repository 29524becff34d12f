-- 0004_login_sessions rendered for cluster "audit", database "auditpipe" (checksum f4cf0579860c900f0886b87578cd020a10ff52cd6333db7fb965b18ac6fd3d38)

CREATE VIEW IF NOT EXISTS login_sessions ON CLUSTER `audit` AS
SELECT
    host,
    loginid,
    req_auth_id,
    session,
    minIf(ts, event = 'login')                            AS login_ts,
    if(countIf(event = 'logout') > 0,
       maxIf(ts, event = 'logout'), NULL)                  AS logout_ts,
    countIf(event = 'logout') = 0                          AS open,
    anyIf(srchost, event = 'login')                        AS srchost,
    anyIf(desthost, event = 'login')                       AS desthost,
    anyIf(tty, event = 'login')                            AS tty
FROM audit_events FINAL
WHERE event IN ('login', 'logout') AND res != 'failed'
GROUP BY host, loginid, req_auth_id, if(ses != '', ses, pid) AS session;

