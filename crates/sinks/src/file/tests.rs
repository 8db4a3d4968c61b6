use super::*;
use weir_core::testing::{BoxFuture, SinkCapabilities, sample_records, sink_conformance};

fn sink(path: &Path, fsync: bool) -> Box<dyn Sink> {
    FileSinkConfig {
        path: path.to_path_buf(),
        envelope: None,
        fsync,
    }
    .build(&BuildContext::for_test("p", "f"))
    .unwrap()
}

fn read(path: PathBuf) -> BoxFuture<'static, Vec<Record>> {
    Box::pin(async move {
        let text = tokio::fs::read_to_string(&path).await.unwrap_or_default();
        text.lines()
            .map(|l| Record::from_bytes(l.as_bytes().to_vec()))
            .collect()
    })
}

#[tokio::test]
async fn passes_sink_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/out.ndjson");
    for fsync in [false, true] {
        let _ = std::fs::remove_file(&path);
        let sink = sink(&path, fsync);
        let p = path.clone();
        sink_conformance(
            &*sink,
            SinkCapabilities {
                headers: false,
                keys: false,
            },
            &move || read(p.clone()),
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn unwritable_path_is_a_retriable_error_naming_the_path() {
    let sink = sink(Path::new("/proc/weir-cannot/x.ndjson"), false);
    let err = sink.write(&sample_records(1)).await.unwrap_err();
    assert!(matches!(err, SinkError::Retriable { .. }), "{err:?}");
    assert!(err.to_string().contains("/proc/weir-cannot"), "{err}");
}

#[tokio::test]
async fn a_partial_last_line_left_by_a_crash_is_cut_off_when_the_file_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.ndjson");
    std::fs::write(&path, b"{\"a\":1}\n{\"a\":2}\n{\"a\":3,\"car").unwrap();
    let first = sink(&path, false);
    first
        .write(&[Record::from_bytes(&b"{\"a\":3,\"card\":\"x\"}"[..])])
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"a\":1}\n{\"a\":2}\n{\"a\":3,\"card\":\"x\"}\n"
    );
    // A file holding nothing but a partial line is emptied; one ending in a newline is kept.
    std::fs::write(&path, b"{\"half").unwrap();
    let second = sink(&path, false);
    second
        .write(&[Record::from_bytes(&b"1"[..])])
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n");
}

/// A tmpfs of a few kilobytes mounted over a temporary folder, unmounted when dropped. The tests
/// run as root (scripts/test.sh); without the right to mount, the test fails and says so.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(kib: u32) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("cannot run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill a disk and needs root (scripts/test.sh runs as root): mount said {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_disk_that_fills_mid_batch_leaves_only_whole_lines_and_the_retry_writes_each_record_once()
{
    let disk = SmallDisk::mount(64);
    let path = disk.path().join("out.ndjson");
    let records: Vec<Record> = (0..40)
        .map(|i| {
            Record::from_bytes(format!(
                "{{\"id\":{i},\"card\":{{\"number\":\"4111111111111111\",\"holder\":\"{}\"}}}}",
                "x".repeat(200)
            ))
        })
        .collect();
    let sink = sink(&path, false);
    sink.write(&records[..5]).await.unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    // Fill the disk so the next batch (about 10 KiB) runs out of space part-way.
    let filler = disk.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![b'x'; 1024];
    while f.write_all(&chunk).is_ok() {}
    drop(f);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(std::fs::metadata(&filler).unwrap().len() - 6 * 1024)
        .unwrap();
    let err = sink.write(&records[5..]).await.unwrap_err();
    assert!(
        matches!(err, SinkError::Retriable { .. }) && err.to_string().contains("out.ndjson"),
        "{err:?}"
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        before,
        "the half-written batch must be cut back"
    );
    // Space comes back; the runner retries the same batch.
    std::fs::remove_file(&filler).unwrap();
    sink.write(&records[5..]).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let ids: Vec<i64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("corrupt line {l:?}: {e}"))["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, (0..40).collect::<Vec<_>>());
}
