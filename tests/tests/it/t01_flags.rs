//! Command lines: `--help`, unknown flags and bad values (exit 2), `--flagfile`, a port
//! already taken (a message naming it, non-zero exit, nothing written), a data directory
//! that is not a store (refused, nothing wiped).

use std::process::Command;

use aisql_tests::{bin, free_port, fresh_ip};

#[test]
fn help_lists_every_flag() {
    let out = Command::new(bin("bm-dbserver"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--rpc_bind_addresses",
        "--server_broadcast_addresses",
        "--dbserver_mserver_addrs",
        "--webserver_interface",
        "--webserver_port",
        "--pgsql_proxy_bind_address",
        "--cql_proxy_bind_address",
        "--redis_proxy_bind_address",
        "--pgsql_proxy_webserver_port",
        "--cql_proxy_webserver_port",
        "--redis_proxy_webserver_port",
        "--fs_data_dirs",
        "--flagfile",
    ] {
        assert!(text.contains(flag), "bm-dbserver --help lacks {flag}");
    }
    let out = Command::new(bin("bm-mserver"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--rpc_bind_addresses",
        "--mserver_addrs",
        "--replication_factor",
        "--dbserver_unresponsive_timeout_ms",
        "--webserver_port",
        "--flagfile",
    ] {
        assert!(text.contains(flag), "bm-mserver --help lacks {flag}");
    }
    assert!(
        text.contains("0.0.0.0:11000") && text.contains("10000"),
        "defaults shown"
    );
}

#[test]
fn unknown_flag_and_bad_value_exit_2_naming_the_flag() {
    let out = Command::new(bin("bm-mserver"))
        .arg("--no_such_flag=1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no_such_flag"));
    let out = Command::new(bin("bm-dbserver"))
        .arg("--webserver_port=http")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--webserver_port"));
    let out = Command::new(bin("bm-dbserver"))
        .arg("--rpc_bind_addresses=nohost")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rpc_bind_addresses"));
}

#[test]
fn taken_port_is_named_and_nothing_is_written() {
    let ip = fresh_ip();
    let taken = std::net::TcpListener::bind((ip.as_str(), 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let flagfile = dir.path().join("flags");
    // The taken port comes from a flagfile, to check --flagfile too.
    std::fs::write(&flagfile, format!("# test\n--webserver_port={port}\n")).unwrap();
    let out = Command::new(bin("bm-mserver"))
        .arg(format!("--rpc_bind_addresses={ip}:{}", free_port(&ip)))
        .arg(format!("--webserver_interface={ip}"))
        .arg(format!("--flagfile={}", flagfile.display()))
        .arg(format!("--fs_data_dirs={}", data.display()))
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&port.to_string()) && err.contains("--webserver_port"),
        "{err}"
    );
    assert!(
        !data.exists(),
        "nothing may be written when a port is taken"
    );
}

#[test]
fn unrecognised_data_directory_is_refused_not_wiped() {
    let ip = fresh_ip();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("0.jnl"), b"not a journal").unwrap();
    let out = Command::new(bin("bm-mserver"))
        .arg(format!("--rpc_bind_addresses={ip}:{}", free_port(&ip)))
        .arg(format!("--webserver_interface={ip}"))
        .arg(format!("--webserver_port={}", free_port(&ip)))
        .arg(format!("--fs_data_dirs={}", data.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&data.display().to_string()) && err.contains("refusing"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(data.join("0.jnl")).unwrap(),
        b"not a journal",
        "nothing is wiped"
    );
}
