//! Test support shared by the workspace's tests: real processes started on loopback ports
//! they pick themselves, and stopped when dropped.
//!
//! A port is never chosen by binding port 0, dropping the socket and handing the number to
//! another process (another test may take it meanwhile). A program that can bind port 0 does
//! so and announces the port it got ([`spawn_announcing`]: `dso-server`, moto's server); one
//! that cannot is given a candidate, proves it is the one answering there, and is started
//! again on another if it could not bind it ([`spawn_on_free_port`]: `redis-server`,
//! `cargo lambda watch`).

pub mod tls;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process, killed (and reaped) when dropped.
#[derive(Debug)]
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Which output stream of a process announces its address.
#[derive(Clone, Copy, Debug)]
pub enum Announces {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Starts `command` and waits (at most `within`) for a line of its `stream` from which
/// `parse` reads an address; returns the process and that address. The stream goes on being
/// read (and dropped) so that the process never blocks on a full pipe.
pub fn spawn_announcing(
    mut command: Command,
    stream: Announces,
    parse: impl Fn(&str) -> Option<String> + Send + 'static,
    within: Duration,
) -> Result<(Process, String), String> {
    match stream {
        Announces::Stdout => command.stdout(Stdio::piped()),
        Announces::Stderr => command.stderr(Stdio::piped()),
    };
    let program = format!("{:?}", command.get_program());
    let mut child = command.spawn().map_err(|error| format!("cannot start {program}: {error}"))?;
    let output: Box<dyn Read + Send> = match stream {
        Announces::Stdout => Box::new(child.stdout.take().expect("stdout is piped")),
        Announces::Stderr => Box::new(child.stderr.take().expect("stderr is piped")),
    };
    let process = Process(child);
    let (found, announced) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(output).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(addr) = parse(&line) {
                let _ = found.send(addr);
                break;
            }
        }
        lines.for_each(drop);
    });
    match announced.recv_timeout(within) {
        Ok(addr) => Ok((process, addr)),
        Err(_) => Err(format!("{program} announced no address within {within:?}")),
    }
}

/// Starts `command(port)` on a candidate free port until one is taken by the process: within
/// `within`, `ready(port)` must hold (it must tell this program from any other that took the
/// port meanwhile: an answer only it gives) while the process still runs. A process that exits
/// first (the port was taken) is started again on another candidate, up to five times. For
/// programs that cannot bind port 0 and say which port they got.
pub fn spawn_on_free_port(
    command: impl Fn(u16) -> Command,
    ready: impl Fn(u16) -> bool,
    within: Duration,
) -> Result<(Process, u16), String> {
    let mut last = String::new();
    for _ in 0..5 {
        let port = candidate_port().map_err(|error| format!("no candidate port: {error}"))?;
        let mut command = command(port);
        let program = format!("{:?}", command.get_program());
        let mut process =
            Process(command.spawn().map_err(|error| format!("cannot start {program}: {error}"))?);
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = process.0.try_wait().map_err(|error| error.to_string())? {
                last = format!("{program} exited ({status}) before listening on port {port}");
                break;
            }
            if ready(port) {
                if process.0.try_wait().map_err(|error| error.to_string())?.is_none() {
                    return Ok((process, port));
                }
                continue;
            }
            if Instant::now() > deadline {
                return Err(format!("{program} did not listen on port {port} within {within:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Err(last)
}

/// A readiness probe for [`spawn_on_free_port`]: whether the Redis server on loopback `port`
/// is the one started with `--dir dir` (its `CONFIG GET dir` names it), not another Redis.
pub fn redis_with_dir(dir: &std::path::Path) -> impl Fn(u16) -> bool {
    use std::io::Write;
    let dir = dir.to_string_lossy().into_owned();
    move |port| {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut answer = [0u8; 1024];
        let asked = stream.write_all(b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$3\r\ndir\r\n").is_ok();
        let read = if asked { stream.read(&mut answer).unwrap_or(0) } else { 0 };
        String::from_utf8_lossy(&answer[..read]).contains(&dir)
    }
}

/// A loopback port nothing listened on a moment ago.
fn candidate_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `dso-server` (the executable at `exe`) bound to a port of its own on loopback, with
/// `args`; returns the process and its address (`127.0.0.1:port`), once it listens.
pub fn dso_server(exe: &str, args: &[&str]) -> Result<(Process, String), String> {
    let mut command = Command::new(exe);
    command.args(["--bind", "127.0.0.1:0"]).args(args).stdin(Stdio::null()).stderr(Stdio::null());
    spawn_announcing(command, Announces::Stdout, listening_addr, Duration::from_secs(10))
}

/// The address in `dso-server`'s `listening on ADDR` line.
pub fn listening_addr(line: &str) -> Option<String> {
    line.strip_prefix("listening on ").map(str::to_string)
}

/// moto's server (S3 and the other AWS services it emulates) on a loopback port of its own.
#[derive(Debug)]
pub struct Moto {
    /// The server process.
    pub process: Process,
    /// Its address, `http://127.0.0.1:port`.
    pub endpoint: String,
}

/// Starts moto's server (`python3 -m moto.server`, from `pip install "moto[server]"`).
pub fn moto() -> Result<Moto, String> {
    let mut command = Command::new("python3");
    command
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let parse = |line: &str| line.split_once("Running on ").map(|(_, url)| url.trim().to_string());
    let (process, endpoint) = spawn_announcing(command, Announces::Stderr, parse, Duration::from_secs(30))
        .map_err(|error| format!("{error} (moto: pip install \"moto[server]\")"))?;
    Ok(Moto { process, endpoint })
}
