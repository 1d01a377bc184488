//! The shipped binary as users run it: `dso-server` as a real process (on a port it picks
//! itself and announces) serving clients, joining and leaving a cluster, and refusing bad flags.

#![cfg(not(madsim))]

use std::process::Command;
use std::time::Duration;

use crucial_dso::Dso;
use crucial_testkit::Process;

/// A `dso-server` process on a loopback port of its own, with `extra` flags, and its address.
fn start_server(extra: &[&str]) -> (Process, String) {
    crucial_testkit::dso_server(env!("CARGO_BIN_EXE_dso-server"), extra).unwrap()
}

#[tokio::test]
async fn dso_server_process_serves_clients() {
    let (_server, addr) = start_server(&[]);
    let client = Dso::connect(addr.clone()).await.unwrap();
    let hits = client.atomic_long("hits");
    assert_eq!(hits.add_and_get(5).await.unwrap(), 5);
    assert_eq!(Dso::connect(addr).await.unwrap().atomic_long("hits").get().await.unwrap(), 5);
}

#[test]
fn dso_server_help_documents_every_flag() {
    let output = Command::new(env!("CARGO_BIN_EXE_dso-server")).arg("--help").output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--bind",
        "--frame-bytes-max",
        "--connections-max",
        "--session-calls-max",
        "--sessions-max",
        "--threads",
        "--peer-coalesce-us",
        "--token-file",
        "--insecure",
        "--config",
        "--print-config",
        "--log-format",
        "--metrics-bind",
        "--tls-cert",
        "--tls-key",
        "--tls-ca",
        "--tls-name",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}");
    }
    assert!(help.contains("127.0.0.1:11222"), "the default bind is loopback");
}

