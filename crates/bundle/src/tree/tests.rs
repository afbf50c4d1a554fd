use std::io::Write;

use proptest::prelude::*;

use super::*;

/// Writes an entry with a raw name, bypassing the tar crate's own path checks so tests can
/// build the hostile archives an attacker would.
fn raw_entry(b: &mut tar::Builder<Vec<u8>>, name: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>) {
    let mut h = tar::Header::new_old();
    let bytes = name.as_bytes();
    h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
    if let Some(link) = link {
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn archive(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data, link) in entries {
        raw_entry(&mut b, name, *kind, data, *link);
    }
    b.into_inner().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

const REG: tar::EntryType = tar::EntryType::Regular;

#[test]
fn unpacks_plain_and_gzipped_archives_alike() {
    let tar = archive(&[("./a.txt", REG, b"hello", None), ("dir/b.txt", REG, b"world", None)]);
    let plain = unpack(&tar, &Limits::default()).unwrap();
    let zipped = unpack(&gz(&tar), &Limits::default()).unwrap();
    assert_eq!(plain, zipped);
    assert_eq!(plain.file("a.txt"), Some(&b"hello"[..]));
    assert_eq!(plain.file("dir/b.txt"), Some(&b"world"[..]));
}

#[test]
fn rejects_absolute_paths() {
    let err = unpack(&archive(&[("/etc/passwd", REG, b"x", None)]), &Limits::default()).unwrap_err();
    assert!(matches!(err, BundleError::BadPath { reason, .. } if reason.contains("absolute")), "{err}");
}

#[test]
fn rejects_parent_traversal() {
    for name in ["../evil", "a/../../evil", "a/.."] {
        let err = unpack(&archive(&[(name, REG, b"x", None)]), &Limits::default()).unwrap_err();
        assert!(matches!(err, BundleError::BadPath { reason, .. } if reason.contains("..")), "{name}: {err}");
    }
}

#[test]
fn rejects_symlinks_out_of_the_tree() {
    for target in ["/etc/passwd", "../x", "a/../../x", "../../../../root"] {
        let err =
            unpack(&archive(&[("link", tar::EntryType::Symlink, b"", Some(target))]), &Limits::default()).unwrap_err();
        assert!(matches!(err, BundleError::SymlinkEscape { .. }), "{target}: {err}");
    }
}

#[test]
fn accepts_symlinks_inside_the_tree() {
    let tree = unpack(
        &archive(&[
            ("lib/real.js", REG, b"x", None),
            ("lib/alias.js", tar::EntryType::Symlink, b"", Some("real.js")),
            ("top.js", tar::EntryType::Symlink, b"", Some("lib/../lib/real.js")),
        ]),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(tree.len(), 3);
}

#[test]
fn rejects_entries_under_a_symlink() {
    let err = unpack(
        &archive(&[("sub", tar::EntryType::Symlink, b"", Some(".")), ("sub/file", REG, b"x", None)]),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, BundleError::BadPath { reason, .. } if reason.contains("symlink")), "{err}");
}

#[test]
fn rejects_hard_links_devices_and_fifos() {
    for (kind, word) in [
        (tar::EntryType::Link, "hard link"),
        (tar::EntryType::Char, "device"),
        (tar::EntryType::Block, "device"),
        (tar::EntryType::Fifo, "pipe"),
    ] {
        let err = unpack(&archive(&[("x", kind, b"", Some("y"))]), &Limits::default()).unwrap_err();
        assert!(err.to_string().contains(word), "{err}");
    }
}

#[test]
fn rejects_duplicates_and_file_directory_conflicts() {
    let dup = unpack(&archive(&[("a", REG, b"1", None), ("./a", REG, b"2", None)]), &Limits::default());
    assert!(matches!(dup, Err(BundleError::Duplicate(_))));
    let conflict = unpack(&archive(&[("a", REG, b"1", None), ("a/b", REG, b"2", None)]), &Limits::default());
    assert!(matches!(conflict, Err(BundleError::Duplicate(_))));
}

#[test]
fn stops_decompression_bombs() {
    // 64 MiB of zeros compresses to about 64 KiB: a 1000:1 bomb against a 1 MiB budget.
    let mut b = tar::Builder::new(Vec::new());
    let zeros = vec![0u8; 64 * 1024 * 1024];
    raw_entry(&mut b, "bomb", REG, &zeros, None);
    let bomb = gz(&b.into_inner().unwrap());
    let limits = Limits { max_unpacked_bytes: 1024 * 1024, ..Limits::default() };
    let err = unpack(&bomb, &limits).unwrap_err();
    assert!(matches!(err, BundleError::TooLarge(_)), "{err}");
}

#[test]
fn stops_bombs_of_padding_after_the_end_marker() {
    let mut tar = archive(&[("a", REG, b"x", None)]);
    tar.extend(std::iter::repeat_n(0u8, 4 * 1024 * 1024));
    let limits = Limits { max_unpacked_bytes: 1024 * 1024, ..Limits::default() };
    assert!(matches!(unpack(&gz(&tar), &limits), Err(BundleError::TooLarge(_))));
}

#[test]
fn rejects_oversized_archives_and_too_many_files() {
    let tar = archive(&[("a", REG, b"1", None), ("b", REG, b"2", None), ("c", REG, b"3", None)]);
    let small = Limits { max_archive_bytes: 100, ..Limits::default() };
    assert!(matches!(unpack(&tar, &small), Err(BundleError::TooLarge(_))));
    let few = Limits { max_files: 2, ..Limits::default() };
    assert!(matches!(unpack(&tar, &few), Err(BundleError::TooManyFiles(2))));
}

#[test]
fn corrupt_input_is_an_error_not_a_panic() {
    for junk in [&b"not a tar"[..], &[0x1f, 0x8b, 0, 0][..], &[0xff; 1024][..]] {
        assert!(unpack(junk, &Limits::default()).is_err());
    }
}

#[test]
fn digest_ignores_order_times_and_owners() {
    let one = archive(&[("a", REG, b"1", None), ("b/c", REG, b"2", None)]);
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in [("b/c", b"2"), ("./a", b"1")] {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(1000);
        h.set_mode(0o600);
        h.set_size(1);
        builder.append_data(&mut h, name, &data[..]).unwrap();
    }
    let two = gz(&builder.into_inner().unwrap());
    let (a, b) = (unpack(&one, &Limits::default()).unwrap(), unpack(&two, &Limits::default()).unwrap());
    assert_eq!(a.digest(), b.digest());
}

#[test]
fn digest_changes_with_content_and_mode() {
    let base = unpack(&archive(&[("a", REG, b"1", None)]), &Limits::default()).unwrap();
    let other = unpack(&archive(&[("a", REG, b"2", None)]), &Limits::default()).unwrap();
    assert_ne!(base.digest(), other.digest());
    let mut exec = Tree::default();
    exec.insert("a", Node::File { data: b"1".to_vec(), executable: true }).unwrap();
    assert_ne!(base.digest(), exec.digest());
}

#[test]
fn packs_a_folder_honouring_gatehouseignore() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("gatehouse.toml"), "x").unwrap();
    std::fs::write(root.join(".gatehouseignore"), "node_modules/\n*.log\n").unwrap();
    std::fs::create_dir_all(root.join("node_modules/pkg")).unwrap();
    std::fs::write(root.join("node_modules/pkg/index.js"), "x").unwrap();
    std::fs::write(root.join("debug.log"), "x").unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/HEAD"), "x").unwrap();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/server.js"), "x").unwrap();
    let tree = Tree::from_dir(root, &Limits::default()).unwrap();
    let paths: Vec<&str> = tree.entries().map(|(p, _)| p).collect();
    assert_eq!(paths, [".gatehouseignore", "gatehouse.toml", "src/server.js"]);
}

