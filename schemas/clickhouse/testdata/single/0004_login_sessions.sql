-- One row per login session on a host: a login and the logout that closes
-- it, paired by host, login user and the sshd pid of the login (the audit
-- session id where the collector has it), with the commands run meanwhile
-- counted from the same audit session.
CREATE VIEW IF NOT EXISTS login_sessions AS
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