#[tokio::test]
async fn a_dead_server_gives_a_clear_error_not_a_hang() {
    use crucial_dso::client::ClientConfig;
    use crucial_dso::core::client_session::SessionConfig;
    use crucial_dso::DsoError;

    let (mut server, addr) = start_server(&[]);
    let config = ClientConfig {
        session: SessionConfig {
            resend_after_ms: 100,
            call_timeout_ms: Some(1_000),
            in_flight_max: 8,
            retain_records: false,
        },
        ..ClientConfig::default()
    };
    let client = Dso::connect_with(addr.clone(), config).await.unwrap();
    client.counter("c").increment().await.unwrap();
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let started = std::time::Instant::now();
    match client.counter("c").increment().await {
        Err(DsoError::Unavailable { .. } | DsoError::Timeout { .. }) => {}
        other => panic!("a call to a dead server should fail clearly, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "it gives up after its call timeout");
    match Dso::connect(addr).await {
        Err(DsoError::Unavailable { .. }) => {}
        other => panic!("connecting to a dead server should be Unavailable, got {other:?}"),
    }
}

/// The configuration in `path`, once `ready` accepts it (polled for up to 30 s).
async fn wait_for_config(
    path: &std::path::Path,
    ready: impl Fn(&crucial_dso::cluster::Configuration) -> bool,
) -> crucial_dso::cluster::Configuration {
    use crucial_dso::cluster::{ConfigStore, FileConfigStore};
    let store = FileConfigStore::new(path);
    for _ in 0..600 {
        if let Ok(Some(current)) = store.load().await {
            if ready(&current.config) {
                return current.config;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the configuration in {} never got ready", path.display());
}

#[tokio::test]
async fn servers_join_and_leave_through_file_discovery() {
    let dir = std::env::temp_dir().join(format!("crucial-discovery-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cluster.json");
    let _ = std::fs::remove_file(&path);
    let discovery = format!("file:{}", path.display());
    // A generous suspicion timeout: the test shares two cores with the rest of the suite.
    let (servers, addrs): (Vec<Process>, Vec<String>) =
        (0..3).map(|_| start_server(&["--discovery", &discovery, "--suspect-after-ms", "5000"])).unzip();
    let joined = wait_for_config(&path, |config| config.members.len() == 3 && config.is_active()).await;
    let mut listed: Vec<&str> = joined.members.iter().map(|member| member.addr.as_str()).collect();
    listed.sort_unstable();
    let mut expected: Vec<&str> = addrs.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(listed, expected);
    assert!(joined.epoch >= 3, "one epoch per join at least");

    // A graceful stop (SIGTERM) hands the member's keys over, in a new epoch, then exits.
    let mut servers = servers;
    let leaving = &mut servers[1];
    let status = Command::new("kill").args(["-TERM", &leaving.0.id().to_string()]).status().unwrap();
    assert!(status.success());
    let left = wait_for_config(&path, |config| config.members.len() == 2 && config.is_active()).await;
    assert!(left.epoch > joined.epoch);
    assert!(left.members.iter().all(|member| member.addr != addrs[1]));
    let exited = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        leaving.0.try_wait().unwrap().is_some()
    });
    assert!(exited, "the leaving server exits once its keys moved");
}

#[test]
fn an_unknown_discovery_scheme_is_refused_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_dso-server"))
        .args(["--discovery", "zk://nowhere"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("use file:PATH or s3://bucket/prefix"));
}

/// A `dso-server` process with `args`, logging at `level` to the file `log`, and the address
/// it announced.
fn start_logging_to(log: &std::path::Path, level: &str, args: &[&str]) -> (Process, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dso-server"));
    command.args(args).env("RUST_LOG", level).stderr(std::fs::File::create(log).unwrap());
    let announces = crucial_testkit::Announces::Stdout;
    crucial_testkit::spawn_announcing(
        command,
        announces,
        crucial_testkit::listening_addr,
        Duration::from_secs(10),
    )
    .unwrap()
}

/// Runs `dso-server` with `args` and `token` in `DSO_TOKEN` (if any), expecting it to refuse to
/// start: its exit status and standard error, or a failure if it still runs after 10 s.
fn refused_start(args: &[&str], token: Option<&str>) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dso-server"));
    command.args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    if let Some(token) = token {
        command.env("DSO_TOKEN", token);
    }
    let mut child = Process(command.spawn().unwrap());
    for _ in 0..100 {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(!status.success(), "dso-server {args:?} exited with success");
            let mut error = String::new();
            std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut error).unwrap();
            return error;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("dso-server {args:?} still runs after 10 s: it should have refused to start");
}

#[test]
fn dso_server_refuses_a_public_bind_without_a_token_and_a_token_file_others_can_read() {
    let error = refused_start(&["--bind", "0.0.0.0:0"], None);
    assert!(error.contains("`token`") && error.contains("--insecure"), "{error}");

    let dir = std::env::temp_dir().join(format!("crucial-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "a-token-long-enough-0123\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = file.to_str().unwrap();
    let error = refused_start(&["--bind", "127.0.0.1:0", "--token-file", path], None);
    assert!(error.contains("chmod 600"), "{error}");
    assert!(!error.contains("a-token-long-enough-0123"), "the token is never shown: {error}");

    // Mode 600 but another user's file: that user could change the token.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    if std::os::unix::fs::chown(&file, Some(65534), None).is_ok() {
        let error = refused_start(&["--bind", "127.0.0.1:0", "--token-file", path], None);
        assert!(error.contains("owned by user 65534"), "{error}");
    }

    let error = refused_start(&["--bind", "127.0.0.1:0"], Some("short"));
    assert!(error.contains("at least 16 characters") && !error.contains("short"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A cluster's secrets as files a server reads: the token, a CA, and a certificate and key
/// for the default name; the token and the key with mode 600.
struct SecretFiles {
    dir: std::path::PathBuf,
    ca: crucial_testkit::tls::TestCa,
    key_pem: String,
    /// `--tls-cert`, `--tls-key` and `--tls-ca` with their files.
    tls_args: Vec<String>,
}

impl SecretFiles {
    const TOKEN: &'static str = "a-token-long-enough-0123";

    fn new(name: &str) -> Self {
        use crucial_testkit::tls::{write_private, TestCa};
        let dir = std::env::temp_dir().join(format!("crucial-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = TestCa::new("test CA");
        let files = ca.write_server_files(&dir, crucial_dso::tls::TLS_NAME_DEFAULT).unwrap();
        write_private(&dir.join("token"), &format!("{}\n", Self::TOKEN)).unwrap();
        Self { dir, ca, key_pem: files.issued.key_pem, tls_args: files.args }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_str().unwrap().to_string()
    }

    /// The flags of a public server using these files.
    fn server_args(&self) -> Vec<String> {
        let mut args = vec!["--bind".into(), "0.0.0.0:0".into(), "--token-file".into(), self.path("token")];
        args.extend(self.tls_args.iter().cloned());
        args
    }

    /// A client's settings: TLS trusting the CA, and `token`.
    fn client(&self, token: Option<&str>) -> crucial_dso::client::ClientConfig {
        use crucial_dso::tls::{TlsTrust, TLS_NAME_DEFAULT};
        let trust = TlsTrust::from_pem(self.ca.certificate_pem().as_bytes(), TLS_NAME_DEFAULT).unwrap();
        crucial_dso::client::ClientConfig {
            token: token.map(|token| crucial_dso::core::auth::Token::new(token).unwrap()),
            tls: Some(trust),
            ..crucial_dso::client::ClientConfig::default()
        }
    }
}

impl Drop for SecretFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn dso_server_with_a_token_and_tls_serves_only_clients_that_present_both_and_never_logs_secrets() {
    let secrets = SecretFiles::new("secrets-log");
    let log = secrets.dir.join("stderr.log");
    let args = secrets.server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (server, announced) = start_logging_to(&log, "debug", &args);
    let port = announced.rsplit(':').next().unwrap();
    let addr = format!("127.0.0.1:{port}");

    let secret = SecretFiles::TOKEN;
    let dso = Dso::connect_with(addr.clone(), secrets.client(Some(secret)))
        .await
        .expect("the token file's token connects over TLS");
    assert_eq!(dso.atomic_long("hits").add_and_get(2).await.unwrap(), 2);
    let missing = Dso::connect_with(addr.clone(), secrets.client(None)).await.unwrap_err();
    assert!(missing.to_string().contains("none was given"), "{missing}");
    let wrong =
        Dso::connect_with(addr.clone(), secrets.client(Some("a-token-long-enough-0124"))).await.unwrap_err();
    assert!(wrong.to_string().contains("wrong token"), "{wrong}");
    let plain = crucial_dso::client::ClientConfig { tls: None, ..secrets.client(Some(secret)) };
    let plain = Dso::connect_with(addr, plain).await.unwrap_err();
    assert!(
        matches!(&plain, crucial_dso::DsoError::Tls { reason, .. } if reason.contains("serves TLS only")),
        "{plain}"
    );
    drop(server);

    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("authentication failed"), "the server logs the refusals: {logged}");
    assert!(logged.contains("plain TCP on a port that serves TLS only"), "and the plain client: {logged}");
    assert!(!logged.contains(secret), "the token is never logged");
    let key_body = secrets.key_pem.lines().nth(1).unwrap();
    assert!(!logged.contains(key_body), "the private key is never logged");
}

#[test]
fn dso_server_refuses_a_public_bind_without_tls_and_a_key_file_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let secrets = SecretFiles::new("secrets-refused");
    let token_file = secrets.path("token");
    let error = refused_start(&["--bind", "0.0.0.0:0", "--token-file", &token_file], None);
    assert!(
        error.contains("`tls`") && error.contains("--tls-cert") && error.contains("--insecure"),
        "{error}"
    );

    let key = secrets.path("tls.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let args = secrets.server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let error = refused_start(&args, None);
    assert!(error.contains("--tls-key") && error.contains("chmod 600"), "{error}");
    assert!(!error.contains(secrets.key_pem.lines().nth(1).unwrap()), "the key is never shown: {error}");

    let error = refused_start(&["--tls-cert", &secrets.path("tls.crt")], None);
    assert!(error.contains("--tls-key"), "a certificate without its key: {error}");
}

#[test]
fn dso_server_takes_its_settings_from_a_toml_file_under_the_flags_given() {
    let dir = std::env::temp_dir().join(format!("crucial-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dso.toml");
    let settings = "bind = \"0.0.0.0:7000\"\nrf = 3\ndiscovery = \"file:/var/lib/crucial/cluster.json\"\n\
                    frame-bytes-max = 65536\nlog-format = \"json\"\n";
    std::fs::write(&file, settings).unwrap();
    let print = |extra: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_dso-server"))
            .args(["--config", file.to_str().unwrap(), "--print-config"])
            .args(extra)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let effective = print(&["--bind", "127.0.0.1:7001", "--rf", "2"]);
    for line in [
        "bind = \"127.0.0.1:7001\"",
        "rf = 2",
        "discovery = \"file:/var/lib/crucial/cluster.json\"",
        "frame-bytes-max = 65536",
        "log-format = \"json\"",
        "connections-max = 10000",
    ] {
        assert!(effective.lines().any(|shown| shown == line), "{line:?} in:\n{effective}");
    }
    // What --print-config prints is itself a settings file that gives the same settings.
    std::fs::write(&file, &effective).unwrap();
    assert_eq!(print(&[]), effective);
    // A switch the file turns on, the command line can turn off.
    std::fs::write(&file, "insecure = true\n").unwrap();
    assert!(print(&[]).lines().any(|line| line == "insecure = true"));
    assert!(print(&["--insecure=false"]).lines().any(|line| line == "insecure = false"));

    std::fs::write(&file, "bind = \"127.0.0.1:0\"\nreplicas = 3\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_dso-server"))
        .args(["--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && error.contains("unknown field `replicas`"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn dso_server_logs_json_lines_when_asked() {
    let dir = std::env::temp_dir().join(format!("crucial-json-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("stderr.log");
    let (server, addr) = start_logging_to(&log, "info", &["--bind", "127.0.0.1:0", "--log-format", "json"]);
    Dso::connect(addr).await.unwrap().atomic_long("hits").increment_and_get().await.unwrap();
    drop(server);
    let logged = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> =
        logged.lines().map(|line| serde_json::from_str(line).expect("every log line is JSON")).collect();
    assert!(
        lines.iter().any(|line| line["fields"]["message"] == "dso server listening"),
        "the listening line is logged as JSON: {logged}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