#[test]
fn packing_refuses_a_symlink_out_of_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("passwd")).unwrap();
    assert!(matches!(Tree::from_dir(dir.path(), &Limits::default()), Err(BundleError::SymlinkEscape { .. })));
}

fn arb_tree() -> impl Strategy<Value = Tree> {
    let name = "[a-z]{1,8}(/[a-z.]{1,8}){0,2}";
    proptest::collection::btree_map(name, (proptest::collection::vec(any::<u8>(), 0..64), any::<bool>()), 0..12)
        .prop_filter_map("paths conflict", |files| {
            let mut tree = Tree::default();
            for (path, (data, executable)) in files {
                tree.insert(&path, Node::File { data, executable }).ok()?;
            }
            tree.check_structure().ok()?;
            Some(tree)
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = unpack(&bytes, &Limits::default());
        let _ = unpack(&gz(&bytes), &Limits::default());
    }

    #[test]
    fn canonical_archive_round_trips(tree in arb_tree()) {
        let back = unpack(&tree.to_tar_gz(), &Limits::default()).unwrap();
        prop_assert_eq!(back.digest(), tree.digest());
        prop_assert_eq!(back, tree);
    }
}

#[test]
fn canonical_uploads_are_stored_as_they_came() {
    let mut tree = Tree::default();
    tree.insert(
        "gatehouse.toml",
        Node::File {
            data: b"[app]\nname = \"a\"\nruntime = \"node20\"\nentry = \"s.js\"\n".to_vec(),
            executable: false,
        },
    )
    .unwrap();
    tree.insert("s.js", Node::File { data: b"1".to_vec(), executable: false }).unwrap();
    let upload = tree.to_tar_gz();
    let (bundle, stored) = crate::Bundle::open_for_storage(upload.clone(), &Limits::default()).unwrap();
    assert_eq!(stored, upload, "a canonical upload is kept byte for byte");
    assert_eq!(bundle.digest, tree.digest());

    // A non-canonical upload (other order, times) is re-encoded; the digest is the same.
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [("s.js", &b"1"[..]), ("gatehouse.toml", tree.file("gatehouse.toml").unwrap())] {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_mode(0o600);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    }
    let other = gz(&b.into_inner().unwrap());
    let (bundle2, stored2) = crate::Bundle::open_for_storage(other.clone(), &Limits::default()).unwrap();
    assert_eq!(bundle2.digest, bundle.digest);
    assert_ne!(stored2, other);
    assert_eq!(stored2, upload);

    // Bytes smuggled after the gzip stream are not kept.
    let mut smuggled = upload.clone();
    smuggled.extend_from_slice(&gz(b"hidden"));
    let (_, stored3) = crate::Bundle::open_for_storage(smuggled, &Limits::default()).unwrap();
    assert_eq!(stored3, upload);
}

#[test]
fn every_gzip_member_is_read() {
    let first = gz(&archive(&[("a", REG, b"1", None)])[..1024]);
    let mut joined = first;
    joined.extend(gz(&archive(&[("b", REG, b"2", None)])));
    let tree = unpack(&joined, &Limits::default()).unwrap();
    assert_eq!(tree.len(), 2, "entries in the second gzip member are not lost");
}
