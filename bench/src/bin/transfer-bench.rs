//! `transfer-bench`: a state transfer of a large key space between two real members, with
//! their memory watched. Member 1 (rf 2) starts alone and is loaded with `--bytes` of blobs;
//! member 2 joins, and every key is copied to it (half as primary, half as backup). The bench
//! samples both processes' resident memory while the transfer runs, then stops member 1
//! gracefully (it leaves; member 2 serves alone) and reads every blob back from member 2 to
//! check that the transfer moved every byte. Prints one Markdown table.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use crucial_dso::client::member_status;
use crucial_dso::objects::Blob;
use crucial_dso::Dso;

/// Moves a large key space from one member to a joining one and reports time and memory.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The `dso-server` binary.
    #[arg(long, default_value = "target/release/dso-server")]
    server: PathBuf,
    /// Bytes of blob content to load and transfer.
    #[arg(long, default_value_t = 1 << 30)]
    bytes: u64,
    /// Bytes per blob.
    #[arg(long, default_value_t = 1 << 20)]
    blob_bytes: u64,
    /// Blobs written at once while loading.
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// The members listen on this port and the next.
    #[arg(long, default_value_t = 27_400)]
    port: u16,
}

/// A member process, killed when dropped.
struct Member {
    child: Child,
    addr: String,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_member(args: &Args, dir: &std::path::Path, index: u16) -> std::io::Result<Member> {
    let addr = format!("127.0.0.1:{}", args.port + index);
    let log = std::fs::File::create(dir.join(format!("member-{index}.log")))?;
    let child = Command::new(&args.server)
        .args(["--bind", &addr, "--rf", "2", "--discovery"])
        .arg(format!("file:{}", dir.join("cluster.json").display()))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    Ok(Member { child, addr })
}

/// Resident and peak resident memory of a process, in bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        (status.lines())
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Waits until `addr` serves in an active configuration of `members` members.
async fn wait_for(addr: &str, members: usize, mut sample: impl FnMut()) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        sample();
        if let Ok(status) = member_status(addr, None, None, Duration::from_secs(1)).await {
            if status.serving && status.config.is_active() && status.config.members.len() == members {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("{addr} never served in an active configuration of {members} members"))
}

fn content(index: u64, bytes: u64) -> Vec<u8> {
    (0..bytes).map(|offset| ((index * 31 + offset) % 251) as u8).collect()
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / f64::from(1 << 20))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let dir = tempfile_dir()?;
    let blobs = args.bytes.div_ceil(args.blob_bytes);
    let first = start_member(&args, &dir, 0)?;
    wait_for(&first.addr, 1, || {}).await?;

    let started = Instant::now();
    let dso = Dso::connect(first.addr.clone()).await?;
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut writers = Vec::new();
    for _ in 0..args.writers {
        let (dso, next, blob_bytes) = (dso.clone(), next.clone(), args.blob_bytes);
        writers.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if index >= blobs {
                    return Ok::<(), crucial_dso::DsoError>(());
                }
                dso.handle::<Blob>(format!("blob-{index:06}")).set(content(index, blob_bytes)).await?;
            }
        }));
    }
    for writer in writers {
        writer.await??;
    }
    let loaded_in = started.elapsed();
    let (loaded_rss, _) = memory(first.child.id());
    eprintln!("loaded {blobs} blobs ({}) in {loaded_in:.1?}", mib(blobs * args.blob_bytes));

    let second = start_member(&args, &dir, 1)?;
    let joined = Instant::now();
    let (mut peak_first, mut peak_second) = (0, 0);
    let (first_pid, second_pid) = (first.child.id(), second.child.id());
    wait_for(&first.addr, 2, || {
        peak_first = peak_first.max(memory(first_pid).0);
        peak_second = peak_second.max(memory(second_pid).0);
    })
    .await?;
    let transfer = joined.elapsed();
    let (_, hwm_second) = memory(second_pid);
    eprintln!("transferred in {transfer:.1?}");

    // Member 1 leaves gracefully: member 2 then serves every key alone, from what it received.
    let _ = Command::new("kill").args(["-TERM", &first_pid.to_string()]).status();
    wait_for(&second.addr, 1, || {}).await?;
    let reader = Dso::connect(second.addr.clone()).await?;
    let mut checked = 0;
    for index in 0..blobs {
        let bytes = reader.handle::<Blob>(format!("blob-{index:06}")).get().await?;
        if bytes != content(index, args.blob_bytes) {
            return Err(format!("blob {index} came back different after the transfer").into());
        }
        checked += bytes.len() as u64;
    }
    drop(first);

    let data = blobs * args.blob_bytes;
    let ratio = |rss: u64| format!("{:.2}", rss as f64 / data as f64);
    println!("| measure | value | × data |");
    println!("|---|---:|---:|");
    println!("| blob data ({blobs} blobs of {}) | {} | 1.00 |", mib(args.blob_bytes), mib(data));
    println!("| load time | {loaded_in:.1?} | |");
    println!("| transfer time (join to active) | {transfer:.1?} | |");
    println!("| transfer rate | {:.0} MiB/s | |", data as f64 / f64::from(1 << 20) / transfer.as_secs_f64());
    println!("| member 1 resident after loading | {} | {} |", mib(loaded_rss), ratio(loaded_rss));
    println!("| member 1 peak resident during the transfer | {} | {} |", mib(peak_first), ratio(peak_first));
    println!(
        "| member 2 peak resident during the transfer | {} | {} |",
        mib(peak_second),
        ratio(peak_second)
    );
    println!(
        "| member 2 peak resident (kernel's high-water mark) | {} | {} |",
        mib(hwm_second),
        ratio(hwm_second)
    );
    println!("| bytes read back from member 2 after member 1 left | {} | {} |", mib(checked), ratio(checked));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("transfer-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
