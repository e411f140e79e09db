BEGIN TRANSACTION;
CREATE TABLE groups (
    id INTEGER PRIMARY KEY,
    location_id TEXT NOT NULL,
    action TEXT NOT NULL,
    tags TEXT NOT NULL,            -- JSON array, canonical order
    remove_all INTEGER NOT NULL,
    parts INTEGER NOT NULL         -- requests per member: one per 50-tag slice
);
INSERT INTO "groups" VALUES(1,'sandboxLocation00001','add','["vip"]',0,1);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "meta" VALUES('created','2026-12-06T21:23:40Z');
INSERT INTO "meta" VALUES('input','/tmp/oldgen/contacts.csv');
INSERT INTO "meta" VALUES('operation','add ["vip"] at location sandboxLocation00001');
INSERT INTO "meta" VALUES('target','sandbox');
INSERT INTO "meta" VALUES('report','/tmp/oldgen/contacts-report.csv');
INSERT INTO "meta" VALUES('columns','["contact_id", "email"]');
INSERT INTO "meta" VALUES('rows','12');
INSERT INTO "meta" VALUES('state','ready');
INSERT INTO "meta" VALUES('counts','{"failed": 5, "invalid": 1, "success": 6}');
CREATE TABLE results (             -- one per (row, part) that a request settled
    row INTEGER NOT NULL,
    part INTEGER NOT NULL,
    status TEXT NOT NULL,          -- success, error or failed
    message TEXT NOT NULL,
    old_tags TEXT,
    tags_added TEXT,
    tags_removed TEXT,
    http_status INTEGER,
    attempts INTEGER NOT NULL,
    PRIMARY KEY (row, part)
) WITHOUT ROWID;
INSERT INTO "results" VALUES(1,0,'failed','HTTP 503: Service Unavailable (after 1 attempt); running the same command again retries it',NULL,NULL,NULL,503,1);
INSERT INTO "results" VALUES(2,0,'failed','HTTP 503: Service Unavailable (after 1 attempt); running the same command again retries it',NULL,NULL,NULL,503,1);
INSERT INTO "results" VALUES(3,0,'failed','HTTP 503: Service Unavailable (after 1 attempt); running the same command again retries it',NULL,NULL,NULL,503,1);
INSERT INTO "results" VALUES(4,0,'failed','HTTP 503: Service Unavailable (after 1 attempt); running the same command again retries it',NULL,NULL,NULL,503,1);
INSERT INTO "results" VALUES(5,0,'failed','HTTP 503: Service Unavailable (after 1 attempt); running the same command again retries it',NULL,NULL,NULL,503,1);
INSERT INTO "results" VALUES(6,0,'success','Tags updated','[]','["vip"]','[]',201,1);
INSERT INTO "results" VALUES(7,0,'success','Tags updated','[]','["vip"]','[]',201,1);
INSERT INTO "results" VALUES(8,0,'success','Tags updated','[]','["vip"]','[]',201,1);
INSERT INTO "results" VALUES(9,0,'success','Tags updated','[]','["vip"]','[]',201,1);
INSERT INTO "results" VALUES(10,0,'success','Tags updated','[]','["vip"]','[]',201,1);
INSERT INTO "results" VALUES(11,0,'success','Tags updated','[]','["vip"]','[]',201,1);
CREATE TABLE rows (
    row INTEGER PRIMARY KEY,       -- 1-based data row of the input
    line INTEGER NOT NULL,         -- where a person finds it: line in the file, row in the sheet
    contact_id TEXT NOT NULL,
    location_id TEXT NOT NULL,
    action TEXT NOT NULL,
    tags TEXT NOT NULL,            -- JSON array, as the row asked
    group_id INTEGER,              -- NULL when the row is invalid
    round INTEGER,                 -- k: the contact's k-th operation (NULL: never sent)
    wait_row INTEGER,              -- the contact's previous operation, which must settle first
    pre_status TEXT,               -- 'invalid' or 'duplicate': settled before sending
    pre_message TEXT NOT NULL,
    c0 TEXT NOT NULL,
    c1 TEXT NOT NULL
);
INSERT INTO "rows" VALUES(1,2,'agyQigoUjTPiHBz9fb6y','sandboxLocation00001','add','["vip"]',1,1,NULL,NULL,'','agyQigoUjTPiHBz9fb6y','p0@example.com');
INSERT INTO "rows" VALUES(2,3,'muw7nnKH7ZwmZ9bT1OnX','sandboxLocation00001','add','["vip"]',1,1,NULL,NULL,'','muw7nnKH7ZwmZ9bT1OnX','p1@example.com');
INSERT INTO "rows" VALUES(3,4,'TmNncuuyOZ789WskMHPf','sandboxLocation00001','add','["vip"]',1,1,NULL,NULL,'','TmNncuuyOZ789WskMHPf','p2@example.com');
INSERT INTO "rows" VALUES(4,5,'l5LRfy4O9mCXBWIhg8hm','sandboxLocation00001','add','["vip"]',1,1,NULL,NULL,'','l5LRfy4O9mCXBWIhg8hm','p3@example.com');
INSERT INTO "rows" VALUES(5,6,'uS0DEWrxLNcgiSQ8VpV9','sandboxLocation00001','add','["vip"]',1,1,NULL,NULL,'','uS0DEWrxLNcgiSQ8VpV9','p4@example.com');
INSERT INTO "rows" VALUES(6,7,'vaxrkch1dMmlYslCRG1y','sandboxLocation00001','add','["vip"]',1,1,NULL,NULL,'','vaxrkch1dMmlYslCRG1y','p5@example.com');
INSERT INTO "rows" VALUES(7,8,'GSCSCihWU6QJk0hAixtA','sandboxLocation00001','add','["vip"]',1,1,NULL,NULL,'','GSCSCihWU6QJk0hAixtA','p6@example.com');
INSERT INTO "rows" VALUES(8,9,'SHpWTZcM3qmYwyYxmnvR','sandboxLocation00001','add','["vip"]',1,1,NULL,NULL,'','SHpWTZcM3qmYwyYxmnvR','p7@example.com');
INSERT INTO "rows" VALUES(9,10,'wVepMDE5rlcDsDaaxUs4','sandboxLocation00001','add','["vip"]',1,1,NULL,NULL,'','wVepMDE5rlcDsDaaxUs4','p8@example.com');
INSERT INTO "rows" VALUES(10,11,'JzWoL0HtfJlxH6PG1tyP','sandboxLocation00001','add','["vip"]',1,1,NULL,NULL,'','JzWoL0HtfJlxH6PG1tyP','p9@example.com');
INSERT INTO "rows" VALUES(11,12,'InzZpRc7Qu8XdpE9ictc','sandboxLocation00001','add','["vip"]',1,1,NULL,NULL,'','InzZpRc7Qu8XdpE9ictc','p10@example.com');
INSERT INTO "rows" VALUES(12,13,'not-an-id','sandboxLocation00001','add','["vip"]',NULL,NULL,NULL,'invalid','contact id "not-an-id" does not match ^[A-Za-z0-9]{20}$','not-an-id','bad@example.com');
CREATE INDEX rows_by_group ON rows (group_id, round, row) WHERE group_id IS NOT NULL;
CREATE INDEX rows_settled_before ON rows (pre_status, row) WHERE pre_status IS NOT NULL;
COMMIT;
