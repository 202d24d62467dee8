//! BSQL with real PostgreSQL clients: a psql golden script (`tests/cases/bsql/*.sql`, the
//! expected output produced by PostgreSQL 15 itself), psycopg 3 and JDBC programs
//! (`psycopg_check.py`, `Jdbc.java`), tokio-postgres (extended protocol,
//! binary parameters and results, CancelRequest), pgbench (`-i`, then select-only and tpcb-like runs with
//! no failed transaction), sysbench (oltp_read_write and oltp_point_select), garbage bytes on
//! the port, and durability across `kill -9`.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aisql_tests::{Cluster, ClusterOpts};

/// Run psql on a file (or `-c` command); returns stdout+stderr with file paths normalized.
fn psql(addr: &str, args: &[&str]) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    // Through sh, so errors (stderr) interleave with results (stdout) as a terminal shows them.
    let out = Command::new("sh")
        .args(["-c", "exec psql \"$@\" 2>&1", "sh"])
        .args([
            "-h", host, "-p", port, "-U", "yugabyte", "-d", "yugabyte", "-X", "-q",
        ])
        .args(args)
        .output()
        .expect("psql (apt-get install postgresql-client)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .map(|l| match l.strip_prefix("psql:") {
            Some(rest) => match rest.split_once(".sql:") {
                Some((path, tail)) => {
                    let name = Path::new(path).file_name().unwrap().to_string_lossy();
                    format!("psql:{name}.sql:{tail}")
                }
                None => l.to_owned(),
            },
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn pgbench(addr: &str, args: &[&str]) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new("pgbench")
        .args(["-h", host, "-p", port, "-U", "yugabyte"])
        .args(args)
        .arg("yugabyte")
        .output()
        .expect("pgbench (apt-get install postgresql-15)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pgbench {args:?} failed:\n{text}");
    text
}

