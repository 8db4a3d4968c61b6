use std::io::Write;

use serde_json::json;
use weir_core::testing::{run_source, run_source_acked, source_conformance};
use weir_core::{BuildContext, HumanDuration, PluginConfig, Source};

use super::*;

fn source(path: &Path, follow: bool, data_dir: Option<&Path>) -> Box<dyn Source> {
    FileSourceConfig {
        path: path.to_path_buf(),
        follow,
        poll_interval: HumanDuration::from_millis(20),
        max_batch: 3,
        checkpoint: true,
        commit_interval: HumanDuration::from_millis(20),
    }
    .build(&BuildContext {
        data_dir: data_dir.map(Arc::from),
        ..BuildContext::for_test("p", "c")
    })
    .unwrap()
}

fn append(path: &Path, text: &str) {
    let mut h = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    h.write_all(text.as_bytes()).unwrap();
}

fn ids(records: &[Record]) -> Vec<i64> {
    records
        .iter()
        .map(|r| r.value.decoded().unwrap()["id"].as_i64().unwrap())
        .collect()
}

fn lines(from: i64, to: i64) -> String {
    (from..to).map(|i| format!("{{\"id\":{i}}}\n")).collect()
}

#[tokio::test]
async fn reads_every_line_then_ends_and_passes_conformance() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    for i in 0..10 {
        writeln!(f, "{{\"i\":{i}}}").unwrap();
    }
    writeln!(f, "not json").unwrap();
    let run = source_conformance(source(f.path(), false, None), 11, false)
        .await
        .unwrap();
    assert_eq!(run.records[3].value.decoded().unwrap()["i"], 3);
    assert_eq!(*run.records[10].value.decoded().unwrap(), json!("not json"));
    assert_eq!(run.records[10].meta.origin.as_ref().unwrap().offset, 10);
}

#[tokio::test]
async fn follow_picks_up_appended_lines_and_stops_on_shutdown() {
    let f = tempfile::NamedTempFile::new().unwrap();
    let path = f.path().to_path_buf();
    let writer = tokio::spawn(async move {
        for i in 0..5 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            append(&path, &format!("{{\"id\":{i}}}\n"));
        }
    });
    let run = run_source(
        source(f.path(), true, None),
        Some(5),
        Duration::from_secs(2),
    )
    .await;
    writer.await.unwrap();
    assert_eq!(ids(&run.records), vec![0, 1, 2, 3, 4]);
    assert!(
        matches!(run.result, Some(Ok(()))),
        "stops cleanly on shutdown"
    );
}

#[tokio::test]
async fn missing_file_is_a_clear_error() {
    let run = run_source(
        source(Path::new("/nonexistent/weir.ndjson"), false, None),
        None,
        Duration::from_secs(1),
    )
    .await;
    let err = run.result.unwrap().unwrap_err().to_string();
    assert!(
        err.contains("cannot open /nonexistent/weir.ndjson"),
        "{err}"
    );
}

#[tokio::test]
async fn a_line_written_in_two_parts_while_following_is_one_record() {
    let f = tempfile::NamedTempFile::new().unwrap();
    let path = f.path().to_path_buf();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        append(&path, "{\"id\":1,\"card\":");
        // Long enough for several polls to see the half line.
        tokio::time::sleep(Duration::from_millis(300)).await;
        append(&path, "\"4111\"}\n");
    });
    let run = run_source(
        source(f.path(), true, None),
        Some(1),
        Duration::from_secs(3),
    )
    .await;
    writer.await.unwrap();
    assert_eq!(run.records.len(), 1, "{:?}", run.records);
    assert_eq!(
        *run.records[0].value.decoded().unwrap(),
        json!({"id": 1, "card": "4111"})
    );
}

#[tokio::test]
async fn a_last_line_without_newline_is_a_record_when_not_following() {
    let f = tempfile::NamedTempFile::new().unwrap();
    append(f.path(), "{\"id\":0}\n{\"id\":1}");
    let run = run_source(source(f.path(), false, None), None, Duration::from_secs(2)).await;
    assert_eq!(ids(&run.records), vec![0, 1]);
}

