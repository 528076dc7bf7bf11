//! `custos-cas master-key rotate`, the real binary on a real store: every session opens under
//! the new key afterwards and none under the old one; a wrong old key changes nothing.

use std::process::Command;

use custos_cas::seal::{KeyFile, KeyProvider as _, Sealer};
use custos_cas::store::{SessionRecord, Store};
use custos_ids::KeyHash;

fn sealer(key: &std::path::Path) -> Sealer {
    Sealer::new(&KeyFile::existing(key).master_key().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_is_resealed_under_the_new_key_and_a_wrong_old_key_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let old_key = dir.path().join("old.key");
    KeyFile::create_if_missing(&old_key).master_key().unwrap();
    let store = Store::open(&data.join("cas.redb"), sealer(&old_key)).unwrap();
    for i in 0..3 {
        let record = SessionRecord {
            name: format!("ns{i}"),
            hash: format!("{i:064x}"),
            text: format!("name: ns{i}"),
            creator: KeyHash::from_bytes([1; 32]),
            created_ms: 1,
            updated_ms: 1,
            revision: 1,
        };
        store
            .write(move |tx| {
                tx.put_session(record);
                Ok::<_, custos_cas::store::StoreError>(())
            })
            .await
            .unwrap();
    }
    store.close();

    let rotate = |old: &std::path::Path, new: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_custos-cas"))
            .env_remove("CUSTOS_CAS_MASTER_KEY_FILE")
            .args(["master-key", "rotate", "--store"])
            .arg(&data)
            .arg("--master-key-file")
            .arg(old)
            .arg("--new-master-key-file")
            .arg(new)
            .output()
            .unwrap()
    };
    // A wrong old key: refused, the store untouched.
    let stranger = dir.path().join("stranger.key");
    KeyFile::create_if_missing(&stranger).master_key().unwrap();
    let refused = rotate(&stranger, &dir.path().join("unused.key"));
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("the master key does not open this store"),
        "{said}"
    );
    Store::open(&data.join("cas.redb"), sealer(&old_key))
        .unwrap()
        .close();

    let new_key = dir.path().join("new.key");
    let output = rotate(&old_key, &new_key);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.starts_with("re-sealed 3 sessions, 0 secrets records and 0 audit events of"),
        "{said}"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&new_key).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the new key file is private");
    let store = Store::open(&data.join("cas.redb"), sealer(&new_key)).unwrap();
    assert_eq!(
        store
            .read()
            .unwrap()
            .sessions_with_prefix("ns")
            .unwrap()
            .len(),
        3
    );
    store.close();
    let error = Store::open(&data.join("cas.redb"), sealer(&old_key)).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("the master key does not open this store"),
        "{error}"
    );
}