/// One sysbench step (`prepare`, `run` for 3 s with 2 threads, `cleanup`) of `test` on two
/// 500-row tables; fails the test on a non-zero exit.
fn sysbench(addr: &str, test: &str, step: &str) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new("sysbench")
        .args([
            "--db-driver=pgsql",
            &format!("--pgsql-host={host}"),
            &format!("--pgsql-port={port}"),
            "--pgsql-user=yugabyte",
            "--pgsql-db=yugabyte",
            "--tables=2",
            "--table-size=500",
            "--threads=2",
            "--time=3",
            test,
            step,
        ])
        .output()
        .expect("sysbench (apt-get install sysbench)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "sysbench {test} {step} failed:\n{text}"
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn psql_tokio_postgres_pgbench_and_kill_9() {
    let mut cluster = Cluster::start(ClusterOpts::default());
    cluster.wait_for_dbservers(1).await;
    let addr = cluster.db_addrs[0].pgsql.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = psql(&addr, &["-A", "-t", "-c", "select 1"]);
        if out.trim() == "1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "BSQL never answered: {out}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Golden scripts.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases/bsql");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    for f in &files {
        let expected = std::fs::read_to_string(f.with_extension("out")).unwrap();
        let got = psql(&addr, &["-f", f.to_str().unwrap()]);
        let (e, g): (Vec<&str>, Vec<&str>) = (
            expected.trim_end().lines().collect(),
            got.trim_end().lines().collect(),
        );
        if e != g {
            let mut diff = String::new();
            for i in 0..e.len().max(g.len()) {
                let (a, b) = (
                    e.get(i).copied().unwrap_or("<none>"),
                    g.get(i).copied().unwrap_or("<none>"),
                );
                if a != b {
                    diff.push_str(&format!("line {}: expected {a:?}, got {b:?}\n", i + 1));
                }
            }
            panic!("{}: output differs\n{diff}", f.display());
        }
    }
    // psql's \l lists the databases (its locale columns are ours, so no golden file).
    let listed = psql(&addr, &["-c", "\\l"]);
    assert!(
        listed.contains("List of databases")
            && listed.contains("yugabyte")
            && listed.contains("postgres"),
        "{listed}"
    );

    // psycopg 3 and PostgreSQL's JDBC driver, each a program of its own.
    let (h, p) = addr.rsplit_once(':').unwrap();
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases/bsql");
    let out = Command::new("python3")
        .arg(cases.join("psycopg_check.py"))
        .arg(format!("host={h} port={p} user=yugabyte dbname=yugabyte"))
        .output()
        .expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("PSYCOPG OK"), "psycopg: {text}");
    let out = Command::new("java")
        .args(["-cp", "/usr/share/java/postgresql.jar"])
        .arg(cases.join("Jdbc.java"))
        .arg(format!("jdbc:postgresql://{h}:{p}/yugabyte"))
        .output()
        .expect("java");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("JDBC OK"), "JDBC: {text}");

    // tokio-postgres: extended protocol with binary parameters and results.
    let (host, port) = addr.rsplit_once(':').unwrap();
    let (pg, conn) = tokio_postgres::connect(
        &format!("host={host} port={port} user=yugabyte dbname=yugabyte"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    pg.batch_execute(
        "create table tp (id bigint primary key, name text, score double precision, ok boolean)",
    )
    .await
    .unwrap();
    let ins = pg
        .prepare("insert into tp (id, name, score, ok) values ($1, $2, $3, $4)")
        .await
        .unwrap();
    for i in 0..20i64 {
        let n = pg
            .execute(
                &ins,
                &[&i, &format!("n{i}"), &(i as f64 / 2.0), &(i % 2 == 0)],
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
    let sel = pg
        .prepare("select name, score, ok from tp where id = $1")
        .await
        .unwrap();
    let row = pg.query_one(&sel, &[&7i64]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "n7");
    assert_eq!(row.get::<_, f64>(1), 3.5);
    assert!(!row.get::<_, bool>(2));
    let rows = pg
        .query("select count(*) from tp where score >= $1", &[&5.0f64])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 10);
    let err = pg
        .execute(&ins, &[&7i64, &"dup", &0.0f64, &true])
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    );
    let err = pg.query("select * from nope", &[]).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE)
    );

    two_sessions(&pg, host, port).await;
    unique_races(&pg, host, port).await;
    foreign_key_races(&pg, host, port).await;

    // CancelRequest (from BackendKeyData) stops a running statement with 57014; the
    // connection then serves the next one.
    let started = Instant::now();
    let sleeping = {
        let token = pg.cancel_token();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            token.cancel_query(tokio_postgres::NoTls).await
        })
    };
    let err = pg
        .simple_query("select pg_sleep(30)")
        .await
        .expect_err("pg_sleep(30) was cancelled");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    sleeping.await.unwrap().expect("cancel request sent");
    let one: i64 = pg.query_one("select 1::bigint", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    // Integer literals are int4 as in PostgreSQL (drivers read `select 1` as a 32-bit
    // integer), int8 once they do not fit; a repeated item is allowed.
    let row = pg
        .query_one("select 1, 1, 3000000000, -7, 2147483647 + 1", &[])
        .await
        .unwrap();
    let (a, b, big, neg, sum): (i32, i32, i64, i32, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    assert_eq!(
        (a, b, big, neg, sum),
        (1, 1, 3_000_000_000, -7, 2_147_483_648)
    );
    assert_eq!(row.columns()[0].name(), "?column?");

    // Array columns: binary parameters and results (tokio-postgres), NULL elements.
    pg.batch_execute("create table tarr (id int primary key, ints int[], words text[])")
        .await
        .unwrap();
    let ints = vec![Some(1i32), None, Some(3)];
    let words = vec!["a".to_string(), "b c".to_string()];
    pg.execute(
        "insert into tarr values ($1, $2, $3)",
        &[&1i32, &ints, &words],
    )
    .await
    .unwrap();
    pg.execute("insert into tarr values (2, $1, '{}')", &[&vec![4i32, 5]])
        .await
        .unwrap();
    let row = pg
        .query_one("select ints, words from tarr where id = $1", &[&1i32])
        .await
        .unwrap();
    let (got_ints, got_words): (Vec<Option<i32>>, Vec<String>) = (row.get(0), row.get(1));
    assert_eq!((got_ints, got_words), (ints, words));
    let rows = pg
        .query("select id from tarr where ints = $1", &[&vec![4i32, 5]])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i32>(0), 2);
    pg.batch_execute("drop table tarr").await.unwrap();
    let t0 = Instant::now();
    pg.simple_query("select pg_sleep(0.2)").await.unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(200));

    // pgbench: initialize, then runs with no failed transaction.
    pgbench(&addr, &["-i", "-s", "1", "-q"]);
    for args in [
        &["-n", "-S", "-M", "prepared", "-c", "2", "-T", "3"][..],
        // Transactions that lose a write conflict fail with 40001 at COMMIT (BSQL's READ
        // COMMITTED is optimistic, docs/design/transactions.md); pgbench retries them.
        &[
            "-n",
            "-M",
            "prepared",
            "-c",
            "2",
            "-T",
            "3",
            "--max-tries=100",
        ][..],
    ] {
        let out = pgbench(&addr, args);
        assert!(out.contains("number of failed transactions: 0"), "{out}");
    }
    let sum = psql(
        &addr,
        &["-A", "-t", "-c", "select count(*) from pgbench_accounts"],
    );
    assert_eq!(sum.trim(), "100000");

    // sysbench (Debian's, pgsql driver): prepare (tables, rows, CREATE INDEX), then
    // oltp_read_write and oltp_point_select runs, then cleanup.
    for (step, test) in [
        ("prepare", "oltp_read_write"),
        ("run", "oltp_read_write"),
        ("run", "oltp_point_select"),
        ("cleanup", "oltp_read_write"),
    ] {
        let out = sysbench(&addr, test, step);
        if step == "run" {
            let committed = out
                .lines()
                .find_map(|l| l.trim().strip_prefix("transactions:"))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok());
            assert!(committed.is_some_and(|n| n > 0), "{out}");
        }
    }

    // Garbage on the port gets an error (or a close), and the server lives on.
    for junk in [
        &b"\x00\x00\x00\x08\x12\x34\x56\x78"[..],
        b"GET / HTTP/1.1\r\n\r\n",
        &[0xff; 64],
    ] {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(junk);
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf);
    }
    assert_eq!(
        psql(&addr, &["-A", "-t", "-c", "select count(*) from tp"]).trim(),
        "20"
    );

    // Durability: what was acknowledged survives kill -9 of the dbserver.
    psql(
        &addr,
        &["-c", "insert into tp values (100, 'last', 1, true)"],
    );
    cluster.dbservers[0].kill9();
    cluster.dbservers[0].start();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = psql(
            &addr,
            &["-A", "-t", "-c", "select name from tp where id = 100"],
        );
        if out.trim() == "last" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "row lost after kill -9: {out}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        psql(&addr, &["-A", "-t", "-c", "select count(*) from tp"]).trim(),
        "21"
    );
}