#[tokio::test]
async fn a_restart_resumes_after_the_last_delivered_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.ndjson");
    append(&path, &lines(0, 5));
    let first = run_source_acked(
        source(&path, false, Some(data.path())),
        None,
        Duration::from_secs(3),
    )
    .await;
    assert!(matches!(first.result, Some(Ok(()))), "{:?}", first.result);
    assert_eq!(ids(&first.records), vec![0, 1, 2, 3, 4]);
    let again = run_source_acked(
        source(&path, false, Some(data.path())),
        None,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(
        ids(&again.records),
        Vec::<i64>::new(),
        "nothing new to read"
    );
    append(&path, &lines(5, 8));
    let third = run_source_acked(
        source(&path, false, Some(data.path())),
        None,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(ids(&third.records), vec![5, 6, 7]);
    assert_eq!(
        third.records[0].meta.origin.as_ref().unwrap().offset,
        5,
        "line numbers continue"
    );
    // Without a data folder nothing is kept: the file is read again.
    let fresh = run_source_acked(source(&path, false, None), None, Duration::from_secs(3)).await;
    assert_eq!(fresh.records.len(), 8);
}

#[tokio::test]
async fn records_not_delivered_are_read_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.ndjson");
    append(&path, &lines(0, 9));
    // The first run keeps every record's ack (nothing is delivered) and stops at the deadline.
    let held = run_source(
        source(&path, false, Some(data.path())),
        None,
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(held.records.len(), 9);
    // Batches of 3: the first two delivered, the last errored (a sink failed it).
    for r in &held.records[6..] {
        r.ack.set(weir_core::AckStatus::Errored);
    }
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = run_source_acked(
        source(&path, false, Some(data.path())),
        None,
        Duration::from_secs(3),
    )
    .await;
    assert!(
        ids(&second.records).starts_with(&[6, 7, 8]),
        "the errored batch is read again, got {:?}",
        ids(&second.records)
    );
}

#[tokio::test]
async fn a_file_renamed_away_is_read_to_its_end_then_the_new_file_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, &lines(0, 3));
    let p = path.clone();
    let rotated = dir.path().join("app.log.1");
    let r = rotated.clone();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        std::fs::rename(&p, &r).unwrap();
        // The writer still holds the old file and writes one more line before it reopens.
        append(&r, &lines(3, 4));
        // The new file is longer than what was read of the old one, so only its identity
        // tells that it is another file.
        let long: String = (4..7)
            .map(|i| format!("{{\"id\":{i},\"pad\":\"{}\"}}\n", "x".repeat(64)))
            .collect();
        append(&p, &long);
    });
    let run = run_source(source(&path, true, None), Some(7), Duration::from_secs(3)).await;
    writer.await.unwrap();
    assert_eq!(ids(&run.records), vec![0, 1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn a_file_truncated_in_place_is_read_again_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, &lines(0, 3));
    let p = path.clone();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        // copy-truncate: the content was copied elsewhere, the file emptied in place.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(0)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        append(&p, &lines(10, 12));
    });
    let run = run_source(source(&path, true, None), Some(5), Duration::from_secs(3)).await;
    writer.await.unwrap();
    assert_eq!(ids(&run.records), vec![0, 1, 2, 10, 11]);
    assert_eq!(run.records[3].meta.origin.as_ref().unwrap().offset, 0);
}

#[tokio::test]
async fn a_rotation_while_stopped_reads_the_rest_of_the_rotated_file_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, &lines(0, 5));
    let first = run_source_acked(
        source(&path, false, Some(data.path())),
        None,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(first.records.len(), 5);
    // While stopped: more lines, then rotation to app.log.1 and a new app.log.
    append(&path, &lines(5, 8));
    std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    append(&path, &lines(8, 10));
    let second = run_source_acked(
        source(&path, false, Some(data.path())),
        None,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(ids(&second.records), vec![5, 6, 7, 8, 9]);
    // A file replaced by another with different content is read from its start.
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(dir.path().join("app.log.1")).unwrap();
    append(&path, &lines(20, 22));
    let third = run_source_acked(
        source(&path, false, Some(data.path())),
        None,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(ids(&third.records), vec![20, 21]);
}

#[tokio::test]
async fn passes_the_replay_conformance_check() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.ndjson");
    append(&path, &lines(0, 12));
    let p = path.clone();
    let d = data.path().to_path_buf();
    let make = move || source(&p, false, Some(&d));
    weir_core::testing::source_replay_conformance(&make, 12, Duration::from_secs(5))
        .await
        .unwrap();
}
