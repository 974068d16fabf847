//! The queue on disk (`sending_queue.storage`) against disk faults (issue 14).
//!
//! - Disk full: the queue directory is a 2 MiB tmpfs. A load runs; the destination goes
//!   down and a filler file takes the rest of the file system, so the queue's appends fail
//!   (short writes, then `ENOSPC`). While it is full the collector must stay up, refuse
//!   requests (503: nothing acknowledged) and say so on `/health`. Then the destination
//!   comes back and the space is freed: every acknowledged log record must be at the
//!   destination (moto, read back) exactly once, nothing counted as failed, and every
//!   refused item counted as refused.
//! - Lock: a second collector on the same storage directory exits non-zero at start-up
//!   with a message naming the directory and the first one's PID.
//!
//! Mounting needs root (CAP_SYS_ADMIN). Without it the disk-full test prints why it did not
//! run and passes; CI runs as root.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aurastream_e2e::aws::{Moto, use_test_credentials};
use aurastream_e2e::durability::{LOG_GROUP, STREAM, compare};
use aurastream_e2e::fault_proxy::{FaultProxy, Faults};
use aurastream_e2e::load::logs;
use aurastream_e2e::{
    Collector, Ports, base_config, eventually, http_get, metric_sum, test_runtime, workspace_bin,
};

const PER_REQUEST: u64 = 50;
const REQUESTS: u64 = 300;
const TMPFS_SIZE: &str = "2m";

fn config(ports: &Ports, endpoint: &str, storage: &Path) -> String {
    // `max_bytes` above the file system's size: the disk, not the queue's own limit, is
    // what runs out. 1 MiB segments would never rotate on 2 MiB; this gives 512 KiB ones.
    let queue = format!(
        "{{ num_consumers: 2, storage: {}, fsync: batch, max_bytes: 4194304, when_full: block }}",
        storage.display()
    );
    let retry = "{ initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 10m }";
    format!(
        r#"{base}
exporters:
  awscloudwatchlogs:
    endpoint: {endpoint}
    region: us-east-1
    log_group_name: {LOG_GROUP}
    log_stream_name: {STREAM}
    categories: {{}}
    raw_log: true
    timeout: 10s
    retry_on_failure: {retry}
    sending_queue: {queue}
service:
  shutdown_timeout: 5s
  extensions: [health_check]
  pipelines:
    logs: {{ receivers: [otlp], exporters: [awscloudwatchlogs] }}
"#,
        base = base_config(ports)
    )
}

/// A size-limited tmpfs, unmounted on drop (also when the test fails).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `Err` says why it could not be mounted (not root, no mount permission).
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the collector may still hold files open if the test failed early.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes a file until the file system is full; returns its path and size.
fn fill(dir: &Path) -> (PathBuf, u64) {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0u8; 4096];
    let mut written = 0u64;
    while f.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    (path, written)
}

/// Sends `REQUESTS` requests of log records, retrying each until it is acknowledged;
/// counts the refusals. Returns the acknowledged keys.
async fn send(url: String, refusals: Arc<AtomicU64>, acked: Arc<AtomicU64>) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut keys_acked = Vec::new();
    for r in 0..REQUESTS {
        let (body, keys) = logs(r * PER_REQUEST, PER_REQUEST);
        loop {
            let resp = client
                .post(format!("{url}/v1/logs"))
                .header("content-type", "application/x-protobuf")
                .body(body.clone())
                .send()
                .await
                .expect("the collector stays up and answers");
            match resp.status().as_u16() {
                200 => break,
                503 => {
                    refusals.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => panic!("collector answered {other}"),
            }
        }
        keys_acked.extend(keys);
        acked.fetch_add(1, Ordering::SeqCst);
    }
    keys_acked
}

fn health_check(c: &Collector, name: &str) -> serde_json::Value {
    let body = http_get(&format!("http://127.0.0.1:{}/health", c.ports.health)).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["checks"][name].clone()
}