/// Transaction blocks seen from two sessions: uncommitted writes are invisible to others,
/// COMMIT publishes them at once, a lost update is refused with 40001, REPEATABLE READ keeps
/// its snapshot and READ COMMITTED takes a new one per statement.
/// Eight sessions insert rows with 16 emails of a UNIQUE column at once: every email ends up
/// in exactly one row, each acknowledged insert is there, every refusal is 23505 (or 40001),
/// and a lookup by the index finds each row.
async fn unique_races(pg: &tokio_postgres::Client, host: &str, port: &str) {
    pg.batch_execute("create table uq (id int primary key, email text unique)")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..8i32 {
        let conninfo = format!("host={host} port={port} user=yugabyte dbname=yugabyte");
        tasks.push(tokio::spawn(async move {
            let (c, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut won = Vec::new();
            for i in 0..16i32 {
                let id = w * 100 + i;
                let email = format!("e{}", (i + w) % 16);
                match c
                    .execute("insert into uq values ($1, $2)", &[&id, &email])
                    .await
                {
                    Ok(_) => won.push((id, email)),
                    Err(e) => {
                        let code = e.code().cloned();
                        assert!(
                            code == Some(tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
                                || code
                                    == Some(
                                        tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                                    ),
                            "{e:?}"
                        );
                    }
                }
            }
            won
        }));
    }
    let mut won = Vec::new();
    for t in tasks {
        won.extend(t.await.unwrap());
    }
    let rows = pg
        .query("select id, email from uq order by email", &[])
        .await
        .unwrap();
    let stored: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    won.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(stored, won, "rows differ from the acknowledged inserts");
    assert_eq!(stored.len(), 16, "one row per email: {stored:?}");
    for (id, email) in &stored {
        let r = pg
            .query_one("select id from uq where email = $1", &[email])
            .await
            .unwrap();
        assert_eq!(r.get::<_, i32>(0), *id);
    }
    pg.batch_execute("drop table uq").await.unwrap();
}

/// One session inserts children of parents 1..=30 while another deletes those parents: no
/// child may end up without its parent (the child's check and the parent's delete conflict).
async fn foreign_key_races(pg: &tokio_postgres::Client, host: &str, port: &str) {
    pg.batch_execute(
        "create table fk_rp (id int primary key); \
         create table fk_rc (id int primary key, pid int references fk_rp); \
         insert into fk_rp select i from generate_series(1, 30) as t(i)",
    )
    .await
    .unwrap();
    let conninfo = format!("host={host} port={port} user=yugabyte dbname=yugabyte");
    let connect = || async {
        let (c, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c
    };
    let (children, parents) = (connect().await, connect().await);
    let insert = async {
        for round in 0..3i32 {
            for p in 1..=30i32 {
                let _ = children
                    .execute(
                        "insert into fk_rc values ($1, $2)",
                        &[&(round * 100 + p), &p],
                    )
                    .await;
            }
        }
    };
    let delete = async {
        for p in (1..=30i32).rev() {
            let _ = parents
                .execute("delete from fk_rp where id = $1", &[&p])
                .await;
        }
    };
    tokio::join!(insert, delete);
    let orphans: i64 = pg
        .query_one(
            "select count(*) from fk_rc c left join fk_rp p on c.pid = p.id where p.id is null",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0, "children without their parent");
    pg.batch_execute("drop table fk_rc, fk_rp").await.unwrap();
}

async fn two_sessions(pg: &tokio_postgres::Client, host: &str, port: &str) {
    let (pg2, conn) = tokio_postgres::connect(
        &format!("host={host} port={port} user=yugabyte dbname=yugabyte"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    async fn v(c: &tokio_postgres::Client, id: i32) -> i64 {
        c.query_one("select v from tx2 where id = $1", &[&id])
            .await
            .unwrap()
            .get(0)
    }
    pg.batch_execute("create table tx2 (id int primary key, v bigint)")
        .await
        .unwrap();
    pg.batch_execute("insert into tx2 values (1, 10), (2, 20)")
        .await
        .unwrap();

    pg.batch_execute("begin; update tx2 set v = 11 where id = 1; insert into tx2 values (3, 30)")
        .await
        .unwrap();
    assert_eq!(v(pg, 1).await, 11, "a block sees its own writes");
    assert_eq!(v(&pg2, 1).await, 10, "uncommitted writes are invisible");
    let n: i64 = pg2
        .query_one("select count(*) from tx2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    pg.batch_execute("commit").await.unwrap();
    assert_eq!(v(&pg2, 1).await, 11);
    assert_eq!(v(&pg2, 3).await, 30);

    // Lost update: both read 20, both add; the second committer is refused.
    pg.batch_execute("begin isolation level repeatable read")
        .await
        .unwrap();
    pg2.batch_execute("begin isolation level repeatable read")
        .await
        .unwrap();
    assert_eq!(v(pg, 2).await, 20);
    assert_eq!(v(&pg2, 2).await, 20);
    pg.batch_execute("update tx2 set v = v + 1 where id = 2; commit")
        .await
        .unwrap();
    let err = pg2
        .batch_execute("update tx2 set v = v + 5 where id = 2; commit")
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE),
        "{err}"
    );
    pg2.batch_execute("rollback").await.unwrap();
    assert_eq!(v(pg, 2).await, 21);

    // READ COMMITTED: the second block's UPDATE is redone on the first's committed row at
    // COMMIT, as PostgreSQL's waits for the row and applies itself to it: both increments
    // land and nobody gets 40001. Also across tables (a distributed commit).
    pg.batch_execute(
        "create table tx3 (id int primary key, v bigint); insert into tx3 values (1, 0)",
    )
    .await
    .unwrap();
    pg.batch_execute(
        "begin; update tx2 set v = v + 1 where id = 2; update tx3 set v = v + 1 where id = 1",
    )
    .await
    .unwrap();
    pg2.batch_execute(
        "begin; update tx2 set v = v + 5 where id = 2; update tx3 set v = v + 5 where id = 1",
    )
    .await
    .unwrap();
    pg.batch_execute("commit").await.unwrap();
    pg2.batch_execute("commit").await.unwrap();
    assert_eq!(v(pg, 2).await, 27);
    let t3: i64 = pg
        .query_one("select v from tx3 where id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(t3, 6);
    // Not once the block has read its own update back: what it saw cannot change.
    pg.batch_execute("begin; update tx2 set v = v + 1 where id = 2")
        .await
        .unwrap();
    pg2.batch_execute("begin; update tx2 set v = v + 5 where id = 2")
        .await
        .unwrap();
    assert_eq!(v(&pg2, 2).await, 32);
    pg.batch_execute("commit").await.unwrap();
    let err = pg2.batch_execute("commit").await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE),
        "{err}"
    );
    pg2.batch_execute("rollback").await.unwrap();
    assert_eq!(v(pg, 2).await, 28);
    pg.batch_execute("drop table tx3").await.unwrap();

    // REPEATABLE READ keeps its snapshot; READ COMMITTED moves per statement.
    pg2.batch_execute("begin isolation level repeatable read")
        .await
        .unwrap();
    assert_eq!(v(&pg2, 1).await, 11);
    pg.batch_execute("update tx2 set v = 12 where id = 1")
        .await
        .unwrap();
    assert_eq!(v(&pg2, 1).await, 11);
    pg2.batch_execute("commit").await.unwrap();
    assert_eq!(v(&pg2, 1).await, 12);
    pg2.batch_execute("begin").await.unwrap();
    assert_eq!(v(&pg2, 1).await, 12);
    pg.batch_execute("update tx2 set v = 13 where id = 1")
        .await
        .unwrap();
    assert_eq!(v(&pg2, 1).await, 13);
    pg2.batch_execute("commit").await.unwrap();
    pg.batch_execute("drop table tx2").await.unwrap();
}

/// psql as `user` with `password` (none: no password given) running `sql`; stdout+stderr.
fn psql_as(addr: &str, user: &str, password: Option<&str>, sql: &str) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut cmd = Command::new("psql");
    cmd.args([
        "-h", host, "-p", port, "-U", user, "-d", "yugabyte", "-X", "-A", "-t", "-w", "-c", sql,
    ])
    .env("PGCONNECT_TIMEOUT", "10");
    match password {
        Some(p) => cmd.env("PGPASSWORD", p),
        None => cmd.env_remove("PGPASSWORD"),
    };
    let out = cmd.output().expect("psql");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// `--bsql_enable_auth`: SCRAM-SHA-256 logins (psql and tokio-postgres), the default role
/// yugabyte/yugabyte, CREATE USER / CREATE ROLE / ALTER USER / DROP ROLE, and PostgreSQL's
/// FATAL errors for a wrong password, an unknown role and a role without LOGIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_authentication() {
    let cluster = Cluster::start(ClusterOpts {
        dbserver_flags: vec!["--bsql_enable_auth".into()],
        ..Default::default()
    });
    cluster.wait_for_dbservers(1).await;
    let addr = cluster.db_addrs[0].pgsql.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = psql_as(&addr, "yugabyte", Some("yugabyte"), "select 1");
        if out.trim() == "1" {
            break;
        }
        assert!(Instant::now() < deadline, "no login: {out}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let out = psql_as(&addr, "yugabyte", Some("nope"), "select 1");
    assert!(
        out.contains("FATAL:  password authentication failed for user \"yugabyte\""),
        "{out}"
    );
    let out = psql_as(&addr, "yugabyte", None, "select 1");
    assert!(out.contains("no password supplied"), "{out}");
    let out = psql_as(
        &addr,
        "yugabyte",
        Some("yugabyte"),
        "create user app with password 's3cret'; create role reader password 'r'",
    );
    assert!(!out.contains("ERROR"), "{out}");
    assert_eq!(
        psql_as(&addr, "app", Some("s3cret"), "select current_user").trim(),
        "app"
    );
    let out = psql_as(&addr, "reader", Some("r"), "select 1");
    assert!(
        out.contains("role \"reader\" is not permitted to log in"),
        "{out}"
    );
    let out = psql_as(&addr, "ghost", Some("x"), "select 1");
    assert!(
        out.contains("password authentication failed for user \"ghost\""),
        "{out}"
    );
    let out = psql_as(&addr, "yugabyte", Some("yugabyte"), "create user app");
    assert!(out.contains("role \"app\" already exists"), "{out}");
    // A changed password: the old one stops working, the new one works, also for drivers.
    let out = psql_as(
        &addr,
        "app",
        Some("s3cret"),
        "alter user app with password 'n3w'",
    );
    assert!(!out.contains("ERROR"), "{out}");
    let out = psql_as(&addr, "app", Some("s3cret"), "select 1");
    assert!(out.contains("password authentication failed"), "{out}");
    let (host, port) = addr.rsplit_once(':').unwrap();
    let conn_str =
        |pw: &str| format!("host={host} port={port} user=app password={pw} dbname=yugabyte");
    let (pg, conn) = tokio_postgres::connect(&conn_str("n3w"), tokio_postgres::NoTls)
        .await
        .expect("tokio-postgres SCRAM login");
    tokio::spawn(conn);
    let row = pg.query_one("select 6 * 7", &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 42);
    let err = tokio_postgres::connect(&conn_str("bad"), tokio_postgres::NoTls)
        .await
        .err()
        .expect("a wrong password is refused");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD),
        "{err}"
    );
    let out = psql_as(
        &addr,
        "yugabyte",
        Some("yugabyte"),
        "drop role app; drop role if exists app",
    );
    assert!(!out.contains("ERROR"), "{out}");
    let out = psql_as(&addr, "app", Some("n3w"), "select 1");
    assert!(out.contains("password authentication failed"), "{out}");
}