#[test]
fn a_full_queue_disk_refuses_senders_and_loses_no_acknowledged_item() {
    let tmpfs = match Tmpfs::mount(TMPFS_SIZE) {
        Ok(t) => t,
        Err(why) => {
            eprintln!(
                "SKIPPED a_full_queue_disk_refuses_senders_and_loses_no_acknowledged_item: \
                 needs a size-limited tmpfs ({why}); run as root"
            );
            return;
        }
    };
    use_test_credentials();
    let rt = test_runtime();
    rt.block_on(async {
        let moto = Moto::start();
        let proxy = FaultProxy::start(
            &moto.url(),
            Faults {
                fault_percent: 0,
                max_latency: Duration::ZERO,
            },
        )
        .await;
        let endpoint = proxy.url();
        let storage = tmpfs.path().join("queue");
        let mut c = Collector::start(|ports, _| config(ports, &endpoint, &storage));
        let refusals = Arc::new(AtomicU64::new(0));
        let acked = Arc::new(AtomicU64::new(0));
        let sender = tokio::spawn(send(c.ports.http_url(), refusals.clone(), acked.clone()));

        // Mid-run: the destination goes down, so batches stay on disk, and the disk fills.
        tokio::task::block_in_place(|| {
            eventually("a first part delivered", Duration::from_secs(60), || {
                acked.load(Ordering::SeqCst) >= REQUESTS / 5
            })
        });
        proxy.set_down();
        let (filler, filled) = fill(tmpfs.path());
        tokio::task::block_in_place(|| {
            eventually("senders refused", Duration::from_secs(60), || {
                refusals.load(Ordering::SeqCst) >= 20
            })
        });
        assert!(
            c.child_mut().try_wait().expect("poll").is_none(),
            "the collector is still running"
        );
        let check = health_check(&c, "exporter/awscloudwatchlogs");
        let storage_error = check["queue_storage_error"].as_str().unwrap_or_default();
        assert!(
            storage_error.contains("No space left on device"),
            "/health names the storage error: {check}"
        );
        let refused_so_far = refusals.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            refusals.load(Ordering::SeqCst) > refused_so_far,
            "still refusing while the disk stays full"
        );

        // The destination comes back (the queue drains while the disk is still full),
        // then the space is freed.
        proxy.set_up();
        tokio::time::sleep(Duration::from_secs(1)).await;
        std::fs::remove_file(&filler).expect("free the space");
        let acked_keys = sender.await.expect("sender");
        let refused = refusals.load(Ordering::SeqCst);

        // Every item the pipeline took is sent, refused (withheld) or failed.
        let x = "exporter=\"awscloudwatchlogs\"";
        tokio::task::block_in_place(|| {
            eventually("queue drained", Duration::from_secs(300), || {
                let m = c.metrics();
                let accepted = metric_sum(&m, "aurastream_pipeline_accepted_items_total", &[]);
                let sent = metric_sum(&m, "aurastream_exporter_sent_items_total", &[x]);
                let withheld = metric_sum(&m, "aurastream_exporter_withheld_items_total", &[x]);
                let failed = metric_sum(&m, "aurastream_exporter_failed_items_total", &[x]);
                sent + withheld + failed >= accepted && sent >= acked_keys.len() as f64
            })
        });
        let m = c.metrics();
        let sent = metric_sum(&m, "aurastream_exporter_sent_items_total", &[x]);
        let failed = metric_sum(&m, "aurastream_exporter_failed_items_total", &[x]);
        let withheld = metric_sum(
            &m,
            "aurastream_exporter_withheld_items_total",
            &[x, "reason=\"refused_not_stored\""],
        );
        let refused_items = metric_sum(
            &m,
            "aurastream_receiver_refused_items_total",
            &["reason=\"storage_error\""],
        );
        let at = compare(&acked_keys, moto.log_messages(LOG_GROUP, STREAM).await);
        eprintln!(
            "DURABILITY disk full: tmpfs {TMPFS_SIZE}, filler {filled} B; {refused} requests \
             refused (503), {refused_items} items refused as storage_error, {withheld} \
             withheld; acknowledged {}, delivered {}, duplicated {}, missing {}, unknown {}; \
             sent {sent}, failed {failed}",
            at.acknowledged,
            at.delivered,
            at.duplicated,
            at.missing.len(),
            at.unknown
        );
        assert!(refused_items > 0.0, "the disk did fill up");
        assert!(
            at.missing.is_empty(),
            "{} acknowledged items lost (first {:?})\n{}",
            at.missing.len(),
            at.missing.first(),
            c.stderr()
        );
        assert_eq!((at.duplicated, at.unknown), (0, 0), "exactly once");
        assert_eq!(failed, 0.0, "nothing given up on");
        assert_eq!(sent, at.acknowledged as f64, "counted as sent once");
        assert_eq!(withheld, refused_items, "each refused item counted once");
        let check = health_check(&c, "exporter/awscloudwatchlogs");
        assert!(
            check.get("queue_storage_error").is_none(),
            "the storage error clears once writes work again: {check}"
        );
        assert_eq!(c.stop(), 0, "clean exit:\n{}", c.stderr());
    });
}

#[test]
fn a_second_collector_on_the_same_queue_directory_fails_at_start_up() {
    use_test_credentials();
    let storage = tempfile::tempdir().expect("storage");
    // Nothing is exported (the destination is never reached): only start-up matters.
    let endpoint = "http://127.0.0.1:9";
    let first = Collector::start(|ports, _| config(ports, endpoint, storage.path()));
    let dir = tempfile::tempdir().expect("config dir");
    let config_path = dir.path().join("collector.yaml");
    std::fs::write(
        &config_path,
        config(&Ports::free(), endpoint, storage.path()),
    )
    .expect("config");
    let mut second = Command::new(workspace_bin("aurastream-collector"))
        .arg("--config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the second collector");
    let pid = second.id();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.try_wait().expect("poll") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let _ = second.wait();
            panic!("the second collector did not exit: it started on a locked directory");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert!(!status.success(), "exits non-zero: {status}\n{stderr}");
    let queue_dir = storage.path().join("awscloudwatchlogs__logs");
    assert!(
        stderr.contains(&format!("queue storage {} is in use", queue_dir.display())),
        "names the directory:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {}", first.pid())),
        "names the holder:\n{stderr}"
    );
    drop(first);
}
